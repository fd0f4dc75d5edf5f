"""Synthetic miniSEED archives with a known truth catalog (tests, demo, SNR and recall studies).

:func:`synthesize` writes an SDS tree of Steim2 miniSEED day files for a small network near Ross
Island, Antarctica, together with the truth: ``catalog.csv`` (earthquakes, one row per event and
station, with arrival times and the signal-to-noise ratio actually written), ``transients.csv``
(icequakes: impulsive single-station signals that are *not* earthquakes), ``stations.csv`` and
``archive.json`` (parameters, files, injected gaps and overlaps, expected sample counts).

Model (all choices deliberate and fixed, so archives are comparable between runs)
--------------------------------------------------------------------------------
Geometry
    Stations uniformly scattered in a disc of 30 km radius (a ~60 km network) around
    (-77.5°, 167.0°), at least a few km apart, elevations 20-900 m (metadata only). Epicentres
    uniform in a disc of 100 km radius around the same centre, depths uniform in 2-20 km.
Propagation
    Homogeneous half-space, vp = 6.0 km/s, vs = 3.46 km/s; straight rays, travel time
    ``sqrt(Δ² + h²) / v`` with Δ the great-circle epicentral distance (haversine, R = 6371 km) and
    h the source depth below the flat surface (station elevation ignored), so P and S times show
    true moveout across the network. Geometric spreading 1/r, anelastic attenuation
    ``exp(-π f t / Q)`` with Q = 300 for P and S, made causal with the constant-Q (Futterman /
    Kjartansson) dispersion phase referenced to the Nyquist frequency. Free-surface factor 2.
    Polarisation: P along the ray, S at a random angle between SV and SH, both steepened by a
    near-surface layer (2.5 km/s for P, 1.2 km/s for S), so P is mostly on Z and S mostly on the
    horizontals. Each direct wave is spread by a short forward-scattering train (a coherent first
    arrival with 30 % of the energy, then random arrivals decaying over 0.05 s + 1.5 % of the travel
    time), so onsets stay sharp while P and S last a few cycles as on real local records.
Source
    Brune ω² spectrum, causal form ``Ω0 / (1 + i f/fc)²``, seismic moment from
    ``log10 M0 = 1.5 Mw + 9.1`` (N·m), stress drop 3 MPa, ``fc = 0.49 β (Δσ / M0)^(1/3)`` for S
    and 1.5 × that for P. Far-field amplitude ``Ω0 = 2 R M0 / (4 π ρ c³ r)`` with ρ = 2700 kg/m³ and
    radiation coefficients 0.52 (P) and 0.63 (S), each scattered by a log-normal factor
    (σ = 0.35) per event and station to stand in for the radiation pattern and site effects.
    Magnitudes follow a truncated Gutenberg-Richter law with b = 1 on [-0.5, 3.0]; origin times
    are uniform over the archive (ending 60 s before its end so every phase is in the data).
Coda
    After P (weak) and S, scattered waves in octave bands (centres 0.75 × 2^k Hz): Gaussian noise
    with envelope ``(t_X / t) exp(-π f (t - t_X) / Qc(f))`` in lapse time t since origin,
    Qc(f) = 120 f^0.8, starting at 0.4 (P) and 0.6 (S) of the RMS of the direct wave in that band
    over its first second; coda duration grows with magnitude (``log10 τ = (M + 0.87) / 2``), the
    event waveform is at most 120 s long and tapered at its end.
Recording
    Velocity to counts with a fixed gain of 6.0e8 counts/(m/s) (a 1500 V/(m/s) sensor on a
    400 000 counts/V digitiser), a cosine anti-alias taper between 0.4 and 0.5 of the sampling rate,
    rounding to integers and clipping at the full scale of a 24-bit digitiser (±8 388 607 counts,
    well inside int32 and inside what Steim2 can difference). With this gain and the noise below,
    an M 2.5 at 30 km (10 km deep) peaks at ~4e4 counts (SNR ~2000), an M 1 at 30 km has SNR ~18,
    an M 0.5 at 30 km ~3 and an M 0 at 80 km ~0.06 (below the noise): SNR ≈ 3 is reached near
    M 0.5 at 30 km, M 1 at 70 km, M 1.5 at 110 km.
Noise
    Stationary Gaussian noise shaped in the frequency domain (numpy rfft) to a power spectral
    density in counts²/Hz: secondary microseism (log-normal peak at 0.16-0.26 Hz per station,
    ~600 counts RMS), primary microseism (0.07 Hz, ~120 counts RMS), and a coloured broadband
    background ``B (1 + (2 Hz / f)^1.5)`` with ~3 counts (5 nm/s) RMS in 2-20 Hz, all behind a 120 s
    high-pass (the sensor corner); horizontals carry more long-period (tilt) and 1.2 × more
    high-frequency noise. Per station the microseism and background levels are scaled by
    log-normal factors (σ = 0.3 and 0.4), and they drift smoothly from day to day (log-normal
    day factors, σ = 0.25 and 0.1, interpolated between day midpoints). The noise is synthesised
    in overlapping blocks of ~5 minutes on a grid fixed to the archive start, each with its own
    seed, cross-faded with sine windows (constant variance), so it is continuous across midnight
    and any stretch of it can be regenerated exactly.
Icequakes
    ``icequakes_per_day`` per station-day at random times: sharp onset (3-20 ms rise), 0.2-1 s long,
    a few sinusoids around 5-30 Hz (capped at 0.4 × the sampling rate), peak amplitude
    log-uniform in 30-3000 counts, on all three components of one station only.
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

import numpy as np
import scipy.fft
import scipy.signal
from obspy import Stream, Trace, UTCDateTime

from seisgrid import config, storage
from seisgrid.cluster import run_tasks
from seisgrid.errors import ConfigError, SeisgridError

logger = logging.getLogger("seisgrid")

__all__ = ["SynthError", "band_code", "channel_codes", "sds_relpath", "synthesize"]


class SynthError(SeisgridError):
    """The synthetic archive cannot be made with these parameters (the message says which and why)."""


# ----------------------------------------------------------------------------------------- model

CENTRE_LAT = -77.5  # degrees: Ross Island
CENTRE_LON = 167.0
EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = math.pi * EARTH_RADIUS_KM / 180.0
STATION_RADIUS_KM = 30.0
EVENT_RADIUS_KM = 100.0
DEPTH_RANGE_KM = (2.0, 20.0)
MAG_RANGE = (-0.5, 3.0)
B_VALUE = 1.0

VP = 6.0  # km/s
VS = 3.46  # km/s
VP_SURFACE = 2.5  # km/s, near-surface layer that steepens the arriving rays (polarisation only)
VS_SURFACE = 1.2
RHO = 2700.0  # kg/m³
Q = 300.0
STRESS_DROP = 3.0e6  # Pa
FC_P_OVER_S = 1.5
RAD_P, RAD_S = 0.52, 0.63
RAD_SCATTER = 0.35  # σ of the log-normal radiation / site factor
FREE_SURFACE = 2.0
GAIN = 6.0e8  # counts per m/s
FULL_SCALE = 2**23 - 1  # 24-bit digitiser

PRE_P_S = 2.0  # event window starts this long before P
MAX_WINDOW_S = 120.0
CODA_LEVEL_P, CODA_LEVEL_S = 0.4, 0.6
CODA_Q0, CODA_QN = 120.0, 0.8
CODA_BASE_HZ = 0.75
MULTIPATH_S, MULTIPATH_PER_S, MULTIPATH_COHERENT = 0.05, 0.015, 0.3

MICRO2_RMS, MICRO1_RMS = 600.0, 120.0  # counts
MICRO2_SIGMA, MICRO1_SIGMA, MICRO1_HZ = 0.35, 0.25, 0.07
BACKGROUND_PSD = 0.5  # counts²/Hz at high frequency (≈3 counts, 5 nm/s, RMS in 2-20 Hz)
HIGHPASS_HZ = 1.0 / 120.0
NOISE_BLOCK_S = 300.0

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

_SEED_DAY_FACTORS = 0  # spawn keys under SeedSequence([seed, station, day])
_SEED_NOISE = 1


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
    for name in ("events_per_day", "icequakes_per_day", "gaps_per_day", "overlaps_per_day"):
        p[name] = _as_float(name, p[name], 0.0)
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


# ------------------------------------------------------------------------------ stations and events


def _draw_stations(rng: np.random.Generator, n: int) -> dict:
    """Station coordinates and noise character (in the caller's generator)."""
    min_sep = min(5.0, 0.8 * STATION_RADIUS_KM / math.sqrt(n))
    xy: list[tuple[float, float]] = []
    for _ in range(n):
        for _attempt in range(2000):
            r = STATION_RADIUS_KM * math.sqrt(rng.random())
            th = 2.0 * math.pi * rng.random()
            x, y = r * math.cos(th), r * math.sin(th)
            if all(math.hypot(x - a, y - b) >= min_sep for a, b in xy):
                break
        xy.append((x, y))
    x = np.array([a for a, _ in xy])
    y = np.array([b for _, b in xy])
    lat = np.round(CENTRE_LAT + y / KM_PER_DEG, 5)
    lon = np.round(CENTRE_LON + x / (KM_PER_DEG * math.cos(math.radians(CENTRE_LAT))), 5)
    return {
        "latitude": lat,
        "longitude": lon,
        "elevation_m": np.round(rng.uniform(20.0, 900.0, n), 1),
        "micro_hz": rng.uniform(0.16, 0.26, n),
        "micro_level": np.exp(0.3 * rng.standard_normal(n)),
        "background_level": np.exp(0.4 * rng.standard_normal(n)),
    }


def _draw_events(rng: np.random.Generator, n: int, t_lo_ns: int, t_hi_ns: int) -> dict:
    """Origin times (ns, µs precision, sorted), hypocentres and magnitudes of ``n`` earthquakes."""
    origin = t_lo_ns + np.floor(rng.random(n) * (t_hi_ns - t_lo_ns) / 1000.0).astype(np.int64) * 1000
    origin.sort()
    r = EVENT_RADIUS_KM * np.sqrt(rng.random(n))
    th = 2.0 * np.pi * rng.random(n)
    lat = np.round(CENTRE_LAT + r * np.sin(th) / KM_PER_DEG, 5)
    lon = np.round(
        CENTRE_LON + r * np.cos(th) / (KM_PER_DEG * np.cos(np.radians(CENTRE_LAT))), 5
    )
    depth = np.round(rng.uniform(*DEPTH_RANGE_KM, n), 3)
    lo, hi = MAG_RANGE
    u = rng.random(n)
    mag = lo - np.log10(1.0 - u * (1.0 - 10.0 ** (-B_VALUE * (hi - lo)))) / B_VALUE
    return {
        "origin_ns": origin,
        "latitude": lat,
        "longitude": lon,
        "depth_km": depth,
        "magnitude": np.round(mag, 2),
    }


def _geometry(ev_lat, ev_lon, st_lat, st_lon):
    """Great-circle distance (km) and azimuth event → station (radians), arrays (n_ev, n_sta)."""
    la1 = np.radians(np.asarray(ev_lat))[:, None]
    lo1 = np.radians(np.asarray(ev_lon))[:, None]
    la2 = np.radians(np.asarray(st_lat))[None, :]
    lo2 = np.radians(np.asarray(st_lon))[None, :]
    dlat, dlon = la2 - la1, lo2 - lo1
    h = np.sin(dlat / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin(dlon / 2) ** 2
    dist = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    az = np.arctan2(
        np.sin(dlon) * np.cos(la2), np.cos(la1) * np.sin(la2) - np.sin(la1) * np.cos(la2) * np.cos(dlon)
    )
    return dist, az


def _event_window(fs: float, t0: float, tp: float, ts: float, mag: float) -> tuple[int, int]:
    """Global first sample and length of an event's waveform (times in s after the archive start)."""
    coda = 10.0 ** ((mag + 0.87) / 2.0)
    begin = tp - PRE_P_S
    end = min(max(ts + 10.0, t0 + 1.5 * coda), begin + MAX_WINDOW_S)
    k0 = math.ceil(begin * fs)
    n = math.ceil((end - k0 / fs) * fs) + 1
    return k0, n


# ------------------------------------------------------------------------------------------- noise


def _antialias(f: np.ndarray, fs: float) -> np.ndarray:
    x = np.clip((f / fs - 0.4) / 0.1, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def _noise_psd(f: np.ndarray, sta: dict, comp: int) -> tuple[np.ndarray, np.ndarray]:
    """(microseism, background) one-sided PSD in counts²/Hz at frequencies ``f`` (Hz)."""
    fpos = np.where(f > 0, f, 1.0)
    f2 = sta["micro_hz"]

    def peak(fc, sigma, rms):
        area = fc * sigma * math.sqrt(2 * math.pi) * math.exp(sigma**2 / 2)
        return rms**2 / area * np.exp(-0.5 * (np.log(fpos / fc) / sigma) ** 2)

    micro = sta["micro_level"] * (
        peak(f2, MICRO2_SIGMA, MICRO2_RMS) + peak(MICRO1_HZ, MICRO1_SIGMA, MICRO1_RMS)
    )
    horizontal = comp > 0
    tilt = 3.0 if horizontal else 1.0
    hf = 1.2 if horizontal else 1.0
    background = (
        sta["background_level"]
        * BACKGROUND_PSD
        * (hf * (1.0 + (2.0 / fpos) ** 1.5) + tilt * 200.0 * (0.02 / fpos) ** 2)
    )
    highpass = (fpos / HIGHPASS_HZ) ** 4 / (1.0 + (fpos / HIGHPASS_HZ) ** 4)
    taper = _antialias(f, sta["rate"]) ** 2 * highpass * (f > 0)
    return micro * taper, background * taper


def _zigzag(j: int) -> int:
    return 2 * j if j >= 0 else -2 * j - 1


class _NoiseModel:
    """Continuous noise of one station: blocks on a grid fixed to the archive start, each seeded
    from ``SeedSequence([seed, station, day], spawn_key=(1, component, block))``."""

    def __init__(self, sta: dict, seed: int, day0_offset_s: float):
        self.sta = sta
        self.seed = seed
        self.day0_offset_s = day0_offset_s  # (midnight of the first day) - start, seconds (≤ 0)
        fs = sta["rate"]
        self.fs = fs
        self.L = 1 << max(6, math.ceil(math.log2(NOISE_BLOCK_S * fs)))
        self.H = self.L // 2
        self.window = np.sin(np.pi * (np.arange(self.L) + 0.5) / self.L)
        f = np.fft.rfftfreq(self.L, 1.0 / fs)
        self.psd = [_noise_psd(f, sta, c) for c in range(3)]
        self._factors: dict[int, np.ndarray] = {}

    def _day_of(self, t_s: float) -> int:
        return math.floor((t_s - self.day0_offset_s) / 86400.0)

    def _day_factor(self, day: int) -> np.ndarray:
        day = max(day, 0)
        if day not in self._factors:
            ss = np.random.SeedSequence(
                [self.seed, self.sta["index"], day], spawn_key=(_SEED_DAY_FACTORS,)
            )
            z = np.random.default_rng(ss).standard_normal(2)
            self._factors[day] = np.log(np.array([np.exp(0.25 * z[0]), np.exp(0.1 * z[1])]))
        return self._factors[day]

    def factors(self, t_s: np.ndarray) -> np.ndarray:
        """(len(t), 2) microseism and background level factors at times ``t_s`` (s after start)."""
        x = (np.asarray(t_s, dtype=float) - self.day0_offset_s) / 86400.0 - 0.5
        d = np.floor(x).astype(np.int64)
        w = (x - d)[:, None]
        lo = np.array([self._day_factor(int(k)) for k in d]).reshape(-1, 2)
        hi = np.array([self._day_factor(int(k) + 1) for k in d]).reshape(-1, 2)
        return np.exp((1.0 - w) * lo + w * hi)

    def generate(self, comp: int, k0: int, k1: int, chunk: int = 32) -> np.ndarray:
        """Noise (counts, float64) of component ``comp`` for global samples ``k0 … k1-1``."""
        L, H, fs = self.L, self.H, self.fs
        out = np.zeros(k1 - k0)
        j_first = (k0 - L) // H + 1
        j_last = (k1 - 1) // H
        micro, background = self.psd[comp]
        scale = math.sqrt(fs / 2.0)
        for ja in range(j_first, j_last + 1, chunk):
            js = np.arange(ja, min(ja + chunk, j_last + 1))
            white = np.empty((len(js), L))
            for i, j in enumerate(js):
                day = max(self._day_of((j * H + H) / fs), 0)
                ss = np.random.SeedSequence(
                    [self.seed, self.sta["index"], day], spawn_key=(_SEED_NOISE, comp, _zigzag(int(j)))
                )
                white[i] = np.random.default_rng(ss).standard_normal(L)
            fac = self.factors((js * H + H) / fs)
            shape = np.sqrt(
                fac[:, :1] ** 2 * micro[None, :] + fac[:, 1:] ** 2 * background[None, :]
            ) * scale
            y = np.fft.irfft(np.fft.rfft(white, axis=1) * shape, n=L, axis=1) * self.window
            buf = np.zeros((len(js) + 1) * H)
            buf[: len(js) * H] += y[:, :H].ravel()
            buf[H:] += y[:, H:].ravel()
            g0 = int(js[0]) * H
            a, b = max(g0, k0), min(g0 + len(buf), k1)
            if b > a:
                out[a - k0 : b - k0] += buf[a - g0 : b - g0]
        return out


# ----------------------------------------------------------------------------------- event waveforms


def _coda_bands(f: np.ndarray, fs: float) -> list[tuple[float, np.ndarray]]:
    """Octave bands (centre Hz, weight over ``f``) whose weights sum to one at every frequency."""
    centres = []
    fc = CODA_BASE_HZ
    while fc < 0.45 * fs:
        centres.append(fc)
        fc *= 2.0
    if not centres:
        centres = [0.2 * fs]
    x = np.log2(np.where(f > 0, f, f[1] if len(f) > 1 else 1.0) / centres[0])
    bands = []
    for m, fc in enumerate(centres):
        d = x - m
        w = np.where(np.abs(d) < 1.0, np.cos(0.5 * np.pi * d) ** 2, 0.0)
        if m == 0:
            w = np.where(d <= 0, 1.0, w)
        if m == len(centres) - 1:
            w = np.where(d >= 0, 1.0, w)
        bands.append((fc, w))
    return bands


def _multipath(rng: np.random.Generator, travel_time: float, fs: float) -> np.ndarray:
    """Unit-energy impulse response that spreads a direct wave over a short wave train: a coherent
    first arrival (30 % of the energy) followed by forward-scattered arrivals decaying over
    ``0.05 + 0.015 t`` seconds (t: travel time), so onsets stay sharp but last a few cycles."""
    tau = MULTIPATH_S + MULTIPATH_PER_S * travel_time
    m = max(2, int(math.ceil(4.0 * tau * fs)))
    g = rng.standard_normal(m) * np.exp(-np.arange(m) / (tau * fs))
    g[0] = 0.0
    g *= math.sqrt(1.0 - MULTIPATH_COHERENT) / max(float(np.linalg.norm(g)), 1e-12)
    g[0] = math.sqrt(MULTIPATH_COHERENT)
    return g


def _event_waveform(ev: dict, fs: float) -> tuple[int, np.ndarray]:
    """Three-component (Z, N, E) waveform of one event at one station in counts, and its first
    global sample index. ``ev`` holds the event-station scalars made by :func:`synthesize`."""
    k0, n = _event_window(fs, ev["t0"], ev["tp"], ev["ts"], ev["mag"])
    nfft = scipy.fft.next_fast_len(n + int(5 * fs) + 16, real=True)
    f = np.fft.rfftfreq(nfft, 1.0 / fs)
    t_first = k0 / fs
    m0 = 10.0 ** (1.5 * ev["mag"] + 9.1)
    fc_s = 0.49 * VS * 1000.0 * (STRESS_DROP / m0) ** (1.0 / 3.0)
    fc_p = FC_P_OVER_S * fc_s
    r_m = ev["r_km"] * 1000.0
    aa = _antialias(f, fs)
    f_ref = fs / 2.0
    lnf = np.zeros_like(f)
    lnf[1:] = np.log(f[1:] / f_ref)

    def pulse(c_kms, rad, fc, tt, t_arr):
        omega0 = FREE_SURFACE * rad * m0 / (4.0 * np.pi * RHO * (c_kms * 1000.0) ** 3 * r_m)
        tstar = tt / Q
        delay = t_arr - t_first
        phase = -2.0 * np.pi * f * delay + 2.0 * f * tstar * lnf
        return (
            GAIN
            * fs  # continuous spectrum (per Hz) → DFT coefficients
            * omega0
            * (2j * np.pi * f)
            / (1.0 + 1j * f / fc) ** 2
            * np.exp(-np.pi * f * tstar)
            * aa
            * np.exp(1j * phase)
        )

    tt_p, tt_s = ev["tp"] - ev["t0"], ev["ts"] - ev["t0"]
    rng = np.random.default_rng(ev["coda_seed"])
    spec_p = pulse(VP, ev["rad_p"] * ev["polarity"], fc_p, tt_p, ev["tp"])
    spec_s = pulse(VS, ev["rad_s"], fc_s, tt_s, ev["ts"])
    spec_p *= np.fft.rfft(_multipath(rng, tt_p, fs), nfft)
    spec_s *= np.fft.rfft(_multipath(rng, tt_s, fs), nfft)
    p = np.fft.irfft(spec_p, nfft)[:n]
    s = np.fft.irfft(spec_s, nfft)[:n]

    # polarisation (unit vectors, Z N E)
    sin_i = ev["delta_km"] / max(ev["r_km"], 1e-6)
    sp = min(1.0, VP_SURFACE / VP * sin_i)
    ss_ = min(1.0, VS_SURFACE / VS * sin_i)
    cp, cs = math.sqrt(1.0 - sp * sp), math.sqrt(1.0 - ss_ * ss_)
    az, psi = ev["azimuth"], ev["psi"]
    rn, re_ = math.cos(az), math.sin(az)  # radial (away from the source)
    tn, te = -math.sin(az), math.cos(az)  # transverse
    pol_p = np.array([cp, sp * rn, sp * re_])
    sv, sh = math.sin(psi), math.cos(psi)
    pol_s = np.array([-sv * ss_, sv * cs * rn + sh * tn, sv * cs * re_ + sh * te])
    wave = pol_p[:, None] * p[None, :] + pol_s[:, None] * s[None, :]

    # coda: band-limited Gaussian noise with (t_X / t) exp(-π f (t - t_X) / Qc) envelopes
    white = np.fft.rfft(rng.standard_normal((2, 3, nfft)), axis=-1)
    t_lapse = t_first + np.arange(n) / fs - ev["t0"]  # s since origin
    i_p = math.ceil((ev["tp"] - t_first) * fs)
    i_s = math.ceil((ev["ts"] - t_first) * fs)
    one_s = max(2, int(round(fs)))
    comp_p = np.array([1.0, 0.6, 0.6])
    comp_s = np.array([0.6, 1.0, 1.0])
    comp_p /= np.linalg.norm(comp_p)
    comp_s /= np.linalg.norm(comp_s)
    for k, (spec, i_x, tt, level, comp_w) in enumerate(
        ((spec_p, i_p, tt_p, CODA_LEVEL_P, comp_p), (spec_s, i_s, tt_s, CODA_LEVEL_S, comp_s))
    ):
        lapse = np.maximum(t_lapse, tt)
        ramp = 0.5 * (1.0 - np.cos(np.pi * np.clip((t_lapse - tt) / 0.2, 0.0, 1.0)))
        for fb, w in _coda_bands(f, fs):
            direct = np.fft.irfft(spec * w, nfft)[i_x : i_x + one_s]
            rms = math.sqrt(float(np.mean(direct**2))) if direct.size else 0.0
            if rms == 0.0:
                continue
            qc = CODA_Q0 * fb**CODA_QN
            env = (tt / lapse) * np.exp(-np.pi * fb * (lapse - tt) / qc) * ramp
            noise = np.fft.irfft(white[k] * w[None, :], nfft, axis=-1)[:, :n]
            norm = np.sqrt(np.mean(noise**2, axis=-1, keepdims=True))
            norm[norm == 0] = 1.0
            wave += (level * rms * comp_w)[:, None] * env[None, :] * noise / norm
    ntaper = max(2, n // 10)
    wave[:, n - ntaper :] *= 0.5 * (1.0 + np.cos(np.pi * np.arange(1, ntaper + 1) / ntaper))
    return k0, wave


def _snr_band(fs: float) -> tuple[float, float]:
    hi = min(20.0, 0.4 * fs)
    return min(2.0, hi / 4.0), hi


def _filter(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Zero-phase filter, also for short inputs (padding shortened to fit)."""
    padlen = min(3 * (2 * len(sos) + 1), max(x.shape[-1] - 1, 0))
    return scipy.signal.sosfiltfilt(sos, x, axis=-1, padlen=padlen)


def _rms(x: np.ndarray) -> float:
    return math.sqrt(float(np.mean(np.square(x)))) if x.size else 0.0


# -------------------------------------------------------------------------------------- icequakes


def _icequakes(rng: np.random.Generator, n: int, n_day: int, fs: float) -> list[dict]:
    """Icequake parameters and waveforms (3, m) for one station-day; onsets as day-local samples."""
    if n <= 0:
        return []
    lo_k, hi_k = int(1.0 * fs), n_day - int(2.0 * fs)
    if hi_k <= lo_k:
        return []
    onsets = np.sort(rng.integers(lo_k, hi_k, n))
    f_lo, f_hi = min(5.0, 0.25 * fs), min(30.0, 0.4 * fs)
    quakes = []
    for k in onsets:
        dur = float(rng.uniform(0.2, 1.0))
        freq = float(rng.uniform(f_lo, f_hi))
        amp = round(float(10.0 ** rng.uniform(math.log10(30.0), math.log10(3000.0))), 1)
        rise = float(rng.uniform(0.003, 0.02))
        weights = np.array([1.0, *rng.uniform(0.3, 1.0, 2)])
        mult = rng.uniform(0.8, 1.25, 3)
        phases = rng.uniform(0.0, 2.0 * np.pi, (3, 3))
        m = max(2, int(math.ceil(1.5 * dur * fs)))
        t = np.arange(m) / fs
        env = (1.0 - np.exp(-t / rise)) * np.exp(-4.0 * t / dur)
        carrier = np.sin(2.0 * np.pi * freq * mult[None, :, None] * t + phases[:, :, None]).sum(axis=1)
        wave = weights[:, None] * env[None, :] * carrier
        peak = float(np.max(np.abs(wave)))
        wave *= amp / peak if peak > 0 else 0.0
        quakes.append({"k": int(k), "wave": wave, "amplitude": amp, "duration": round(dur, 3),
                       "frequency": round(freq, 2)})
    return quakes


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
    for i, ((kind, n), u) in enumerate(zip(items, offsets)):
        a = margin + int(u) + used + i * sep
        spans.append((kind, a, a + n))
        used += n
    return sorted(spans, key=lambda s: s[1])


def _record_sample_counts(data: bytes, reclen: int) -> np.ndarray:
    if len(data) % reclen:
        raise SynthError(f"ObsPy wrote {len(data)} bytes, not a multiple of the record length {reclen}")
    recs = np.frombuffer(data, dtype=np.uint8).reshape(-1, reclen)
    return (recs[:, 30].astype(np.int64) << 8) | recs[:, 31].astype(np.int64)  # big-endian uint16


def _encode(traces: list[Trace], reclen: int) -> bytes:
    buf = io.BytesIO()
    Stream(traces).write(buf, format="MSEED", encoding="STEIM2", reclen=reclen, byteorder=">")
    return buf.getvalue()


# ---------------------------------------------------------------------------------- station-day task


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
        # SNR of the events whose P lies in this day (noise-only and signal-only, same band)
        for ev, (k0, wave) in zip(events, waves):
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
        # record boundaries (day-local samples) of the main data
        per_record = _record_sample_counts(main, task["record_length"])
        boundaries, r = set(), 0
        for a, b in segments:
            pos = a
            while pos < b:
                boundaries.add(pos)
                pos += int(per_record[r])
                r += 1
            if pos != b:
                raise SynthError(f"{cid}: records of segment {a}-{b} do not add up ({pos})")
        starts = np.array(sorted(boundaries))

        dups = []
        for kind, a, b in spans:
            if kind != "overlap":
                continue
            values = counts[a:b].astype(np.int64)
            n_conf = int(rng.integers(1, min(5, b - a) + 1))
            where_conf = rng.choice(b - a, n_conf, replace=False)
            delta = rng.integers(50, 5000, n_conf) * rng.choice(np.array([-1, 1]), n_conf)
            for i, dv in zip(where_conf, delta):
                new = int(np.clip(values[i] + dv, -FULL_SCALE, FULL_SCALE))
                values[i] = new if new != values[i] else values[i] - dv
            cuts = [a, *[int(x) for x in starts[(starts > a) & (starts < b)]], b]
            for ca, cb in zip(cuts[:-1], cuts[1:]):
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


# ------------------------------------------------------------------------------------------ public


def synthesize(
    out,
    *,
    stations=None,
    days=None,
    seed=None,
    start=None,
    network=None,
    sampling_rates=None,
    events_per_day=None,
    icequakes_per_day=None,
    gaps_per_day=None,
    overlaps_per_day=None,
    record_length=None,
    client=None,
) -> dict:
    """Write a synthetic miniSEED archive (SDS tree) with a known truth catalog.

    Every argument left as None takes its value from the configuration ``seisgrid.synth.<name>``.
    The model (geometry, source, propagation, noise, icequakes) is described in the module
    docstring.

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
        A parameter is invalid (the message names it and the accepted values).
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
        sampling_rates=sampling_rates, events_per_day=events_per_day,
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
    ev = _draw_events(rng, n_ev, start_ns, end_ns - tail_ns)
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
            day_events = []
            for idx in by_day.get(d, []):
                ek0, en, snr_day, _, scalars = ev_scalars[idx]
                crosses = ek0 < k1 and ek0 + en > k0
                if crosses or snr_day == d:
                    day_events.append({**scalars, "assigned": snr_day == d})
            tasks.append({
                "station": s, "day": d, "date": date.strftime("%Y-%m-%d"), "year": date.year,
                "doy": date.julday, "k0": k0, "k1": k1, "start_ns": start_ns,
                "day0_offset_s": day0_offset_s, "seed": p["seed"], "network": p["network"],
                "channels": channels[i], "events": day_events,
                "n_icequakes": int(round(p["icequakes_per_day"] * (hi_ns - lo_ns) / DAY_NS)),
                "gaps_per_day": p["gaps_per_day"], "overlaps_per_day": p["overlaps_per_day"],
                "record_length": p["record_length"], "fs": fs_obj, "root": root,
            })
    logger.info(
        "synth: %d stations × %d day(s), %d events → %s (%d tasks%s)",
        n_sta, n_days, n_ev, out, len(tasks), ", distributed" if client is not None else "",
    )
    results = run_tasks(client, _station_day, tasks, desc="synth", unit="station-day")

    # ---- truth tables and archive.json
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

    def write_text(name: str, text: str) -> str:
        path = posixpath.join(root, name)
        fs_obj.makedirs(posixpath.dirname(path), exist_ok=True)
        with fs_obj.open(path, "wb") as f:
            f.write(text.encode())
        return path

    def table(header, rows) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        return buf.getvalue()

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
    write_text("catalog.csv", table(
        ["event_id", "origin_time", "latitude", "longitude", "depth_km", "magnitude", "station",
         "distance_km", "p_time", "s_time", "snr"], rows))
    write_text("stations.csv", table(
        ["network", "station", "latitude", "longitude", "elevation_m", "sampling_rate"],
        [[net, s["code"], f"{s['latitude']:.5f}", f"{s['longitude']:.5f}", f"{s['elevation_m']:.1f}",
          f"{s['rate']:g}"] for s in sta_list]))
    write_text("transients.csv", table(
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
            "icequakes_per_day": p["icequakes_per_day"], "gaps_per_day": p["gaps_per_day"],
            "overlaps_per_day": p["overlaps_per_day"], "record_length": p["record_length"],
            "encoding": "STEIM2",
        },
        "model": {
            "vp_km_s": VP, "vs_km_s": VS, "q": Q, "stress_drop_mpa": STRESS_DROP / 1e6,
            "gain_counts_per_m_s": GAIN, "full_scale_counts": FULL_SCALE,
            "magnitudes": list(MAG_RANGE), "b_value": B_VALUE,
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
