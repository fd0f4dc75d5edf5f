"""Archive-scale detection with a trained detector: sliding windows → P(earthquake) → picks → events → catalog.

The detector (a **scorer**, :data:`SCORERS`) is either a trained classifier checkpoint
(:class:`ModelScorer`, ``method="model"``) or a Random Forest saved by ``seisgrid evaluate --out``
(:class:`ForestScorer`, ``method="forest"``: the same images, its 65 spectral features,
``predict_proba``). It replaces only step 3; everything else is shared.

Stations are the store's ``NET.STA`` groups with one sensor's Z, N, E channels (1/2 read as N/E; rules,
network-code quirks and coordinates matched by station code: :mod:`seisgrid.seismic.stationdata`).
One Dask task per **station-day with data** (:func:`detect_station_day`, run by
:func:`seisgrid.cluster.run_tasks` with a progress bar). The windows of a day are numbered ``k`` (start
``day + k × stride``); a run over ``[start, end)`` evaluates the windows of each day that start in it
**and lie inside the station's data** (the union of its channels' segments), as one or more **intervals**
per task (the parts not done before, see 4); days whose windows hold no data get no task, so a store of
short event files costs a task per file-day, not per day of its whole span. Per interval:

1. **Read** the station's channels with :meth:`Archive.stream` at the store's rate over
   ``[start of window k0 − look − pad, end of window k1 − 1 + horizon)``: ``look`` =
   ``max(ceil(L / stride), min_windows)`` windows of look-back and ``horizon = 2 × look`` of look-ahead
   (``L`` = the window length; :func:`context`), so a run of triggering windows crossing an interval's
   edge is reported once, by the interval in which it starts, and measured over the same windows
   whatever the interval; ``pad = 3 × refine_lta`` for the STA/LTA warm-up. Isolated
   zero samples (dropouts) are replaced (``despike``, rule: :func:`seisgrid.seismic.stationdata.despike`).
   Channels at another rate than the detector's (the ``sampling_rate`` of its config, 100 Hz: a 1000 Hz
   store is read at 1000 Hz and resampled in the task) are resampled per contiguous segment with
   :func:`seisgrid.seismic.labelled.windowing.resample` (the windows' own polyphase rule; segment mean
   kept). Gaps are NaN.
2. **Windows**: ``window_seconds`` from the model (25 s = 2500 samples), starting every
   ``stride_seconds`` (default **5 s**) on a grid fixed to midnight. 5 s ≤ the 6 s spread of P positions
   in the training windows (P 5–11 s after the window start), so every P falls inside the trained
   range of at least one window. Each window is demeaned per component as the window store does; a
   component with any missing sample in the window is zeroed (= absent, as in training); a window
   without any complete component is not evaluated (probability NaN).
3. **Scorer**. Model: images with :func:`~seisgrid.seismic.spectrogram.spectrogram_torch` on a GPU (on a CPU
   :func:`~seisgrid.seismic.spectrogram.spectrogram_numpy`, twice as fast there, same images), with
   the spectrogram parameters of the checkpoint's config (so images are made exactly as for
   training), then the model in batches of ``batch_size`` under ``torch.inference_mode``, channels_last,
   in ``precision`` (``auto``: bf16 autocast on CUDA and on CPUs with native bf16, else fp32;
   :func:`seisgrid.seismic.models.pick_precision`). P(earthquake) = softmax of the logits, class 1
   (or the index of ``"earthquake"`` in the config's ``classes``). Forest: the images it was trained
   on (the spectrogram store's, rounded as it stores them, or ``waveform_images`` when it was trained
   without a spectrogram store), :func:`~seisgrid.seismic.forest.spectral_features` with the
   complete components as ``present``, ``predict_proba`` of class 1, on the CPU.
4. **Store**: probabilities go to the Zarr store ``probabilities_url``: group ``NET.STA``, array
   ``YYYY-MM-DD`` (float32, one value per window start ``day + k × stride``, NaN where not evaluated;
   attributes ``start``, ``start_ns``, ``stride_seconds``, ``window_seconds``); an interval writes its
   region only. Then a manifest record (:mod:`seisgrid.manifest`: section ``days``, group ``NET.STA``, item
   ``YYYY-MM-DD``; merged into one object per station at the end of the run) with
   the picks, ``spans`` (the window intervals of the day done so far), ``evaluated`` (the intervals with
   a probability), ``inputs`` (the content digests of the samples the day's windows read: the blocks of
   :meth:`~seisgrid.seismic.store.Archive.content_blocks`, 10 min each, written by ingest) and a
   fingerprint of the detector, the settings and the channels. A rerun, per station-day with a record of
   the same fingerprint, forgets the windows that read a block whose digest changed since (with the reach
   of :func:`context` around each window: the look-back, the look-ahead and the STA/LTA warm-up of its
   pick), then computes the data windows of its span that are not in ``spans`` (none: no task; the
   record's picks are reused) and merges them into the record; a different fingerprint starts the day
   afresh. So an interrupted run resumes, a finished one runs no task and writes the same catalog, a run
   over a larger span computes only what earlier, smaller spans left, and a new or rewritten file costs
   the windows that read its samples, not its day (``seisgrid watch``, :mod:`seisgrid.seismic.watch`).
5. **Picks**: a trigger is a run of at least ``min_windows`` (2) consecutive windows with
   P ≥ ``threshold`` (default: the checkpoint's ``threshold``, else 0.5); its ``windows`` and
   ``probability`` (the maximum) are measured over at most its first ``horizon`` windows. ``pick_method``:
   ``"stalta"`` (default) — the P pick is the first sample, inside ``[first window start − stride,
   first window end)``, where a recursive STA/LTA (``refine_sta``/``refine_lta`` s) of the bandpassed
   (``refine_freqmin``–``refine_freqmax`` Hz) Z component reaches ``refine_thr``. The STA/LTA is computed
   on the pick's own stretch (``pad`` before that range, then the range), per contiguous data segment,
   each demeaned first, so a restart of data after a gap (at any DC offset) is no onset, and it is 0 for
   the first ``refine_lta`` seconds of every segment (the LTA warm-up): no pick falls there. A pick thus
   depends on the data near it only, never on where a task's read begins. When it never reaches the
   threshold (or there is no Z) the pick falls back to the ``"window"`` rule: the first triggering window's start
   plus ``pick_offset_seconds`` (default: the training windows' ``pre_p_seconds``, 8 s).

Then (driver) the picks of the triggers starting in the span, of all station-days, are associated into events
(:func:`seisgrid.seismic.associate.associate`) and written as QuakeML + CSV (+ a JSON summary) by
:func:`seisgrid.seismic.catalog.write_catalog`. A store with fewer stations than an event needs
(``min_stations``) is warned about (log and ``warnings``).

**station-days** (``station_days`` of every method: model, forest, STA/LTA, and the denominator of
false detections per station-day in :func:`seisgrid.seismic.catalog.score`): the **data time** inside
the run's span ``[start, end)`` (default: all of the store), in days, summed over the stations the method
reads — per station the union of the segments of its Z/N/E channels, gaps not counted, channels not
counted twice (:func:`seisgrid.seismic.stationdata.data_days`). It depends on the store and the span only,
not on the stride, the window length or how many station-day tasks ran, so the same archive gives the
same figure for every method.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import threading
import time
from typing import TYPE_CHECKING, cast

import numpy as np
import obspy

from seisgrid import config, manifest, storage, versioned
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.seismic.layout import DAY_NS, MANIFEST, NS, day_label, iso_ns
from seisgrid.seismic.peers import EQTScorer, eqt_scorer_config
from seisgrid.seismic.stationdata import (
    check_stations,
    data_days,
    data_spans,
    read_component,
    require_channels,
    station_channels,
    station_coordinates,
)
from seisgrid.seismic.windowgrid import (
    changed_spans,
    data_windows,
    invalid_windows,
    merge,
    overlap,
    runs,
    subtract,
    window_range,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    import torch
    import zarr
    from distributed import Client

    from seisgrid.cluster import LazyClient
    from seisgrid.seismic.associate import LocateOptions
    from seisgrid.seismic.spectrogram import SpectrogramParams

logger = logging.getLogger("seisgrid")

STORE_KIND = "seisgrid-probabilities"
COMPONENTS = "ZNE"
PICK_METHODS = ("stalta", "window")
RECORD_FORMAT = 3  # manifest records with "spans", "evaluated" (window-index intervals of the day), "inputs"


def _opt(key, value):
    return config.get(f"detect.{key}", override=value)


# --------------------------------------------------------------------------------- model settings
def _find(cfg, *names):
    """The first value of any of ``names`` in a nested config (breadth-first), else None."""
    queue = [cfg]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            for name in names:
                if node.get(name) is not None:
                    return node[name]
            queue.extend(v for v in node.values() if isinstance(v, dict))
    return None


def model_settings(cfg: dict) -> dict:
    """The detection settings of a checkpoint config.

    Window length (s), sampling rate (Hz), :class:`SpectrogramParams`, threshold, pre-P offset (s) and
    earthquake class index (keys ``window_seconds``, ``sampling_rate``, ``spectrogram``, ``threshold``,
    ``pre_p_seconds``, ``earthquake_index``); what the config lacks comes from the configuration.
    """
    from seisgrid.seismic.spectrogram import SpectrogramParams

    rate = float(_find(cfg, "sampling_rate", "fs") or config.get("windows.sampling_rate", 100.0))
    window = float(_find(cfg, "window_seconds") or config.get("windows.window_seconds", 25.0))
    fields = {f.name for f in dataclasses.fields(SpectrogramParams)} - {"fs"}
    node = None
    for key in ("spectrogram", "spectrogram_params", "spectrogram_attrs"):
        node = _find(cfg, key)
        if isinstance(node, dict):
            break
    node = node if isinstance(node, dict) else cfg
    # SpectrogramParams names (n_fft, hop, f_min, ...) or the spectrogram store's attribute names
    # (stft_n_fft, stft_hop, band_hz, image_size: what train.py copies into the checkpoint)
    spec = {k: node[k] for k in fields if node.get(k) is not None}
    for name, key in (("n_fft", "stft_n_fft"), ("hop", "stft_hop")):
        if node.get(key) is not None:
            spec[name] = node[key]
    if node.get("band_hz") is not None:
        spec["f_min"], spec["f_max"] = float(node["band_hz"][0]), float(node["band_hz"][1])
    if node.get("image_size") is not None:
        size = node["image_size"]
        spec["size"] = int(size[0] if isinstance(size, (list, tuple)) else size)
    params = SpectrogramParams.from_config(fs=rate, **spec)
    threshold = cfg.get("threshold")
    pre_p = _find(cfg, "pre_p_seconds")
    classes = cfg.get("classes") or cfg.get("class_names")
    eq_index = 1
    if isinstance(classes, (list, tuple)) and "earthquake" in classes:
        eq_index = list(classes).index("earthquake")
    return {"window_seconds": window, "sampling_rate": rate, "spectrogram": params,
            "threshold": None if threshold is None else float(threshold),
            "pre_p_seconds": None if pre_p is None else float(pre_p), "earthquake_index": int(eq_index)}


# ------------------------------------------------------------------------------------------- scorers
class ModelScorer:
    """P(earthquake) of windows from a trained classifier checkpoint.

    Spectrograms + forward pass (:func:`probabilities`).
    """

    method = "model"

    def __init__(self, path: str, s: dict):
        from seisgrid.seismic import models
        from seisgrid.seismic.spectrogram import SpectrogramParams

        model, cfg = models.load_checkpoint(path, s["device"])
        self.waveform = (cfg.get("input") or {}).get("kind") == "waveform"
        if not self.waveform:  # images: channels_last is faster on CUDA and on oneDNN CPUs alike
            import torch

            model = _fused(model)
            # torch's stubs give Module.to no memory_format keyword (it has one)
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model, self.s = model, s
        self.params = SpectrogramParams(**s["spectrogram"])

    def __call__(self, windows: np.ndarray, present: np.ndarray) -> np.ndarray:
        """P(earthquake) of windows ``(n, 3, samples)`` (``present`` is not used: absent components are zero)."""
        return probabilities(self.model, windows, self.params, device=self.s["device"],
                             batch_size=self.s["batch_size"], earthquake_index=self.s["earthquake_index"],
                             waveform=self.waveform, bf16=self.s.get("precision") == "bf16")


def _fused(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with each BatchNorm folded into the convolution before it (inference only).

    The same outputs to float rounding, 10 % faster on a CPU, and no bf16↔fp32 casts around the norms
    under autocast. torch.fx's ``fuse`` traces the model; a model it cannot trace is used as it is.
    """
    import torch

    if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model)
    except Exception as exc:  # noqa: BLE001  (a model torch.fx cannot trace: data-dependent control flow)
        logger.info("detect: BatchNorm not folded (%s: %s)", type(exc).__name__, exc)
        return model


