"""Labelled window sets from real data: readers, fixed-length windows, honest splits, augmentation.

:func:`build_windows` turns real labelled sets and ingested stores with a catalog into one labelled-window
Zarr v3 store (schema: ``docs/windows-schema.md``): ``waveform`` (window, component Z/N/E, sample) at
100 Hz, 25 s long, with ``label`` (1 earthquake, 0 noise), picks, provenance and two splits.

Sources (a folder's format is detected from the files it holds, :func:`detect_format`)
----------------------------------------------------------------------------------------
``stead``
    STEAD-style ``waveforms.hdf5`` + ``metadata.csv`` (e.g. ``stead-eqt-sample``): datasets
    (samples, 3) in component order E, N, Z at 100 Hz, keyed by ``trace_name`` under ``data/`` (full
    STEAD) or ``earthquake/local/`` and ``non_earthquake/noise/`` (the EQTransformer sample); manual
    P and S picks in ``p_arrival_sample`` / ``s_arrival_sample``.
``phasenet``
    PhaseNet NCEDC ``.npz`` files (+ ``waveform.csv``): ``data`` (samples, 3) at 100 Hz, column
    order from ``channels`` (``EHE_EHN_EHZ``); single-channel files (``EHZ``) hold the channel in the
    Z slot of an E, N, Z layout and two all-zero columns, which are flagged absent. P at ``itp``
    (3000), S at ``its``. The file name ``NET_STA_YYYYMMDDHHMMSScc[_nn].npz`` gives network, station
    and the event id; whether its time is the window start or the origin is not documented, so
    ``start_time`` is NaT for these windows.
``seisbench``
    SeisBench-format ``waveforms.hdf5`` (buckets, ``trace_name`` like ``bucket0$0,:3,:1200``) +
    ``metadata.csv`` (e.g. ``seisbench-ipoc-dummy``: 20 Hz, ZNE, channel-first). When the metadata
    has no P pick (``trace_p_arrival_sample`` / ``trace_P_arrival_sample``), **P is predicted** as the
    first P arrival (``p``/``P``) of ``obspy.taup.TauPyModel("iasp91")`` from the hypocentre
    (``source_*``) to the station (``station_*``; elevation ignored), assuming the trace starts at
    ``trace_start_time``. Predicted picks can be off by a second or more; ``s_index`` stays -1.
``store``
    An ingested waveform store (``seisgrid ingest``) with a catalog CSV in the format of
    :mod:`seisgrid.seismic.synth`'s ``catalog.csv`` (event_id, station NET.STA, p_time, s_time,
    magnitude, snr, ...). Each station's Z/N/E channels are cut with
    :meth:`seisgrid.seismic.store.Archive.stream`: earthquake windows around each catalog P;
    noise windows at times at least ``catalog_noise_seconds`` (60 s) from every catalog P and S (any
    station). Transients listed in a ``transients.csv`` beside the catalog (synth's icequakes) are
    **noise by definition** (they are not earthquakes): noise windows containing them are chosen first.

Windows
-------
Every record is resampled to ``sampling_rate`` (100 Hz) with :func:`scipy.signal.resample_poly`
(polyphase FIR with a Kaiser-windowed anti-aliasing/anti-imaging low-pass, after removing the mean),
then cut into ``window_seconds`` (25 s = 2500 samples) windows; the mean is removed per component,
missing components are zeros with ``present=False``.

- Earthquake windows start ``pre_p_seconds`` ± ``pre_p_jitter_seconds`` (8 ± 3 s, drawn per record from
  the seed) before P — P anywhere from 5 to 11 s into the window, never at one fixed place a classifier
  could learn, and after the first 5 s that an STA/LTA needs to warm up — or at the record start when P comes
  earlier (``p_index`` records where P is), or earlier when the record ends before the window would.
- Noise windows come only from the pre-P segment of an event record and end at least
  ``noise_margin_seconds`` (5 s) before P (up to ``noise_per_record`` non-overlapping windows from the
  start of the record), or from whole noise records.

**Assumption:** the pre-P segment of an event record is noise. It may contain unseen (uncatalogued,
small or distant) earlier events, so a few "noise" windows may hold real signals; the 5 s margin only
protects against early P picks and emergent onsets, not against such events. None of the real sets has
an independent noise class (``$SEISGRID_DATA/seismic/README.md``).

Records with NaN/infinite samples, all-zero data or fewer samples than one window, a P outside the
record, or a gap in the store, are skipped and counted with their reason (``summary["skipped"]``), never
dropped silently. Event records whose pre-P segment is too short for a noise window are counted in
``summary["no_noise"]``.

Splits
------
``split`` (train/val/test, ``split_fractions`` 70/15/15, seeded) assigns whole connected components of
the graph that links each window's event and station, so no event and no station appears in two splits
(a dataset from one station is one component). Components are shuffled with the seed, then placed
largest first into the split furthest below its share.

``split_region`` is the cross-region split: every component holding a window whose ``region`` is in
``test_regions`` or whose network is in ``test_networks`` is ``test``; the rest is split into train/val
in the ratio of the first two ``split_fractions``. The default holds out STEAD (southern California,
TA.109C) and IPOC (northern Chile) earthquakes plus the PhaseNet networks BG (The Geysers) and NN
(Nevada), whose records give both earthquake and pre-P noise windows, so the test split has both
classes and precision, recall and false-positive rate are defined.

Augmentation
------------
``augment_factor`` × (train earthquake windows) extra windows, ``augmented=True``, made only from
windows that are ``train`` in both ``split`` and ``split_region`` (so they never leak into either test
or val): a real earthquake window, shifted by up to ± ``augment_shift_seconds`` (edges zero-filled
and tapered), scaled so that its post-P RMS (2 s after P) over the RMS of a real noise window is the SNR
drawn uniformly from ``augment_snr_db``, added to that noise window, and the sum scaled by a
log-uniform factor from ``augment_scale``. The earthquake window keeps its own recorded background, so
the effective SNR is at most the drawn one. ``event_id``, ``station`` and ``network`` are the
earthquake's; ``snr_db`` the drawn SNR; components present in both.
"""

from __future__ import annotations

import logging
import math
import pathlib
import posixpath
import re
import warnings
import zlib
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pandas as pd
import scipy.signal

from seisgrid import config, storage
from seisgrid.errors import ConfigError, InputFileError, SeisgridError, StorageError

logger = logging.getLogger("seisgrid")

