"""Labelled windows → 224×224 log-power spectrogram images, on Dask workers (NumPy/SciPy or ``torch.stft``).

Input: the labelled-window store (``docs/windows-schema.md``): ``waveform`` (window, component, sample)
float32, 25 s at 100 Hz = 2500 samples, components Z/N/E, all-zero where a component is absent.
Output: ``image`` (window, component, freq, time) float16, 224 × 224 per component, plus every variable of
the window store without a ``sample`` dimension (``label``, ``split``, ``split_region``, ``source``,
``present``, ...).

The maths (defaults in ``seisgrid.yaml``, section ``spectrogram``; every step is the same in both
implementations and is recorded in the output store's attributes):

1. **STFT**: periodic Hann window of ``n_fft = 270`` samples (2.7 s; bins every 100/270 = 0.370 Hz),
   hop ``10`` samples (0.1 s), no padding (``center=False``): 1 + (2500 − 270)/10 = **224 frames**, exactly
   one per image column. Column ``k`` is centred at ``(10 k + 135) / 100`` s = 1.35 … 23.65 s after the
   window start. (Other window lengths, or ``n_fft``/``hop`` giving another frame count, are linearly
   interpolated in time to ``size`` columns.)
2. **Power**: one-sided power spectral density ``2 |X|² / (fs Σ w²)`` (counts² Hz⁻¹).
3. **Band and rows**: the band **1–45 Hz** (below the 50 Hz Nyquist; 1–20 Hz, where local earthquakes
   put their energy, is 43 % of the rows) is sampled at ``size = 224`` rows linear in frequency,
   ``f_r = f_min + r (f_max − f_min) / 223`` (0.197 Hz per row, **row 0 = 1 Hz**, rows ascending). Each row
   is the linear interpolation, over frequency, of the log power of the two STFT bins around ``f_r``.
4. **Log and floor**: ``log10(max(P, P_max · 10^(−dynamic_range_db/10), 1e-30))`` where ``P_max`` is the
   largest in-band power of that window and component (100 dB dynamic range by default); the log is
   taken before the interpolation of step 3.
5. **Normalisation**, per window and component over its 224 × 224 pixels: subtract the median ``m``,
   divide by the robust scale ``s = max(1.4826 · MAD, 1e-3)`` (MAD = median of ``|x − m|``), clip to
   ``±clip`` (5). The median of the even pixel count is the *lower* median (element ``(N − 1) // 2`` of the
   sorted values), in both implementations. Absent components (all-zero input) stay **all zero**.

Implementations: :func:`spectrogram_numpy` (strided frames + ``scipy.fft.rfft``, for CPU workers) and
:func:`spectrogram_torch` (``torch.stft`` on the tensor's device, batch-first). Both compute in float32
and return float32; the store holds float16 values rounded to multiples of 2⁻⁸ (exact in float16 over ±5;
a uniform 0.004 z-unit step, see :func:`to_store_numpy`). Autocast is switched off in the
torch path: bf16 (8 bits of mantissa) would lose the agreement below; the GPU conventions of DESIGN.md
(bf16 autocast, channels_last) apply to the model that reads the images.

Agreement (``tests/test_spectrogram.py``, random noise and sine + noise windows): max |numpy − torch|
≤ 1e-3 on the float32 images (measured ~1e-4, mean ~1e-6), and identical stored (float16) values for
≥ 99.9 % of the pixels (measured ~99.97 %; the others differ by one 2⁻⁸ step).

:func:`spectrograms` maps the image function over the Dask chunks of a window store lazily
(:func:`spectrogram_dataset` builds the graph and computes nothing) and writes a Zarr v3 store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, cast

import numpy as np

from seisgrid import config
from seisgrid.errors import ConfigError, StorageError
from seisgrid.seismic.windowstore import open_dataset

if TYPE_CHECKING:
    import os
    from collections.abc import Hashable

    import torch
    import xarray as xr
    from distributed import Client

    from seisgrid.cluster import LazyClient

logger = logging.getLogger("seisgrid")

SECTION = "spectrogram"
METHODS = ("numpy", "torch")
MAD_TO_SIGMA = 1.4826
MIN_SCALE = 1e-3  # log10 units (0.01 dB): the robust scale never divides by less
POWER_FLOOR = 1e-30  # absolute floor (counts² Hz⁻¹): keeps all-zero components finite
STORE_STEP = 2.0 ** -8  # the store holds images rounded to multiples of this (exact in float16 up to ±8)
NUMPY_ROWS_PER_STEP = 48  # window-components per rfft call in the NumPy path (cache-sized work)


# ----------------------------------------------------------------------------------------- parameters
@dataclasses.dataclass(frozen=True)
class SpectrogramParams:
    """Parameters of the image maths (defaults: ``seisgrid.spectrogram`` in ``seisgrid.yaml``).

    Attributes
    ----------
    fs : float
        Sampling rate of the windows, Hz.
    n_fft : int
        Samples per STFT frame (periodic Hann window of the same length).
    hop : int
        Samples between frames.
    f_min, f_max : float
        Frequencies of the first and last image row, Hz (rows linear in frequency, ascending).
    size : int
        Image rows and columns.
    dynamic_range_db : float
        Log-power floor below the in-band maximum of each window and component, dB.
    clip : float
        Normalised values are clipped to ``[-clip, clip]``.
    """

    fs: float = 100.0
    n_fft: int = 270
    hop: int = 10
    f_min: float = 1.0
    f_max: float = 45.0
    size: int = 224
    dynamic_range_db: float = 100.0
    clip: float = 5.0

    def __post_init__(self):
        if self.n_fft < 2 or self.hop < 1 or self.size < 2:
            raise ConfigError(f"spectrogram: n_fft={self.n_fft}, hop={self.hop}, size={self.size}: "
                              "expected n_fft ≥ 2, hop ≥ 1, size ≥ 2")
        nyquist = self.fs / 2
        if not 0 <= self.f_min < self.f_max < nyquist:
            raise ConfigError(f"spectrogram: band {self.f_min}–{self.f_max} Hz at fs={self.fs} Hz: expected "
                              f"0 ≤ f_min < f_max < Nyquist ({nyquist:g} Hz); lower --f-max")
        if self.clip <= 0 or self.dynamic_range_db <= 0:
            raise ConfigError(f"spectrogram: clip={self.clip}, dynamic_range_db={self.dynamic_range_db}: "
                              "both must be > 0")

    @classmethod
    def from_config(cls, fs: float = 100.0, **overrides: float | None) -> SpectrogramParams:
        """Parameters from ``seisgrid.spectrogram``; keyword arguments that are not None win."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "fs"]
        values = {name: config.get(f"{SECTION}.{name}", override=overrides.get(name)) for name in names}
        values = {k: v for k, v in values.items() if v is not None}
        for name in ("n_fft", "hop", "size"):
            if name in values:
                values[name] = int(values[name])
        for name in ("f_min", "f_max", "dynamic_range_db", "clip"):
            if name in values:
                values[name] = float(values[name])
        return cls(fs=float(fs), **values)

    def n_frames(self, n_samples: int) -> int:
        """STFT frames of a window of ``n_samples`` samples (no padding); fails when shorter than ``n_fft``."""
        if n_samples < self.n_fft:
            raise ConfigError(f"spectrogram: windows of {n_samples} samples are shorter than n_fft={self.n_fft}")
        return 1 + (n_samples - self.n_fft) // self.hop

    def freqs(self) -> np.ndarray:
        """Frequency of each image row, Hz (float64)."""
        return self.f_min + np.arange(self.size) * (self.f_max - self.f_min) / (self.size - 1)

    def times(self, n_samples: int) -> np.ndarray:
        """Time of each image column after the window start, s (float64): frame centres, interpolated."""
        frames = self.n_frames(n_samples)
        centres = (np.arange(frames) * self.hop + self.n_fft / 2) / self.fs
        if frames == self.size:
            return centres
        return np.interp(np.linspace(0, frames - 1, self.size), np.arange(frames), centres)

    def window(self) -> np.ndarray:
        """Periodic Hann window (``scipy.signal.get_window('hann', n_fft)`` = ``torch.hann_window(n_fft)``)."""
        n = np.arange(self.n_fft)
        return (0.5 - 0.5 * np.cos(2 * np.pi * n / self.n_fft)).astype(np.float32)

    def attrs(self) -> dict:
        """Store attributes describing the maths."""
        return {
            "sampling_rate": self.fs,
            "stft_window": "hann (periodic)",
            "stft_n_fft": self.n_fft,
            "stft_hop": self.hop,
            "stft_center": False,
            "frequency_resolution_hz": self.fs / self.n_fft,
            "band_hz": [self.f_min, self.f_max],
            "freq_axis": f"{self.size} rows linear in frequency from f_min to f_max, row 0 = f_min; "
                         "log power linearly interpolated between STFT bins",
            "time_axis": f"{self.size} columns; column k = STFT frame k (centre in the 'time' coordinate, "
                         "s after the window start); linearly interpolated when the frame count differs",
            "power": "one-sided PSD 2|X|^2/(fs*sum(w^2)), counts^2/Hz",
            "log_floor": f"log10(max(P, P_max*10^(-{self.dynamic_range_db:g}/10), {POWER_FLOOR:g})), "
                         "P_max = in-band maximum per window and component",
            "dynamic_range_db": self.dynamic_range_db,
            "normalisation": f"per window and component: (x - median) / max({MAD_TO_SIGMA}*MAD, {MIN_SCALE:g}), "
                             f"clipped to ±{self.clip:g}; lower median; absent (all-zero) components are 0",
            "clip": self.clip,
            "image_size": [self.size, self.size],
            "store_rounding": f"images rounded to multiples of {STORE_STEP:g} (2^-8), stored as float16",
        }


