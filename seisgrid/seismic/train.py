"""``seisgrid train``: a spectrogram classifier (earthquake / noise) trained from a Zarr spectrogram store.

One training run is one task: in-process without a client, else **one Dask task** on a worker — a worker
that advertises a ``GPU`` resource when the cluster has one (``resources={"GPU": 1}``). Several runs
(seeds, folds) are separate tasks in parallel (:func:`train_many`).

Recipe (defaults in ``seisgrid.train`` of ``seisgrid.yaml``):

- **Data**: the ``train`` and ``val`` windows of a split column (``split`` or ``split_region``) of a
  spectrogram store (``docs/windows-schema.md``: ``image`` (window, component, freq, time) float16).
  Images are read **chunk-wise** straight from Zarr (no Dask graph): per epoch the store chunks holding
  training windows are shuffled and read ``buffer_windows`` at a time; a set that fits in one buffer is
  read once and kept in memory. ``max_windows`` caps the train and val windows (drawn per class, seeded).
- **Balance**: inside each buffer, windows are drawn with replacement
  (:class:`torch.utils.data.WeightedRandomSampler`), as many draws as windows. ``balance: class``
  weights a window 1 / (count of its class), so every epoch sees earthquakes and noise equally often;
  ``balance: source`` (default) also splits each class's half equally between the sources (data sets)
  present in it, so 370 polar noise windows weigh as much as 1,200 Californian ones and no single
  network's look defines a class.
- **Optimiser**: AdamW (decoupled weight decay) with a one-cycle (warm-up, cosine decay) or cosine
  learning-rate schedule over ``epochs`` × batches per epoch; cross-entropy loss.
- **Early stopping** on the validation loss (or F1, ``monitor``) with ``patience`` epochs; the best
  epoch's weights are restored before saving.
- **Calibration**: ``calibrate: temperature`` (default) fits one temperature T on the val windows' logits
  (best weights; minimum negative log-likelihood, Guo et al. 2017) and folds it into the last layer
  (``fc`` weights and bias ÷ T), so every consumer of the checkpoint gets calibrated P(earthquake); T and
  the val NLL / Brier score before and after are in the config. ``none``: raw softmax.
- **Decision threshold**: the P(earthquake) threshold with the highest F1 on the val windows (best
  weights, after calibration), saved in the checkpoint config; 0.5 when val has not both classes.
- **Device**: picked once (:func:`seisgrid.seismic.models.pick_device`); on CUDA bf16 autocast and
  channels_last, on CPU float32 — the same code.
- **Output**: ``out`` (weights) + ``out.json`` (config: arch, classes, the spectrogram store's STFT
  attributes so detection rebuilds identical images, history, best epoch, threshold) via
  :func:`seisgrid.seismic.models.save_checkpoint`, and ``out.png`` (loss and F1 per epoch).
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import torch
import xarray as xr
from torch import nn

from seisgrid import config
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.seismic import metrics, models
from seisgrid.seismic.spectrogram import check_image_store
from seisgrid.seismic.windowstore import open_dataset

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    import numpy.typing as npt
    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

SECTION = "train"
CLASSES = ["noise", "earthquake"]
# Store attributes copied into the checkpoint config: what detection needs to rebuild identical images.
SPECTROGRAM_ATTRS = ("sampling_rate", "stft_window", "stft_n_fft", "stft_hop", "stft_center", "band_hz",
                     "dynamic_range_db", "clip", "image_size", "normalisation", "log_floor", "power",
                     "freq_axis", "time_axis", "implementation", "image_dtype", "store_rounding")


# ------------------------------------------------------------------------------------------------ data
def open_store(url: str | os.PathLike, kind: str = "spectrogram") -> xr.Dataset:
    """The store a model of input ``kind`` trains on, as a Dataset of lazily indexed Zarr arrays (no Dask).

    ``spectrogram``: a spectrogram store, its images checked to be (window, component, freq, time) of the
    store's own ``image_size`` (:func:`seisgrid.seismic.spectrogram.check_image_store`) before anything is
    read or written. ``waveform``: the labelled-window store itself (``waveform`` (window, component, sample)).
    """
    if kind == "waveform":
        ds = open_dataset(url, "labelled-window store (a waveform model trains on the windows themselves)",
                          "seisgrid windows", ("waveform", "label"), consolidated=False, chunks=None)
        if ds["waveform"].dims != ("window", "component", "sample"):
            raise SeisgridError(f"{url}: 'waveform' has dims {ds['waveform'].dims}, "
                                "expected (window, component, sample)")
        return ds
    ds = open_dataset(url, "spectrogram store", "seisgrid spectrograms", ("image", "label"),
                      consolidated=False, chunks=None)
    check_image_store(ds, url)
    return ds


def input_variable(ds: xr.Dataset) -> str:
    """The model input of a training store: ``image`` (spectrogram store) or ``waveform`` (window store)."""
    return "image" if "image" in ds.data_vars else "waveform"


def _chunk_size(ds: xr.Dataset) -> int:
    var = ds[input_variable(ds)]
    chunks = var.encoding.get("chunks") or var.encoding.get("preferred_chunks", {}).get("window")
    if isinstance(chunks, (tuple, list)):
        return int(chunks[0])
    return int(chunks or 64)


def read_images(ds: xr.Dataset, index: npt.ArrayLike, chunk: int | None = None) -> np.ndarray:
    """Model input of the windows ``index`` (any order, repeats allowed), as stored.

    ``image`` float16 (n, C, F, T) of a spectrogram store, or ``waveform`` float32 (n, C, samples) of a
    window store. Reads whole store chunks, each once, and picks the windows from them.
    """
    index = np.asarray(index, dtype=np.int64)
    chunk = chunk or _chunk_size(ds)
    name = input_variable(ds)
    image = ds[name].variable
    out = None
    for c in np.unique(index // chunk):
        start, stop = int(c * chunk), int(min((c + 1) * chunk, ds.sizes["window"]))
        block = np.asarray(image[start:stop].values)
        if out is None:
            out = np.empty((len(index), *block.shape[1:]), dtype=block.dtype)
        where = np.flatnonzero(index // chunk == c)
        out[where] = block[index[where] - start]
    if out is None:
        out = np.empty((0, *ds[name].shape[1:]), dtype=ds[name].dtype)
    return out


def _cap(index: np.ndarray, labels: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``n`` of ``index``, drawn per class in proportion (at least one of each present class)."""
    if n is None or len(index) <= n:
        return index
    keep = []
    for cls in np.unique(labels[index]):
        members = index[labels[index] == cls]
        k = max(1, round(n * len(members) / len(index)))
        keep.append(rng.choice(members, size=min(k, len(members)), replace=False))
    return np.sort(np.concatenate(keep))[: max(n, len(keep))]


