"""Event miniSEED files with picks (format ``events``): the most common real layout, read as it is.

A folder (searched recursively) of miniSEED files (names ending :data:`MSEED_SUFFIXES`, e.g. ``.mseed``,
``.m``) holding event records, plus the picks in one file at its top level:

QuakeML (``.xml``, ``.qml``, ``.quakeml``; any QuakeML with picks)
    One event per ``<event>``, its id the last part of the resource id. The preferred origin (else the
    first) gives the origin time and the coordinates, the preferred magnitude (else the first) the
    magnitude. Each pick's phase is its ``phase_hint`` (else the phase of the arrival that names it); a
    phase starting with ``P``/``p`` is a P, with ``S``/``s`` an S. Picks name the station (and the network
    when they have one).
Nordic (SEISAN S-files, names ending ``.S`` + ``YYYYMM``, or ``.nordic``; one or more events each)
    Read with ObsPy's Nordic reader, as QuakeML; an event's id is its origin time (ISO), since the
    reader makes up a new resource id on every read.
CSV (a ``.csv`` with the columns below; one pick per row)
    ``event_id``, ``station`` (``STA`` or ``NET.STA``), ``phase`` (``P``, ``Pg``, ``S``, ...),
    ``pick_time`` (ISO 8601, UTC); optional ``network``, ``origin_time``, ``latitude``, ``longitude``
    (of the event, degrees), ``depth_km`` (or ``depth_m``), ``magnitude``. Rows whose ``pick_time`` does not
    parse are skipped with the row number.

The folder's only QuakeML file is used, else its only pick CSV, else all its Nordic S-files; the
``event_picks`` option names the file when there are several (the Thwaites set holds a QuakeML and a CSV:
its QuakeML is used).

Rules
-----
File → event
    The event with the most picks inside the file's time span at stations of the file (ties: the earliest
    such pick); a file without any is matched to the event whose origin time lies inside its span and is
    nearest to its start; else it is skipped ("no event's picks or origin inside the file span"). All
    files of one event are read together (one file per event, per station or per channel all work).
Channels
    One sensor per station, Z/N/E slots, 1/2 → N/E with the orientation unknown (flagged in the store's
    ``orientation_unknown`` attribute), never two sensors mixed: :mod:`seisgrid.seismic.channels`. The
    components are cut to their common span; a channel with a gap, or components at different rates, skip
    the station with the reason.
P per station
    The earliest P pick of the station. Without one, the earliest S pick places P at
    ``origin + (S - origin) / VP_VS`` (:data:`VP_VS` = 1.73: P and S on the same ray), flagged
    ``p_predicted``; without an origin time the station is skipped ("only an S pick and no origin time").
    Stations without any pick are skipped ("no P or S pick") unless ``unpicked_stations=origin``, which
    places P at the event's origin time (flagged ``p_predicted``; a local event's P comes a few seconds
    later, well inside the window).
Labels
    The window around P is ``earthquake`` (label 1) unless the source's class says otherwise:
    ``source_class SOURCE=icequake`` or a ``labels.yaml`` (``class: icequake``) in the folder makes it
    ``icequake`` (label 0). Noise windows are the pre-P part of each record (``pre_event_noise``), as for
    the other event sets. Region: from the station coordinates (``stations`` option), else the event's,
    else the folder name (:data:`~.base.KNOWN_REGIONS`); ``distance_km`` when both are known.
"""

from __future__ import annotations

import math
import pathlib
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from seisgrid.seismic.channels import station_sensors
from seisgrid.seismic.labelled.base import (
    KNOWN_REGIONS,
    Reader,
    Record,
    Skip,
    WindowsError,
    _float,
    _local,
    _timestamp,
    distance_km,
    region_of,
    station_coordinates,
)
from seisgrid.seismic.windowstore import COMPONENTS

if TYPE_CHECKING:
    import os

#: File name endings read as miniSEED.
MSEED_SUFFIXES = (".mseed", ".miniseed", ".msd", ".ms", ".m", ".seed")
QUAKEML_SUFFIXES = (".xml", ".qml", ".quakeml")
_NORDIC = re.compile(r"(\.S\d{6}|\.nordic)$", re.IGNORECASE)
#: Vp/Vs that places P from an S pick and the origin time.
VP_VS = 1.73
CSV_COLUMNS = ("event_id", "station", "phase", "pick_time")
EVENTS_PER_TASK = 16
NS = 1_000_000_000


def _is_quakeml(path: pathlib.Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096).lower()
    return b"quakeml" in head


