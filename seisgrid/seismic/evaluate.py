"""``seisgrid evaluate``: every method on the same test windows → metrics, breakdowns, the study's table, figures.

Methods (:data:`METHODS`, one table: a new detector is one entry)
    ``stalta`` and ``forest`` are fitted on this store: STA/LTA scores the waveforms of the labelled-window
    store; the Random Forest is trained on the ``train`` windows of the split column, on the spectrogram
    store's images when one is given (else spectrograms computed from the waveforms, see
    :func:`seisgrid.seismic.forest.waveform_images`). Already trained detectors are scored as they are,
    nothing trained: ``stalta:THRESHOLD`` or ``stalta:DIR/stalta.json`` (threshold and settings saved by
    ``evaluate --out DIR``), ``forest:DIR/forest.joblib`` (saved by ``evaluate --out DIR``) and
    ``resnet:CHECKPOINT`` (``seisgrid train``).

Threshold rule (:data:`THRESHOLD_RULE`)
    A detector fitted here gets the threshold with the highest F1 on the ``val`` windows of the split
    column (the cross-region split's val windows come from the training regions, never from the held-out
    test regions); when the val windows lack earthquakes or noise, on the ``train`` windows, and
    ``threshold_source`` says so. ``forest.threshold`` set in the configuration is used as given. A
    trained detector keeps the threshold saved with it (chosen on the val windows of its own training
    store). Test labels are only ever used for scoring.

Windows scored (``subset``)
    ``test``: the ``test`` windows of the split column; ``all``: every window of the store except the
    augmented ones (training mixes), the store used purely as a test set — for trained detectors only.

Breakdowns (per method, JSON and ``results.md``)
    Average precision of the continuous scores; FPR per noise sub-class (window store ``subclass``:
    icequake, quiet_noise, pre_event_noise — each separately); recall per SNR bin (``snr_db``), per
    distance bin (``distance_km``) and per magnitude bin (``magnitude``), bins
    :data:`seisgrid.seismic.metrics.SNR_DB_BINS`, :data:`~seisgrid.seismic.metrics.DISTANCE_KM_BINS` and
    :data:`~seisgrid.seismic.metrics.MAGNITUDE_BINS`, with windows of unknown value in their own
    ``unknown`` bin, and the window-level M50 (:func:`seisgrid.seismic.metrics.m50`: the magnitude from
    which the recall of earthquake windows stays ≥ 50 %); every score per region and per network. Stores
    written before ``subclass`` and ``distance_km`` existed count those as unknown.

Processing cost is timed on the test windows only (STA/LTA: filter + CF + score; forest: features from the
images + prediction — the spectrogram computation itself is timed only when the forest makes its own
spectrograms) and converted with :func:`seisgrid.seismic.metrics.hours_per_year`. With ``out_dir`` a fitted
forest is saved as ``forest.joblib`` (+ ``.json``) for ``seisgrid detect --method forest`` and
``evaluate --methods forest:PATH``, the tuned STA/LTA threshold as ``stalta.json`` for
``evaluate --methods stalta:PATH``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import math
import os
import pathlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.seismic import forest as forest_mod
from seisgrid.seismic import metrics
from seisgrid.seismic import stalta as stalta_mod
from seisgrid.seismic.spectrogram import check_image_store
from seisgrid.seismic.windowstore import distance_of, open_dataset, subclass_of

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

THRESHOLD_RULE = ("fitted here (stalta, forest): the threshold with the highest F1 on the val windows of the "
                  "split column (on its train windows when val lacks earthquakes or noise, said in "
                  "threshold_source); forest.threshold when set; a trained detector (stalta:THRESHOLD|JSON, "
                  "forest:PATH, resnet:CHECKPOINT) keeps its saved threshold; test labels only score")
RESNET_NAMES = {"resnet18": "ResNet-18", "resnet34": "ResNet-34", "resnet50": "ResNet-50",
                "seisformer": "SeisFormer (ViT-B/16)", "seisformer_small": "SeisFormer (ViT-S/16)",
                "wavenet": "WaveNet (1-D, waveforms)"}
SUBSETS = ("test", "all")
STALTA_KIND = "seisgrid.stalta"


@dataclasses.dataclass(frozen=True)
class Method:
    """One kind of detector that :func:`evaluate` scores (an entry of :data:`METHODS`).

    Parameters
    ----------
    display_name : str
        Row name in the table (a detector may replace it, e.g. with its architecture).
    target : str
        ``"module:function"`` making the :class:`Detector`: ``function(ctx: EvalContext, argument: str | None)``,
        imported when the method is used.
    argument : {"none", "optional", "required"}
        Whether ``NAME:ARGUMENT`` takes an argument (a path, a threshold).
    fits : bool
        Without an argument the detector is fitted or tuned on this store's train and val windows.
    usage : str
        How the method is written, for error messages.
    """

    display_name: str
    target: str
    argument: str = "none"
    fits: bool = False
    usage: str = ""


#: The methods ``evaluate`` knows: ``NAME`` or ``NAME:ARGUMENT`` → how to make its detector.
METHODS: dict[str, Method] = {
    "stalta": Method("STA/LTA", "seisgrid.seismic.evaluate:stalta_detector", "optional", True,
                     "stalta[:THRESHOLD|:stalta.json]"),
    "forest": Method("Random Forest", "seisgrid.seismic.evaluate:forest_detector", "optional", True,
                     "forest[:forest.joblib]"),
    "resnet": Method("ResNet", "seisgrid.seismic.evaluate:resnet_detector", "required", False, "resnet:CHECKPOINT"),
    "eqt": Method("EQTransformer", "seisgrid.seismic.peers:eqt_detector", "required", False, "eqt:pnw|eqt:WEIGHTS"),
}
NAMES = {k: m.display_name for k, m in METHODS.items()}


@dataclasses.dataclass
class Detector:
    """A detector ready to score windows of the evaluated store (what a :class:`Method` target returns).

    Parameters
    ----------
    score : callable
        Window indices (any order, repeats allowed) → continuous scores, higher = more earthquake-like.
    threshold : float, optional
        Earthquake when ``score >= threshold``; None: chosen by :data:`THRESHOLD_RULE` on this store.
    threshold_source : str
        Where a given threshold comes from.
    timed : str
        What the timing covers.
    cores : int, optional
        Cores the scoring uses (default the cluster's).
    display_name : str, optional
        Row name (default the method's).
    info : dict
        Extra fields of the result row (checkpoint, architecture, ...).
    save : callable, optional
        ``save(out_dir, threshold, threshold_source) -> path``: writes the fitted detector for reuse.
    trained_on : tuple of (str, str), optional
        ``(store, split column)`` the detector was fitted on: a warning when they overlap the scored windows.
    fitted_on : str, optional
        Split part the detector was fitted on here (``"train"``): a threshold tuned on it is in-sample.
    """

    score: Callable[[np.ndarray], np.ndarray]
    threshold: float | None = None
    threshold_source: str = ""
    timed: str = ""
    cores: int | None = None
    display_name: str | None = None
    info: dict = dataclasses.field(default_factory=dict)
    save: Callable[[pathlib.Path, float, str], str] | None = None
    trained_on: tuple[str | None, str | None] | None = None
    fitted_on: str | None = None


@dataclasses.dataclass
class EvalContext:
    """The evaluated store and settings, given to every :class:`Method` target."""

    ds: xr.Dataset
    windows_url: str
    spectrograms_url: str | None
    labels: np.ndarray
    splits: np.ndarray | None
    split: str
    subset: str
    client: Any = None
    stalta_options: dict = dataclasses.field(default_factory=dict)
    forest_options: dict = dataclasses.field(default_factory=dict)
    cache: dict = dataclasses.field(default_factory=dict)

    def part(self, name: str) -> np.ndarray:
        """Indices of the windows whose split column is ``name`` (none without a split column)."""
        return np.flatnonzero(self.splits == name) if self.splits is not None else np.array([], np.int64)

    def compute(self, lazy: Any) -> np.ndarray:
        """A Dask collection computed on the cluster (or the current scheduler)."""
        return np.asarray(self.client.compute(lazy).result() if self.client is not None else lazy.compute())

    def spectrograms(self, who: str, lazy: bool = True) -> xr.Dataset:
        """The spectrogram store of these windows (checked to hold the same windows and labels).

        ``lazy``: Dask-backed with ``present`` from the window store (features); else lazily indexed Zarr
        (reads straight to Zarr, for :func:`seisgrid.seismic.train.read_images`).
        """
        if self.spectrograms_url is None:
            raise SeisgridError(f"{who}: needs the spectrogram store of these windows (--spectrograms)")
        key = ("spectrograms", lazy)
        if key not in self.cache:
            if lazy:
                sds = open_windows(self.spectrograms_url)
            else:
                from seisgrid.seismic.train import open_store

                sds = open_store(self.spectrograms_url)
            if "image" in sds:
                check_image_store(sds, self.spectrograms_url)
            if sds.sizes["window"] != self.ds.sizes["window"] or not np.array_equal(sds["label"].values, self.labels):
                raise SeisgridError(f"{self.spectrograms_url}: windows or labels differ from {self.windows_url}; "
                                    "the spectrogram store must be made from this window store")
            if lazy and "present" not in sds and "present" in self.ds:
                sds = sds.assign(present=self.ds["present"])
            self.cache[key] = sds
        return self.cache[key]


def open_windows(url: str | os.PathLike) -> xr.Dataset:
    """A labelled-window or spectrogram store as a lazy Dataset."""
    return open_dataset(url, "window/spectrogram store", "seisgrid windows", ("label",), consolidated=False)


def parse_methods(methods: Sequence[str], subset: str = "test") -> list[tuple[str, str | None, Method]]:
    """``(name, argument, Method)`` of each ``NAME`` / ``NAME:ARGUMENT`` (duplicates dropped, order kept).

    Raises
    ------
    ConfigError
        An unknown method, a missing or unexpected argument, a subset other than test/all, or with
        ``subset="all"`` a method that would be fitted on the store (there are only test windows then).
    """
    if subset not in SUBSETS:
        raise ConfigError(f"subset {subset!r}: expected one of {list(SUBSETS)}")
    out, bad = [], []
    for text in dict.fromkeys(str(m).strip() for m in methods):
        name, sep, arg = text.partition(":")
        m = METHODS.get(name)
        if m is None or (sep and (not arg or m.argument == "none")) or (not sep and m.argument == "required"):
            bad.append(text)
            continue
        if subset == "all" and m.fits and not sep:
            raise ConfigError(f"method {name!r} with subset 'all': every window is a test window, none to fit or "
                              f"tune {name} on; give a trained one ({m.usage})")
        out.append((name, arg if sep else None, m))
    if bad or not out:
        raise ConfigError(f"methods {bad}: unknown or with a missing/unexpected argument; expected some of "
                          + ", ".join(m.usage for m in METHODS.values()))
    return out


def _function(target: str) -> Callable:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _cores(client) -> int:
    if client is None:
        return 1
    return int(sum(client.nthreads().values()))


def _finite(x):
    """``x`` with NaN/inf floats as None, recursively (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _strings(ds: xr.Dataset, name: str, idx: np.ndarray) -> np.ndarray:
    """String variable ``name`` of windows ``idx``; :data:`~seisgrid.seismic.metrics.UNKNOWN` when absent."""
    if name not in ds:
        return np.full(len(idx), metrics.UNKNOWN, dtype=object)
    return np.asarray(ds[name].values, dtype=object)[idx]  # Zarr v3 strings read as StringDType


def _floats(ds: xr.Dataset, name: str, idx: np.ndarray) -> np.ndarray:
    if name not in ds:
        return np.full(len(idx), np.nan)
    return np.asarray(ds[name].values, np.float64)[idx]


def evaluate(windows_url: str | os.PathLike, spectrograms_url: str | os.PathLike | None = None,
             methods: Sequence[str] = ("stalta", "forest"), split: str = "split_region",
             client: Client | LazyClient | None = None, out_dir: str | os.PathLike | None = None,
             stride_seconds: float | None = None, stalta_options: dict | None = None,
             forest_options: dict | None = None, timing_windows: int = 2048, subset: str = "test") -> dict:
    """Run each method on the same test windows: precision, recall, FPR, F1, AP, hours per year, breakdowns.

    Parameters
    ----------
    windows_url : str
        Labelled-window store (``docs/windows-schema.md``).
    spectrograms_url : str, optional
        Spectrogram store of the same windows (same order), for the forest and the ResNet.
    methods : sequence of str
        Entries of :data:`METHODS`: ``stalta`` (threshold tuned here) or ``stalta:THRESHOLD`` /
        ``stalta:DIR/stalta.json``; ``forest`` (trained here) or ``forest:DIR/forest.joblib``;
        ``resnet:CHECKPOINT`` (``seisgrid train``, any architecture; needs ``spectrograms_url``). Trained
        detectors keep their saved thresholds; several ``resnet:`` entries may be given.
    split : str
        Split column: ``split`` or ``split_region`` (cross-region: held-out regions are ``test``); its
        ``train``/``val`` windows fit and tune the detectors fitted here.
    client : distributed.Client or LazyClient, optional
        Cluster; default in-process with the synchronous scheduler (1 core).
    out_dir : str, optional
        Folder for ``results.md`` (the table and the breakdowns), ``pr_curves.png`` and
        ``spectrograms.png``; with ``forest`` the fitted forest ``forest.joblib`` (+ ``.json``), which
        ``seisgrid detect --method forest`` and ``evaluate --methods forest:PATH`` load, and with
        ``stalta`` the tuned threshold and settings ``stalta.json`` (``--methods stalta:PATH``).
    stride_seconds : float, optional
        Window step assumed when scanning a year (default half the window length).
    stalta_options, forest_options : dict, optional
        Settings for :func:`seisgrid.seismic.stalta.window_scores` /
        :func:`~seisgrid.seismic.forest.train_forest` (``threshold``, ``bands`` too).
    timing_windows : int
        Throughput is timed over at least this many windows (the test windows repeated).
    subset : {"test", "all"}
        Windows scored: the ``test`` windows of ``split``, or ``all`` windows but the augmented ones (the
        store as a test set; trained detectors only, no split column needed).

    Returns
    -------
    dict
        ``methods`` (one dict per method: ``name``, ``method``, ``display_name``, ``precision``, ``recall``,
        ``fpr``, ``f1``, ``average_precision``, confusion counts, ``threshold``, ``threshold_source``,
        ``threshold_windows``, ``hours_per_year`` and timing, ``fpr_by_subclass``, ``recall_by_snr``,
        ``recall_by_distance``, ``recall_by_magnitude``, ``m50`` (:func:`~seisgrid.seismic.metrics.m50`),
        ``by_region``, ``by_network``), ``table`` (Markdown, the study's columns plus FPR per noise
        sub-class and average precision), ``breakdown_tables`` (Markdown),
        ``figures``, ``split``, ``subset``, window counts, ``bins``, ``threshold_rule``, ``definition``.
    """
    import dask

    from seisgrid.cluster import resolve_client

    parsed = parse_methods(methods, subset)
    ds = open_windows(windows_url)
    labels = ds["label"].values.astype(np.int8)
    need_split = subset == "test" or any(m.fits and arg is None for _, arg, m in parsed)
    if need_split and split not in ds:
        raise SeisgridError(f"{windows_url}: no split column {split!r}; expected 'split' or 'split_region'")
    splits = np.asarray(ds[split].values, dtype=object).astype(str) if split in ds else None
    augmented = np.asarray(ds["augmented"].values, bool) if "augmented" in ds else np.zeros(len(labels), bool)
    if subset == "all":
        test = np.flatnonzero(~augmented)
    else:
        test = np.flatnonzero(splits == "test")
    if not len(test):
        raise SeisgridError(f"{windows_url}: no windows to score (subset {subset!r}, split {split!r})")
    if any(m.fits and arg is None for _, arg, m in parsed) and not np.count_nonzero(splits == "train"):
        raise SeisgridError(f"{windows_url}: split {split!r} has no train windows to fit "
                            f"{[n for n, a, m in parsed if m.fits and a is None]} on")
    rate = float(ds.attrs.get("sampling_rate", 100.0))
    window_seconds = float(ds.attrs.get("window_seconds", ds.sizes["sample"] / rate))
    stride = window_seconds / 2 if stride_seconds is None else float(stride_seconds)
    client = resolve_client(client)  # a LazyClient starts here, after the inputs were checked
    cores = _cores(client)
    ctx = EvalContext(ds, str(windows_url), None if spectrograms_url is None else str(spectrograms_url), labels,
                      splits, split, subset, client, dict(stalta_options or {}), dict(forest_options or {}))
    y_test = labels[test]
    groups = {"subclass": subclass_of(ds)[test], "snr_db": _floats(ds, "snr_db", test),
              "distance_km": distance_of(ds)[test], "magnitude": _floats(ds, "magnitude", test),
              "region": _strings(ds, "region", test),
              "network": _strings(ds, "network", test)}
    # Throughput is timed on at least `timing_windows` windows (the test windows repeated) so fixed
    # costs (thread pools, model start-up) do not dominate a small test set; the metrics use the
    # first pass over the test windows only.
    timing = np.resize(test, max(len(test), int(timing_windows)))
    sched: dict[str, Any] = {} if client is not None else {"scheduler": "synchronous"}
    results: list[dict] = []
    curves: dict[str, tuple] = {}

    with dask.config.set(**sched):
        for name, arg, method in parsed:
            det = _function(method.target)(ctx, arg)
            row, proba = _score(name, arg, method, det, ctx, test, timing, window_seconds, stride, cores, out_dir)
            taken = {r["display_name"] for r in results}
            if row["display_name"] in taken:
                row["display_name"] += f" ({pathlib.PurePosixPath(arg).name if arg else len(results) + 1})"
            row.update(_breakdowns(y_test, stalta_mod.predict(proba, row["threshold"]), proba, groups))
            results.append(_finite(row))
            curves[row["display_name"]] = (y_test, proba)

    # precision is undefined (None) for a method that flags nothing: no operating point, not a dot at 0
    points = {r["display_name"]: (r["recall"], r["precision"]) for r in results}
    named = {r["display_name"]: r for r in results}
    noise_subs = metrics.fpr_by_group(y_test, np.zeros(len(test)), groups["subclass"])
    shown = {k: v["n"] for k, v in noise_subs.items() if v["n"] or k in metrics.NOISE_SUBCLASSES}
    table = metrics.results_table(named, shown if "subclass" in ds else None)
    breakdowns = metrics.breakdown_tables(named)
    what = (f"all {len(test)} windows of {windows_url} but the augmented ones" if subset == "all"
            else f"the {len(test)} test windows of {split} in {windows_url}")
    figures = []
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.md").write_text(f"## Detection on {what}\n\n{int(y_test.sum())} earthquake and "
                                        f"{int(len(y_test) - y_test.sum())} noise windows; thresholds: "
                                        f"{THRESHOLD_RULE}.\n\n{table}{breakdowns}")
        figures.append(metrics.plot_pr_curves(curves, out / "pr_curves.png", points))
        figures.append(_panel(ds, spectrograms_url, out / "spectrograms.png", rate))
    return _finite({
        "methods": results, "table": table, "breakdown_tables": breakdowns, "figures": figures, "split": split,
        "subset": subset, "scored": what, "train_windows": len(ctx.part("train")), "val_windows": len(ctx.part("val")),
        "test_windows": len(test), "augmented_left_out": int(augmented.sum()) if subset == "all" else 0,
        "timing_windows": len(timing), "test_earthquakes": int(y_test.sum()),
        "test_noise": int(len(y_test) - y_test.sum()),
        "test_noise_subclasses": {k: v["n"] for k, v in noise_subs.items()},
        "test_regions": _counts(y_test, groups["region"]), "test_networks": _counts(y_test, groups["network"]),
        "window_seconds": window_seconds, "stride_seconds": stride, "cores": cores,
        "bins": {"snr_db": [list(b) for b in metrics.SNR_DB_BINS],
                 "distance_km": [list(b) for b in metrics.DISTANCE_KM_BINS],
                 "magnitude": [list(b) for b in metrics.MAGNITUDE_BINS],
                 "rule": "[min, max), null an open end; unknown or outside every bin: bin 'unknown'"},
        "threshold_rule": THRESHOLD_RULE,
        "definition": "hours_per_year: wall hours one core needs for one station-year of 3-component 100 Hz "
                      "data cut into windows every stride_seconds = measured seconds × cores / windows × "
                      "windows per year / 3600",
    })


def _counts(y: np.ndarray, groups: np.ndarray) -> dict:
    return {k: {"earthquake": v["earthquakes"], "noise": v["noise"]}
            for k, v in metrics.scores_by_group(y, y, groups).items()}


def _score(name, arg, method, det: Detector, ctx: EvalContext, test, timing, window_seconds, stride, cores,
           out_dir) -> tuple[dict, np.ndarray]:
    """The row of one detector: threshold (given, or by the rule), timed scores of the test windows."""
    threshold, source, tuned_on = det.threshold, det.threshold_source, None
    if threshold is None:
        if ctx.subset == "all":
            raise ConfigError(f"{name}{':' + arg if arg else ''}: has no threshold and subset 'all' leaves no "
                              "val windows to choose one on")
        threshold, source, tuned_on = choose_threshold(det.score, ctx, det.fitted_on)
    t0 = time.perf_counter()
    scores = np.asarray(det.score(timing), np.float64)
    seconds = time.perf_counter() - t0
    proba = scores[:len(test)]
    s = metrics.scores(ctx.labels[test], stalta_mod.predict(proba, threshold))
    row = {"name": name, "method": name + (f":{arg}" if arg else ""),
           "display_name": det.display_name or method.display_name, **s,
           "hours_per_year": metrics.hours_per_year(seconds, len(timing), window_seconds, stride, det.cores or cores),
           "seconds": round(seconds, 4), "windows": len(timing), "cores": det.cores or cores,
           "windows_per_second": round(len(timing) / seconds, 2) if seconds > 0 else None,
           "threshold": float(threshold), "threshold_source": source, "threshold_windows": tuned_on,
           "timed": det.timed, **det.info}
    warning = _overlap_warning(row["method"], det.trained_on, ctx)
    if warning:
        logger.warning("%s", warning)
        row["warning"] = warning
    if out_dir is not None and det.save is not None:
        row["model"] = det.save(pathlib.Path(out_dir), float(threshold), source)
    return row, proba


def choose_threshold(score: Callable[[np.ndarray], np.ndarray], ctx: EvalContext,
                     fitted_on: str | None = None) -> tuple[float, str, dict]:
    """The threshold of :data:`THRESHOLD_RULE`: max F1 on the val windows, else on the train windows.

    Parameters
    ----------
    score : callable
        Window indices → scores.
    ctx : EvalContext
        The store and split column.
    fitted_on : str, optional
        Split part the detector was fitted on (its scores there are in-sample; said in the source).

    Returns
    -------
    tuple
        ``(threshold, threshold_source, threshold_windows)``; the last is ``{"part", "windows",
        "earthquakes", "noise"}``.

    Raises
    ------
    SeisgridError
        Neither the val nor the train windows hold both classes.
    """
    counts = {}
    for part in ("val", "train"):
        idx = ctx.part(part)
        y = ctx.labels[idx]
        counts[part] = (int(y.sum()), int(len(y) - y.sum()))
        if not counts[part][0] or not counts[part][1]:
            continue
        threshold = stalta_mod.tune_threshold(score(idx), y)
        source = f"max F1 on the {part} windows of {ctx.split} ({counts[part][0]} earthquake, {counts[part][1]} noise)"
        if part == "train":
            source += (f"; the val windows ({counts['val'][0]} earthquake, {counts['val'][1]} noise) lack a class"
                       + ("; in-sample: the detector was fitted on them" if fitted_on == "train" else ""))
        return threshold, source, {"part": part, "windows": len(idx), "earthquakes": counts[part][0],
                                   "noise": counts[part][1]}
    raise SeisgridError(f"{ctx.windows_url}: neither the val {counts['val']} nor the train {counts['train']} "
                        f"windows of {ctx.split} (earthquake, noise) hold both classes: no threshold to choose")


def _breakdowns(y, pred, proba, groups) -> dict:
    return {
        "average_precision": metrics.pr_curve(y, proba)["average_precision"],
        "fpr_by_subclass": metrics.fpr_by_group(y, pred, groups["subclass"]),
        "recall_by_snr": metrics.recall_by_bin(y, pred, groups["snr_db"], metrics.SNR_DB_BINS),
        "recall_by_distance": metrics.recall_by_bin(y, pred, groups["distance_km"], metrics.DISTANCE_KM_BINS),
        "recall_by_magnitude": metrics.recall_by_bin(y, pred, groups["magnitude"], metrics.MAGNITUDE_BINS),
        "m50": metrics.m50(groups["magnitude"][y == 1], pred[y == 1]),
        "by_region": metrics.scores_by_group(y, pred, groups["region"]),
        "by_network": metrics.scores_by_group(y, pred, groups["network"]),
    }


def _same_path(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


def _overlap_warning(who: str, trained_on, ctx: EvalContext) -> str | None:
    """A warning when a trained detector was fitted on this store in a way that overlaps the scored windows."""
    if not trained_on:
        return None
    store, split = trained_on
    if not (_same_path(store, ctx.windows_url) or _same_path(store, ctx.spectrograms_url)):
        return None
    if ctx.subset == "all":
        return f"{who}: was fitted on {store}, whose train/val windows are among the windows scored (subset all)"
    if split and split != ctx.split:
        return (f"{who}: was fitted on the {split!r} column of {store}; its train/val windows may be among the "
                f"test windows of {ctx.split!r}")
    return None


# ------------------------------------------------------------------------------------------- STA/LTA
def save_stalta(path: str | os.PathLike, threshold: float, threshold_source: str, settings: dict,
                **extra: Any) -> str:
    """Write an STA/LTA window threshold with its settings as JSON (``stalta.json``).

    Parameters
    ----------
    path : str or path-like
        The JSON file.
    threshold : float
        Window score threshold.
    threshold_source : str
        How it was chosen.
    settings : dict
        :func:`seisgrid.seismic.stalta.window_params` it belongs to.
    **extra
        More fields (store, split, window length, ...).

    Returns
    -------
    str
        ``path``.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"kind": STALTA_KIND, "threshold": float(threshold), "threshold_source": threshold_source,
            "settings": settings, **extra}
    path.write_text(json.dumps(_finite(meta), indent=2) + "\n")
    return str(path)


def load_stalta(path: str | os.PathLike) -> dict:
    """The threshold and settings saved by :func:`save_stalta`.

    Raises
    ------
    SeisgridError
        The file cannot be read or is not a seisgrid STA/LTA threshold.
    """
    try:
        meta = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SeisgridError(f"stalta:{path}: cannot read the STA/LTA threshold file: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("kind") != STALTA_KIND or "threshold" not in meta:
        raise SeisgridError(f"stalta:{path}: not a seisgrid STA/LTA threshold file (kind {STALTA_KIND!r}, "
                            "written by seisgrid evaluate --methods stalta --out DIR)")
    return meta


def stalta_detector(ctx: EvalContext, argument: str | None) -> Detector:
    """``stalta`` (threshold tuned here), ``stalta:THRESHOLD`` or ``stalta:PATH`` (a saved ``stalta.json``)."""
    opts = {k: v for k, v in ctx.stalta_options.items() if k != "sampling_rate"}
    threshold, source, trained_on, info = None, "", None, {}
    if argument is not None:
        try:
            threshold, source = float(argument), "given (stalta:THRESHOLD)"
        except ValueError:
            meta = load_stalta(argument)
            given = stalta_mod.window_params(**opts)
            opts = dict(meta.get("settings") or {})
            if ctx.stalta_options and stalta_mod.window_params(**opts) != given:
                logger.warning("stalta:%s: its saved settings are used, not the given %s", argument, ctx.stalta_options)
            threshold = float(meta["threshold"])
            source = f"saved in {argument} ({meta.get('threshold_source', 'unknown')})"
            trained_on = (meta.get("windows_store"), meta.get("split"))
            info["model"] = str(argument)
    settings = stalta_mod.window_params(**opts)

    def score(idx: np.ndarray) -> np.ndarray:
        return stalta_mod.score_dataset(ctx.ds.isel(window=idx), client=ctx.client, **settings)

    def save(out: pathlib.Path, thr: float, src: str) -> str:
        return save_stalta(out / "stalta.json", thr, src, settings, split=ctx.split,
                           windows_store=ctx.windows_url, sampling_rate=float(ctx.ds.attrs.get("sampling_rate", 100.0)),
                           window_seconds=ctx.ds.attrs.get("window_seconds"),
                           score="max STA/LTA ratio after the LTA warm-up, max over the components present")

    return Detector(score, threshold, source, timed="bandpass + STA/LTA + window score",
                    info={"settings": settings, **info}, save=save if argument is None else None,
                    trained_on=trained_on)


# -------------------------------------------------------------------------------------------- forest
def forest_detector(ctx: EvalContext, argument: str | None) -> Detector:
    """``forest`` (trained here on the train windows) or ``forest:PATH`` (saved by ``evaluate --out``)."""
    if argument is None:
        return _fit_forest(ctx)
    try:
        model, meta = forest_mod.load_model(argument)
    except (OSError, ValueError, EOFError) as exc:
        raise SeisgridError(f"forest:{argument}: cannot load the forest (and its .json): {exc}") from exc
    if meta.get("features_from") == "spectrograms":
        fds = ctx.spectrograms(f"forest:{argument}")
        _check_images(f"forest:{argument}", meta.get("spectrogram") or {}, fds)
    else:
        fds = ctx.ds
    bands, threshold = meta.get("bands"), meta.get("threshold")
    return Detector(_forest_scores(model, fds, bands, ctx), None if threshold is None else float(threshold),
                    f"saved with {argument} ({meta.get('threshold_source', 'unknown')})",
                    timed=_forest_timed(fds), info={"model": str(argument)},
                    trained_on=(meta.get("spectrograms_store") or meta.get("windows_store"), meta.get("split")))


def _forest_scores(model, fds: xr.Dataset, bands, ctx: EvalContext) -> Callable[[np.ndarray], np.ndarray]:
    def score(idx: np.ndarray) -> np.ndarray:
        feats = forest_mod.dataset_features(fds.isel(window=idx), bands=bands)
        return forest_mod.predict_proba(model, feats, client=ctx.client)
    return score


def _forest_timed(fds: xr.Dataset) -> str:
    return ("features from spectrogram images + prediction" if "image" in fds
            else "spectrograms + features + prediction")


def _fit_forest(ctx: EvalContext) -> Detector:
    opts = dict(ctx.forest_options)
    threshold = opts.pop("threshold", None)
    threshold = forest_mod.config.get("forest.threshold") if threshold is None else threshold
    bands = opts.pop("bands", None)
    fds = ctx.spectrograms("forest") if ctx.spectrograms_url is not None else ctx.ds
    train = ctx.part("train")
    feats_train = ctx.compute(forest_mod.dataset_features(fds.isel(window=train), bands=bands))
    model = forest_mod.train_forest(feats_train, ctx.labels[train], **opts)

    def save(out: pathlib.Path, thr: float, src: str) -> str:  # for `seisgrid detect --method forest`
        return _save_forest(model, out / "forest.joblib", ctx, fds, thr, src, bands, len(train))

    return Detector(_forest_scores(model, fds, bands, ctx), None if threshold is None else float(threshold),
                    "forest.threshold" if threshold is not None else "", timed=_forest_timed(fds), save=save,
                    fitted_on="train")


def _save_forest(model, path, ctx: EvalContext, fds, threshold, threshold_source, bands, n_train) -> str:
    """Save the fitted forest (joblib) with what ``detect --method forest`` and ``forest:PATH`` need.

    That is what makes the same features from archive windows: how the images were made, the bands, the
    tuned threshold, the window settings.
    """
    from seisgrid.seismic.train import SPECTROGRAM_ATTRS, jsonable

    ds = ctx.ds
    rate = float(ds.attrs.get("sampling_rate", 100.0))
    extra = {
        "threshold": float(threshold), "threshold_source": threshold_source, "split": ctx.split,
        "train_windows": int(n_train), "bands": int(forest_mod.config.get("forest.bands", override=bands)),
        "features_from": "spectrograms" if "image" in fds else "waveforms",
        "windows_store": ctx.windows_url, "spectrograms_store": ctx.spectrograms_url,
        "window_seconds": float(ds.attrs.get("window_seconds", ds.sizes["sample"] / rate)),
        "sampling_rate": rate, "pre_p_seconds": jsonable(ds.attrs.get("pre_p_seconds")),
    }
    if "image" in fds:
        extra["spectrogram"] = {k: jsonable(fds.attrs[k]) for k in SPECTROGRAM_ATTRS if k in fds.attrs}
    forest_mod.save_model(model, path, extra)
    return str(path)


def _check_images(who: str, trained: dict, sds: xr.Dataset) -> None:
    """Warn when the store's spectrogram settings differ from those a detector was trained on."""
    differ = sorted(k for k in ("stft_n_fft", "stft_hop", "band_hz", "sampling_rate", "image_size", "clip")
                    if k in trained and k in sds.attrs
                    and np.asarray(sds.attrs[k]).tolist() != np.asarray(trained[k]).tolist())
    if differ:
        logger.warning("%s: spectrogram settings %s differ from those it was trained on", who, differ)


# -------------------------------------------------------------------------------------------- ResNet
def resnet_detector(ctx: EvalContext, argument: str | None) -> Detector:
    """``resnet:CHECKPOINT``: P(earthquake) of the windows' images, thresholded as saved in the checkpoint.

    Runs in this process (torch, device picked once; bf16 autocast on CUDA). Timed: reading the images of
    the timing windows from the store (chunk-wise) + the model; the spectrogram computation itself is not
    timed (as for the forest on a spectrogram store). ``cores`` is torch's CPU thread count (1 on a GPU:
    hours per year per GPU).
    """
    import torch

    from seisgrid.seismic import models
    from seisgrid.seismic import train as train_mod

    path = str(argument)
    device = models.pick_device(None)
    model, cfg = models.load_checkpoint(path, device)
    kind = (cfg.get("input") or {}).get("kind", "spectrogram")
    if kind == "waveform":  # the window store itself: the model normalises each window
        sds = train_mod.open_store(ctx.windows_url, "waveform")
        shape = (1, *sds["waveform"].shape[1:])
    else:
        sds = ctx.spectrograms(f"resnet:{path}", lazy=False)
        check_image_store(sds, str(ctx.spectrograms_url), cfg, who=f"resnet:{path}")
        _check_images(f"resnet:{path}", cfg.get("spectrogram") or {}, sds)
        shape = (1, *sds["image"].shape[1:])
    cost = {"parameters": models.parameter_count(model), "gmacs": round(models.multiply_adds(model.cpu(), shape), 3),
            "input": kind}
    model = model.to(device)
    batch = int(train_mod.config.get("train.eval_batch_size", 256))

    def score(idx: np.ndarray) -> np.ndarray:
        if device.type == "cuda":
            torch.cuda.synchronize()
        proba = np.empty(len(idx), np.float32)
        for i in range(0, len(idx), batch):
            proba[i:i + batch] = train_mod.predict_proba(model, train_mod.read_images(sds, idx[i:i + batch]),
                                                         device, batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return proba

    arch = cfg.get("arch", "resnet")
    return Detector(score, float(cfg.get("threshold", 0.5)),
                    f"saved in {path} ({cfg.get('threshold_source', 'unknown')})",
                    timed=f"{'waveforms' if kind == 'waveform' else 'images'} read from the store + model",
                    cores=1 if device.type == "cuda" else int(torch.get_num_threads()),
                    display_name=RESNET_NAMES.get(arch, arch),
                    info={"checkpoint": path, "arch": arch, "device": str(device), "best_epoch": cfg.get("best_epoch"),
                          "trained_split": cfg.get("split"), **cost},
                    trained_on=(cfg.get("spectrograms_store"), cfg.get("split")))


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
