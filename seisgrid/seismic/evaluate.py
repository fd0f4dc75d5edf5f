"""``seisgrid evaluate``: every method on the same test windows → metrics, the study's table, figures.

STA/LTA scores the waveforms of the labelled-window store; the Random Forest uses the spectrogram
store's images when one is given (else spectrograms computed from the waveforms, see
:func:`seisgrid.seismic.forest.waveform_images`). Models and the STA/LTA threshold are fitted on the ``train``
windows of the chosen split column, the forest's probability threshold on its ``val`` windows (unless
``forest.threshold`` is set), and all are applied to its ``test`` windows; the test labels are used
only for scoring. Processing cost is timed on the test windows only (STA/LTA: filter + CF + score;
forest: features from the images + prediction — the spectrogram computation itself is timed only
when the forest makes its own spectrograms) and converted with
:func:`seisgrid.seismic.metrics.hours_per_year`. With ``out_dir`` the fitted forest is saved as
``forest.joblib`` (+ ``.json``) for ``seisgrid detect --method forest``.
"""

from __future__ import annotations

import logging
import math
import pathlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.seismic import forest as forest_mod
from seisgrid.seismic import metrics
from seisgrid.seismic import stalta as stalta_mod
from seisgrid.seismic.windowstore import open_dataset

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

NAMES = {"stalta": "STA/LTA", "forest": "Random Forest", "resnet": "ResNet"}
RESNET_NAMES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50"}


def _resnet_paths(methods) -> list[str]:
    """Checkpoint paths of the ``resnet:PATH`` entries of ``methods``."""
    return [m.split(":", 1)[1] for m in methods if m.startswith("resnet:")]


def open_windows(url: str | os.PathLike) -> xr.Dataset:
    """A labelled-window or spectrogram store as a lazy Dataset."""
    return open_dataset(url, "window/spectrogram store", "seisgrid windows", ("label",), consolidated=False)


def _cores(client) -> int:
    if client is None:
        return 1
    return int(sum(client.nthreads().values()))


def _nan_to_none(x):
    return None if isinstance(x, float) and math.isnan(x) else x


