"""Tikhonov regularisation: x̂ = argmin ½‖K x − y‖² + (λ/2)‖L x‖², L = I or L = ∇.

The minimiser solves the normal equations (KᵀK + λ LᵀL) x = Kᵀy, here by conjugate
gradients (`CG`) with per-sample scalars; with L = I this is (KᵀK + λI)⁻¹Kᵀy.
The objective history reports ½‖Kx − y‖² + (λ/2)‖Lx‖².
"""

from __future__ import annotations

from typing import Literal

import torch

from ..operators.base import LinearOperator
from ..solvers.batch import sqnorm
from ..solvers.cgls import CG
from .functionals import grad, grad_adjoint
from .methods import METHODS, Method, _lam_grid, check_iters


class Tikhonov(CG):
    """CG on (KᵀK + λ LᵀL) x = Kᵀy; ``reg`` = "identity" (L = I) or "gradient" (L = ∇)."""

    def __init__(self, op: LinearOperator, y: torch.Tensor, lam: float = 1e-2, reg: str = "identity",
                 x0: torch.Tensor | None = None, max_iter: int = 100, tol: float = 1e-6,
                 record_every: int = 10):
        if reg not in ("identity", "gradient"):
            raise ValueError(f"tikhonov: reg must be 'identity' or 'gradient', got {reg!r}")
        if lam < 0:
            raise ValueError(f"tikhonov: lam must be >= 0, got {lam}")
        self.op, self.y, self.lam, self.reg = op, y, float(lam), reg
        super().__init__(self._normal, op.adjoint(y), x0=x0, max_iter=max_iter, tol=tol,
                         record_every=record_every)

    def _ltl(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.reg == "identity" else grad_adjoint(grad(x))

    def _normal(self, x: torch.Tensor) -> torch.Tensor:
        return self.op.adjoint(self.op.forward(x)) + self.lam * self._ltl(x)

    def record(self) -> dict:
        res = sqnorm(self.op.forward(self.x) - self.y)
        lx = self.x if self.reg == "identity" else grad(self.x)
        return {"objective": 0.5 * res + 0.5 * self.lam * sqnorm(lx), "residual": res.sqrt(),
                "normal_residual": self.rr.sqrt()}


# ------------------------------------------------------------- the registered method
@METHODS.register("tikhonov")
class TikhonovMethod(Method):
    """Tikhonov: argmin ½‖Kx − y‖² + (lam/2)‖Lx‖², L = I or ∇, by CG on the normal equations."""

    tune_param = "lam"

    def __init__(self, lam: float = 1e-2, reg: Literal["identity", "gradient"] = "identity",
                 iters: int = 100, tol: float = 1e-6):
        super().__init__()
        if not lam >= 0:  # also rejects NaN
            raise ValueError(f"tikhonov: lam must be >= 0, got {lam}")
        check_iters("tikhonov", iters)
        self.lam, self.reg, self.iters, self.tol = float(lam), reg, iters, tol

    def _run(self, y, physics, x0, callback):
        s = Tikhonov(physics.operator, y, lam=self.lam, reg=self.reg, x0=x0, max_iter=self.iters, tol=self.tol)
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"lam": _lam_grid(physics, 6, -5.0, 0.0, power=2)}
