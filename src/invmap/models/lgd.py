"""Learned gradient descent (Adler & Öktem 2017): a learned update of the data-term gradient.

With K̃ = K/‖K‖, ỹ = y/‖K‖ (`invmap.models.iterative`) and memory channels s:

    x₀ = 0 (or K̃ᵀỹ, FBP(y)),  s₀ = 0
    [Δx, s_{k+1}] = Γ_θk(x_k, K̃ᵀ(K̃x_k − ỹ), s_k),   x_{k+1} = x_k + Δx,   k = 0 … iterations−1

Γ_θk is a small CNN per iteration (or one shared). Works for every operator with 2-D
images, complex MRI included (K̃ᵀ of a complex residual is a real image).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from .registry import KINDS
from .activations import Activation
from ..operators.base import operator_of
from ..operators.normalised import Normalised
from ..solvers.fbp import first_iterate
from .iterative import Count, block_input, blocks, run_step
from .reconstructor import Reconstructor


@KINDS.register("lgd")
class LearnedGradientDescent(Reconstructor):
    """Learned gradient descent: x_{k+1} = x_k + Γ_θk(x_k, Kᵀ(Kx_k − y), memory), K normalised by ‖K‖."""

    kind = "lgd"

    def __init__(self, iterations: Count = 10, memory: Count = 5, channels: Count = 32, depth: Count = 3,
                 shared: bool = False, activation: Activation = "relu",
                 init: Literal["auto", "zero", "adjoint", "fbp"] = "zero", checkpoint: bool = False):
        super().__init__()
        self.iterations, self.memory, self.init, self.checkpoint = int(iterations), int(memory), init, bool(checkpoint)
        self.shared = bool(shared)
        self.blocks = blocks(iterations, shared, 2 + memory, 1 + memory, depth, channels, activation)

    def trained_blocks(self, physics: Any) -> list:
        shape = (2 + self.memory, *operator_of(physics).in_shape)
        return [(self.blocks[0 if self.shared else k], shape) for k in range(1 if self.checkpoint else self.iterations)]

    def forward(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """x̂ = x_iterations (see the module docstring)."""
        p = Normalised(physics, y, "lgd")
        x = first_iterate(p, self.init, y.shape[0], y)
        s = x.new_zeros((x.shape[0], self.memory) + x.shape[2:])
        for k in range(self.iterations):
            net = self.blocks[0 if self.shared else k]

            def step(x: torch.Tensor, s: torch.Tensor, net=net) -> tuple[torch.Tensor, torch.Tensor]:
                out = net(block_input(x, p.grad(x), s))
                return x + out[:, :1], out[:, 1:]

            x, s = run_step(step, x, s, checkpoint=self.checkpoint)
        return x
