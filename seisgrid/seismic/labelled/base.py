"""What every dataset reader shares: records, errors, metadata helpers and the reader registry.

:class:`Record`, :class:`Skip`, :class:`WindowsError`, the metadata helpers, and the registry
(:data:`REGISTRY`, :func:`reader`, :func:`detect_format`).

A reader is one module of this package (``stead``, ``phasenet``, ``seisbench``, ``store``) that defines
``READER`` (a :class:`Reader`) and is named in :data:`REGISTRY`; :func:`detect_format` and the planner
and task runner of :mod:`seisgrid.seismic.labelled.build` look readers up there, so a new dataset format
is one new module plus one registry entry.
"""

from __future__ import annotations

import importlib
import math
import os
import pathlib
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from seisgrid import storage
from seisgrid.errors import SeisgridError

NAT = np.datetime64("NaT", "ns")

#: Regions of the real sets by source folder name (the sets' READMEs); other sources use coordinates.
KNOWN_REGIONS = {
    "stead-eqt-sample": "southern-california",
    "phasenet-ncedc": "northern-california",
    "seisbench-ipoc-dummy": "northern-chile",
}
#: Coarse boxes (lat_min, lat_max, lon_min, lon_max) for sources without a known region.
REGION_BOXES = {
    "southern-california": (32.0, 36.0, -121.5, -114.0),
    "northern-california": (36.0, 42.5, -125.0, -119.0),
    "northern-chile": (-27.0, -17.0, -72.5, -66.0),
}


class WindowsError(SeisgridError):
    """A source or an option of :func:`build_windows` is unusable (the message says which and why)."""


# ------------------------------------------------------------------------------------------- records


@dataclass
class Record:
    """One labelled recording before windowing.

    Attributes
    ----------
    data : ndarray, shape (3, n)
        Samples in counts, components in :data:`COMPONENTS` order (Z, N, E); absent components zero.
    sampling_rate : float
        Hz.
    present : ndarray of bool, shape (3,)
        Component exists in the source.
    kind : str
        ``"event"`` (has a P) or ``"noise"`` (the whole record is noise).
    p_seconds, s_seconds : float or None
        P and S times in seconds after the first sample (None when unknown).
    noise_offsets : list of float
        For ``kind="noise"``: window starts in s after the first sample (default: from 0 on).
    """

    source: str
    name: str
    data: np.ndarray
    sampling_rate: float
    present: np.ndarray
    kind: str = "event"
    p_seconds: float | None = None
    s_seconds: float | None = None
    network: str = ""
    station: str = ""
    event_id: str = ""
    region: str = "unknown"
    start_time: np.datetime64 = NAT
    magnitude: float = math.nan
    snr_db: float = math.nan
    p_predicted: bool = False
    noise_offsets: list = field(default_factory=list)


@dataclass
class Skip:
    """A record that gives no window: its ``source``, ``name`` and the ``reason`` (counted, never dropped)."""

    source: str
    name: str
    reason: str


def _region_of(source: str, lat=None, lon=None) -> str:
    if source in KNOWN_REGIONS:
        return KNOWN_REGIONS[source]
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return "unknown"
    for name, (a, b, c, d) in REGION_BOXES.items():
        if a <= lat <= b and c <= lon <= d:
            return name
    return "unknown"


def _timestamp(value) -> np.datetime64:
    try:
        t = pd.Timestamp(str(value).replace("/", "-"))
    except (TypeError, ValueError):
        return NAT
    if t is pd.NaT:
        return NAT
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return np.datetime64(t.as_unit("ns").asm8, "ns")


