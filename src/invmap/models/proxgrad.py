"""Unrolled proximal gradient: a gradient step on the data term, then a learned CNN prox.

With K̃ = K/‖K‖, ỹ = y/‖K‖ (`invmap.models.iterative`) and learned steps τ_k > 0:

    v_k = x_k − τ_k K̃ᵀ(K̃x_k − ỹ),   x_{k+1} = prox_θk(v_k) = v_k + R_θk(v_k)

— ISTA/proximal gradient for ½‖K̃x − ỹ‖² + R(x) with the proximal map of R replaced by a
residual CNN, its weights per iteration or shared (one learned prior applied
`iterations` times). Works for every operator with 2-D images, complex MRI included.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from .registry import KINDS
from .activations import Activation
from ..operators.base import operator_of
from ..operators.normalised import Normalised
from ..solvers.fbp import first_iterate
from .iterative import Count, blocks, run_step
from .reconstructor import Reconstructor


@KINDS.register("unrolled")
class UnrolledProximalGradient(Reconstructor):
    """Unrolled proximal gradient: x_{k+1} = prox_θk(x_k − τ_k Kᵀ(Kx_k − y)), a learned CNN prox (shared or per iteration)."""

    kind = "unrolled"

    def __init__(self, iterations: Count = 10, channels: Count = 32, depth: Count = 3, shared: bool = False,
                 activation: Activation = "relu", init: Literal["auto", "zero", "adjoint", "fbp"] = "adjoint",
                 checkpoint: bool = False):
        super().__init__()
        self.iterations, self.shared, self.init, self.checkpoint = int(iterations), bool(shared), init, bool(checkpoint)
        self.prox = blocks(iterations, shared, 1, 1, depth, channels, activation)
        #: log τ_k (τ₀ = 1, the classical step 1/‖K̃‖² = 1)
        self.log_step = nn.Parameter(torch.zeros(int(iterations)))

    def trained_blocks(self, physics: Any) -> list:
        shape = (1, *operator_of(physics).in_shape)
        return [(self.prox[0 if self.shared else k], shape) for k in range(1 if self.checkpoint else self.iterations)]

    def forward(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """x̂ = x_iterations (see the module docstring)."""
        p = Normalised(physics, y, "unrolled")
        x = first_iterate(p, self.init, y.shape[0], y)
        for k in range(self.iterations):
            net = self.prox[0 if self.shared else k]

            def step(x: torch.Tensor, k: int = k, net: nn.Module = net) -> torch.Tensor:
                v = x - self.log_step[k].exp() * p.grad(x)
                return v + net(v)

            x = run_step(step, x, checkpoint=self.checkpoint)
        return x
