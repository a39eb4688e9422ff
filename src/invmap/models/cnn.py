"""Plain convolutional network x̂ = f_θ(z): ``depth`` convolutions with activations between.

    h₀ = z,  h_{l} = σ(N(C_l h_{l−1})) for l = 1 … depth−1,  x̂ = C_depth h_{depth−1}  (+ z if residual)

with 'same' padding, so the output has the input's H × W (any size).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import MODELS
from .activations import Activation
from .base import Network, check_image_input
from .layers import Norm, check_kernel, check_positive, check_residual, conv, init_conv, norm_layer
from . import activations


@MODELS.register("cnn")
class CNN(Network):
    """Plain conv stack: ``depth`` same-size convolutions of ``channels`` feature maps (image → image)."""

    def __init__(self, depth: int = 5, channels: int = 32, kernel_size: int = 3,
                 in_channels: int = 1, out_channels: int = 1, activation: Activation = "relu",
                 norm: Norm = "none", residual: bool = False):
        super().__init__()
        check_positive("cnn", depth=depth, channels=channels, in_channels=in_channels, out_channels=out_channels)
        check_kernel("cnn", kernel_size)
        check_residual("cnn", residual, in_channels, out_channels)
        self.in_channels, self.out_channels, self.residual = in_channels, out_channels, residual
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(depth - 1):
            layers += [conv(c, channels, kernel_size, bias=norm == "none"), norm_layer(norm, channels),
                       activations.make(activation)]
            c = channels
        layers.append(conv(c, out_channels, kernel_size))
        self.net = nn.Sequential(*layers)
        init_conv(self, activation)
        if residual:  # start near the identity x̂ ≈ z: a small correction, not a random image
            self.net[-1].weight.data.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_input(self, x)
        out = self.net(x)
        return x + out if self.residual else out