def _float(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def _local(path) -> pathlib.Path:
    if not storage.is_local(str(path)):
        raise WindowsError(f"{path}: labelled-set folders must be local paths (stores may be URLs)")
    from fsspec.core import split_protocol

    return pathlib.Path(split_protocol(str(path))[1])


# --------------------------------------------------------------------------- HDF5 sets (STEAD, SeisBench)


def _hdf5_set_keys(folder) -> list[str]:
    """Record keys of an HDF5 window set (STEAD, SeisBench): the sorted ``trace_name`` values of ``metadata.csv``."""
    meta = pd.read_csv(pathlib.Path(folder) / "metadata.csv", low_memory=False)
    return sorted(meta["trace_name"].astype(str))


def _hdf5_set_metadata(folder: pathlib.Path, names=None) -> pd.DataFrame:
    """``metadata.csv`` of an HDF5 window set (STEAD, SeisBench), sorted by ``trace_name``; only ``names``."""
    meta = pd.read_csv(folder / "metadata.csv", low_memory=False)
    meta["trace_name"] = meta["trace_name"].astype(str)
    if names is not None:
        meta = meta[meta["trace_name"].isin(set(names))]
    return meta.sort_values("trace_name")


# -------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Reader:
    """One dataset format for :func:`~seisgrid.seismic.labelled.build.build_windows`.

    The ``READER`` of a module named in :data:`REGISTRY`.

    Folder formats set ``keys``, ``read`` and ``chunk``: the planner lists the record keys of a folder
    and makes one task per ``chunk`` keys (``{"format", "path", "source", "keys"}`` plus ``extra(keys)``),
    and the task runner reads a task's records with ``read(path, keys, source=source, **extra)``.
    Formats whose tasks need more than a folder (an ingested store and its catalog) set ``plan`` and
    ``read_task`` instead, which take precedence.

    Attributes
    ----------
    detect : callable (pathlib.Path) -> bool
        Whether a local folder holds this format. May raise :class:`WindowsError` for a folder of this
        kind that no reader can use (an HDF5 set that is neither SeisBench nor STEAD).
    keys : callable (pathlib.Path) -> list of str, optional
        Record keys of a folder, sorted.
    read : callable (path, keys, source=..., **extra) -> iterable of Record or Skip, optional
        The records of ``keys`` (Skip for unusable ones, with the reason).
    chunk : int
        Keys per task.
    extra : callable (list of str) -> dict, optional
        Extra task fields computed from all keys of the folder and passed on to ``read`` (PhaseNet: the
        event id of every file, since one event spans files of several tasks).
    plan : callable (source, catalog, opts, rng) -> (list of dict, list of Skip), optional
        Tasks (each with ``"format"``) and skips of a source.
    read_task : callable (task, opts) -> iterable of Record or Skip, optional
        The records of one task of ``plan``.
    """

    detect: Callable[[pathlib.Path], bool]
    keys: Callable[[pathlib.Path], list[str]] | None = None
    read: Callable[..., Iterable[Record | Skip]] | None = None
    chunk: int = 256
    extra: Callable[[list[str]], dict] | None = None
    plan: Callable[[str, str | os.PathLike | None, dict, np.random.Generator],
                   tuple[list[dict], list[Skip]]] | None = None
    read_task: Callable[[dict, dict], Iterable[Record | Skip]] | None = None


#: Format name → module of this package that defines its ``READER``, in detection order: the first
#: reader whose ``detect`` claims a folder gives its format (SeisBench before STEAD: a SeisBench file
#: may also have a ``data`` group). Modules are imported on first use (:func:`reader`).
REGISTRY = {
    "store": "store",
    "seisbench": "seisbench",
    "stead": "stead",
    "phasenet": "phasenet",
}
FORMATS = tuple(REGISTRY)


def reader(fmt: str) -> Reader:
    """The :class:`Reader` of a format of :data:`REGISTRY`.

    Parameters
    ----------
    fmt : str
        Format name (a key of :data:`REGISTRY`).

    Returns
    -------
    Reader
        The ``READER`` of the format's module (imported on first use).
    """
    return importlib.import_module(f"seisgrid.seismic.labelled.{REGISTRY[fmt]}").READER


def detect_format(source: str | os.PathLike) -> str:
    """The format of a source folder: ``stead``, ``phasenet``, ``seisbench`` or ``store``.

    ``waveforms.hdf5`` + ``metadata.csv`` with ``data_format`` → ``seisbench``, with ``earthquake``/
    ``non_earthquake``/``data`` groups → ``stead``; ``*.npz`` files (beside or below a
    ``waveform.csv``) → ``phasenet``; a Zarr group (``zarr.json``) → ``store``. Local folders are
    tested by the readers of :data:`REGISTRY` in its order; remote sources can only be stores.

    Parameters
    ----------
    source : str or path-like
        Local folder, or URL of an ingested store.

    Returns
    -------
    str
        A key of :data:`REGISTRY`.

    Raises
    ------
    WindowsError
        No such folder, an unknown format, or a remote source that is not a Zarr store.
    """
    url = str(source)
    if not storage.is_local(url):
        fs, path = storage.filesystem(url)
        if fs.exists(posixpath.join(path, "zarr.json")):
            return "store"
        raise WindowsError(f"{url}: not a Zarr store (no zarr.json); remote sources must be ingested stores")
    folder = _local(url)
    if not folder.is_dir():
        raise WindowsError(f"{folder}: no such folder (expected a labelled-set folder or an ingested store)")
    for fmt in REGISTRY:
        if reader(fmt).detect(folder):
            return fmt
    raise WindowsError(
        f"{folder}: unknown format; expected waveforms.hdf5 + metadata.csv (STEAD or SeisBench), "
        "PhaseNet .npz files (+ waveform.csv), or an ingested Zarr store (with --catalog)"
    )