class ForestScorer:
    """P(earthquake) of windows from a saved Random Forest (:func:`seisgrid.seismic.forest.save_model`).

    The images it was trained on (spectrogram-store images, rounded as the store holds them, or
    :func:`~seisgrid.seismic.forest.waveform_images`), :func:`~seisgrid.seismic.forest.spectral_features`
    with the components present, ``predict_proba`` (one core per task).
    """

    method = "forest"

    def __init__(self, path: str, s: dict):
        from seisgrid.seismic import forest
        from seisgrid.seismic.spectrogram import SpectrogramParams

        self.model, _ = forest.load_model(path)
        if hasattr(self.model, "n_jobs"):
            self.model.n_jobs = 1  # a worker runs nthreads tasks at once
        self.s = s
        self.params = SpectrogramParams(**s["spectrogram"])

    def __call__(self, windows: np.ndarray, present: np.ndarray) -> np.ndarray:
        """P(earthquake) of windows ``(n, 3, samples)`` whose complete components are ``present`` ``(n, 3)``."""
        from seisgrid.seismic import forest
        from seisgrid.seismic.spectrogram import spectrogram_numpy, to_store_numpy

        out = np.empty(len(windows), dtype=np.float32)
        step = self.s["batch_size"]
        for a in range(0, len(windows), step):
            batch = windows[a:a + step]
            if self.s["forest_features_from"] == "spectrograms":
                images = to_store_numpy(spectrogram_numpy(batch, self.params))  # as the store holds them
            else:
                images = forest.waveform_images(batch, self.s["sampling_rate"])
            feats = forest.spectral_features(images, present[a:a + step], bands=self.s["forest_bands"])
            out[a:a + len(batch)] = forest.predict_proba(self.model, feats)
        return out


