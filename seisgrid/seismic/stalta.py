"""STA/LTA baseline with ObsPy's trigger functions: window scoring and archive-mode network detection.

Two uses, both on ObsPy's own functions (:func:`obspy.signal.filter.bandpass`,
:func:`obspy.signal.trigger.classic_sta_lta` / :func:`~obspy.signal.trigger.recursive_sta_lta`,
:func:`~obspy.signal.trigger.trigger_onset`, :func:`~obspy.signal.trigger.coincidence_trigger`):

Window mode (the comparison table, ``seisgrid evaluate``)
    Every labelled window (``docs/windows-schema.md``) is bandpassed per component and its STA/LTA
    characteristic function (CF) computed. The window's **score** is the maximum CF inside the window
    after the LTA warm-up (the first ``lta`` seconds of a window have no long-term average, ObsPy
    returns 0 there), and the components present are combined by their maximum. A window is called an
    earthquake when ``score >= threshold``; :func:`tune_threshold` picks the threshold that maximises F1
    on the windows it is given — ``seisgrid evaluate`` gives it the **validation windows only** (see
    :mod:`seisgrid.seismic.evaluate`), never test windows. :func:`window_params` are the settings a
    threshold belongs to (saved with it as ``stalta.json``). Limitation (stated, not hidden): an onset
    inside the first ``lta`` seconds of a 25 s window is not seen by the CF.

Archive mode (:func:`detect_archive`)
    On an ingested waveform store: one Dask task per station channel and UTC day reads the day with
    :meth:`seisgrid.seismic.store.Archive.stream` (plus ``pad_seconds`` before it for the filter and LTA
    to warm up and ``max_trigger_seconds`` after it so triggers can end after midnight), bandpasses it,
    computes the CF and runs ``trigger_onset`` per trace (per contiguous segment). A task keeps the
    triggers that switch on inside its day and returns the CF samples of each trigger only (from its
    on to its off sample). ObsPy's ``coincidence_trigger(None, ...)`` then runs on those CF pieces:
    ``trigger_onset`` finds exactly the same trigger in each piece (all its samples are above
    ``thr_off`` and the first is above ``thr_on``), so the network triggers, their coincidence sums and
    CF peaks are the ones ObsPy would find on the whole continuous CF, without shipping years of CF
    samples to the client. One channel per station and component letter (``components``, default
    ``"Z"``: the channel with the most samples) enters the coincidence sum, so with ``components="Z"``
    the sum counts stations and ``min_stations`` is ObsPy's ``thr_coincidence_sum``.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from typing import TYPE_CHECKING, Literal, TypedDict, Unpack, overload

import dask
import numpy as np
import obspy
from obspy.signal.filter import bandpass
from obspy.signal.trigger import (
    classic_sta_lta,
    coincidence_trigger,
    recursive_sta_lta,
    trigger_onset,
)

from seisgrid import config
from seisgrid.errors import ConfigError, SeisgridError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Sequence

    import numpy.typing as npt
    import xarray as xr
    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

METHODS = {"classic": classic_sta_lta, "recursive": recursive_sta_lta}
NS_PER_DAY = 86_400 * 10**9


def _opt(key, value):
    return config.get(f"stalta.{key}", override=value)


def _cf_function(method: str):
    try:
        return METHODS[str(method)]
    except KeyError:
        raise ConfigError(f"STA/LTA method {method!r}: expected one of {sorted(METHODS)}") from None


def _check_band(freqmin, freqmax, sampling_rate):
    if not 0 < freqmin < freqmax:
        raise ConfigError(f"bandpass {freqmin}-{freqmax} Hz: expected 0 < freqmin < freqmax")
    if freqmax >= sampling_rate / 2:
        raise ConfigError(f"bandpass freqmax {freqmax} Hz: must be below the Nyquist frequency "
                          f"{sampling_rate / 2} Hz of {sampling_rate} Hz data")


# ------------------------------------------------------------------------------------ window mode
def window_params(*, method: str | None = None, freqmin: float | None = None, freqmax: float | None = None,
                  corners: int | None = None, sta: float | None = None, lta: float | None = None) -> dict:
    """The effective window-mode settings (arguments > configuration ``seisgrid.stalta``).

    Returns
    -------
    dict
        ``method``, ``freqmin``, ``freqmax`` (Hz), ``corners``, ``sta``, ``lta`` (s): the keywords of
        :func:`window_scores` (a window score, and so a threshold, means something only with them).
    """
    return {"method": str(_opt("method", method)), "freqmin": float(_opt("freqmin", freqmin)),
            "freqmax": float(_opt("freqmax", freqmax)), "corners": int(_opt("corners", corners)),
            "sta": float(_opt("sta", sta)), "lta": float(_opt("lta", lta))}


def window_scores(waveform: np.ndarray, present: np.ndarray | None = None, *, sampling_rate: float = 100.0,
                  method: str | None = None, freqmin: float | None = None, freqmax: float | None = None,
                  corners: int | None = None, sta: float | None = None, lta: float | None = None) -> np.ndarray:
    """STA/LTA score of each window: max CF after the LTA warm-up, max over the components present.

    Parameters
    ----------
    waveform : ndarray, shape (window, component, sample)
        Counts (any float/int dtype), as in the labelled-window store.
    present : ndarray of bool, shape (window, component), optional
        Components that exist; missing ones are ignored (default: all present).
    sampling_rate : float
        Hz.
    method : {"classic", "recursive"}, optional
        ObsPy characteristic function; default ``seisgrid.stalta.method``.
    freqmin, freqmax : float, optional
        Bandpass corners in Hz (ObsPy ``bandpass``, causal); defaults from the configuration.
    corners : int, optional
        Filter corners.
    sta, lta : float, optional
        Short- and long-term average lengths in seconds.

    Returns
    -------
    ndarray of float64, shape (window,)
        Scores (dimensionless STA/LTA ratio); 0 for windows without any component present.
    """
    p = window_params(method=method, freqmin=freqmin, freqmax=freqmax, corners=corners, sta=sta, lta=lta)
    freqmin, freqmax, corners = p["freqmin"], p["freqmax"], p["corners"]
    nsta, nlta = int(round(p["sta"] * sampling_rate)), int(round(p["lta"] * sampling_rate))
    cf_func = _cf_function(p["method"])
    _check_band(freqmin, freqmax, sampling_rate)
    data = np.asarray(waveform)
    if data.ndim != 3:
        raise SeisgridError(f"waveform: expected (window, component, sample), got shape {data.shape}")
    n, c, s = data.shape
    if not 0 < nsta < nlta < s:
        raise ConfigError(f"sta {nsta} / lta {nlta} samples: expected 0 < sta < lta < window length {s}")
    mask = np.ones((n, c), bool) if present is None else np.asarray(present, bool)
    rows = data.reshape(n * c, s).astype(np.float64)
    # ObsPy's bandpass filters along the last axis: one call for the whole block.
    filtered = bandpass(rows, freqmin, freqmax, sampling_rate, corners=corners, zerophase=False)
    per = np.full(n * c, -np.inf)
    flat_mask = mask.reshape(-1)
    for i in np.flatnonzero(flat_mask):
        cf = cf_func(filtered[i], nsta, nlta)
        per[i] = cf[nlta:].max()
    scores = per.reshape(n, c).max(axis=1)
    scores[~np.isfinite(scores)] = 0.0
    return scores


class ScoreOptions(TypedDict, total=False):
    """Keyword settings of :func:`window_scores` (what :func:`score_dataset` passes on)."""

    sampling_rate: float
    method: str | None
    freqmin: float | None
    freqmax: float | None
    corners: int | None
    sta: float | None
    lta: float | None


def _score_block(block, present_block, kwargs):
    return window_scores(block, present_block, **kwargs)


def score_dataset(ds: xr.Dataset, *, client: Client | None = None,
                  **kwargs: Unpack[ScoreOptions]) -> np.ndarray:
    """:func:`window_scores` of every window of a labelled-window Dataset, one Dask task per chunk.

    ``ds`` is an ``xarray.Dataset`` with ``waveform`` (and optionally ``present``), e.g. from
    ``xarray.open_zarr``; the sampling rate comes from its ``sampling_rate`` attribute. With ``client``
    (a distributed Client) the chunks run on the cluster, else on the current Dask scheduler.
    """
    import dask.array as da

    rate = float(ds.attrs.get("sampling_rate", kwargs.pop("sampling_rate", 100.0)))
    kwargs = {"sampling_rate": rate, **kwargs}
    wave = ds["waveform"].data
    if not isinstance(wave, da.Array):
        wave = da.from_array(np.asarray(wave), chunks=(256, -1, -1))
    wave = wave.rechunk({1: -1, 2: -1})
    if "present" in ds:
        pres = ds["present"].data
        pres = (pres if isinstance(pres, da.Array) else da.from_array(np.asarray(pres)))
        pres = pres.rechunk((wave.chunks[0], -1))
    else:
        pres = da.ones(wave.shape[:2], dtype=bool, chunks=(wave.chunks[0], -1))
    # blockwise with explicit indices: map_blocks would align `present` with the trailing dimensions
    scores = da.blockwise(_score_block, "w", wave, "wcs", pres, "wc", kwargs, None, concatenate=True,
                          dtype=np.float64, meta=np.array((), dtype=np.float64))
    if client is not None:
        return np.asarray(client.compute(scores).result())
    return np.asarray(scores.compute())


def tune_threshold(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The score threshold that maximises F1 of ``score >= threshold`` on the given (validation) windows.

    Candidates are the distinct scores; ties in F1 go to the highest threshold (fewest false
    positives). Call it with validation (or, lacking those, training) windows only; the threshold then
    does not depend on any test label.

    Returns
    -------
    float
        The threshold (a score value). ``inf`` when there is no positive label.
    """
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.shape != labels.shape:
        raise SeisgridError(f"scores {scores.shape} and labels {labels.shape} differ in shape")
    if not labels.any():
        return math.inf
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[s[1:] != s[:-1], True]  # thresholds at distinct values: take the last of each tie
    tp, fp, thr = tp[last], fp[last], s[last]
    f1 = 2 * tp / (tp + fp + labels.sum())
    best = np.flatnonzero(f1 == f1.max())[0]  # thresholds descend: the first best is the highest
    return float(thr[best])


