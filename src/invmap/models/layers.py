"""Small building blocks shared by the convolutional models: normalisation, conv blocks, padding."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from . import activations

Norm = Literal["none", "batch", "group", "instance"]


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Normalisation over `channels` feature maps: none, batch, group (≤ 8 groups) or instance."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, 8), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"unknown norm '{kind}'; allowed: none, batch, group, instance")


def conv(cin: int, cout: int, kernel_size: int = 3, bias: bool = True) -> nn.Conv2d:
    """'Same'-size convolution (odd kernel sizes)."""
    return nn.Conv2d(cin, cout, kernel_size, padding=kernel_size // 2, bias=bias)


class ConvBlock(nn.Sequential):
    """conv → norm → σ, repeated `n` times (the first conv maps cin → cout)."""

    def __init__(self, cin: int, cout: int, activation: str, norm: str, kernel_size: int = 3, n: int = 2):
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [conv(cin if i == 0 else cout, cout, kernel_size, bias=norm == "none"),
                       norm_layer(norm, cout), activations.make(activation)]
        super().__init__(*layers)


def check_kernel(model: str, kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"model '{model}': 'kernel_size' must be a positive odd integer, got {kernel_size}")


def check_positive(model: str, **values: int) -> None:
    for k, v in values.items():
        if v < 1:
            raise ValueError(f"model '{model}': '{k}' must be >= 1, got {v}")


def check_residual(model: str, residual: bool, in_channels: int, out_channels: int) -> None:
    """A global skip x̂ = z + f(z) needs as many output as input channels."""
    if residual and in_channels != out_channels:
        raise ValueError(f"model '{model}': 'residual' needs in_channels == out_channels, "
                         f"got {in_channels} and {out_channels}")


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad H, W at the bottom/right up to multiples of `m`; returns (x, (H, W))."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % m, (-w) % m
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def init_conv(module: nn.Module, activation: str) -> None:
    """He initialisation (gain of `activation`) for every conv / linear weight, zero biases."""
    g = activations.gain(activation)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="linear")
            m.weight.data.mul_(g)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
