"""Synthetic miniSEED archives with a known truth catalog (tests, demo, SNR and recall studies).

:func:`synthesize` writes an SDS tree of Steim2 miniSEED day files for a small network near Ross
Island, Antarctica, together with the truth: ``catalog.csv`` (earthquakes, one row per event and
station, with arrival times and the signal-to-noise ratio actually written), ``transients.csv``
(icequakes: impulsive single-station signals that are *not* earthquakes), ``stations.csv`` and
``archive.json`` (parameters, files, injected gaps and overlaps, expected sample counts).

The waveform model (geometry, propagation, source, coda, recording, noise, icequakes) is described in
:mod:`seisgrid.seismic.synthwaves`, which draws stations and events and makes the waveforms; this
module validates the parameters, drives the draws from the seed, adds the waveforms into day files
with gaps and overlaps, measures the SNR, and writes the files and the truth (Dask tasks, one per
station-day).

Archive and truth
-----------------
Gaps and overlaps
    ``gaps_per_day`` spans of 1-10 min removed from every channel-day file (never within 60 s of the
    start or end of the file); ``overlaps_per_day`` spans of 5-60 s per channel-day written a second
    time after the main data of the file with 1-5 samples altered. The duplicate is cut at the
    record boundaries of the main data, so every duplicate record starts no earlier than the main
    record holding the same samples: under the ingest rule "first wins" (earliest-starting record
    keeps its samples, ties go to the earlier position in the file) the original samples are the
    truth. Both are listed in ``archive.json``; a fractional count per day adds one more span
    with that probability.
SNR (``catalog.csv``)
    Per event and station: the largest, over the three components and the two windows (2 s after
    P, 2 s after S), of the RMS of the event waveform alone divided by the RMS of the station's
    noise alone in the 10 s before P, both band-passed (4th-order Butterworth, zero phase) in
    2-20 Hz (upper edge at most 0.4 × the sampling rate, lower edge at most a quarter of the upper).
    Icequakes and other events are not counted as noise; a gap at P does not change the SNR.

Determinism
-----------
Identical arguments give identical bytes. Stations, events and every per-(event, station) random
quantity come from ``numpy.random.default_rng(seed)`` in the caller; everything of one station-day
(icequakes, gaps, overlaps) from a generator on ``SeedSequence([seed, station_index, day_index])``,
the noise blocks and day factors from children of that sequence. Nothing depends on how the
station-day tasks are scheduled (in process or on a ``distributed`` cluster).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import posixpath
import time
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import scipy.signal
from obspy import Stream, Trace, UTCDateTime, read

from seisgrid import config, storage
from seisgrid.cluster import run_tasks
from seisgrid.errors import ConfigError, SeisgridError
from seisgrid.seismic.synthwaves import (
    B_VALUE,
    FULL_SCALE,
    GAIN,
    MAG_RANGE,
    RAD_P,
    RAD_S,
    RAD_SCATTER,
    STRESS_DROP,
    VP,
    VS,
    Q,
    _draw_events,
    _draw_stations,
    _event_waveform,
    _event_window,
    _geometry,
    _icequakes,
    _NoiseModel,
)
from seisgrid.seismic.synthwaves import KM_PER_DEG as KM_PER_DEG  # re-exported: tests convert km to degrees

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

__all__ = ["SynthError", "band_code", "channel_codes", "sds_relpath", "station_files", "synthesize"]


class SynthError(SeisgridError):
    """The synthetic archive cannot be made with these parameters (the message says which and why)."""



# ------------------------------------------------------------------------------------- constants

SNR_NOISE_S = 10.0
SNR_SIGNAL_S = 2.0

GAP_S = (60.0, 600.0)
OVERLAP_S = (5.0, 60.0)
SPAN_MARGIN_S = 60.0
SPAN_SEPARATION_S = 30.0

COMPONENTS = ("Z", "N", "E")
LOCATION = ""
DAY_NS = 86_400 * 10**9
ORIGIN_TAIL_S = 60.0


# ----------------------------------------------------------------------------------- naming helpers


def band_code(sampling_rate: float) -> str:
    """SEED band code for a sampling rate in Hz: H (≥ 80), B (10 to < 80), L (< 10)."""
    if sampling_rate >= 80.0:
        return "H"
    if sampling_rate >= 10.0:
        return "B"
    return "L"


def channel_codes(sampling_rate: float) -> list[str]:
    """Channel codes (band, instrument H, component Z/N/E) for a sampling rate in Hz."""
    return [f"{band_code(sampling_rate)}H{c}" for c in COMPONENTS]


def sds_relpath(network: str, station: str, location: str, channel: str, year: int, doy: int) -> str:
    """SDS path of a day file, relative to the archive root (POSIX separators)."""
    return (
        f"{year}/{network}/{station}/{channel}.D/"
        f"{network}.{station}.{location}.{channel}.D.{year}.{doy:03d}"
    )


def _station_code(index: int) -> str:
    return f"ST{index + 1:02d}"


def _iso(ns: int) -> str:
    return str(UTCDateTime(ns=int(ns)))


# -------------------------------------------------------------------------------------- parameters


def _as_int(name, value, minimum=None, maximum=None):
    try:
        ivalue = int(value)
        if ivalue != value and not (isinstance(value, str) and str(ivalue) == value.strip()):
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"synth.{name}={value!r}: expected an integer") from None
    if (minimum is not None and ivalue < minimum) or (maximum is not None and ivalue > maximum):
        raise ConfigError(
            f"synth.{name}={value!r}: expected an integer in [{minimum}, {maximum}]"
        )
    return ivalue


def _as_float(name, value, minimum=0.0, strict=False):
    try:
        fvalue = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"synth.{name}={value!r}: expected a number") from None
    if not math.isfinite(fvalue) or fvalue < minimum or (strict and fvalue <= minimum):
        relation = ">" if strict else "≥"
        raise ConfigError(f"synth.{name}={value!r}: expected a finite number {relation} {minimum}")
    return fvalue


def _resolve(**args) -> dict:
    p = {name: config.get(f"synth.{name}", override=value) for name, value in args.items()}
    for name, default in (("b_value", B_VALUE), ("magnitude_range", list(MAG_RANGE))):
        if p.get(name) is None:  # a configuration written before the option existed
            p[name] = default
    missing = [name for name, value in p.items() if value is None]
    if missing:
        raise ConfigError(
            f"synth: no value for {', '.join(missing)} (not given and not in the seisgrid.synth config)"
        )
    p["stations"] = _as_int("stations", p["stations"], 1, 999)
    p["days"] = _as_float("days", p["days"], 0.0, strict=True)
    p["seed"] = _as_int("seed", p["seed"], 0)
    try:
        p["start"] = UTCDateTime(p["start"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"synth.start={p['start']!r}: expected an ISO date or time such as 2021-01-01 ({exc})"
        ) from None
    net = str(p["network"])
    if not (1 <= len(net) <= 2 and net.isalnum() and net.isascii()):
        raise ConfigError(f"synth.network={net!r}: expected a SEED network code of 1-2 letters or digits")
    p["network"] = net.upper()
    rates = p["sampling_rates"]
    if isinstance(rates, (int, float, str)):
        rates = [rates]
    rates = [_as_float("sampling_rates", r, 0.0, strict=True) for r in rates]
    if not rates:
        raise ConfigError("synth.sampling_rates=[]: expected at least one sampling rate in Hz")
    for r in rates:
        if not 1.0 <= r <= 1000.0:
            raise ConfigError(
                f"synth.sampling_rates: {r} Hz is not supported; expected 1-1000 Hz "
                "(e.g. 100 for HH?, 20 for BH?, 1-9 for LH?)"
            )
    p["sampling_rates"] = rates
    for name in ("events_per_day", "b_value", "icequakes_per_day", "gaps_per_day", "overlaps_per_day"):
        p[name] = _as_float(name, p[name], 0.0)
    mags = p["magnitude_range"]
    if isinstance(mags, str) or not hasattr(mags, "__len__") or len(mags) != 2:
        raise ConfigError(f"synth.magnitude_range={mags!r}: expected two magnitudes [min, max], e.g. [-0.5, 3.0]")
    lo, hi = (_as_float("magnitude_range", m, -math.inf) for m in mags)
    if not -2.0 <= lo < hi <= 6.0:
        raise ConfigError(f"synth.magnitude_range={list(mags)!r}: expected min < max within [-2, 6]")
    p["magnitude_range"] = [lo, hi]
    reclen = _as_int("record_length", p["record_length"], 256, 1 << 20)
    if reclen & (reclen - 1):
        raise ConfigError(
            f"synth.record_length={reclen}: expected a power of two from 256 to 1048576 bytes"
        )
    p["record_length"] = reclen
    return p


# --------------------------------------------------------------------------------- time bookkeeping


def _samples_before(offset_ns: int, fs: float) -> int:
    """Number of samples ``k ≥ 0`` (or index) with ``k / fs < offset``: ``ceil(offset * fs)``."""
    return math.ceil(Fraction(int(offset_ns), 10**9) * Fraction(fs))


def _sample_ns(start_ns: int, k: int, fs: float) -> int:
    """Epoch time in ns of global sample ``k`` (sample 0 at ``start_ns``)."""
    return start_ns + round(Fraction(int(k) * 10**9) / Fraction(fs))



# ------------------------------------------------------------------------------------------- SNR



def _snr_band(fs: float) -> tuple[float, float]:
    hi = min(20.0, 0.4 * fs)
    return min(2.0, hi / 4.0), hi


def _filter(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Zero-phase filter, also for short inputs (padding shortened to fit)."""
    padlen = min(3 * (2 * len(sos) + 1), max(x.shape[-1] - 1, 0))
    return scipy.signal.sosfiltfilt(sos, x, axis=-1, padlen=padlen)