@functools.lru_cache(maxsize=32)
def _plan(params: SpectrogramParams, n_samples: int):
    """Index arrays and weights of the band slice and the interpolations (shared by both implementations)."""
    bins = params.freqs() * params.n_fft / params.fs  # fractional STFT bin of each row
    n_bins = params.n_fft // 2 + 1
    b0 = math.floor(bins[0])
    b1 = min(math.floor(bins[-1]) + 1, n_bins - 1)
    local = bins - b0
    f_lo = np.clip(np.floor(local).astype(np.int64), 0, b1 - b0 - 1)
    f_w = (local - f_lo).astype(np.float32)
    frames = params.n_frames(n_samples)
    if frames == params.size:
        t_lo = t_w = None
    else:
        pos = np.linspace(0, frames - 1, params.size)
        t_lo = np.clip(np.floor(pos).astype(np.int64), 0, max(frames - 2, 0))
        t_w = (pos - t_lo).astype(np.float32)
    scale = np.float32(2.0 / (params.fs * float(np.sum(params.window().astype(np.float64) ** 2))))
    floor_ratio = np.float32(10.0 ** (-params.dynamic_range_db / 10.0))
    return {"b0": b0, "b1": b1, "f_lo": f_lo, "f_w": f_w, "t_lo": t_lo, "t_w": t_w, "frames": frames,
            "scale": scale, "floor_ratio": floor_ratio, "median_k": (params.size * params.size - 1) // 2}


def _params(params: SpectrogramParams | None, overrides: dict) -> SpectrogramParams:
    if params is None:
        return SpectrogramParams.from_config(**overrides)
    return dataclasses.replace(params, **overrides) if overrides else params


def _check_shape(shape) -> None:
    if len(shape) != 3:
        raise ConfigError(f"spectrogram: input of shape {tuple(shape)}: expected (window, component, sample)")


# ---------------------------------------------------------------------------------------------- numpy
def spectrogram_numpy(x: np.ndarray, params: SpectrogramParams | None = None, *, threads: int = 1,
                      **overrides: float) -> np.ndarray:
    """Log-power images of windows with NumPy/SciPy (CPU).

    Parameters
    ----------
    x : ndarray, shape (window, component, sample)
        Waveforms (counts), sampled at ``params.fs``; an all-zero component is treated as absent.
    params : SpectrogramParams, optional
        Default: :meth:`SpectrogramParams.from_config`; ``overrides`` (``n_fft=...``) replace fields.
    threads : int
        Split the windows over this many threads (SciPy's FFT and NumPy's array loops release the GIL:
        1.4-1.9× on 2 cores for 256 windows); the images are the same.

    Returns
    -------
    ndarray, shape (window, component, size, size), float32
        Normalised log power (robust z-scores in ``[-clip, clip]``), axes (freq ascending, time).
    """
    import scipy.fft
    from numpy.lib.stride_tricks import sliding_window_view

    params = _params(params, overrides)
    x = np.asarray(x)
    _check_shape(x.shape)
    if threads > 1 and len(x) >= 2 * threads:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            return np.concatenate(list(pool.map(lambda part: spectrogram_numpy(part, params),
                                                np.array_split(x, threads))))
    n, c, n_samples = x.shape
    plan = _plan(params, n_samples)
    rows = np.ascontiguousarray(x.reshape(n * c, n_samples), dtype=np.float32)
    window = params.window()
    size, b0, b1 = params.size, plan["b0"], plan["b1"]
    out = np.empty((n * c, size, size), dtype=np.float32)
    for start in range(0, n * c, NUMPY_ROWS_PER_STEP):
        part = rows[start:start + NUMPY_ROWS_PER_STEP]
        frames = sliding_window_view(part, params.n_fft, axis=-1)[:, ::params.hop]  # (B, T, n_fft)
        spec = scipy.fft.rfft(frames * window, axis=-1)[:, :, b0:b1 + 1]  # (B, T, F) complex64
        power = (spec.real * spec.real + spec.imag * spec.imag) * plan["scale"]
        power = power.transpose(0, 2, 1)  # (B, F, T)
        floor = np.maximum(power.max(axis=(1, 2)) * plan["floor_ratio"], np.float32(POWER_FLOOR))
        logp = np.log10(np.maximum(power, floor[:, None, None]))
        f_lo, f_w = plan["f_lo"], plan["f_w"][:, None]
        img = logp[:, f_lo, :] * (1 - f_w) + logp[:, f_lo + 1, :] * f_w
        if plan["t_lo"] is not None:
            t_lo, t_w = plan["t_lo"], plan["t_w"]
            img = img[:, :, t_lo] * (1 - t_w) + img[:, :, t_lo + 1] * t_w
        out[start:start + len(part)] = img
    flat = out.reshape(n * c, size * size)
    k = plan["median_k"]
    med = np.partition(flat, k, axis=-1)[:, k:k + 1]
    dev = np.abs(flat - med)
    mad = np.partition(dev, k, axis=-1)[:, k:k + 1]
    scale = np.maximum(np.float32(MAD_TO_SIGMA) * mad, np.float32(MIN_SCALE))
    z = np.clip((flat - med) / scale, -params.clip, params.clip)
    present = np.any(rows != 0, axis=-1)
    z[~present] = 0
    return z.reshape(n, c, size, size)


# ---------------------------------------------------------------------------------------------- torch
@functools.lru_cache(maxsize=1)
def default_device() -> str:
    """The torch device this process uses, chosen once: ``"cuda"`` when available, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _lower_median_torch(flat, k: int):
    """Element ``k`` of each sorted row, shape (rows, 1).

    ``kthvalue`` on GPUs; NumPy's introselect on CPU tensors (the same element, ~10× faster than torch's
    CPU ``kthvalue``/``median``; no copy of ``flat``).
    """
    import torch

    if flat.device.type == "cpu":
        return torch.from_numpy(np.partition(flat.numpy(), k, axis=-1)[:, k:k + 1])
    return flat.kthvalue(k + 1, dim=-1, keepdim=True).values  # kthvalue counts from 1


def spectrogram_torch(x: torch.Tensor, params: SpectrogramParams | None = None,
                      **overrides: float) -> torch.Tensor:
    """Log-power images of windows with ``torch.stft`` on ``x``'s device (CPU or CUDA), batch-first.

    Same maths as :func:`spectrogram_numpy` (see the module docstring), in float32 with autocast off.

    Parameters
    ----------
    x : torch.Tensor, shape (window, component, sample)
        Waveforms (counts); an all-zero component is treated as absent.
    params : SpectrogramParams, optional
        Default: :meth:`SpectrogramParams.from_config`; ``overrides`` replace fields.

    Returns
    -------
    torch.Tensor, shape (window, component, size, size), float32, on ``x.device``
    """
    import torch

    params = _params(params, overrides)
    _check_shape(tuple(x.shape))
    n, c, n_samples = x.shape
    plan = _plan(params, n_samples)
    device = x.device
    size, b0, b1 = params.size, plan["b0"], plan["b1"]
    with torch.inference_mode(), torch.autocast(device_type=device.type, enabled=False):
        rows = x.reshape(n * c, n_samples).to(torch.float32)
        window = torch.from_numpy(params.window()).to(device)
        spec = torch.stft(rows, n_fft=params.n_fft, hop_length=params.hop, win_length=params.n_fft,
                          window=window, center=False, onesided=True, return_complex=True)  # (B, F, T)
        spec = spec[:, b0:b1 + 1, :]
        power = (spec.real * spec.real + spec.imag * spec.imag) * float(plan["scale"])
        floor = torch.clamp_min(power.amax(dim=(1, 2)) * float(plan["floor_ratio"]), POWER_FLOOR)
        logp = torch.log10(torch.maximum(power, floor[:, None, None]))
        f_lo = torch.from_numpy(plan["f_lo"]).to(device)
        f_w = torch.from_numpy(plan["f_w"]).to(device)[:, None]
        img = logp.index_select(1, f_lo) * (1 - f_w) + logp.index_select(1, f_lo + 1) * f_w
        if plan["t_lo"] is not None:
            t_lo = torch.from_numpy(plan["t_lo"]).to(device)
            t_w = torch.from_numpy(plan["t_w"]).to(device)
            img = img.index_select(2, t_lo) * (1 - t_w) + img.index_select(2, t_lo + 1) * t_w
        flat = img.reshape(n * c, size * size)
        med = _lower_median_torch(flat, plan["median_k"])
        mad = _lower_median_torch((flat - med).abs(), plan["median_k"])
        scale = torch.clamp_min(MAD_TO_SIGMA * mad, MIN_SCALE)
        z = torch.clamp((flat - med) / scale, -params.clip, params.clip)
        present = (rows != 0).any(dim=-1, keepdim=True)
        z = torch.where(present, z, torch.zeros((), dtype=z.dtype, device=device))
        return z.reshape(n, c, size, size).clone()


# ----------------------------------------------------------------------------------------- dask blocks
def worker_threads() -> int | None:
    """Threads of the Dask worker running this task (None outside a distributed worker)."""
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return None


_torch_threads_set = False


def to_store_numpy(images: np.ndarray) -> np.ndarray:
    """float32 images → the float16 values the store holds: rounded to multiples of ``STORE_STEP`` (2⁻⁸).

    A uniform absolute step (0.004 z-units, far below the ~1 z-unit scatter of single-frame log power)
    instead of float16's relative one: near zero float16 would keep digits that are only float32 noise,
    and the numpy and torch images would then round differently far more often.
    """
    return (np.round(images / STORE_STEP) * STORE_STEP).astype(np.float16)


def to_store_torch(images: torch.Tensor) -> torch.Tensor:
    """:func:`to_store_numpy` for tensors (on their device); returns float16."""
    import torch

    return (torch.round(images / STORE_STEP) * STORE_STEP).to(torch.float16)


def _numpy_block(block: np.ndarray, params: SpectrogramParams) -> np.ndarray:
    return to_store_numpy(spectrogram_numpy(block, params))


def _torch_block(block: np.ndarray, params: SpectrogramParams, device: str | None = None) -> np.ndarray:
    import torch

    global _torch_threads_set
    device = device or default_device()
    if device == "cpu" and not _torch_threads_set:
        # A worker runs nthreads tasks at once: torch's own pool (one thread per core) would oversubscribe.
        threads = worker_threads()
        if threads:
            torch.set_num_threads(max(1, threads))
        _torch_threads_set = True
    x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).to(device, non_blocking=True)
    return to_store_torch(spectrogram_torch(x, params)).cpu().numpy()


# -------------------------------------------------------------------------------------------- datasets
def _method(method: str | None) -> str:
    method = str(config.get(f"{SECTION}.method", "numpy", override=method)).lower()
    if method not in METHODS:
        raise ConfigError(f"spectrogram: method {method!r}: expected one of {list(METHODS)}")
    return method


class SpectrogramOptions(TypedDict, total=False):
    """Overrides of :class:`SpectrogramParams` fields (all but ``fs``): :func:`spectrogram_dataset`'s keywords."""

    f_min: float
    f_max: float
    n_fft: int
    hop: int
    size: int
    dynamic_range_db: float
    clip: float


