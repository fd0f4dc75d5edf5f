"""Window stores (``seisgrid windows`` output) as sources: merging stores built separately.

Every window that is not ``augmented`` becomes one record with its own waveform, labels and provenance
(``source``, ``region``, ``network``, ``station``, ``event_id``, ``subclass``, ``distance_km``, picks);
:func:`~seisgrid.seismic.labelled.build.build_windows` then splits **everything** again with the same rules
(so the merged store's splits do not depend on how the parts were split) and augments again from the new
train windows. Windows of a store with another window length or rate are resampled and cut like any
record (too short: skipped with the reason). A store written before ``subclass`` existed gives
``earthquake`` for label 1 and ``unknown`` for label 0. ``source_class`` does not apply: merged windows
keep their labels. One task per ``MERGE_CHUNK`` windows.
"""

from __future__ import annotations

import math
import pathlib
from typing import TYPE_CHECKING

import numpy as np

from seisgrid.seismic.labelled.base import WINDOW_STORE_KIND, Reader, Record, Skip, _zarr_kind
from seisgrid.seismic.windowstore import EARTHQUAKE, distance_of, open_dataset, subclass_of

if TYPE_CHECKING:
    import os

MERGE_CHUNK = 1024  # windows per task


def detect(folder: pathlib.Path) -> bool:
    """Whether a local folder is a window store (a Zarr group whose ``kind`` is ``seisgrid-windows``).

    Parameters
    ----------
    folder : pathlib.Path

    Returns
    -------
    bool
    """
    return _zarr_kind(str(folder)) == WINDOW_STORE_KIND


def plan(source: str, catalog: str | os.PathLike | None, opts: dict,
         rng: np.random.Generator) -> tuple[list[dict], list[Skip]]:
    """Tasks (chunks of the non-augmented windows) of a window store.

    Parameters
    ----------
    source : str
        Window store path or URL.
    catalog : str or None
        Not used.
    opts : dict
        Build options.
    rng : numpy.random.Generator
        Not used.

    Returns
    -------
    tasks : list of dict
        ``{"format", "path", "source", "indices", "formats"}``; ``formats`` are the store's own sources'
        formats.
    skips : list of Skip
        Empty.
    """
    ds = open_dataset(source, required=("waveform", "label"))
    keep = np.flatnonzero(~ds["augmented"].values) if "augmented" in ds else np.arange(ds.sizes["window"])
    name = pathlib.PurePosixPath(str(source).rstrip("/")).name
    formats = dict(ds.attrs.get("formats", {}))
    tasks = [{"format": "windows", "path": str(source), "source": name,
              "indices": keep[i:i + MERGE_CHUNK].tolist(), "formats": formats}
             for i in range(0, len(keep), MERGE_CHUNK)]
    return tasks, []


def _text(ds, key: str, n: int) -> np.ndarray:
    return np.asarray(ds[key].values, dtype=object) if key in ds else np.full(n, "", dtype=object)


def _numbers(ds, key: str, n: int, fill: float) -> np.ndarray:
    return np.asarray(ds[key].values) if key in ds else np.full(n, fill)


def read_windows(task: dict, opts: dict) -> list[Record | Skip]:
    """Records of one task of :func:`plan`: one per window, whole.

    Parameters
    ----------
    task : dict
        ``path`` (the window store) and ``indices`` (windows to read).
    opts : dict
        Build options (not used: the windows are taken as they are).

    Returns
    -------
    list of Record
        Label-1 windows and windows with an event P (icequakes) as event records with their P and S;
        other windows as noise records; each with ``noise_per_record`` pre-P noise switched off.
    """
    ds = open_dataset(task["path"]).isel(window=task["indices"]).load()
    n = ds.sizes["window"]
    rate = float(ds.attrs.get("sampling_rate", 100.0))
    wave, present = ds["waveform"].values, ds["present"].values
    label = ds["label"].values
    p_index, s_index = _numbers(ds, "p_index", n, -1), _numbers(ds, "s_index", n, -1)
    subclass, dist = subclass_of(ds), distance_of(ds)
    start = ds["start_time"].values if "start_time" in ds else np.full(n, np.datetime64("NaT", "ns"))
    magnitude, snr = _numbers(ds, "magnitude", n, math.nan), _numbers(ds, "snr_db", n, math.nan)
    texts = {k: _text(ds, k, n) for k in ("source", "region", "network", "station", "event_id")}
    unknown = {(src, sta) for src, stations in dict(ds.attrs.get("orientation_unknown", {})).items()
               for sta in stations}
    out: list[Record | Skip] = []
    for j, index in enumerate(task["indices"]):
        src = str(texts["source"][j]) or task["source"]
        is_event = label[j] == EARTHQUAKE or (p_index[j] >= 0 and subclass[j] == "icequake")
        rec = Record(
            source=src, name=f"{task['source']}#{index:08d}", data=np.asarray(wave[j], dtype="float64"),
            sampling_rate=rate, present=np.asarray(present[j], bool), kind="event" if is_event else "noise",
            p_seconds=p_index[j] / rate if is_event and p_index[j] >= 0 else None,
            s_seconds=s_index[j] / rate if is_event and s_index[j] >= 0 else None,
            network=str(texts["network"][j]), station=str(texts["station"][j]), event_id=str(texts["event_id"][j]),
            region=str(texts["region"][j]) or "unknown", start_time=start[j], magnitude=float(magnitude[j]),
            snr_db=float(snr[j]), noise_offsets=[0.0], distance_km=float(dist[j]),
            orientation_unknown=(src, f"{texts['network'][j]}.{texts['station'][j]}") in unknown,
            pre_event_noise=False,
        )
        if is_event:
            rec.noise_offsets = []
            rec.event_label = int(label[j])
            rec.event_subclass = str(subclass[j])
        else:
            rec.noise_subclass = str(subclass[j])
        out.append(rec)
    return out


READER = Reader(detect=detect, plan=plan, read_task=read_windows)
