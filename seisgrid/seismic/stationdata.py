"""A waveform store's stations as the archive detectors see them: channel groups, coordinates, data time, samples.

Shared by the archive detectors (:mod:`seisgrid.seismic.detect`: model and forest; :mod:`seisgrid.seismic.stalta`:
the STA/LTA baseline), so every method groups, counts and reads the same way.

Station groups (:func:`station_channels`)
    The store keeps network, station, location and channel codes exactly as the miniSEED files give them.
    Channels are grouped by ``NET.STA`` and one sensor (location + band and instrument letters) per
    station is used, its ``Z``/``N``/``E`` slots filled as the labelled-window readers fill them
    (:func:`seisgrid.seismic.channels.station_sensors`: ``1`` → N, ``2`` → E; components never mixed
    across sensors). Among a station's sensors, the one with the most of the wanted components, then the
    most **data time** (samples ÷ rate: a continuous sensor before short high-rate cut-outs), then the
    labelled windows' choice is used.

    **Network-code quirks.** Stations with different codes are never merged, whatever their networks: in
    the Rutford files 7 stations say ``ZZ`` and 3 say ``YG`` (IRIS lists all as ``YG``), each station
    consistently, so each is its own group (``ZZ.ST01``, ``YG.ST02``, ...), detection works per station
    as usual, and only the coordinates need matching on the station code (below). When one station code
    appears under several network codes and the groups share no component (one station whose channels
    carry different network codes), they are merged under the network code with the most samples
    (logged); when they share a component they are kept apart as different stations (logged).

Coordinates (:func:`station_coordinates`)
    A stations file (CSV) or rows with a station column (``station``, ``name`` or ``code``), ``latitude``
    (or ``lat``) and ``longitude`` (or ``lon``), and optionally ``network`` (headers in any case; so
    ``stations.csv`` of ``seisgrid synth`` and ``Stations_Rutford.txt`` — ``Latitude,Longitude,Elevation,Name``
    — both work). A store station ``NET.STA`` takes the row of ``NET.STA``; failing that the row of its
    station code when exactly one row has that code (any network, or none). Rows that cannot be read are
    reported and skipped.

Data time (:func:`data_spans`, :func:`data_days`)
    A station's data time is the union of the data segments of its grouped channels (gaps not counted,
    channels not counted twice), inside a span. **station-days** = data time in days summed over
    stations: the one definition behind ``station_days`` of every archive detector and so behind
    false detections per station-day.

Samples (:func:`read_component`, :func:`despike`)
    A channel is read at the store's rate over ``[lo, hi)``, one trace per contiguous segment; isolated
    zero samples (dropouts) are removed (:func:`despike`); then each segment is resampled to the rate the
    detector was trained at with :func:`seisgrid.seismic.labelled.windowing.resample` — the polyphase rule
    of the labelled windows — with its mean restored, and placed on the grid ``lo + k / rate``
    (float32, NaN in gaps). A whole day is read at once: at 1000 Hz that is about 1 GB of float64 per
    component while it is resampled.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import TYPE_CHECKING, cast

import numpy as np
import obspy

from seisgrid import storage
from seisgrid.errors import SeisgridError
from seisgrid.seismic.layout import NS

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

    from seisgrid.seismic.store import Archive

logger = logging.getLogger("seisgrid")

DESPIKE_HALF = 3  # neighbours on each side of a zero sample that decide whether it is a dropout


# ------------------------------------------------------------------------------------------ station groups
def station_channels(archive: Archive, components: str = "ZNE") -> dict[str, dict[str, str]]:
    """``{NET.STA: {component letter: channel id}}`` of the channels with data (module docstring: the rules).

    Parameters
    ----------
    archive : Archive
        Open waveform store.
    components : str
        Component letters used (``"ZNE"`` for the model and forest, ``"Z"`` for STA/LTA by default).
    """
    from seisgrid.seismic.channels import component_slot, station_sensors

    wanted = components.upper()
    samples, seconds, by_sensor = {}, {}, defaultdict(list)
    for cid in archive.ids:
        attrs = archive.channel(cid)
        samples[cid] = int(attrs.get("samples", 0))
        slot = component_slot(cid)
        if samples[cid] and slot is not None and slot in wanted:
            seconds[cid] = samples[cid] / float(attrs["sampling_rate"])
            net, sta, loc, cha = cid.split(".")
            by_sensor[(f"{net}.{sta}", loc, cha[:-1])].append(cid)
    preferred = station_sensors(seconds, samples)  # the labelled windows' choice, for ties
    groups: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}
    for station in sorted({k[0] for k in by_sensor}):
        options = [station_sensors(ids, samples)[station] for k, ids in sorted(by_sensor.items()) if k[0] == station]
        best = max(options, key=lambda o: (len(o.channels), sum(seconds[c] for c in o.channels.values()),
                                           o.sensor == preferred[station].sensor))
        if len(options) > 1:
            logger.info("%s: using sensor %s of %s", station, best.sensor, ", ".join(o.sensor for o in options))
        net, sta = station.split(".", 1)
        groups[(net, sta)] = (sum(seconds[c] for c in best.channels.values()), dict(best.channels))
    by_code: dict[str, list[str]] = defaultdict(list)
    for net, sta in sorted(groups):
        by_code[sta].append(net)
    out: dict[str, dict[str, str]] = {}
    for sta, nets in by_code.items():
        letters = [set(groups[(net, sta)][1]) for net in nets]
        if len(nets) > 1 and sum(map(len, letters)) == len(set().union(*letters)):
            main = max(nets, key=lambda net: groups[(net, sta)][0])
            merged = {c: cid for net in nets for c, cid in groups[(net, sta)][1].items()}
            logger.warning("station %s has channels under networks %s with no common component: grouped as "
                           "one station %s.%s", sta, ", ".join(nets), main, sta)
            out[f"{main}.{sta}"] = {c: merged[c] for c in "ZNE" if c in merged}
            continue
        if len(nets) > 1:
            logger.warning("station code %s appears under networks %s with the same components: treated as "
                           "different stations (normalise the network code before ingest if they are one)",
                           sta, ", ".join(nets))
        for net in nets:
            out[f"{net}.{sta}"] = {c: cid for c, cid in groups[(net, sta)][1].items()}
    return dict(sorted(out.items()))


# -------------------------------------------------------------------------------------------- coordinates
_ALIASES = {"station": ("station", "name", "code", "sta"), "network": ("network", "net"),
            "latitude": ("latitude", "lat"), "longitude": ("longitude", "lon", "long")}


def _column(row: dict, field: str):
    lower = {str(k).strip().lower(): v for k, v in row.items()}
    for name in _ALIASES[field]:
        if lower.get(name) not in (None, ""):
            return str(lower[name]).strip()
    return None


def station_coordinates(stations: str | os.PathLike | Iterable[dict] | dict | None,
                        store_stations: Iterable[str]) -> dict[str, tuple[float, float]]:
    """Coordinates ``{NET.STA: (latitude, longitude)}`` of the store's stations from a stations file or rows.

    Parameters
    ----------
    stations : str, list of dict or dict
        CSV path/URL, rows, or ``{"NET.STA" or "STA": (lat, lon)}`` (module docstring: columns and matching).
    store_stations : iterable of str
        The ``NET.STA`` keys to match (e.g. of :func:`station_channels`).

    Returns
    -------
    dict
        Matched stations only; stations without coordinates are logged.
    """
    if stations is None:
        return {}
    where = "stations"
    rows: list[tuple[str | None, str, float, float]] = []
    if isinstance(stations, dict):
        for key, value in stations.items():
            net, _, sta = str(key).rpartition(".")
            rows.append((net or None, sta, float(value[0]), float(value[1])))
    else:
        if isinstance(stations, str) or hasattr(stations, "__fspath__"):
            where = str(stations)
            raw = storage.read_csv_rows(where, "stations file (CSV with station or Name, latitude, longitude)")
        else:
            raw = list(cast("Iterable[dict]", stations))
        for i, row in enumerate(raw):
            sta, net = _column(row, "station"), _column(row, "network")
            try:
                lat, lon = float(_column(row, "latitude") or "nan"), float(_column(row, "longitude") or "nan")
            except ValueError as exc:
                logger.warning("%s: row %d: skipped (%s)", where, i + 1, exc)
                continue
            if not sta or not (math.isfinite(lat) and math.isfinite(lon)):
                logger.warning("%s: row %d: skipped (expected a station or name, latitude and longitude)",
                               where, i + 1)
                continue
            if net is None and "." in sta:
                net, sta = sta.split(".", 1)
            rows.append((net, sta, lat, lon))
    exact = {f"{net}.{sta}": (lat, lon) for net, sta, lat, lon in rows if net}
    by_code: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for _net, sta, lat, lon in rows:
        by_code[sta].append((lat, lon))
    out: dict[str, tuple[float, float]] = {}
    missing = []
    for key in store_stations:
        sta = key.split(".", 1)[-1]
        if key in exact:
            out[key] = exact[key]
        elif len(by_code.get(sta, [])) == 1:
            out[key] = by_code[sta][0]
        else:
            missing.append(key)
    if missing:
        logger.warning("%s: no (unique) coordinates for %s: events are located without them", where,
                       ", ".join(missing))
    return out


# ------------------------------------------------------------------------------------------------ data time
def data_spans(archive: Archive, channel_ids: Iterable[str], lo_ns: int | None = None,
               hi_ns: int | None = None) -> list[tuple[int, int]]:
    """The union of the channels' data segments as sorted ``(start, end)`` ns pairs, clipped to ``[lo, hi)``."""
    spans = []
    for cid in channel_ids:
        attrs = archive.channel(cid)
        rate, origin = attrs["sampling_rate"], attrs["origin_ns"]
        for a, b in attrs["segments"]:
            ta, tb = origin + round(a * NS / rate), origin + round(b * NS / rate)
            if lo_ns is not None:
                ta = max(ta, lo_ns)
            if hi_ns is not None:
                tb = min(tb, hi_ns)
            if ta < tb:
                spans.append((ta, tb))
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def data_days(archive: Archive, stations: dict[str, dict[str, str]], lo_ns: int | None = None,
              hi_ns: int | None = None) -> dict[str, float]:
    """Data time in days per station inside ``[lo, hi)`` (module docstring); their sum is the station-days."""
    return {station: sum(b - a for a, b in data_spans(archive, channels.values(), lo_ns, hi_ns)) / (86400 * NS)
            for station, channels in stations.items()}


