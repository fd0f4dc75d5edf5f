"""The labelled-window store from sources: :func:`build_windows`.

Plans tasks with the reader registry, reads and windows them on Dask, splits, augments and writes.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
from typing import TYPE_CHECKING, Any

import numpy as np

from seisgrid import config
from seisgrid.errors import ConfigError
from seisgrid.seismic.labelled.augment import _augment
from seisgrid.seismic.labelled.base import (
    SOURCE_CLASSES,
    Record,
    Skip,
    WindowsError,
    _local,
    detect_format,
    read_stations,
    reader,
)
from seisgrid.seismic.labelled.splits import (
    assign_region_splits,
    assign_splits,
    split_groups,
)
from seisgrid.seismic.labelled.windowing import RESAMPLING, cut_windows
from seisgrid.seismic.windowstore import (
    EARTHQUAKE,
    NOISE,
    windows_dataset,
    write_windows,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

_TASK_FIELDS = ("format", "path", "source", "keys", "source_class")  # any other field of a folder task goes
#                                                                     to Reader.read
LABELS_SIDECAR = "labels.yaml"  # in a source folder: ``class: icequake`` (or earthquake) for all its events


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def _source_class(source: str, name: str, fmt: str, opts: dict) -> str | None:
    """The class of a source's events: the ``source_class`` option, else ``labels.yaml`` in its folder.

    None for window stores (merged windows keep their labels) and when neither says.
    """
    if fmt == "windows":
        return None
    given = opts["source_class"]
    for key in (source, source.rstrip("/"), name):
        if key in given:
            return given[key]
    if fmt == "store" or not pathlib.Path(source).is_dir():
        return None
    sidecar = pathlib.Path(source) / LABELS_SIDECAR
    if not sidecar.exists():
        return None
    import yaml

    try:
        value = (yaml.safe_load(sidecar.read_text()) or {}).get("class")
    except (yaml.YAMLError, AttributeError) as exc:
        raise WindowsError(f"{sidecar}: expected a YAML mapping with a 'class' key ({exc})") from None
    if value not in SOURCE_CLASSES:
        raise WindowsError(f"{sidecar}: class {value!r}; expected one of {sorted(SOURCE_CLASSES)}")
    return str(value)


def _plan_source(source: str, catalog, opts, rng) -> tuple[list[dict], list[Skip], str]:
    fmt = detect_format(source)
    rd = reader(fmt)
    name = pathlib.PurePosixPath(source.rstrip("/")).name
    cls = _source_class(source, name, fmt, opts)
    if rd.plan is not None:
        tasks, skips = rd.plan(source, catalog, opts, rng)
    else:
        assert rd.keys is not None  # a Reader without plan is a folder format: keys, read and chunk are set
        folder = _local(source)
        name = folder.name
        keys, size = rd.keys(folder), rd.chunk
        extra = rd.extra(keys) if rd.extra is not None else {}
        tasks = [{"format": fmt, "path": str(folder), "source": name, "keys": chunk, **extra}
                 for chunk in _chunks(keys, size)]
        skips = []
    for task in tasks:
        task["source_class"] = cls
    return tasks, skips, fmt


def _run_task(task: dict, opts: dict) -> dict:
    """Read one task's records and cut their windows (runs on a Dask worker when a client is given)."""
    rd = reader(task["format"])
    if rd.read_task is not None:
        records = rd.read_task(task, opts)
    else:
        assert rd.read is not None  # a Reader without read_task is a folder format: keys, read and chunk are set
        extra = {k: v for k, v in task.items() if k not in _TASK_FIELDS}
        records = rd.read(task["path"], task["keys"], source=task["source"], **extra)
    cls = task.get("source_class")
    windows, skips, no_noise, n = [], [], 0, 0
    for rec in records:
        n += 1
        if isinstance(rec, Skip):
            skips.append(rec)
            continue
        if cls is not None and isinstance(rec, Record):
            rec.event_label, rec.event_subclass = SOURCE_CLASSES[cls]
        w, s, nn = cut_windows(rec, opts)
        windows.extend(w)
        skips.extend(s)
        no_noise += nn
    return {"windows": windows, "skipped": [(s.source, s.name, s.reason) for s in skips],
            "no_noise": no_noise, "records": n, "source": task["source"]}