def evaluate(windows_url: str | os.PathLike, spectrograms_url: str | os.PathLike | None = None,
             methods: Sequence[str] = ("stalta", "forest"), split: str = "split_region",
             client: Client | LazyClient | None = None, out_dir: str | os.PathLike | None = None,
             stride_seconds: float | None = None, stalta_options: dict | None = None,
             forest_options: dict | None = None, timing_windows: int = 2048) -> dict:
    """Run each method on the same test windows and report precision, recall, FPR, F1, hours per year.

    Parameters
    ----------
    windows_url : str
        Labelled-window store (``docs/windows-schema.md``).
    spectrograms_url : str, optional
        Spectrogram store of the same windows (same order) for the forest.
    methods : sequence of {"stalta", "forest", "resnet:PATH"}
        ``resnet:PATH``: a checkpoint written by ``seisgrid train`` (any architecture), scored on the
        spectrogram store's images (``spectrograms_url`` is then required) with the threshold saved in
        the checkpoint (tuned on val at training time); several may be given.
    split : str
        Split column: ``split`` or ``split_region`` (cross-region: held-out region is ``test``).
    client : distributed.Client or LazyClient, optional
        Cluster; default in-process with the synchronous scheduler (1 core).
    out_dir : str, optional
        Folder for ``results.md``, ``pr_curves.png`` and ``spectrograms.png``, and with ``forest`` the
        fitted forest ``forest.joblib`` (+ ``.json``: threshold, features, image settings) that
        ``seisgrid detect --method forest --model DIR/forest.joblib`` runs over an archive; none written
        when None.
    stride_seconds : float, optional
        Window step assumed when scanning a year (default half the window length).
    timing_windows : int
        Throughput is timed over at least this many windows (the test windows repeated).
    stalta_options, forest_options : dict, optional
        Settings for :func:`seisgrid.seismic.stalta.window_scores` /
        :func:`~seisgrid.seismic.forest.train_forest`.

    Returns
    -------
    dict
        ``methods`` (list of dicts: ``name``, ``precision``, ``recall``, ``fpr``, ``f1``,
        ``hours_per_year``, confusion counts, ``threshold``, timing), ``table`` (Markdown),
        ``figures`` (paths), ``split``, ``train_windows``, ``test_windows``, ``definition``.
    """
    import dask

    from seisgrid.cluster import resolve_client

    unknown = sorted(m for m in set(methods) - {"stalta", "forest"} if not (m.startswith("resnet:") and m[7:]))
    if unknown:
        raise ConfigError(f"methods {unknown}: unknown; expected some of stalta, forest, resnet:CHECKPOINT")
    ds = open_windows(windows_url)
    if split not in ds:
        raise SeisgridError(f"{windows_url}: no split column {split!r}; expected 'split' or 'split_region'")
    splits = np.asarray(ds[split].values, dtype=object).astype(str)  # Zarr v3 strings read as StringDType
    labels = ds["label"].values.astype(np.int8)
    train = np.flatnonzero(splits == "train")
    test = np.flatnonzero(splits == "test")
    if not len(train) or not len(test):
        raise SeisgridError(f"{windows_url}: split {split!r} has {len(train)} train and {len(test)} test windows; "
                            "both are needed")
    rate = float(ds.attrs.get("sampling_rate", 100.0))
    window_seconds = float(ds.attrs.get("window_seconds", ds.sizes["sample"] / rate))
    stride = window_seconds / 2 if stride_seconds is None else float(stride_seconds)
    client = resolve_client(client)  # a LazyClient starts here, after the inputs were checked
    cores = _cores(client)
    y_test = labels[test]
    # Throughput is timed on at least `timing_windows` windows (the test windows repeated) so fixed
    # costs (thread pools, model start-up) do not dominate a small test set; the metrics use the
    # first pass over the test windows only.
    timing = np.resize(test, max(len(test), int(timing_windows)))
    sched: dict[str, Any] = {} if client is not None else {"scheduler": "synchronous"}
    results, curves, points = [], {}, {}

    with dask.config.set(**sched):
        if "stalta" in methods:
            opts = dict(stalta_options or {})
            train_scores = stalta_mod.score_dataset(ds.isel(window=train), client=client, **opts)
            threshold = stalta_mod.tune_threshold(train_scores, labels[train])
            t0 = time.perf_counter()
            test_scores = stalta_mod.score_dataset(ds.isel(window=timing), client=client, **opts)[:len(test)]
            seconds = time.perf_counter() - t0
            pred = stalta_mod.predict(test_scores, threshold)
            results.append(_row("stalta", y_test, pred, seconds, len(timing), window_seconds, stride, cores,
                                threshold=threshold, timed="bandpass + STA/LTA + window score"))
            curves["STA/LTA"] = (y_test, test_scores)

        if "forest" in methods:
            opts = dict(forest_options or {})
            threshold = opts.pop("threshold", None)
            threshold = forest_mod.config.get("forest.threshold") if threshold is None else threshold
            fds = _forest_dataset(ds, labels, spectrograms_url, windows_url)
            lazy_train = forest_mod.dataset_features(fds.isel(window=train), bands=opts.get("bands"))
            feats_train = np.asarray(client.compute(lazy_train).result() if client else lazy_train.compute())
            model = forest_mod.train_forest(feats_train, labels[train],
                                            **{k: v for k, v in opts.items() if k != "bands"})
            val = np.flatnonzero(splits == "val")
            threshold_source = "forest.threshold"
            if threshold is None and len(val) and len(np.unique(labels[val])) == 2:
                # tuned on held-out val windows: on its own train windows the forest is near perfect
                feats_val = forest_mod.dataset_features(fds.isel(window=val), bands=opts.get("bands"))
                threshold = stalta_mod.tune_threshold(forest_mod.predict_proba(model, feats_val, client=client),
                                                      labels[val])
                threshold_source = "max F1 on val"
            elif threshold is None:
                threshold, threshold_source = 0.5, "0.5 (no val windows of both classes to tune on)"
            threshold = float(threshold)
            t0 = time.perf_counter()
            feats_test = forest_mod.dataset_features(fds.isel(window=timing), bands=opts.get("bands"))
            proba = forest_mod.predict_proba(model, feats_test, client=client)[:len(test)]
            seconds = time.perf_counter() - t0
            pred = (proba >= threshold).astype(np.int8)
            timed = ("features from spectrogram images + prediction" if spectrograms_url
                     else "spectrograms + features + prediction")
            row = _row("forest", y_test, pred, seconds, len(timing), window_seconds, stride, cores,
                       threshold=threshold, threshold_source=threshold_source, timed=timed)
            if out_dir is not None:  # the forest of this row, for `seisgrid detect --method forest`
                row["model"] = _save_forest(model, pathlib.Path(out_dir) / "forest.joblib", ds, fds,
                                            spectrograms_url, windows_url, split, threshold, threshold_source,
                                            opts.get("bands"), len(train))
            results.append(row)
            curves["Random Forest"] = (y_test, proba)

        for path in _resnet_paths(methods):
            row, proba = _resnet(path, ds, spectrograms_url, labels, test, timing, window_seconds, stride)
            taken = {r["display_name"] for r in results}
            if row["display_name"] in taken:
                row["display_name"] += f" ({pathlib.PurePosixPath(path).name})"
            results.append(row)
            curves[row["display_name"]] = (y_test, proba)

    for r in results:
        # precision is undefined (None) for a method that flags nothing: no operating point, not a dot at 0
        points[r["display_name"]] = (r["recall"], r["precision"])
    table = metrics.results_table({r["display_name"]: r for r in results})
    figures = []
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text(table)
        figures.append(metrics.plot_pr_curves(curves, out / "pr_curves.png", points))
        figures.append(_panel(ds, spectrograms_url, out / "spectrograms.png", rate))
    return {
        "methods": results, "table": table, "figures": figures, "split": split,
        "train_windows": len(train), "test_windows": len(test),
        "timing_windows": len(timing), "test_earthquakes": int(y_test.sum()),
        "test_noise": int(len(y_test) - y_test.sum()),
        "window_seconds": window_seconds, "stride_seconds": stride, "cores": cores,
        "definition": "hours_per_year: wall hours one core needs for one station-year of 3-component 100 Hz "
                      "data cut into windows every stride_seconds = measured seconds × cores / windows × "
                      "windows per year / 3600",
    }


