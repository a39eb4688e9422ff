"""Learned primal-dual (Adler & Öktem 2018): learned updates in image and measurement space.

With K̃ = K/‖K‖, ỹ = y/‖K‖ (`invmap.models.iterative`), primal memory f (``primal``
channels, f⁽¹⁾ the image) and dual memory h (``dual`` channels), from f₀ = h₀ = 0:

    variant 'paper':  h_{k+1} = h_k + Γ_θk(h_k, K̃ f_k⁽²⁾, ỹ)          (a CNN on the measurement)
    variant 'light':  h_{k+1} = (h_k + σ_k (K̃ f_k⁽²⁾ − ỹ)) / (1 + σ_k)   (the prox of ½‖· − ỹ‖²
                      as in primal-dual hybrid gradient, a learned step σ_k > 0; one dual channel)
    both:             f_{k+1} = f_k + Λ_θk(f_k, K̃ᵀ h_{k+1}⁽¹⁾),          x̂ = f⁽¹⁾

(f⁽²⁾ = f⁽¹⁾ with one primal channel). 'paper' convolves over the measurement grid, so it
needs 2-D measurements (CT sinograms, blurred or undersampled images, MRI k-space as
[Re, Im] channels), not the explicit matrix operator's vector; 'light' works for every
operator and skips the measurement-space CNN (the costly half on CT). ``complex_data``
(set by training from the operator) sizes the dual CNN for [Re, Im] channels.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from ..operators.base import operator_of
from ..operators.normalised import Normalised
from .registry import KINDS
from .activations import Activation
from .iterative import Count, as_channels, as_complex, block_input, blocks, run_step
from .reconstructor import Reconstructor


@KINDS.register("lpd")
class LearnedPrimalDual(Reconstructor):
    """Learned primal-dual with primal/dual memory: variant 'paper' (a dual CNN) or 'light' (learned dual prox)."""

    kind = "lpd"

    def __init__(self, iterations: Count = 10, variant: Literal["paper", "light"] = "paper", primal: Count = 5,
                 dual: Count = 5, channels: Count = 32, depth: Count = 3, shared: bool = False,
                 activation: Activation = "relu", checkpoint: bool = False, complex_data: bool = False):
        super().__init__()
        self.iterations, self.variant, self.shared, self.checkpoint = int(iterations), variant, bool(shared), bool(checkpoint)
        self.primal, self.dual = int(primal), (int(dual) if variant == "paper" else 1)
        self.complex_data = bool(complex_data)
        m = 2 if complex_data else 1
        self.primal_blocks = blocks(iterations, shared, primal + 1, primal, depth, channels, activation)
        self.dual_blocks = (blocks(iterations, shared, (self.dual + 2) * m, self.dual * m, depth, channels, activation)
                            if variant == "paper" else nn.ModuleList())
        #: log σ_k of the light variant's dual step (σ₀ = 1: the PDHG step for ‖K̃‖ = 1)
        self.log_sigma = nn.Parameter(torch.zeros(1 if shared else iterations), requires_grad=variant == "light")

    def check_operator(self, op: Any) -> None:
        """A one-line ValueError unless this network can run with K = `op` (2-D measurements for the
        paper variant's dual convolutions)."""
        if self.variant == "paper" and len(op.out_shape) != 2:
            raise ValueError(f"lpd variant 'paper' convolves over 2-D measurements, but operator '{op.name}' "
                             f"measures [{', '.join(map(str, op.out_shape))}]; use variant 'light'")

    def trained_blocks(self, physics: Any) -> list:
        op, m = operator_of(physics), 2 if self.complex_data else 1
        self.check_operator(op)
        out = []
        for k in range(1 if self.checkpoint else self.iterations):
            i = 0 if self.shared else k
            out.append((self.primal_blocks[i], (self.primal + 1, *op.in_shape)))
            if self.variant == "paper":
                out.append((self.dual_blocks[i], ((self.dual + 2) * m, *op.out_shape)))
        return out

    def forward(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """x̂ = f⁽¹⁾ after `iterations` primal-dual steps (see the module docstring)."""
        p = Normalised(physics, y, "lpd")
        self.check_operator(p.op)
        if p.complex != self.complex_data:
            raise ValueError(f"lpd: built for {'complex' if self.complex_data else 'real'} measurements, "
                             f"operator '{p.op.name}' gives {'complex' if p.complex else 'real'} ones")
        m = 2 if p.complex else 1
        f = torch.zeros((y.shape[0], self.primal) + p.op.in_shape, device=y.device)
        h = torch.zeros((y.shape[0], self.dual * m) + tuple(p.op.out_shape), device=y.device)
        y_ch, two = as_channels(p.y), min(1, self.primal - 1)
        for k in range(self.iterations):
            i = 0 if self.shared else k

            def step(f: torch.Tensor, h: torch.Tensor, i: int = i) -> tuple[torch.Tensor, torch.Tensor]:
                kf = as_channels(p.K(f[:, two:two + 1]))
                if self.variant == "paper":
                    h = h + self.dual_blocks[i](block_input(h, kf, y_ch))
                else:
                    sigma = self.log_sigma[i].exp()
                    h = (h + sigma * (kf - y_ch)) / (1 + sigma)
                h1 = as_complex(h[:, :m]) if p.complex else h[:, :1]
                return f + self.primal_blocks[i](block_input(f, p.Kt(h1))), h

            f, h = run_step(step, f, h, checkpoint=self.checkpoint)
        return f[:, :1]
