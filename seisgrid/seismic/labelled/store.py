"""Ingested waveform stores (``seisgrid ingest``), with a catalog CSV or with a trigger mask.

Channels: one sensor per station, Z/N/E slots with 1/2 → N/E (:mod:`seisgrid.seismic.channels`).

With a catalog (format of :mod:`seisgrid.seismic.synth`'s ``catalog.csv``: event_id, station NET.STA,
p_time, s_time, magnitude, snr, ...): earthquake windows around each catalog P; noise windows
(``quiet_noise``) at times at least ``catalog_noise_seconds`` from every catalog P and S (any station).
Transients listed in a ``transients.csv`` beside the catalog (synth's icequakes) are **noise by
definition**: noise windows containing them are chosen first and have the sub-class ``icequake``.

Without a catalog: only ``quiet_noise`` windows (up to ``store_noise_per_station`` per station), away
from a **trigger mask**: the STA/LTA archive triggers of :func:`seisgrid.seismic.stalta.detect_archive`
(``seisgrid.stalta`` archive settings, Z channels, run with a coincidence sum of 1 so that every
single-station trigger is returned with the stations it covers). A window of station X is not quiet when
it comes within ``noise_trigger_pad_seconds`` of a trigger on X itself or of a trigger covering at least
``noise_trigger_stations`` stations (capped at the number of stations).

Noise candidates lie on a ``window_seconds`` grid **inside the recorded data only**: every channel of the
station must cover the window (plus the resampling pad) without a gap, so no candidate falls where there
are no data. ``despike``: dropouts — samples exactly 0 far from their neighbours (the Rutford ZZ
stations', thousands of counts from the DC level; 36 of the 520 Rutford noise windows hold one) — become
the neighbours' median in every cut-out, with the rule and factor of archive detection
(:func:`seisgrid.seismic.stationdata.despike`), so windows and detection see the same samples.
Region: ``synthetic`` for synth archives (``archive.json`` beside the catalog), else from the station
coordinates (``stations`` option, or a ``stations.csv`` beside the catalog), else
``unknown``; ``distance_km`` from the catalog's ``distance_km`` or from its event and the station
coordinates. One task per station (:func:`plan`, :func:`read_store`).
"""

from __future__ import annotations

import math
import pathlib
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from seisgrid import storage
from seisgrid.errors import InputFileError, SeisgridError
from seisgrid.seismic.channels import station_sensors
from seisgrid.seismic.labelled.base import (
    Reader,
    Record,
    Skip,
    WindowsError,
    _float,
    distance_km,
    read_stations,
    region_of,
    station_coordinates,
)
from seisgrid.seismic.stationdata import despike
from seisgrid.seismic.windowstore import COMPONENTS

if TYPE_CHECKING:
    import os

STORE_PAD_SECONDS = 5.0  # extra samples read around store windows so resampling edges fall outside


def detect(folder: pathlib.Path) -> bool:
    """Whether ``folder`` is a Zarr store (remote sources are tested by :func:`~.base.detect_format`).

    Parameters
    ----------
    folder : pathlib.Path
        A local folder.

    Returns
    -------
    bool
        ``folder`` holds ``zarr.json``.
    """
    return (folder / "zarr.json").exists()


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
    url = _beside(catalog, "transients.csv")
    if url is None:
        return None
    fs, path = storage.filesystem(url)
    with fs.open(path, "rb") as f:
        tr = pd.read_csv(f, dtype={"station": str})
    if not {"station", "time"} <= set(tr.columns):
        return None
    tr["time"] = pd.to_datetime(tr["time"], utc=True, format="ISO8601").dt.tz_localize(None)
    return tr


def _beside(catalog, name: str) -> str | None:
    """URL of ``name`` beside the catalog when it exists."""
    url = str(catalog)
    parent = url.rsplit("/", 1)[0] if "/" in url else "."
    target = storage.join(parent, name)
    fs, path = storage.filesystem(target)
    return target if fs.exists(path) else None


def _regions_and_coords(catalog, opts) -> tuple[str | None, dict]:
    """(fixed region or None, station coordinates) of a store source."""
    coords = dict(opts.get("station_coords") or {})
    if catalog is not None:
        if _beside(catalog, "archive.json") is not None:
            return "synthetic", coords
        stations_csv = _beside(catalog, "stations.csv")
        if not coords and stations_csv is not None:
            try:
                coords = read_stations(stations_csv)
            except WindowsError:
                coords = {}
    return None, coords


