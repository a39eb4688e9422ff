"""The linear estimator x̂ = W z + b: one learned dense matrix.

Trained by least squares on pairs (z, x) it is the best *linear* inverse map — for z = y
it approximates the (regularised) pseudo-inverse, e.g. W ≈ (KᵀK + λI)⁻¹Kᵀ when the noise
is white and the images are uncorrelated. W has d_in · d_out entries, so this model is
for vectors and small images only (64×64 → 64×64 is already 16.8 M weights).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import MODELS
from .activations import Activation
from .base import Network
from .dense import DenseShapes, resolve_shapes


@MODELS.register("linear")
class LinearModel(DenseShapes, Network):
    """Linear estimator x̂ = W z + b (dense; vectors [N, d] or flattened [B, C, ...]).

    ``activation`` is accepted for a uniform interface and ignored: the model is linear.
    """

    same_size = False
    accepts_vectors = True

    def __init__(self, in_features: int | None = None, out_features: int | None = None,
                 in_shape: tuple[int, ...] | None = None, out_shape: tuple[int, ...] | None = None,
                 in_channels: int = 1, out_channels: int = 1, bias: bool = True,
                 activation: Activation = "relu"):
        super().__init__()
        self.d_in, self.d_out, self.in_shape, self.out_shape = resolve_shapes(
            "linear", in_features, out_features, in_shape, out_shape, in_channels, out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.fc = nn.Linear(self.d_in, self.d_out, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z, vector = self._flatten(x)
        return self._unflatten(self.fc(z), vector)
