"""Ingested waveform stores (``seisgrid ingest``) with a catalog CSV.

The catalog has the format of :mod:`seisgrid.seismic.synth`'s ``catalog.csv`` (event_id, station NET.STA,
p_time, s_time, magnitude, snr, ...). Each station's Z/N/E channels are cut with
:meth:`seisgrid.seismic.store.Archive.stream`: earthquake windows around each catalog P; noise windows at
times at least ``catalog_noise_seconds`` from every catalog P and S (any station). Transients listed in a
``transients.csv`` beside the catalog (synth's icequakes) are noise by definition: noise windows
containing them are chosen first. One task per station (:func:`plan`, :func:`read_store`).
"""

from __future__ import annotations

import math
import pathlib
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from seisgrid import storage
from seisgrid.errors import InputFileError
from seisgrid.seismic.labelled.base import Reader, Record, Skip, WindowsError, _float
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
        quakes = _quakes(rows, station, source, min_snr, skips)
        # noise: transients first (noise by definition), then random grid windows, all far from picks
        n_noise = round(opts["catalog_noise_ratio"] * len(quakes))
        noise = _noise_times(archive, comps, station, transients, n_noise, window, far_from_picks, rng)
        net, sta = station.split(".", 1)
        tasks.append({"format": "store", "path": str(url), "source": source, "station": station,
                      "network": net, "station_code": sta, "channels": comps, "region": region,
                      "quakes": quakes, "noise": noise})
    return tasks, skips


def _quakes(rows: pd.DataFrame, station: str, source: str, min_snr, skips: list[Skip]) -> list[dict]:
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
        quakes.append({
            "name": name, "event_id": f"{source}:{r['event_id']}", "p": pd.Timestamp(r["p_time"]).value,
            "s": None if pd.isna(r.get("s_time", pd.NaT)) else pd.Timestamp(r["s_time"]).value,
            "magnitude": _float(r.get("magnitude")),
            "snr_db": 20 * math.log10(snr) if snr > 0 else math.nan,
        })
    return quakes


def _noise_times(archive, comps, station, transients, n_noise, window, far_from_picks, rng) -> list[float]:
    """Start times (s) of up to ``n_noise`` noise windows of a station, sorted.

    Windows around the station's transients first (noise by definition), then random grid windows; all
    inside the recorded span, far from catalog picks and not overlapping each other.
    """
    ref = comps.get("Z") or next(iter(comps.values()))
    attrs = archive.channel(ref)
    segs = attrs["segments"]
    noise = []
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
    return noise


def plan(source: str, catalog: str | os.PathLike | None, opts: dict,
         rng: np.random.Generator) -> tuple[list[dict], list[Skip]]:
    """Tasks (one per station) and skips of an ingested store, which needs a catalog.

    Parameters
    ----------
    source : str
        Store path or URL.
    catalog : str or None
        Catalog CSV (synth's ``catalog.csv`` format).
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
        ``catalog`` is None, or the catalog CSV is missing.
    """
    if catalog is None:
        raise WindowsError(f"{source}: an ingested store needs a catalog CSV (catalog=... / --catalog)")
    return _plan_store(source, catalog, opts, rng)


def read_store(task: dict, opts: dict) -> list[Record | Skip]:
    """Records (event and noise cut-outs) of one station of an ingested store.

    Parameters
    ----------
    task : dict
        One task of :func:`plan` (store path, station, channels, catalog quakes, noise times).
    opts : dict
        Build options (``window_seconds``, ``pre_p_seconds``, ``pre_p_jitter_seconds``).

    Returns
    -------
    list of Record or Skip
        Event records (P and S from the catalog), then noise records; a Skip for a cut-out with a gap,
        components at different rates, or no Z/N/E data.
    """
    import obspy

    import seisgrid

    archive = seisgrid.open_archive(task["path"])
    window, pre = opts["window_seconds"], opts["pre_p_seconds"]
    source = task["source"]

    def cut(t0_s: float, t1_s: float, name: str):
        """(data (3, n), present, rate, first-sample time in s) of [t0, t1), or a Skip."""
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
            data[k] = st[0].data.astype("float64")
            present[k] = True
        if rate is None:
            return Skip(source, name, "no Z/N/E data in the store at this time")
        n = min(len(d) for d in data if d is not None)
        arr = np.zeros((3, n))
        for k, d in enumerate(data):
            if d is not None:
                arr[k] = d[:n]
        return arr, present, rate, first

    out: list[Record | Skip] = []
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


READER = Reader(detect=detect, plan=plan, read_task=read_store)