def _options(seed, overrides: dict) -> dict:
    names = [name for name, _, _ in config.option_specs("windows")]
    unknown = set(overrides) - set(names)
    if unknown:
        raise ConfigError(f"build_windows: unknown option(s) {sorted(unknown)}; known: {', '.join(names)}")
    opts = {name: config.get(f"windows.{name}", override=overrides.get(name)) for name in names}
    opts["seed"] = int(config.get("windows.seed", override=seed))
    for key in ("window_seconds", "sampling_rate", "pre_p_seconds", "pre_p_jitter_seconds", "noise_margin_seconds",
                "catalog_noise_seconds", "catalog_noise_ratio", "augment_factor", "augment_shift_seconds"):
        opts[key] = float(opts[key])
        if not math.isfinite(opts[key]) or opts[key] < 0:
            raise ConfigError(f"windows.{key}={opts[key]!r}: expected a finite number ≥ 0")
    if opts["window_seconds"] <= 0 or opts["sampling_rate"] <= 0:
        raise ConfigError("windows.window_seconds and windows.sampling_rate must be > 0")
    opts["noise_per_record"] = int(opts["noise_per_record"])
    opts["chunk_windows"] = int(opts["chunk_windows"])
    for key in ("split_fractions", "augment_snr_db", "augment_scale"):
        value = opts[key]
        opts[key] = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if len(opts["augment_snr_db"]) != 2 or len(opts["augment_scale"]) != 2 or min(opts["augment_scale"]) <= 0:
        raise ConfigError("windows.augment_snr_db and windows.augment_scale take [low, high] (scale > 0)")
    if opts["augment_noise"] not in ("subclass", "uniform"):
        raise ConfigError(f"windows.augment_noise={opts['augment_noise']!r}: expected 'subclass' or 'uniform'")
    opts["augment_bandpass_probability"] = float(opts["augment_bandpass_probability"])
    if not 0 <= opts["augment_bandpass_probability"] <= 1:
        raise ConfigError(f"windows.augment_bandpass_probability={opts['augment_bandpass_probability']}: "
                          "expected a probability in [0, 1]")
    for key in ("augment_bandpass_low_hz", "augment_bandpass_high_hz"):
        value = opts[key]
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not 0 < float(value[0]) <= float(value[1]):
            raise ConfigError(f"windows.{key}={value!r}: expected [low, high] in Hz with 0 < low ≤ high")
        opts[key] = [float(v) for v in value]
    for key in ("test_regions", "test_networks"):
        value = opts[key] or []
        # a list, or one text of comma-separated names (what a pipeline variable can hold)
        values = [part.strip() for v in (value if isinstance(value, (list, tuple)) else [value])
                  for part in str(v).split(",") if part.strip()] or [""]
        # "none" or "[]" (alone) is the empty list: the CLI flag takes one or more values
        opts[key] = [] if [v.strip().lower() for v in values] in (["none"], ["[]"], [""]) else values
    opts["source_class"] = _source_classes(opts["source_class"])
    opts["unpicked_stations"] = str(opts["unpicked_stations"])
    if opts["unpicked_stations"] not in ("skip", "origin"):
        raise ConfigError(f"windows.unpicked_stations={opts['unpicked_stations']!r}: expected skip or origin")
    for key in ("noise_screen_ratio", "noise_trigger_pad_seconds", "onset_seconds"):
        opts[key] = float(opts[key])
    for key in ("store_noise_per_station", "noise_trigger_stations"):
        opts[key] = int(opts[key])
    opts["despike"] = float(opts["despike"] or 0.0)
    opts["station_coords"] = read_stations(opts["stations"]) if opts["stations"] else {}
    return opts