__all__ = [
    "COMPONENTS", "FORMATS", "Record", "assign_region_splits", "assign_splits", "build_windows",
    "cut_windows", "detect_format", "read_phasenet", "read_seisbench", "read_stead", "resample",
]

COMPONENTS = ("Z", "N", "E")
FORMATS = ("stead", "phasenet", "seisbench", "store")
NAT = np.datetime64("NaT", "ns")
NOISE, EARTHQUAKE = 0, 1
SNR_SIGNAL_SECONDS = 2.0  # post-P span whose RMS is the "signal" of the augmentation SNR
TAPER_SECONDS = 0.5
STORE_PAD_SECONDS = 5.0  # extra samples read around store windows so resampling edges fall outside
RESAMPLING = ("scipy.signal.resample_poly (polyphase FIR, Kaiser window beta 5, anti-aliasing and "
              "anti-imaging low-pass at the lower Nyquist frequency), mean removed before resampling")

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


# ------------------------------------------------------------------------------------------ formats


def _local(path) -> pathlib.Path:
    if not storage.is_local(str(path)):
        raise WindowsError(f"{path}: labelled-set folders must be local paths (stores may be URLs)")
    from fsspec.core import split_protocol

    return pathlib.Path(split_protocol(str(path))[1])


def detect_format(source: str) -> str:
    """The format of a source folder: ``stead``, ``phasenet``, ``seisbench`` or ``store``.

    ``waveforms.hdf5`` + ``metadata.csv`` with ``data_format`` → ``seisbench``, with ``earthquake``/
    ``non_earthquake``/``data`` groups → ``stead``; ``*.npz`` files (beside or below a
    ``waveform.csv``) → ``phasenet``; a Zarr group (``zarr.json``) → ``store``.
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
    if (folder / "zarr.json").exists():
        return "store"
    if (folder / "waveforms.hdf5").exists() and (folder / "metadata.csv").exists():
        import h5py

        with h5py.File(folder / "waveforms.hdf5", "r") as f:
            if "data_format" in f:
                return "seisbench"
            if any(k in f for k in ("earthquake", "non_earthquake", "data")):
                return "stead"
        raise WindowsError(f"{folder}/waveforms.hdf5: neither SeisBench (data_format group) nor STEAD "
                           "(earthquake/non_earthquake/data groups)")
    if any(folder.glob("*.npz")) or any(folder.glob("*/*.npz")):
        return "phasenet"
    raise WindowsError(
        f"{folder}: unknown format; expected waveforms.hdf5 + metadata.csv (STEAD or SeisBench), "
        "PhaseNet .npz files (+ waveform.csv), or an ingested Zarr store (with --catalog)"
    )


def _stead_keys(folder) -> list[str]:
    meta = pd.read_csv(pathlib.Path(folder) / "metadata.csv", low_memory=False)
    return sorted(meta["trace_name"].astype(str))


def _hdf5_set_metadata(folder: pathlib.Path, names=None) -> pd.DataFrame:
    """``metadata.csv`` of an HDF5 window set (STEAD, SeisBench), sorted by ``trace_name``; only ``names``."""
    meta = pd.read_csv(folder / "metadata.csv", low_memory=False)
    meta["trace_name"] = meta["trace_name"].astype(str)
    if names is not None:
        meta = meta[meta["trace_name"].isin(set(names))]
    return meta.sort_values("trace_name")


def read_stead(folder, names=None, source=None):
    """Records of a STEAD-style folder (``waveforms.hdf5`` + ``metadata.csv``), E,N,Z → Z,N,E.

    Yields :class:`Record` or :class:`Skip`. ``names``: only these ``trace_name`` values.
    """
    import h5py

    folder = pathlib.Path(folder)
    source = source or folder.name
    meta = _hdf5_set_metadata(folder, names)
    with h5py.File(folder / "waveforms.hdf5", "r") as f:
        for row in meta.to_dict("records"):
            name = row["trace_name"]
            dset = None
            for group in ("data", "earthquake/local", "non_earthquake/noise"):
                if f"{group}/{name}" in f:
                    dset = f[f"{group}/{name}"]
                    break
            if dset is None:
                yield Skip(source, name, "trace_name not found in waveforms.hdf5")
                continue
            x = np.asarray(dset[()], dtype="float64")
            if x.ndim != 2 or 3 not in x.shape:
                yield Skip(source, name, f"expected (samples, 3) data, found shape {x.shape}")
                continue
            if x.shape[1] != 3:
                x = x.T
            data = x.T[[2, 1, 0]]  # E, N, Z -> Z, N, E
            category = str(row.get("trace_category", ""))
            is_noise = "noise" in category
            p, s = _float(row.get("p_arrival_sample")), _float(row.get("s_arrival_sample"))
            snr = str(row.get("snr_db", ""))
            snr_values = [v for v in (_float(t) for t in re.split(r"[\s\[\],]+", snr) if t) if not math.isnan(v)]
            rate = _float(row.get("trace_sampling_rate_hz"))
            rate = 100.0 if math.isnan(rate) else rate
            yield Record(
                source=source, name=name, data=data, sampling_rate=rate,
                present=np.ones(3, bool), kind="noise" if is_noise else "event",
                p_seconds=None if math.isnan(p) else p / rate,
                s_seconds=None if math.isnan(s) else s / rate,
                network=str(row.get("network_code", "")), station=str(row.get("receiver_code", "")),
                event_id="" if is_noise else f"{source}:{row.get('source_id', name)}",
                region=_region_of(source, row.get("receiver_latitude"), row.get("receiver_longitude")),
                start_time=_timestamp(row.get("trace_start_time")),
                magnitude=_float(row.get("source_magnitude")),
                snr_db=max(snr_values) if snr_values else math.nan,
            )


_PHASENET_NAME = re.compile(r"^(?P<net>[A-Za-z0-9]+)_(?P<sta>[A-Za-z0-9]+)_(?P<time>\d{8,16})(?:_\d+)?\.npz$")


def _phasenet_files(folder) -> dict[str, pathlib.Path]:
    folder = pathlib.Path(folder)
    files = {p.name: p for p in sorted(folder.glob("*.npz"))}
    for p in sorted(folder.glob("*/*.npz")):
        files.setdefault(p.name, p)
    return files


def _phasenet_keys(folder) -> list[str]:
    return sorted(_phasenet_files(folder))


def _phasenet_events(names) -> dict[str, str]:
    """Event id per file: file times within 60 s of each other (at several stations) are one event."""
    times = []
    for name in names:
        m = _PHASENET_NAME.match(name)
        if m:
            stamp = m["time"].ljust(16, "0")
            t = pd.Timestamp(f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:"
                             f"{stamp[12:14]}.{stamp[14:16]}")
            times.append((t, m["time"], name))
    times.sort()
    events, last, current = {}, None, None
    for t, stamp, name in times:
        if last is None or (t - last).total_seconds() > 60.0:
            current = stamp
        events[name] = current
        last = t
    return events


def read_phasenet(folder, names=None, source=None, events=None):
    """Records of a PhaseNet NCEDC folder (``*.npz``, optional ``waveform.csv``).

    Column order comes from ``channels`` (last letter E/N/Z, 1→N, 2→E); with fewer than three channel
    names the columns are the E, N, Z slots. All-zero columns are flagged absent, never invented.
    Yields :class:`Record` or :class:`Skip`.
    """
    folder = pathlib.Path(folder)
    source = source or folder.name
    files = _phasenet_files(folder)
    table = {}
    if (folder / "waveform.csv").exists():
        for row in pd.read_csv(folder / "waveform.csv").to_dict("records"):
            table[str(row["fname"])] = row
    wanted = sorted(files) if names is None else sorted(names)
    events = events if events is not None else _phasenet_events(sorted(files))
    for name in wanted:
        path = files.get(name)
        if path is None:
            yield Skip(source, name, "listed but no such .npz file")
            continue
        try:
            with np.load(path) as d:
                x = np.asarray(d["data"], dtype="float64")
                itp = int(d["itp"]) if "itp" in d.files else None
                its = int(d["its"]) if "its" in d.files else None
                channels = str(d["channels"]) if "channels" in d.files else ""
        except Exception as exc:  # noqa: BLE001 (any unreadable file is reported and skipped)
            yield Skip(source, name, f"unreadable .npz ({type(exc).__name__}: {exc})")
            continue
        row = table.get(name, {})
        if itp is None and "itp" in row:
            itp = int(row["itp"])
        if its is None and "its" in row and not pd.isna(row["its"]):
            its = int(row["its"])
        channels = channels or str(row.get("channels", ""))
        if x.ndim != 2 or x.shape[1] != 3:
            yield Skip(source, name, f"expected data of shape (samples, 3), found {x.shape}")
            continue
        codes = [c for c in channels.split("_") if c]
        if len(codes) == 3:
            order = [{"1": "N", "2": "E"}.get(c[-1].upper(), c[-1].upper()) for c in codes]
        else:
            order = ["E", "N", "Z"]
        if sorted(order) != ["E", "N", "Z"]:
            yield Skip(source, name, f"cannot map channels {channels!r} to Z/N/E")
            continue
        named = {("1" if c[-1] == "1" else "2" if c[-1] == "2" else c[-1].upper()) for c in codes}
        named = {{"1": "N", "2": "E"}.get(c, c) for c in named} or set(COMPONENTS)
        data = np.zeros((3, x.shape[0]))
        present = np.zeros(3, bool)
        for col, comp in enumerate(order):
            k = COMPONENTS.index(comp)
            data[k] = x[:, col]
            present[k] = comp in named and bool(np.any(x[:, col] != 0))
        m = _PHASENET_NAME.match(name)
        net, sta = (m["net"], m["sta"]) if m else ("", pathlib.Path(name).stem)
        yield Record(
            source=source, name=name, data=data, sampling_rate=100.0, present=present, kind="event",
            p_seconds=None if itp is None else itp / 100.0, s_seconds=None if its is None else its / 100.0,
            network=net, station=sta, event_id=f"{source}:{events.get(name, pathlib.Path(name).stem)}",
            region=_region_of(source),
        )


def _seisbench_keys(folder) -> list[str]:
    meta = pd.read_csv(pathlib.Path(folder) / "metadata.csv", low_memory=False)
    return sorted(meta["trace_name"].astype(str))


_TAUP = {}


def _taup_p_seconds(depth_km, src_lat, src_lon, sta_lat, sta_lon) -> float | None:
    """First P arrival (p or P) in s after origin, iasp91, station elevation ignored."""
    from obspy.geodetics import locations2degrees
    from obspy.taup import TauPyModel

    if "iasp91" not in _TAUP:
        _TAUP["iasp91"] = TauPyModel("iasp91")
    values = [_float(v) for v in (depth_km, src_lat, src_lon, sta_lat, sta_lon)]
    if any(math.isnan(v) for v in values):
        return None
    depth, a, b, c, d = values
    degrees = locations2degrees(a, b, c, d)
    arrivals = _TAUP["iasp91"].get_travel_times(source_depth_in_km=max(depth, 0.0),
                                                distance_in_degree=degrees, phase_list=["p", "P"])
    return min(a.time for a in arrivals) if arrivals else None


def read_seisbench(folder, names=None, source=None):
    """Records of a SeisBench-format folder (bucketed ``waveforms.hdf5`` + ``metadata.csv``).

    Component order from ``data_format/component_order`` (default ZNE), dimension order from
    ``data_format/dimension_order`` (``CW`` channel-first, or ``WC``), rate from
    ``trace_sampling_rate_hz`` or ``data_format/sampling_rate``. Without a P pick in the metadata, P is
    **predicted** with TauP (iasp91) from the hypocentre and station, assuming the trace starts at the
    origin time unless ``source_origin_time`` is given. Yields :class:`Record` or :class:`Skip`.
    """
    import h5py

    folder = pathlib.Path(folder)
    source = source or folder.name
    meta = _hdf5_set_metadata(folder, names)

    def text(v):
        return v.decode() if isinstance(v, bytes) else str(v)

    with h5py.File(folder / "waveforms.hdf5", "r") as f:
        fmt = f.get("data_format")
        comp_order = text(fmt["component_order"][()]) if fmt is not None and "component_order" in fmt else "ZNE"
        dim_order = text(fmt["dimension_order"][()]) if fmt is not None and "dimension_order" in fmt else "CW"
        default_rate = float(fmt["sampling_rate"][()]) if fmt is not None and "sampling_rate" in fmt else math.nan
        for row in meta.to_dict("records"):
            name = row["trace_name"]
            bucket, _, index = name.partition("$")
            try:
                i = int(index.split(",")[0]) if index else None
                x = np.asarray(f["data"][bucket][i] if i is not None else f["data"][bucket][()], dtype="float64")
            except (KeyError, ValueError, IndexError) as exc:
                yield Skip(source, name, f"trace not found in waveforms.hdf5 ({exc})")
                continue
            if dim_order.upper().startswith("W"):
                x = x.T
            comps = [{"1": "N", "2": "E"}.get(c, c) for c in comp_order.upper()]
            if x.ndim != 2 or x.shape[0] != len(comps) or sorted(comps) != ["E", "N", "Z"]:
                yield Skip(source, name, f"expected {len(comps)}×samples ({comp_order}), found {x.shape}")
                continue
            data = np.stack([x[comps.index(c)] for c in COMPONENTS])
            rate = _float(row.get("trace_sampling_rate_hz"))
            rate = default_rate if math.isnan(rate) else rate
            if math.isnan(rate) or rate <= 0:
                yield Skip(source, name, "no sampling rate (trace_sampling_rate_hz or data_format/sampling_rate)")
                continue
            start = _timestamp(row.get("trace_start_time"))
            p = s = None
            predicted = False
            for key in ("trace_p_arrival_sample", "trace_P_arrival_sample", "trace_Pg_arrival_sample"):
                if not math.isnan(_float(row.get(key))):
                    p = _float(row[key]) / rate
                    break
            for key in ("trace_s_arrival_sample", "trace_S_arrival_sample", "trace_Sg_arrival_sample"):
                if not math.isnan(_float(row.get(key))):
                    s = _float(row[key]) / rate
                    break
            if p is None:
                travel = _taup_p_seconds(row.get("source_depth_km"), row.get("source_latitude_deg"),
                                         row.get("source_longitude_deg"), row.get("station_latitude_deg"),
                                         row.get("station_longitude_deg"))
                if travel is not None:
                    origin = _timestamp(row.get("source_origin_time"))
                    offset = 0.0 if np.isnat(origin) or np.isnat(start) else (
                        (origin - start) / np.timedelta64(1, "ns") / 1e9)
                    p, predicted = offset + travel, True
            event = row.get("source_id")
            if event is None or (isinstance(event, float) and math.isnan(event)):
                event = row.get("source_origin_time", row.get("trace_start_time", name))
            yield Record(
                source=source, name=name, data=data, sampling_rate=rate, present=np.ones(3, bool),
                kind="event", p_seconds=p, s_seconds=s,
                network=str(row.get("station_network_code", "")), station=str(row.get("station_code", "")),
                event_id=f"{source}:{event}",
                region=_region_of(source, row.get("station_latitude_deg"), row.get("station_longitude_deg")),
                start_time=start, magnitude=_float(row.get("source_magnitude")), p_predicted=predicted,
            )


# ------------------------------------------------------------------------------ store + catalog


def _read_catalog(catalog) -> pd.DataFrame:
    fs, path = storage.filesystem(str(catalog))
    try:
        with fs.open(path, "rb") as f:
            cat = pd.read_csv(f, dtype={"event_id": str, "station": str})
    except FileNotFoundError:
        raise WindowsError(f"{catalog}: catalog CSV not found") from None
    need = {"event_id", "station", "p_time"}
    if not need <= set(cat.columns):
        raise InputFileError(catalog, f"expected the columns {sorted(need)} (synth's catalog.csv format), "
                                      f"found {list(cat.columns)}")
    for col in ("p_time", "s_time", "origin_time"):
        if col in cat:
            cat[col] = pd.to_datetime(cat[col], utc=True, format="ISO8601").dt.tz_localize(None)
    return cat


def _read_transients(catalog) -> pd.DataFrame | None:
    url = str(catalog)
    parent = url.rsplit("/", 1)[0] if "/" in url else "."
    fs, path = storage.filesystem(storage.join(parent, "transients.csv"))
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        tr = pd.read_csv(f, dtype={"station": str})
    if not {"station", "time"} <= set(tr.columns):
        return None
    tr["time"] = pd.to_datetime(tr["time"], utc=True, format="ISO8601").dt.tz_localize(None)
    return tr


def _catalog_region(catalog) -> str:
    url = str(catalog)
    parent = url.rsplit("/", 1)[0] if "/" in url else "."
    fs, path = storage.filesystem(storage.join(parent, "archive.json"))
    return "synthetic" if fs.exists(path) else "unknown"


def _station_channels(ids) -> dict[str, dict[str, str]]:
    """NET.STA → {Z/N/E: channel id} (first id per component in sorted order; 1→N, 2→E)."""
    out: dict[str, dict[str, str]] = {}
    for cid in sorted(ids):
        net, sta, _loc, cha = cid.split(".")
        comp = {"1": "N", "2": "E"}.get(cha[-1:].upper(), cha[-1:].upper())
        if comp in COMPONENTS:
            out.setdefault(f"{net}.{sta}", {}).setdefault(comp, cid)
    return out


def _plan_store(url, catalog, opts, rng) -> tuple[list[dict], list[Skip]]:
    """Tasks (one per station) of earthquake and noise windows to cut from an ingested store."""
    import seisgrid

    archive = seisgrid.open_archive(url)
    source = pathlib.PurePosixPath(str(url).rstrip("/")).name
    cat = _read_catalog(catalog)
    transients = _read_transients(catalog)
    region = _catalog_region(catalog)
    channels = _station_channels(archive.ids)
    skips: list[Skip] = []
    window = opts["window_seconds"]
    away = opts["catalog_noise_seconds"]
    picks = np.sort(np.concatenate([
        cat["p_time"].dropna().to_numpy("datetime64[ns]"),
        cat["s_time"].dropna().to_numpy("datetime64[ns]") if "s_time" in cat else np.array([], "datetime64[ns]"),
    ]))
    picks_s = picks.astype("int64") / 1e9

    def far_from_picks(t0: float) -> bool:
        i = np.searchsorted(picks_s, t0 - away)
        return i >= len(picks_s) or picks_s[i] > t0 + window + away

    tasks = []
    min_snr = opts["catalog_min_snr"]
    for station in sorted(set(cat["station"]) | set(channels)):
        comps = channels.get(station)
        rows = cat[cat["station"] == station].sort_values(["p_time", "event_id"])
        if comps is None:
            for r in rows.itertuples():
                skips.append(Skip(source, f"{station} event {r.event_id}", "station not in the store"))
            continue
        quakes = []
        for r in rows.to_dict("records"):
            name = f"{station} event {r['event_id']}"
            if min_snr is not None and not (_float(r.get("snr")) >= float(min_snr)):
                skips.append(Skip(source, f"{name} (snr {r.get('snr')})", f"catalog snr below catalog_min_snr {min_snr}"))
                continue
            if pd.isna(r["p_time"]):
                skips.append(Skip(source, name, "no p_time in the catalog"))
                continue
            snr = _float(r.get("snr"))
            quakes.append({
                "name": name, "event_id": f"{source}:{r['event_id']}", "p": pd.Timestamp(r["p_time"]).value,
                "s": None if pd.isna(r.get("s_time", pd.NaT)) else pd.Timestamp(r["s_time"]).value,
                "magnitude": _float(r.get("magnitude")),
                "snr_db": 20 * math.log10(snr) if snr > 0 else math.nan,
            })
        # noise: transients first (noise by definition), then random grid windows, all far from picks
        ref = comps.get("Z") or next(iter(comps.values()))
        attrs = archive.channel(ref)
        segs = attrs["segments"]
        noise = []
        n_noise = round(opts["catalog_noise_ratio"] * len(quakes))
        if segs and n_noise > 0:
            rate = attrs["sampling_rate"]
            t_lo = attrs["origin_ns"] / 1e9 + segs[0][0] / rate + STORE_PAD_SECONDS
            t_hi = attrs["origin_ns"] / 1e9 + segs[-1][1] / rate - STORE_PAD_SECONDS - window
            chosen: list[float] = []

            def free(t0, t_lo=t_lo, t_hi=t_hi, chosen=chosen):
                return t_lo <= t0 <= t_hi and far_from_picks(t0) and all(abs(t0 - c) >= window for c in chosen)

            if transients is not None:
                times = transients.loc[transients["station"] == station, "time"].sort_values()
                for t in times.to_numpy("datetime64[ns]").astype("int64") / 1e9:
                    t0 = float(t - rng.uniform(2.0, window - 3.0))
                    if len(chosen) < n_noise and free(t0):
                        chosen.append(t0)
            grid = np.arange(t_lo, t_hi, window)
            for t0 in grid[rng.permutation(len(grid))]:
                if len(chosen) >= n_noise:
                    break
                if free(float(t0)):
                    chosen.append(float(t0))
            noise = sorted(chosen)
        net, sta = station.split(".", 1)
        tasks.append({"format": "store", "path": str(url), "source": source, "station": station,
                      "network": net, "station_code": sta, "channels": comps, "region": region,
                      "quakes": quakes, "noise": noise})
    return tasks, skips


def read_store(task, opts):
    """Records (event and noise cut-outs) of one station of an ingested store, for :func:`_run_task`."""
    import obspy

    import seisgrid

    archive = seisgrid.open_archive(task["path"])
    window, pre = opts["window_seconds"], opts["pre_p_seconds"]
    source = task["source"]

    def cut(t0_s: float, t1_s: float, name: str):
        """(data (3, n), present, rate, first-sample time in s) of [t0, t1), or a Skip."""
        data, present, rate, first = [None] * 3, np.zeros(3, bool), None, None
        for k, comp in enumerate(COMPONENTS):
            cid = task["channels"].get(comp)
            if cid is None:
                continue
            st = archive.stream(cid, obspy.UTCDateTime(t0_s), obspy.UTCDateTime(t1_s))
            if not st:
                continue  # no data of this component here: flagged absent
            r = archive.channel(cid)["sampling_rate"]
            expected = math.floor((t1_s - t0_s) * r)
            n = sum(tr.stats.npts for tr in st)
            if len(st) > 1 or n < expected - 1:
                return Skip(source, name, f"gap in {cid} ({n} of {expected} samples)")
            if rate is not None and r != rate:
                return Skip(source, name, f"components at different rates ({rate} and {r} Hz)")
            rate = r
            if first is None:
                first = st[0].stats.starttime.ns / 1e9
            data[k] = st[0].data.astype("float64")
            present[k] = True
        if rate is None:
            return Skip(source, name, "no Z/N/E data in the store at this time")
        n = min(len(d) for d in data if d is not None)
        arr = np.zeros((3, n))
        for k in range(3):
            if data[k] is not None:
                arr[k] = data[k][:n]
        return arr, present, rate, first

    out = []
    for q in task["quakes"]:
        p_s = q["p"] / 1e9
        jitter = opts["pre_p_jitter_seconds"]
        t0 = p_s - pre - jitter - STORE_PAD_SECONDS
        got = cut(t0, p_s - pre + jitter + window + STORE_PAD_SECONDS, q["name"])
        if isinstance(got, Skip):
            out.append(got)
            continue
        arr, present, rate, first = got
        t0 = first
        out.append(Record(
            source=source, name=q["name"], data=arr, sampling_rate=rate, present=present, kind="event",
            p_seconds=p_s - t0, s_seconds=None if q["s"] is None else q["s"] / 1e9 - t0,
            network=task["network"], station=task["station_code"], event_id=q["event_id"],
            region=task["region"], start_time=np.datetime64(round(t0 * 1e9), "ns"),
            magnitude=q["magnitude"], snr_db=q["snr_db"],
        ))
    for t in task["noise"]:
        t0 = t - STORE_PAD_SECONDS
        name = f"{task['station']} noise {pd.Timestamp(round(t * 1e9)).isoformat()}"
        got = cut(t0, t + window + STORE_PAD_SECONDS, name)
        if isinstance(got, Skip):
            out.append(got)
            continue
        arr, present, rate, first = got
        out.append(Record(
            source=source, name=name, data=arr, sampling_rate=rate, present=present, kind="noise",
            network=task["network"], station=task["station_code"], region=task["region"],
            start_time=np.datetime64(round(first * 1e9), "ns"), noise_offsets=[t - first],
        ))
    return out


# ---------------------------------------------------------------------------------------- windowing


def resample(x: np.ndarray, rate: float, target: float) -> np.ndarray:
    """Resample along the last axis from ``rate`` to ``target`` Hz with :func:`scipy.signal.resample_poly`.

    The mean is removed first (so the zero padding at the edges adds no step); the polyphase FIR
    (Kaiser window, beta 5) low-passes at the lower of the two Nyquist frequencies, so downsampling is
    anti-aliased and upsampling does not create spectral images.
    """
    x = np.asarray(x, dtype="float64")
    x = x - x.mean(axis=-1, keepdims=True)
    if rate == target:
        return x
    ratio = Fraction(target / rate).limit_denominator(1000)
    if abs(float(ratio) - target / rate) > 1e-9 * target / rate:
        raise WindowsError(f"cannot resample {rate} Hz to {target} Hz with a small rational factor")
    return scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


def _window_record(rec: Record, w: np.ndarray, start: int, label: int, opts, p=-1, s=-1) -> dict:
    w = w - w.mean(axis=-1, keepdims=True)
    w[~rec.present] = 0.0
    rate = opts["sampling_rate"]
    start_time = rec.start_time + np.timedelta64(round(start / rate * 1e9), "ns") \
        if not np.isnat(rec.start_time) else NAT
    return {
        "waveform": w.astype("float32"), "present": rec.present.copy(), "label": label,
        "p_index": p, "s_index": s, "source": rec.source, "region": rec.region, "network": rec.network,
        "station": rec.station, "event_id": rec.event_id, "start_time": start_time,
        "magnitude": rec.magnitude if label == EARTHQUAKE else math.nan,
        "snr_db": rec.snr_db if label == EARTHQUAKE else math.nan, "record": rec.name,
        "p_predicted": rec.p_predicted,
    }


def cut_windows(rec: Record, opts: dict) -> tuple[list[dict], list[Skip], int]:
    """Windows of one record: ``(windows, skips, no_noise)`` (see the module docstring for the rules).

    ``no_noise`` is 1 when an event record yields no noise window (pre-P segment too short).
    """
    rate = opts["sampling_rate"]
    n_win = round(opts["window_seconds"] * rate)
    data = np.asarray(rec.data, dtype="float64")
    if data.shape[0] != 3:
        return [], [Skip(rec.source, rec.name, f"expected 3 components, found shape {data.shape}")], 0
    if not np.all(np.isfinite(data)):
        return [], [Skip(rec.source, rec.name, "NaN or infinite samples")], 0
    present = rec.present & np.any(data != 0, axis=1)
    if not present.any():
        return [], [Skip(rec.source, rec.name, "all-zero data")], 0
    rec.present = present
    if data.shape[1] * rate / rec.sampling_rate < n_win:
        seconds = data.shape[1] / rec.sampling_rate
        return [], [Skip(rec.source, rec.name,
                         f"too short ({seconds:g} s < {opts['window_seconds']:g} s window)")], 0
    x = resample(data, rec.sampling_rate, rate)
    n = x.shape[1]
    if n < n_win:
        return [], [Skip(rec.source, rec.name, f"too short ({n} samples < {n_win} after resampling)")], 0
    windows = []
    if rec.kind == "noise":
        starts = [round(o * rate) for o in rec.noise_offsets] or \
                 [k * n_win for k in range(min(opts["noise_per_record"], n // n_win))]
        for a in starts:
            if 0 <= a and a + n_win <= n:
                windows.append(_window_record(rec, x[:, a:a + n_win].copy(), a, NOISE, opts))
        if not windows:
            return [], [Skip(rec.source, rec.name, "noise record shorter than a window")], 0
        return windows, [], 0
    if rec.p_seconds is None or not math.isfinite(rec.p_seconds):
        return [], [Skip(rec.source, rec.name, "no P pick (and none could be predicted)")], 0
    p = round(rec.p_seconds * rate)
    if not 0 <= p < n:
        return [], [Skip(rec.source, rec.name, f"P at {rec.p_seconds:g} s is outside the record")], 0
    # Where P sits in the window varies (pre_p ± jitter, seeded per record): a detector sliding over an
    # archive meets P anywhere, and a fixed offset lets a classifier learn the offset instead of the event.
    jitter = opts["pre_p_jitter_seconds"]
    rng = np.random.default_rng([opts["seed"], zlib.crc32(f"{rec.source}/{rec.name}".encode())])
    pre_p = opts["pre_p_seconds"] + (rng.uniform(-jitter, jitter) if jitter else 0.0)
    start = max(0, p - round(max(pre_p, 0.0) * rate))
    start = min(start, n - n_win)
    s = -1
    if rec.s_seconds is not None and math.isfinite(rec.s_seconds):
        s_idx = round(rec.s_seconds * rate) - start
        s = s_idx if 0 <= s_idx < n_win else -1
    windows.append(_window_record(rec, x[:, start:start + n_win].copy(), start, EARTHQUAKE, opts,
                                  p=p - start, s=s))
    end = p - round(opts["noise_margin_seconds"] * rate)
    k = 0
    while k < opts["noise_per_record"] and (k + 1) * n_win <= end:
        a = k * n_win
        windows.append(_window_record(rec, x[:, a:a + n_win].copy(), a, NOISE, opts))
        k += 1
    return windows, [], int(k == 0)


# ----------------------------------------------------------------------------------------- planning


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def _plan_source(source: str, catalog, opts, rng) -> tuple[list[dict], list[Skip], str]:
    fmt = detect_format(source)
    if fmt == "store":
        if catalog is None:
            raise WindowsError(f"{source}: an ingested store needs a catalog CSV (catalog=... / --catalog)")
        tasks, skips = _plan_store(source, catalog, opts, rng)
        return tasks, skips, fmt
    folder = _local(source)
    name = folder.name
    if fmt == "stead":
        keys, size = _stead_keys(folder), 256
    elif fmt == "seisbench":
        keys, size = _seisbench_keys(folder), 256
    else:
        keys, size = _phasenet_keys(folder), 64
    extra = {"events": _phasenet_events(keys)} if fmt == "phasenet" else {}
    tasks = [{"format": fmt, "path": str(folder), "source": name, "keys": chunk, **extra}
             for chunk in _chunks(keys, size)]
    return tasks, [], fmt


def _run_task(task: dict, opts: dict) -> dict:
    """Read one task's records and cut their windows (runs on a Dask worker when a client is given)."""
    fmt = task["format"]
    if fmt == "stead":
        records = read_stead(task["path"], task["keys"], source=task["source"])
    elif fmt == "phasenet":
        events = {k: v for k, v in task.get("events", {}).items() if k in set(task["keys"])}
        records = read_phasenet(task["path"], task["keys"], source=task["source"], events=events or None)
    elif fmt == "seisbench":
        records = read_seisbench(task["path"], task["keys"], source=task["source"])
    else:
        records = read_store(task, opts)
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