def spectrogram_dataset(windows: xr.Dataset, *, method: str | None = None, batch: int | None = None,
                        device: str | None = None, params: SpectrogramParams | None = None,
                        **options: Unpack[SpectrogramOptions]) -> xr.Dataset:
    """The spectrogram Dataset of a labelled-window Dataset, lazily (building it computes nothing).

    Parameters
    ----------
    windows : xarray.Dataset
        Labelled windows (``docs/windows-schema.md``), usually from ``xarray.open_zarr``.
    method : {"numpy", "torch"}, optional
        Implementation run in the Dask tasks (default ``seisgrid.spectrogram.method``).
    batch : int, optional
        Windows per Dask task and per output chunk (default ``seisgrid.spectrogram.batch``).
    device : str, optional
        Torch device for ``method="torch"``; default: ``cuda`` when the worker has one, else ``cpu``.
    params : SpectrogramParams, optional
        Image maths; default from the configuration with ``options`` (``f_min=``, ``n_fft=``, ...) applied.

    Returns
    -------
    xarray.Dataset
        ``image`` (window, component, freq, time) float16 (Dask-backed), the copied variables, and
        attributes naming the maths and the implementation.
    """
    import dask.array as da
    import xarray as xr
    from dask.base import tokenize

    if "waveform" not in windows:
        names = sorted(str(v) for v in windows.data_vars)
        raise StorageError(f"window dataset has no 'waveform' variable (variables: {names}); "
                           "expected a labelled-window store (docs/windows-schema.md)")
    wave = windows["waveform"]
    if wave.dims != ("window", "component", "sample"):
        raise StorageError(f"'waveform' has dims {wave.dims}: expected ('window', 'component', 'sample')")
    method = _method(method)
    device = config.get(f"{SECTION}.device", override=device)
    if method == "numpy" and device not in (None, "cpu"):
        raise ConfigError(f"spectrogram: device {device!r} needs method torch (numpy runs on the CPU)")
    batch = int(config.get(f"{SECTION}.batch", 64, override=batch))
    if batch < 1:
        raise ConfigError(f"spectrogram: batch={batch}: expected ≥ 1")
    fs = float(windows.attrs.get("sampling_rate", 100.0))
    if params is None:
        params = SpectrogramParams.from_config(fs=fs, **options)
    else:
        params = dataclasses.replace(params, fs=fs, **options)
    n_samples = wave.shape[2]
    n_comp = wave.shape[1]
    params.n_frames(n_samples)  # fails early on windows shorter than n_fft

    data = wave.data if isinstance(wave.data, da.Array) else da.from_array(wave.data)
    data = data.rechunk({0: batch, 1: -1, 2: -1})
    kwargs: dict[str, Any]
    if method == "numpy":
        func, kwargs = _numpy_block, {"params": params}
    else:
        func, kwargs = _torch_block, {"params": params, "device": device}
    size = params.size
    images = data.map_blocks(
        func, **kwargs,
        new_axis=3, chunks=(data.chunks[0], (n_comp,), (size,), (size,)),
        dtype=np.float16, meta=np.empty((0, 0, 0, 0), dtype=np.float16),
        name=f"spectrogram-{method}-" + tokenize(data.name, params, method, device),
    )
    coords: dict[Hashable, Any] = {
        "freq": ("freq", params.freqs().astype(np.float32), {"units": "Hz", "long_name": "row frequency"}),
        "time": ("time", params.times(n_samples).astype(np.float32),
                 {"units": "s", "long_name": "column centre after the window start"})}
    for name, coord in windows.coords.items():
        if "sample" not in coord.dims:
            coords[name] = coord.variable.copy(deep=False)
    out = xr.Dataset({"image": (("window", "component", "freq", "time"), images,
                                {"long_name": "normalised log10 power spectral density",
                                 "units": "robust z-score of log10(counts^2/Hz)"})}, coords=coords)
    for name, var in windows.data_vars.items():
        if name == "waveform" or "sample" in var.dims:
            continue
        variable = var.variable.copy(deep=False)
        variable.encoding = {}
        out[name] = variable.chunk({"window": batch}) if "window" in variable.dims else variable
    for name in out.variables:
        out[name].encoding = {}
    out.attrs.update(params.attrs())
    out.attrs.update({
        "implementation": method,
        "implementation_detail": ("scipy.fft.rfft of strided frames, float32" if method == "numpy" else
                                  "torch.stft, float32, autocast off; device: "
                                  + (device or "cuda when the worker has one, else cpu")),
        "image_dtype": "float16",
        "windows_attrs": {k: v for k, v in windows.attrs.items() if jsonable(v)},
    })
    return out


