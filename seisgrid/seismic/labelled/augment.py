"""Augmentation: real earthquakes mixed into real noise, from train windows only.

Each augmented window is a train earthquake (shifted, optionally band-limited) scaled to a drawn SNR
over a train noise window. With ``augment_noise: subclass`` the noise window is drawn uniformly over the
noise sub-classes present (pre-event noise, quiet ice-stream noise, icequakes, ...) and then uniformly
within one, so a few hundred polar noise windows are used as often as thousands of pre-event segments;
``uniform`` draws every noise window equally. ``augment_bandpass_probability`` of the events are
band-limited first (zero-phase Butterworth, corners log-uniform in ``augment_bandpass_low_hz`` and
``augment_bandpass_high_hz``): the same event seen through other instruments and paths.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import signal

from seisgrid.seismic.labelled.base import NAT
from seisgrid.seismic.windowstore import EARTHQUAKE, NOISE

SNR_SIGNAL_SECONDS = 2.0  # post-P span whose RMS is the "signal" of the augmentation SNR
TAPER_SECONDS = 0.5


def _augment(columns: dict, opts: dict, seed: int) -> dict:
    """Augmented windows from windows that are train in both splits (see :mod:`seisgrid.seismic.labelled`)."""
    rate = opts["sampling_rate"]
    label, split, region_split = columns["label"], columns["split"], columns["split_region"]
    train = (split == "train") & (region_split == "train") & ~columns["augmented"]
    quakes = np.flatnonzero(train & (label == EARTHQUAKE) & (columns["p_index"] >= 0))
    noises = np.flatnonzero(train & (label == NOISE))
    n = round(opts["augment_factor"] * np.count_nonzero((split == "train") & (label == EARTHQUAKE)))
    if n <= 0 or len(quakes) == 0 or len(noises) == 0:
        return {}
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 3]))
    wave, present = columns["waveform"], columns["present"]
    n_win = wave.shape[-1]
    lo_db, hi_db = opts["augment_snr_db"]
    lo_sc, hi_sc = opts["augment_scale"]
    max_shift = round(opts["augment_shift_seconds"] * rate)
    taper = max(1, round(TAPER_SECONDS * rate))
    sig_len = round(SNR_SIGNAL_SECONDS * rate)
    noise_class = np.asarray(columns["subclass"], dtype=object) if "subclass" in columns else None
    by_subclass = opts.get("augment_noise", "subclass") == "subclass" and noise_class is not None
    out: dict[str, list[Any]] = {k: [] for k in ("waveform", "present", "p_index", "s_index", "snr_db", "src")}
    for _ in range(n):
        q = int(quakes[rng.integers(len(quakes))])
        match = noises[np.all(present[noises] >= present[q], axis=1)]
        nz = draw_noise(match if len(match) else noises, noise_class if by_subclass else None, rng)
        p0 = int(columns["p_index"][q])
        lo = max(-max_shift, int(0.5 * rate) - p0)
        hi = min(max_shift, n_win - sig_len - p0)
        shift = int(rng.integers(lo, hi + 1)) if hi >= lo else 0
        eq = np.zeros((3, n_win))
        src = wave[q].astype("float64")
        if shift >= 0:
            eq[:, shift:] = src[:, :n_win - shift]
            edge = shift
        else:
            eq[:, :n_win + shift] = src[:, -shift:]
            edge = n_win + shift
        if shift:  # taper the zero-filled edge so the shift adds no step
            ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(taper) / taper)
            if shift > 0:
                eq[:, edge:edge + taper] *= ramp[: max(0, min(taper, n_win - edge))]
            else:
                eq[:, max(0, edge - taper):edge] *= ramp[::-1][taper - min(taper, edge):]
        if rng.random() < opts.get("augment_bandpass_probability", 0.0):
            eq = _bandpass(eq, rate, rng, opts)
        p = p0 + shift
        both = present[q] & present[nz]
        noise = wave[nz].astype("float64")
        sig_rms = np.sqrt(np.mean(eq[both][:, p:p + sig_len] ** 2)) if both.any() else 0.0
        noise_rms = np.sqrt(np.mean(noise[both] ** 2)) if both.any() else 0.0
        snr_db = float(rng.uniform(lo_db, hi_db))
        gain = (noise_rms * 10 ** (snr_db / 20) / sig_rms) if sig_rms > 0 and noise_rms > 0 else 1.0
        scale = float(np.exp(rng.uniform(math.log(lo_sc), math.log(hi_sc))))
        mix = (gain * eq + noise) * scale
        mix -= mix.mean(axis=-1, keepdims=True)
        mix[~both] = 0.0
        s0 = int(columns["s_index"][q])
        s = s0 + shift if s0 >= 0 and 0 <= s0 + shift < n_win else -1
        out["waveform"].append(mix.astype("float32"))
        out["present"].append(both)
        out["p_index"].append(p)
        out["s_index"].append(s)
        out["snr_db"].append(snr_db)
        out["src"].append(q)
    src = np.array(out["src"], dtype=np.int64)
    aug = {k: columns[k][src] for k in columns if k not in ("waveform", "present", "p_index", "s_index", "snr_db")}
    aug.update(waveform=np.stack(out["waveform"]), present=np.stack(out["present"]),
               p_index=np.array(out["p_index"], dtype=np.int32), s_index=np.array(out["s_index"], dtype=np.int32),
               snr_db=np.array(out["snr_db"], dtype=np.float32))
    aug["label"] = np.full(n, EARTHQUAKE, dtype=np.int8)
    aug["augmented"] = np.ones(n, bool)
    aug["split"] = np.full(n, "train", dtype=object)
    aug["split_region"] = np.full(n, "train", dtype=object)
    aug["start_time"] = np.full(n, NAT)
    return aug


def draw_noise(pool: np.ndarray, noise_class: np.ndarray | None, rng: np.random.Generator) -> int:
    """One window of ``pool``, drawn uniformly, or per sub-class first.

    With ``noise_class`` (per window of the store) a sub-class present in the pool is drawn uniformly,
    then a window uniformly within it.
    """
    if noise_class is not None:
        kinds = np.unique(noise_class[pool])
        pool = pool[noise_class[pool] == kinds[rng.integers(len(kinds))]]
    return int(pool[rng.integers(len(pool))])


def _bandpass(x: np.ndarray, rate: float, rng: np.random.Generator, opts: dict) -> np.ndarray:
    """``x`` (3, n) through a zero-phase 4-pole Butterworth band with log-uniform drawn corners."""
    lo_hz = _log_uniform(rng, opts["augment_bandpass_low_hz"])
    hi_hz = min(_log_uniform(rng, opts["augment_bandpass_high_hz"]), 0.45 * rate)
    if hi_hz <= 1.5 * lo_hz:
        return x
    sos = signal.butter(4, [lo_hz, hi_hz], btype="bandpass", fs=rate, output="sos")
    return signal.sosfiltfilt(sos, x, axis=-1)


def _log_uniform(rng: np.random.Generator, bounds) -> float:
    lo, hi = float(bounds[0]), float(bounds[1])
    return float(np.exp(rng.uniform(math.log(lo), math.log(hi))))