# ------------------------------------------------------------------------------------------- splits


def _components(event_ids, stations) -> np.ndarray:
    """Connected-component id per window of the graph linking each window's event and station."""
    parent: dict = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    nodes = []
    for ev, st in zip(event_ids, stations):
        a = ("st", st)
        find(a)
        if ev:
            b = find(("ev", ev))
            ra = find(a)
            if ra != b:
                parent[max(ra, b)] = min(ra, b)
        nodes.append(a)
    roots = [find(a) for a in nodes]
    index = {r: i for i, r in enumerate(sorted(set(roots)))}
    return np.array([index[r] for r in roots], dtype=np.int64)


def _greedy(comp: np.ndarray, names: list[str], fractions, rng) -> np.ndarray:
    ids, sizes = np.unique(comp, return_counts=True)
    order = rng.permutation(len(ids))
    order = order[np.argsort(-sizes[order], kind="stable")]  # largest first, ties in seeded order
    fractions = np.asarray(fractions, dtype=float)
    fractions = fractions / fractions.sum()
    target = fractions * len(comp)
    filled = np.zeros(len(names))
    chosen = {}
    for j in order:
        k = int(np.argmax(target - filled))
        chosen[ids[j]] = names[k]
        filled[k] += sizes[j]
    return np.array([chosen[c] for c in comp], dtype=object)