# ------------------------------------------------------------------------------------------------- samples
def despike(x: np.ndarray, factor: float, half: int = DESPIKE_HALF) -> int:
    """Replace isolated zero samples (dropouts) by the median of their neighbours, in place.

    A sample is a dropout when it is **exactly 0** and the median ``m`` of its ``2 × half`` neighbours
    (``half`` on each side, fewer at the ends) lies more than ``factor × max(MAD, 1)`` from 0, MAD being
    the neighbours' median absolute deviation from ``m`` (counts); it becomes ``m``. A zero where the
    signal crosses or sits near 0 stays (its neighbours' median is near 0). ``factor`` ≤ 0: nothing changes.

    Parameters
    ----------
    x : ndarray of float
        Samples of one contiguous segment (changed in place).
    factor : float
        Distance from 0, in neighbour MADs, of a dropout's neighbourhood (default settings: 10).
    half : int
        Neighbours on each side.

    Returns
    -------
    int
        Samples replaced.
    """
    if factor <= 0 or not len(x):
        return 0
    idx = np.flatnonzero(x == 0)
    if not len(idx):
        return 0
    offsets = np.r_[-half:0, 1:half + 1]
    replaced = 0
    for a in range(0, len(idx), 1 << 18):
        at = idx[a:a + (1 << 18)]
        pos = at[:, None] + offsets
        inside = (pos >= 0) & (pos < len(x))
        nb = np.where(inside, x[np.clip(pos, 0, len(x) - 1)], np.nan)
        m = np.nanmedian(nb, axis=1)
        mad = np.nanmedian(np.abs(nb - m[:, None]), axis=1)
        spike = np.abs(m) > factor * np.maximum(mad, 1.0)
        x[at[spike]] = m[spike]
        replaced += int(spike.sum())
    return replaced


