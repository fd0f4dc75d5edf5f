"""Resampling and fixed-length windows of one record (the rules: :mod:`seisgrid.seismic.labelled`)."""

from __future__ import annotations

import math
import zlib
from fractions import Fraction

import numpy as np
import scipy.signal

from seisgrid.seismic.labelled.base import NAT, Record, Skip, WindowsError
from seisgrid.seismic.windowstore import EARTHQUAKE, NOISE

RESAMPLING = ("scipy.signal.resample_poly (polyphase FIR, Kaiser window beta 5, anti-aliasing and "
              "anti-imaging low-pass at the lower Nyquist frequency), mean removed before resampling")


def resample(x: np.ndarray, rate: float, target: float) -> np.ndarray:
    """Resample along the last axis from ``rate`` to ``target`` Hz with :func:`scipy.signal.resample_poly`.

    The mean is removed first (so the zero padding at the edges adds no step); the polyphase FIR
    (Kaiser window, beta 5) low-passes at the lower of the two Nyquist frequencies, so downsampling is
    anti-aliased and upsampling does not create spectral images.

    Parameters
    ----------
    x : ndarray
        Samples, time along the last axis.
    rate, target : float
        Sampling rates in Hz, from and to.

    Returns
    -------
    ndarray of float64
        Mean-removed, resampled samples (``x`` mean-removed when the rates are equal).

    Raises
    ------
    WindowsError
        ``target / rate`` is not a fraction with a denominator of at most 1000.
    """
    x = np.asarray(x, dtype="float64")
    x = x - x.mean(axis=-1, keepdims=True)
    if rate == target:
        return x
    ratio = Fraction(target / rate).limit_denominator(1000)
    if abs(float(ratio) - target / rate) > 1e-9 * target / rate:
        raise WindowsError(f"cannot resample {rate} Hz to {target} Hz with a small rational factor")
    return scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


def _window_record(rec: Record, w: np.ndarray, start: int, label: int, opts, p=-1, s=-1,
                   subclass: str = "earthquake") -> dict:
    w = w - w.mean(axis=-1, keepdims=True)
    w[~rec.present] = 0.0
    rate = opts["sampling_rate"]
    start_time = rec.start_time + np.timedelta64(round(start / rate * 1e9), "ns") \
        if not np.isnat(rec.start_time) else NAT
    event = subclass in ("earthquake", "icequake") and p >= 0
    return {
        "waveform": w.astype("float32"), "present": rec.present.copy(), "label": label,
        "p_index": p, "s_index": s, "source": rec.source, "region": rec.region, "network": rec.network,
        "station": rec.station, "event_id": rec.event_id, "start_time": start_time,
        "magnitude": rec.magnitude if event else math.nan,
        "snr_db": rec.snr_db if event else math.nan, "record": rec.name,
        "p_predicted": rec.p_predicted, "subclass": subclass, "distance_km": rec.distance_km,
        "orientation_unknown": rec.orientation_unknown,
    }


def _noise_subclass(rec: Record) -> str:
    return rec.noise_subclass or ("quiet_noise" if rec.kind == "noise" else "pre_event_noise")


