"""Event catalogs: QuakeML + CSV writing and reading, and scoring against a truth catalog.

Events are plain dicts (made by :func:`seisgrid.seismic.associate.associate`): ``event_id``,
``origin_time`` (ISO or None when not located), ``first_arrival`` (ISO, earliest pick), ``latitude``,
``longitude``, ``depth_km``, ``rms_seconds``, ``n_stations``, ``stations``, ``probability``, ``picks``.
:func:`from_stalta` turns the network triggers of :func:`seisgrid.seismic.stalta.detect_archive` into
the same form, so every detector is written and scored the same way.

Files (:func:`write_catalog`): ``STEM.xml`` (QuakeML 1.2 through :class:`obspy.core.event.Catalog`:
Event → Origin (+ Arrivals) and Picks, ``smi:seisgrid/...`` resource ids; opens with
:func:`obspy.read_events`), ``STEM.csv`` (one row per event) and ``STEM.json`` (the run summary, e.g.
``station_days``, read by :func:`score`).

Truth catalogs (:func:`read_truth`)
    **CSV** (``catalog.csv`` of :func:`seisgrid.seismic.synth.synthesize`, or your own): one row per event
    and station, header row, times ISO 8601 UTC. Columns (others are ignored):

    ==============  ========  =================================================================
    column          needed    meaning
    ==============  ========  =================================================================
    ``event_id``    advised   rows with the same id are one event (without it each row is one)
    ``origin_time`` one of    the event's origin time
    ``p_time``      the two   P arrival at the row's ``station``; the event's **first P** is the
                              earliest over its rows (the origin time when no row has one)
    ``station``     no        ``NET.STA`` or ``STA`` of the row
    ``snr``         no        SNR at the station; the event's SNR is the maximum (for ``recall_by_snr``)
    ``magnitude``   no        the event's magnitude (for ``recall_by_magnitude`` and ``m50``)
    ==============  ========  =================================================================

    A row with neither time, or an unreadable one, is reported (``truth_skipped``) and left out; the
    other rows are used. **QuakeML** (or any format :func:`obspy.read_events` reads; recognised by a
    ``.xml``/``.quakeml``/``.qml`` suffix or by content): per event the preferred (else first) origin's
    time and the earliest **P pick** (phase hint, or the phase of the origin's arrival for the pick,
    starting with ``P``; when no pick of the event names a phase, every pick counts); an event with
    neither is reported and left out. SNR is unknown (NaN) there; magnitude is the preferred one's.

Scoring (:func:`score`)
    Detected and true events are matched one to one: every pair closer than ``tolerance_seconds`` is a
    candidate and pairs are taken greedily from the closest (ties: earlier true event, then earlier
    detection). What is compared (``match``):

    * ``"origin"`` (default): the detected ``origin_time`` with the true origin time when both exist;
      otherwise (an unlocated event, e.g. STA/LTA triggers or a location the picks cannot constrain, or a
      truth event without an origin) the detected **first arrival** with the true **first P**;
    * ``"arrival"``: always the detected first arrival with the true first P (the earliest P over the
      stations), so badly located events are not penalised for their origin.

    A detected event's first arrival is its earliest pick time (``picks``), else its ``first_arrival``.
    ``precision`` = matched / detected, ``recall`` = matched / true, ``false_per_station_day`` =
    unmatched detections / station-days — data time in days summed over stations, the one definition
    of every archive detector (:mod:`seisgrid.seismic.detect`, ``station_days`` of its summary) —,
    ``recall_by_snr`` in bins of the true event's SNR, ``recall_by_magnitude`` in bins of its magnitude
    (:data:`MAGNITUDE_BINS`) and ``m50``, the magnitude from which recall stays at or above 50 %
    (:func:`seisgrid.seismic.metrics.m50`: interpolated between the bins' mean magnitudes; ``m50_bound``
    ``"<"`` or ``">"`` when every bin is above 50 % or the last one below). True events without a
    magnitude (or SNR) are left out of those bins, not of ``recall``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import pathlib
from typing import TYPE_CHECKING

import numpy as np
import obspy
from obspy.core.event import (
    Arrival,
    Catalog,
    Comment,
    CreationInfo,
    Event,
    EventDescription,
    Origin,
    OriginQuality,
    Pick,
    ResourceIdentifier,
    WaveformStreamID,
)

from seisgrid import config, storage
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.seismic import metrics
from seisgrid.seismic.associate import iso

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

logger = logging.getLogger("seisgrid")

SNR_BINS = [(0.0, 1.0), (1.0, 3.0), (3.0, 10.0), (10.0, 30.0), (30.0, None)]
#: Magnitude bins of ``recall_by_magnitude`` (``[min, max)``, None an open end): the window evaluation's.
MAGNITUDE_BINS = list(metrics.MAGNITUDE_BINS)
CSV_COLUMNS = ["event_id", "origin_time", "first_arrival", "latitude", "longitude", "depth_km", "rms_seconds",
               "n_stations", "stations", "probability", "picks"]
SUFFIXES = (".xml", ".quakeml", ".qml", ".csv", ".json")
MATCH_BY = ("origin", "arrival")
PREFIX = "smi:seisgrid"


def stem(path: str | os.PathLike) -> str:
    """``path`` without a catalog suffix (``.xml``, ``.quakeml``, ``.qml``, ``.csv``, ``.json``)."""
    path = str(path)
    for suffix in SUFFIXES:
        if path.lower().endswith(suffix):
            return path[: -len(suffix)]
    return path


def _ns(t) -> int:
    return obspy.UTCDateTime(t).ns


# ------------------------------------------------------------------------------------------- obspy
def to_obspy(events: list[dict], *, method: str = "seisgrid") -> Catalog:
    """An :class:`obspy.core.event.Catalog` of event dicts (Origin with Arrivals when located, Picks)."""
    cat = Catalog(resource_id=ResourceIdentifier(f"{PREFIX}/catalog/{method}"),
                  creation_info=CreationInfo(agency_id="seisgrid", author=method))
    cat.description = f"seisgrid {method} detections"
    for ev in events:
        eid = ev["event_id"]
        event = Event(resource_id=ResourceIdentifier(f"{PREFIX}/event/{eid}"), event_type="earthquake",
                      event_type_certainty="suspected")
        event.event_descriptions.append(EventDescription(text=f"{method} event {eid}", type="region name"))
        pick_ids = []
        for k, p in enumerate(ev.get("picks") or []):
            net, sta = p["station"].split(".")[:2]
            loc, cha = "", None
            if p.get("channel"):
                parts = p["channel"].split(".")
                if len(parts) == 4:
                    loc, cha = parts[2], parts[3]
            pick = Pick(resource_id=ResourceIdentifier(f"{PREFIX}/event/{eid}/pick/{k + 1}"),
                        time=obspy.UTCDateTime(p["time"]),
                        waveform_id=WaveformStreamID(network_code=net, station_code=sta, location_code=loc,
                                                     channel_code=cha),
                        phase_hint="P", evaluation_mode="automatic",
                        method_id=ResourceIdentifier(f"{PREFIX}/method/{p.get('method') or method}"))
            if p.get("probability") is not None:
                pick.comments.append(Comment(
                    text=f"probability={float(p['probability']):.4f}",
                    resource_id=ResourceIdentifier(f"{PREFIX}/event/{eid}/pick/{k + 1}/comment/1")))
            event.picks.append(pick)
            pick_ids.append((pick.resource_id, p))
        if ev.get("origin_time") or ev.get("first_arrival"):
            located = ev.get("origin_time") is not None and ev.get("latitude") is not None
            origin = Origin(resource_id=ResourceIdentifier(f"{PREFIX}/event/{eid}/origin/1"),
                            time=obspy.UTCDateTime(ev["origin_time"] if located else ev["first_arrival"]),
                            evaluation_mode="automatic")
            if located:
                origin.latitude, origin.longitude = float(ev["latitude"]), float(ev["longitude"])
                origin.depth = float(ev["depth_km"]) * 1000.0
                origin.depth_type = "operator assigned"
                origin.method_id = ResourceIdentifier(f"{PREFIX}/method/grid-search")
                origin.quality = OriginQuality(used_phase_count=len(pick_ids),
                                               used_station_count=int(ev.get("n_stations") or 0),
                                               standard_error=ev.get("rms_seconds"))
                for k, (rid, p) in enumerate(pick_ids):
                    origin.arrivals.append(Arrival(
                        resource_id=ResourceIdentifier(f"{PREFIX}/event/{eid}/origin/1/arrival/{k + 1}"),
                        pick_id=rid, phase="P", time_residual=p.get("residual")))
            else:
                origin.comments.append(Comment(
                    text="not located: time is the first arrival",
                    resource_id=ResourceIdentifier(f"{PREFIX}/event/{eid}/origin/1/comment/1")))
            event.origins.append(origin)
            event.preferred_origin_id = origin.resource_id
        if ev.get("probability") is not None:
            event.comments.append(Comment(text=f"probability={float(ev['probability']):.4f}",
                                          resource_id=ResourceIdentifier(f"{PREFIX}/event/{eid}/comment/1")))
        cat.events.append(event)
    return cat


def write_catalog(events: list[dict], out: str | os.PathLike, *, summary: dict | None = None,
                  method: str = "seisgrid") -> dict:
    """Write ``STEM.xml`` (QuakeML), ``STEM.csv`` and, with ``summary``, ``STEM.json``.

    ``out`` may end in ``.xml``/``.quakeml``/``.qml``/``.csv`` or have no suffix; local path or URL.
    Returns the paths written: ``quakeml``, ``csv`` (and ``json``).
    """
    base = stem(out)
    options = storage.storage_options(base)
    buf = io.BytesIO()
    to_obspy(events, method=method).write(buf, format="QUAKEML")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for ev in events:
        row = {k: ev.get(k) for k in CSV_COLUMNS}
        row["stations"] = ";".join(ev.get("stations") or [])
        row["picks"] = ";".join(f"{p['station']}@{p['time']}" for p in ev.get("picks") or [])
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    # each file whole or not at all (temp file + rename; one PUT on object stores): a reader that
    # follows the catalog while `seisgrid watch` rewrites it never sees half a file
    storage.write_bytes(base + ".xml", buf.getvalue(), options)
    storage.write_bytes(base + ".csv", text.getvalue().encode(), options)
    paths = {"quakeml": base + ".xml", "csv": base + ".csv"}
    if summary is not None:
        storage.write_bytes(base + ".json", json.dumps(summary, indent=2, default=str).encode(), options)
        paths["json"] = base + ".json"
    return paths


def _none(v):
    return None if v in ("", None) else v


def read_catalog(path: str | os.PathLike) -> list[dict]:
    """Events of a catalog file: ``.csv`` written by :func:`write_catalog`, or any QuakeML/ObsPy catalog."""
    path = str(path)
    fs, fpath = storage.filesystem(path)
    if not fs.exists(fpath) and fs.exists(stem(fpath) + ".csv"):
        fpath = stem(fpath) + ".csv"
    if not fs.exists(fpath):
        raise SeisgridError(f"{path}: no catalog there (expected a QuakeML .xml or a seisgrid .csv)")
    if fpath.lower().endswith(".csv"):
        with fs.open(fpath, "r") as f:
            rows = list(csv.DictReader(io.StringIO(f.read())))
        events = []
        for row in rows:
            picks = []
            for item in filter(None, (row.get("picks") or "").split(";")):
                sta, _, t = item.partition("@")
                picks.append({"station": sta, "time": t})
            events.append({
                "event_id": _none(row.get("event_id")), "origin_time": _none(row.get("origin_time")),
                "first_arrival": _none(row.get("first_arrival")),
                "latitude": float(row["latitude"]) if _none(row.get("latitude")) else None,
                "longitude": float(row["longitude"]) if _none(row.get("longitude")) else None,
                "depth_km": float(row["depth_km"]) if _none(row.get("depth_km")) else None,
                "n_stations": int(row["n_stations"]) if _none(row.get("n_stations")) else len(picks),
                "stations": [s for s in (row.get("stations") or "").split(";") if s],
                "probability": float(row["probability"]) if _none(row.get("probability")) else None,
                "picks": picks,
            })
        return events
    with fs.open(fpath, "rb") as f:
        cat = obspy.read_events(io.BytesIO(f.read()))
    return from_obspy(cat)


def from_obspy(cat: Catalog) -> list[dict]:
    """Event dicts of an ObsPy Catalog (preferred origin; picks by station)."""
    events = []
    for n, event in enumerate(cat, 1):
        origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
        picks = [{"station": f"{p.waveform_id.network_code}.{p.waveform_id.station_code}", "time": str(p.time)}
                 for p in event.picks]
        first = min((p.time for p in event.picks), default=origin.time if origin else None)
        located = origin if origin is not None and origin.latitude is not None else None
        events.append({
            "event_id": n, "origin_time": str(located.time) if located is not None else None,
            "first_arrival": str(first) if first is not None else None,
            "latitude": located.latitude if located is not None else None,
            "longitude": located.longitude if located is not None else None,
            "depth_km": located.depth / 1000.0 if located is not None and located.depth is not None else None,
            "n_stations": len({p["station"] for p in picks}), "stations": sorted({p["station"] for p in picks}),
            "probability": None, "picks": picks,
        })
    return events


def from_stalta(triggers: list[dict]) -> list[dict]:
    """Event dicts of :func:`seisgrid.seismic.stalta.detect_archive` network triggers.

    Not located: ``first_arrival`` = the trigger time, ``origin_time`` None; stations from the trigger.
    """
    events = []
    for n, trig in enumerate(sorted(triggers, key=lambda t: _ns(t["time"])), 1):
        t = iso(_ns(trig["time"]))
        stations = sorted({".".join(tid.split(".")[:2]) for tid in trig.get("trace_ids", [])}
                          or set(trig.get("stations", [])))
        events.append({"event_id": n, "origin_time": None, "first_arrival": t, "latitude": None,
                       "longitude": None, "depth_km": None, "rms_seconds": None, "n_stations": len(stations),
                       "stations": stations, "probability": None,
                       "picks": [], "coincidence_sum": trig.get("coincidence_sum")})
    return events


# ------------------------------------------------------------------------------------------- truth
def _is_csv(fs, fpath: str) -> bool:
    if fpath.lower().endswith(".csv"):
        return True
    if fpath.lower().endswith((".xml", ".quakeml", ".qml")):
        return False
    with fs.open(fpath, "rb") as f:
        head = f.read(512).lstrip()
    header = head.split(b"\n", 1)[0]
    return not head.startswith(b"<") and (b"origin_time" in header or b"p_time" in header)


def _truth_rows(truth, skipped: list[str]) -> list[dict]:
    """Events of truth rows (CSV format: module docstring); bad rows go to ``skipped``."""
    rows = truth if isinstance(truth, list) else list(truth)
    events: dict = {}
    for i, row in enumerate(rows):
        try:
            eid = str(row["event_id"]) if row.get("event_id") not in (None, "") else f"row{i + 1}"
            origin = _ns(row["origin_time"]) if row.get("origin_time") not in (None, "") else None
            p = _ns(row["p_time"]) if row.get("p_time") not in (None, "") else None
        except Exception as exc:  # noqa: BLE001  (UTCDateTime raises many kinds)
            skipped.append(f"row {i + 1}: unreadable time ({exc})")
            continue
        if origin is None and p is None:
            skipped.append(f"row {i + 1}: neither origin_time nor p_time")
            continue
        ev = events.setdefault(eid, {"event_id": eid, "origin_ns": origin, "first_p_ns": None, "snr": math.nan,
                                     "magnitude": _float(row.get("magnitude"))})
        if ev["origin_ns"] is None:
            ev["origin_ns"] = origin
        if p is not None:
            ev["first_p_ns"] = p if ev["first_p_ns"] is None else min(ev["first_p_ns"], p)
        snr = _float(row.get("snr"))
        if not math.isnan(snr):
            ev["snr"] = snr if math.isnan(ev["snr"]) else max(ev["snr"], snr)
    for ev in events.values():
        if ev["first_p_ns"] is None:
            ev["first_p_ns"] = ev["origin_ns"]
    return list(events.values())


def _truth_obspy(cat: Catalog, skipped: list[str]) -> list[dict]:
    """Events of an ObsPy catalog: preferred origin time, earliest P pick (module docstring)."""
    events = []
    for n, event in enumerate(cat, 1):
        origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
        phases = {str(a.pick_id): a.phase for o in event.origins for a in o.arrivals if a.phase}
        phase = [(p, p.phase_hint or phases.get(str(p.resource_id))) for p in event.picks]
        p_picks = [p for p, ph in phase if ph and ph.upper().startswith("P")]
        if not p_picks and not any(ph for _, ph in phase):
            p_picks = list(event.picks)  # no phase named anywhere: every pick is an arrival
        eid = str(event.resource_id) if event.resource_id else f"event{n}"
        if origin is None and not p_picks:
            skipped.append(f"event {n} ({eid}): neither an origin nor a P pick")
            continue
        mag = event.preferred_magnitude() or (event.magnitudes[0] if event.magnitudes else None)
        origin_ns = origin.time.ns if origin is not None else None
        first = min(p.time.ns for p in p_picks) if p_picks else origin_ns
        events.append({"event_id": eid, "origin_ns": origin_ns,
                       "first_p_ns": first, "snr": math.nan,
                       "magnitude": float(mag.mag) if mag is not None and mag.mag is not None else math.nan})
    return events


def read_truth(truth: str | pathlib.Path | Catalog | Iterable[dict], *,
               skipped: list[str] | None = None) -> list[dict]:
    """True events of a truth catalog: CSV, QuakeML (or another :func:`obspy.read_events` format), Catalog, rows.

    The formats and what is taken from each: module docstring, "Truth catalogs".

    Parameters
    ----------
    truth : str, Catalog or list of dict
        Path/URL, catalog or rows.
    skipped : list, optional
        Receives a line per row or event that could not be used (they are left out, the rest is read).

    Returns
    -------
    list of dict
        Per event ``event_id``, ``origin_ns`` (None without an origin), ``first_p_ns`` (earliest P, or the
        origin when there is no P), ``snr`` (max over stations, NaN when absent), ``magnitude``; sorted by time.
    """
    skipped = [] if skipped is None else skipped
    if isinstance(truth, Catalog):
        events = _truth_obspy(truth, skipped)
    elif isinstance(truth, (str, pathlib.Path)):
        fs, fpath = storage.filesystem(str(truth))
        if not fs.exists(fpath):
            raise SeisgridError(f"{truth}: no truth catalog there (a CSV with origin_time and/or p_time, or QuakeML)")
        if _is_csv(fs, fpath):
            rows = storage.read_csv_rows(str(truth), "truth catalog (CSV with event_id, origin_time, p_time, snr)")
            events = _truth_rows(rows, skipped)
        else:
            with fs.open(fpath, "rb") as f:
                try:
                    cat = obspy.read_events(io.BytesIO(f.read()))
                except Exception as exc:  # noqa: BLE001  (ObsPy's readers raise many kinds)
                    raise SeisgridError(f"{truth}: not a truth catalog ObsPy can read, nor a CSV with origin_time "
                                        f"or p_time ({exc})") from None
            events = _truth_obspy(cat, skipped)
    else:
        events = _truth_rows(truth, skipped)
    for line in skipped:
        logger.warning("truth catalog %s: %s: left out", truth if isinstance(truth, (str, pathlib.Path)) else "",
                       line)
    if not events and skipped:
        raise SeisgridError(f"{truth}: no usable true event ({len(skipped)} left out, first: {skipped[0]})")
    return sorted(events, key=lambda e: (e["origin_ns"] if e["origin_ns"] is not None else e["first_p_ns"],
                                         e["event_id"]))


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _station_days(catalog, truth, station_days):
    """Explicit value > the catalog's ``STEM.json`` summary > the truth's ``archive.json`` (synth)."""
    if station_days is not None:
        return float(station_days)
    for path, key in ((stem(catalog) + ".json" if isinstance(catalog, (str, pathlib.Path)) else None, "catalog"),
                      (str(pathlib.PurePosixPath(str(truth)).parent / "archive.json")
                       if isinstance(truth, (str, pathlib.Path)) else None, "truth")):
        if path is None:
            continue
        fs, fpath = storage.filesystem(path)
        if not fs.exists(fpath):
            continue
        with fs.open(fpath, "r") as f:
            meta = json.load(f)
        if key == "catalog" and meta.get("station_days") is not None:
            return float(meta["station_days"])
        params = meta.get("parameters", meta)
        if key == "truth" and params.get("stations") is not None and params.get("days") is not None:
            n = params["stations"]
            n = len(n) if isinstance(n, list) else int(n)
            return float(n) * float(params["days"])
    return None


def first_arrival_ns(event: dict) -> int | None:
    """An event's first arrival: its earliest pick time, else its ``first_arrival``, else None."""
    times = [_ns(p["time"]) for p in event.get("picks") or [] if p.get("time")]
    if times:
        return min(times)
    return _ns(event["first_arrival"]) if event.get("first_arrival") else None