def read_component(archive: Archive, cid: str, lo_ns: int, hi_ns: int, rate: float, *,
                   despike_factor: float = 0.0) -> np.ndarray:
    """Samples of ``cid`` on the grid ``lo_ns + k / rate`` for ``[lo_ns, hi_ns)`` (module docstring).

    Returns float32 with NaN in gaps: de-spiked with ``despike_factor`` (:func:`despike`) at the store's
    rate, then resampled to ``rate`` per contiguous segment (mean kept). Segments of fewer than 16
    samples at another rate are left out (too short to resample).
    """
    from seisgrid.seismic.labelled.windowing import resample

    n = round((hi_ns - lo_ns) * rate / NS)
    out = np.full(n, np.nan, dtype=np.float32)
    stream = archive.stream(cid, obspy.UTCDateTime(ns=lo_ns), obspy.UTCDateTime(ns=hi_ns))
    for tr in stream:
        src = float(tr.stats.sampling_rate)
        data = tr.data.astype(np.float64)
        despike(data, despike_factor)
        if not math.isclose(src, rate, rel_tol=1e-9):
            if len(data) < 16:
                continue
            data = resample(data, src, rate) + data.mean()
        start = round((tr.stats.starttime.ns - lo_ns) * rate / NS)
        a, b = max(start, 0), min(start + len(data), n)
        if a < b:
            out[a:b] = data[a - start:b - start]
    return out


def check_stations(n_stations: int, needed: float, what: str, setting: str) -> list[str]:
    """A warning (logged and returned in a list) when a store has fewer stations than a detector needs.

    Parameters
    ----------
    n_stations : int
        Stations the detector reads.
    needed : float
        Stations it needs for one event (coincidence sum or association minimum).
    what, setting : str
        The detector's name and what to set, for the message.
    """
    if n_stations >= needed:
        return []
    message = (f"{what}: the store has {n_stations} station{'s' if n_stations != 1 else ''} but an event needs "
               f"{needed:g}, so no event can be found; for a network this small set {setting} to "
               f"{max(n_stations, 1)}")
    logger.warning(message)
    return [message]


def require_channels(stations: dict, store_url: str | os.PathLike, components: str) -> None:
    """Raise when no station has a channel of ``components`` with data."""
    if not stations:
        raise SeisgridError(f"{store_url}: no channel with component {' or '.join(components)} (1 = N, 2 = E) "
                            "and data")


__all__ = ["check_stations", "data_days", "data_spans", "despike",
           "read_component", "require_channels", "station_channels", "station_coordinates"]