#: Detectors by ``method``: a class built once per worker process from ``(path, settings)`` and called on
#: windows ``(n, 3, samples)`` at the detector's rate with the complete components ``present`` ``(n, 3)``,
#: returning P(earthquake) ``(n,)``. Another detector registers its class here and, unless it is a file
#: with a seisgrid ``.json`` (:func:`scorer_config`), its config reader in :data:`SCORER_CONFIGS`.
SCORERS: dict[str, Callable[[str, dict], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "model": ModelScorer, "forest": ForestScorer, "eqt": EQTScorer}
#: ``method`` → ``(path) -> (resolved path, config)`` for detectors whose config is not a seisgrid ``.json``
#: beside a file (e.g. EQTransformer weights named ``pnw``); the config holds what :func:`model_settings` reads.
SCORER_CONFIGS: dict[str, Callable[[str], tuple[str, dict]]] = {"eqt": eqt_scorer_config}
_SCORER_CACHE: dict = {}
_SCORER_LOCK = threading.Lock()
_THREADS_SET = False


def _scorer(model_path: str, s: dict):
    """The scorer of ``s["method"]``, loaded once per worker process, file and device."""
    key = (s["method"], model_path, s["device"], s["model_fingerprint"])
    with _SCORER_LOCK:
        if key not in _SCORER_CACHE:
            _SCORER_CACHE.clear()
            _SCORER_CACHE[key] = SCORERS[s["method"]](model_path, s)
        return _SCORER_CACHE[key]


def _set_threads(device: str) -> None:
    global _THREADS_SET
    if device != "cpu" or _THREADS_SET:
        return
    from seisgrid.seismic.spectrogram import worker_threads

    threads = worker_threads()
    if threads:  # a worker runs nthreads tasks at once: one torch pool per core would oversubscribe
        import torch

        torch.set_num_threads(max(1, threads))
    _THREADS_SET = True


def probabilities(model: torch.nn.Module, windows: np.ndarray, params: SpectrogramParams, *, device: str,
                  batch_size: int, earthquake_index: int = 1, waveform: bool = False,
                  bf16: bool | None = None) -> np.ndarray:
    """P(earthquake) of windows ``(n, 3, samples)`` (float32, demeaned): spectrograms + model in batches.

    ``waveform``: the model takes the windows themselves (``models.INPUT_KINDS``), no spectrogram.
    ``bf16``: the model under bf16 autocast (default: on CUDA only; see ``models.pick_precision``).
    """
    import torch

    from seisgrid.seismic.spectrogram import spectrogram_numpy, spectrogram_torch

    dev = torch.device(device)
    out = np.empty(len(windows), dtype=np.float32)
    cuda = dev.type == "cuda"
    for a in range(0, len(windows), batch_size):
        batch = np.ascontiguousarray(windows[a:a + batch_size], dtype=np.float32)
        with torch.inference_mode():
            if waveform:
                images = torch.from_numpy(batch).to(dev, non_blocking=True)
            elif cuda:
                images = spectrogram_torch(torch.from_numpy(batch).to(dev, non_blocking=True), params)
            else:  # on a CPU the NumPy/SciPy path is ~2× faster (benchmarks/spectrogram.py); same images
                images = torch.from_numpy(spectrogram_numpy(batch, params, threads=torch.get_num_threads()))
            if not waveform:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=cuda if bf16 is None else bf16):
                logits = model(images)
            p = torch.softmax(logits.float(), dim=1)[:, earthquake_index]
        out[a:a + len(p)] = p.cpu().numpy()
    return out


# -------------------------------------------------------------------------------------- the task
def _stalta_cf(z: np.ndarray, rate: float, s: dict) -> np.ndarray:
    """Recursive STA/LTA of the bandpassed Z, computed per contiguous segment (NaN = gap), 0 elsewhere.

    Each segment is demeaned before the bandpass, so the step from a gap to data (at any DC offset) is
    not an onset, and its STA/LTA starts afresh: ObsPy's warm-up leaves the first ``refine_lta`` seconds
    of every segment at 0, so no pick falls there.
    """
    from obspy.signal.filter import bandpass
    from obspy.signal.trigger import recursive_sta_lta

    cf = np.zeros(len(z), dtype=np.float64)
    nsta, nlta = max(1, int(s["refine_sta"] * rate)), max(2, int(s["refine_lta"] * rate))
    for a, b in runs(np.isfinite(z)):
        if b - a <= nlta:
            continue
        x = z[a:b].astype(np.float64)
        x -= x.mean()
        if not x.any():
            continue
        x = bandpass(x, s["refine_freqmin"], min(s["refine_freqmax"], 0.45 * rate), rate, corners=4,
                     zerophase=False)
        cf[a:b] = recursive_sta_lta(x, nsta, nlta)
    return cf


def _ns_of(iso: str) -> int:
    return int(np.datetime64(iso.rstrip("Z"), "ns").astype(np.int64))


def _window_of(pick: dict, day: int, stride_ns: int) -> int:
    """Index in ``day`` of the first window of ``pick``'s trigger."""
    return (_ns_of(pick["window_start"]) - day * DAY_NS) // stride_ns


