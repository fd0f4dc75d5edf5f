"""A WaveNet-style 1-D CNN on raw 3-component waveforms: the detection study's waveform peer.

Input: (batch, components, samples) waveforms of the window store (``waveform``), no spectrogram. The
network takes its own input scaling: each window is demeaned per component and divided by its largest
absolute sample over all components (the "peak" normalisation of EQTransformer and SeisBench), so that
training, detection and evaluation feed raw counts alike.

Layout (van den Oord et al. 2016, WaveNet; as used for event detection since): a causal 1×2 stem
convolution, then ``stacks`` × ``layers`` residual blocks with dilations 1, 2, 4 … 2^(layers−1) —
each a dilated causal convolution (kernel 2) with the gated activation tanh ⊙ sigmoid, a 1×1 residual
projection and a 1×1 skip projection — the skips summed, ReLU, a 1×1 convolution, ReLU, average and max
pooling over time concatenated, and the classifier ``fc``. With the defaults (2 stacks of 10 layers) the
receptive field is 2,048 samples: 20 s at 100 Hz, most of a 30 s window.

Written here: PyTorch has no WaveNet module, and the model is a few dozen lines of standard layers.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

import torch
from torch import nn


class WaveNetOptions(TypedDict, total=False):
    """Keyword arguments of :func:`wavenet` (those of :class:`WaveNet`)."""

    num_classes: int
    in_channels: int


class CausalConv1d(nn.Conv1d):
    """1-D convolution that sees only the present and the past: left padding of ``dilation × (kernel − 1)``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 2, dilation: int = 1):
        super().__init__(c_in, c_out, kernel_size, dilation=dilation)
        self.left = dilation * (kernel_size - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output (batch, c_out, samples) of input (batch, c_in, samples)."""
        return super().forward(nn.functional.pad(x, (self.left, 0)))


class GatedBlock(nn.Module):
    """Dilated causal convolution with the gated activation; returns (residual output, skip output)."""

    def __init__(self, channels: int, skip_channels: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, 2, dilation)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x + residual, skip)`` of input (batch, channels, samples)."""
        filt, gate = self.conv(x).chunk(2, dim=1)
        h = torch.tanh(filt) * torch.sigmoid(gate)
        return x + self.residual(h), self.skip(h)


class WaveNet(nn.Module):
    """Waveform classifier: input (batch, in_channels, samples) → logits (batch, num_classes).

    Parameters
    ----------
    num_classes, in_channels : int
        Logits and waveform components (3: Z, N, E).
    channels, skip_channels : int
        Width of the residual path and of the skip path.
    layers, stacks : int
        Dilations 1 … 2^(layers − 1), repeated ``stacks`` times.
    """

    input_kind = "waveform"

    def __init__(self, num_classes: int = 2, in_channels: int = 3, *, channels: int = 32, skip_channels: int = 64,
                 layers: int = 10, stacks: int = 2):
        super().__init__()
        self.stem = CausalConv1d(in_channels, channels, 2)
        self.blocks = nn.ModuleList(GatedBlock(channels, skip_channels, 2 ** i)
                                    for _ in range(stacks) for i in range(layers))
        self.post = nn.Conv1d(skip_channels, skip_channels, 1)
        self.fc = nn.Linear(2 * skip_channels, num_classes)
        self.receptive_field = 1 + stacks * (2 ** layers - 1) + 1

    @staticmethod
    def normalise(x: torch.Tensor) -> torch.Tensor:
        """Demean each component, then divide the window by its largest absolute sample (0 stays 0)."""
        x = x - x.mean(dim=-1, keepdim=True)
        peak = x.abs().amax(dim=(-2, -1), keepdim=True)
        return x / torch.where(peak > 0, peak, torch.ones_like(peak))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (batch, 2 × skip_channels) of waveforms (batch, in_channels, samples)."""
        h = self.stem(self.normalise(x.float()))
        skips = torch.zeros((), device=x.device)
        for block in self.blocks:
            h, skip = block(h)
            skips = skips + skip
        h = torch.relu(self.post(torch.relu(skips)))
        return torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, num_classes) of waveforms (batch, in_channels, samples)."""
        return self.fc(self.features(x))


def wavenet(**kw: Unpack[WaveNetOptions]) -> WaveNet:
    """The WaveNet-style waveform detector (see the module docstring)."""
    return WaveNet(**kw)