def _rms(x: np.ndarray) -> float:
    return math.sqrt(float(np.mean(np.square(x)))) if x.size else 0.0


# ------------------------------------------------------------------------------- gaps and overlaps


def _count(rate: float, rng: np.random.Generator) -> int:
    n = math.floor(rate)
    if rate - n > 0 and rng.random() < rate - n:
        n += 1
    return n


def _place_spans(rng, n_day, fs, n_gaps, n_overlaps, where: str) -> list[tuple[str, int, int]]:
    """Non-overlapping (kind, a, b) spans in day-local samples, away from the file ends."""
    lengths = [("gap", max(1, round(rng.uniform(*GAP_S) * fs))) for _ in range(n_gaps)]
    lengths += [("overlap", max(1, round(rng.uniform(*OVERLAP_S) * fs))) for _ in range(n_overlaps)]
    if not lengths:
        return []
    order = rng.permutation(len(lengths))
    items = [lengths[i] for i in order]
    margin, sep = int(SPAN_MARGIN_S * fs), int(SPAN_SEPARATION_S * fs)
    total = sum(n for _, n in items)
    available = n_day - 2 * margin - total - (len(items) - 1) * sep
    if available < 0:
        raise SynthError(
            f"{where}: a file of {n_day / fs:.0f} s cannot hold {n_gaps} gap(s) of 1-10 min and "
            f"{n_overlaps} overlap(s) of 5-60 s (they keep {SPAN_MARGIN_S:.0f} s from the file ends); "
            "lower gaps_per_day / overlaps_per_day or make the archive longer"
        )
    offsets = np.sort(rng.integers(0, available + 1, len(items)))
    spans, used = [], 0
    for i, ((kind, n), u) in enumerate(zip(items, offsets, strict=True)):
        a = margin + int(u) + used + i * sep
        spans.append((kind, a, a + n))
        used += n
    return sorted(spans, key=lambda s: s[1])