# -------------------------------------------------------------------------------------- the task
def context(s: dict) -> dict:
    """How far a window's probability and the pick starting at it reach into the data around it.

    ``look`` windows of look-back (the window before a run tells where it starts), ``horizon`` windows
    of look-ahead (a pick's ``windows`` and ``probability`` are measured over at most the first
    ``horizon`` windows of its run, so they do not depend on where an interval ends), ``pad_ns`` of data
    before the pick's search range for the STA/LTA warm-up, and ``before_ns``/``after_ns``: the data
    window ``k`` and the pick starting at it depend on lie in ``[start_k − before_ns, start_k + after_ns)``
    (a margin of one stride covers resampling edges).
    """
    stride_ns = round(s["stride_seconds"] * NS)
    window_ns = round(s["window_seconds"] * NS)
    look = max(math.ceil(window_ns / stride_ns), s["min_windows"])
    horizon = 2 * look
    pad_ns = round(3 * s["refine_lta"] * NS) if s["pick_method"] == "stalta" else 0
    return {"look": look, "horizon": horizon, "pad_ns": pad_ns,
            "before_ns": 2 * stride_ns + pad_ns, "after_ns": window_ns + (horizon + 1) * stride_ns}


def _detect_interval(archive, task: dict, k0: int, k1: int, s: dict, model_path: str):
    """Probabilities of the windows ``k0 ≤ k < k1`` of the task's day and the picks of their triggers.

    The picks are those of the triggers that start among these windows (module docstring, steps 1–3 and
    5). Each depends only on the data within :func:`context`'s reach of its window, never on where the
    interval begins or ends. Returns ``(probs, picks, computed)``.
    """
    rate = s["sampling_rate"]
    n_win = round(s["window_seconds"] * rate)
    stride_ns = round(s["stride_seconds"] * NS)
    stride = round(s["stride_seconds"] * rate)
    window_ns = round(s["window_seconds"] * NS)
    day0 = task["day"] * DAY_NS
    n_span = k1 - k0
    ctx = context(s)
    look, horizon, pad_ns = ctx["look"], ctx["horizon"], ctx["pad_ns"]
    first_ns = day0 + (k0 - look) * stride_ns  # first window start evaluated
    read_lo = first_ns - pad_ns
    n_all = look + n_span + horizon
    read_hi = first_ns + (n_all - 1) * stride_ns + window_ns
    comps = np.full((3, round((read_hi - read_lo) * rate / NS)), np.nan, dtype=np.float32)
    for k, comp in enumerate(COMPONENTS):
        cid = task["channels"].get(comp)
        if cid is not None:
            comps[k] = read_component(archive, cid, read_lo, read_hi, rate,
                                      despike_factor=s["despike"])[: comps.shape[1]]
    pad = round(pad_ns * rate / NS)
    starts = pad + np.arange(n_all) * stride
    # a component is complete in a window when none of its samples is NaN (cumulative NaN counts)
    nan_cum = np.concatenate((np.zeros((3, 1), np.int64), np.cumsum(np.isnan(comps), axis=1)), axis=1)
    complete = (nan_cum[:, starts + n_win] - nan_cum[:, starts]) == 0  # (3, n_all)
    valid = complete.any(axis=0)
    probs = np.full(n_all, np.nan, dtype=np.float32)
    idx = np.flatnonzero(valid)
    if len(idx):
        scorer = _scorer(model_path, s)
        filled = np.nan_to_num(comps, nan=0.0)
        view = np.lib.stride_tricks.sliding_window_view(filled, n_win, axis=1)  # (3, positions, n_win)
        chunk = max(1, s["batch_size"]) * 8
        for a in range(0, len(idx), chunk):
            sel = idx[a:a + chunk]
            w = np.transpose(view[:, starts[sel], :], (1, 0, 2)).astype(np.float64)  # (b, 3, n_win)
            w -= w.mean(axis=-1, keepdims=True)
            present = complete[:, sel].T
            w[~present] = 0.0
            probs[sel] = scorer(w.astype(np.float32), present)
    # picks: runs of ≥ min_windows windows with P ≥ threshold that start in [k0, k1)
    above = np.nan_to_num(probs, nan=0.0) >= s["threshold"]
    picks = []
    for a, b in runs(above):
        if b - a < s["min_windows"] or not look <= a < look + n_span:
            continue
        b = min(b, a + horizon)
        w_start = first_ns + a * stride_ns
        t_pick, method = w_start + round(s["pick_offset_seconds"] * NS), "window"
        if s["pick_method"] == "stalta" and task["channels"].get("Z"):
            # the STA/LTA of this pick's own stretch (pad of warm-up, then [window start − stride, window end))
            lo = starts[a] - stride
            cf = _stalta_cf(comps[0, lo - pad:starts[a] + n_win], rate, s)[pad:]
            hit = np.flatnonzero(cf >= s["refine_thr"])
            if len(hit):
                t_pick = read_lo + round((lo + hit[0]) * NS / rate)
                method = "stalta"
        picks.append({"station": task["station"], "channel": task["channels"].get("Z") or
                      next(iter(task["channels"].values())), "time": iso_ns(t_pick), "time_ns": int(t_pick),
                      "window_start": iso_ns(w_start), "windows": int(b - a),
                      "probability": round(float(np.nanmax(probs[a:b])), 4), "method": method})
    return probs[look:look + n_span], picks, len(idx)


