"""A very small ResNet-style network (about 47,000 parameters) for fast CPU tests and smoke runs.

Not a detector for real use: it exists so that training, checkpointing, evaluation and detection can be
exercised end to end in seconds on a laptop core. Same interface as the ResNets in ``resnet.py``:
(batch, in_channels, H, W) spectrograms → (batch, num_classes) logits, any H, W ≥ 8.

Layout: 7×7 stride-2 stem (24 channels) + 3×3 stride-2 max-pool, then two residual stages of one
:class:`~seisgrid.seismic.models.resnet.BasicBlock` each (24 channels; 48 channels at stride 2),
global average pooling and a linear classifier.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

import torch
from torch import nn

from seisgrid.seismic.models.resnet import BasicBlock, conv1x1, init_weights


class TinyOptions(TypedDict, total=False):
    """Keyword arguments of :func:`tiny` (those of :class:`TinyResNet`)."""

    num_classes: int
    in_channels: int
    widths: tuple[int, int]


class TinyResNet(nn.Module):
    """Two-stage ResNet for tests: input (batch, in_channels, H, W) → logits (batch, num_classes)."""

    def __init__(self, num_classes: int = 2, in_channels: int = 3, widths: tuple[int, int] = (24, 48)):
        super().__init__()
        w1, w2 = widths
        self.conv1 = nn.Conv2d(in_channels, w1, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = BasicBlock(w1, w1)
        self.layer2 = BasicBlock(w1, w2, stride=2, downsample=nn.Sequential(conv1x1(w1, w2, 2), nn.BatchNorm2d(w2)))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(w2, num_classes)
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (batch, widths[1]) of images (batch, in_channels, H, W): the input of ``fc``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return torch.flatten(self.avgpool(self.layer2(self.layer1(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, num_classes) of images (batch, in_channels, H, W)."""
        return self.fc(self.features(x))


def tiny(**kw: Unpack[TinyOptions]) -> TinyResNet:
    """The tiny test network (see the module docstring); ``num_classes``, ``in_channels``."""
    return TinyResNet(**kw)
