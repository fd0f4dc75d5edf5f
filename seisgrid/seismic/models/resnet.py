"""ResNet-18/34/50 for 3-channel (Z/N/E) spectrogram images.

Written here because torchvision has no CPU build on these machines. Architecture as in He et al.
(2016) and torchvision's ``resnet*`` (BasicBlock for 18/34, Bottleneck with the stride on the 3×3
convolution — "ResNet v1.5" — for 50), so parameter counts equal torchvision's for the same
configuration (ResNet-50, 2 classes: 23,512,130).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict, Unpack

import torch
from torch import nn

if TYPE_CHECKING:
    from collections.abc import Sequence


class ResNetOptions(TypedDict, total=False):
    """Keyword arguments of :func:`resnet18`, :func:`resnet34` and :func:`resnet50` (those of :class:`ResNet`)."""

    num_classes: int
    in_channels: int
    zero_init_residual: bool


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """3×3 convolution, padding 1, no bias (a batch norm follows)."""
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution, no bias (a batch norm follows): channel projections and downsampling."""
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)


def init_weights(module: nn.Module) -> None:
    """He (fan-out) initialisation of convolutions, unit/zero batch-norm: torchvision's ResNet scheme."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    """Residual block of two 3×3 convolutions (ResNet-18/34); ``width`` output channels.

    Parameters
    ----------
    c_in : int
        Input channels.
    width : int
        Channels of both convolutions and of the output (``expansion`` = 1).
    stride : int
        Stride of the first convolution.
    downsample : torch.nn.Module, optional
        Projection of the input onto the output's shape for the shortcut (when stride or channels change).
    """

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, width, stride), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width), nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output (batch, width, H / stride, W / stride) of input (batch, c_in, H, W)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """Residual block 1×1 → 3×3 (with the stride, "v1.5") → 1×1 (ResNet-50); ``4 × width`` output channels.

    Parameters
    ----------
    c_in : int
        Input channels.
    width : int
        Channels of the inner convolutions; the output has ``width × expansion`` (4).
    stride : int
        Stride of the 3×3 convolution.
    downsample : torch.nn.Module, optional
        Projection of the input onto the output's shape for the shortcut (when stride or channels change).
    """

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = conv1x1(c_in, width), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv1x1(width, width * self.expansion), nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output (batch, 4 × width, H / stride, W / stride) of input (batch, c_in, H, W)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet classifier: input (batch, in_channels, H, W) → logits (batch, num_classes)."""

    def __init__(self, block: type[BasicBlock | Bottleneck], layers: Sequence[int], num_classes: int = 2,
                 in_channels: int = 3, zero_init_residual: bool = True):
        super().__init__()
        self.c_in = 64
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._layer(block, 64, layers[0])
        self.layer2 = self._layer(block, 128, layers[1], stride=2)
        self.layer3 = self._layer(block, 256, layers[2], stride=2)
        self.layer4 = self._layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self)
        if zero_init_residual:  # each residual branch starts as identity: trains stably from scratch
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _layer(self, block, width: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.c_in != width * block.expansion:
            downsample = nn.Sequential(conv1x1(self.c_in, width * block.expansion, stride),
                                       nn.BatchNorm2d(width * block.expansion))
        layers = [block(self.c_in, width, stride, downsample)]
        self.c_in = width * block.expansion
        layers += [block(self.c_in, width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (batch, 512 × expansion) of images (batch, in_channels, H, W): the input of ``fc``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, num_classes) of images (batch, in_channels, H, W)."""
        return self.fc(self.features(x))


def resnet18(**kw: Unpack[ResNetOptions]) -> ResNet:
    """ResNet-18 (BasicBlocks 2-2-2-2); ``num_classes``, ``in_channels``, ``zero_init_residual``."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kw)


def resnet34(**kw: Unpack[ResNetOptions]) -> ResNet:
    """ResNet-34 (BasicBlocks 3-4-6-3); ``num_classes``, ``in_channels``, ``zero_init_residual``."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kw)


def resnet50(**kw: Unpack[ResNetOptions]) -> ResNet:
    """ResNet-50 (Bottlenecks 3-4-6-3); ``num_classes``, ``in_channels``, ``zero_init_residual``."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kw)