def detect_station_day(task: dict, store_url: str, store_options: dict, model_path: str, s: dict) -> dict:
    """Probabilities and picks of one station-day's missing window intervals (module docstring, steps 1–5).

    Writes the probabilities and the manifest record (merged with ``task["previous"]``, the record of
    earlier intervals with the same fingerprint); returns the record.

    ``task``: ``station``, ``day`` (days since 1970), ``channels`` ({component letter: channel id}),
    ``fingerprint``, ``intervals`` (``[[k0, k1], ...]``: window indices of the day to compute),
    ``previous`` (None, or the record whose ``spans`` these intervals complete) and ``station_days`` (the
    station's data time in the day, for the record).
    """
    from seisgrid.seismic.store import Archive

    t_start = time.perf_counter()
    _set_threads(s["device"])
    stride_ns = round(s["stride_seconds"] * NS)
    day0 = task["day"] * DAY_NS
    n_day = DAY_NS // stride_ns
    archive = Archive(s["archive_url"], storage_options=s["archive_options"])
    previous = task.get("previous")
    root = storage.open_group(store_url, mode="a", options=store_options, use_consolidated=False)
    group = root.require_group(task["station"])
    label = day_label(task["day"])
    if previous is not None and label in group:
        arr = cast("zarr.Array", group[label])  # earlier intervals stay; NaN elsewhere
    else:
        arr = group.create_array(
            label, shape=(n_day,), dtype="float32", chunks=(n_day,), fill_value=np.nan, overwrite=True,
            dimension_names=["window"],
            attributes={"start": iso_ns(day0), "start_ns": int(day0), "stride_seconds": s["stride_seconds"],
                        "window_seconds": s["window_seconds"],
                        "long_name": "P(earthquake) of the window starting at start + k × stride; NaN: not evaluated"})
        previous = None
    spans = list(previous["spans"]) if previous else []
    evaluated = list(previous["evaluated"]) if previous else []
    picks = list(previous["picks"]) if previous else []
    invalid = task.get("invalid") or []
    if previous is not None and invalid:  # windows that read data changed since: forgotten, then recomputed
        spans = [iv for a, b in spans for iv in subtract(a, b, invalid)]
        evaluated = [iv for a, b in evaluated for iv in subtract(a, b, invalid)]
        picks = [p for p in picks if not overlap(invalid, (k := _window_of(p, task["day"], stride_ns)), k + 1)]
        for a, b in invalid:
            arr[a:b] = np.nan
    computed = 0
    for k0, k1 in task["intervals"]:
        probs, new_picks, n = _detect_interval(archive, task, k0, k1, s, model_path)
        arr[k0:k1] = probs
        spans.append([k0, k1])
        evaluated += [[k0 + a, k0 + b] for a, b in runs(np.isfinite(probs))]
        picks += new_picks
        computed += n
    above = int((np.asarray(arr[:]) >= s["threshold"]).sum())
    evaluated = merge(evaluated)
    n_evaluated = overlap(evaluated, 0, n_day)
    record = {"station": task["station"], "day": label, "fingerprint": task["fingerprint"],
              "channels": task["channels"], "inputs": task["inputs"], "windows": int(n_day), "spans": merge(spans),
              "evaluated": evaluated, "windows_evaluated": n_evaluated, "windows_computed": computed,
              "above_threshold": above, "station_days": task.get("station_days"),
              "picks": sorted(picks, key=lambda p: p["time_ns"]),
              "seconds": round(time.perf_counter() - t_start, 3), "device": s["device"]}
    manifest.write_record(store_url, store_options, "days", task["station"], label, record)
    return record


# ------------------------------------------------------------------------------------------ driver
def _sha1_file(path: str, cfg: dict | None = None) -> str:
    """SHA-1 of a detector: its file and ``.json`` when they exist, and its config."""
    fs, fpath = storage.filesystem(path)
    h = hashlib.sha1(json.dumps(cfg or {}, sort_keys=True, default=str).encode())
    for name in (fpath, fpath + ".json"):
        if fs.isfile(name):
            with fs.open(name, "rb") as f:
                while block := f.read(1 << 22):
                    h.update(block)
    return h.hexdigest()


def _default_probabilities_url(out_catalog) -> str:
    from seisgrid.seismic.catalog import stem

    return stem(out_catalog) + ".probabilities.zarr"


def _open_probabilities(url: str, options: dict, meta: dict):
    # writers read every node's own metadata: the consolidated copy at the root is for readers (xarray)
    root = storage.open_group(url, mode="a", options=options, use_consolidated=False)
    kind = root.attrs.get("kind")
    if kind not in (None, STORE_KIND):
        raise SeisgridError(f"{url}: is a {kind!r} store, not a probabilities store; choose another "
                            "--probabilities path")
    if kind is None and list(root.keys()):
        raise SeisgridError(f"{url}: is a Zarr store seisgrid did not create; choose another --probabilities path")
    root.attrs.update({"kind": STORE_KIND, **meta})
    root.require_group(f"{MANIFEST}/days")
    return root


def scorer_config(model_path: str, method: str | None = None) -> tuple[str, dict]:
    """``(method, config)`` of a detector file.

    The file is a classifier checkpoint (``"model"``) or a forest saved by ``seisgrid evaluate --out``
    (``"forest"``, recognised by its ``.json``); ``method`` None: from the file.
    """
    fs, fpath = storage.filesystem(model_path)
    try:
        with fs.open(fpath + ".json", "r") as f:
            cfg = json.load(f)
    except FileNotFoundError as exc:
        raise SeisgridError(f"{model_path}: no detector there (a checkpoint of `seisgrid train` or a forest of "
                            "`seisgrid evaluate --out DIR`, each with its .json)") from exc
    kind = "forest" if cfg.get("kind") == "seisgrid.forest" else "model"
    if method is not None and method != kind:
        raise ConfigError(f"detect: --method {method} but {model_path} is a "
                          + ("saved Random Forest; use --method forest" if kind == "forest" else
                             "classifier checkpoint; use --method model"))
    if kind == "model":
        from seisgrid.seismic import models

        _, cfg = models.load_checkpoint(model_path, "cpu")  # fails early on a broken checkpoint
        if int(cfg.get("in_channels", len(COMPONENTS))) != len(COMPONENTS):
            raise ConfigError(f"{model_path}: the model takes {cfg['in_channels']}-component images, detection "
                              f"makes {len(COMPONENTS)}-component ({', '.join(COMPONENTS)}) ones; train it on a "
                              f"spectrogram store of {len(COMPONENTS)} components")
    elif not fs.exists(fpath):
        raise SeisgridError(f"{model_path}: the forest's .json is there but not the forest itself")
    return kind, cfg


def detect_stalta(store_url: str | os.PathLike, out_catalog: str | os.PathLike, *,
                  start: str | obspy.UTCDateTime | None = None, end: str | obspy.UTCDateTime | None = None,
                  client: Client | LazyClient | None = None, storage_options: dict | None = None,
                  min_stations: float | None = None) -> dict:
    """The STA/LTA + coincidence baseline over a whole archive, written as a catalog like :func:`detect`'s.

    Recursive STA/LTA per station-day and ObsPy's ``coincidence_trigger`` across stations
    (:func:`seisgrid.seismic.stalta.detect_archive`, settings ``seisgrid.stalta.archive_*``); every
    network trigger becomes an unlocated event (:func:`seisgrid.seismic.catalog.from_stalta`).

    Parameters
    ----------
    store_url : str
        Ingested waveform store, path or URL.
    out_catalog : str
        Catalog path: ``STEM.xml`` (QuakeML), ``STEM.csv`` and ``STEM.json`` are written.
    start, end : str, optional
        Triggers starting in ``[start, end)`` (default: the whole store).
    client : distributed.Client or LazyClient, optional
        Cluster for the station-day tasks; None: in this process.
    storage_options : dict, optional
        fsspec options of the store (default: from the configuration).
    min_stations : float, optional
        Coincidence sum of a network trigger (default ``seisgrid.stalta.min_stations``, 3). A store with
        fewer stations is warned about (``warnings``).

    Returns
    -------
    dict
        ``method`` ("stalta"), ``n_events``, ``events``, ``catalog`` (paths), ``station_days`` (module
        docstring: data time), ``station_triggers``, ``seconds``, ``warnings`` and the trigger run's counts
        (``tasks``, ...).
    """
    from seisgrid.seismic.catalog import from_stalta, write_catalog
    from seisgrid.seismic.stalta import detect_archive

    t0 = time.perf_counter()
    triggers, info = detect_archive(store_url, start, end, client=client, storage_options=storage_options,
                                    return_info=True, min_stations=min_stations)
    events = from_stalta(triggers)
    info["seconds"] = round(time.perf_counter() - t0, 3)
    paths = write_catalog(events, out_catalog, summary={"method": "stalta", **info}, method="stalta")
    return {"method": "stalta", "n_events": len(events), "catalog": paths, "events": events, **info}


