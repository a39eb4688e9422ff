"""FISTA for a smooth data term plus a proximable regulariser.

    x̂ = argmin_x f(x) + g(x),   f(x) = ½‖K x − y‖² + h(∇x),   g proximable,

h an optional smooth function of the gradient (Huber-TV), g e.g. λ‖x‖₁, λTV (prox by inner
dual iterations, `functionals.TV`) or a box indicator. With L = (‖K‖² + 8·Lip(h))/0.98
(0.98 = `STEP_SAFETY`: ‖K‖ is an estimate), t₁ = 1, z₁ = x₀ (Beck & Teboulle 2009):

    x_k = prox_{g/L}(z_k − ∇f(z_k)/L)
    t_{k+1} = (1 + √(1 + 4 t_k²))/2
    z_{k+1} = x_k + ((t_k − 1)/t_{k+1})(x_k − x_{k−1})

The recorded objective is f(x_k) + g(x_k) per sample.
"""

from __future__ import annotations

import math

import torch

from ..operators.base import LinearOperator
from ..solvers.batch import sqnorm, zeros_image
from ..solvers.iterative import STEP_SAFETY, IterativeSolver
from .functionals import L1, TV, Box, Functional, Huber, Zero, grad, grad_adjoint
from .methods import METHODS, Method, _box, _lam_grid, check_iters


class FISTA(IterativeSolver):
    """FISTA for ½‖Kx − y‖² + h(∇x) + g(x); ``g`` proximable, ``h`` smooth (or None)."""

    def __init__(self, op: LinearOperator, y: torch.Tensor, g: Functional | None = None,
                 h_grad: Functional | None = None, x0: torch.Tensor | None = None,
                 max_iter: int = 100, record_every: int = 10):
        super().__init__(max_iter, record_every)
        self.op, self.y = op, y
        self.g = g if g is not None else Zero()
        self.h = h_grad
        lip = op.norm() ** 2 + (8.0 * self.h.lipschitz if self.h is not None else 0.0)
        if not lip > 0:
            raise ValueError("fista: the smooth part has zero Lipschitz constant")
        self.step_size = STEP_SAFETY / lip
        self.x = zeros_image(op, y) if x0 is None else x0.clone()
        self.z = self.x.clone()
        self.t = 1.0

    def smooth_grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇f(x) = Kᵀ(Kx − y) + ∇ᵀ∇h(∇x)."""
        g = self.op.adjoint(self.op.forward(x) - self.y)
        if self.h is not None:
            g = g + grad_adjoint(self.h.grad(grad(x)))
        return g

    def step(self) -> None:
        x_new = self.g.prox(self.z - self.step_size * self.smooth_grad(self.z), self.step_size)
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * self.t * self.t)) / 2.0
        self.z = x_new + ((self.t - 1.0) / t_new) * (x_new - self.x)
        self.x, self.t = x_new, t_new

    def record(self) -> dict:
        res = sqnorm(self.op.forward(self.x) - self.y)
        obj = 0.5 * res + self.g(self.x)
        if self.h is not None:
            obj = obj + self.h(grad(self.x))
        return {"objective": obj, "residual": res.sqrt()}


# ------------------------------------------------------------- the registered method

@METHODS.register("fista-l1")
class FistaL1(Method):
    """Sparsity: argmin ½‖Kx − y‖² + lam‖x‖₁ (+ box) by FISTA."""

    tune_param = "lam"

    def __init__(self, lam: float = 1e-2, iters: int = 100, nonneg: bool = False,
                 lower: float | None = None, upper: float | None = None):
        super().__init__()
        if not lam >= 0:  # also rejects NaN
            raise ValueError(f"fista-l1: lam must be >= 0, got {lam}")
        check_iters("fista-l1", iters)
        self.lam, self.iters, self.nonneg, self.lower, self.upper = float(lam), iters, nonneg, lower, upper

    def _run(self, y, physics, x0, callback):
        box = _box(self.lower, self.upper, self.nonneg)
        l1 = L1(self.lam)
        g = l1 if not box.active else _BoxedL1(l1, box)
        s = FISTA(physics.operator, y, g=g, x0=x0, max_iter=self.iters)
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"lam": _lam_grid(physics, 6, -4.0, 0.0, power=1)}


class _BoxedL1(L1):
    """λ‖x‖₁ + ι_Box: the prox is the clamp of the soft-threshold (separable, 1-D convex)."""

    def __init__(self, l1: L1, box: Box):
        super().__init__(l1.weight)
        self.box = box

    def __call__(self, x):
        return super().__call__(x) + self.box(x)

    def prox(self, v, t=1.0):
        return self.box.prox(super().prox(v, t))


@METHODS.register("fista-tv")
class FistaTV(Method):
    """argmin ½‖Kx − y‖² + lam·TV(x) by FISTA: inner TV prox (huber = 0) or Huber-TV (huber > 0)."""

    tune_param = "lam"

    def __init__(self, lam: float = 1e-2, iters: int = 100, huber: float = 0.0, inner_iters: int = 10,
                 nonneg: bool = False, lower: float | None = None, upper: float | None = None):
        super().__init__()
        if not lam >= 0:  # also rejects NaN
            raise ValueError(f"fista-tv: lam must be >= 0, got {lam}")
        check_iters("fista-tv", iters)
        if huber < 0:
            raise ValueError(f"fista-tv: huber must be >= 0, got {huber}")
        check_iters("fista-tv", inner_iters, "inner_iters", low=1)
        self.lam, self.iters, self.huber, self.inner_iters = float(lam), iters, float(huber), inner_iters
        self.nonneg, self.lower, self.upper = nonneg, lower, upper

    def _run(self, y, physics, x0, callback):
        box = _box(self.lower, self.upper, self.nonneg)
        if self.huber > 0:
            s = FISTA(physics.operator, y, g=box, h_grad=Huber(self.lam, self.huber), x0=x0, max_iter=self.iters)
        else:
            g = TV(self.lam, iters=self.inner_iters, box=box)
            s = FISTA(physics.operator, y, g=g, x0=x0, max_iter=self.iters)
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"lam": _lam_grid(physics, 6, -4.0, 0.0, power=1)}
