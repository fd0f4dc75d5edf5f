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
    Skip,
    WindowsError,
    _local,
    detect_format,
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

_TASK_FIELDS = ("format", "path", "source", "keys")  # of folder tasks; any other field goes to Reader.read


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def _plan_source(source: str, catalog, opts, rng) -> tuple[list[dict], list[Skip], str]:
    fmt = detect_format(source)
    rd = reader(fmt)
    if rd.plan is not None:
        tasks, skips = rd.plan(source, catalog, opts, rng)
        return tasks, skips, fmt
    assert rd.keys is not None  # a Reader without plan is a folder format: keys, read and chunk are set
    folder = _local(source)
    name = folder.name
    keys, size = rd.keys(folder), rd.chunk
    extra = rd.extra(keys) if rd.extra is not None else {}
    tasks = [{"format": fmt, "path": str(folder), "source": name, "keys": chunk, **extra}
             for chunk in _chunks(keys, size)]
    return tasks, [], fmt


def _run_task(task: dict, opts: dict) -> dict:
    """Read one task's records and cut their windows (runs on a Dask worker when a client is given)."""
    rd = reader(task["format"])
    if rd.read_task is not None:
        records = rd.read_task(task, opts)
    else:
        assert rd.read is not None  # a Reader without read_task is a folder format: keys, read and chunk are set
        extra = {k: v for k, v in task.items() if k not in _TASK_FIELDS}
        records = rd.read(task["path"], task["keys"], source=task["source"], **extra)
    windows, skips, no_noise, n = [], [], 0, 0
    for rec in records:
        n += 1
        if isinstance(rec, Skip):
            skips.append(rec)
            continue
        w, s, nn = cut_windows(rec, opts)
        windows.extend(w)
        skips.extend(s)
        no_noise += nn
    return {"windows": windows, "skipped": [(s.source, s.name, s.reason) for s in skips],
            "no_noise": no_noise, "records": n}


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
    for key in ("test_regions", "test_networks"):
        value = opts[key] or []
        opts[key] = [str(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    return opts


def _collect(results) -> tuple[list[dict], list, int, int]:
    windows = [w for r in results for w in r["windows"]]
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
    }


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
        Folders of real labelled sets (format detected: STEAD, PhaseNet npz, SeisBench) and/or ingested
        waveform stores (path or URL; they need ``catalog``).
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
        ``split_region`` (each name → {windows, earthquake, noise}), ``formats`` {source: format},
        ``augmented``, ``skipped`` [{source, record, reason}], ``skipped_reasons`` {reason: count},
        ``no_noise`` (event records without a noise window), ``p_predicted``.
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
    formats: dict[str, str] = {}
    for src in sources:
        t, s, fmt = _plan_source(str(src), catalog, opts, rng)
        formats[t[0]["source"] if t else pathlib.PurePosixPath(str(src).rstrip("/")).name] = fmt
        tasks.extend(t)
        skipped.extend((x.source, x.name, x.reason) for x in s)
    results = run_tasks(client, _run_task, tasks, (opts,), "windows", progress=progress)
    windows, task_skips, no_noise, n_records = _collect(results)
    skipped.extend(task_skips)
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
        opts["test_networks"], opts["split_fractions"], opts["seed"])
    aug = _augment(cols, opts, opts["seed"])
    if aug:
        cols = {k: np.concatenate([cols[k], aug[k]]) for k in cols}
    ds = windows_dataset(cols, opts, formats, resampling=RESAMPLING)
    write_windows(ds, out, opts["chunk_windows"])
    labels = cols["label"]
    reasons: dict[str, int] = {}
    for _, _, reason in skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    summary: dict[str, Any] = {
        "out": str(out), "windows": len(labels), "records": n_records,
        "labels": {"earthquake": int((labels == EARTHQUAKE).sum()), "noise": int((labels == NOISE).sum())},
        "sources": _counts(cols["source"], labels), "formats": formats,
        "splits": _counts(cols["split"], labels), "split_region": _counts(cols["split_region"], labels),
        "regions": _counts(cols["region"], labels), "augmented": int(cols["augmented"].sum()),
        "skipped": [{"source": a, "record": b, "reason": c} for a, b, c in skipped],
        "skipped_reasons": dict(sorted(reasons.items())), "no_noise": no_noise, "p_predicted": p_predicted,
    }
    logger.info("windows: %d windows (%d earthquake, %d noise, %d augmented) from %d records, %d skipped → %s",
                summary["windows"], summary["labels"]["earthquake"], summary["labels"]["noise"],
                summary["augmented"], n_records, len(skipped), out)
    return summary
