"""Peer detectors: EQTransformer (SeisBench) scored on seisgrid's windows, in evaluation and in archive detection.

EQTransformer (Mousavi et al. 2020) is the best published detector/picker; SeisBench (GPL-3) defines its
PyTorch model and is an **optional** dependency, imported only inside these functions
(``pip install 'seisgrid[peers]'``). Weights are SeisBench-format pairs ``PREFIX.pt.v1`` + ``PREFIX.json.v1``
(:func:`resolve_eqt`): the shared ``pnw`` weights (``$SEISGRID_DATA/seismic/pretrained-eqt-pnw/pnw``) or the
original STEAD-trained model converted by :func:`seisgrid.seismic.eqt_convert.convert_eqt`.

**Window-level probability** (:func:`eqt_probabilities`). EQTransformer takes 60 s (6000 samples at 100 Hz)
ZNE traces and returns a detection trace (P(earthquake) per sample). A seisgrid window is 25 s (2500
samples, ZNE, demeaned, absent components zero). Each window is

1. cosine-tapered over ``taper_seconds`` at both ends (so the padding meets it without a step),
2. placed at ``offset`` samples into a 60 s buffer filled with the window mirrored at its ends
   (``padding="reflect"``, the default) or with zeros (``"zeros"``),
3. filtered with the model's own filter (``filter_args``/``filter_kwargs`` of its ``.json``: 1–45 Hz
   bandpass for both weights, zero phase), normalised as SeisBench normalises a window before the model
   (``annotate_batch_pre``: mean removed, divided by the std, 6-sample taper),
4. run through the model (``torch.inference_mode``, batches of ``batch_size``),

and its P(earthquake) is the **maximum of the detection trace over the window's own 2500 samples** of the
buffer. The default offset (1750, the window in the middle of the buffer) keeps SeisBench's blinding
margins (500 samples at each end, where EQTransformer's outputs are not used) out of the window; the
choice of padding was measured on the STEAD sample traces and on the train + val windows of the
cross-region split, never on its test windows (``docs/seismic.md``, "EQTransformer peer").

:class:`EQTScorer` gives the same probabilities through the call interface of
:data:`seisgrid.seismic.detect.SCORERS` (``scorer(windows, present) -> P``), so the same station-day tasks
run it over an archive; :func:`eqt_scorer_config` is its config reader for
:data:`seisgrid.seismic.detect.SCORER_CONFIGS` (``(path) -> (weights file, config)``); :func:`eqt_detector`
is its detector in ``seisgrid evaluate`` (``eqt:WEIGHTS``).
"""

from __future__ import annotations

import json
import logging
import math
import pathlib
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from seisgrid import config
from seisgrid.errors import ConfigError, SeisgridError

if TYPE_CHECKING:
    import os

    import torch
    import xarray as xr

    from seisgrid.seismic.evaluate import Detector, EvalContext

logger = logging.getLogger("seisgrid")

#: EQTransformer's input: 60 s at 100 Hz.
EQT_SAMPLES = 6000
EQT_RATE = 100.0
#: Named weights: the shared pnw weights (below the data folder) and the converted original, when a
#: ``seisgrid convert-eqt`` output was put in the SeisBench cache or under ``peers.eqt_dir``.
NAMED = {"pnw": "seismic/pretrained-eqt-pnw/pnw"}
PADDINGS = ("zeros", "reflect")
VERSION = "1"
DEFAULT_OFFSET = (EQT_SAMPLES - 2500) // 2
DEFAULT_TAPER_SECONDS = 0.5
DEFAULT_PADDING = "reflect"


def _seisbench_models():
    from seisgrid.seismic.eqt_convert import _seisbench_models as sbm

    return sbm()


