"""SeisFormer: a vision transformer (ViT, Dosovitskiy et al. 2021) on the same 3-channel 224×224 spectrograms.

The detection study's transformer peer: the spectrogram is cut into 16×16 patches, each embedded
linearly (a strided convolution), a learned class token and learned position embeddings are added,
pre-norm encoder blocks (multi-head self-attention + GELU MLP) follow, and the class token's final
state, layer-normalised, feeds the classifier ``fc`` (named as in the ResNets so that temperature
scaling folds into it the same way).

The encoder blocks are PyTorch's :class:`torch.nn.TransformerEncoderLayer` (``norm_first=True``,
GELU): the library's fused attention and its inference fast path, nothing hand-written. Sizes follow the
ViT paper, so parameter counts equal timm's ``vit_*_patch16_224`` for the same number of classes:

* ``seisformer`` — ViT-B/16 (768 wide, 12 blocks, 12 heads; 85.8 M parameters, 16.8 G multiply-adds per
  window by ``torch.utils.flop_counter``, about 4× a ResNet-50's 4.1: the study's "~5× the compute");
* ``seisformer_small`` — ViT-S/16 (384 wide, 12 blocks, 6 heads; 21.7 M parameters, 4.2 G multiply-adds),
  the size that trains on a CPU.

Other image sizes work when both sides are multiples of the patch size: the position embeddings
(learned for 224×224) are resampled bicubically to the new patch grid, as timm does.
"""

from __future__ import annotations

import math
from typing import TypedDict, Unpack

import torch
from torch import nn


class SeisFormerOptions(TypedDict, total=False):
    """Keyword arguments of :func:`seisformer` and :func:`seisformer_small` (those of :class:`SeisFormer`)."""

    num_classes: int
    in_channels: int


class SeisFormer(nn.Module):
    """Vision-transformer classifier: input (batch, in_channels, H, W) → logits (batch, num_classes).

    Parameters
    ----------
    num_classes, in_channels : int
        Logits and image channels (3: Z, N, E spectrograms).
    image_size, patch_size : int
        Training image side and patch side, pixels; H and W must be multiples of ``patch_size``.
    dim, depth, heads, mlp_ratio : int
        Embedding width, encoder blocks, attention heads, MLP width as a multiple of ``dim``.
    dropout : float
        Dropout of the embeddings, attention and MLP (0 as in ViT pre-training from scratch on small data
        is left to the caller).
    """

    def __init__(self, num_classes: int = 2, in_channels: int = 3, *, image_size: int = 224, patch_size: int = 16,
                 dim: int = 768, depth: int = 12, heads: int = 12, mlp_ratio: int = 4, dropout: float = 0.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, dim))
        self.dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=mlp_ratio * dim, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True, layer_norm_eps=1e-6)
        self.encoder = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # ViT's scheme: truncated normal (sd 0.02) for embeddings and linear weights, zero biases
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        fan_in = self.patch_embed.in_channels * self.patch_size ** 2
        nn.init.trunc_normal_(self.patch_embed.weight, std=math.sqrt(1.0 / fan_in))
        if self.patch_embed.bias is not None:
            nn.init.zeros_(self.patch_embed.bias)

    def _positions(self, rows: int, cols: int) -> torch.Tensor:
        if rows == cols == self.grid:
            return self.pos_embed
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = nn.functional.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
        return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)], dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Final class-token state (batch, dim) of images (batch, in_channels, H, W): the input of ``fc``."""
        if x.shape[-2] % self.patch_size or x.shape[-1] % self.patch_size:
            raise ValueError(f"image {tuple(x.shape[-2:])}: both sides must be multiples of {self.patch_size}")
        patches = self.patch_embed(x)  # (batch, dim, rows, cols)
        rows, cols = patches.shape[-2:]
        tokens = patches.flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        tokens = self.dropout(tokens + self._positions(rows, cols))
        return self.norm(self.encoder(tokens)[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, num_classes) of images (batch, in_channels, H, W)."""
        return self.fc(self.features(x))


def seisformer(**kw: Unpack[SeisFormerOptions]) -> SeisFormer:
    """SeisFormer at ViT-B/16 size (see the module docstring)."""
    return SeisFormer(**kw, dim=768, depth=12, heads=12)


def seisformer_small(**kw: Unpack[SeisFormerOptions]) -> SeisFormer:
    """SeisFormer at ViT-S/16 size (see the module docstring)."""
    return SeisFormer(**kw, dim=384, depth=12, heads=6)
