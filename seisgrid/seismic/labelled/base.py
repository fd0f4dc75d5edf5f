"""What every dataset reader shares: records, errors, metadata helpers and the reader registry.

:class:`Record`, :class:`Skip`, :class:`WindowsError`, the metadata helpers, and the registry
(:data:`REGISTRY`, :func:`reader`, :func:`detect_format`).

A reader is one module of this package (``windows``, ``store``, ``seisbench``, ``stead``, ``phasenet``,
``events``, ``pfo``) that defines
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
from seisgrid.seismic.windowstore import KIND as WINDOW_STORE_KIND

NAT = np.datetime64("NaT", "ns")

#: Regions of the real sets by source folder name (the sets' READMEs); other sources use coordinates.
KNOWN_REGIONS = {
    "stead-eqt-sample": "southern-california",
    "phasenet-ncedc": "northern-california",
    "seisbench-ipoc-dummy": "northern-chile",
    "pfo-anza-windows": "southern-california",
    "thwaites-icequakes": "antarctica-thwaites",
}
#: Coarse boxes (lat_min, lat_max, lon_min, lon_max) for sources without a known region, tested in this
#: order (the Antarctic glaciers before the whole continent).
REGION_BOXES = {
    "southern-california": (32.0, 36.0, -121.5, -114.0),
    "northern-california": (36.0, 42.5, -125.0, -119.0),
    "northern-chile": (-27.0, -17.0, -72.5, -66.0),
    "antarctica-thwaites": (-78.5, -74.0, -112.0, -98.0),
    "antarctica-rutford": (-79.5, -77.0, -88.0, -80.0),
    "antarctica": (-90.0, -60.0, -180.0, 180.0),
}
#: Size (degrees) of the cells that name the region of coordinates outside every box (:func:`region_of`).
REGION_CELL_DEGREES = 5
#: Sub-class of a source's event records (``source_class`` option / ``labels.yaml``) → (label, subclass).
SOURCE_CLASSES = {"earthquake": (1, "earthquake"), "icequake": (0, "icequake")}


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
    noise_offsets : list of float, optional
        Noise-window starts in s after the first sample, chosen by the reader: for ``kind="noise"``
        (None: from 0 on), and for event records (None: from 0 on, ending at least ``noise_margin_seconds``
        before P; ``[]``: none).
    event_label, event_subclass : int, str
        Label and ``subclass`` of the window around P: 1 ``earthquake`` (default), or 0 ``icequake`` for
        ice-event sources (``source_class``).
    noise_subclass : str
        ``subclass`` of the record's noise windows; "" means ``pre_event_noise`` for event records and
        ``quiet_noise`` for noise records.
    distance_km : float
        Epicentral distance (NaN unknown).
    orientation_unknown : bool
        The N/E slots hold horizontals named 1/2 (:mod:`seisgrid.seismic.channels`).
    screened : list of (float, str)
        Noise-window candidates the reader dropped: (start in s after the first sample, reason).
    pre_event_noise : bool
        Whether an event record's pre-P segment gives noise windows (False for windows merged from a
        window store, which are taken whole).
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
    noise_offsets: list | None = None
    event_label: int = 1
    event_subclass: str = "earthquake"
    noise_subclass: str = ""
    distance_km: float = math.nan
    orientation_unknown: bool = False
    screened: list = field(default_factory=list)
    pre_event_noise: bool = True


@dataclass
class Skip:
    """A record that gives no window: its ``source``, ``name`` and the ``reason`` (counted, never dropped)."""

    source: str
    name: str
    reason: str


def region_of(lat: float | None, lon: float | None) -> str:
    """The region of coordinates: the first :data:`REGION_BOXES` box holding them, else a cell name.

    Outside every box the region is the :data:`REGION_CELL_DEGREES` (5°) cell holding the point, named by
    its south-west corner, e.g. ``cell-45N-125W`` for 47.3 N, 122.1 W: new data always get a region, and
    data from distant places get distinct ones.

    Parameters
    ----------
    lat, lon : float or None
        Degrees (north, east).

    Returns
    -------
    str
        A box name, a cell name, or ``unknown`` when a coordinate is missing.
    """
    lat_f, lon_f = _float(lat), _float(lon)
    if math.isnan(lat_f) or math.isnan(lon_f):
        return "unknown"
    for name, (a, b, c, d) in REGION_BOXES.items():
        if a <= lat_f <= b and c <= lon_f <= d:
            return name
    size = REGION_CELL_DEGREES
    south = int(math.floor(lat_f / size) * size)
    west = int(math.floor(((lon_f + 180.0) % 360.0 - 180.0) / size) * size)
    return f"cell-{abs(south)}{'S' if south < 0 else 'N'}-{abs(west)}{'W' if west < 0 else 'E'}"


def _region_of(source: str, lat=None, lon=None) -> str:
    if source in KNOWN_REGIONS:
        return KNOWN_REGIONS[source]
    return region_of(lat, lon)


def distance_km(lat1: float | None, lon1: float | None, lat2: float | None, lon2: float | None) -> float:
    """Epicentral distance in km on the WGS84 ellipsoid (:func:`obspy.geodetics.gps2dist_azimuth`).

    Parameters
    ----------
    lat1, lon1, lat2, lon2 : float or None
        Event and station coordinates, degrees.

    Returns
    -------
    float
        Kilometres; NaN when a coordinate is missing.
    """
    values = [_float(v) for v in (lat1, lon1, lat2, lon2)]
    if any(math.isnan(v) for v in values):
        return math.nan
    from obspy.geodetics import gps2dist_azimuth

    return gps2dist_azimuth(*values)[0] / 1000.0


def read_stations(path: str | os.PathLike) -> dict[str, tuple[float, float]]:
    """Station coordinates from a CSV/text table or a StationXML file.

    CSV (any delimiter ``,`` ``;`` tab or spaces, header row, case-insensitive column names): the station
    code in ``station``, ``name``, ``code`` or ``receiver_code``; ``latitude``/``lat``;
    ``longitude``/``lon``; optional ``network``. ``Stations_Rutford.txt`` (``Latitude,Longitude,Elevation,
    Name``) and synth's ``stations.csv`` are such tables. Files ending ``.xml`` are read as StationXML
    (:func:`obspy.read_inventory`).

    Parameters
    ----------
    path : str or path-like
        Local path or URL.

    Returns
    -------
    dict of str to (float, float)
        ``NET.STA`` (when the network is known) and ``STA`` → (latitude, longitude).

    Raises
    ------
    WindowsError
        The file is missing or has no station/latitude/longitude columns.
    """
    url = str(path)
    fs, fpath = storage.filesystem(url)
    if not fs.exists(fpath):
        raise WindowsError(f"{url}: stations file not found")
    out: dict[str, tuple[float, float]] = {}
    if url.lower().endswith(".xml"):
        import obspy

        with fs.open(fpath, "rb") as f:
            inventory = obspy.read_inventory(f)
        for net in inventory:
            for sta in net:
                out[f"{net.code}.{sta.code}"] = out[sta.code] = (float(sta.latitude), float(sta.longitude))
        return out
    with fs.open(fpath, "rb") as f:
        table = pd.read_csv(f, sep=None, engine="python", dtype=str)
    cols = {c.strip().lower(): c for c in table.columns}
    code = next((cols[c] for c in ("station", "name", "code", "receiver_code") if c in cols), None)
    lat = next((cols[c] for c in ("latitude", "lat") if c in cols), None)
    lon = next((cols[c] for c in ("longitude", "lon") if c in cols), None)
    if code is None or lat is None or lon is None:
        raise WindowsError(f"{url}: expected station (or name/code), latitude and longitude columns, "
                           f"found {list(table.columns)}")
    net = cols.get("network")
    for row in table.to_dict("records"):
        sta = str(row[code]).strip()
        value = (_float(row[lat]), _float(row[lon]))
        if "." in sta and net is None:
            out[sta] = value
            sta = sta.split(".", 1)[1]
        out.setdefault(sta, value)
        if net is not None and isinstance(row[net], str) and row[net].strip():
            out[f"{row[net].strip()}.{sta}"] = value
    return out


def station_coordinates(stations: dict | None, network: str, station: str) -> tuple[float, float]:
    """(latitude, longitude) of ``network.station`` (or ``station``) in :func:`read_stations` output, else NaNs."""
    if stations:
        for key in (f"{network}.{station}", station):
            if key in stations:
                return stations[key]
    return (math.nan, math.nan)


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
#: reader whose ``detect`` claims a folder gives its format (a window store before a waveform store: both
#: are Zarr groups; SeisBench before STEAD: a SeisBench file may also have a ``data`` group; event files
#: with picks before PFO-style position-labelled windows). Modules are imported on first use (:func:`reader`).
REGISTRY = {
    "windows": "windows",
    "store": "store",
    "seisbench": "seisbench",
    "stead": "stead",
    "phasenet": "phasenet",
    "events": "eventfiles",
    "pfo": "pfo",
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


def _zarr_kind(url: str) -> str | None:
    """The ``kind`` attribute of the Zarr group at ``url`` (None when there is no ``zarr.json``)."""
    import json

    fs, path = storage.filesystem(url)
    meta = posixpath.join(path, "zarr.json")
    if not fs.exists(meta):
        return None
    with fs.open(meta, "rb") as f:
        try:
            return str(json.load(f).get("attributes", {}).get("kind", ""))
        except ValueError:
            return ""


def detect_format(source: str | os.PathLike) -> str:
    """The format of a source: ``windows``, ``store``, ``seisbench``, ``stead``, ``phasenet``, ``events``, ``pfo``.

    A Zarr group (``zarr.json``) whose ``kind`` is ``seisgrid-windows`` → ``windows`` (a window store,
    merged), any other → ``store``; ``waveforms.hdf5`` + ``metadata.csv`` with ``data_format`` →
    ``seisbench``, with ``earthquake``/``non_earthquake``/``data`` groups → ``stead``; ``*.npz`` files
    (beside or below a ``waveform.csv``) → ``phasenet``; miniSEED files with a QuakeML, pick CSV or
    Nordic S-files → ``events``; miniSEED files named ``NET.STA.LOC.CHA_START_END.mseed`` without picks → ``pfo``. Local
    folders are tested by the readers of :data:`REGISTRY` in its order; remote sources can only be
    Zarr stores (waveform or window stores).

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
        kind = _zarr_kind(url)
        if kind is not None:
            return "windows" if kind == WINDOW_STORE_KIND else "store"
        raise WindowsError(f"{url}: not a Zarr store (no zarr.json); remote sources must be ingested stores "
                           "or window stores")
    folder = _local(url)
    if not folder.is_dir():
        raise WindowsError(f"{folder}: no such folder (expected a labelled-set folder or an ingested store)")
    for fmt in REGISTRY:
        if reader(fmt).detect(folder):
            return fmt
    raise WindowsError(
        f"{folder}: unknown format; expected waveforms.hdf5 + metadata.csv (STEAD or SeisBench), "
        "PhaseNet .npz files (+ waveform.csv), miniSEED event files with a QuakeML, pick CSV or Nordic S-files, "
        "PFO-style NET.STA.LOC.CHA_START_END.mseed windows, a window store, or an ingested Zarr store"
    )


def folder_files(folder: str | os.PathLike, suffix: str,
                 accept: Callable[[str], object] | None = None) -> dict[str, pathlib.Path]:
    """Files ``*suffix`` of ``folder`` and of its subfolders one level down, by name (the top level wins).

    Parameters
    ----------
    folder : str or path-like
        A local folder.
    suffix : str
        File name ending, e.g. ``".npz"``.
    accept : callable, optional
        ``accept(name) -> bool``; files whose name it rejects are left out.

    Returns
    -------
    dict
        File name → path, in sorted order.
    """
    folder = pathlib.Path(folder)
    files: dict[str, pathlib.Path] = {}
    for p in [*sorted(folder.glob(f"*{suffix}")), *sorted(folder.glob(f"*/*{suffix}"))]:
        if accept is None or accept(p.name):
            files.setdefault(p.name, p)
    return files