def _check_span_room(tasks: list[dict], gaps_per_day: float, overlaps_per_day: float) -> None:
    """Raise ConfigError when a day file might not hold its gaps and overlaps.

    Checked before any file is written or a cluster started: up to ``ceil(…_per_day)`` of each at their
    longest (10 min, 60 s), with the margins :func:`_place_spans` keeps.
    """
    n_gaps, n_overlaps = math.ceil(gaps_per_day), math.ceil(overlaps_per_day)
    if not n_gaps + n_overlaps:
        return
    for task in sorted(tasks, key=lambda t: (t["k1"] - t["k0"]) / t["station"]["rate"]):
        fs, n_day = task["station"]["rate"], task["k1"] - task["k0"]
        need = (2 * int(SPAN_MARGIN_S * fs) + n_gaps * max(1, round(GAP_S[1] * fs))
                + n_overlaps * max(1, round(OVERLAP_S[1] * fs))
                + (n_gaps + n_overlaps - 1) * int(SPAN_SEPARATION_S * fs))
        if n_day < need:
            raise ConfigError(
                f"synth.gaps_per_day={gaps_per_day:g}, synth.overlaps_per_day={overlaps_per_day:g}: the day file of "
                f"{task['date']} holds {n_day / fs:.0f} s, too short for {n_gaps} gap(s) of up to "
                f"{GAP_S[1] / 60:.0f} min and {n_overlaps} overlap(s) of up to {OVERLAP_S[1]:.0f} s ({need / fs:.0f} s "
                f"with the {SPAN_MARGIN_S:.0f} s margins); lower gaps_per_day / overlaps_per_day or make days longer")


def _record_sample_counts(data: bytes, reclen: int) -> np.ndarray:
    if len(data) % reclen:
        raise SynthError(f"ObsPy wrote {len(data)} bytes, not a multiple of the record length {reclen}")
    recs = np.frombuffer(data, dtype=np.uint8).reshape(-1, reclen)
    return (recs[:, 30].astype(np.int64) << 8) | recs[:, 31].astype(np.int64)  # big-endian uint16


def _encode(traces: list[Trace], reclen: int) -> bytes:
    buf = io.BytesIO()
    Stream(traces).write(buf, format="MSEED", encoding="STEIM2", reclen=reclen, byteorder=">")
    return buf.getvalue()


def _record_starts(data: bytes, reclen: int, segments: list[tuple[int, int]], cid: str) -> np.ndarray:
    """Sorted first samples (day-local) of the records of ``data``, the encoded ``segments``."""
    per_record = _record_sample_counts(data, reclen)
    boundaries, r = set(), 0
    for a, b in segments:
        pos = a
        while pos < b:
            boundaries.add(pos)
            pos += int(per_record[r])
            r += 1
        if pos != b:
            raise SynthError(f"{cid}: records of segment {a}-{b} do not add up ({pos})")
    return np.array(sorted(boundaries))


def _conflicting_copy(rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, int]:
    """A copy (int64) of an overlap span's counts with 1-5 samples altered, and how many."""
    values = counts.astype(np.int64)
    n_conf = int(rng.integers(1, min(5, len(values)) + 1))
    where_conf = rng.choice(len(values), n_conf, replace=False)
    delta = rng.integers(50, 5000, n_conf) * rng.choice(np.array([-1, 1]), n_conf)
    for i, dv in zip(where_conf, delta, strict=True):
        new = int(np.clip(values[i] + dv, -FULL_SCALE, FULL_SCALE))
        values[i] = new if new != values[i] else values[i] - dv
    return values, n_conf


# ---------------------------------------------------------------------------------- station-day task