IMAGE_DIMS = ("window", "component", "freq", "time")


def check_image_store(ds: xr.Dataset, url: str | os.PathLike, checkpoint: dict | None = None,
                      who: str = "the model") -> None:
    """Refuse a spectrogram store whose images are not the shape a reader expects, before any is read.

    Parameters
    ----------
    ds : xarray.Dataset
        The opened store (``image`` present).
    url : str
        The store, for messages.
    checkpoint : dict, optional
        A model's checkpoint config (``seisgrid train``): the images must have its ``input.shape``
        (component, freq, time), or at least its ``in_channels`` components.
    who : str
        The reader, for messages (e.g. ``resnet:model.pt``).

    Raises
    ------
    StorageError
        ``image`` is not (window, component, freq, time) with at least one component and pixel, its images
        differ from the store's own ``image_size`` attribute, or from the shape the checkpoint was trained on.
    """
    image = ds["image"]
    shape = tuple(int(n) for n in image.shape)
    if image.dims != IMAGE_DIMS or 0 in shape[1:]:
        raise StorageError(f"{url}: 'image' has dims {image.dims} and shape {shape}: expected {IMAGE_DIMS} with "
                           "at least one component and pixel; make the store with `seisgrid spectrograms`")
    size = ds.attrs.get("image_size")
    if size is not None:
        sizes = [int(s) for s in (size if isinstance(size, (list, tuple)) else (size, size))]
        if list(shape[2:]) != sizes:
            raise StorageError(f"{url}: images of {shape[2]}×{shape[3]} pixels but the store's image_size "
                               f"attribute says {sizes[0]}×{sizes[-1]}: the store is damaged or not from `seisgrid "
                               "spectrograms`; make it again")
    if checkpoint is None:
        return
    expected = (checkpoint.get("input") or {}).get("shape")
    if expected is not None and tuple(int(n) for n in expected) != shape[1:]:
        raise StorageError(f"{url}: images of shape {shape[1:]} (component, freq, time), but {who} was trained on "
                           f"{tuple(expected)}; make the spectrogram store with the settings of its training store "
                           "(`seisgrid spectrograms`), or train a model on this one")
    channels = checkpoint.get("in_channels")
    if channels is not None and int(channels) != shape[1]:
        raise StorageError(f"{url}: {shape[1]} component(s) per image, but {who} takes {channels}; use a store with "
                           f"{channels} components, or train a model on this one")