def _forest_dataset(ds, labels, spectrograms_url, windows_url) -> xr.Dataset:
    """The Dataset the forest takes its features from.

    The spectrogram store when given (checked to hold the same windows and labels; ``present`` taken from
    the window store when it has none), else ``ds``.
    """
    fds = ds
    if spectrograms_url is not None:
        fds = open_windows(spectrograms_url)
        if fds.sizes["window"] != ds.sizes["window"] or not np.array_equal(fds["label"].values, labels):
            raise SeisgridError(f"{spectrograms_url}: windows or labels differ from {windows_url}; "
                                "the spectrogram store must be made from this window store")
        if "present" not in fds and "present" in ds:
            fds = fds.assign(present=ds["present"])
    return fds


def _save_forest(model, path, ds, fds, spectrograms_url, windows_url, split, threshold, threshold_source,
                 bands, n_train) -> str:
    """Save the fitted forest (joblib) with what ``detect --method forest`` needs.

    That is what makes the same features from archive windows: how the images were made, the bands, the
    tuned threshold, the window settings.
    """
    from seisgrid.seismic.train import SPECTROGRAM_ATTRS, jsonable

    extra = {
        "threshold": float(threshold), "threshold_source": threshold_source, "split": split,
        "train_windows": int(n_train), "bands": int(forest_mod.config.get("forest.bands", override=bands)),
        "features_from": "spectrograms" if spectrograms_url is not None else "waveforms",
        "windows_store": str(windows_url),
        "spectrograms_store": None if spectrograms_url is None else str(spectrograms_url),
        "window_seconds": float(ds.attrs.get("window_seconds",
                                             ds.sizes["sample"] / float(ds.attrs.get("sampling_rate", 100.0)))),
        "sampling_rate": float(ds.attrs.get("sampling_rate", 100.0)),
        "pre_p_seconds": jsonable(ds.attrs.get("pre_p_seconds")),
    }
    if spectrograms_url is not None:
        extra["spectrogram"] = {k: jsonable(fds.attrs[k]) for k in SPECTROGRAM_ATTRS if k in fds.attrs}
    forest_mod.save_model(model, path, extra)
    return str(path)


def _row(name, y, pred, seconds, windows, window_seconds, stride, cores, **extra) -> dict:
    s = metrics.scores(y, pred)
    row = {"name": name, "display_name": NAMES[name],
           **{k: _nan_to_none(v) for k, v in s.items()},
           "hours_per_year": metrics.hours_per_year(seconds, windows, window_seconds, stride, cores),
           "seconds": round(seconds, 4), "windows": int(windows), "cores": cores, **extra}
    if isinstance(row.get("threshold"), float) and not math.isfinite(row["threshold"]):
        row["threshold"] = None
    return row