def match_events(detected: list[dict], truth: list[dict], tolerance_seconds: float,
                 by: str = "origin") -> list[tuple[int, int, float]]:
    """One-to-one matches ``(detected index, truth index, |dt| s)`` (module docstring: the rule).

    ``by``: ``"origin"`` or ``"arrival"`` (module docstring, Scoring).
    """
    if by not in MATCH_BY:
        raise ConfigError(f"score: match {by!r}: expected one of {list(MATCH_BY)}")
    tol_ns = tolerance_seconds * 1e9
    has_origin = np.array([t["origin_ns"] is not None for t in truth], dtype=bool)
    truth_origin = np.array([t["origin_ns"] or 0 for t in truth], dtype=np.int64)
    truth_first = np.array([t["first_p_ns"] for t in truth], dtype=np.int64)
    pairs: list[tuple[int, int, int]] = []
    for i, ev in enumerate(detected):
        arrival = first_arrival_ns(ev)
        origin = _ns(ev["origin_time"]) if by == "origin" and ev.get("origin_time") else None
        if origin is None and arrival is None:
            if by == "arrival":
                continue  # nothing to compare: unmatched (score counts them in no_arrival)
            raise SeisgridError(f"detected event {ev.get('event_id', i + 1)}: has no origin_time, pick time or "
                                "first_arrival")
        if not len(truth):
            continue
        gap = np.full(len(truth), np.iinfo(np.int64).max, dtype=np.int64)
        if arrival is not None:
            gap = np.abs(truth_first - arrival)
        if origin is not None:
            gap = np.where(has_origin, np.abs(truth_origin - origin), gap)
        for k in np.flatnonzero(gap <= tol_ns):
            pairs.append((int(gap[k]), int(k), i))
    pairs.sort()
    used_d: set[int] = set()
    used_t: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for dt, j, i in pairs:
        if i in used_d or j in used_t:
            continue
        used_d.add(i)
        used_t.add(j)
        out.append((i, j, dt / 1e9))
    return sorted(out)