def jsonable(value: object) -> bool:
    """Whether ``json.dumps`` can write ``value`` (attributes that cannot are left out of the store)."""
    import json

    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _devices(client, method: str, device: str | None) -> list[str]:
    if method == "numpy":
        return ["cpu"]
    if device:
        return [device]
    if client is None:
        return [default_device()]
    try:
        return sorted(set(client.run(default_device).values()))
    except Exception:  # noqa: BLE001  (only informative)
        return ["unknown"]


def spectrograms(windows_url: str | os.PathLike, out_url: str | os.PathLike, *, method: str | None = None,
                 client: Client | LazyClient | None = None, progress: bool = True, batch: int | None = None,
                 device: str | None = None, **options: float | None) -> dict:
    """Write the spectrogram store of a labelled-window store (Zarr v3), computed on Dask.

    Parameters
    ----------
    windows_url : str
        Labelled-window store (local path or ``s3://``), opened with ``xarray.open_zarr``.
    out_url : str
        Spectrogram store to write (replaced when it exists).
    method : {"numpy", "torch"}, optional
        Default ``seisgrid.spectrogram.method``.
    client : distributed.Client or LazyClient, optional
        Compute on this cluster; default: Dask's current scheduler.
    progress : bool
        Progress bar on stderr.
    batch : int, optional
        Windows per task and per output chunk.
    device : str, optional
        Torch device (``method="torch"``); default per worker: ``cuda`` when available, else ``cpu``.
    **options
        ``f_min``, ``f_max``, ``n_fft``, ``hop``, ``size``, ``dynamic_range_db``, ``clip``.

    Returns
    -------
    dict
        ``windows``, ``seconds``, ``windows_per_s``, ``method``, ``device``, ``output``, ``shape``,
        ``parameters``.
    """
    from seisgrid import storage
    from seisgrid.cluster import resolve_client

    t0 = time.perf_counter()
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(SpectrogramParams)})
    if unknown:
        raise ConfigError(f"spectrograms: unknown options {unknown}")
    if options.get("fs") is not None:  # it would be passed twice below
        raise ConfigError("spectrograms: fs is the window store's sampling_rate attribute; it cannot be set here")
    options = {k: v for k, v in options.items() if v is not None}
    windows = open_dataset(windows_url, required=("waveform",), zarr_format=3)
    method = _method(method)
    device = config.get(f"{SECTION}.device", override=device)
    # options: SpectrogramParams fields (checked above), None values dropped
    ds = spectrogram_dataset(windows, method=method, batch=batch, device=device,
                             **cast("SpectrogramOptions", options))
    ds.attrs["windows_store"] = str(windows_url)
    with warnings.catch_warnings():
        # consolidated metadata (one read opens the store, also on s3://) is a zarr-python extension of v3
        warnings.filterwarnings("ignore", "Consolidated metadata is currently not part")
        delayed = ds.to_zarr(storage.zarr_store(str(out_url)), mode="w", zarr_format=3, compute=False,
                             consolidated=True)
    n = int(ds.sizes["window"])
    logger.info("spectrograms: %d windows, method %s, %d tasks → %s", n, method,
                len(ds["image"].data.chunks[0]), out_url)
    client = resolve_client(client)  # a LazyClient starts here, after the inputs were checked
    if client is not None:
        future = client.compute(delayed)
        if progress:
            from distributed import progress as dprogress

            with contextlib.redirect_stdout(sys.stderr):  # the text bar writes to stdout
                dprogress(future)
            print(file=sys.stderr)
        future.result()
    else:
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar(out=sys.stderr):
                delayed.compute()
        else:
            delayed.compute()
    seconds = time.perf_counter() - t0
    params = SpectrogramParams.from_config(fs=float(windows.attrs.get("sampling_rate", 100.0)), **options)
    return {
        "windows": n,
        "seconds": round(seconds, 3),
        "windows_per_s": round(n / seconds, 1) if seconds > 0 else None,
        "method": method,
        "device": ",".join(_devices(client, method, device)),
        "output": str(out_url),
        "shape": [int(s) for s in ds["image"].shape],
        "parameters": dataclasses.asdict(params),
    }


__all__ = ["SpectrogramParams", "check_image_store", "default_device", "spectrogram_dataset", "spectrogram_numpy",
           "spectrogram_torch", "spectrograms", "to_store_numpy", "to_store_torch"]