def _resnet(path, ds, spectrograms_url, labels, test, timing, window_seconds, stride):
    """The ``resnet:PATH`` row: P(earthquake) of the test windows' images, thresholded as trained.

    Runs in this process (torch, device picked once; bf16 autocast on CUDA). Timed: reading the images
    of the ≥ ``timing_windows`` timing windows from the store (chunk-wise) + the model; the spectrogram
    computation itself is not timed (as for the forest on a spectrogram store). ``cores`` is torch's
    CPU thread count (1 on a GPU: hours per year per GPU).
    """
    import torch

    from seisgrid.seismic import models
    from seisgrid.seismic import train as train_mod

    if spectrograms_url is None:
        raise SeisgridError(f"resnet:{path}: needs the spectrogram store of these windows (--spectrograms)")
    sds = train_mod.open_store(spectrograms_url)
    if sds.sizes["window"] != ds.sizes["window"] or not np.array_equal(sds["label"].values, labels):
        raise SeisgridError(f"{spectrograms_url}: windows or labels differ from the window store; "
                            "the spectrogram store must be made from this window store")
    device = models.pick_device(None)
    model, cfg = models.load_checkpoint(path, device)
    trained = cfg.get("spectrogram") or {}
    differ = sorted(k for k in ("stft_n_fft", "stft_hop", "band_hz", "sampling_rate", "image_size", "clip")
                    if k in trained and k in sds.attrs and train_mod.jsonable(sds.attrs[k]) != trained[k])
    if differ:
        logger.warning("resnet:%s: spectrogram settings %s differ from those the model was trained on", path, differ)
    batch = int(train_mod.config.get("train.eval_batch_size", 256))
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    proba = np.empty(len(timing), np.float32)
    for i in range(0, len(timing), batch):
        images = train_mod.read_images(sds, timing[i:i + batch])
        proba[i:i + batch] = train_mod.predict_proba(model, images, device, batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    proba = proba[:len(test)]
    threshold = float(cfg.get("threshold", 0.5))
    cores = 1 if device.type == "cuda" else int(torch.get_num_threads())
    arch = cfg.get("arch", "resnet")
    row = _row("resnet", labels[test], (proba >= threshold).astype(np.int8), seconds, len(timing),
               window_seconds, stride, cores, threshold=threshold,
               threshold_source=cfg.get("threshold_source", "checkpoint"), timed="images read from the store + model",
               display_name=RESNET_NAMES.get(arch, arch), checkpoint=str(path), arch=arch, device=str(device),
               best_epoch=cfg.get("best_epoch"), trained_split=cfg.get("split"))
    return row, proba


def _station_ids(ds, idx) -> list[str] | None:
    """``NET.STA`` of the windows ``idx`` (None when the store has no ``station`` variable)."""
    if "station" not in ds:
        return None
    sta = np.asarray(ds["station"].isel(window=idx).values, dtype=object).astype(str)
    if "network" not in ds:
        return list(sta)
    net = np.asarray(ds["network"].isel(window=idx).values, dtype=object).astype(str)
    return [f"{n}.{s}" if n else s for n, s in zip(net, sta, strict=True)]


def _panel(ds, spectrograms_url, path, rate) -> str:
    """``spectrograms.png``: the first 3 earthquake and 3 noise windows, component Z.

    With their axes in s and Hz, station, component and the colour scale's quantity (store images: the
    normalised log power of :mod:`seisgrid.seismic.spectrogram`; else
    :func:`~seisgrid.seismic.forest.waveform_images`' log10 PSD).
    """
    import inspect

    labels = ds["label"].values
    idx = np.r_[np.flatnonzero(labels == 1)[:3], np.flatnonzero(labels == 0)[:3]]
    window_seconds = float(ds.attrs.get("window_seconds", ds.sizes["sample"] / rate))
    options: metrics.PanelOptions = {"window_seconds": window_seconds}
    if spectrograms_url is not None:
        sds = open_windows(spectrograms_url)
        src = sds
        images = sds["image"].isel(window=idx).values
        n_f, n_t = images.shape[-2:]
        if "time" in sds.coords and sds.sizes.get("time") == n_t:
            options["times"] = sds["time"].values
        if "freq" in sds.coords and sds.sizes.get("freq") == n_f:
            options["freqs"] = sds["freq"].values
        elif len(sds.attrs.get("band_hz") or ()) == 2:  # rows linear in frequency over the band
            f_lo, f_hi = (float(f) for f in sds.attrs["band_hz"])
            options["freqs"] = np.linspace(f_lo, f_hi, n_f)
        clip = sds.attrs.get("clip")
        if clip is not None and "normalisation" in sds.attrs:  # a store of seisgrid.seismic.spectrogram
            options["value_range"] = (-float(clip), float(clip))
            options["colorbar_label"] = (f"normalised log power z, clipped to ±{float(clip):g}\n"
                                         "z = (x − median) / (1.4826·MAD) per image,\n"
                                         "x = log₁₀ PSD (counts²/Hz)")
        else:
            attrs = sds["image"].attrs
            options["colorbar_label"] = attrs.get("units") or attrs.get("long_name") or "image value"
    else:
        src = ds
        wave = ds["waveform"].isel(window=idx).values
        images = forest_mod.waveform_images(wave, rate)
        defaults = inspect.signature(forest_mod.waveform_images).parameters  # the STFT it computed
        nperseg, noverlap = defaults["nperseg"].default, defaults["noverlap"].default
        options["times"] = (nperseg / 2 + (nperseg - noverlap) * np.arange(images.shape[-1])) / rate
        options["freqs"] = np.arange(images.shape[-2]) * rate / nperseg
        options["colorbar_label"] = "log₁₀ PSD (counts²/Hz)"
    if "component" in src.coords:
        options["components"] = [str(c) for c in src["component"].values]
    options["stations"] = _station_ids(src, idx) or _station_ids(ds, idx)
    options["window_ids"] = idx
    return metrics.plot_spectrogram_panel(images, labels[idx], path, n=3, **options)
