"""Station picks → events: two associators behind one interface, and a grid-search origin with honest errors.

:func:`associate` takes picks (``station``, ``time``) and station coordinates and returns event dicts; the
setting ``detect.associator`` chooses who groups the picks into events. Both associators feed the same
location (:func:`locate`) and event form, so they differ only in which picks make an event.

``pyocto`` (the default)
    PyOcto's octotree space-time search (:mod:`seisgrid.seismic.octo`): picks are events when a source
    in the search volume explains at least ``min_stations`` of them within the travel-time tolerance of a
    half-space. Needs station coordinates; without them ``grid`` is used (logged).
``grid``
    Picks are taken in time order. The earliest pick not yet used seeds an event; every later pick of
    another station joins it when it is consistent with **every** pick already in the event:
    ``|t_j − t_i| ≤ distance(i, j) / velocity_kms + tolerance_seconds`` (``velocity_kms`` = 3.5 km/s, the
    slowest phase, S, so a pick on P at one station and on S at another still fits; ``tolerance_seconds``
    absorbs pick errors). One pick per station (the earliest that fits). The seed's group becomes an
    event when it has at least ``min_stations`` stations; its picks are then used up. Otherwise only
    the seed is dropped (it stays unassociated) and the next pick seeds. Without station coordinates the
    pair condition is ``|t_j − t_i| ≤ max_travel_seconds``.

The default was chosen by measurement (``benchmarks/associate.py``: the same pick lists from synthetic truth,
with jitter, misses, S taken for P and false picks, on 2-, 3- and 5-station networks; medians of 3 seeds in
``benchmarks/results/associate.json``): PyOcto's F1 is higher in 10 of 12 cases (e.g. 3 stations, medium
noise: precision 0.84 vs 0.76, recall 0.97 vs 0.93; 5 stations, min 3, high noise: precision 0.60 vs 0.41),
one event in 60 lower in the two low-noise cases; the grid's pairwise window takes the earliest consistent
pick, often a false one. PyOcto is slower: 0.5-72 s per list (200-1,450 picks over 6 h) against at most
0.25 s for the grid, on 2 shared, busy cores.

Origin (:func:`locate`): a location only where the picks constrain one
    A grid search over epicentres on a square grid (``grid_radius_km`` around the stations' centre,
    ``grid_step_km`` apart; local flat coordinates), at a fixed depth ``depth_km``, in a half-space of P
    velocity ``p_velocity_kms``; every pick is treated as P (one per station, the earliest). At each node
    the origin time is the mean of ``pick − travel time`` and the misfit ``χ² = Σ residual² / σ²`` with
    σ = ``location_sigma_seconds`` (raised to the RMS of the best node's residuals, per degree of
    freedom, when more than three stations over-determine it). The **confidence region** is the set of
    nodes with ``χ² ≤ χ²_min + Δ``, Δ the ``location_confidence`` quantile of χ² with 2 degrees of
    freedom (``−2 ln(1 − confidence)``: 2.28 for 0.68). Then:

    * fewer than 3 stations with coordinates: **not located** — two arrival times cannot fix an
      epicentre and an origin time (the misfit is zero along a whole hyperbola);
    * the confidence region touches the edge of the grid (stations all on one side of a distant source,
      a flat misfit surface, a source outside the grid): **not located** — no finite error can be stated;
    * otherwise **located**, with ``horizontal_uncertainty_km`` = the largest distance from the best node
      to a node of the region plus half a grid step, and ``origin_uncertainty_seconds`` = the largest
      difference of their origin times plus half a step's P travel time.

    The default σ = 0.5 s is conservative: on the benchmark's pick lists (jitter 0.1-0.3 s; 3 seeds, grid
    associator) the true epicentre lay inside the stated error for every located event of the low- and
    medium-noise 5-station cases. σ = 0.3 s located about twice as many events (still few: the synthetic
    network is 30 km wide and most sources lie 30-100 km from its centre, where only their direction is
    constrained), some with errors stated too small, and recall on origin times dropped (0.97 → 0.87 once).

    A not-located event has ``latitude``, ``longitude``, ``depth_km`` and ``origin_time`` None (no
    invented origin) and ``location_status`` saying why; it keeps ``first_arrival`` (its earliest pick)
    and its picks, so :func:`seisgrid.seismic.catalog.score` matches it on arrivals.

Event dicts (both associators; :func:`associate` lists the keys) are plain dicts, so the catalog writer and
the scorer also take events from other detectors (STA/LTA: :func:`seisgrid.seismic.catalog.from_stalta`).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, TypedDict, Unpack

import numpy as np
import obspy

from seisgrid import config, storage
from seisgrid.errors import ConfigError, SeisgridError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

logger = logging.getLogger("seisgrid")

EARTH_RADIUS_KM = 6371.0
#: Who groups picks into events (``detect.associator``).
ASSOCIATORS = ("grid", "pyocto")
#: Stations with coordinates needed before a location is attempted.
MIN_LOCATE_STATIONS = 3
#: Settings of ``seisgrid.detect`` that :func:`associate` takes as keywords (all of them: pass these on).
OPTION_KEYS = ("associator", "min_stations", "velocity_kms", "tolerance_seconds", "max_travel_seconds",
               "p_velocity_kms", "depth_km", "grid_radius_km", "grid_step_km", "location_sigma_seconds",
               "location_confidence")


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


def _not_located(reason: str, n_stations: int) -> dict:
    return {"origin_time": None, "origin_ns": None, "latitude": None, "longitude": None, "depth_km": None,
            "rms_seconds": None, "residuals": None, "horizontal_uncertainty_km": None,
            "origin_uncertainty_seconds": None, "n_located_stations": n_stations,
            "location_status": f"not located: {reason}", "stations_used": []}


def locate(picks: list[dict], coords: dict, *, p_velocity_kms: float | None = None, depth_km: float | None = None,
           grid_radius_km: float | None = None, grid_step_km: float | None = None,
           location_sigma_seconds: float | None = None, location_confidence: float | None = None) -> dict:
    """Grid-search origin of picks (treated as P) with its confidence region (module docstring: the rules).

    Parameters
    ----------
    picks : list of dict
        ``station`` and ``time`` (ISO, UTCDateTime or ns); one pick per station is used (the earliest).
    coords : dict
        ``{"NET.STA": (latitude, longitude)}``; picks of other stations are not used.
    p_velocity_kms, depth_km, grid_radius_km, grid_step_km : float, optional
        Half-space P velocity, fixed depth, grid half-width and spacing (defaults from ``seisgrid.detect``).
    location_sigma_seconds : float, optional
        Pick-time uncertainty (1 σ) assumed by the misfit.
    location_confidence : float, optional
        Probability content of the confidence region (0-1).

    Returns
    -------
    dict
        ``location_status`` ("located" or "not located: <why>"), ``origin_time`` (ISO), ``origin_ns``,
        ``latitude``, ``longitude``, ``depth_km``, ``rms_seconds``, ``horizontal_uncertainty_km``,
        ``origin_uncertainty_seconds``, ``residuals`` (s, per station of ``stations_used``, in that order),
        ``stations_used``, ``n_located_stations``. When not located every origin value is None.
    """
    vp = float(_opt("p_velocity_kms", p_velocity_kms))
    depth = float(_opt("depth_km", depth_km))
    radius = float(_opt("grid_radius_km", grid_radius_km))
    step = float(_opt("grid_step_km", grid_step_km))
    sigma = float(_opt("location_sigma_seconds", location_sigma_seconds))
    confidence = float(_opt("location_confidence", location_confidence))
    if vp <= 0 or depth < 0 or radius <= 0 or step <= 0 or sigma <= 0 or not 0 < confidence < 1:
        raise ConfigError(f"locate: p_velocity_kms={vp}, depth_km={depth}, grid_radius_km={radius}, "
                          f"grid_step_km={step}, location_sigma_seconds={sigma}, location_confidence={confidence}: "
                          "expected > 0, ≥ 0, > 0, > 0, > 0 and between 0 and 1")
    first: dict[str, int] = {}
    for p in picks:
        if p["station"] in coords:
            t_ns = _ns(p["time"])
            first[p["station"]] = min(t_ns, first.get(p["station"], t_ns))
    used = sorted(first, key=lambda s: (first[s], s))
    if len(used) < MIN_LOCATE_STATIONS:
        return _not_located(f"{len(used)} station(s) with coordinates, {MIN_LOCATE_STATIONS} needed", len(used))
    xy, centre = _xy_km(coords)
    axis = np.arange(-radius, radius + step / 2, step)
    gx, gy = np.meshgrid(axis, axis, indexing="xy")
    gx, gy = gx.ravel(), gy.ravel()
    edge = (np.abs(gx) >= axis[-1] - 1e-9) | (np.abs(gy) >= axis[-1] - 1e-9)
    t_ref = first[used[0]]
    t = np.array([(first[s] - t_ref) / 1e9 for s in used])  # s after the first pick
    sx = np.array([xy[s][0] for s in used])
    sy = np.array([xy[s][1] for s in used])
    tt = np.sqrt((gx[:, None] - sx) ** 2 + (gy[:, None] - sy) ** 2 + depth ** 2) / vp  # (node, station)
    t0 = (t - tt).mean(axis=1)
    res = t[None, :] - tt - t0[:, None]
    ss = (res ** 2).sum(axis=1)
    best = int(np.argmin(ss))  # ties: the first node (deterministic)
    n = len(used)
    if n > MIN_LOCATE_STATIONS:  # over-determined: the residuals measure the pick and model errors too
        sigma = max(sigma, math.sqrt(float(ss[best]) / (n - MIN_LOCATE_STATIONS)))
    region = (ss - ss[best]) / sigma ** 2 <= -2.0 * math.log(1.0 - confidence)
    if np.any(region & edge):
        return _not_located(f"the {confidence:.0%} confidence region reaches the edge of the search grid "
                            f"({radius:g} km around the stations)", n)
    extent = float(np.max(np.hypot(gx[region] - gx[best], gy[region] - gy[best]))) + step / 2
    dt0 = float(np.max(np.abs(t0[region] - t0[best]))) + step / 2 / vp
    lat, lon = _to_latlon(gx[best], gy[best], centre)
    origin_ns = t_ref + round(t0[best] * 1e9)
    return {"origin_time": iso(origin_ns), "origin_ns": origin_ns, "latitude": round(lat, 5),
            "longitude": round(lon, 5), "depth_km": depth, "rms_seconds": round(math.sqrt(float(ss[best]) / n), 4),
            "residuals": [round(float(r), 4) for r in res[best]], "horizontal_uncertainty_km": round(extent, 2),
            "origin_uncertainty_seconds": round(dt0, 3), "n_located_stations": n, "location_status": "located",
            "stations_used": used}


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
    location_sigma_seconds: float | None
    location_confidence: float | None


def _items(picks: Iterable[dict]) -> list[dict]:
    """Picks with ``time_ns``, in time order; picks without a station or a readable time are logged and skipped."""
    items, bad = [], []
    for i, p in enumerate(picks):
        try:
            items.append({**p, "station": str(p["station"]), "time_ns": _ns(p["time"])})
        except Exception as exc:  # noqa: BLE001  (UTCDateTime raises many kinds)
            bad.append(f"pick {i + 1} ({p!r:.80}): {type(exc).__name__}: {exc}")
    if bad:
        logger.warning("associate: %d pick(s) skipped (need station and time): %s", len(bad), "; ".join(bad[:5]))
    return sorted(items, key=lambda p: (p["time_ns"], p["station"]))


def _group_grid(items: list[dict], coords: dict, min_stations: int, velocity: float, tol: float,
                max_travel: float) -> list[list[int]]:
    """The ``grid`` associator (module docstring): groups of indices into ``items``."""
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
    groups = []
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
        groups.append(members)
    return groups


def associate(picks: Iterable[dict], stations: str | os.PathLike | Iterable[dict] | dict | None = None, *,
              associator: str | None = None, min_stations: int | None = None, velocity_kms: float | None = None,
              tolerance_seconds: float | None = None, max_travel_seconds: float | None = None,
              locate_events: bool = True, **locate_options: Unpack[LocateOptions]) -> list[dict]:
    """Group station picks into events and locate them where the picks allow (module docstring: the rules).

    Parameters
    ----------
    picks : list of dict
        Each with ``station`` (``NET.STA``) and ``time`` (ISO string, UTCDateTime or ns); other keys
        (``probability``, ``channel``, ``method``, ...) are kept. Picks without a station or a readable
        time are logged and skipped.
    stations : str, list or dict, optional
        Coordinates (:func:`read_stations`); without them the ``max_travel_seconds`` rule applies and
        events are not located.
    associator : {"grid", "pyocto"}, optional
        Who groups the picks (default ``seisgrid.detect.associator``). ``pyocto`` needs coordinates: asked
        for here without them it is refused; set only in the configuration, ``grid`` is used (logged).
    min_stations : int, optional
        Stations needed for an event (default ``seisgrid.detect.min_stations``).
    velocity_kms, tolerance_seconds, max_travel_seconds : float, optional
        Travel-time window (defaults from ``seisgrid.detect``); for ``pyocto`` ``tolerance_seconds`` is the
        travel-time tolerance of its half-space model.
    locate_events : bool
        Run :func:`locate` on each event (needs coordinates).
    **locate_options
        ``p_velocity_kms``, ``depth_km``, ``grid_radius_km``, ``grid_step_km``, ``location_sigma_seconds``,
        ``location_confidence``.

    Returns
    -------
    list of dict
        Chronological events, every one with these keys: ``event_id`` (1, 2, ...), ``first_arrival`` (ISO,
        earliest pick), ``origin_time`` (ISO or None), ``latitude``, ``longitude``, ``depth_km``,
        ``rms_seconds``, ``horizontal_uncertainty_km``, ``origin_uncertainty_seconds`` (all None when not
        located), ``location_status`` ("located", or "not located: <why>"), ``n_stations``, ``stations``,
        ``probability`` (mean of the picks' probabilities, when given), ``associator``, and ``picks`` (the
        picks, each with its own keys, ``time`` as ISO and ``residual`` in s when located).

    Raises
    ------
    ConfigError
        An unknown associator, a setting out of range, or ``associator="pyocto"`` without station coordinates.
    """
    which = str(_opt("associator", associator))
    if which not in ASSOCIATORS:
        raise ConfigError(f"associate: associator {which!r}: expected one of {list(ASSOCIATORS)}")
    min_stations = int(_opt("min_stations", min_stations))
    velocity = float(_opt("velocity_kms", velocity_kms))
    tol = float(_opt("tolerance_seconds", tolerance_seconds))
    max_travel = float(_opt("max_travel_seconds", max_travel_seconds))
    if min_stations < 1 or velocity <= 0 or tol < 0:
        raise ConfigError(f"associate: min_stations={min_stations}, velocity_kms={velocity}, "
                          f"tolerance_seconds={tol}: expected ≥ 1, > 0, ≥ 0")
    coords = read_stations(stations)
    items = _items(picks)
    if which == "pyocto" and not coords:
        if associator is not None:
            raise ConfigError("associate: associator 'pyocto' needs station coordinates (stations)")
        logger.warning("associate: no station coordinates, so the grid associator's time-window rule groups the "
                       "picks (detect.associator pyocto needs coordinates)")
        which = "grid"
    if which == "pyocto":
        from seisgrid.seismic import octo

        missing = sorted({p["station"] for p in items} - set(coords))
        if missing:
            logger.warning("associate: picks of %d station(s) without coordinates skipped by pyocto: %s",
                           len(missing), ", ".join(missing[:10]))
        items = [p for p in items if p["station"] in coords]
        xy, _ = _xy_km(coords)
        groups = octo.group(xy, [(p["station"], p["time_ns"]) for p in items], min_stations=min_stations,
                            p_velocity_kms=float(_opt("p_velocity_kms", locate_options.get("p_velocity_kms"))),
                            s_velocity_kms=velocity, tolerance_seconds=tol,
                            radius_km=float(_opt("grid_radius_km", locate_options.get("grid_radius_km"))),
                            depth_km=float(_opt("depth_km", locate_options.get("depth_km"))))
    else:
        groups = _group_grid(items, coords, min_stations, velocity, tol, max_travel)
    events = [_event([items[m] for m in members], coords, locate_options if locate_events else None)
              for members in groups]
    events.sort(key=lambda ev: (ev["first_arrival"], ev["stations"]))
    for n, ev in enumerate(events, 1):
        ev["event_id"] = n
        ev["associator"] = which
    return events


def _event(group: list[dict], coords: dict, locate_options: LocateOptions | None) -> dict:
    """The event dict of a group of picks; ``locate_options`` None: not located (not asked for)."""
    first = min(p["time_ns"] for p in group)
    if locate_options is None:
        loc = _not_located("location not asked for (locate_events=False)", 0)
    elif coords:
        loc = locate(group, coords, **locate_options)
    else:
        loc = _not_located("no station coordinates", 0)
    residual = dict(zip(loc["stations_used"], loc["residuals"] or [], strict=False))
    earliest: dict[str, dict] = {}  # the pick of each station that the location used
    for p in group:
        if p["station"] not in earliest or p["time_ns"] < earliest[p["station"]]["time_ns"]:
            earliest[p["station"]] = p
    picks = []
    for p in group:
        pick = {key: v for key, v in p.items() if key != "time_ns"}
        pick["time"] = iso(p["time_ns"])
        if p["station"] in residual and earliest[p["station"]] is p:
            pick["residual"] = residual[p["station"]]
        picks.append(pick)
    probs = [float(p["probability"]) for p in group if p.get("probability") is not None]
    return {
        "event_id": None,
        "first_arrival": iso(first),
        **{k: loc[k] for k in ("origin_time", "latitude", "longitude", "depth_km", "rms_seconds",
                               "horizontal_uncertainty_km", "origin_uncertainty_seconds", "location_status")},
        "n_stations": len({p["station"] for p in group}),
        "stations": sorted({p["station"] for p in group}),
        "probability": round(float(np.mean(probs)), 4) if probs else None,
        "picks": picks,
    }


__all__ = ["ASSOCIATORS", "OPTION_KEYS", "associate", "iso", "locate", "read_stations"]