def assign_splits(event_ids, stations, fractions=(0.7, 0.15, 0.15), seed=0) -> np.ndarray:
    """``train``/``val``/``test`` per window, whole event+station components at a time.

    Parameters
    ----------
    event_ids, stations : sequence of str
        Per window; ``stations`` as ``NET.STA``; an empty event id links nothing.
    fractions : (float, float, float)
        Target shares of windows.
    seed : int
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ConfigError(f"windows.split_fractions={list(fractions)}: expected three shares ≥ 0, e.g. [0.7, 0.15, 0.15]")
    if len(stations) == 0:
        return np.array([], dtype=object)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    return _greedy(_components(event_ids, stations), ["train", "val", "test"], fractions, rng)


def split_groups(event_ids, stations, start_times, fractions) -> tuple[list, str]:
    """What ``split`` groups by: ``("event+station")`` — no event and no station in two splits — unless
    that leaves one component too big for the split fractions, as in a dense network where every
    event is recorded at every station; then ``"event"``: earthquake windows grouped by event, noise
    windows without an event by station and hour (so neighbouring noise never straddles splits).

    Returns the per-window keys for :func:`assign_splits` and the grouping's name.
    """
    comp = _components(event_ids, stations)
    largest = np.bincount(comp).max() / len(comp) if len(comp) else 0.0
    if largest <= fractions[0] / sum(fractions) + 0.05:
        return list(event_ids), "event+station"
    keys = [ev or f"noise:{st}:{str(t)[:13]}" for ev, st, t in zip(event_ids, stations, start_times)]
    return keys, "event"


def assign_region_splits(event_ids, stations, regions, networks, test_regions=(), test_networks=(),
                         fractions=(0.7, 0.15, 0.15), seed=0) -> np.ndarray:
    """Cross-region split: components touching a held-out region or network are ``test``; the rest
    train/val in the ratio of the first two ``fractions``."""
    comp = _components(event_ids, stations)
    held = np.isin(np.asarray(regions, dtype=object), list(test_regions)) | \
        np.isin(np.asarray(networks, dtype=object), list(test_networks))
    held_comp = np.isin(comp, np.unique(comp[held]))
    out = np.full(len(comp), "test", dtype=object)
    rest = ~held_comp
    if rest.any():
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2]))
        out[rest] = _greedy(comp[rest], ["train", "val"], list(fractions[:2]), rng)
    return out


# ------------------------------------------------------------------------------------- augmentation


def _augment(columns: dict, opts: dict, seed: int) -> dict:
    """Augmented windows from windows that are train in both splits (see the module docstring)."""
    rate = opts["sampling_rate"]
    label, split, region_split = columns["label"], columns["split"], columns["split_region"]
    train = (split == "train") & (region_split == "train") & ~columns["augmented"]
    quakes = np.flatnonzero(train & (label == EARTHQUAKE) & (columns["p_index"] >= 0))
    noises = np.flatnonzero(train & (label == NOISE))
    n = round(opts["augment_factor"] * np.count_nonzero((split == "train") & (label == EARTHQUAKE)))
    if n <= 0 or len(quakes) == 0 or len(noises) == 0:
        return {}
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 3]))
    wave, present = columns["waveform"], columns["present"]
    n_win = wave.shape[-1]
    lo_db, hi_db = opts["augment_snr_db"]
    lo_sc, hi_sc = opts["augment_scale"]
    max_shift = round(opts["augment_shift_seconds"] * rate)
    taper = max(1, round(TAPER_SECONDS * rate))
    sig_len = round(SNR_SIGNAL_SECONDS * rate)
    out = {k: [] for k in ("waveform", "present", "p_index", "s_index", "snr_db", "src")}
    for _ in range(n):
        q = int(quakes[rng.integers(len(quakes))])
        match = noises[np.all(present[noises] >= present[q], axis=1)]
        nz = int((match if len(match) else noises)[rng.integers(len(match) if len(match) else len(noises))])
        p0 = int(columns["p_index"][q])
        lo = max(-max_shift, int(0.5 * rate) - p0)
        hi = min(max_shift, n_win - sig_len - p0)
        shift = int(rng.integers(lo, hi + 1)) if hi >= lo else 0
        eq = np.zeros((3, n_win))
        src = wave[q].astype("float64")
        if shift >= 0:
            eq[:, shift:] = src[:, :n_win - shift]
            edge = shift
        else:
            eq[:, :n_win + shift] = src[:, -shift:]
            edge = n_win + shift
        if shift:  # taper the zero-filled edge so the shift adds no step
            ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(taper) / taper)
            if shift > 0:
                eq[:, edge:edge + taper] *= ramp[: max(0, min(taper, n_win - edge))]
            else:
                eq[:, max(0, edge - taper):edge] *= ramp[::-1][taper - min(taper, edge):]
        p = p0 + shift
        both = present[q] & present[nz]
        noise = wave[nz].astype("float64")
        sig_rms = np.sqrt(np.mean(eq[both][:, p:p + sig_len] ** 2)) if both.any() else 0.0
        noise_rms = np.sqrt(np.mean(noise[both] ** 2)) if both.any() else 0.0
        snr_db = float(rng.uniform(lo_db, hi_db))
        gain = (noise_rms * 10 ** (snr_db / 20) / sig_rms) if sig_rms > 0 and noise_rms > 0 else 1.0
        scale = float(np.exp(rng.uniform(math.log(lo_sc), math.log(hi_sc))))
        mix = (gain * eq + noise) * scale
        mix -= mix.mean(axis=-1, keepdims=True)
        mix[~both] = 0.0
        s0 = int(columns["s_index"][q])
        s = s0 + shift if s0 >= 0 and 0 <= s0 + shift < n_win else -1
        out["waveform"].append(mix.astype("float32"))
        out["present"].append(both)
        out["p_index"].append(p)
        out["s_index"].append(s)
        out["snr_db"].append(snr_db)
        out["src"].append(q)
    src = np.array(out["src"], dtype=np.int64)
    aug = {k: columns[k][src] for k in columns if k not in ("waveform", "present", "p_index", "s_index", "snr_db")}
    aug.update(waveform=np.stack(out["waveform"]), present=np.stack(out["present"]),
               p_index=np.array(out["p_index"], dtype=np.int32), s_index=np.array(out["s_index"], dtype=np.int32),
               snr_db=np.array(out["snr_db"], dtype=np.float32))
    aug["label"] = np.full(n, EARTHQUAKE, dtype=np.int8)
    aug["augmented"] = np.ones(n, bool)
    aug["split"] = np.full(n, "train", dtype=object)
    aug["split_region"] = np.full(n, "train", dtype=object)
    aug["start_time"] = np.full(n, NAT)
    return aug


# --------------------------------------------------------------------------------------------- build


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


def _collect(results) -> tuple[dict, list, int, int]:
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


def open_dataset(url, what: str = "labelled-window store", make: str = "seisgrid windows",
                 required=(), **open_kwargs):
    """A window or spectrogram store (local or URL) as an xarray Dataset, with an error naming the URL,
    what was expected and the command that makes one. ``open_kwargs`` go to :func:`xarray.open_zarr`
    (e.g. ``chunks=None`` for lazily indexed arrays without Dask)."""
    import xarray as xr

    try:
        with warnings.catch_warnings():  # consolidated metadata is used when the store has it
            warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata")
            ds = xr.open_zarr(storage.zarr_store(str(url), read_only=True), **open_kwargs)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise StorageError(f"{url}: not a {what} ({exc}); run `{make}` first") from exc
    missing = [name for name in required if name not in ds]
    if missing:
        raise StorageError(f"{url}: no {', '.join(missing)} variable(s); expected a {what} (`{make}`)")
    return ds


def build_windows(sources: list[str], out: str, *, catalog=None, client=None, seed=None,
                  progress: bool = True, **options) -> dict:
    """Build the labelled-window Zarr store ``out`` from real labelled sets and/or ingested stores.

    Parameters
    ----------
    sources : list of str
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
    tasks, skipped, formats = [], [], {}
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
    stations = [f"{a}.{b}" for a, b in zip(cols["network"], cols["station"])]
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
    ds = _dataset(cols, opts, formats)
    _write(ds, out, opts["chunk_windows"])
    labels = cols["label"]
    reasons: dict[str, int] = {}
    for _, _, reason in skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    summary = {
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


def _dataset(cols: dict, opts: dict, formats: dict):
    import xarray as xr

    n_win = cols["waveform"].shape[-1]
    one = ("window",)
    data_vars = {
        "waveform": (("window", "component", "sample"), cols["waveform"].astype("float32"),
                     {"units": "counts", "long_name": "ground motion, mean removed, resampled"}),
        "present": (("window", "component"), cols["present"].astype(bool)),
        "label": (one, cols["label"].astype(np.int8), {"flag_values": "0 1", "flag_meanings": "noise earthquake"}),
        "p_index": (one, cols["p_index"].astype(np.int32), {"missing": -1}),
        "s_index": (one, cols["s_index"].astype(np.int32), {"missing": -1}),
        "start_time": (one, cols["start_time"].astype("datetime64[ns]")),
        "magnitude": (one, cols["magnitude"].astype(np.float32)),
        "snr_db": (one, cols["snr_db"].astype(np.float32), {"units": "dB"}),
        "augmented": (one, cols["augmented"].astype(bool)),
    }
    for key in ("source", "region", "network", "station", "event_id", "split", "split_region"):
        data_vars[key] = (one, np.asarray([str(v) for v in cols[key]], dtype=object))
    counts = {}
    for s in sorted(set(cols["source"])):
        sel = cols["source"] == s
        counts[s] = {"earthquake": int((cols["label"][sel] == 1).sum()), "noise": int((cols["label"][sel] == 0).sum())}
    attrs = {
        "kind": "seisgrid-windows", "sampling_rate": opts["sampling_rate"], "window_seconds": opts["window_seconds"],
        "window_samples": int(n_win), "pre_p_seconds": opts["pre_p_seconds"],
        "noise_margin_seconds": opts["noise_margin_seconds"], "resampling": RESAMPLING,
        "components": "".join(COMPONENTS), "source_counts": counts, "formats": formats,
        "split_fractions": opts["split_fractions"], "seed": opts["seed"], "split_grouping": opts["split_grouping"],
        "test_regions": opts["test_regions"], "test_networks": opts["test_networks"],
        "noise_assumption": "noise windows are pre-P segments of event records ending at least "
                            f"{opts['noise_margin_seconds']:g} s before P (or store times at least "
                            f"{opts['catalog_noise_seconds']:g} s from any catalog P/S); they may contain "
                            "unseen events",
        "augmentation": f"train only: real earthquakes mixed into real noise at {opts['augment_snr_db']} dB, "
                        f"shifts ±{opts['augment_shift_seconds']:g} s, scale {opts['augment_scale']}",
        "p_prediction": "SeisBench records without picks: first P of TauP iasp91 (p_index predicted)",
    }
    ds = xr.Dataset(data_vars, coords={"component": ("component", np.array(COMPONENTS, dtype=object))},
                    attrs=attrs)
    return ds


def _write(ds, out: str, chunk: int) -> None:
    import zarr

    store = storage.zarr_store(out)
    encoding = {name: {"chunks": (chunk,) + ds[name].shape[1:]} for name in ds.data_vars}
    with warnings.catch_warnings():
        # Consolidated metadata (so a plain xarray.open_zarr finds every variable in one read) is not
        # in the Zarr v3 spec yet; zarr warns on write only.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=zarr.errors.ZarrUserWarning)
        ds.to_zarr(store, mode="w", zarr_format=3, consolidated=True, encoding=encoding)