def cut_windows(rec: Record, opts: dict) -> tuple[list[dict], list[Skip], int]:
    """Windows of one record (the rules: :mod:`seisgrid.seismic.labelled`).

    Parameters
    ----------
    rec : Record
        The record; ``rec.present`` is narrowed to the components with non-zero data.
    opts : dict
        Build options (``sampling_rate``, ``window_seconds``, ``pre_p_seconds``, ``pre_p_jitter_seconds``,
        ``noise_margin_seconds``, ``noise_per_record``, ``seed``).

    Returns
    -------
    windows : list of dict
        The window around P first (``rec.event_label``/``rec.event_subclass``: an earthquake, or an
        icequake labelled noise), then noise windows (or only noise windows for a noise record).
    skips : list of Skip
        Why the record gave no window (empty when it gave some), and the noise candidates the reader
        screened out (``rec.screened``).
    no_noise : int
        1 when an event record yields no noise window (pre-P segment too short), else 0.
    """
    rate = opts["sampling_rate"]
    n_win = round(opts["window_seconds"] * rate)
    data = np.asarray(rec.data, dtype="float64")
    if data.shape[0] != 3:
        return [], [Skip(rec.source, rec.name, f"expected 3 components, found shape {data.shape}")], 0
    if not np.all(np.isfinite(data)):
        return [], [Skip(rec.source, rec.name, "NaN or infinite samples")], 0
    present = rec.present & np.any(data != 0, axis=1)
    if not present.any():
        return [], [Skip(rec.source, rec.name, "all-zero data")], 0
    rec.present = present
    if data.shape[1] * rate / rec.sampling_rate < n_win:
        seconds = data.shape[1] / rec.sampling_rate
        return [], [Skip(rec.source, rec.name,
                         f"too short ({seconds:g} s < {opts['window_seconds']:g} s window)")], 0
    x = resample(data, rec.sampling_rate, rate)
    n = x.shape[1]
    if n < n_win:
        return [], [Skip(rec.source, rec.name, f"too short ({n} samples < {n_win} after resampling)")], 0
    windows = []
    screened = [Skip(rec.source, f"{rec.name} noise at {t:g} s", reason) for t, reason in rec.screened]
    if rec.kind == "noise":
        starts = [round(o * rate) for o in rec.noise_offsets] if rec.noise_offsets is not None else \
                 [k * n_win for k in range(min(opts["noise_per_record"], n // n_win))]
        for a in starts:
            if 0 <= a and a + n_win <= n:
                windows.append(_window_record(rec, x[:, a:a + n_win].copy(), a, NOISE, opts,
                                              subclass=_noise_subclass(rec)))
        if not windows:
            return [], screened + [Skip(rec.source, rec.name, "noise record shorter than a window")], 0
        return windows, screened, 0
    if rec.p_seconds is None or not math.isfinite(rec.p_seconds):
        return [], [Skip(rec.source, rec.name, "no P pick (and none could be predicted)")], 0
    p = round(rec.p_seconds * rate)
    if not 0 <= p < n:
        return [], [Skip(rec.source, rec.name, f"P at {rec.p_seconds:g} s is outside the record")], 0
    # Where P sits in the window varies (pre_p ± jitter, seeded per record): a detector sliding over an
    # archive meets P anywhere, and a fixed offset lets a classifier learn the offset instead of the event.
    jitter = opts["pre_p_jitter_seconds"]
    rng = np.random.default_rng([opts["seed"], zlib.crc32(f"{rec.source}/{rec.name}".encode())])
    pre_p = opts["pre_p_seconds"] + (rng.uniform(-jitter, jitter) if jitter else 0.0)
    start = max(0, p - round(max(pre_p, 0.0) * rate))
    start = min(start, n - n_win)
    s = -1
    if rec.s_seconds is not None and math.isfinite(rec.s_seconds):
        s_idx = round(rec.s_seconds * rate) - start
        s = s_idx if 0 <= s_idx < n_win else -1
    label = EARTHQUAKE if rec.event_label == EARTHQUAKE else NOISE
    windows.append(_window_record(rec, x[:, start:start + n_win].copy(), start, label, opts,
                                  p=p - start, s=s, subclass=rec.event_subclass))
    if not rec.pre_event_noise:
        return windows, screened, 0
    end = p - round(opts["noise_margin_seconds"] * rate)
    starts = [round(o * rate) for o in rec.noise_offsets] if rec.noise_offsets is not None else \
        list(range(0, end - n_win + 1, n_win))
    starts = [a for a in starts if 0 <= a and a + n_win <= end][:opts["noise_per_record"]]
    for a in starts:
        windows.append(_window_record(rec, x[:, a:a + n_win].copy(), a, NOISE, opts, subclass=_noise_subclass(rec)))
    return windows, screened, int(not starts)