def score(catalog: str | pathlib.Path | Iterable[dict], truth: str | pathlib.Path | Catalog | Iterable[dict], *,
          tolerance_seconds: float | None = None, station_days: float | None = None,
          snr_bins: Iterable[tuple[float, float | None]] | None = None, match: str | None = None,
          magnitude_bins: Iterable[tuple[float | None, float | None]] | None = None) -> dict:
    """Precision, recall, false detections per station-day, recall by SNR and magnitude, M50 of a catalog.

    Parameters
    ----------
    catalog : str or list of dict
        Catalog file (QuakeML or seisgrid CSV, :func:`read_catalog`) or event dicts (e.g.
        :func:`from_stalta` of ``detect_archive``'s output, or ``detect(...)["events"]``).
    truth : str, Catalog or list of dict
        Truth catalog: CSV (``catalog.csv`` of ``seisgrid synth``, or any CSV in the format of the module
        docstring), QuakeML (origin times and P picks, e.g. analyst picks), an ObsPy Catalog, or CSV rows.
    tolerance_seconds : float, optional
        Largest time difference of a match (default ``seisgrid.detect.score_tolerance_seconds``).
    station_days : float, optional
        Station-days of data scanned: the data time summed over stations (the definition shared by every
        detector, :mod:`seisgrid.seismic.detect`); default from the catalog's ``STEM.json`` (``detect``
        writes it) or the truth's ``archive.json``; ``false_per_station_day`` is None when unknown.
    snr_bins : list of (min, max), optional
        Default ``[0, 1), [1, 3), [3, 10), [10, 30), [30, ∞)`` (max None = open).
    match : {"origin", "arrival"}, optional
        What is compared (module docstring); default ``seisgrid.detect.score_match`` (``"origin"``).
    magnitude_bins : list of (min, max), optional
        Default :data:`MAGNITUDE_BINS`: ``<0, 0–0.5, 0.5–1, 1–1.5, 1.5–2, ≥2`` (None = open).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``false_per_station_day`` (unmatched detections ÷ station-days),
        ``recall_by_snr`` (list of ``{snr_min, snr_max, n, detected, recall}``), ``recall_by_magnitude``
        (list of ``{magnitude_min, magnitude_max, n, detected, recall, magnitude_mean}``), ``m50`` and
        ``m50_bound`` (:func:`seisgrid.seismic.metrics.m50`; None without magnitudes), ``detected``, ``true``,
        ``matched``, ``false``, ``missed``, ``station_days``, ``tolerance_seconds``, ``match``,
        ``median_abs_dt_seconds``, ``truth_skipped`` (rows or events of the truth left out, with why),
        ``no_arrival`` (with ``match="arrival"``: detected events without a pick time or first arrival,
        counted unmatched) and ``matches`` (``[{event_id, truth_event_id, dt_seconds}]``).
    """
    tol = float(config.get("detect.score_tolerance_seconds", override=tolerance_seconds))
    by = str(config.get("detect.score_match", "origin", override=match))
    if by not in MATCH_BY:
        raise ConfigError(f"score: match {by!r}: expected one of {list(MATCH_BY)}")
    detected = read_catalog(catalog) if isinstance(catalog, (str, pathlib.Path)) else list(catalog)
    skipped: list[str] = []
    true = read_truth(truth, skipped=skipped)
    days = _station_days(catalog, truth, station_days)
    pairs = match_events(detected, true, tol, by)
    no_arrival = sum(first_arrival_ns(ev) is None for ev in detected) if by == "arrival" else 0
    if no_arrival:
        logger.warning("score --match arrival: %d detected events have no pick time or first_arrival: "
                       "counted as unmatched", no_arrival)
    n_match = len(pairs)
    matched_truth = {j for _, j, _ in pairs}
    precision = n_match / len(detected) if detected else None
    recall = n_match / len(true) if true else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall is not None and precision + recall > 0 else None)
    false = len(detected) - n_match
    by_snr = []
    for lo, hi in snr_bins or SNR_BINS:
        idx = [j for j, t in enumerate(true)
               if not math.isnan(t["snr"]) and t["snr"] >= lo and (hi is None or t["snr"] < hi)]
        hit = sum(1 for j in idx if j in matched_truth)
        by_snr.append({"snr_min": lo, "snr_max": hi, "n": len(idx), "detected": hit,
                       "recall": hit / len(idx) if idx else None})
    mag_bins = list(magnitude_bins if magnitude_bins is not None else MAGNITUDE_BINS)
    mags = np.array([t["magnitude"] for t in true], dtype=np.float64)
    found = np.array([j in matched_truth for j in range(len(true))], dtype=bool)
    names = metrics.assign_bins(mags, mag_bins)
    by_mag = []
    for m_lo, m_hi in mag_bins:
        sel = names == metrics.bin_name(m_lo, m_hi)
        n = int(sel.sum())
        by_mag.append({"magnitude_min": m_lo, "magnitude_max": m_hi, "n": n, "detected": int(found[sel].sum()),
                       "recall": float(found[sel].mean()) if n else None,
                       "magnitude_mean": round(float(mags[sel].mean()), 3) if n else None})
    m50 = metrics.m50(mags, found, mag_bins)
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "false_per_station_day": false / days if days else None,
        "recall_by_snr": by_snr, "recall_by_magnitude": by_mag, "m50": m50["m50"], "m50_bound": m50["bound"],
        "detected": len(detected), "true": len(true), "matched": n_match, "false": false,
        "missed": len(true) - n_match, "station_days": days, "tolerance_seconds": tol, "match": by,
        "median_abs_dt_seconds": float(np.median([dt for *_, dt in pairs])) if pairs else None,
        "truth_skipped": skipped, "no_arrival": no_arrival,
        "matches": [{"event_id": detected[i].get("event_id"), "truth_event_id": true[j]["event_id"],
                     "dt_seconds": round(dt, 3)} for i, j, dt in pairs],
    }


__all__ = [
    "MAGNITUDE_BINS",
    "MATCH_BY",
    "SNR_BINS",
    "first_arrival_ns",
    "from_obspy",
    "from_stalta",
    "match_events",
    "read_catalog",
    "read_truth",
    "score",
    "stem",
    "to_obspy",
    "write_catalog",
]
