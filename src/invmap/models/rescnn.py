"""Residual CNN with a global skip: x̂ = z + f_θ(z).

    h₀ = C_in z,   h_b = h_{b−1} + C_b² σ(N(C_b¹ h_{b−1}))  (b = 1 … blocks),   f_θ(z) = C_out σ(h_B)

The network learns the correction to its input (e.g. the artefacts of FBP(y)), which is
small for a good input and makes training fast. Any H × W.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import MODELS
from . import activations
from .activations import Activation
from .base import Network, check_image_input
from .layers import Norm, check_kernel, check_positive, check_residual, conv, init_conv, norm_layer


class ResBlock(nn.Module):
    """h ↦ h + C² σ(N(C¹ h)) (N: optional normalisation)."""

    def __init__(self, channels: int, kernel_size: int, activation: str, norm: str):
        super().__init__()
        self.body = nn.Sequential(conv(channels, channels, kernel_size, bias=norm == "none"),
                                  norm_layer(norm, channels), activations.make(activation),
                                  conv(channels, channels, kernel_size))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


@MODELS.register("rescnn")
class ResCNN(Network):
    """Residual CNN: ``blocks`` residual blocks of ``channels`` maps plus a global skip x̂ = z + f(z)."""

    def __init__(self, blocks: int = 4, channels: int = 32, kernel_size: int = 3,
                 in_channels: int = 1, out_channels: int = 1, activation: Activation = "relu",
                 norm: Norm = "none", residual: bool = True):
        super().__init__()
        check_positive("rescnn", blocks=blocks, channels=channels, in_channels=in_channels, out_channels=out_channels)
        check_kernel("rescnn", kernel_size)
        check_residual("rescnn", residual, in_channels, out_channels)
        self.in_channels, self.out_channels, self.residual = in_channels, out_channels, residual
        self.head = conv(in_channels, channels, kernel_size)
        self.blocks = nn.Sequential(*[ResBlock(channels, kernel_size, activation, norm) for _ in range(blocks)])
        self.tail = nn.Sequential(activations.make(activation), conv(channels, out_channels, kernel_size))
        init_conv(self, activation)
        if residual:  # start near the identity x̂ ≈ z: a small correction, not a random image
            self.tail[-1].weight.data.mul_(0.1)
        # keep the residual branches small at initialisation (the sum of B blocks stays O(1))
        for b in self.blocks:
            b.body[-1].weight.data.mul_(1.0 / blocks ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_input(self, x)
        out = self.tail(self.blocks(self.head(x)))
        return x + out if self.residual else out
