"""Position-labelled event windows without picks (format ``pfo``, e.g. ``pfo-anza-windows``).

Files ``NET.STA.LOC.CHA_<start>_<end>.mseed`` (``:`` written as ``_`` in the times; in the folder or one
level below), one trace each, cut around one earthquake whose onset sits near :data:`ONSET_NOMINAL`
(``onset_seconds``, 100 s) after the nominal start in the name (``$SEISGRID_DATA/seismic/pfo-anza-windows``).

Onset (P), re-derived per window with the set README's rule
    demean, 1 % cosine taper, 2–20 Hz Butterworth band-pass (4 corners, causal), ObsPy
    ``recursive_sta_lta`` with STA 0.5 s and LTA 10 s, the first 15 s of the ratio set to 0; triggers with
    on 4, off 1.5; the onset is the start of the trigger that contains the largest ratio. Without such a
    trigger the onset is the nominal ``onset_seconds`` after the start in the file name (in trace time:
    minus the trace's delay after the nominal start). Either way ``p_predicted`` (no analyst pick).
Earthquake window
    Around that onset with the usual rule (P 8 ± 3 s into the 25 s window).
Pre-event noise (``pre_event_noise``), screened
    Candidates tile the pre-event segment from 15 s (where the ratio starts: a transient before it
    could not be seen) with non-overlapping windows ending by ``min(95 s nominal, onset -
    noise_margin_seconds)``. In order, a candidate where the same STA/LTA ratio reaches
    ``noise_screen_ratio`` (4) anywhere is dropped ("transient in pre-event noise": PFO lies in one of the
    most active parts of southern California, and small local events precede about 19 % of the main
    events), until ``noise_per_record`` clean candidates are kept.
Provenance
    One component: Z present, N and E absent. Network, station from the trace; region from the station
    coordinates (``stations`` option, :data:`KNOWN_STATIONS`) or the folder name; windows whose spans
    (start to end in the names) overlap or touch, chained, are one event group (``event_id`` = the first
    start), so two windows around the same earthquake never fall in two splits.
"""

from __future__ import annotations

import math
import pathlib
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from seisgrid.seismic.labelled.base import (
    KNOWN_REGIONS,
    Reader,
    Record,
    Skip,
    _local,
    folder_files,
    region_of,
    station_coordinates,
)

if TYPE_CHECKING:
    import os

_NAME = re.compile(r"^(?P<id>[A-Za-z0-9]*\.[A-Za-z0-9]+\.[A-Za-z0-9-]*\.[A-Za-z0-9]+)_"
                   r"(?P<start>\d{4}-\d\d-\d\dT\d\d_\d\d_\d\d(?:\.\d+)?)_"
                   r"(?P<end>\d{4}-\d\d-\d\dT\d\d_\d\d_\d\d(?:\.\d+)?)\.mseed$")
#: Station coordinates (lat, lon) known without a stations file (AZ.PFO: the set's README).
KNOWN_STATIONS = {"AZ.PFO": (33.61, -116.46)}
ONSET_NOMINAL = 100.0
FREQMIN, FREQMAX, CORNERS, TAPER = 2.0, 20.0, 4, 0.01
STA, LTA, ZEROED, THR_ON, THR_OFF = 0.5, 10.0, 15.0, 4.0, 1.5
NOISE_END_NOMINAL = 95.0
FILES_PER_TASK = 128