def predict(scores: npt.ArrayLike, threshold: float) -> np.ndarray:
    """1 (earthquake) where ``score >= threshold``, else 0, as int8."""
    return (np.asarray(scores, np.float64) >= threshold).astype(np.int8)


# ----------------------------------------------------------------------------------- archive mode
def _select_channels(archive, stations=None, components=None) -> dict[str, dict[str, str]]:
    """``{NET.STA: {letter: channel id}}`` of the stations used (:mod:`seisgrid.seismic.stationdata`)."""
    from seisgrid.seismic.stationdata import station_channels

    groups = station_channels(archive, str(components))
    if stations is not None:
        groups = {k: v for k, v in groups.items() if k in stations or k.split(".", 1)[1] in stations}
    return groups


def _day_tasks(archive, cid: str, start_ns: int | None, end_ns: int | None) -> list[tuple[int, int]]:
    """``(lo, hi)`` per UTC day with data of the channel inside ``[start, end)``, from its first to last sample.

    Days without data get no task.
    """
    from seisgrid.seismic.stationdata import data_spans

    days: dict[int, list[int]] = {}
    for a, b in data_spans(archive, [cid], start_ns, end_ns):
        for d in range(a // NS_PER_DAY, (b - 1) // NS_PER_DAY + 1):
            lo, hi = max(a, d * NS_PER_DAY), min(b, (d + 1) * NS_PER_DAY)
            if d in days:
                days[d][1] = hi
            else:
                days[d] = [lo, hi]
    return [(lo, hi) for _, (lo, hi) in sorted(days.items())]


def _channel_day(url, options, cid, lo_ns, hi_ns, params) -> dict:
    """One station channel, one day: CF pieces of the triggers that switch on in [lo_ns, hi_ns)."""
    from seisgrid.seismic.store import Archive

    archive = Archive(url, storage_options=options)
    pad_before = int(params["pad_seconds"] * 1e9)
    pad_after = int(params["max_trigger_seconds"] * 1e9)
    stream = archive.stream(cid, obspy.UTCDateTime(ns=lo_ns - pad_before), obspy.UTCDateTime(ns=hi_ns + pad_after))
    return _trace_pieces(stream, lo_ns, hi_ns, params)


def _trace_pieces(stream, lo_ns, hi_ns, params) -> dict:
    from seisgrid.seismic.stationdata import despike

    cf_func = _cf_function(params["method"])
    pieces, samples, skipped, n_triggers, spikes = [], 0, [], 0, 0
    for tr in stream:
        rate = tr.stats.sampling_rate
        nsta, nlta = int(params["sta"] * rate), int(params["lta"] * rate)
        if tr.stats.npts <= nlta:
            skipped.append(f"{tr.id} {tr.stats.starttime}: {tr.stats.npts} samples, fewer than lta")
            continue
        _check_band(params["freqmin"], params["freqmax"], rate)
        tr = tr.copy()
        tr.data = tr.data.astype(np.float64)
        spikes += despike(tr.data, params["despike"])
        tr.filter("bandpass", freqmin=params["freqmin"], freqmax=params["freqmax"],
                  corners=params["corners"], zerophase=False)
        cf = cf_func(tr.data, nsta, nlta)
        samples += tr.stats.npts
        max_len = int(params["max_trigger_seconds"] * rate + 0.5)
        t0 = tr.stats.starttime.ns
        for on, off in trigger_onset(cf, params["thr_on"], params["thr_off"], max_len=max_len,
                                     max_len_delete=False):
            on_ns = t0 + int(round(on * 1e9 / rate))
            if not lo_ns <= on_ns < hi_ns:
                continue
            off = min(int(off), len(cf) - 1)
            piece = obspy.Trace(cf[on:off + 1].copy(), header=dict(
                network=tr.stats.network, station=tr.stats.station, location=tr.stats.location,
                channel=tr.stats.channel, sampling_rate=rate,
                starttime=tr.stats.starttime + float(on) / rate))
            pieces.append(piece)
            n_triggers += 1
    return {"pieces": pieces, "samples": samples, "triggers": n_triggers, "skipped": skipped, "despiked": spikes}


def archive_params(*, method: str | None = None, freqmin: float | None = None, freqmax: float | None = None,
                   corners: int | None = None, sta: float | None = None, lta: float | None = None,
                   thr_on: float | None = None, thr_off: float | None = None, min_stations: float | None = None,
                   max_trigger_seconds: float | None = None, pad_seconds: float | None = None,
                   components: str | None = None, despike: float | None = None) -> dict:
    """The effective archive-mode settings (arguments > configuration ``seisgrid.stalta.archive_*``)."""
    p = {
        "method": config.get("stalta.archive_method", override=method),
        "freqmin": float(config.get("stalta.archive_freqmin", override=freqmin)),
        "freqmax": float(config.get("stalta.archive_freqmax", override=freqmax)),
        "corners": int(_opt("corners", corners)),
        "sta": float(config.get("stalta.archive_sta", override=sta)),
        "lta": float(config.get("stalta.archive_lta", override=lta)),
        "thr_on": float(_opt("thr_on", thr_on)),
        "thr_off": float(_opt("thr_off", thr_off)),
        "min_stations": float(_opt("min_stations", min_stations)),
        "max_trigger_seconds": float(_opt("max_trigger_seconds", max_trigger_seconds)),
        "components": str(_opt("components", components)),
        "despike": float(config.get("stalta.archive_despike", override=despike) or 0.0),
    }
    pad = _opt("pad_seconds", pad_seconds)
    p["pad_seconds"] = float(3 * p["lta"] if pad is None else pad)
    _cf_function(p["method"])
    if not 0 < p["sta"] < p["lta"]:
        raise ConfigError(f"sta {p['sta']} s, lta {p['lta']} s: expected 0 < sta < lta")
    return p


class ArchiveSettings(TypedDict, total=False):
    """Keyword settings of :func:`archive_params` (what :func:`detect_archive` passes on)."""

    method: str | None
    freqmin: float | None
    freqmax: float | None
    corners: int | None
    sta: float | None
    lta: float | None
    thr_on: float | None
    thr_off: float | None
    min_stations: float | None
    max_trigger_seconds: float | None
    pad_seconds: float | None
    components: str | None
    despike: float | None


@overload
def detect_archive(store_url: str | os.PathLike, start: str | obspy.UTCDateTime | None = None,
                   end: str | obspy.UTCDateTime | None = None, *, stations: Sequence[str] | None = None,
                   client: Client | LazyClient | None = None, storage_options: dict | None = None,
                   return_info: Literal[False] = False, **settings: Unpack[ArchiveSettings]) -> list[dict]: ...


@overload
def detect_archive(store_url: str | os.PathLike, start: str | obspy.UTCDateTime | None = None,
                   end: str | obspy.UTCDateTime | None = None, *, stations: Sequence[str] | None = None,
                   client: Client | LazyClient | None = None, storage_options: dict | None = None,
                   return_info: Literal[True], **settings: Unpack[ArchiveSettings]) -> tuple[list[dict], dict]: ...


@overload
def detect_archive(store_url: str | os.PathLike, start: str | obspy.UTCDateTime | None = None,
                   end: str | obspy.UTCDateTime | None = None, *, stations: Sequence[str] | None = None,
                   client: Client | LazyClient | None = None, storage_options: dict | None = None,
                   return_info: bool = False,
                   **settings: Unpack[ArchiveSettings]) -> list[dict] | tuple[list[dict], dict]: ...


def detect_archive(store_url: str | os.PathLike, start: str | obspy.UTCDateTime | None = None,
                   end: str | obspy.UTCDateTime | None = None, *, stations: Sequence[str] | None = None,
                   client: Client | LazyClient | None = None, storage_options: dict | None = None,
                   return_info: bool = False,
                   **settings: Unpack[ArchiveSettings]) -> list[dict] | tuple[list[dict], dict]:
    """Network STA/LTA detection over an ingested waveform store.

    Parameters
    ----------
    store_url : str
        Ingested store (``seisgrid ingest``), local path or ``s3://`` URL.
    start, end : str or obspy.UTCDateTime, optional
        Span to scan (default: everything in the store).
    stations : list of str, optional
        Station codes (``STA`` or ``NET.STA``) to use; default all. Stations are grouped as for every
        archive detector (:func:`seisgrid.seismic.stationdata.station_channels`).
    client : distributed.Client or LazyClient, optional
        Cluster to run the station-day tasks on; default the current Dask scheduler.
    storage_options : dict, optional
        fsspec options for ``store_url``.
    return_info : bool
        Also return a dict with channels used, tasks, samples processed and skipped traces.
    **settings
        ``method`` (classic/recursive), ``freqmin``, ``freqmax`` (Hz), ``corners``, ``sta``, ``lta``
        (s), ``thr_on``, ``thr_off``, ``min_stations`` (coincidence sum threshold),
        ``max_trigger_seconds``, ``pad_seconds``, ``components`` (letters, e.g. ``"Z"``), ``despike``
        (:func:`seisgrid.seismic.stationdata.despike` factor; 0: off); defaults from ``seisgrid.stalta``
        (``archive_*`` keys for the CF settings and ``despike``).

    Returns
    -------
    list of dict
        Chronological network triggers: ``time`` (ISO UTC), ``duration`` (s), ``stations``,
        ``trace_ids``, ``coincidence_sum``, ``cft_peak_wmean``, ``cft_std_wmean`` (ObsPy's
        ``coincidence_trigger(..., details=True)`` output). With ``return_info``: ``(events, info)``,
        ``info`` holding ``channels``, ``stations``, ``tasks``, ``samples``, ``station_days`` (data time,
        :mod:`seisgrid.seismic.stationdata`), ``station_triggers``, ``despiked``, ``skipped``,
        ``warnings`` (e.g. fewer stations than ``min_stations``) and ``params``.
    """
    from seisgrid import storage
    from seisgrid.cluster import resolve_client
    from seisgrid.seismic.stationdata import check_stations, data_days, station_channels
    from seisgrid.seismic.store import Archive

    params = archive_params(**settings)
    options = storage.storage_options(str(store_url)) if storage_options is None else storage_options
    archive = Archive(store_url, storage_options=options)
    groups = _select_channels(archive, stations, params["components"])
    if not groups:
        raise SeisgridError(f"{store_url}: no channel with component {params['components']!r}"
                            + (f" at stations {stations}" if stations else ""))
    channels = sorted(cid for comps in groups.values() for cid in comps.values())
    warnings = check_stations(len(groups), params["min_stations"], "detect --method stalta",
                              "--min-stations (or seisgrid.stalta.min_stations)")
    start_ns = obspy.UTCDateTime(start).ns if start is not None else None
    end_ns = obspy.UTCDateTime(end).ns if end is not None else None
    tasks = [dask.delayed(_channel_day, pure=True)(str(store_url), options, cid, lo, hi, params)
             for cid in channels for lo, hi in _day_tasks(archive, cid, start_ns, end_ns)]
    client = resolve_client(client)
    if client is not None:
        results = client.gather(client.compute(tasks))
    else:
        results = list(dask.compute(*tasks))
    events = coincide(results, params, channels)
    if not return_info:
        return events
    zne = station_channels(archive, "ZNE")  # station-days: one definition for every detector (stationdata)
    days = data_days(archive, {k: zne.get(k, v) for k, v in groups.items()}, start_ns, end_ns)
    info = {"channels": channels, "stations": len(groups), "tasks": len(tasks),
            "samples": int(sum(r["samples"] for r in results)), "station_days": round(sum(days.values()), 6),
            "station_triggers": int(sum(r["triggers"] for r in results)),
            "despiked": int(sum(r.get("despiked", 0) for r in results)),
            "skipped": [s for r in results for s in r["skipped"]], "warnings": warnings, "params": params}
    return events, info


def coincide(results: Iterable[dict], params: dict, channels: Iterable[str]) -> list[dict]:
    """ObsPy's ``coincidence_trigger`` on the CF pieces returned by the station-day tasks."""
    stream = obspy.Stream([p for r in results for p in r["pieces"]])
    stream.sort(keys=["starttime", "network", "station", "channel"])
    if not len(stream):
        return []
    raw = coincidence_trigger(None, params["thr_on"], params["thr_off"], stream, params["min_stations"],
                              trace_ids=list(channels), max_trigger_length=params["max_trigger_seconds"],
                              details=True)
    events = []
    for ev in raw:
        events.append({
            "time": str(ev["time"]), "duration": float(ev["duration"]), "stations": list(ev["stations"]),
            "trace_ids": list(ev["trace_ids"]), "coincidence_sum": float(ev["coincidence_sum"]),
            "cft_peak_wmean": float(ev["cft_peak_wmean"]), "cft_std_wmean": float(ev["cft_std_wmean"]),
        })
    return events


def station_triggers(results: Iterable[dict]) -> dict:
    """Per channel id: list of (on, off) UTCDateTime of the single-station triggers in task results."""
    out = defaultdict(list)
    for r in results:
        for p in r["pieces"]:
            out[p.id].append((p.stats.starttime, p.stats.endtime))
    return dict(out)