def detect(store_url: str | os.PathLike, model_path: str | os.PathLike | None = None,
           out_catalog: str | os.PathLike | None = None, *,
           stations: str | os.PathLike | list[dict] | dict | None = None, window_seconds: float | None = None,
           stride_seconds: float | None = None, batch_size: int | None = None, threshold: float | None = None,
           min_windows: int | None = None, pick_method: str | None = None,
           pick_offset_seconds: float | None = None, device: str | None = None,
           client: Client | LazyClient | None = None, progress: bool = True,
           probabilities_url: str | os.PathLike | None = None, start: str | obspy.UTCDateTime | None = None,
           end: str | obspy.UTCDateTime | None = None, min_stations: int | None = None,
           velocity_kms: float | None = None, tolerance_seconds: float | None = None,
           max_travel_seconds: float | None = None, method: str | None = None, store_engine: str | None = None,
           **options: float | str) -> dict:
    """Detect earthquakes in an ingested waveform store with a trained model and write a catalog.

    See the module docstring for windows, probabilities, picks, resumption and the task layout.

    Parameters
    ----------
    store_url : str
        Ingested waveform store (``seisgrid ingest``), path or ``s3://`` URL.
    model_path : str
        Not used with ``method="stalta"``. Checkpoint written by ``save_checkpoint`` (weights + ``.json``
        config), or a Random Forest saved by ``seisgrid evaluate --out DIR`` (``DIR/forest.joblib`` +
        ``.json``; joblib is pickle: only files you made or trust).
    out_catalog : str
        Catalog path: ``STEM.xml`` (QuakeML), ``STEM.csv`` and ``STEM.json`` (summary) are written.
    stations : str, list or dict, optional
        Station coordinates for association windows from distances and for locating events; without them
        events are not located. A CSV such as ``stations.csv`` of ``seisgrid synth`` or
        ``Stations_Rutford.txt`` (``Name``, ``Latitude``, ``Longitude``), matched on ``NET.STA`` or else on
        the station code (:func:`seisgrid.seismic.stationdata.station_coordinates`).
    window_seconds : float, optional
        Window length; default the model's (25 s). Another value than the model's is refused.
    stride_seconds : float, optional
        Step between window starts (default ``seisgrid.detect.stride_seconds``, 5 s); must divide a day.
    batch_size : int, optional
        Windows per model batch.
    threshold : float, optional
        Trigger threshold on P(earthquake) (default: the checkpoint's or forest's ``threshold``, else 0.5).
    min_windows : int, optional
        Consecutive windows ≥ threshold for a station trigger.
    pick_method : {"stalta", "window"}, optional
    pick_offset_seconds : float, optional
        Offset of window picks from the window start (default: the model's ``pre_p_seconds``, else 8).
    device : str, optional
        Torch device of the tasks (default: ``cuda`` when available, else ``cpu``; a forest runs on the CPU).
    client : distributed.Client or LazyClient, optional
        Cluster for the station-day tasks; None: in this process.
    progress : bool
        Progress bar on stderr.
    probabilities_url : str, optional
        Zarr store of probabilities and the manifest (default ``STEM.probabilities.zarr``).
    store_engine : {"zarr", "icechunk"}, optional
        How the probabilities store is written (default ``seisgrid.storage.engine``): plain Zarr, or an
        Icechunk repository to which the run publishes all of its station-days at once (``version`` in
        the result). The archive is read either way (plain or Icechunk, its latest version).
    start, end : str or UTCDateTime, optional
        Exact span: the windows starting in ``[start, end)`` that overlap data are evaluated and the
        triggers starting among them reported (default: all the data). One task per station-day with data;
        windows of a station-day evaluated before (same fingerprint) are not computed again.
    min_stations, velocity_kms, tolerance_seconds, max_travel_seconds : optional
        Association (:func:`seisgrid.seismic.associate.associate`). With ``method="stalta"``,
        ``min_stations`` is the coincidence sum (default ``seisgrid.stalta.min_stations``).
    method : {"model", "forest", "stalta"}, optional
        What ``model_path`` is (default: recognised from its ``.json``); a mismatch is refused.
        ``"stalta"``: the STA/LTA baseline (:func:`detect_stalta`; no model, only ``start``/``end``).
    **options
        ``refine_freqmin``, ``refine_freqmax``, ``refine_sta``, ``refine_lta``, ``refine_thr``, ``despike``
        (:func:`seisgrid.seismic.stationdata.despike`; 0: off), ``associator`` (``pyocto`` or ``grid``) and the
        location options ``p_velocity_kms``, ``depth_km``, ``grid_radius_km``, ``grid_step_km``,
        ``location_sigma_seconds``, ``location_confidence`` (:func:`seisgrid.seismic.associate.associate`).

    Returns
    -------
    dict
        ``events`` (list of event dicts), ``n_events``, ``picks``, ``catalog`` (paths), ``probabilities``,
        ``tasks_run``, ``tasks_skipped``, ``station_days`` (data time in the span, module docstring),
        ``station_triggers`` (picks), ``warnings``, ``windows_evaluated`` (in the span), ``windows``
        (computed now), ``seconds``, ``windows_per_s``, ``method``, ``start``, ``end``, ``settings`` and
        ``tasks`` (per station-day summaries of the tasks run now).
    """
    if method == "stalta":  # before the model's imports: the baseline needs no torch
        model_only = {"model_path": model_path, "stations": stations, "window_seconds": window_seconds,
                      "stride_seconds": stride_seconds, "batch_size": batch_size, "threshold": threshold,
                      "min_windows": min_windows, "pick_method": pick_method,
                      "pick_offset_seconds": pick_offset_seconds, "device": device,
                      "probabilities_url": probabilities_url, "min_stations": min_stations,
                      "velocity_kms": velocity_kms, "tolerance_seconds": tolerance_seconds,
                      "max_travel_seconds": max_travel_seconds, "store_engine": store_engine, **options}
        return _stalta_baseline(store_url, out_catalog, start, end, client, model_only)
    if not model_path or not out_catalog:
        raise ConfigError(f"detect --method {method or 'model'}: needs model_path (--model: a checkpoint of "
                          "seisgrid train, or DIR/forest.joblib of seisgrid evaluate --out DIR for --method forest) "
                          "and out_catalog (--out)")
    from seisgrid.seismic import models
    from seisgrid.seismic.associate import associate
    from seisgrid.seismic.catalog import write_catalog
    from seisgrid.seismic.store import Archive

    t0 = time.perf_counter()
    refine_keys = ("refine_freqmin", "refine_freqmax", "refine_sta", "refine_lta", "refine_thr", "despike")
    locate_keys = ("p_velocity_kms", "depth_km", "grid_radius_km", "grid_step_km", "location_sigma_seconds",
                   "location_confidence")
    unknown = sorted(set(options) - set(refine_keys) - set(locate_keys) - {"associator", "precision"})
    if unknown:
        raise ConfigError(f"detect: unknown options {unknown}")
    if method not in (None, *SCORERS):
        raise ConfigError(f"detect: method {method!r}: expected one of {[*SCORERS, 'stalta']}")
    model_path = str(model_path)
    if method in SCORER_CONFIGS:
        model_path, cfg = SCORER_CONFIGS[method](model_path)
    else:
        method, cfg = scorer_config(model_path, method)
    ms = model_settings(cfg)
    if window_seconds is not None and not math.isclose(float(window_seconds), ms["window_seconds"]):
        raise ConfigError(f"detect: window_seconds={window_seconds} but the model was trained on "
                          f"{ms['window_seconds']} s windows; leave it unset")
    stride = float(_opt("stride_seconds", stride_seconds))
    stride_ns = round(stride * NS)
    if (stride <= 0 or DAY_NS % stride_ns
            or abs(stride * ms["sampling_rate"] - round(stride * ms["sampling_rate"])) > 1e-9):
        raise ConfigError(f"detect: stride_seconds={stride}: must be > 0, divide a day and be a whole number "
                          f"of samples at {ms['sampling_rate']} Hz")
    thr = threshold if threshold is not None else _opt("threshold", None)
    thr = float(thr if thr is not None else (ms["threshold"] if ms["threshold"] is not None else 0.5))
    pick = str(_opt("pick_method", pick_method))
    if pick not in PICK_METHODS:
        raise ConfigError(f"detect: pick_method {pick!r}: expected one of {list(PICK_METHODS)}")
    offset = _opt("pick_offset_seconds", pick_offset_seconds)
    offset = float(offset if offset is not None else (ms["pre_p_seconds"] if ms["pre_p_seconds"] is not None
                                                      else config.get("windows.pre_p_seconds", 8.0)))
    archive_options = storage.storage_options(str(store_url))
    settings = {
        "method": method,
        "archive_url": str(store_url), "archive_options": archive_options,
        "sampling_rate": ms["sampling_rate"], "window_seconds": ms["window_seconds"], "stride_seconds": stride,
        "spectrogram": dataclasses.asdict(ms["spectrogram"]), "earthquake_index": ms["earthquake_index"],
        "threshold": thr, "min_windows": int(_opt("min_windows", min_windows)), "pick_method": pick,
        "pick_offset_seconds": offset,
        "batch_size": int(_opt("batch_size", batch_size)),
        "device": "cpu" if method == "forest" else str(models.pick_device(_opt("device", device))),
        "precision": "fp32" if method == "forest" else models.pick_precision(
            _opt("precision", options.get("precision")), models.pick_device(_opt("device", device))),
        **{k: float(_opt(k, options.get(k))) for k in refine_keys},
        "model_fingerprint": _sha1_file(model_path, cfg),
    }
    if method == "forest":
        settings["forest_features_from"] = str(cfg.get("features_from", "spectrograms"))
        settings["forest_bands"] = int(cfg.get("bands") or config.get("forest.bands", 8))
    if settings["batch_size"] < 1 or settings["min_windows"] < 1:
        raise ConfigError("detect: batch_size and min_windows must be ≥ 1")
    prob_url = str(probabilities_url or _default_probabilities_url(out_catalog))
    public = {k: v for k, v in settings.items() if k not in ("archive_options",)}
    engine = versioned.resolve_engine(store_engine)
    with versioned.publishing(prob_url, storage.storage_options(prob_url), engine,
                              f"seisgrid detect {store_url}") as (prob_options, run):
        prob_root = _open_probabilities(prob_url, prob_options, {"model": model_path, "settings": public})

        archive = Archive(store_url, storage_options=archive_options)
        stations_channels = station_channels(archive, COMPONENTS)
        require_channels(stations_channels, store_url, COMPONENTS)
        lo_ns = obspy.UTCDateTime(start).ns if start is not None else None
        hi_ns = obspy.UTCDateTime(end).ns if end is not None else None
        if lo_ns is not None and hi_ns is not None and hi_ns <= lo_ns:
            raise ConfigError(f"detect: end {end} is not after start {start}")
        # the fingerprint covers the whole station-day (settings, model, input segments), whatever the span:
        # intervals of one day computed by runs over different spans fit together
        fp_settings = {k: v for k, v in public.items() if k not in ("device", "batch_size", "archive_url")}
        fp_settings["record_format"] = RECORD_FORMAT
        done = {(r.get("station"), r.get("day")): r
                for r in manifest.read_records(prob_url, prob_options, "days").values()
                if "fingerprint" in r and "spans" in r}
        tasks, records, wanted = _plan_tasks(archive, stations_channels, lo_ns, hi_ns, stride_ns, ms, settings,
                                             fp_settings, done)
        for station in sorted({task["station"] for task in tasks}):  # made here, not raced by the tasks
            prob_root.require_group(station)
        logger.info("detect: %d station-day tasks to run, %d done before", len(tasks), len(records))
        failures: list[dict] = []
        new = [r for r in versioned.run_tasks(run, client, detect_station_day, tasks,
                                              (prob_url, prob_options, model_path, settings), "detect",
                                              unit="station-day", progress=progress, failures=failures)
               if r is not None]
        tasks_failed = [{"station": f["item"]["station"], "day": day_label(f["item"]["day"]), "error": f["error"]}
                        for f in failures]
        # xr.open_zarr(probabilities, group="NET.STA") opens a station's days without listing the store
        storage.consolidate_metadata(prob_url, prob_options, exclude=(MANIFEST,))
        manifest.merge_records(prob_url, prob_options, "days")  # one manifest object per station from now on
        version = run.commit() if run is not None else None  # icechunk: published at once, or not at all
        all_records = sorted(records + new, key=lambda r: (r["station"], r["day"]))
        picks, evaluated = _picks_in_span(all_records, wanted, stride_ns)
        need = _opt("min_stations", min_stations)
        warnings = check_stations(len(stations_channels), float(need), f"detect --method {method}",
                                  "--min-stations (seisgrid.detect.min_stations)")
        coords = station_coordinates(stations, stations_channels) if stations is not None else None
        events = associate(picks, coords, min_stations=min_stations, velocity_kms=velocity_kms,
                           tolerance_seconds=tolerance_seconds, max_travel_seconds=max_travel_seconds,
                           associator=None if options.get("associator") is None else str(options["associator"]),
                           **cast("LocateOptions", {k: options[k] for k in locate_keys if k in options}))
        for ev in events:
            for p in ev["picks"]:
                p.pop("time_ns", None)
        station_days = round(sum(data_days(archive, stations_channels, lo_ns, hi_ns).values()), 6)
        windows_now = int(sum(r["windows_computed"] for r in new))
        seconds = time.perf_counter() - t0
        summary = {
            "store": str(store_url), "model": model_path, "method": method, "probabilities": prob_url,
            "start": None if lo_ns is None else iso_ns(lo_ns), "end": None if hi_ns is None else iso_ns(hi_ns),
            "n_events": len(events), "picks": len(picks), "tasks_run": len(tasks), "tasks_skipped": len(records),
            "tasks_failed": tasks_failed,
            "station_days": station_days, "station_triggers": len(picks), "warnings": warnings,
            "windows_evaluated": evaluated,
            "windows": windows_now, "seconds": round(seconds, 3),
            "windows_per_s": round(windows_now / seconds, 1) if windows_now and seconds > 0 else None,
            "settings": {k: v for k, v in public.items() if k != "model_fingerprint"},
            **({"store_engine": engine, "version": version} if run is not None else {}),
        }
        paths = write_catalog(events, out_catalog, summary=summary, method="resnet" if method == "model" else method)
        return {**summary, "catalog": paths, "events": events,
                "tasks": [{k: v for k, v in r.items() if k not in ("picks", "evaluated")} | {"picks": len(r["picks"])}
                          for r in new]}


