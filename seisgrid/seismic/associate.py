"""Station picks → events: travel-time association and a grid-search origin.

Association (:func:`associate`)
    Picks are taken in time order. The earliest pick not yet used seeds an event; every later pick of
    another station joins it when it is consistent with **every** pick already in the event:
    ``|t_j − t_i| ≤ distance(i, j) / velocity_kms + tolerance_seconds`` (``velocity_kms`` = 3.5 km/s, the
    slowest phase, S, so a pick on P at one station and on S at another still fits; ``tolerance_seconds``
    absorbs pick errors). One pick per station (the earliest that fits). The seed's group becomes an
    event when it has at least ``min_stations`` stations; its picks are then used up. Otherwise only
    the seed is dropped (it stays unassociated) and the next pick seeds. Without station coordinates the
    pair condition is ``|t_j − t_i| ≤ max_travel_seconds``.

Origin (:func:`locate`)
    With coordinates: a grid search over epicentres on a square grid (``grid_radius_km`` around the
    stations' centre, ``grid_step_km`` apart; local flat coordinates), at a fixed depth ``depth_km``, in a
    half-space of P velocity ``p_velocity_kms``; every pick is treated as P. For each node the origin
    time is the mean of ``pick − travel time``; the node with the smallest RMS residual wins. Without
    coordinates there is no location: the event has ``first_arrival`` (its earliest pick) and
    ``origin_time`` None (scoring then matches first arrivals, see :func:`seisgrid.seismic.catalog.score`).

Events are plain dicts (see :func:`associate`), so the catalog writer and the scorer also take events
from other detectors (STA/LTA: :func:`seisgrid.seismic.catalog.from_stalta`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np
import obspy

from seisgrid import config, storage
from seisgrid.errors import SeisgridError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

EARTH_RADIUS_KM = 6371.0


def _opt(key, value):
    return config.get(f"detect.{key}", override=value)


def _ns(t) -> int:
    if isinstance(t, (int, np.integer)):
        return int(t)
    return obspy.UTCDateTime(t).ns


def iso(t_ns: int) -> str:
    """ISO 8601 UTC with nanoseconds, ``Z`` suffix."""
    return str(np.datetime64(int(t_ns), "ns")) + "Z"


def read_stations(stations: str | os.PathLike | Iterable[dict] | dict | None) -> dict[str, tuple[float, float]]:
    """Station coordinates ``{"NET.STA": (latitude, longitude)}``.

    From a CSV path/URL (columns network, station, latitude, longitude: ``stations.csv`` of
    :func:`seisgrid.seismic.synth.synthesize`), a list of such dicts, or a dict (returned as it is). None
    gives ``{}``.
    """
    if stations is None:
        return {}
    if isinstance(stations, dict):
        return {k: (float(v[0]), float(v[1])) for k, v in stations.items()}
    if isinstance(stations, (str, bytes)) or hasattr(stations, "__fspath__"):
        rows = storage.read_csv_rows(str(stations), "stations file (CSV with network, station, latitude, longitude)")
    else:
        rows = list(stations)
    out = {}
    for i, row in enumerate(rows):
        try:
            key = row["station"] if "." in str(row["station"]) else f"{row['network']}.{row['station']}"
            out[key] = (float(row["latitude"]), float(row["longitude"]))
        except (KeyError, ValueError) as exc:
            raise SeisgridError(f"{stations}: row {i + 1}: expected network, station, latitude, longitude "
                                f"({exc})") from None
    return out


def _xy_km(coords: dict[str, tuple[float, float]]):
    """Local flat coordinates (km, equirectangular about the mean position) and that centre."""
    lats = np.array([c[0] for c in coords.values()])
    lons = np.array([c[1] for c in coords.values()])
    lat0 = float(lats.mean())
    # mean longitude on the circle (networks across the antimeridian)
    lon0 = float(np.degrees(np.arctan2(np.sin(np.radians(lons)).mean(), np.cos(np.radians(lons)).mean())))
    k = math.pi * EARTH_RADIUS_KM / 180.0
    xy = {}
    for key, (lat, lon) in coords.items():
        dlon = (lon - lon0 + 180.0) % 360.0 - 180.0
        xy[key] = (dlon * k * math.cos(math.radians(lat0)), (lat - lat0) * k)
    return xy, (lat0, lon0)


def _to_latlon(x, y, centre):
    lat0, lon0 = centre
    k = math.pi * EARTH_RADIUS_KM / 180.0
    lat = lat0 + y / k
    lon = (lon0 + x / (k * math.cos(math.radians(lat0))) + 180.0) % 360.0 - 180.0
    return float(lat), float(lon)


def locate(picks: list[dict], coords: dict, *, p_velocity_kms: float | None = None, depth_km: float | None = None,
           grid_radius_km: float | None = None, grid_step_km: float | None = None) -> dict | None:
    """Grid-search origin of picks (treated as P) at stations with known coordinates (module docstring).

    Returns
    -------
    dict or None
        ``origin_time`` (ISO), ``origin_ns``, ``latitude``, ``longitude``, ``depth_km``, ``rms_seconds``,
        ``residuals`` (s, per pick, in order); None when fewer than two picks have coordinates.
    """
    vp = float(_opt("p_velocity_kms", p_velocity_kms))
    depth = float(_opt("depth_km", depth_km))
    radius = float(_opt("grid_radius_km", grid_radius_km))
    step = float(_opt("grid_step_km", grid_step_km))
    used = [p for p in picks if p["station"] in coords]
    if len(used) < 2:
        return None
    xy, centre = _xy_km(coords)
    axis = np.arange(-radius, radius + step / 2, step)
    gx, gy = np.meshgrid(axis, axis, indexing="xy")
    gx, gy = gx.ravel(), gy.ravel()
    t_ref = min(_ns(p["time"]) for p in used)
    t = np.array([(_ns(p["time"]) - t_ref) / 1e9 for p in used])  # s after the first pick
    sx = np.array([xy[p["station"]][0] for p in used])
    sy = np.array([xy[p["station"]][1] for p in used])
    dist = np.sqrt((gx[:, None] - sx) ** 2 + (gy[:, None] - sy) ** 2 + depth ** 2)  # (node, pick)
    tt = dist / vp
    t0 = (t - tt).mean(axis=1)
    res = t[None, :] - tt - t0[:, None]
    rms = np.sqrt((res ** 2).mean(axis=1))
    best = int(np.argmin(rms))  # ties: the first node (deterministic)
    lat, lon = _to_latlon(gx[best], gy[best], centre)
    origin_ns = t_ref + round(t0[best] * 1e9)
    return {"origin_time": iso(origin_ns), "origin_ns": origin_ns, "latitude": round(lat, 5),
            "longitude": round(lon, 5), "depth_km": depth, "rms_seconds": round(float(rms[best]), 4),
            "residuals": [round(float(r), 4) for r in res[best]]}


def _distance_km(a, b) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


class LocateOptions(TypedDict, total=False):
    """Keyword options of :func:`locate` that :func:`associate` passes on."""

    p_velocity_kms: float | None
    depth_km: float | None
    grid_radius_km: float | None
    grid_step_km: float | None


def associate(picks: Iterable[dict], stations: str | os.PathLike | Iterable[dict] | dict | None = None, *,
              min_stations: int | None = None, velocity_kms: float | None = None,
              tolerance_seconds: float | None = None, max_travel_seconds: float | None = None,
              locate_events: bool = True, **locate_options: Unpack[LocateOptions]) -> list[dict]:
    """Group station picks into events (module docstring: rules and origin).

    Parameters
    ----------
    picks : list of dict
        Each with ``station`` (``NET.STA``) and ``time`` (ISO string, UTCDateTime or ns); other keys
        (``probability``, ``channel``, ``method``, ...) are kept.
    stations : str, list or dict, optional
        Coordinates (:func:`read_stations`); without them the ``max_travel_seconds`` rule applies and
        events are not located.
    min_stations : int, optional
        Stations needed for an event (default ``seisgrid.detect.min_stations``).
    velocity_kms, tolerance_seconds, max_travel_seconds : float, optional
        Travel-time window (defaults from ``seisgrid.detect``).
    locate_events : bool
        Run :func:`locate` on each event (needs coordinates).
    **locate_options
        ``p_velocity_kms``, ``depth_km``, ``grid_radius_km``, ``grid_step_km``.

    Returns
    -------
    list of dict
        Chronological events: ``event_id`` (1, 2, ...), ``first_arrival`` (ISO), ``origin_time`` (ISO or
        None), ``latitude``, ``longitude``, ``depth_km``, ``rms_seconds`` (None when not located),
        ``n_stations``, ``stations``, ``probability`` (mean of the picks' probabilities, when given),
        ``picks`` (the picks, each with ``time`` as ISO and ``residual`` in s when located).
    """
    min_stations = int(_opt("min_stations", min_stations))
    velocity = float(_opt("velocity_kms", velocity_kms))
    tol = float(_opt("tolerance_seconds", tolerance_seconds))
    max_travel = float(_opt("max_travel_seconds", max_travel_seconds))
    if min_stations < 1 or velocity <= 0 or tol < 0:
        raise SeisgridError(f"associate: min_stations={min_stations}, velocity_kms={velocity}, "
                            f"tolerance_seconds={tol}: expected ≥ 1, > 0, ≥ 0")
    coords = read_stations(stations)
    items = sorted(({**p, "time_ns": _ns(p["time"])} for p in picks), key=lambda p: (p["time_ns"], p["station"]))
    limit_cache: dict = {}

    def limit(a: str, b: str) -> float:
        key = (a, b) if a < b else (b, a)
        if key not in limit_cache:
            if a in coords and b in coords:
                limit_cache[key] = _distance_km(coords[a], coords[b]) / velocity + tol
            else:
                limit_cache[key] = max_travel
        return limit_cache[key]

    all_stations = sorted({p["station"] for p in items})
    used = [False] * len(items)
    events = []
    for i, seed in enumerate(items):
        if used[i]:
            continue
        members = [i]
        seen = {seed["station"]}
        horizon = max([limit(seed["station"], s) for s in all_stations if s != seed["station"]] or [0.0])
        for j in range(i + 1, len(items)):
            cand = items[j]
            if used[j] or cand["station"] in seen:
                continue
            if (cand["time_ns"] - seed["time_ns"]) / 1e9 > horizon:
                break  # later picks are even further from the seed
            if all(abs(cand["time_ns"] - items[m]["time_ns"]) / 1e9 <= limit(items[m]["station"], cand["station"])
                   for m in members):
                members.append(j)
                seen.add(cand["station"])
        if len(members) < min_stations:
            continue
        for m in members:
            used[m] = True
        group = [items[m] for m in members]
        events.append(_event(group, coords if locate_events else {}, locate_options))
    for n, ev in enumerate(events, 1):
        ev["event_id"] = n
    return events


def _event(group: list[dict], coords: dict, locate_options: LocateOptions) -> dict:
    first = min(p["time_ns"] for p in group)
    loc = locate(group, coords, **locate_options) if coords else None
    picks = []
    for p in group:
        pick = {key: v for key, v in p.items() if key != "time_ns"}
        pick["time"] = iso(p["time_ns"])
        if loc is not None and p["station"] in coords:
            located = [q["station"] for q in group if q["station"] in coords]
            pick["residual"] = loc["residuals"][located.index(p["station"])]
        picks.append(pick)
    probs = [float(p["probability"]) for p in group if p.get("probability") is not None]
    return {
        "event_id": None,
        "first_arrival": iso(first),
        "origin_time": loc["origin_time"] if loc else None,
        "latitude": loc["latitude"] if loc else None,
        "longitude": loc["longitude"] if loc else None,
        "depth_km": loc["depth_km"] if loc else None,
        "rms_seconds": loc["rms_seconds"] if loc else None,
        "n_stations": len(group),
        "stations": sorted(p["station"] for p in group),
        "probability": round(float(np.mean(probs)), 4) if probs else None,
        "picks": picks,
    }


__all__ = ["associate", "iso", "locate", "read_stations"]
