"""A reconstructor written outside invmap, for examples/10_your_own_method.py.

Projected Landweber iteration for y = K x + e:

    x_{k+1} = max(0, x_k + τ Kᵀ(y − K x_k)),   τ = 1/‖K‖²,   x_0 = 0,

stopped after `iters` steps (the iteration count is the regularisation). Anything called as
``x̂ = method(y, physics)`` is an invmap method; ``learned = False`` says it is a classical
baseline (a trained map would say True).
"""

from __future__ import annotations

from typing import Any

import torch


class Landweber:
    """Projected Landweber, `iters` steps of size 1/‖K‖² (a classical method: ``learned = False``)."""

    learned = False

    def __init__(self, iters: int = 30):
        self.iters = int(iters)

    @torch.no_grad()
    def __call__(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        K = physics.operator
        tau = 1.0 / float(K.norm()) ** 2
        x = torch.zeros((y.shape[0], 1) + tuple(K.in_shape), dtype=torch.float32, device=y.device)
        for _ in range(self.iters):
            r = K.adjoint(y - K(x))
            x = (x + tau * (r.real if r.is_complex() else r)).clamp_min(0)
        return x