def _covered(segments: dict[str, tuple], t0: float, t1: float) -> bool:
    """Whether every channel's data cover [t0, t1] without a gap (``segments``: id → (rate, origin s, segs))."""
    for rate, origin, segs in segments.values():
        a, b = (t0 - origin) * rate, (t1 - origin) * rate
        if not any(lo <= a and b <= hi for lo, hi in segs):
            return False
    return True


def _channel_segments(archive, comps: dict[str, str]) -> dict[str, tuple]:
    out = {}
    for cid in comps.values():
        attrs = archive.channel(cid)
        out[cid] = (attrs["sampling_rate"], attrs["origin_ns"] / 1e9, [tuple(x) for x in attrs["segments"]])
    return out


def _grid(segments: dict[str, tuple], window: float) -> np.ndarray:
    """Candidate window starts (s) on a ``window`` grid inside the first channel's segments (± the pad)."""
    rate, origin, segs = next(iter(segments.values()))
    starts = []
    for lo, hi in segs:
        t_lo = origin + lo / rate + STORE_PAD_SECONDS
        t_hi = origin + hi / rate - STORE_PAD_SECONDS - window
        if t_hi >= t_lo:
            starts.append(np.arange(t_lo, t_hi + 1e-9, window))
    return np.concatenate(starts) if starts else np.zeros(0)


def _trigger_mask(url: str, opts: dict, n_stations: int) -> tuple[list[tuple[float, float, set, float]], int]:
    """STA/LTA archive triggers of a store: [(on s, off s, station codes, coincidence sum)], and the threshold."""
    from seisgrid.seismic.stalta import detect_archive

    try:
        triggers = detect_archive(url, min_stations=1)
    except SeisgridError as exc:
        raise WindowsError(f"{url}: no catalog given, and no STA/LTA trigger mask for quiet noise ({exc})") from None
    pad = opts["noise_trigger_pad_seconds"]
    out = []
    for tr in triggers:
        on = pd.Timestamp(tr["time"]).value / 1e9
        out.append((on - pad, on + float(tr["duration"]) + pad, set(tr["stations"]), float(tr["coincidence_sum"])))
    return out, max(1, min(opts["noise_trigger_stations"], n_stations))


def _plan_store(url, catalog, opts, rng) -> tuple[list[dict], list[Skip]]:
    """Tasks (one per station) of earthquake and noise windows to cut from an ingested store."""
    import seisgrid

    archive = seisgrid.open_archive(url)
    source = pathlib.PurePosixPath(str(url).rstrip("/")).name
    cat = _read_catalog(catalog) if catalog is not None else None
    transients = _read_transients(catalog) if catalog is not None else None
    fixed_region, coords = _regions_and_coords(catalog, opts)
    sensors = station_sensors(archive.ids, {cid: int(archive.channel(cid).get("samples", 0)) for cid in archive.ids})
    skips: list[Skip] = []
    window = opts["window_seconds"]
    if cat is not None:
        far_from_picks = _far_from_picks(cat, window, opts["catalog_noise_seconds"])
        catalog_stations = set(cat["station"])
    else:
        triggers, threshold = _trigger_mask(str(url), opts, sum(1 for s in sensors.values() if "Z" in s.channels))
        catalog_stations = set()
    tasks = []
    for station in sorted(catalog_stations | set(sensors)):
        sensor = sensors.get(station)
        if sensor is None:
            for r in cat[cat["station"] == station].itertuples():  # type: ignore[index]
                skips.append(Skip(source, f"{station} event {r.event_id}", "station not in the store"))
            continue
        net, sta = station.split(".", 1)
        lat, lon = station_coordinates(coords, net, sta)
        segments = _channel_segments(archive, sensor.channels)
        if cat is not None:
            rows = cat[cat["station"] == station].sort_values(["p_time", "event_id"])
            quakes = _quakes(rows, station, source, opts["catalog_min_snr"], skips, (lat, lon))
            n_noise = round(opts["catalog_noise_ratio"] * len(quakes))
            noise = _noise_times(segments, station, transients, n_noise, window, far_from_picks, rng)
        else:
            quakes = []
            masks = [(a, b) for a, b, stas, total in triggers if sta in stas or total >= threshold]
            noise = _noise_times(segments, station, None, opts["store_noise_per_station"], window,
                                 _outside(masks, window), rng)
        tasks.append({"format": "store", "path": str(url), "source": source, "station": station,
                      "network": net, "station_code": sta, "channels": sensor.channels,
                      "orientation_unknown": sensor.orientation_unknown,
                      "region": fixed_region or region_of(lat, lon), "quakes": quakes, "noise": noise})
    return tasks, skips