class _Buffers:
    """Windows ``index`` read chunk-wise in buffers of about ``buffer_windows`` (cached when one buffer).

    ``groups`` (per window of ``index``) are the integer groups that balanced draws share equally
    within a class (the window's source); None: one group.
    """

    def __init__(self, ds, index, labels, buffer_windows: int, groups=None):
        self.ds, self.index, self.labels = ds, np.asarray(index), np.asarray(labels)
        self.groups_of = np.zeros(len(self.index), np.int64) if groups is None else np.asarray(groups, np.int64)
        self.chunk = _chunk_size(ds)
        self.buffer_windows = max(int(buffer_windows), self.chunk)
        self._cache: np.ndarray | None = None

    @property
    def in_memory(self) -> bool:
        return len(self.index) <= self.buffer_windows

    def groups(self, rng: np.random.Generator | None = None):
        """Yield ``(positions, images)``: positions into ``index`` and their float16 images."""
        if self.in_memory:
            if self._cache is None:
                self._cache = read_images(self.ds, self.index, self.chunk)
            yield np.arange(len(self.index)), self._cache
            return
        chunk_of = self.index // self.chunk
        chunks = np.unique(chunk_of)
        if rng is not None:
            chunks = rng.permutation(chunks)
        group, size = [], 0
        for c in chunks:
            members = np.flatnonzero(chunk_of == c)
            group.append(members)
            size += len(members)
            if size >= self.buffer_windows:
                pos = np.concatenate(group)
                yield pos, read_images(self.ds, self.index[pos], self.chunk)
                group, size = [], 0
        if group:
            pos = np.concatenate(group)
            yield pos, read_images(self.ds, self.index[pos], self.chunk)