def _files(prefix: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    return (prefix.parent / f"{prefix.name}.pt.v{VERSION}", prefix.parent / f"{prefix.name}.json.v{VERSION}")


def resolve_eqt(spec: str | os.PathLike) -> pathlib.Path:
    """The SeisBench weights prefix of ``spec``: a name, a prefix, or one of its two files.

    Parameters
    ----------
    spec : str or path
        ``"pnw"`` (the shared weights, ``$SEISGRID_DATA/seismic/pretrained-eqt-pnw/pnw``); another name
        (``"original"``: ``NAME.pt.v1`` + ``NAME.json.v1`` under ``seisgrid.peers.eqt_dir`` or in SeisBench's
        cache ``$SEISBENCH_CACHE_ROOT/models/v3/eqtransformer/``); or a path ``PREFIX``, ``PREFIX.pt.v1`` or
        ``PREFIX.json.v1`` (what ``seisgrid convert-eqt H5 PREFIX`` writes).

    Returns
    -------
    pathlib.Path
        ``PREFIX`` such that ``PREFIX.pt.v1`` and ``PREFIX.json.v1`` exist.

    Raises
    ------
    ConfigError
        Nothing found; the message lists where it looked.
    """
    text = str(spec)
    if text.startswith("eqt:"):
        text = text[4:]
    for suffix in (f".pt.v{VERSION}", f".json.v{VERSION}"):
        if text.endswith(suffix):
            text = text[:-len(suffix)]
    candidates = [pathlib.Path(text).expanduser()]
    if "/" not in text and "\\" not in text:
        data = config.data_dir()
        if text in NAMED and data is not None:
            candidates.insert(0, data / NAMED[text])
        folder = config.get("peers.eqt_dir")
        if folder:
            candidates.append(pathlib.Path(str(folder)).expanduser() / text)
        candidates.append(_seisbench_cache() / "models" / "v3" / "eqtransformer" / text)
    for prefix in candidates:
        if all(f.is_file() for f in _files(prefix)):
            return prefix
    raise ConfigError(f"EQTransformer weights {spec!r}: not found as {[str(c) for c in candidates]} "
                      f"(each needs NAME.pt.v{VERSION} and NAME.json.v{VERSION}; make the original with "
                      "`seisgrid convert-eqt EqT_model.h5 PREFIX`)")


def _seisbench_cache() -> pathlib.Path:
    import os

    root = os.environ.get("SEISBENCH_CACHE_ROOT")
    return pathlib.Path(root) if root else pathlib.Path.home() / ".seisbench"


def load_eqt(spec: str | os.PathLike = "pnw", device: str = "cpu") -> torch.nn.Module:
    """A SeisBench EQTransformer (eval mode, on ``device``) from local weights; no network.

    Parameters
    ----------
    spec : str or path
        Weights, see :func:`resolve_eqt`.
    device : str
        Torch device.

    Returns
    -------
    torch.nn.Module
        ``seisbench.models.EQTransformer``.
    """
    sbm = _seisbench_models()
    prefix = resolve_eqt(spec)
    try:
        # weights_only explicit (passed on to torch.load): tensors only, whatever TORCH_FORCE_* says
        model = sbm.EQTransformer.load(str(prefix), version_str=VERSION, weights_only=True)
    except Exception as exc:  # a broken or foreign file: name it
        raise SeisgridError(f"{prefix}.pt.v{VERSION}: cannot load it as SeisBench EQTransformer weights ({exc})") \
            from exc
    if int(getattr(model, "in_samples", EQT_SAMPLES)) != EQT_SAMPLES or not math.isclose(
            float(getattr(model, "sampling_rate", EQT_RATE)), EQT_RATE):
        raise SeisgridError(f"{prefix}: EQTransformer for {model.in_samples} samples at {model.sampling_rate} Hz; "
                            f"seisgrid's windows need {EQT_SAMPLES} at {EQT_RATE:g} Hz")
    return model.to(device).eval()


def _bandpass(x: np.ndarray, model: Any, rate: float) -> np.ndarray:
    """The model's ObsPy-style filter (``filter_args``/``filter_kwargs``) along the last axis.

    Butterworth ``iirfilter`` sections as ``obspy.signal.filter.bandpass``/``highpass``/``lowpass`` design them;
    zero phase = forward then backward, as ObsPy does it.
    """
    import scipy.signal

    args = list(getattr(model, "filter_args", None) or [])
    kwargs = dict(getattr(model, "filter_kwargs", None) or {})
    if not args and not kwargs:
        return x
    kind = args[0] if args else kwargs.pop("type")
    nyquist = rate / 2.0
    corners = int(kwargs.get("corners", 4))
    band: float | list[float]
    if kind == "bandpass":
        lo, hi = float(kwargs["freqmin"]) / nyquist, float(kwargs["freqmax"]) / nyquist
        if hi >= 1.0:
            kind, band = "highpass", lo
        else:
            band = [lo, hi]
    elif kind in ("highpass", "lowpass"):
        band = float(kwargs["freq"]) / nyquist
    else:
        raise SeisgridError(f"EQTransformer filter {args} {kwargs}: only bandpass, highpass and lowpass are supported")
    z, p, k = scipy.signal.iirfilter(corners, band, btype={"bandpass": "band", "highpass": "highpass",
                                                           "lowpass": "lowpass"}[kind], ftype="butter", output="zpk")
    sos = scipy.signal.zpk2sos(z, p, k)
    y = scipy.signal.sosfilt(sos, x, axis=-1)
    if kwargs.get("zerophase", False):
        y = scipy.signal.sosfilt(sos, y[..., ::-1], axis=-1)[..., ::-1]
    return y


def pad_windows(waveforms: np.ndarray, *, offset: int = DEFAULT_OFFSET, padding: str = DEFAULT_PADDING,
                taper_seconds: float = DEFAULT_TAPER_SECONDS, rate: float = EQT_RATE) -> np.ndarray:
    """Windows ``(n, 3, L)`` (L ≤ 6000) placed at ``offset`` in 6000-sample buffers ``(n, 3, 6000)``, float32.

    Parameters
    ----------
    waveforms : numpy.ndarray
        ``(n, 3, L)`` ZNE windows at 100 Hz.
    offset : int
        First buffer sample of the window; ``0 ≤ offset ≤ 6000 − L``.
    padding : {"zeros", "reflect"}
        What fills the rest: zeros, or the window mirrored at its ends (repeated as often as needed).
    taper_seconds : float
        Cosine (Hann) taper applied to both ends of each window before padding (0: none).
    rate : float
        Sampling rate (Hz), for the taper length.

    Returns
    -------
    numpy.ndarray
        ``(n, 3, 6000)`` float32.
    """
    x = np.asarray(waveforms, dtype=np.float32)
    n_win = x.shape[-1]
    if x.ndim != 3 or x.shape[1] != 3 or n_win > EQT_SAMPLES:
        raise ConfigError(f"EQTransformer windows: shape {x.shape}; expected (n, 3, samples ≤ {EQT_SAMPLES})")
    if not 0 <= offset <= EQT_SAMPLES - n_win:
        raise ConfigError(f"EQTransformer offset {offset}: must lie in [0, {EQT_SAMPLES - n_win}] for "
                          f"{n_win}-sample windows")
    if padding not in PADDINGS:
        raise ConfigError(f"EQTransformer padding {padding!r}: expected one of {list(PADDINGS)}")
    m = min(int(round(taper_seconds * rate)), n_win // 2)
    if m > 0:
        ramp = (0.5 * (1.0 - np.cos(np.pi * (np.arange(m) + 0.5) / m))).astype(np.float32)
        x = x.copy()
        x[..., :m] *= ramp
        x[..., n_win - m:] *= ramp[::-1]
    if padding == "zeros":
        out = np.zeros(x.shape[:2] + (EQT_SAMPLES,), dtype=np.float32)
        out[..., offset:offset + n_win] = x
        return out
    # reflect: sample i of the buffer is sample (i − offset) of the window mirrored without repeating the ends
    idx = np.arange(EQT_SAMPLES) - offset
    period = 2 * (n_win - 1) if n_win > 1 else 1
    idx = np.abs(np.mod(idx, period))
    idx = np.where(idx >= n_win, period - idx, idx)
    return np.ascontiguousarray(x[..., idx])


def eqt_traces(model: torch.nn.Module, buffers: np.ndarray, batch_size: int = 64, *,
               device: str | None = None) -> np.ndarray:
    """EQTransformer's detection, P and S traces of 60 s ZNE buffers ``(n, 3, 6000)``: ``(n, 3, 6000)`` float32.

    The model's filter, then SeisBench's normalisation (``annotate_batch_pre``), then the model, in batches.
    """
    import torch

    dev = torch.device(device) if device else next(model.parameters()).device
    x = np.asarray(buffers, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != (3, EQT_SAMPLES):
        raise ConfigError(f"EQTransformer input: shape {x.shape}; expected (n, 3, {EQT_SAMPLES})")
    out = np.empty((len(x), 3, EQT_SAMPLES), dtype=np.float32)
    rate = float(getattr(model, "sampling_rate", EQT_RATE))
    for a in range(0, len(x), max(1, int(batch_size))):
        batch = np.ascontiguousarray(_bandpass(x[a:a + batch_size].astype(np.float64), model, rate),
                                     dtype=np.float32)
        with torch.inference_mode():
            t = cast("Any", model).annotate_batch_pre(torch.from_numpy(batch).to(dev), {})
            det, p, s = model(t)[:3]
            out[a:a + len(batch)] = torch.stack([det, p, s], dim=1).float().cpu().numpy()
    return out


def eqt_probabilities(model: torch.nn.Module, waveforms: np.ndarray, batch_size: int = 64, *,
                      offset: int = DEFAULT_OFFSET, padding: str = DEFAULT_PADDING,
                      taper_seconds: float = DEFAULT_TAPER_SECONDS, device: str | None = None) -> np.ndarray:
    """P(earthquake) of windows ``(n, 3, L)``: the max of EQTransformer's detection trace over each window.

    Parameters
    ----------
    model : torch.nn.Module
        SeisBench EQTransformer (:func:`load_eqt`).
    waveforms : numpy.ndarray
        ``(n, 3, L)`` ZNE windows at 100 Hz, L ≤ 6000 (the window store's ``waveform``: 2500).
    batch_size : int
        Buffers per forward pass.
    offset, padding, taper_seconds
        Where and how each window sits in its 60 s buffer (:func:`pad_windows`).
    device : str, optional
        Torch device (default: the model's).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float32 in [0, 1].
    """
    x = np.asarray(waveforms)
    out = np.empty(len(x), dtype=np.float32)
    n_win = x.shape[-1] if x.ndim == 3 else 0
    step = max(1, int(batch_size))
    for a in range(0, len(x), step):
        buffers = pad_windows(x[a:a + step], offset=offset, padding=padding, taper_seconds=taper_seconds)
        det = eqt_traces(model, buffers, batch_size, device=device)[:, 0, offset:offset + n_win]
        out[a:a + len(det)] = det.max(axis=-1)
    return out


def _options(s: dict | None = None) -> dict:
    """Padding settings: ``s`` (a scorer's settings) over ``seisgrid.peers.*``."""
    s = s or {}
    return {"offset": int(config.get("peers.eqt_offset", DEFAULT_OFFSET, s.get("eqt_offset"))),
            "padding": str(config.get("peers.eqt_padding", DEFAULT_PADDING, s.get("eqt_padding"))),
            "taper_seconds": float(config.get("peers.eqt_taper_seconds", DEFAULT_TAPER_SECONDS,
                                              s.get("eqt_taper_seconds")))}


def eqt_scorer_config(spec: str | os.PathLike) -> tuple[str, dict]:
    """``(weights file, config)`` of EQTransformer weights: the reader ``detect.SCORER_CONFIGS["eqt"]`` takes.

    Parameters
    ----------
    spec : str or path
        Weights (:func:`resolve_eqt`): ``pnw``, ``eqt:pnw``, a name or a ``convert-eqt`` prefix.

    Returns
    -------
    tuple
        ``(PREFIX.pt.v1, config)``: the weights file (what :class:`EQTScorer` is built from, and what detect
        fingerprints), and the config with what :func:`seisgrid.seismic.detect.model_settings` reads —
        ``window_seconds`` (the window store's 25 s; the model sees them padded), ``sampling_rate`` (100),
        ``threshold`` (``seisgrid.peers.eqt_threshold``; None: detect's default) — plus ``kind``
        (``"seisgrid.eqt"``), ``weights`` (the prefix), ``model_args`` (from ``PREFIX.json.v1``) and the padding
        settings (``offset``, ``padding``, ``taper_seconds``), so another padding gives another fingerprint.
    """
    prefix = resolve_eqt(spec)
    weights, cfg_file = _files(prefix)
    with open(cfg_file) as f:
        meta = json.load(f)
    threshold = config.get("peers.eqt_threshold")
    cfg = {"kind": "seisgrid.eqt", "weights": str(prefix),
           "window_seconds": float(config.get("windows.window_seconds", 25.0)), "sampling_rate": EQT_RATE,
           "threshold": None if threshold is None else float(threshold),
           "model_args": meta.get("model_args", {}), **_options()}
    return str(weights), cfg


class EQTScorer:
    """P(earthquake) of windows from EQTransformer weights (:func:`eqt_probabilities`).

    Same interface as :class:`seisgrid.seismic.detect.ModelScorer`: built from ``(path, settings)``
    (``path``: what :func:`resolve_eqt` takes; ``settings``: ``device``, ``batch_size`` and optionally
    ``eqt_offset``, ``eqt_padding``, ``eqt_taper_seconds``), called on windows ``(n, 3, samples)``.
    """

    method = "eqt"

    def __init__(self, path: str, s: dict):
        self.s = dict(s)
        self.model = load_eqt(path, str(self.s.get("device", "cpu")))
        self.options = _options(self.s)

    def __call__(self, windows: np.ndarray, present: np.ndarray) -> np.ndarray:
        """P(earthquake) of windows ``(n, 3, samples)`` (``present`` is not used: absent components are zero)."""
        return eqt_probabilities(self.model, windows, int(self.s.get("batch_size", 64)),
                                 device=str(self.s.get("device", "cpu")), **self.options)


def _score_windows(model: Any, ds: xr.Dataset, idx: np.ndarray, batch: int, dev: str, opts: dict,
                   chunk: int = 1024) -> np.ndarray:
    """P(earthquake) of the store's windows ``idx``, read ``chunk`` windows at a time."""
    out = np.empty(len(idx), dtype=np.float32)
    for a in range(0, len(idx), chunk):
        waves = np.asarray(ds["waveform"].isel(window=idx[a:a + chunk]).values, dtype=np.float32)
        out[a:a + len(waves)] = eqt_probabilities(model, waves, batch, device=dev, **opts)
    return out


def eqt_detector(ctx: EvalContext, argument: str | None) -> Detector:
    """``eqt:WEIGHTS`` in ``seisgrid evaluate``: EQTransformer's P(earthquake) of the store's windows.

    The target of the ``eqt`` entry of :data:`seisgrid.seismic.evaluate.METHODS`. Windows are read from the
    window store chunk-wise and scored by :func:`eqt_probabilities` in this process (CUDA when available).
    The threshold is ``seisgrid.peers.eqt_threshold`` when set, else None: ``evaluate`` chooses it on the val
    windows by its threshold rule (max F1), like the baselines'.

    Parameters
    ----------
    ctx : seisgrid.seismic.evaluate.EvalContext
        The evaluated window store.
    argument : str, optional
        Weights (:func:`resolve_eqt`): ``pnw``, a name, or a ``convert-eqt`` prefix; None: ``pnw``.

    Returns
    -------
    seisgrid.seismic.evaluate.Detector
        ``display_name`` ``EQTransformer (NAME)``; ``info``: ``weights``, ``device`` and the padding settings.
    """
    import torch

    from seisgrid.seismic.evaluate import Detector

    weights, cfg = eqt_scorer_config(argument or "pnw")
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_eqt(weights, dev)
    batch = int(config.get("peers.eqt_batch_size", 64))
    opts = _options()

    def score(idx: np.ndarray) -> np.ndarray:
        return _score_windows(model, ctx.ds, np.asarray(idx), batch, dev, opts)

    threshold = cfg["threshold"]
    return Detector(score, threshold, "seisgrid.peers.eqt_threshold" if threshold is not None else "",
                    timed="waveforms read from the store + padding + filter + model",
                    cores=1 if dev == "cuda" else int(torch.get_num_threads()),
                    display_name=f"EQTransformer ({pathlib.Path(cfg['weights']).name})",
                    info={"weights": cfg["weights"], "device": dev, **{f"eqt_{k}": v for k, v in opts.items()}})


__all__ = ["EQTScorer", "eqt_detector", "eqt_probabilities", "eqt_scorer_config", "eqt_traces", "load_eqt",
           "pad_windows", "resolve_eqt"]
