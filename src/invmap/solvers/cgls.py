"""CGLS: conjugate gradients on the (damped) normal equations, batched per sample.

Solves min_x ½‖K x − y‖² + (λ/2)‖x‖², i.e. (KᵀK + λI) x = Kᵀy, without forming KᵀK:

    r = y − K x,  s = Kᵀr − λx,  p = s,  γ = ‖s‖²
    repeat:  q = K p;  α = γ / (‖q‖² + λ‖p‖²);  x += α p;  r −= α q
             s = Kᵀr − λx;  β = ‖s‖²/γ;  p = s + β p

Every scalar (α, β, γ) is per sample, so each image of a batch follows its own CG
sequence. Early stopping regularises (λ = 0): by the iteration count, or by Morozov's
discrepancy principle — sample b stops at the first k with ‖K x_k − y_b‖ ≤ τ·δ_b, δ_b the
noise norm ‖e_b‖ (σ_b·√m for white noise of std σ_b on m entries). Complex measurements
(MRI) work: r, q are complex, every norm is real.

Also here: `CG`, plain conjugate gradients for a symmetric positive (semi)definite map,
used by Tikhonov. The registered ``cgls`` method is `invmap.variational.cgls`; the learned
reconstructors use CGLS for the ``pinv`` input and the plug-and-play data steps.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..operators.base import LinearOperator
from .batch import dot, per_sample, sqnorm, zeros_image
from .iterative import IterativeSolver


def _safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / torch.where(b > 0, b, torch.ones_like(b)), torch.zeros_like(a))


class CGLS(IterativeSolver):
    """CGLS for (KᵀK + λI) x = Kᵀy with per-sample stopping (tolerance or discrepancy)."""

    def __init__(self, op: LinearOperator, y: torch.Tensor, x0: torch.Tensor | None = None,
                 max_iter: int = 50, damp: float | torch.Tensor = 0.0, tol: float = 1e-10,
                 delta: torch.Tensor | float | None = None, tau: float = 1.0, record_every: int = 1):
        super().__init__(max_iter, record_every)
        if damp < 0:
            raise ValueError(f"CGLS: damp must be >= 0, got {damp}")
        self.op, self.y, self.tol, self.tau = op, y, float(tol), float(tau)
        self.damp = damp if isinstance(damp, torch.Tensor) else float(damp)  # a tensor λ: differentiable in λ
        self.x = zeros_image(op, y) if x0 is None else x0.clone()
        b = y.shape[0]
        if delta is not None:
            delta = torch.as_tensor(delta, dtype=torch.float64).reshape(-1).expand(b).to(y.device)
        self.delta = delta
        self.r = y - op.forward(self.x)
        self.s = op.adjoint(self.r) - self.damp * self.x
        self.p = self.s.clone()
        self.gamma = sqnorm(self.s)
        self.gamma0 = self.gamma.clone()
        self.active = torch.ones(b, dtype=torch.bool, device=y.device)
        self._update_active()

    def _update_active(self) -> None:
        small = self.gamma <= (self.tol ** 2) * self.gamma0
        if self.delta is not None:
            small = small | (sqnorm(self.r).double().sqrt() <= self.tau * self.delta)
        self.active = self.active & ~small

    def stopped(self) -> torch.Tensor:
        return ~self.active

    def step(self) -> None:
        q = self.op.forward(self.p)
        denom = sqnorm(q) + self.damp * sqnorm(self.p)
        alpha = torch.where(self.active, _safe_div(self.gamma, denom), torch.zeros_like(self.gamma))
        self.x = self.x + per_sample(alpha, self.x) * self.p
        self.r = self.r - per_sample(alpha, self.r).to(self.r.real.dtype) * q
        self.s = self.op.adjoint(self.r) - self.damp * self.x
        gamma_new = sqnorm(self.s)
        beta = torch.where(self.active, _safe_div(gamma_new, self.gamma), torch.zeros_like(self.gamma))
        self.p = self.s + per_sample(beta, self.p) * self.p
        self.gamma = torch.where(self.active, gamma_new, self.gamma)
        self._update_active()

    def record(self) -> dict:
        res = sqnorm(self.r)
        return {"objective": 0.5 * res + 0.5 * self.damp * sqnorm(self.x), "residual": res.sqrt(),
                "normal_residual": self.gamma.sqrt()}


class CG(IterativeSolver):
    """Conjugate gradients for A x = b, A symmetric positive definite, scalars per sample."""

    def __init__(self, apply_a: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                 x0: torch.Tensor | None = None, max_iter: int = 100, tol: float = 1e-6,
                 record_every: int = 1):
        super().__init__(max_iter, record_every)
        self.apply_a, self.b, self.tol = apply_a, b, float(tol)
        self.x = torch.zeros_like(b) if x0 is None else x0.clone()
        self.r = b - apply_a(self.x) if x0 is not None else b.clone()
        self.p = self.r.clone()
        self.rr = sqnorm(self.r)
        self.bb = sqnorm(b)
        self.active = self.rr > (self.tol ** 2) * self.bb

    def stopped(self) -> torch.Tensor:
        return ~self.active

    def step(self) -> None:
        ap = self.apply_a(self.p)
        alpha = torch.where(self.active, _safe_div(self.rr, dot(self.p, ap)), torch.zeros_like(self.rr))
        self.x = self.x + per_sample(alpha, self.x) * self.p
        self.r = self.r - per_sample(alpha, self.r) * ap
        rr_new = sqnorm(self.r)
        beta = torch.where(self.active, _safe_div(rr_new, self.rr), torch.zeros_like(self.rr))
        self.p = self.r + per_sample(beta, self.p) * self.p
        self.rr = torch.where(self.active, rr_new, self.rr)
        self.active = self.active & (self.rr > (self.tol ** 2) * self.bb)

    def record(self) -> dict:
        return {"residual": self.rr.sqrt()}


__all__ = ["CGLS", "CG"]