def _far_from_picks(cat: pd.DataFrame, window: float, away: float):
    picks = np.sort(np.concatenate([
        cat["p_time"].dropna().to_numpy("datetime64[ns]"),
        cat["s_time"].dropna().to_numpy("datetime64[ns]") if "s_time" in cat else np.array([], "datetime64[ns]"),
    ]))
    picks_s = picks.astype("int64") / 1e9

    def far_from_picks(t0: float) -> bool:
        i = np.searchsorted(picks_s, t0 - away)
        return bool(i >= len(picks_s) or picks_s[i] > t0 + window + away)

    return far_from_picks


def _outside(masks: list[tuple[float, float]], window: float):
    lo = np.array(sorted(a for a, _ in masks), dtype=float)
    hi = np.array([b for _, b in sorted(masks)], dtype=float)

    def free(t0: float) -> bool:
        return not bool(np.any((lo < t0 + window) & (hi > t0)))

    return free


def _quakes(rows: pd.DataFrame, station: str, source: str, min_snr, skips: list[Skip],
            station_coords: tuple[float, float]) -> list[dict]:
    """Earthquake windows of a station's catalog rows; rows below ``min_snr`` or without P go to ``skips``."""
    quakes = []
    for r in rows.to_dict("records"):
        name = f"{station} event {r['event_id']}"
        if min_snr is not None and not (_float(r.get("snr")) >= float(min_snr)):
            skips.append(Skip(source, f"{name} (snr {r.get('snr')})",
                              f"catalog snr below catalog_min_snr {min_snr}"))
            continue
        if pd.isna(r["p_time"]):
            skips.append(Skip(source, name, "no p_time in the catalog"))
            continue
        snr = _float(r.get("snr"))
        dist = _float(r.get("distance_km"))
        if math.isnan(dist):
            dist = distance_km(r.get("latitude"), r.get("longitude"), *station_coords)
        quakes.append({
            "name": name, "event_id": f"{source}:{r['event_id']}", "p": pd.Timestamp(r["p_time"]).value,
            "s": None if pd.isna(r.get("s_time", pd.NaT)) else pd.Timestamp(r["s_time"]).value,
            "magnitude": _float(r.get("magnitude")),
            "snr_db": 20 * math.log10(snr) if snr > 0 else math.nan, "distance_km": dist,
        })
    return quakes


def _noise_times(segments, station, transients, n_noise, window, allowed, rng) -> list[tuple[float, str]]:
    """(start s, sub-class) of up to ``n_noise`` noise windows of a station, sorted by time.

    Windows around the station's transients first (``icequake``: noise by definition), then random grid
    windows (``quiet_noise``, or ``icequake`` when a transient falls inside); all covered by data on every
    channel, ``allowed`` (far from catalog picks, or outside the trigger mask) and not overlapping.
    """
    if n_noise <= 0 or not segments:
        return []
    chosen: list[float] = []

    def free(t0: float) -> bool:
        return (_covered(segments, t0 - STORE_PAD_SECONDS, t0 + window + STORE_PAD_SECONDS) and allowed(t0)
                and all(abs(t0 - c) >= window for c in chosen))

    times = np.zeros(0)
    if transients is not None:
        times = transients.loc[transients["station"] == station, "time"].sort_values()
        times = times.to_numpy("datetime64[ns]").astype("int64") / 1e9
        for t in times:
            t0 = float(t - rng.uniform(2.0, window - 3.0))
            if len(chosen) < n_noise and free(t0):
                chosen.append(t0)
    grid = _grid(segments, window)
    for t0 in grid[rng.permutation(len(grid))]:
        if len(chosen) >= n_noise:
            break
        if free(float(t0)):
            chosen.append(float(t0))
    return [(t0, "icequake" if np.any((times >= t0) & (times <= t0 + window)) else "quiet_noise")
            for t0 in sorted(chosen)]