def _measure_snr(snr: dict, events: list[dict], waves: list[tuple[int, np.ndarray]], c: int, noise: np.ndarray,
                 noise_model: _NoiseModel, sos: np.ndarray, kd0: int, kd1: int) -> None:
    """Raise ``snr[event_id]`` to the SNR on component ``c`` of the events whose P lies in this day.

    Noise-only and signal-only, same band; ``noise`` holds global samples ``kd0 … kd1-1``, and noise
    outside them is regenerated.
    """
    fs = noise_model.fs
    for ev, (k0, wave) in zip(events, waves, strict=True):
        if not ev["assigned"]:
            continue
        kp = math.ceil(ev["tp"] * fs)
        ks = math.ceil(ev["ts"] * fs)
        nn, pad = int(round(SNR_NOISE_S * fs)), int(round(10.0 * fs))
        a, b = kp - nn - pad, kp + pad
        seg = noise[a - kd0 : b - kd0] if (a >= kd0 and b <= kd1) else noise_model.generate(c, a, b)
        noise_rms = _rms(_filter(sos, seg)[pad : pad + nn])
        sig = _filter(sos, wave[c])
        ns_ = max(1, int(round(SNR_SIGNAL_S * fs)))
        sig_rms = max(_rms(sig[kp - k0 : kp - k0 + ns_]), _rms(sig[ks - k0 : ks - k0 + ns_]))
        if noise_rms > 0:
            snr[ev["event_id"]] = max(snr[ev["event_id"]], sig_rms / noise_rms)




def _station_day(task: dict) -> dict:
    """Generate and write the three channel-day files of one station and day; return bookkeeping."""
    t_start = time.perf_counter()
    sta = task["station"]
    fs = sta["rate"]
    seed, s_idx, d_idx = task["seed"], sta["index"], task["day"]
    kd0, kd1 = task["k0"], task["k1"]
    n_day = kd1 - kd0
    start_ns = task["start_ns"]
    rng = np.random.default_rng(np.random.SeedSequence([seed, s_idx, d_idx]))
    noise_model = _NoiseModel(sta, seed, task["day0_offset_s"])
    net, code = task["network"], sta["code"]
    fs_obj, root = task["fs"], task["root"]
    where = f"{net}.{code} day {task['date']}"

    events = task["events"]
    waves = [_event_waveform(ev, fs) for ev in events]
    quakes = _icequakes(rng, task["n_icequakes"], n_day, fs)
    sos = scipy.signal.butter(4, _snr_band(fs), btype="bandpass", fs=fs, output="sos")
    snr = {ev["event_id"]: 0.0 for ev in events if ev["assigned"]}

    files, gaps, overlaps = [], [], []
    samples = {}
    for c, cha in enumerate(task["channels"]):
        noise = noise_model.generate(c, kd0, kd1)
        _measure_snr(snr, events, waves, c, noise, noise_model, sos, kd0, kd1)
        data = noise
        for k0, wave in waves:
            a, b = max(k0, kd0), min(k0 + wave.shape[1], kd1)
            if b > a:
                data[a - kd0 : b - kd0] += wave[c, a - k0 : b - k0]
        for q in quakes:
            m = min(q["wave"].shape[1], n_day - q["k"])
            data[q["k"] : q["k"] + m] += q["wave"][c, :m]
        counts = np.clip(np.rint(data), -FULL_SCALE, FULL_SCALE).astype(np.int32)
        del data, noise

        cid = f"{net}.{code}.{LOCATION}.{cha}"
        spans = _place_spans(
            rng, n_day, fs, _count(task["gaps_per_day"], rng), _count(task["overlaps_per_day"], rng),
            f"{cid} {task['date']}",
        )
        gap_spans = [(a, b) for kind, a, b in spans if kind == "gap"]
        segments, pos = [], 0
        for a, b in gap_spans:
            segments.append((pos, a))
            pos = b
        segments.append((pos, n_day))

        def trace(a, values, cha=cha):
            header = {
                "network": net, "station": code, "location": LOCATION, "channel": cha,
                "sampling_rate": fs,
                "starttime": UTCDateTime(ns=_sample_ns(start_ns, kd0 + a, fs)),
            }
            return Trace(data=np.ascontiguousarray(values, dtype=np.int32), header=header)

        main = _encode([trace(a, counts[a:b]) for a, b in segments], task["record_length"])
        starts = _record_starts(main, task["record_length"], segments, cid)

        dups = []
        for kind, a, b in spans:
            if kind != "overlap":
                continue
            values, n_conf = _conflicting_copy(rng, counts[a:b])
            cuts = [a, *[int(x) for x in starts[(starts > a) & (starts < b)]], b]
            for ca, cb in zip(cuts[:-1], cuts[1:], strict=True):
                dups.append(trace(ca, values[ca - a : cb - a]))
            overlaps.append({
                "id": cid,
                "start": _iso(_sample_ns(start_ns, kd0 + a, fs)),
                "end": _iso(_sample_ns(start_ns, kd0 + b, fs)),
                "samples": b - a,
                "conflicting_samples": n_conf,
            })
        for a, b in gap_spans:
            gaps.append({
                "id": cid,
                "start": _iso(_sample_ns(start_ns, kd0 + a, fs)),
                "end": _iso(_sample_ns(start_ns, kd0 + b, fs)),
                "samples": b - a,
            })
        payload = main + (_encode(dups, task["record_length"]) if dups else b"")
        rel = sds_relpath(net, code, LOCATION, cha, task["year"], task["doy"])
        path = posixpath.join(root, rel)
        fs_obj.makedirs(posixpath.dirname(path), exist_ok=True)
        with fs_obj.open(path, "wb") as f:
            f.write(payload)
        present = n_day - sum(b - a for a, b in gap_spans)
        files.append({"path": rel, "id": cid, "samples": present, "bytes": len(payload)})
        samples[cid] = present

    icequakes = [
        {
            "station": f"{net}.{code}",
            "time_ns": _sample_ns(start_ns, kd0 + q["k"], fs),
            "amplitude_counts": q["amplitude"],
            "duration_s": q["duration"],
            "frequency_hz": q["frequency"],
        }
        for q in quakes
    ]
    logger.debug("synth: %s done in %.2f s", where, time.perf_counter() - t_start)
    return {
        "station": s_idx, "day": d_idx, "files": files, "gaps": gaps, "overlaps": overlaps,
        "samples": samples, "icequakes": icequakes, "snr": snr,
    }