def _files(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    return folder_files(folder, ".mseed", accept=_NAME.match)


def detect(folder: pathlib.Path) -> bool:
    """Whether ``folder`` holds ``NET.STA.LOC.CHA_START_END.mseed`` windows (checked after ``events``).

    Parameters
    ----------
    folder : pathlib.Path

    Returns
    -------
    bool
    """
    return bool(_files(folder))


def _time(stamp: str) -> pd.Timestamp:
    day, _, clock = stamp.partition("T")
    return pd.Timestamp(f"{day}T{clock.replace('_', ':')}")


def event_groups(names: list[str]) -> dict[str, str]:
    """File name → event group: windows whose nominal spans overlap or touch, chained, share the first start.

    Parameters
    ----------
    names : list of str
        File names ``NET.STA.LOC.CHA_START_END.mseed``.

    Returns
    -------
    dict of str to str
        The group's first start (ISO) per file name.
    """
    spans = sorted((_time(m["start"]), _time(m["end"]), n) for n in names if (m := _NAME.match(n)))
    out, group, reach = {}, "", None
    for start, end, name in spans:
        if reach is None or start > reach:
            group, reach = start.isoformat(), end
        reach = max(reach, end)
        out[name] = group
    return out


def onset_ratio(data: np.ndarray, rate: float) -> np.ndarray:
    """The README's STA/LTA ratio of one trace (band-passed 2–20 Hz, recursive 0.5/10 s, first 15 s zero).

    Parameters
    ----------
    data : ndarray
        Samples.
    rate : float
        Hz.

    Returns
    -------
    ndarray of float64
    """
    import obspy
    from obspy.signal.trigger import recursive_sta_lta

    tr = obspy.Trace(np.asarray(data, dtype="float64").copy(), header={"sampling_rate": rate})
    tr.detrend("demean")
    tr.taper(TAPER)
    tr.filter("bandpass", freqmin=FREQMIN, freqmax=min(FREQMAX, 0.45 * rate), corners=CORNERS)
    c = recursive_sta_lta(tr.data, int(STA * rate), int(LTA * rate))
    c[: int(ZEROED * rate)] = 0.0
    return c


def onset_seconds(ratio: np.ndarray, rate: float) -> float | None:
    """Start (s) of the trigger (on 4, off 1.5) that contains the largest ratio; None without one.

    Parameters
    ----------
    ratio : ndarray
        :func:`onset_ratio` output.
    rate : float
        Hz.

    Returns
    -------
    float or None
    """
    from obspy.signal.trigger import trigger_onset

    k = int(np.argmax(ratio))
    on = [a for a, b in trigger_onset(ratio, THR_ON, THR_OFF) if a <= k <= b]
    return on[0] / rate if on else None


def noise_candidates(ratio: np.ndarray, rate: float, end_seconds: float, window: float, screen: float,
                     wanted: int) -> tuple[list[float], list[tuple[float, str]]]:
    """Pre-event noise windows: kept starts and dropped (start, reason), the rule of :mod:`.pfo`.

    Parameters
    ----------
    ratio : ndarray
        :func:`onset_ratio` of the trace.
    rate : float
        Hz.
    end_seconds : float
        Candidates end by this time (s after the first sample).
    window : float
        Window length, s.
    screen : float
        Ratio that drops a candidate (≤ 0: none dropped).
    wanted : int
        Stop after this many kept.

    Returns
    -------
    kept : list of float
    dropped : list of (float, str)
    """
    kept: list[float] = []
    dropped: list[tuple[float, str]] = []
    t0 = ZEROED
    while t0 + window <= end_seconds + 1e-9 and len(kept) < wanted:
        a, b = round(t0 * rate), round((t0 + window) * rate)
        peak = float(ratio[a:b].max()) if b > a else 0.0
        if screen > 0 and peak >= screen:
            dropped.append((t0, f"transient in pre-event noise (STA/LTA ≥ {screen:g})"))
        else:
            kept.append(t0)
        t0 += window
    return kept, dropped


def plan(source: str, catalog: str | os.PathLike | None, opts: dict,
         rng: np.random.Generator) -> tuple[list[dict], list[Skip]]:
    """Tasks (chunks of files, with each file's event group) of a PFO-style folder.

    Parameters
    ----------
    source : str
        The local folder.
    catalog : str or None
        Not used.
    opts : dict
        Build options.
    rng : numpy.random.Generator
        Not used.

    Returns
    -------
    tasks : list of dict
    skips : list of Skip
        Empty.
    """
    folder = _local(source)
    files = _files(folder)
    names = sorted(files)
    groups = event_groups(names)
    tasks = [{"format": "pfo", "path": str(folder), "source": folder.name,
              "files": [(n, str(files[n]), groups[n]) for n in names[i:i + FILES_PER_TASK]]}
             for i in range(0, len(names), FILES_PER_TASK)]
    return tasks, []


def read_pfo(task: dict, opts: dict) -> list[Record | Skip]:
    """Records of one task of :func:`plan` (onset re-derived, noise candidates screened).

    Parameters
    ----------
    task : dict
        ``files``: [(name, path, event group)].
    opts : dict
        Build options (``onset_seconds``, ``noise_screen_ratio``, ``window_seconds``,
        ``noise_margin_seconds``, ``noise_per_record``, ``station_coords``).

    Returns
    -------
    list of Record or Skip
    """
    import obspy

    source = task["source"]
    out: list[Record | Skip] = []
    coords = opts.get("station_coords") or {}
    for name, path, group in task["files"]:
        try:
            st = obspy.read(path)
        except Exception as exc:  # noqa: BLE001 (any unreadable file is reported and skipped)
            out.append(Skip(source, name, f"unreadable miniSEED ({type(exc).__name__}: {exc})"))
            continue
        if len(st) != 1:
            st.merge(method=1)
        tr = st[0]
        if len(st) != 1 or (np.ma.isMaskedArray(tr.data) and np.ma.getmaskarray(tr.data).any()):
            out.append(Skip(source, name, f"{len(st)} traces or a gap (expected one trace)"))
            continue
        rate = float(tr.stats.sampling_rate)
        m = _NAME.match(name)
        assert m is not None  # _files keeps matching names only
        nominal = _time(m["start"])
        delay = (tr.stats.starttime.ns - nominal.value) / 1e9
        ratio = onset_ratio(tr.data, rate)
        onset = onset_seconds(ratio, rate)
        if onset is None:
            onset = opts.get("onset_seconds", ONSET_NOMINAL) - delay
        end = min(NOISE_END_NOMINAL - delay, onset - opts["noise_margin_seconds"])
        kept, dropped = noise_candidates(ratio, rate, end, opts["window_seconds"], opts["noise_screen_ratio"],
                                         opts["noise_per_record"])
        data = np.zeros((3, tr.stats.npts))
        data[0] = np.asarray(tr.data, dtype="float64")
        net, sta = tr.stats.network, tr.stats.station
        lat, lon = station_coordinates(coords, net, sta)
        if math.isnan(lat):
            lat, lon = KNOWN_STATIONS.get(f"{net}.{sta}", (math.nan, math.nan))
        region = region_of(lat, lon)
        out.append(Record(
            source=source, name=name, data=data, sampling_rate=rate, present=np.array([True, False, False]),
            kind="event", p_seconds=onset, network=net, station=sta, event_id=f"{source}:{group}",
            region=KNOWN_REGIONS.get(source, region) if region == "unknown" else region,
            start_time=np.datetime64(tr.stats.starttime.ns, "ns"), p_predicted=True,
            noise_offsets=kept, screened=dropped,
        ))
    return out


READER = Reader(detect=detect, plan=plan, read_task=read_pfo)