def _source_classes(value) -> dict[str, str]:
    """``source_class`` as {source: class} from a mapping or ``SOURCE=CLASS`` strings."""
    if not value:
        return {}
    if isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = []
        for item in (value if isinstance(value, (list, tuple)) else [value]):
            source, sep, cls = str(item).rpartition("=")
            if not sep or not source:
                raise ConfigError(f"windows.source_class {item!r}: expected SOURCE=CLASS, e.g. "
                                  "thwaites-icequakes=icequake")
            pairs.append((source, cls))
    out = {}
    for source, cls in pairs:
        if cls not in SOURCE_CLASSES:
            raise ConfigError(f"windows.source_class {source}={cls}: class must be one of {sorted(SOURCE_CLASSES)}")
        out[str(source)] = str(cls)
    return out


def _collect(results) -> tuple[list[dict], list, int, int]:
    windows = [w for r in results for w in r["windows"]]
    for w in windows:
        w.setdefault("subclass", "earthquake" if w["label"] == EARTHQUAKE else "pre_event_noise")
    # stable sort: within a record the earthquake window comes first, then its noise windows in order
    windows.sort(key=lambda w: (w["source"], w["record"], -w["label"]))
    skipped = [s for r in results for s in r["skipped"]]
    return windows, skipped, sum(r["no_noise"] for r in results), sum(r["records"] for r in results)


def _columns(windows) -> dict:
    n = len(windows)
    return {
        "waveform": np.stack([w["waveform"] for w in windows]) if n else np.zeros((0, 3, 0), "float32"),
        "present": np.stack([w["present"] for w in windows]) if n else np.zeros((0, 3), bool),
        "label": np.array([w["label"] for w in windows], dtype=np.int8),
        "p_index": np.array([w["p_index"] for w in windows], dtype=np.int32),
        "s_index": np.array([w["s_index"] for w in windows], dtype=np.int32),
        **{k: np.array([w[k] for w in windows], dtype=object)
           for k in ("source", "region", "network", "station", "event_id")},
        "start_time": np.array([w["start_time"] for w in windows], dtype="datetime64[ns]"),
        "magnitude": np.array([w["magnitude"] for w in windows], dtype=np.float32),
        "snr_db": np.array([w["snr_db"] for w in windows], dtype=np.float32),
        "augmented": np.zeros(n, bool),
        "subclass": np.array([w["subclass"] for w in windows], dtype=object),
        "distance_km": np.array([w["distance_km"] for w in windows], dtype=np.float32),
    }


def _subclass_counts(sources, subclasses) -> dict:
    out: dict[str, dict[str, int]] = {}
    for src, sub in zip(sources, subclasses, strict=True):
        out.setdefault(str(src), {}).setdefault(str(sub), 0)
        out[str(src)][str(sub)] += 1
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def _noise_requested(fmt: str, catalog, opts) -> bool:
    if fmt == "windows":
        return False
    if fmt == "store":
        return (opts["catalog_noise_ratio"] if catalog is not None else opts["store_noise_per_station"]) > 0
    return opts["noise_per_record"] > 0


