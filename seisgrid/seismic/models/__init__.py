"""Detection models behind one small interface: ``build(arch)``, ``save_checkpoint``, ``load_checkpoint``.

A new backbone is one entry in :data:`ARCHITECTURES` (a callable ``(num_classes, in_channels) ->
nn.Module`` returning class logits) and, when it does not take (batch, 3, 224, 224) spectrograms, one in
:data:`INPUT_KINDS` (``waveform``: (batch, 3, samples) windows); training and detection only use this
module's functions.
"""

from __future__ import annotations

from typing import Protocol

import torch

from seisgrid import checkpoint
from seisgrid.errors import SeisgridError
from seisgrid.seismic.models.resnet import resnet18, resnet34, resnet50
from seisgrid.seismic.models.seisformer import seisformer, seisformer_small
from seisgrid.seismic.models.tiny import tiny
from seisgrid.seismic.models.wavenet import wavenet


class Architecture(Protocol):
    """What :data:`ARCHITECTURES` maps a name to: ``(num_classes=, in_channels=) -> nn.Module``."""

    def __call__(self, *, num_classes: int = ..., in_channels: int = ...) -> torch.nn.Module:
        """A fresh model with ``num_classes`` logits for ``in_channels``-channel images."""
        ...


ARCHITECTURES: dict[str, Architecture] = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
                                          "seisformer": seisformer, "seisformer_small": seisformer_small,
                                          "tiny": tiny, "wavenet": wavenet}

#: What each architecture reads: ``spectrogram`` — (component, freq, time) images of a spectrogram store —
#: or ``waveform`` — (component, sample) windows of the labelled-window store itself. Models say it too, as
#: their ``input_kind`` attribute (tested to agree).
INPUT_KINDS: dict[str, str] = {"wavenet": "waveform"}


def input_kind(arch: str) -> str:
    """``spectrogram`` or ``waveform``: the input architecture ``arch`` takes (:data:`INPUT_KINDS`)."""
    if arch not in ARCHITECTURES:
        build(arch)  # raises the unknown-architecture error
    return INPUT_KINDS.get(arch, "spectrogram")


def build(arch: str, num_classes: int = 2, in_channels: int = 3) -> torch.nn.Module:
    """A fresh model of architecture ``arch`` (one of :data:`ARCHITECTURES`)."""
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise SeisgridError(f"--arch {arch!r}: unknown; expected one of {', '.join(ARCHITECTURES)}") from None
    return factory(num_classes=num_classes, in_channels=in_channels)


def parameter_count(model: torch.nn.Module) -> int:
    """Number of parameters (scalars) of ``model``."""
    return int(sum(p.numel() for p in model.parameters()))


def multiply_adds(model: torch.nn.Module, shape: tuple[int, ...] = (1, 3, 224, 224)) -> float:
    """Multiply-adds of one forward pass on an input of ``shape``, in G per input row (per window).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` (its FLOPs / 2) with the transformer
    inference fast path off: the fused kernel it would call is invisible to the counter.
    """
    from torch.utils.flop_counter import FlopCounterMode

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.eval()(torch.zeros(shape))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return counter.get_total_flops() / 2e9 / shape[0]


#: The input of one window per kind, for compute counts: a 224×224 spectrogram image, or 25 s of 3-component
#: waveform at 100 Hz (the shared window stores' window).
WINDOW_SHAPES = {"spectrogram": (1, 3, 224, 224), "waveform": (1, 3, 2500)}


def list_models(num_classes: int = 2) -> list[dict]:
    """Every architecture: input kind, parameters, multiply-adds per window (G; :data:`WINDOW_SHAPES`)."""
    rows = []
    for name in ARCHITECTURES:
        model, kind = build(name, num_classes), input_kind(name)
        rows.append({"arch": name, "input": kind, "parameters": parameter_count(model), "num_classes": num_classes,
                     "gmacs": round(multiply_adds(model, WINDOW_SHAPES[kind]), 3)})
    return rows


def require_spectrogram_input(config: dict, path: str, command: str) -> None:
    """Raise when the checkpoint ``path`` (its ``config``) is a waveform model: ``command`` feeds images only."""
    kind = (config.get("input") or {}).get("kind") or INPUT_KINDS.get(str(config.get("arch")), "spectrogram")
    if kind != "spectrogram":
        raise SeisgridError(f"{path}: a {kind} model ({config.get('arch')}); `seisgrid {command}` feeds it "
                            "spectrogram images only so far. Score it with seisgrid.seismic.train.predict_proba "
                            "on the window store's waveforms")


def pick_device(device: str | None = None) -> torch.device:
    """``device`` when given, else CUDA when available, else CPU (chosen once per process)."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


PRECISIONS = ("auto", "fp32", "bf16")


def pick_precision(precision: str | None, device: str | torch.device) -> str:
    """``"bf16"`` or ``"fp32"``: the inference precision of ``precision`` (``auto``, ``fp32``, ``bf16``) on ``device``.

    ``auto`` is bf16 autocast where the hardware computes bf16 natively — CUDA, or a CPU whose oneDNN
    has bf16 kernels (AVX512-BF16 or AMX) — and fp32 elsewhere: on a 2-core AVX512-BF16 CPU a ResNet-18
    classified 84 images/s in bf16 against 39 in fp32 (both channels_last, batches of 64; the end-to-end
    effect in ``benchmarks/watch.py``).
    """
    chosen = str(precision or "auto").lower()
    if chosen not in PRECISIONS:
        raise SeisgridError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if chosen != "auto":
        return chosen
    kind = torch.device(device).type
    if kind == "cuda":
        return "bf16"
    native = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return "bf16" if kind == "cpu" and native is not None and bool(native()) else "fp32"


def save_checkpoint(path: str, model: torch.nn.Module, config: dict) -> dict:
    """Write ``path`` (weights, ``torch.save`` of the state dict) and ``path + '.json'`` (config).

    ``config`` must name ``arch`` and may hold anything JSON-serialisable (spectrogram parameters,
    window length, class names, training history, thresholds).
    """
    if "arch" not in config:
        raise SeisgridError("save_checkpoint: config needs 'arch'")
    return checkpoint.write(path, model.state_dict(), config)


def load_checkpoint(path: str, device: str | torch.device | None = None) -> tuple[torch.nn.Module, dict]:
    """The model (eval mode, on ``device``) and config saved by :func:`save_checkpoint`.

    Weights load with ``torch.load(..., weights_only=True)``: a checkpoint can hold tensors only.
    """
    config, state = checkpoint.read(path, "checkpoint", "weights + .json config; train one with `seisgrid train`")
    model = build(config["arch"], int(config.get("num_classes", 2)), int(config.get("in_channels", 3)))
    model.load_state_dict(state)
    device = pick_device(device) if not isinstance(device, torch.device) else device
    return model.to(device).eval(), config


__all__ = [
    "ARCHITECTURES",
    "build",
    "list_models",
    "load_checkpoint",
    "parameter_count",
    "pick_device",
    "save_checkpoint",
]