def _stalta_baseline(store_url, out_catalog, start, end, client, model_only: dict) -> dict:
    """``detect(method="stalta")``: refuse the settings of the model and forest, then :func:`detect_stalta`.

    ``min_stations`` is the coincidence sum there (the stations an event needs, as in association).
    """
    min_stations = model_only.pop("min_stations", None)
    given = sorted(k for k, v in model_only.items() if v is not None)
    if given:
        raise ConfigError(f"detect --method stalta: {given} apply to the model and forest only; the STA/LTA "
                          "baseline takes its settings from seisgrid.stalta.archive_*")
    if not out_catalog:
        raise ConfigError("detect: out_catalog (--out) is required")
    return detect_stalta(store_url, out_catalog, start=start, end=end, client=client, min_stations=min_stations)


def _plan_tasks(archive, stations_channels: dict, lo_ns, hi_ns, stride_ns: int, ms: dict, settings: dict,
                fp_settings: dict, done: dict) -> tuple[list[dict], list[dict], dict]:
    """The station-day tasks of the span, the records reused as they are and the windows wanted per day.

    Only days with windows inside the station's data get a task, and only those windows are
    computed (intervals of the day); ``wanted`` maps ``(station, day label)`` to ``(day, k0, k1)``, the
    windows of the day starting in the span. A record in ``done`` with the day's fingerprint (detector,
    settings, channels) keeps its windows except those whose data changed since (``invalid``: the blocks
    of :meth:`~seisgrid.seismic.store.Archive.content_blocks` within :func:`context`'s reach); the data
    windows of the span outside what it keeps are computed (none: the record is reused, no task).
    Otherwise the day starts afresh (module docstring, step 4).
    """
    tasks, records, wanted = [], [], {}
    window_ns = int(ms["window_seconds"] * NS)
    reach = context(settings)
    blocks = archive.content_blocks()
    for station, channels in stations_channels.items():
        spans = data_spans(archive, channels.values())
        for day, data_iv in data_windows(spans, window_ns, stride_ns).items():
            k0, k1 = window_range(day, lo_ns, hi_ns, stride_ns)
            todo = merge([max(a, k0), min(b, k1)] for a, b in data_iv)
            if not todo:
                continue
            wanted[(station, day_label(day))] = (day, k0, k1)
            read = (day * DAY_NS - reach["before_ns"], (day + 1) * DAY_NS + reach["after_ns"])
            inputs = {cid: [list(b) for b in blocks.get(cid, []) if b[0] < read[1] and b[1] > read[0]]
                      for _, cid in sorted(channels.items())}
            fingerprint = hashlib.sha1(json.dumps([station, day, channels, fp_settings], sort_keys=True,
                                                  default=str).encode()).hexdigest()
            previous = done.get((station, day_label(day)))
            invalid: list[list[int]] = []
            if previous and previous["fingerprint"] == fingerprint:
                invalid = invalid_windows(changed_spans(previous.get("inputs", {}), inputs), day, stride_ns, reach)
                kept = [iv for a, b in previous["spans"] for iv in subtract(a, b, invalid)]
                missing = merge(iv for a, b in todo for iv in subtract(a, b, kept))
                if not missing and not invalid:
                    records.append(previous)
                    continue
            else:
                previous, missing = None, todo
            day_data = sum(min(b, (day + 1) * DAY_NS) - max(a, day * DAY_NS) for a, b in spans
                           if a < (day + 1) * DAY_NS and b > day * DAY_NS)
            tasks.append({"station": station, "day": day, "channels": channels, "fingerprint": fingerprint,
                          "inputs": inputs, "intervals": missing, "invalid": invalid, "previous": previous,
                          "station_days": round(day_data / DAY_NS, 6)})
    return tasks, records, wanted


def _picks_in_span(records: list[dict], wanted: dict, stride_ns: int) -> tuple[list[dict], int]:
    """The records' picks whose first window starts in the span, and the windows evaluated in the span."""
    picks, evaluated = [], 0
    for r in records:  # only what lies in the span: a record may cover more of its day
        day, k0, k1 = wanted[(r["station"], r["day"])]
        evaluated += overlap(r["evaluated"], k0, k1)
        picks += [p for p in r["picks"] if k0 <= _window_of(p, day, stride_ns) < k1]
    return picks, evaluated


__all__ = ["SCORERS", "SCORER_CONFIGS", "ForestScorer", "ModelScorer", "detect", "detect_stalta", "detect_station_day",
           "model_settings", "probabilities", "scorer_config"]