def _is_pick_csv(path: pathlib.Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        header = {c.strip().lower() for c in f.readline().split(",")}
    return set(CSV_COLUMNS) <= header


def _pick_files(folder: pathlib.Path) -> tuple[list[pathlib.Path], list[pathlib.Path], list[pathlib.Path]]:
    files = sorted(p for p in folder.iterdir() if p.is_file())
    quakeml = [p for p in files if p.suffix.lower() in QUAKEML_SUFFIXES and _is_quakeml(p)]
    csvs = [p for p in files if p.suffix.lower() == ".csv" and _is_pick_csv(p)]
    nordic = [p for p in files if _NORDIC.search(p.name)]
    return quakeml, csvs, nordic


def _mseed_files(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MSEED_SUFFIXES)


def detect(folder: pathlib.Path) -> bool:
    """Whether ``folder`` holds miniSEED event files and a QuakeML, pick CSV or Nordic S-files.

    Parameters
    ----------
    folder : pathlib.Path

    Returns
    -------
    bool
    """
    return any(_pick_files(folder)) and any(True for _ in _mseed_files(folder))


# ------------------------------------------------------------------------------------------- picks


def _ns(value) -> int | None:
    """``value`` as UTC nanoseconds (the reader registry's time parsing), None when it is not a time."""
    t = _timestamp(value)
    return None if np.isnat(t) else int(t.astype("int64"))


def _phase(text) -> str | None:
    first = str(text or "").strip()[:1].upper()
    return first if first in ("P", "S") else None


def _read_event_file(path: pathlib.Path, events: dict, nordic: bool = False) -> None:
    """Events of a QuakeML or Nordic file into ``events`` (id → origin, coordinates, magnitude, picks)."""
    import obspy

    for k, ev in enumerate(obspy.read_events(str(path), format="NORDIC" if nordic else None)):
        origin = ev.preferred_origin() or (ev.origins[0] if ev.origins else None)
        if nordic:  # ObsPy's Nordic reader makes up a new resource id on every read
            eid = str(origin.time) if origin is not None and origin.time is not None else f"{path.name}#{k}"
        else:
            eid = str(ev.resource_id.id).rstrip("/").rsplit("/", 1)[-1]
        mag = ev.preferred_magnitude() or (ev.magnitudes[0] if ev.magnitudes else None)
        arrival_phase = {}
        for o in ev.origins:
            for a in o.arrivals:
                arrival_phase[str(a.pick_id)] = a.phase
        picks = []
        for pk in ev.picks:
            phase = _phase(pk.phase_hint) or _phase(arrival_phase.get(str(pk.resource_id)))
            if phase is None or pk.time is None:
                continue
            wid = pk.waveform_id
            picks.append(((wid.network_code or "") if wid else "", (wid.station_code or "") if wid else "",
                          phase, pk.time.ns))
        events[eid] = {
            "origin": origin.time.ns if origin is not None and origin.time is not None else None,
            "latitude": _float(origin.latitude) if origin is not None else math.nan,
            "longitude": _float(origin.longitude) if origin is not None else math.nan,
            "magnitude": _float(mag.mag) if mag is not None else math.nan,
            "picks": picks,
        }


def _read_csv(path: pathlib.Path, source: str) -> tuple[dict, list[Skip]]:
    table = pd.read_csv(path, dtype=str)
    table.columns = [c.strip().lower() for c in table.columns]
    events: dict[str, dict] = {}
    skips = []
    for i, row in enumerate(table.to_dict("records"), start=2):
        eid, station = str(row["event_id"]), str(row["station"]).strip()
        t, phase = _ns(row["pick_time"]), _phase(row["phase"])
        if t is None or phase is None:
            why = f"pick_time {row['pick_time']!r} is not a time" if t is None else f"phase {row['phase']!r}"
            skips.append(Skip(source, f"{path.name} row {i}", f"unusable pick ({why})"))
            continue
        net = str(row.get("network") or "").strip() if isinstance(row.get("network"), str) else ""
        if "." in station and not net:
            net, station = station.split(".", 1)
        ev = events.setdefault(eid, {"origin": None, "latitude": math.nan, "longitude": math.nan,
                                     "magnitude": math.nan, "picks": []})
        if ev["origin"] is None and isinstance(row.get("origin_time"), str):
            ev["origin"] = _ns(row["origin_time"])
        for key in ("latitude", "longitude", "magnitude"):
            if math.isnan(ev[key]):
                ev[key] = _float(row.get(key))
        ev["picks"].append((net, station, phase, t))
    return events, skips


def read_picks(folder: str | os.PathLike, pick_file: str | None = None,
               source: str | None = None) -> tuple[dict, list[Skip], pathlib.Path]:
    """The events and picks of an event-file folder (QuakeML or CSV, the rules: :mod:`.eventfiles`).

    Parameters
    ----------
    folder : str or path-like
        The local folder.
    pick_file : str, optional
        The pick file (a name inside the folder, or a path); default: the folder's only QuakeML file,
        else its only pick CSV, else all its Nordic S-files.
    source : str, optional
        Source name for skips (default the folder name).

    Returns
    -------
    events : dict
        Event id → ``origin`` (ns or None), ``latitude``, ``longitude``, ``magnitude``, ``picks``
        [(network, station, phase P/S, time ns)].
    skips : list of Skip
        Unusable pick rows.
    path : pathlib.Path
        The pick file read (the first, for Nordic S-files).

    Raises
    ------
    WindowsError
        No pick file, or several and ``pick_file`` is not given.
    """
    folder = pathlib.Path(folder)
    source = source or folder.name
    events: dict[str, dict] = {}
    skips: list[Skip] = []
    if pick_file:
        path = pathlib.Path(pick_file)
        path = path if path.is_absolute() or path.exists() else folder / pick_file
        if not path.exists():
            raise WindowsError(f"{folder}: event_picks file {pick_file} not found")
    else:
        quakeml, csvs, nordic = _pick_files(folder)
        candidates = quakeml or csvs
        if not candidates and nordic:
            for sfile in nordic:
                _read_event_file(sfile, events, nordic=True)
            return events, [], nordic[0]
        if len(candidates) != 1:
            raise WindowsError(f"{folder}: {len(candidates) or 'no'} pick files "
                               f"({', '.join(p.name for p in candidates) or 'none'}); name one with event_picks")
        path = candidates[0]
    if path.suffix.lower() in QUAKEML_SUFFIXES or _NORDIC.search(path.name):
        _read_event_file(path, events, nordic=bool(_NORDIC.search(path.name)))
    else:
        if not _is_pick_csv(path):
            raise WindowsError(f"{path}: expected a QuakeML file, Nordic S-file or a CSV with the columns "
                               f"{list(CSV_COLUMNS)}")
        events, skips = _read_csv(path, source)
    return events, skips, path


# ------------------------------------------------------------------------------------ files → events


def _file_spans(files: list[pathlib.Path], source: str) -> tuple[list[dict], list[Skip]]:
    import obspy

    spans, skips = [], []
    for path in files:
        try:
            st = obspy.read(str(path), headonly=True)
        except Exception as exc:  # noqa: BLE001 (any unreadable file is reported and skipped)
            skips.append(Skip(source, path.name, f"unreadable miniSEED ({type(exc).__name__}: {exc})"))
            continue
        if not len(st):
            skips.append(Skip(source, path.name, "no traces"))
            continue
        spans.append({"path": str(path), "start": min(tr.stats.starttime.ns for tr in st),
                      "end": max(tr.stats.endtime.ns for tr in st),
                      "stations": sorted({(tr.stats.network, tr.stats.station) for tr in st})})
    return spans, skips


def _match(span: dict, events: dict, origins: np.ndarray, origin_ids: list[str]) -> str | None:
    """The event of one file (the rule: :mod:`.eventfiles`)."""
    codes = {sta for _, sta in span["stations"]}
    nets = {(net, sta) for net, sta in span["stations"]}
    best, best_key = None, None
    for eid, ev in events.items():
        inside = [t for net, sta, _, t in ev["picks"]
                  if span["start"] <= t <= span["end"] and sta in codes and (not net or (net, sta) in nets)]
        if inside:
            key = (-len(inside), min(inside))
            if best_key is None or key < best_key:
                best, best_key = eid, key
    if best is not None:
        return best
    inside_span = np.flatnonzero((origins >= span["start"]) & (origins <= span["end"]))
    if len(inside_span):
        return origin_ids[int(inside_span[np.argmin(origins[inside_span] - span["start"])])]
    return None


def plan(source: str, catalog: str | os.PathLike | None, opts: dict,
         rng: np.random.Generator) -> tuple[list[dict], list[Skip]]:
    """Tasks (chunks of events with their files and picks) of an event-file folder.

    Parameters
    ----------
    source : str
        The local folder.
    catalog : str or None
        Not used (the picks are in the folder, or ``event_picks``).
    opts : dict
        Build options (``event_picks``).
    rng : numpy.random.Generator
        Not used.

    Returns
    -------
    tasks : list of dict
        For :func:`read_events`.
    skips : list of Skip
        Unusable pick rows and files, files without an event.
    """
    folder = _local(source)
    name = folder.name
    events, skips, _ = read_picks(folder, opts.get("event_picks"), name)
    spans, file_skips = _file_spans(_mseed_files(folder), name)
    skips.extend(file_skips)
    origin_ids = [eid for eid, ev in events.items() if ev["origin"] is not None]
    origins = np.array([events[eid]["origin"] for eid in origin_ids], dtype=np.int64)
    files_of: dict[str, list[str]] = {}
    for span in spans:
        eid = _match(span, events, origins, origin_ids)
        if eid is None:
            skips.append(Skip(name, pathlib.Path(span["path"]).name, "no event's picks or origin inside the file span"))
            continue
        files_of.setdefault(eid, []).append(span["path"])
    items = [{"event_id": eid, "files": sorted(files), **events[eid]} for eid, files in sorted(files_of.items())]
    tasks = [{"format": "events", "path": str(folder), "source": name, "events": items[i:i + EVENTS_PER_TASK]}
             for i in range(0, len(items), EVENTS_PER_TASK)]
    return tasks, skips


# ---------------------------------------------------------------------------------------- records


def _station_p(ev: dict, net: str, sta: str, unpicked: str) -> tuple[int | None, int | None, bool, str]:
    """(P ns, S ns, P predicted, reason when no P) of one station of an event."""
    mine = [(phase, t) for n, s, phase, t in ev["picks"] if s == sta and (not n or n == net)]
    p = min((t for phase, t in mine if phase == "P"), default=None)
    s = min((t for phase, t in mine if phase == "S"), default=None)
    if p is not None:
        return p, s, False, ""
    origin = ev["origin"]
    if s is not None:
        if origin is None:
            return None, s, False, "only an S pick and no origin time to place P"
        return origin + round((s - origin) / VP_VS), s, True, ""
    if unpicked == "origin" and origin is not None:
        return origin, None, True, ""
    return None, None, False, ("no P or S pick for this station (unpicked_stations=skip)" if origin is not None
                               else "no P or S pick for this station and no origin time")


def _station_data(st, sensor) -> tuple[np.ndarray, np.ndarray, float, int] | str:
    """(data (3, n), present, rate, first-sample ns) of a sensor's channels on their common span, or why not."""
    traces = {}
    for slot, cid in sensor.channels.items():
        sub = st.select(id=cid)
        if len(sub) > 1:
            sub = sub.copy().merge(method=1)
        tr = sub[0]
        if np.ma.isMaskedArray(tr.data) and np.ma.getmaskarray(tr.data).any():
            return f"gap in {cid}"
        traces[slot] = tr
    rates = {float(tr.stats.sampling_rate) for tr in traces.values()}
    if len(rates) > 1:
        return f"components at different rates ({sorted(rates)} Hz)"
    rate = rates.pop()
    start = max(tr.stats.starttime.ns for tr in traces.values())
    offsets = {k: round((start - tr.stats.starttime.ns) * rate / NS) for k, tr in traces.items()}
    n = min(tr.stats.npts - offsets[k] for k, tr in traces.items())
    if n <= 0:
        return "components do not overlap in time"
    data = np.zeros((3, n))
    present = np.zeros(3, bool)
    for k, tr in traces.items():
        data[COMPONENTS.index(k)] = np.asarray(tr.data[offsets[k]:offsets[k] + n], dtype="float64")
        present[COMPONENTS.index(k)] = True
    return data, present, rate, start


def read_events(task: dict, opts: dict) -> list[Record | Skip]:
    """Records (one per event and station) of one task of :func:`plan`.

    Parameters
    ----------
    task : dict
        ``events``: [{event_id, files, origin, latitude, longitude, magnitude, picks}].
    opts : dict
        Build options (``unpicked_stations``, ``station_coords``).

    Returns
    -------
    list of Record or Skip
    """
    import obspy

    source = task["source"]
    coords = opts.get("station_coords") or {}
    out: list[Record | Skip] = []
    for ev in task["events"]:
        st = obspy.Stream()
        for path in ev["files"]:
            st += obspy.read(path)
        stem = pathlib.Path(ev["files"][0]).stem
        for station, sensor in station_sensors(tr.id for tr in st).items():
            net, sta = station.split(".", 1)
            name = f"{stem}:{station}"
            p, s, predicted, why = _station_p(ev, net, sta, opts.get("unpicked_stations", "skip"))
            if p is None:
                out.append(Skip(source, name, why))
                continue
            got = _station_data(st, sensor)
            if isinstance(got, str):
                out.append(Skip(source, name, got))
                continue
            data, present, rate, start = got
            lat, lon = station_coordinates(coords, net, sta)
            region = region_of(lat, lon)
            if region == "unknown":
                region = region_of(ev["latitude"], ev["longitude"])
            if region == "unknown":
                region = KNOWN_REGIONS.get(source, region)
            out.append(Record(
                source=source, name=name, data=data, sampling_rate=rate, present=present, kind="event",
                p_seconds=(p - start) / NS, s_seconds=None if s is None else (s - start) / NS,
                network=net, station=sta, event_id=f"{source}:{ev['event_id']}", region=region,
                start_time=np.datetime64(start, "ns"), magnitude=ev["magnitude"], p_predicted=predicted,
                distance_km=distance_km(ev["latitude"], ev["longitude"], lat, lon),
                orientation_unknown=sensor.orientation_unknown,
            ))
    return out


READER = Reader(detect=detect, plan=plan, read_task=read_events)