def _balanced(labels: np.ndarray, generator: torch.Generator, groups: np.ndarray | None = None) -> np.ndarray:
    """As many draws as ``labels``, with replacement (WeightedRandomSampler).

    Each class gets an equal share of the draws and, within a class, each of its ``groups`` an equal
    share of the class's (weight 1 / (groups in the class × windows of the class and group)).
    """
    from torch.utils.data import WeightedRandomSampler

    groups = np.zeros(len(labels), np.int64) if groups is None else np.asarray(groups, np.int64)
    key = labels.astype(np.int64) * (int(groups.max(initial=0)) + 1) + groups
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    groups_per_class = {c: len(np.unique(groups[labels == c])) for c in np.unique(labels)}
    weights = 1.0 / (counts[inverse] * np.array([groups_per_class[c] for c in labels], dtype=np.float64))
    # torch's stubs type weights as Sequence[float]; the sampler takes (and documents) a Tensor too
    sampler = WeightedRandomSampler(torch.as_tensor(weights),  # type: ignore[arg-type]
                                    num_samples=len(labels), replacement=True, generator=generator)
    return np.fromiter(iter(sampler), dtype=np.int64, count=len(labels))


# ------------------------------------------------------------------------------------------------ model
def _to_device(x: np.ndarray, device: torch.device) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x)).to(device, non_blocking=True).float()
    if device.type == "cuda" and t.ndim == 4:  # images; waveforms (n, C, samples) have no channels_last
        t = t.contiguous(memory_format=torch.channels_last)
    return t


def _autocast(device: torch.device):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


@torch.no_grad()
def predict_proba(model: nn.Module, images: np.ndarray, device: torch.device | str | None = None,
                  batch_size: int | None = None) -> np.ndarray:
    """P(earthquake) of each image: ``images`` (n, C, F, T) array → float32 (n,), in batches.

    bf16 autocast and channels_last on CUDA, float32 on CPU. The model is put in eval mode.
    """
    device = models.pick_device(device) if not isinstance(device, torch.device) else device
    batch_size = int(batch_size or config.get(f"{SECTION}.eval_batch_size", 256))
    model.eval()
    out = np.empty(len(images), np.float32)
    for i in range(0, len(images), batch_size):
        x = _to_device(np.asarray(images[i:i + batch_size]), device)
        with _autocast(device):
            logits = model(x)
        out[i:i + len(x)] = torch.softmax(logits.float(), dim=1)[:, 1].cpu().numpy()
    return out


def _validate(model, buffers: _Buffers, device, batch_size: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean cross-entropy, P(earthquake) and the logits (n, 2) of the val windows (``buffers.index`` order)."""
    model.eval()
    loss_sum, proba = 0.0, np.empty(len(buffers.index), np.float32)
    logit_rows = np.empty((len(buffers.index), 2), np.float32)
    with torch.no_grad():
        for pos, images in buffers.groups():
            for i in range(0, len(pos), batch_size):
                x = _to_device(images[i:i + batch_size], device)
                y = torch.as_tensor(buffers.labels[pos[i:i + batch_size]], device=device, dtype=torch.long)
                with _autocast(device):
                    logits = model(x)
                logits = logits.float()
                loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
                proba[pos[i:i + batch_size]] = torch.softmax(logits, dim=1)[:, 1].cpu().numpy()
                logit_rows[pos[i:i + batch_size]] = logits.cpu().numpy()
    return loss_sum / max(len(buffers.index), 1), proba, logit_rows


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Temperature T > 0 minimising the negative log-likelihood of softmax(logits / T) (temperature scaling).

    Parameters
    ----------
    logits : array (n, classes)
    labels : array (n,) of int

    Returns
    -------
    float
        T (1.0 without both classes among ``labels``), bounded to [0.5, 20]: a val set the model separates
        perfectly would drive T towards 0 (ever sharper), which a few hundred windows cannot justify.
    """
    from scipy.optimize import minimize_scalar

    z = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    if len(y) == 0 or len(torch.unique(y)) < 2:
        return 1.0

    def nll(log_t: float) -> float:
        return float(nn.functional.cross_entropy(z / math.exp(log_t), y))

    # one bounded scalar search (the NLL is convex in 1/T); scipy's Brent method, no hand-written optimiser
    best = minimize_scalar(nll, bounds=(math.log(0.5), math.log(20.0)), method="bounded")
    return float(math.exp(best.x))


def calibration_scores(logits: npt.ArrayLike, labels: npt.ArrayLike, temperature: float = 1.0) -> dict:
    """NLL, Brier score and expected calibration error (10 equal-width bins) of softmax(logits / T)."""
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)) / float(temperature)
    y = np.asarray(labels, dtype=np.int64)
    p = torch.softmax(z, dim=1)[:, 1].numpy()
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(float(np.mean(p[bins == b])) - float(np.mean(y[bins == b]))) * np.mean(bins == b)
              for b in range(10) if np.any(bins == b))
    return {"nll": float(nn.functional.cross_entropy(z, torch.as_tensor(y))), "brier": float(np.mean((p - y) ** 2)),
            "ece": float(ece)}