# ----------------------------------------------------------------------------------- orchestration


def _day_events(candidates: list[tuple], d: int, k0: int, k1: int) -> list[dict]:
    """The event-station scalars of one station-day task, in event order.

    ``candidates`` are ``(k0, n, snr_day, days_touched, scalars)`` of the events that may touch day
    ``d`` (global samples ``k0 … k1-1``); kept are those whose waveform crosses the day and the one
    whose P lies in it (``assigned``: its SNR is measured there).
    """
    day_events = []
    for ek0, en, snr_day, _, scalars in candidates:
        crosses = ek0 < k1 and ek0 + en > k0
        if crosses or snr_day == d:
            day_events.append({**scalars, "assigned": snr_day == d})
    return day_events


def _collect(results: list[dict], shape: tuple[int, int]) -> tuple:
    """Merge the station-day results.

    Returns the SNR matrix (events × stations), the sorted files, gaps, overlaps and icequakes, and
    the samples written per channel id.
    """
    snr = np.zeros(shape)
    files, gaps, overlaps, icequakes = [], [], [], []
    expected: dict[str, int] = {}
    for res in results:
        for eid, value in res["snr"].items():
            snr[eid - 1, res["station"]] = value
        files.extend(res["files"])
        gaps.extend(res["gaps"])
        overlaps.extend(res["overlaps"])
        icequakes.extend(res["icequakes"])
        for cid, n in res["samples"].items():
            expected[cid] = expected.get(cid, 0) + n
    files.sort(key=lambda f: f["path"])
    gaps.sort(key=lambda g: (g["id"], g["start"]))
    overlaps.sort(key=lambda o: (o["id"], o["start"]))
    icequakes.sort(key=lambda q: (q["time_ns"], q["station"]))
    return snr, files, gaps, overlaps, icequakes, expected


