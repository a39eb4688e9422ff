"""Gradient descent (Landweber iteration) on the data term ½‖K x − y‖².

    x_{k+1} = P_C( x_k − τ Kᵀ(K x_k − y) ),   τ = step_scale · 0.98/‖K‖²

with P_C an optional box projection (projected Landweber); 0.98 = `STEP_SAFETY`. Early stopping by the
iteration count acts as the regulariser.
"""

from __future__ import annotations

import torch

from ..operators.base import LinearOperator
from ..solvers.batch import sqnorm, zeros_image
from ..solvers.iterative import STEP_SAFETY, IterativeSolver
from .functionals import Box
from .methods import METHODS, Method, _box, check_iters


class GradientDescent(IterativeSolver):
    """Landweber iteration for min ½‖K x − y‖² (+ box), step STEP_SAFETY/‖K‖² (``step_scale`` times)."""

    def __init__(self, op: LinearOperator, y: torch.Tensor, x0: torch.Tensor | None = None,
                 max_iter: int = 100, step_scale: float = 1.0, box: Box | None = None,
                 record_every: int = 10):
        super().__init__(max_iter, record_every)
        self.op, self.y = op, y
        self.box = box if box is not None else Box()
        norm = op.norm()
        if not norm > 0:
            raise ValueError("gradient descent: operator norm is zero")
        if not 0 < step_scale < 2:
            raise ValueError(f"gradient descent: step_scale must be in (0, 2), got {step_scale}")
        self.tau = step_scale * STEP_SAFETY / norm ** 2
        self.x = zeros_image(op, y) if x0 is None else x0.clone()
        self.r = op.forward(self.x) - y  # residual K x − y

    def step(self) -> None:
        self.x = self.box.prox(self.x - self.tau * self.op.adjoint(self.r))
        self.r = self.op.forward(self.x) - self.y

    def record(self) -> dict:
        res = sqnorm(self.r)
        return {"objective": 0.5 * res, "residual": res.sqrt()}


# ------------------------------------------------------------- the registered method
@METHODS.register("gd")
class GD(Method):
    """Landweber gradient descent on ½‖Kx − y‖², regularised by the iteration count."""

    iters_param = "iters"

    def __init__(self, iters: int = 100, nonneg: bool = False, lower: float | None = None,
                 upper: float | None = None):
        super().__init__()
        check_iters("gd", iters)
        self.iters, self.nonneg, self.lower, self.upper = iters, nonneg, lower, upper

    def _run(self, y, physics, x0, callback):
        s = GradientDescent(physics.operator, y, x0=x0, max_iter=self.iters,
                            box=_box(self.lower, self.upper, self.nonneg))
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"iters": [1, 2, 5, 10, 20, 50, 100, 200]}