def fold_temperature(model: nn.Module, temperature: float) -> None:
    """Divide the final layer (``model.fc``) by ``temperature`` in place: the model then outputs logits / T."""
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise SeisgridError(f"{type(model).__name__}: no final nn.Linear 'fc' to fold a temperature into")
    with torch.no_grad():
        fc.weight.div_(temperature)
        if fc.bias is not None:
            fc.bias.div_(temperature)


def tune_threshold(proba: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """P(earthquake) threshold with the highest F1 (ties: the highest threshold); 0.5 without both classes."""
    from seisgrid.seismic.stalta import tune_threshold as _tune

    labels = np.asarray(labels).astype(int)
    if len(labels) == 0 or labels.min() == labels.max():
        return 0.5
    return float(_tune(proba, labels))


def _settings(**given) -> dict:
    return {k: config.get(f"{SECTION}.{k}", override=v) for k, v in given.items()}


def _threads(threads) -> None:
    if threads is None:
        from seisgrid.seismic.spectrogram import worker_threads

        threads = worker_threads()
    if threads:
        torch.set_num_threads(int(threads))


# ------------------------------------------------------------------------------------------------ train
def _train_task(spectrograms_url, arch, out, *, epochs=None, batch_size=None, lr=None, weight_decay=None,
                patience=None, seed=None, split=None, device=None, progress=True, max_windows=None,
                schedule=None, monitor=None, buffer_windows=None, eval_batch_size=None, threads=None,
                balance=None, calibrate=None) -> dict:
    """One training run in this process (the body of the Dask task); see :func:`train`."""
    t_start = time.perf_counter()
    s = _settings(arch=arch, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  patience=patience, seed=seed, split=split, max_windows=max_windows, schedule=schedule,
                  monitor=monitor, buffer_windows=buffer_windows, eval_batch_size=eval_batch_size,
                  threads=threads, device=device, balance=balance, calibrate=calibrate)
    epochs, bs, patience, seed = int(s["epochs"]), int(s["batch_size"]), int(s["patience"]), int(s["seed"])
    _check_settings(s, epochs, bs)
    _threads(s["threads"])
    dev = models.pick_device(s["device"])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)

    kind = models.input_kind(s["arch"])
    ds = open_store(spectrograms_url, kind)
    split = s["split"]
    labels, train_idx, val_idx = _split_windows(ds, spectrograms_url, split, s["max_windows"], rng)
    n_channels = int(ds.sizes["component"])
    model = models.build(s["arch"], num_classes=2, in_channels=n_channels).to(dev)
    if dev.type == "cuda":
        # torch's stubs give Module.to no memory_format keyword (it has one)
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    train_buf = _Buffers(ds, train_idx, labels[train_idx], int(s["buffer_windows"]),
                         groups=_source_groups(ds, train_idx) if s["balance"] == "source" else None)
    val_buf = _Buffers(ds, val_idx, labels[val_idx], int(s["buffer_windows"]))
    steps = sum(len(range(0, n, bs)) for n in _group_sizes(train_buf))
    optimiser = torch.optim.AdamW(model.parameters(), lr=float(s["lr"]), weight_decay=float(s["weight_decay"]))
    total = max(steps * epochs, 1)
    scheduler: torch.optim.lr_scheduler.LRScheduler
    if s["schedule"] == "onecycle" and total >= 4:  # warm-up over 20 % of the steps (at least 2)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=float(s["lr"]), total_steps=total,
                                                        pct_start=max(0.2, 2.0 / total))
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=total)
    logger.info("train %s: %d train windows (%d earthquake), %d val windows, %s, %d epochs × %d steps, device %s",
                s["arch"], len(train_idx), int(labels[train_idx].sum()), len(val_idx), split, epochs, steps, dev)

    history, best, best_state, best_epoch, bad = [], None, None, 0, 0
    step = 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        loss_sum, seen, correct, step = _train_epoch(model, train_buf, rng, gen, optimiser, scheduler, dev, bs,
                                                     step, total)
        train_loss = loss_sum / max(seen, 1)
        row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": correct / max(seen, 1),
               "lr": float(optimiser.param_groups[0]["lr"])}
        if len(val_idx):
            val_loss, proba, _ = _validate(model, val_buf, dev, int(s["eval_batch_size"]))
            sc = metrics.scores(val_buf.labels, (proba >= 0.5).astype(np.int8))
            row.update(val_loss=val_loss, val_precision=_num(sc["precision"]), val_recall=_num(sc["recall"]),
                       val_f1=_num(sc["f1"]), val_accuracy=float(np.mean((proba >= 0.5) == val_buf.labels)))
        row["seconds"] = round(time.perf_counter() - t0, 3)
        history.append(row)
        value = _monitored(row, s["monitor"])
        improved = best is None or value < best
        if improved:
            best, best_epoch, bad = value, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            bad += 1
        msg = (f"epoch {epoch}/{epochs}: train loss {train_loss:.4f} acc {row['train_accuracy']:.3f}"
               + (f", val loss {row['val_loss']:.4f} P {_fmt(row['val_precision'])} R {_fmt(row['val_recall'])} "
                  f"F1 {_fmt(row['val_f1'])}" if "val_loss" in row else "")
               + f" ({row['seconds']:.1f} s){' *' if improved else ''}")
        logger.info("train %s: %s", s["arch"], msg)
        if progress:
            print(f"seisgrid train: {msg}", file=sys.stderr, flush=True)
        if bad >= patience:
            logger.info("train %s: early stop after epoch %d (best epoch %d)", s["arch"], epoch, best_epoch)
            break

    assert best_state is not None  # epochs ≥ 1 (_check_settings) and the first epoch always sets it
    model.load_state_dict(best_state)
    threshold, val_best, calibration = 0.5, {}, {"method": "none", "temperature": 1.0}
    if len(val_idx):
        val_loss, proba, logits = _validate(model, val_buf, dev, int(s["eval_batch_size"]))
        if s["calibrate"] == "temperature" and len(np.unique(val_buf.labels)) == 2:
            temperature = fit_temperature(logits, val_buf.labels)
            before = calibration_scores(logits, val_buf.labels)
            after = calibration_scores(logits, val_buf.labels, temperature)
            calibration = {"method": "temperature (val NLL)", "temperature": temperature,
                           "val_before": before, "val_after": after}
            fold_temperature(model, temperature)
            val_loss, proba, logits = _validate(model, val_buf, dev, int(s["eval_batch_size"]))
            logger.info("train %s: temperature %.3f (val NLL %.4f → %.4f)", s["arch"], temperature,
                        before["nll"], after["nll"])
        threshold = tune_threshold(proba, val_buf.labels)
        sc = metrics.scores(val_buf.labels, (proba >= threshold).astype(np.int8))
        val_best = {"loss": val_loss, **{k: (v if k in ("tp", "fp", "tn", "fn") else _num(v)) for k, v in sc.items()}}
    # torch's stubs give Module.to no memory_format keyword (it has one)
    model = model.to("cpu").to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    cfg = {
        "arch": s["arch"], "num_classes": 2, "in_channels": n_channels, "classes": CLASSES,
        "input": {"kind": kind, "dims": list(ds[input_variable(ds)].dims[1:]),
                  "components": [str(c) for c in ds["component"].values] if "component" in ds.coords else None,
                  "shape": [int(n) for n in ds[input_variable(ds)].shape[1:]],
                  "dtype": "float32 (store float16)" if kind == "spectrogram" else "float32 counts (the model "
                           "normalises each window)"},
        "sampling_rate": jsonable(ds.attrs.get("sampling_rate")),
        "spectrogram": {k: jsonable(ds.attrs[k]) for k in SPECTROGRAM_ATTRS if k in ds.attrs},
        "window_seconds": _window_seconds(ds),
        "spectrograms_store": str(spectrograms_url), "split": split,
        "train_windows": len(train_idx), "val_windows": len(val_idx),
        "train_earthquakes": int(labels[train_idx].sum()), "val_earthquakes": int(labels[val_idx].sum()),
        "threshold": float(threshold),
        "threshold_source": "max F1 of P(earthquake) on val (best weights)" if len(val_idx) and
                            len(np.unique(val_buf.labels)) == 2 else "0.5 (no val windows of both classes)",
        "val_at_threshold": val_best, "calibration": calibration, "best_epoch": best_epoch, "epochs_run": len(history),
        "monitor": s["monitor"], "history": history,
        "training": {k: s[k] for k in ("epochs", "batch_size", "lr", "weight_decay", "schedule", "patience",
                                       "seed", "max_windows", "buffer_windows", "balance", "calibrate")},
        "optimizer": "AdamW", "device": str(dev), "precision": "bf16 autocast" if dev.type == "cuda" else "float32",
        "torch": torch.__version__, "parameters": models.parameter_count(model),
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    saved = models.save_checkpoint(out, model, cfg)
    figure = plot_history(history, str(out) + ".png", best_epoch=best_epoch, title=f"{s['arch']} ({split})")
    return {"checkpoint": saved["weights"], "config": saved["config"], "figure": figure, "arch": s["arch"],
            "seed": seed, "split": split, "device": str(dev), "best_epoch": best_epoch, "epochs_run": len(history),
            "threshold": float(threshold), "val": val_best, "calibration": calibration, "history": history,
            "train_windows": len(train_idx), "val_windows": len(val_idx),
            "parameters": cfg["parameters"], "seconds": cfg["seconds"]}


def _check_settings(s: dict, epochs: int, bs: int) -> None:
    """Reject settings a run cannot use: epochs, batch size, ``monitor`` and ``schedule``."""
    if epochs < 1 or bs < 2:
        raise ConfigError(f"train: epochs={epochs}, batch_size={bs}: expected epochs ≥ 1 and batch_size ≥ 2")
    if s["monitor"] not in ("val_loss", "val_f1"):
        raise ConfigError(f"train: monitor={s['monitor']!r}: expected 'val_loss' or 'val_f1'")
    if s["schedule"] not in ("onecycle", "cosine"):
        raise ConfigError(f"train: schedule={s['schedule']!r}: expected 'onecycle' or 'cosine'")
    if s["balance"] not in ("class", "source"):
        raise ConfigError(f"train: balance={s['balance']!r}: expected 'class' or 'source'")
    if s["calibrate"] not in ("temperature", "none"):
        raise ConfigError(f"train: calibrate={s['calibrate']!r}: expected 'temperature' or 'none'")


def _source_groups(ds: xr.Dataset, index: np.ndarray) -> np.ndarray | None:
    """Integer source of each window of ``index`` (None when the store has no ``source``)."""
    if "source" not in ds:
        return None
    sources = np.asarray(ds["source"].values, dtype=object).astype(str)[index]
    return np.unique(sources, return_inverse=True)[1].astype(np.int64)


def _split_windows(ds: xr.Dataset, spectrograms_url, split: str, max_windows,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels of every window and the train and val windows of column ``split``, capped at ``max_windows``."""
    if split not in ds:
        raise SeisgridError(f"{spectrograms_url}: no split column {split!r}; expected 'split' or 'split_region'")
    splits = np.asarray(ds[split].values, dtype=object).astype(str)
    labels = np.asarray(ds["label"].values).astype(np.int64)
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 1:
        raise SeisgridError(f"{spectrograms_url}: labels outside {{0, 1}}; expected 1 earthquake, 0 noise")
    max_w = None if max_windows is None else int(max_windows)
    train_idx = _cap(np.flatnonzero(splits == "train"), labels, max_w, rng)
    val_idx = _cap(np.flatnonzero(splits == "val"), labels, max_w, rng)
    if len(np.unique(labels[train_idx])) < 2:
        raise SeisgridError(f"{spectrograms_url}: split {split!r} has {len(train_idx)} train windows of "
                            f"{len(np.unique(labels[train_idx]))} class(es); both earthquake and noise are needed")
    if not len(val_idx):
        logger.warning("train: split %r has no val windows; early stopping and the threshold use the train loss / 0.5",
                       split)
    return labels, train_idx, val_idx


def _train_epoch(model, train_buf: _Buffers, rng, gen, optimiser, scheduler, dev, bs: int, step: int,
                 total: int) -> tuple[float, int, int, int]:
    """One epoch over the training buffers (class-balanced draws, batches of ``bs``).

    Returns the summed loss, the windows seen, the correctly classified ones and the scheduler's new step
    count (it steps at most ``total`` times over the run).
    """
    model.train()
    loss_sum, seen, correct = 0.0, 0, 0
    for pos, images in train_buf.groups(rng):
        draw = _balanced(train_buf.labels[pos], gen, train_buf.groups_of[pos])
        for i in range(0, len(draw), bs):
            b = draw[i:i + bs]
            if len(b) < 2:  # BatchNorm needs two samples
                continue
            x = _to_device(images[b], dev)
            y = torch.as_tensor(train_buf.labels[pos[b]], device=dev, dtype=torch.long)
            with _autocast(dev):
                logits = model(x)
            loss = nn.functional.cross_entropy(logits.float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if step < total:
                scheduler.step()
                step += 1
            loss_sum += float(loss.detach()) * len(b)
            seen += len(b)
            correct += int((logits.argmax(1) == y).sum())
    return loss_sum, seen, correct, step


def _group_sizes(buffers: _Buffers) -> list[int]:
    if buffers.in_memory:
        return [len(buffers.index)]
    counts = np.bincount(buffers.index // buffers.chunk)
    sizes, size = [], 0
    for n in counts[counts > 0]:
        size += int(n)
        if size >= buffers.buffer_windows:
            sizes.append(size)
            size = 0
    return sizes + ([size] if size else [])


def _monitored(row: dict, monitor: str) -> float:
    """The early-stopping value, lower is better (train loss when there is no val set)."""
    if "val_loss" not in row:
        return row["train_loss"]
    if monitor == "val_f1":
        return -(row["val_f1"] if row["val_f1"] is not None else 0.0)
    return row["val_loss"]


def _num(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.3f}"


def jsonable(value: object) -> object:
    """``value`` with NumPy scalars as Python scalars and arrays, lists and tuples as lists (recursively)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    return value


def _window_seconds(ds) -> float | None:
    wa = ds.attrs.get("windows_attrs") or {}
    value = wa.get("window_seconds") if isinstance(wa, dict) else None
    value = ds.attrs.get("window_seconds") if value is None else value  # a window store says it itself
    return None if value is None else float(value)


def plot_history(history: list[dict], path: str, best_epoch: int | None = None, title: str = "") -> str:
    """PNG of the per-epoch train/val loss (left) and val precision/recall/F1 (right).

    Parameters
    ----------
    history : list of dict
        The per-epoch rows of :func:`train` (``epoch``, ``train_loss``, ``train_accuracy``, ``val_*``).
    path : str
        Local path or URL of the PNG.
    best_epoch : int, optional
        Epoch whose weights were kept; marked on both axes and named in the legend.
    title : str
        Figure title.

    Returns
    -------
    str
        ``path``. The figure is :func:`seisgrid.seismic.metrics.history_figure` (legend below the axes).
    """
    from seisgrid.figures import save_png

    return save_png(metrics.history_figure(history, best_epoch=best_epoch, title=title), path, dpi=110)


# ------------------------------------------------------------------------------------------------ dask
def _has_gpu_workers(client) -> bool:
    """Whether any worker of ``client`` advertises a ``GPU`` resource."""
    try:
        info = client.scheduler_info(n_workers=-1)  # newer distributed lists only a few workers by default
    except TypeError:
        info = client.scheduler_info()
    return any((w.get("resources") or {}).get("GPU", 0) >= 1 for w in info.get("workers", {}).values())


def _submit(client, spectrograms_url, arch, out, kwargs):
    extra = {"resources": {"GPU": 1}} if _has_gpu_workers(client) else {}
    return client.submit(_train_task, spectrograms_url, arch, out, pure=False, **kwargs, **extra)


def train(spectrograms_url: str | os.PathLike, arch: str | None = None, out: str | os.PathLike | None = None, *,
          epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
          weight_decay: float | None = None, patience: int | None = None, seed: int | None = None,
          split: str | None = None, device: str | None = None, client: Client | LazyClient | None = None,
          progress: bool = True, max_windows: int | None = None, **options: str | int | None) -> dict:
    """Train a spectrogram classifier and write its checkpoint (``out``, ``out.json``) and ``out.png``.

    Parameters
    ----------
    spectrograms_url : str
        Spectrogram store (``seisgrid spectrograms``; local path or ``s3://``).
    arch : str
        Architecture (:data:`seisgrid.seismic.models.ARCHITECTURES`); default ``train.arch``.
    out : str
        Checkpoint path or URL (weights; the config goes to ``out + '.json'``, the figure to ``out + '.png'``).
    epochs, batch_size, lr, weight_decay, patience, seed, max_windows : optional
        Override ``seisgrid.train`` (learning rate is the one-cycle peak; weight decay is AdamW's).
    split : str
        Split column whose ``train``/``val`` windows are used (``split`` or ``split_region``).
    device : str, optional
        Torch device; default CUDA when available, else CPU.
    client : distributed.Client or LazyClient, optional
        Run as one task on a worker (one with a ``GPU`` resource when any worker has one); None: here.
    progress : bool
        One line per epoch on stderr (of the process that trains).
    **options
        ``schedule``, ``monitor``, ``buffer_windows``, ``eval_batch_size``, ``threads``, ``balance``,
        ``calibrate``.

    Returns
    -------
    dict
        ``checkpoint``, ``config``, ``figure`` (paths), ``best_epoch``, ``epochs_run``, ``threshold``,
        ``val`` (metrics at the threshold), ``history`` (per epoch), window counts, ``device``, ``seconds``.
    """
    from seisgrid.cluster import resolve_client

    unknown = sorted(set(options) - {"schedule", "monitor", "buffer_windows", "eval_batch_size", "threads",
                                     "balance", "calibrate"})
    if unknown:
        raise SeisgridError(f"train: options {unknown}: unknown")
    if out is None:
        raise SeisgridError("train: an output checkpoint path (out) is needed")
    arch = config.get(f"{SECTION}.arch", override=arch)
    models.build(arch)  # unknown architectures fail here, before any task is submitted
    kwargs = dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, patience=patience,
                  seed=seed, split=split, device=device, progress=progress, max_windows=max_windows, **options)
    settings = _settings(arch=arch, **{"monitor": None, "schedule": None, "balance": None, "calibrate": None,
                                       **{k: v for k, v in kwargs.items() if k != "progress"}})
    _check_settings(settings, int(settings["epochs"]), int(settings["batch_size"]))  # before any cluster starts
    client = resolve_client(client)
    if client is None:
        return _train_task(spectrograms_url, arch, out, **kwargs)
    return _submit(client, spectrograms_url, arch, out, kwargs).result()


def train_many(spectrograms_url: str | os.PathLike, arch: str | None = None, outs: Iterable[str | os.PathLike] = (),
               *, seeds: Iterable[int] | None = None, splits: Iterable[str] | None = None,
               client: Client | LazyClient | None = None, **kwargs: object) -> list[dict]:
    """Several training runs (seeds and/or split columns / folds), each a separate task, in parallel.

    ``outs`` names one checkpoint per run; ``seeds`` (default ``train.seed + i``) and ``splits`` (default
    the ``split`` keyword / ``train.split``) give each run's seed and split column. Without a client the
    runs go one after another in this process. Returns :func:`train`'s dicts in the order of ``outs``.
    """
    from seisgrid.cluster import resolve_client

    outs = list(outs)
    if not outs:
        raise SeisgridError("train_many: no output paths (outs)")
    base = int(config.get(f"{SECTION}.seed", override=kwargs.pop("seed", None)))
    seeds = list(seeds) if seeds is not None else [base + i for i in range(len(outs))]
    split = kwargs.pop("split", None)
    run_splits = list(splits) if splits is not None else [split] * len(outs)
    if len(seeds) != len(outs) or len(run_splits) != len(outs):
        raise SeisgridError(f"train_many: {len(outs)} outputs but {len(seeds)} seeds and {len(run_splits)} splits")
    arch = config.get(f"{SECTION}.arch", override=arch)
    models.build(arch)
    client = resolve_client(client)
    if client is None:
        return [_train_task(spectrograms_url, arch, o, seed=sd, split=sp, **kwargs)
                for o, sd, sp in zip(outs, seeds, run_splits, strict=True)]
    futures = [_submit(client, spectrograms_url, arch, o, dict(kwargs, seed=sd, split=sp))
               for o, sd, sp in zip(outs, seeds, run_splits, strict=True)]
    return client.gather(futures)


__all__ = ["calibration_scores", "fit_temperature", "fold_temperature", "open_store", "plot_history", "predict_proba",
           "read_images", "train", "train_many", "tune_threshold"]