def _table(header: list[str], rows: list[list]) -> str:
    """CSV text of a header and rows, each line ending in a newline."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ public


def synthesize(
    out: str | os.PathLike,
    *,
    stations: int | None = None,
    days: float | None = None,
    seed: int | None = None,
    start: str | UTCDateTime | None = None,
    network: str | None = None,
    sampling_rates: Sequence[float] | float | None = None,
    events_per_day: float | None = None,
    b_value: float | None = None,
    magnitude_range: Sequence[float] | None = None,
    icequakes_per_day: float | None = None,
    gaps_per_day: float | None = None,
    overlaps_per_day: float | None = None,
    record_length: int | None = None,
    client: Client | LazyClient | None = None,
) -> dict:
    """Write a synthetic miniSEED archive (SDS tree) with a known truth catalog.

    Every argument left as None takes its value from the configuration ``seisgrid.synth.<name>``.
    The model (geometry, source, propagation, noise, icequakes) is described in
    :mod:`seisgrid.seismic.synthwaves`, gaps, overlaps and the SNR in this module's docstring.

    Parameters
    ----------
    out : str or path
        Local folder or URL (``s3://bucket/prefix``) of the archive; created when missing, files of
        the same names are overwritten.
    stations : int
        Number of stations, named ``ST01``, ``ST02``, … (1-999).
    days : float
        Length of the archive in days from ``start`` (> 0; 0.25 is six hours). The last day file is
        partial when ``start + days`` is not a midnight.
    seed : int
        Seed (≥ 0) of all random choices; the same arguments give byte-identical files.
    start : str or obspy.UTCDateTime
        Time of the first sample (UTC), e.g. ``"2021-01-01"``.
    network : str
        SEED network code (1-2 characters).
    sampling_rates : list of float
        Sampling rates in Hz (1-1000), assigned to the stations in turn. The band code follows the
        rate: H (≥ 80 Hz), B (10 to < 80 Hz), L (< 10 Hz); instrument H; components Z, N, E.
    events_per_day : float
        Local earthquakes per day; ``round(events_per_day * days)`` in all.
    b_value : float
        Gutenberg-Richter b of the magnitudes (≥ 0; default 1, the natural mix with most events below the
        noise; 0: uniform, as many M 2.5 as M 0 events).
    magnitude_range : (float, float)
        Smallest and largest magnitude (default [-0.5, 3.0], within [-2, 6]).
    icequakes_per_day : float
        Icequakes per station and day (scaled to the covered part of a partial day).
    gaps_per_day : float
        Gaps (1-10 min) per channel-day file, also in a partial day.
    overlaps_per_day : float
        Duplicated, partly conflicting spans (5-60 s) per channel-day file.
    record_length : int
        miniSEED record length in bytes (a power of two, 256-1048576).
    client : distributed.Client, optional
        Run the station-day tasks on this cluster; default: in this process, in order.

    Returns
    -------
    dict
        ``out``, ``files`` (number of miniSEED files), ``catalog`` (path of ``catalog.csv``),
        ``stations``, ``events``, ``icequakes``, ``gaps``, ``overlaps``, ``samples`` (samples
        written after overlap resolution, all channels) and ``seconds`` (wall time).

    Raises
    ------
    ConfigError
        A parameter is invalid (the message names it and the accepted values), or a day file is too
        short to surely hold the requested gaps and overlaps. Raised before anything is written and
        before ``client`` is used (a LazyClient is not started).
    SynthError
        The archive cannot be made, e.g. a day file too short for the requested gaps.

    Notes
    -----
    Files written under ``out``: the SDS day files
    ``{YEAR}/{NET}/{STA}/{CHA}.D/{NET}.{STA}..{CHA}.D.{YEAR}.{DOY}`` (Steim2, int32 counts),
    ``catalog.csv`` (event_id, origin_time, latitude, longitude, depth_km, magnitude, station,
    distance_km [epicentral], p_time, s_time, snr), ``stations.csv``, ``transients.csv``
    (transient_id, station, time, amplitude_counts [peak], duration_s, frequency_hz) and, last,
    ``archive.json`` (parameters, model, files, gaps, overlaps, expected_samples per channel id).
    Times are ISO 8601 UTC strings; gap and overlap ``start`` is the first missing / duplicated
    sample and ``end`` the first sample after the span.
    """
    t_begin = time.perf_counter()
    p = _resolve(
        stations=stations, days=days, seed=seed, start=start, network=network,
        sampling_rates=sampling_rates, events_per_day=events_per_day, b_value=b_value,
        magnitude_range=magnitude_range,
        icequakes_per_day=icequakes_per_day, gaps_per_day=gaps_per_day,
        overlaps_per_day=overlaps_per_day, record_length=record_length,
    )
    fs_obj, root = storage.filesystem(str(out))
    root = root.rstrip("/") or "/"
    start_utc: UTCDateTime = p["start"]
    start_ns = int(start_utc.ns)
    span_ns = round(p["days"] * DAY_NS)
    end_ns = start_ns + span_ns
    day0_ns = int(UTCDateTime(start_utc.date).ns)
    n_days = -(-(end_ns - day0_ns) // DAY_NS)
    rng = np.random.default_rng(p["seed"])

    # ---- stations
    n_sta = p["stations"]
    st = _draw_stations(rng, n_sta)
    rates = [p["sampling_rates"][i % len(p["sampling_rates"])] for i in range(n_sta)]
    sta_list = [
        {
            "index": i, "code": _station_code(i), "rate": rates[i],
            "latitude": float(st["latitude"][i]), "longitude": float(st["longitude"][i]),
            "elevation_m": float(st["elevation_m"][i]), "micro_hz": float(st["micro_hz"][i]),
            "micro_level": float(st["micro_level"][i]),
            "background_level": float(st["background_level"][i]),
        }
        for i in range(n_sta)
    ]

    # ---- events and arrivals (truth, µs precision)
    n_ev = int(round(p["events_per_day"] * p["days"]))
    tail_ns = min(int(ORIGIN_TAIL_S * 1e9), span_ns // 2)
    ev = _draw_events(rng, n_ev, start_ns, end_ns - tail_ns, p["b_value"], tuple(p["magnitude_range"]))
    n_ev = len(ev["origin_ns"])
    dist, az = _geometry(ev["latitude"], ev["longitude"], st["latitude"], st["longitude"])
    r_km = np.hypot(dist, np.asarray(ev["depth_km"], dtype=float)[:, None])
    origin = np.asarray(ev["origin_ns"], dtype=np.int64)[:, None]
    p_ns = origin + np.rint(r_km / VP * 1e6).astype(np.int64) * 1000
    s_ns = origin + np.rint(r_km / VS * 1e6).astype(np.int64) * 1000
    shape = (n_ev, n_sta)
    rad_p = RAD_P * np.exp(RAD_SCATTER * rng.standard_normal(shape))
    rad_s = RAD_S * np.exp(RAD_SCATTER * rng.standard_normal(shape))
    polarity = rng.choice(np.array([-1.0, 1.0]), size=shape)
    psi = rng.uniform(0.0, 2.0 * np.pi, shape)
    coda_seed = rng.integers(0, 2**63 - 1, size=shape, dtype=np.int64)

    # ---- tasks, one per (station, day)
    day0_offset_s = (day0_ns - start_ns) / 1e9
    channels = {i: channel_codes(rates[i]) for i in range(n_sta)}
    tasks = []
    for s in sta_list:
        i, fs = s["index"], s["rate"]
        ev_scalars = []
        for e in range(n_ev):
            t0 = (int(origin[e, 0]) - start_ns) / 1e9
            tp = (int(p_ns[e, i]) - start_ns) / 1e9
            ts = (int(s_ns[e, i]) - start_ns) / 1e9
            k0, n = _event_window(fs, t0, tp, ts, float(ev["magnitude"][e]))
            snr_day = min(max((int(p_ns[e, i]) - day0_ns) // DAY_NS, 0), n_days - 1)
            # candidate days: those the waveform window touches, and the day of P (for the SNR)
            first = (start_ns + round(max(k0, 0) * 1e9 / fs) - day0_ns) // DAY_NS
            last = (start_ns + round(max(k0 + n - 1, 0) * 1e9 / fs) - day0_ns) // DAY_NS
            days_touched = set(range(max(first - 1, 0), min(last + 1, n_days - 1) + 1)) | {snr_day}
            ev_scalars.append((k0, n, snr_day, days_touched, {
                "event_id": e + 1, "t0": t0, "tp": tp, "ts": ts, "mag": float(ev["magnitude"][e]),
                "r_km": float(r_km[e, i]), "delta_km": float(dist[e, i]), "azimuth": float(az[e, i]),
                "rad_p": float(rad_p[e, i]), "rad_s": float(rad_s[e, i]),
                "polarity": float(polarity[e, i]), "psi": float(psi[e, i]),
                "coda_seed": int(coda_seed[e, i]),
            }))
        by_day: dict[int, list[int]] = {}
        for idx, item in enumerate(ev_scalars):
            for d in item[3]:
                by_day.setdefault(d, []).append(idx)  # in event order
        for d in range(n_days):
            lo_ns = max(start_ns, day0_ns + d * DAY_NS)
            hi_ns = min(end_ns, day0_ns + (d + 1) * DAY_NS)
            k0 = _samples_before(lo_ns - start_ns, fs)
            k1 = _samples_before(hi_ns - start_ns, fs)
            if k1 <= k0:
                continue
            date = UTCDateTime(ns=day0_ns + d * DAY_NS)
            day_events = _day_events([ev_scalars[idx] for idx in by_day.get(d, [])], d, k0, k1)
            tasks.append({
                "station": s, "day": d, "date": date.strftime("%Y-%m-%d"), "year": date.year,
                "doy": date.julday, "k0": k0, "k1": k1, "start_ns": start_ns,
                "day0_offset_s": day0_offset_s, "seed": p["seed"], "network": p["network"],
                "channels": channels[i], "events": day_events,
                "n_icequakes": int(round(p["icequakes_per_day"] * (hi_ns - lo_ns) / DAY_NS)),
                "gaps_per_day": p["gaps_per_day"], "overlaps_per_day": p["overlaps_per_day"],
                "record_length": p["record_length"], "fs": fs_obj, "root": root,
            })
    _check_span_room(tasks, p["gaps_per_day"], p["overlaps_per_day"])
    logger.info(
        "synth: %d stations × %d day(s), %d events → %s (%d tasks%s)",
        n_sta, n_days, n_ev, out, len(tasks), ", distributed" if client is not None else "",
    )
    results = run_tasks(client, _station_day, tasks, desc="synth", unit="station-day")

    # ---- truth tables and archive.json
    snr, files, gaps, overlaps, icequakes, expected = _collect(results, shape)

    def write_text(name: str, text: str) -> str:
        path = posixpath.join(root, name)
        fs_obj.makedirs(posixpath.dirname(path), exist_ok=True)
        with fs_obj.open(path, "wb") as f:
            f.write(text.encode())
        return path

    net = p["network"]
    rows = []
    for e in range(n_ev):
        for s in sta_list:
            i = s["index"]
            rows.append([
                e + 1, _iso(int(origin[e, 0])), f"{ev['latitude'][e]:.5f}", f"{ev['longitude'][e]:.5f}",
                f"{ev['depth_km'][e]:.3f}", f"{ev['magnitude'][e]:.2f}", f"{net}.{s['code']}",
                f"{dist[e, i]:.3f}", _iso(int(p_ns[e, i])), _iso(int(s_ns[e, i])), f"{snr[e, i]:.6g}",
            ])
    write_text("catalog.csv", _table(
        ["event_id", "origin_time", "latitude", "longitude", "depth_km", "magnitude", "station",
         "distance_km", "p_time", "s_time", "snr"], rows))
    write_text("stations.csv", _table(
        ["network", "station", "latitude", "longitude", "elevation_m", "sampling_rate"],
        [[net, s["code"], f"{s['latitude']:.5f}", f"{s['longitude']:.5f}", f"{s['elevation_m']:.1f}",
          f"{s['rate']:g}"] for s in sta_list]))
    write_text("transients.csv", _table(
        ["transient_id", "station", "time", "amplitude_counts", "duration_s", "frequency_hz"],
        [[k + 1, q["station"], _iso(q["time_ns"]), f"{q['amplitude_counts']:.1f}",
          f"{q['duration_s']:.3f}", f"{q['frequency_hz']:.2f}"] for k, q in enumerate(icequakes)]))

    channel_info = {}
    for s in sta_list:
        fs = s["rate"]
        n_total = _samples_before(span_ns, fs)
        for cha in channels[s["index"]]:
            channel_info[f"{net}.{s['code']}.{LOCATION}.{cha}"] = {
                "sampling_rate": fs,
                "start": _iso(start_ns),
                "end": _iso(_sample_ns(start_ns, n_total, fs)),
                "samples": n_total,
            }
    meta = {
        "format": "seisgrid-synth",
        "version": 1,
        "parameters": {
            "stations": n_sta, "days": p["days"], "seed": p["seed"], "start": _iso(start_ns),
            "end": _iso(end_ns), "network": net, "location": LOCATION,
            "sampling_rates": p["sampling_rates"], "events_per_day": p["events_per_day"],
            "b_value": p["b_value"], "magnitude_range": p["magnitude_range"],
            "icequakes_per_day": p["icequakes_per_day"], "gaps_per_day": p["gaps_per_day"],
            "overlaps_per_day": p["overlaps_per_day"], "record_length": p["record_length"],
            "encoding": "STEIM2",
        },
        "model": {
            "vp_km_s": VP, "vs_km_s": VS, "q": Q, "stress_drop_mpa": STRESS_DROP / 1e6,
            "gain_counts_per_m_s": GAIN, "full_scale_counts": FULL_SCALE,
            "magnitudes": p["magnitude_range"], "b_value": p["b_value"],
            "snr": "max over components of RMS(signal, 2 s after P or S) / RMS(noise, 10 s before P), "
                   "both band-passed in snr_band_hz",
            "snr_band_hz": {f"{r:g}": list(_snr_band(r)) for r in sorted(set(rates))},
            "overlap_rule": "first wins: the earliest-starting record keeps its samples, ties go to "
                            "the earlier position in the file (the appended duplicates lose)",
        },
        "catalog": "catalog.csv",
        "stations": "stations.csv",
        "transients": "transients.csv",
        "channels": channel_info,
        "files": [f["path"] for f in files],
        "file_samples": {f["path"]: f["samples"] for f in files},
        "gaps": gaps,
        "overlaps": overlaps,
        "expected_samples": dict(sorted(expected.items())),
        "counts": {"events": n_ev, "icequakes": len(icequakes), "gaps": len(gaps),
                   "overlaps": len(overlaps), "files": len(files)},
    }
    write_text("archive.json", json.dumps(meta, indent=2) + "\n")
    total = int(sum(expected.values()))
    summary = {
        "out": str(out),
        "files": len(files),
        "catalog": storage.join(str(out), "catalog.csv"),
        "stations": n_sta,
        "events": n_ev,
        "icequakes": len(icequakes),
        "gaps": len(gaps),
        "overlaps": len(overlaps),
        "samples": total,
        "seconds": round(time.perf_counter() - t_begin, 3),
    }
    logger.info(
        "synth: wrote %d files, %d events, %d icequakes, %d gaps, %d overlaps, %d samples in %.1f s",
        len(files), n_ev, len(icequakes), len(gaps), len(overlaps), total, summary["seconds"],
    )
    return summary


def station_files(archive: str | os.PathLike, out: str | os.PathLike, seconds: float) -> list[tuple[int, str, str]]:
    """Cut a synthetic archive's day files into one miniSEED file per station and ``seconds`` of data.

    What a station delivers in near-real-time (``seisgrid watch`` tests and ``benchmarks/watch.py`` replay
    them): each file holds the station's three channels for piece ``k``, ``[start + k·seconds,
    start + (k + 1)·seconds)`` counted from the archive's first sample; samples are cut, never resampled.

    Returns
    -------
    list of (int, str, str)
        ``(piece, station, path)``, sorted; files are named ``STATION.YYYYmmddTHHMMSS.mseed``.
    """
    import pathlib

    archive, out = pathlib.Path(archive), pathlib.Path(out)
    stream = Stream()
    for path in sorted(archive.rglob("*.D.*")):
        stream += read(str(path))
    t0 = min(tr.stats.starttime for tr in stream)
    pieces: dict[tuple[int, str], Stream] = {}
    for tr in stream:
        step = round(seconds * tr.stats.sampling_rate)
        header = {k: tr.stats[k] for k in ("network", "station", "location", "channel", "sampling_rate")}
        for a in range(0, tr.stats.npts, step):
            start = tr.stats.starttime + a / tr.stats.sampling_rate
            piece = Trace(np.ascontiguousarray(tr.data[a:a + step]), header={**header, "starttime": start})
            pieces.setdefault((int((start - t0) // seconds), tr.stats.station), Stream()).append(piece)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for (k, station), st in sorted(pieces.items()):
        path = out / f"{station}.{min(tr.stats.starttime for tr in st).strftime('%Y%m%dT%H%M%S')}.mseed"
        st.write(str(path), format="MSEED")
        files.append((k, station, str(path)))
    return files
