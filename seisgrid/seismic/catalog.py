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

Scoring (:func:`score`)
    Detected and true events are matched one to one: every pair closer than ``tolerance_seconds`` is a
    candidate and pairs are taken greedily from the closest (ties: earlier true event, then earlier
    detection). A detected event with an ``origin_time`` is compared with the true origin time; one
    without (not located, e.g. STA/LTA triggers) with the true **first arrival** (earliest P over the
    stations). ``precision`` = matched / detected, ``recall`` = matched / true,
    ``false_per_station_day`` = unmatched detections / station-days, and ``recall_by_snr`` in bins of the
    true event's SNR (the maximum over its stations in the truth CSV).
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
from seisgrid.errors import SeisgridError
from seisgrid.seismic.associate import iso

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

logger = logging.getLogger("seisgrid")

SNR_BINS = [(0.0, 1.0), (1.0, 3.0), (3.0, 10.0), (10.0, 30.0), (30.0, None)]
CSV_COLUMNS = ["event_id", "origin_time", "first_arrival", "latitude", "longitude", "depth_km", "rms_seconds",
               "n_stations", "stations", "probability", "picks"]
SUFFIXES = (".xml", ".quakeml", ".qml", ".csv", ".json")
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
    fs, path = storage.filesystem(base)
    parent = str(pathlib.PurePosixPath(path).parent)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    buf = io.BytesIO()
    to_obspy(events, method=method).write(buf, format="QUAKEML")
    with fs.open(path + ".xml", "wb") as f:
        f.write(buf.getvalue())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for ev in events:
        row = {k: ev.get(k) for k in CSV_COLUMNS}
        row["stations"] = ";".join(ev.get("stations") or [])
        row["picks"] = ";".join(f"{p['station']}@{p['time']}" for p in ev.get("picks") or [])
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    with fs.open(path + ".csv", "w") as f:
        f.write(text.getvalue())
    paths = {"quakeml": base + ".xml", "csv": base + ".csv"}
    if summary is not None:
        with fs.open(path + ".json", "w") as f:
            json.dump(summary, f, indent=2, default=str)
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
def read_truth(truth: str | pathlib.Path | Iterable[dict]) -> list[dict]:
    """True events of a truth CSV or of its rows.

    The CSV is ``catalog.csv`` of :func:`seisgrid.seismic.synth.synthesize` (one row per event and
    station); a list of such row dicts also works. Each event has ``event_id``, ``origin_ns``,
    ``first_p_ns`` (earliest P, or the origin when no ``p_time``), ``snr`` (max over stations, NaN when
    absent), ``magnitude``.
    """
    if isinstance(truth, (str, pathlib.Path)):
        rows = storage.read_csv_rows(str(truth), "truth catalog (CSV with event_id, origin_time[, p_time, snr])")
    else:
        rows = list(truth)
    events: dict = {}
    for i, row in enumerate(rows):
        try:
            eid = str(row.get("event_id", i + 1))
            origin = _ns(row["origin_time"])
        except (KeyError, TypeError, ValueError, Exception) as exc:  # noqa: BLE001  (UTCDateTime raises many)
            raise SeisgridError(f"{truth}: row {i + 1}: expected event_id and origin_time ({exc})") from None
        ev = events.setdefault(eid, {"event_id": eid, "origin_ns": origin, "first_p_ns": None, "snr": math.nan,
                                     "magnitude": _float(row.get("magnitude"))})
        if row.get("p_time") not in (None, ""):
            p = _ns(row["p_time"])
            ev["first_p_ns"] = p if ev["first_p_ns"] is None else min(ev["first_p_ns"], p)
        snr = _float(row.get("snr"))
        if not math.isnan(snr):
            ev["snr"] = snr if math.isnan(ev["snr"]) else max(ev["snr"], snr)
    for ev in events.values():
        if ev["first_p_ns"] is None:
            ev["first_p_ns"] = ev["origin_ns"]
    return sorted(events.values(), key=lambda e: (e["origin_ns"], e["event_id"]))


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


def match(detected: list[dict], truth: list[dict], tolerance_seconds: float) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(detected index, truth index, |dt| s)`` (module docstring: the rule)."""
    tol_ns = tolerance_seconds * 1e9
    truth_origin = np.array([t["origin_ns"] for t in truth], dtype=np.int64)
    truth_first = np.array([t["first_p_ns"] for t in truth], dtype=np.int64)
    pairs: list[tuple[int, int, int]] = []
    for i, ev in enumerate(detected):
        if ev.get("origin_time"):
            t, ref = _ns(ev["origin_time"]), truth_origin
        elif ev.get("first_arrival"):
            t, ref = _ns(ev["first_arrival"]), truth_first
        else:
            raise SeisgridError(f"detected event {ev.get('event_id', i + 1)}: has neither origin_time nor "
                                "first_arrival")
        if not len(ref):
            continue
        gap = np.abs(ref - t)
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


def score(catalog: str | pathlib.Path | Iterable[dict], truth: str | pathlib.Path | Iterable[dict], *,
          tolerance_seconds: float | None = None, station_days: float | None = None,
          snr_bins: Iterable[tuple[float, float | None]] | None = None) -> dict:
    """Precision, recall, false detections per station-day and recall by SNR of a detected catalog.

    Parameters
    ----------
    catalog : str or list of dict
        Catalog file (QuakeML or seisgrid CSV, :func:`read_catalog`) or event dicts (e.g.
        :func:`from_stalta` of ``detect_archive``'s output, or ``detect(...)["events"]``).
    truth : str or list of dict
        Truth CSV (``catalog.csv`` of ``seisgrid synth``) or its rows.
    tolerance_seconds : float, optional
        Largest time difference of a match (default ``seisgrid.detect.score_tolerance_seconds``).
    station_days : float, optional
        Station-days of data scanned; default from the catalog's ``STEM.json`` or the truth's
        ``archive.json``; ``false_per_station_day`` is None when unknown.
    snr_bins : list of (min, max), optional
        Default ``[0, 1), [1, 3), [3, 10), [10, 30), [30, ∞)`` (max None = open).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1``, ``false_per_station_day``, ``recall_by_snr`` (list of
        ``{snr_min, snr_max, n, detected, recall}``), ``detected``, ``true``, ``matched``, ``false``,
        ``missed``, ``station_days``, ``tolerance_seconds``, ``median_abs_dt_seconds``, ``matches``
        (``[{event_id, truth_event_id, dt_seconds}]``).
    """
    tol = float(config.get("detect.score_tolerance_seconds", override=tolerance_seconds))
    detected = read_catalog(catalog) if isinstance(catalog, (str, pathlib.Path)) else list(catalog)
    true = read_truth(truth)
    days = _station_days(catalog, truth, station_days)
    pairs = match(detected, true, tol)
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
    return {
        "precision": precision, "recall": recall, "f1": f1,
        "false_per_station_day": false / days if days else None,
        "recall_by_snr": by_snr,
        "detected": len(detected), "true": len(true), "matched": n_match, "false": false,
        "missed": len(true) - n_match, "station_days": days, "tolerance_seconds": tol,
        "median_abs_dt_seconds": float(np.median([dt for *_, dt in pairs])) if pairs else None,
        "matches": [{"event_id": detected[i].get("event_id"), "truth_event_id": true[j]["event_id"],
                     "dt_seconds": round(dt, 3)} for i, j, dt in pairs],
    }


__all__ = [
    "SNR_BINS",
    "from_obspy",
    "from_stalta",
    "match",
    "read_catalog",
    "read_truth",
    "score",
    "stem",
    "to_obspy",
    "write_catalog",
]