def _warnings(planned: dict, catalog, opts, cols, skipped, no_noise_by_source) -> list[str]:
    """Sources that gave no window, or no noise window although noise was requested."""
    out = []
    for name, fmt in planned.items():
        sel = cols["source"] == name
        if fmt == "windows":
            continue
        if not sel.any():
            out.append(f"{name}: no windows ({sum(1 for s in skipped if s[0] == name)} records skipped)")
        elif _noise_requested(fmt, catalog, opts) and not (cols["label"][sel] == NOISE).any():
            reasons: dict[str, int] = {}
            for src, _, reason in skipped:
                if src == name:
                    reasons[reason] = reasons.get(reason, 0) + 1
            why = "; ".join(f"{n} × {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
            if fmt == "store":
                cause = (f" (no {opts['window_seconds']:g} s of recorded data at least "
                         f"{opts['catalog_noise_seconds']:g} s from every catalog P and S)" if catalog is not None
                         else " (every recorded span is within the STA/LTA trigger mask)")
            else:
                short = no_noise_by_source.get(name, 0)
                cause = f" ({short} event records too short before P)" if short else ""
            out.append(f"{name}: 0 noise windows although noise was requested{cause}"
                       + (f" (skipped: {why})" if why else ""))
    train = (cols["split_region"] == "train") & ~cols["augmented"]
    missing = [kind for kind, label in (("earthquake", EARTHQUAKE), ("noise", NOISE))
               if not (train & (cols["label"] == label)).any()]
    # only where the store has both classes (a noise-only or earthquake-only store is a part to merge or a test set)
    both = (cols["label"] == EARTHQUAKE).any() and (cols["label"] == NOISE).any()
    if both and missing:
        out.append(f"split_region: no train {' or '.join(missing)} windows outside the test regions "
                   f"{opts['test_regions']} and networks {opts['test_networks']}; a detector cannot be trained on "
                   "this split (choose other --test-regions / --test-networks, or none)")
    return out


def _counts(values, labels) -> dict:
    out = {}
    for v in sorted(set(values)):
        sel = values == v
        out[str(v)] = {"windows": int(sel.sum()), "earthquake": int((labels[sel] == EARTHQUAKE).sum()),
                       "noise": int((labels[sel] == NOISE).sum())}
    return out


def build_windows(sources: Sequence[str | pathlib.Path] | str | pathlib.Path, out: str | os.PathLike, *,
                  catalog: str | os.PathLike | None = None, client: Client | LazyClient | None = None,
                  seed: int | None = None,
                  progress: bool = True, **options) -> dict:
    """Build the labelled-window Zarr store ``out`` from real labelled sets and/or ingested stores.

    Parameters
    ----------
    sources : list of str, or str
        Folders of real labelled sets (format detected: STEAD, PhaseNet npz, SeisBench, miniSEED event
        files with QuakeML/CSV picks, PFO-style position-labelled windows), ingested waveform stores (path
        or URL; with ``catalog``, or quiet noise under a trigger mask without one) and/or window stores
        (``seisgrid windows`` output: merged, re-split and re-augmented).
    out : str
        Output store path or URL (overwritten).
    catalog : str, optional
        Catalog CSV (synth's ``catalog.csv`` format) for store sources.
    client : distributed.Client or seisgrid.cluster.LazyClient, optional
        Read and window the records on this cluster (one task per chunk of files/records/stations).
    seed : int, optional
        Seed of noise-window choice, splits and augmentation (default ``windows.seed``); the same seed
        and inputs give the same store.
    progress : bool
        tqdm progress bar on stderr.
    **options
        Any key of ``seisgrid.windows`` (``window_seconds``, ``sampling_rate``, ``split_fractions``,
        ``test_regions``, ``augment_factor``, ...); None means the configured value.

    Returns
    -------
    dict
        ``out``, ``windows``, ``records``, ``labels`` {earthquake, noise}, ``sources``, ``splits``,
        ``split_region``, ``regions`` (each name → {windows, earthquake, noise}), ``formats``
        {source: format}, ``subclasses`` {source: {subclass: windows}} (not augmented), ``augmented``,
        ``skipped`` [{source, record, reason}], ``skipped_reasons`` {reason: count}, ``no_noise`` (event
        records without a noise window), ``p_predicted``, ``orientation_unknown`` {source: [NET.STA]}
        (N/E slots holding 1/2 horizontals) and ``warnings`` (sources that gave no window, or no noise
        window although noise was requested: the command's exit status 3).
    """
    from seisgrid.cluster import run_tasks

    if isinstance(sources, (str, pathlib.Path)):
        sources = [sources]
    if not sources:
        raise WindowsError("build_windows: no sources given")
    opts = _options(seed, {k: v for k, v in options.items()})
    rng = np.random.default_rng(np.random.SeedSequence([opts["seed"], 0]))
    tasks: list[dict] = []
    skipped: list[tuple[str, str, str]] = []  # (source, record, reason)
    formats: dict[str, str] = {}  # source name → format (a window store's own sources for merged stores)
    planned: dict[str, str] = {}
    for src in sources:
        t, s, fmt = _plan_source(str(src), catalog, opts, rng)
        name = t[0]["source"] if t else pathlib.PurePosixPath(str(src).rstrip("/")).name
        planned[name] = fmt
        if fmt == "windows":
            formats.update(t[0].get("formats", {}) if t else {})
        else:
            formats[name] = fmt
        tasks.extend(t)
        skipped.extend((x.source, x.name, x.reason) for x in s)
    results = run_tasks(client, _run_task, tasks, (opts,), "windows", progress=progress)
    windows, task_skips, no_noise, n_records = _collect(results)
    skipped.extend(task_skips)
    no_noise_by_source: dict[str, int] = {}
    for r in results:
        no_noise_by_source[r["source"]] = no_noise_by_source.get(r["source"], 0) + r["no_noise"]
    unknown_orientation: dict[str, set] = {}
    for w in windows:
        if w.get("orientation_unknown"):
            unknown_orientation.setdefault(w["source"], set()).add(f"{w['network']}.{w['station']}")
    opts["orientation_unknown"] = {k: sorted(v) for k, v in sorted(unknown_orientation.items())}
    if not windows:
        raise WindowsError(f"build_windows: no windows from {list(map(str, sources))} "
                           f"(skipped: {skipped[:5]}{' ...' if len(skipped) > 5 else ''})")
    p_predicted = sum(1 for w in windows if w["p_predicted"] and w["label"] == EARTHQUAKE)
    cols = _columns(windows)
    stations = [f"{a}.{b}" for a, b in zip(cols["network"], cols["station"], strict=True)]
    split_keys, opts["split_grouping"] = split_groups(cols["event_id"], stations, cols["start_time"],
                                                      opts["split_fractions"])
    cols["split"] = assign_splits(split_keys, split_keys if opts["split_grouping"] == "event" else stations,
                                  opts["split_fractions"], opts["seed"])
    cols["split_region"] = assign_region_splits(
        cols["event_id"], stations, cols["region"], cols["network"], opts["test_regions"],
        opts["test_networks"], opts["split_fractions"], opts["seed"], sources=cols["source"],
        start_times=cols["start_time"])
    aug = _augment(cols, opts, opts["seed"])
    if aug:
        cols = {k: np.concatenate([cols[k], aug[k]]) for k in cols}
    ds = windows_dataset(cols, opts, formats, resampling=RESAMPLING)
    write_windows(ds, out, opts["chunk_windows"])
    labels = cols["label"]
    reasons: dict[str, int] = {}
    for _, _, reason in skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    real = ~cols["augmented"]
    summary: dict[str, Any] = {
        "out": str(out), "windows": len(labels), "records": n_records,
        "labels": {"earthquake": int((labels == EARTHQUAKE).sum()), "noise": int((labels == NOISE).sum())},
        "sources": _counts(cols["source"], labels), "formats": formats,
        "subclasses": _subclass_counts(cols["source"][real], cols["subclass"][real]),
        "orientation_unknown": opts["orientation_unknown"],
        "warnings": _warnings(planned, catalog, opts, cols, skipped, no_noise_by_source),
        "splits": _counts(cols["split"], labels), "split_region": _counts(cols["split_region"], labels),
        "regions": _counts(cols["region"], labels), "augmented": int(cols["augmented"].sum()),
        "skipped": [{"source": a, "record": b, "reason": c} for a, b, c in skipped],
        "skipped_reasons": dict(sorted(reasons.items())), "no_noise": no_noise, "p_predicted": p_predicted,
    }
    logger.info("windows: %d windows (%d earthquake, %d noise, %d augmented) from %d records, %d skipped → %s",
                summary["windows"], summary["labels"]["earthquake"], summary["labels"]["noise"],
                summary["augmented"], n_records, len(skipped), out)
    for warning in summary["warnings"]:
        logger.warning("windows: %s", warning)
    return summary