def plan(source: str, catalog: str | os.PathLike | None, opts: dict,
         rng: np.random.Generator) -> tuple[list[dict], list[Skip]]:
    """Tasks (one per station) and skips of an ingested store, with a catalog or a trigger mask.

    Parameters
    ----------
    source : str
        Store path or URL.
    catalog : str or None
        Catalog CSV (synth's ``catalog.csv`` format); None: quiet noise only, away from STA/LTA triggers.
    opts : dict
        Build options (:func:`~seisgrid.seismic.labelled.build.build_windows`).
    rng : numpy.random.Generator
        Draws the noise-window times.

    Returns
    -------
    tasks : list of dict
        For :func:`read_store`.
    skips : list of Skip

    Raises
    ------
    WindowsError
        The catalog CSV is missing.
    """
    return _plan_store(source, catalog, opts, rng)


def _cut(archive, task: dict, opts: dict, t0_s: float, t1_s: float, name: str):
    """(data (3, n), present, rate, first-sample time in s) of [t0, t1) of a task's channels, or a Skip."""
    import obspy

    source = task["source"]
    data: list[np.ndarray | None] = [None] * 3
    present, rate, first = np.zeros(3, bool), None, None
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
        samples = st[0].data.astype("float64")
        despike(samples, float(opts.get("despike") or 0.0))
        data[k] = samples
        present[k] = True
    if rate is None:
        return Skip(source, name, "no Z/N/E data in the store at this time")
    n = min(len(d) for d in data if d is not None)
    arr = np.zeros((3, n))
    for k, d in enumerate(data):
        if d is not None:
            arr[k] = d[:n]
    return arr, present, rate, first


def read_store(task: dict, opts: dict) -> list[Record | Skip]:
    """Records (event and noise cut-outs) of one station of an ingested store.

    Parameters
    ----------
    task : dict
        One task of :func:`plan` (store path, station, channels, catalog quakes, noise times).
    opts : dict
        Build options (``window_seconds``, ``pre_p_seconds``, ``pre_p_jitter_seconds``, ``despike``).

    Returns
    -------
    list of Record or Skip
        Event records (P and S from the catalog), then noise records; a Skip for a cut-out with a gap,
        components at different rates, or no Z/N/E data.
    """
    import seisgrid

    archive = seisgrid.open_archive(task["path"])
    window, pre = opts["window_seconds"], opts["pre_p_seconds"]
    source = task["source"]
    common = {"source": source, "network": task["network"], "station": task["station_code"],
              "region": task["region"], "orientation_unknown": task.get("orientation_unknown", False)}
    out: list[Record | Skip] = []
    for q in task["quakes"]:
        p_s = q["p"] / 1e9
        jitter = opts["pre_p_jitter_seconds"]
        t0 = p_s - pre - jitter - STORE_PAD_SECONDS
        got = _cut(archive, task, opts, t0, p_s - pre + jitter + window + STORE_PAD_SECONDS, q["name"])
        if isinstance(got, Skip):
            out.append(got)
            continue
        arr, present, rate, first = got
        t0 = first
        out.append(Record(
            name=q["name"], data=arr, sampling_rate=rate, present=present, kind="event",
            p_seconds=p_s - t0, s_seconds=None if q["s"] is None else q["s"] / 1e9 - t0, event_id=q["event_id"],
            start_time=np.datetime64(round(t0 * 1e9), "ns"), magnitude=q["magnitude"], snr_db=q["snr_db"],
            distance_km=q.get("distance_km", math.nan), **common,
        ))
    for t, subclass in task["noise"]:
        name = f"{task['station']} noise {pd.Timestamp(round(t * 1e9)).isoformat()}"
        got = _cut(archive, task, opts, t - STORE_PAD_SECONDS, t + window + STORE_PAD_SECONDS, name)
        if isinstance(got, Skip):
            out.append(got)
            continue
        arr, present, rate, first = got
        out.append(Record(
            name=name, data=arr, sampling_rate=rate, present=present, kind="noise",
            start_time=np.datetime64(round(first * 1e9), "ns"), noise_offsets=[t - first],
            noise_subclass=subclass, **common,
        ))
    return out


READER = Reader(detect=detect, plan=plan, read_task=read_store)
