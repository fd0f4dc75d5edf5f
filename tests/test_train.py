"""Training: the tiny network overfits a tiny spectrogram store, early stopping restores the best
weights, training runs as a task on a real LocalCluster, and evaluate scores a checkpoint."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import xarray as xr

torch = pytest.importorskip("torch")

from seisgrid import storage  # noqa: E402  (after importorskip: models and train import torch)
from seisgrid.errors import SeisgridError  # noqa: E402
from seisgrid.seismic import models  # noqa: E402
from seisgrid.seismic import train as tr  # noqa: E402

SIZE = 48  # the tiny network takes any image size; small images keep the tests fast


def write_spectrogram_store(path, n=32, seed=0, chunk=8, size=SIZE, flip_val=False):
    """A spectrogram store (docs/windows-schema.md) with distinct patterns per class.

    Earthquakes: a bright low-frequency band and an onset column; noise: a bright high-frequency band.
    ``split``: 24 train, 8 val (alternating classes). ``flip_val`` swaps the val labels, so that learning
    the train set makes the val loss rise (for early stopping).
    """
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int8)
    images = rng.normal(0, 0.3, (n, 3, size, size)).astype(np.float32)
    for i, y in enumerate(labels):
        if y:
            images[i, :, 2:10, :] += 2.0
            images[i, :, :, size // 3:size // 3 + 3] += 2.0
        else:
            images[i, :, -10:-2, :] += 2.0
    split = np.array(["train"] * (n - 8) + ["val"] * 8)
    store_labels = labels.copy()
    if flip_val:
        store_labels[split == "val"] = 1 - store_labels[split == "val"]
    ds = xr.Dataset(
        {"image": (("window", "component", "freq", "time"), images.astype(np.float16)),
         "label": ("window", store_labels),
         "split": ("window", split),
         "split_region": ("window", split)},
        coords={"component": ["Z", "N", "E"]},
        attrs={"sampling_rate": 100.0, "stft_n_fft": 270, "stft_hop": 10, "band_hz": [1.0, 45.0],
               "image_size": [size, size], "clip": 5.0, "windows_attrs": {"window_seconds": 25.0}},
    )
    ds.chunk({"window": chunk}).to_zarr(storage.zarr_store(str(path)), mode="w", zarr_format=3,
                                         consolidated=False)
    return ds


FAST = {"batch_size": 8, "lr": 3e-3, "weight_decay": 0.0, "progress": False}


def test_tiny_overfits_a_tiny_store(tmp_path):
    write_spectrogram_store(tmp_path / "spec.zarr")
    out = str(tmp_path / "tiny.pt")
    r = tr.train(str(tmp_path / "spec.zarr"), "tiny", out, epochs=12, patience=12, seed=0, **FAST)
    losses = [h["train_loss"] for h in r["history"]]
    assert losses[-1] < 0.5 * losses[0]
    assert r["history"][-1]["train_accuracy"] == 1.0
    assert r["history"][r["best_epoch"] - 1]["val_f1"] == 1.0
    assert r["train_windows"] == 24 and r["val_windows"] == 8 and r["device"] == "cpu"

    model, cfg = models.load_checkpoint(out, device="cpu")
    assert cfg["arch"] == "tiny" and cfg["num_classes"] == 2 and cfg["in_channels"] == 3
    assert cfg["spectrogram"]["stft_n_fft"] == 270 and cfg["spectrogram"]["band_hz"] == [1.0, 45.0]
    assert cfg["window_seconds"] == 25.0 and cfg["best_epoch"] == r["best_epoch"]
    assert len(cfg["history"]) == r["epochs_run"] and {"val_loss", "val_f1", "val_precision",
                                                      "val_recall", "train_loss"} <= set(cfg["history"][0])
    assert 0.0 < cfg["threshold"] < 1.0 and cfg["val_at_threshold"]["f1"] == 1.0
    ds = tr.open_store(str(tmp_path / "spec.zarr"))
    proba = tr.predict_proba(model, tr.read_images(ds, np.arange(32)), "cpu")
    assert ((proba >= cfg["threshold"]) == ds["label"].values.astype(bool)).all()
    assert pathlib.Path(out + ".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.loads(pathlib.Path(out + ".json").read_text())


def test_same_seed_same_result(tmp_path):
    write_spectrogram_store(tmp_path / "spec.zarr")
    a = tr.train(str(tmp_path / "spec.zarr"), "tiny", str(tmp_path / "a.pt"), epochs=2, seed=3, **FAST)
    b = tr.train(str(tmp_path / "spec.zarr"), "tiny", str(tmp_path / "b.pt"), epochs=2, seed=3, **FAST)
    assert [h["train_loss"] for h in a["history"]] == pytest.approx([h["train_loss"] for h in b["history"]])


def test_streaming_buffers_read_every_window_once_per_epoch(tmp_path):
    write_spectrogram_store(tmp_path / "spec.zarr", n=32, chunk=4)
    ds = tr.open_store(str(tmp_path / "spec.zarr"))
    index = np.flatnonzero(ds["split"].values.astype(str) == "train")
    buf = tr._Buffers(ds, index, ds["label"].values[index], buffer_windows=8)
    assert not buf.in_memory
    seen = []
    for pos, images in buf.groups(np.random.default_rng(0)):
        assert len(pos) <= 8 and images.dtype == np.float16
        np.testing.assert_array_equal(images, ds["image"].values[index[pos]])
        seen.extend(index[pos])
    assert sorted(seen) == list(index)
    assert sum(tr._group_sizes(buf)) == len(index)
    # training through the streamed path works as well
    r = tr.train(str(tmp_path / "spec.zarr"), "tiny", str(tmp_path / "s.pt"), epochs=1, buffer_windows=8, **FAST)
    assert r["epochs_run"] == 1


def test_read_images_any_order_with_repeats(tmp_path):
    ds0 = write_spectrogram_store(tmp_path / "spec.zarr", n=16, chunk=4)
    ds = tr.open_store(str(tmp_path / "spec.zarr"))
    index = np.array([9, 2, 2, 15, 0])
    np.testing.assert_array_equal(tr.read_images(ds, index), ds0["image"].values[index])


def test_early_stopping_restores_best_weights(tmp_path):
    write_spectrogram_store(tmp_path / "spec.zarr", flip_val=True)
    out = str(tmp_path / "es.pt")
    # calibrate="none": a folded temperature would change the saved model's val loss
    r = tr.train(str(tmp_path / "spec.zarr"), "tiny", out, epochs=30, patience=2, seed=0, calibrate="none", **FAST)
    assert r["epochs_run"] < 30  # stopped early
    assert r["epochs_run"] == r["best_epoch"] + 2
    best = r["history"][r["best_epoch"] - 1]["val_loss"]
    assert best == min(h["val_loss"] for h in r["history"])
    model, _ = models.load_checkpoint(out, device="cpu")
    ds = tr.open_store(str(tmp_path / "spec.zarr"))
    val = np.flatnonzero(ds["split"].values.astype(str) == "val")
    buf = tr._Buffers(ds, val, ds["label"].values[val].astype(np.int64), 2048)
    loss, _, _ = tr._validate(model, buf, torch.device("cpu"), 256)
    assert loss == pytest.approx(best, rel=1e-4)  # the saved weights are the best epoch's, not the last


def test_errors_are_reported(tmp_path):
    write_spectrogram_store(tmp_path / "spec.zarr")
    with pytest.raises(SeisgridError, match="unknown"):
        tr.train(str(tmp_path / "spec.zarr"), "vgg", str(tmp_path / "x.pt"))
    with pytest.raises(SeisgridError, match="no split column"):
        tr.train(str(tmp_path / "spec.zarr"), "tiny", str(tmp_path / "x.pt"), split="fold3", progress=False)
    with pytest.raises(SeisgridError, match="not a spectrogram store"):
        tr.train(str(tmp_path / "missing.zarr"), "tiny", str(tmp_path / "x.pt"), progress=False)


def test_max_windows_caps_per_class(tmp_path):
    write_spectrogram_store(tmp_path / "spec.zarr")
    r = tr.train(str(tmp_path / "spec.zarr"), "tiny", str(tmp_path / "m.pt"), epochs=1, max_windows=10, **FAST)
    assert r["train_windows"] == 10 and r["val_windows"] == 8


class _FakeClient:
    def __init__(self, resources):
        self.resources = resources

    def scheduler_info(self, n_workers=5):
        return {"workers": {f"w{i}": {"resources": r} for i, r in enumerate(self.resources)}}


def test_gpu_workers_are_detected():
    assert tr._has_gpu_workers(_FakeClient([{}, {"GPU": 1}]))
    assert not tr._has_gpu_workers(_FakeClient([{}, {}]))


def test_training_as_tasks_on_a_cluster(tmp_path, dask_client):
    write_spectrogram_store(tmp_path / "spec.zarr")
    r = tr.train(str(tmp_path / "spec.zarr"), "tiny", str(tmp_path / "one.pt"), epochs=1, client=dask_client, **FAST)
    assert r["epochs_run"] == 1 and (tmp_path / "one.pt").exists() and (tmp_path / "one.pt.png").exists()
    outs = [str(tmp_path / "s0.pt"), str(tmp_path / "s1.pt")]
    runs = tr.train_many(str(tmp_path / "spec.zarr"), "tiny", outs, seeds=[0, 1], client=dask_client, epochs=1,
                         **FAST)
    assert [x["seed"] for x in runs] == [0, 1] and [x["checkpoint"] for x in runs] == outs
    w0 = torch.load(outs[0], weights_only=True)["fc.weight"]
    w1 = torch.load(outs[1], weights_only=True)["fc.weight"]
    assert not torch.equal(w0, w1)


def test_evaluate_gives_a_resnet_row(tmp_path):
    from test_spectrogram import write_window_store

    from seisgrid.seismic import evaluate, spectrogram

    write_window_store(tmp_path / "windows.zarr", n=20, chunk=8)
    spectrogram.spectrograms(str(tmp_path / "windows.zarr"), str(tmp_path / "spec.zarr"), method="numpy",
                             progress=False)
    ckpt = str(tmp_path / "tiny.pt")
    tr.train(str(tmp_path / "spec.zarr"), "tiny", ckpt, epochs=1, split="split", **FAST)
    r = evaluate.evaluate(str(tmp_path / "windows.zarr"), str(tmp_path / "spec.zarr"),
                          methods=["stalta", f"resnet:{ckpt}"], split="split", timing_windows=64,
                          out_dir=str(tmp_path / "ev"))
    names = [m["display_name"] for m in r["methods"]]
    assert names == ["STA/LTA", "tiny"]
    row = r["methods"][1]
    assert row["name"] == "resnet" and row["windows"] == 64 and row["checkpoint"] == ckpt
    assert {"precision", "recall", "fpr", "f1", "hours_per_year", "tp", "fp", "tn", "fn", "threshold"} <= set(row)
    assert row["tp"] + row["fp"] + row["tn"] + row["fn"] == r["test_windows"]
    assert row["threshold"] == json.loads(pathlib.Path(ckpt + ".json").read_text())["threshold"]
    assert "| tiny |" in r["table"] and (tmp_path / "ev" / "pr_curves.png").exists()
    assert row["gmacs"] > 0 and row["parameters"] == models.parameter_count(models.build("tiny"))
    assert row["windows_per_second"] > 0 and row["input"] == "spectrogram"
    assert "windows/s (measured)" in r["table"]
    # a waveform model scores the same windows from the window store itself, no spectrograms needed
    wave = str(tmp_path / "wavenet.pt")
    tr.train(str(tmp_path / "windows.zarr"), "wavenet", wave, epochs=1, split="split", **FAST)
    r = evaluate.evaluate(str(tmp_path / "windows.zarr"), None, methods=[f"resnet:{wave}"], split="split",
                          timing_windows=16)
    row = r["methods"][0]
    assert row["display_name"] == "WaveNet (1-D, waveforms)" and row["input"] == "waveform"
    assert row["tp"] + row["fp"] + row["tn"] + row["fn"] == r["test_windows"] and row["gmacs"] > 0
    with pytest.raises(SeisgridError, match="--spectrograms"):
        evaluate.evaluate(str(tmp_path / "windows.zarr"), None, methods=[f"resnet:{ckpt}"], split="split")
    with pytest.raises(SeisgridError, match="unknown"):
        evaluate.evaluate(str(tmp_path / "windows.zarr"), None, methods=["resnet:"], split="split")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_and_prediction_on_cuda(tmp_path):
    """bf16 autocast + channels_last on the GPU: the same code, the same result as on CPU (overfits)."""
    write_spectrogram_store(tmp_path / "spec.zarr")
    out = str(tmp_path / "gpu.pt")
    r = tr.train(str(tmp_path / "spec.zarr"), "tiny", out, epochs=12, patience=12, device="cuda", **FAST)
    assert r["device"].startswith("cuda") and r["history"][-1]["train_accuracy"] == 1.0
    model, cfg = models.load_checkpoint(out, device="cuda")
    assert cfg["precision"] == "bf16 autocast"
    ds = tr.open_store(str(tmp_path / "spec.zarr"))
    proba = tr.predict_proba(model, tr.read_images(ds, np.arange(32)), torch.device("cuda"))
    assert ((proba >= cfg["threshold"]) == ds["label"].values.astype(bool)).all()


def test_balanced_draws_share_each_class_between_its_sources():
    labels = np.array([1] * 90 + [1] * 10 + [0] * 50)
    groups = np.array([0] * 90 + [1] * 10 + [2] * 50)
    gen = torch.Generator().manual_seed(0)
    draws = np.concatenate([tr._balanced(labels, gen, groups) for _ in range(20)])
    share = np.bincount(groups[draws], minlength=3) / len(draws)
    assert share == pytest.approx([0.25, 0.25, 0.5], abs=0.03)
    class_only = np.concatenate([tr._balanced(labels, gen) for _ in range(20)])
    assert np.bincount(groups[class_only], minlength=3) / len(class_only) == pytest.approx([0.45, 0.05, 0.5], abs=0.03)


def test_temperature_scaling_recovers_an_overconfident_scale(tmp_path):
    rng = np.random.default_rng(1)
    true_logit = rng.normal(0, 2, 4000)
    labels = (rng.random(4000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    logits = np.stack([np.zeros(4000), 3.0 * true_logit], axis=1)  # three times too confident
    t = tr.fit_temperature(logits, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    before, after = tr.calibration_scores(logits, labels), tr.calibration_scores(logits, labels, t)
    assert after["nll"] < before["nll"] and after["ece"] < before["ece"]
    assert tr.fit_temperature(logits, np.zeros(4000, int)) == 1.0  # one class: nothing to fit
    model = models.build("tiny")
    x = torch.randn(4, 3, SIZE, SIZE)
    model.eval()
    with torch.no_grad():
        raw = model(x)
        tr.fold_temperature(model, 2.5)
        np.testing.assert_allclose(model(x).numpy(), raw.numpy() / 2.5, rtol=1e-5, atol=1e-6)


def test_training_calibrates_and_records_it(tmp_path):
    write_spectrogram_store(tmp_path / "spec.zarr")
    out = str(tmp_path / "cal.pt")
    r = tr.train(str(tmp_path / "spec.zarr"), "tiny", out, epochs=3, seed=0, **FAST)
    cal = r["calibration"]
    assert cal["method"].startswith("temperature") and cal["temperature"] > 0
    assert cal["val_after"]["nll"] <= cal["val_before"]["nll"] + 1e-9
    _, cfg = models.load_checkpoint(out, device="cpu")
    assert cfg["calibration"]["temperature"] == cal["temperature"] and cfg["training"]["balance"] == "source"
    r2 = tr.train(str(tmp_path / "spec.zarr"), "tiny", str(tmp_path / "raw.pt"), epochs=3, seed=0,
                  calibrate="none", **FAST)
    assert r2["calibration"] == {"method": "none", "temperature": 1.0}
    with pytest.raises(Exception, match="balance"):
        tr.train(str(tmp_path / "spec.zarr"), "tiny", str(tmp_path / "x.pt"), balance="station", **FAST)


def write_window_store(path, n=32, seed=0, chunk=8, samples=400):
    """A labelled-window store (docs/windows-schema.md) whose earthquakes carry a 5 Hz burst at an onset.

    Amplitudes are raw counts of very different scales per window: the waveform model normalises itself.
    """
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 2).astype(np.int8)
    t = np.arange(samples) / 100.0
    waves = rng.normal(0, 1.0, (n, 3, samples)).astype(np.float32)
    for i, y in enumerate(labels):
        if y:
            onset = 150 + 10 * (i % 5)
            burst = 8.0 * np.sin(2 * np.pi * 5.0 * t[: samples - onset]) * np.exp(-t[: samples - onset])
            waves[i, :, onset:] += burst.astype(np.float32)
        waves[i] *= 10.0 ** (i % 4)  # counts of different instruments
    split = np.array(["train"] * (n - 8) + ["val"] * 8)
    ds = xr.Dataset({"waveform": (("window", "component", "sample"), waves), "label": ("window", labels),
                     "split": ("window", split), "split_region": ("window", split)},
                    coords={"component": ["Z", "N", "E"]},
                    attrs={"kind": "seisgrid-windows", "sampling_rate": 100.0, "window_seconds": samples / 100.0})
    ds.chunk({"window": chunk}).to_zarr(storage.zarr_store(str(path)), mode="w", zarr_format=3, consolidated=False)
    return ds


def test_wavenet_trains_on_the_window_store_itself(tmp_path):
    write_window_store(tmp_path / "windows.zarr")
    assert models.input_kind("wavenet") == "waveform" and models.input_kind("resnet18") == "spectrogram"
    assert models.build("wavenet").input_kind == "waveform"
    out = str(tmp_path / "wavenet.pt")
    r = tr.train(str(tmp_path / "windows.zarr"), "wavenet", out, epochs=10, patience=10, seed=0, **FAST)
    assert r["history"][-1]["train_loss"] < 0.5 * r["history"][0]["train_loss"]
    assert r["history"][r["best_epoch"] - 1]["val_f1"] == 1.0
    model, cfg = models.load_checkpoint(out, device="cpu")
    assert cfg["input"]["kind"] == "waveform" and cfg["input"]["dims"] == ["component", "sample"]
    assert cfg["input"]["shape"] == [3, 400] and cfg["sampling_rate"] == 100.0
    ds = tr.open_store(str(tmp_path / "windows.zarr"), "waveform")
    proba = tr.predict_proba(model, tr.read_images(ds, np.arange(32)), "cpu")
    assert np.mean((proba >= cfg["threshold"]) == ds["label"].values.astype(bool)) >= 0.85  # chance: 0.5
    with pytest.raises(SeisgridError, match="waveform model .*detect"):
        models.require_spectrogram_input(cfg, out, "detect")
    models.require_spectrogram_input({"arch": "tiny"}, "tiny.pt", "detect")  # image models pass
    # a spectrogram model refuses the window store, naming what it needs
    with pytest.raises(SeisgridError, match="image"):
        tr.train(str(tmp_path / "windows.zarr"), "tiny", str(tmp_path / "tiny.pt"), epochs=1, **FAST)
