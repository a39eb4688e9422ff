"""Multilayer perceptron x̂ = W_{L+1} σ(W_L ⋯ σ(W_1 z + b_1) ⋯ + b_L) + b_{L+1}.

``depth`` = L hidden layers of ``width`` units with activation σ; the output layer is
affine. Same vector / image handling as `linear`. Hidden layers use He (Kaiming)
initialisation with the gain of σ, and the first layer's biases are spread so that the
units' kinks (for relu-like σ) cover the span of a *standardised* input (z / std(z)).
With ``standardize`` (default) the network first maps z ↦ (z − μ) / s, where μ, s are
buffers set once, from the first batch seen in training mode (data-dependent
initialisation, as ActNorm in Glow, Kingma & Dhariwal 2018): per feature for plain vectors,
one scalar pair for image / measurement tensors. They are saved with the weights. This
makes the default initialisation independent of the input's units: one hidden layer of
64 relu units fits sin on x ∈ [−2π, 2π] to MSE ~1e-4 in a few thousand full-batch Adam
steps (lr 1e-2).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import MODELS
from . import activations
from .activations import Activation
from .base import Network
from .dense import DenseShapes, resolve_shapes


@MODELS.register("mlp")
class MLP(DenseShapes, Network):
    """Multilayer perceptron: ``depth`` hidden layers of ``width`` units (vectors or flattened tensors)."""

    same_size = False
    accepts_vectors = True

    def __init__(self, in_features: int | None = None, out_features: int | None = None,
                 in_shape: tuple[int, ...] | None = None, out_shape: tuple[int, ...] | None = None,
                 depth: int = 2, width: int = 256, in_channels: int = 1, out_channels: int = 1,
                 activation: Activation = "relu", standardize: bool = True):
        super().__init__()
        if depth < 0:
            raise ValueError(f"model 'mlp': 'depth' must be >= 0 (number of hidden layers), got {depth}")
        if width < 1:
            raise ValueError(f"model 'mlp': 'width' must be >= 1, got {width}")
        self.d_in, self.d_out, self.in_shape, self.out_shape = resolve_shapes(
            "mlp", in_features, out_features, in_shape, out_shape, in_channels, out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        layers: list[nn.Module] = []
        d = self.d_in
        for _ in range(depth):
            lin = nn.Linear(d, width)
            nn.init.kaiming_uniform_(lin.weight, a=0.0, nonlinearity="linear")
            lin.weight.data.mul_(activations.gain(activation))
            nn.init.zeros_(lin.bias)
            layers += [lin, activations.make(activation)]
            d = width
        if depth > 0:
            # first layer: the hyperplane w·z + b = 0 of each unit (its kink, for relu-like σ)
            # passes through a random point p of [−2, 2]^d, so the kinks cover the span of a
            # standardised input instead of all passing through 0 (zero biases).
            first = layers[0]
            with torch.no_grad():
                p = torch.empty_like(first.weight).uniform_(-2.0, 2.0)
                first.bias.copy_(-(first.weight * p).sum(1))
        self.standardize = standardize
        self.register_buffer("in_shift", torch.zeros(self.d_in))
        self.register_buffer("in_scale", torch.ones(self.d_in))
        self.register_buffer("standardized", torch.tensor(not standardize))
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(d, self.d_out)

    @torch.no_grad()
    def _fit_standardization(self, z: torch.Tensor, vector: bool) -> None:
        zd = z.detach().to(self.in_shift.dtype)
        if vector and zd.shape[0] > 1:
            mu, sd = zd.mean(0), zd.std(0)
        else:
            mu, sd = zd.mean().expand(self.d_in), zd.std().expand(self.d_in)
        sd = torch.where(torch.isfinite(sd) & (sd > 0), sd, torch.ones_like(sd))
        self.in_shift.copy_(mu)
        self.in_scale.copy_(sd)
        self.standardized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, vector = self._flatten(x)
        if self.standardize:
            if self.training and not bool(self.standardized):
                self._fit_standardization(z, vector)
            z = (z - self.in_shift) / self.in_scale
        return self._unflatten(self.out(self.hidden(z)), vector)
