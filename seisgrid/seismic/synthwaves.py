"""The physics of the synthetic archives of :mod:`seisgrid.seismic.synth`: stations, earthquakes, noise, icequakes.

The helpers here draw the network and the earthquakes and make waveforms in counts (event waveforms
at one station, continuous noise, icequakes); :mod:`seisgrid.seismic.synth` places them in day files
and writes the archive and its truth. They are private to that module (names with a leading
underscore) and take the per-(event, station) scalars and seeds it draws.

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
    Magnitudes follow a truncated Gutenberg-Richter law with b = 1 on [-0.5, 3.0] (``synth.b_value`` and
    ``synth.magnitude_range``; b = 0 gives uniform magnitudes, e.g. for recall-by-magnitude studies); origin times
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

Determinism
-----------
The noise of one station is synthesised in blocks on a grid fixed to the archive start, each block
and each day factor from a child of ``SeedSequence([seed, station_index, day_index])``; an event
waveform draws its scattering and coda from its own ``coda_seed``. Nothing depends on which
stretch of the archive is generated first.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

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

_SEED_DAY_FACTORS = 0  # spawn keys under SeedSequence([seed, station, day])
_SEED_NOISE = 1


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
    xs = np.array([a for a, _ in xy])
    ys = np.array([b for _, b in xy])
    lat = np.round(CENTRE_LAT + ys / KM_PER_DEG, 5)
    lon = np.round(CENTRE_LON + xs / (KM_PER_DEG * math.cos(math.radians(CENTRE_LAT))), 5)
    return {
        "latitude": lat,
        "longitude": lon,
        "elevation_m": np.round(rng.uniform(20.0, 900.0, n), 1),
        "micro_hz": rng.uniform(0.16, 0.26, n),
        "micro_level": np.exp(0.3 * rng.standard_normal(n)),
        "background_level": np.exp(0.4 * rng.standard_normal(n)),
    }


def _draw_events(rng: np.random.Generator, n: int, t_lo_ns: int, t_hi_ns: int, b_value: float = B_VALUE,
                 magnitude_range: tuple[float, float] = MAG_RANGE) -> dict:
    """Origin times (ns, µs precision, sorted), hypocentres and magnitudes of ``n`` earthquakes.

    Magnitudes: truncated Gutenberg-Richter on ``magnitude_range`` with ``b_value`` (0: uniform), drawn by
    inverting its CDF at the same uniform draws whatever the law, so only the magnitudes change with it.
    """
    origin = t_lo_ns + np.floor(rng.random(n) * (t_hi_ns - t_lo_ns) / 1000.0).astype(np.int64) * 1000
    origin.sort()
    r = EVENT_RADIUS_KM * np.sqrt(rng.random(n))
    th = 2.0 * np.pi * rng.random(n)
    lat = np.round(CENTRE_LAT + r * np.sin(th) / KM_PER_DEG, 5)
    lon = np.round(
        CENTRE_LON + r * np.cos(th) / (KM_PER_DEG * np.cos(np.radians(CENTRE_LAT))), 5
    )
    depth = np.round(rng.uniform(*DEPTH_RANGE_KM, n), 3)
    lo, hi = magnitude_range
    u = rng.random(n)
    if b_value > 0:
        mag = lo - np.log10(1.0 - u * (1.0 - 10.0 ** (-b_value * (hi - lo)))) / b_value
    else:
        mag = lo + u * (hi - lo)
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
    """Continuous noise of one station, regenerated exactly for any stretch.

    Blocks on a grid fixed to the archive start, each seeded from
    ``SeedSequence([seed, station, day], spawn_key=(1, component, block))``.
    """

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
    """Unit-energy impulse response that spreads a direct wave over a short wave train.

    A coherent first arrival (30 % of the energy) followed by forward-scattered arrivals decaying over
    ``0.05 + 0.015 t`` seconds (t: travel time), so onsets stay sharp but last a few cycles.
    """
    tau = MULTIPATH_S + MULTIPATH_PER_S * travel_time
    m = max(2, int(math.ceil(4.0 * tau * fs)))
    g = rng.standard_normal(m) * np.exp(-np.arange(m) / (tau * fs))
    g[0] = 0.0
    g *= math.sqrt(1.0 - MULTIPATH_COHERENT) / max(float(np.linalg.norm(g)), 1e-12)
    g[0] = math.sqrt(MULTIPATH_COHERENT)
    return g


def _event_waveform(ev: dict, fs: float) -> tuple[int, np.ndarray]:
    """Three-component (Z, N, E) waveform of one event at one station in counts, and its first global sample.

    ``ev`` holds the event-station scalars made by :func:`seisgrid.seismic.synth.synthesize`.
    """
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
