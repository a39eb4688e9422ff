"""Total-variation reconstruction by Chambolle–Pock (PDHG).

    x̂ = argmin_x ½‖K x − y‖² + λ TV(x) + ι_C(x) [+ (μ/2)‖x − a‖²],   TV(x) = Σ_ij ‖(∇x)_ij‖₂,

C an optional box (e.g. x ≥ 0). Written as min_x F(A x) + G(x) with the stacked operator
A = [K; s∇] (s = ‖K‖/√8 balances the two blocks), F(u, v) = ½‖u − y‖² + (λ/s)‖v‖_{2,1},
G = ι_C. One iteration (Chambolle & Pock 2011, θ = 1):

    q ← (q + σ(K x̄ − y)) / (1 + σ)                 prox of σF₁*, F₁ = ½‖· − y‖²
    p ← P_{‖·‖ ≤ λ/s}(p + σ s ∇x̄)                   prox of σF₂* (pixelwise projection)
    x⁺ ← P_C(x − τ(Kᵀq + s ∇ᵀp));   x̄ ← 2x⁺ − x;  x ← x⁺

The optional anchor term (μ/2)‖x − a‖² (μ ≥ 0 per sample; the safe mode's refinement of a
learned x̂ = a) joins G = ι_C + (μ/2)‖· − a‖², whose prox is the clamp of the averaged point,
x⁺ = P_C((v + τμ a) / (1 + τμ)) (both separable), and its conjugate enters the dual below.

with τσ‖A‖² = 0.98 < 1 (`STEP_SAFETY`), ‖A‖ estimated by Lanczos on KᵀK + s²∇ᵀ∇
(`top_eigenvalue`, cached on the operator). The primal–dual gap

    gap = P(x) − D(q, p),  P(x) = ½‖Kx − y‖² + λTV(x),
    D(q, p) = −½‖q‖² − Re<q, y> − σ_B(−(Kᵀq + s∇ᵀp)),

is the partial gap on B = C ∩ [−R, R] (R = max(1, 2 max|x|) unless ``gap_radius`` is given):
a certificate of optimality whenever the minimiser lies in B. It is recorded per sample
every ``record_every`` steps; ``tol`` stops when every sample's relative gap
gap/max(P, ε) is below it. Complex measurements (MRI) work: q is complex, norms are real.
"""

from __future__ import annotations

import math

import torch

from ..operators.base import LinearOperator, top_eigenvalue
from ..solvers.batch import dot, sqnorm, zeros_image
from ..solvers.iterative import STEP_SAFETY, IterativeSolver
from .functionals import Box, grad, grad_adjoint, pixel_norm, tv
from .methods import METHODS, Method, _box, _lam_grid, check_iters


def stacked_norm(op: LinearOperator, s: float) -> float:
    """‖[K; s∇]‖ = sqrt(λ_max(KᵀK + s²∇ᵀ∇)), from above (`top_eigenvalue`; once per K: `remembered`)."""
    return op.remembered(("stacked_norm", round(float(s), 12)), lambda: math.sqrt(top_eigenvalue(
        lambda v: op._adjoint(op._forward(v)) + s * s * grad_adjoint(grad(v)), (1, 1) + op.in_shape)))


class ChambollePockTV(IterativeSolver):
    """PDHG for ½‖Kx − y‖² + λTV(x) + ι_C(x); records objective, residual and primal–dual gap."""

    def __init__(self, op: LinearOperator, y: torch.Tensor, lam: float = 0.01, box: Box | None = None,
                 x0: torch.Tensor | None = None, max_iter: int = 200, tol: float = 0.0,
                 ratio: float = 1.0, gap_radius: float | None = None, record_every: int = 10,
                 anchor: torch.Tensor | None = None, mu: torch.Tensor | float = 0.0):
        super().__init__(max_iter, record_every)
        if lam < 0:
            raise ValueError(f"tv: lam must be >= 0, got {lam}")
        self.op, self.y, self.lam = op, y, float(lam)
        self.box = box if box is not None else Box()
        self.tol, self.gap_radius = float(tol), gap_radius
        knorm = op.norm()
        self.s = knorm / math.sqrt(8.0) if knorm > 0 else 1.0
        a_norm = stacked_norm(op, self.s)
        self.sigma = math.sqrt(STEP_SAFETY) * ratio / a_norm
        self.tau = math.sqrt(STEP_SAFETY) / (ratio * a_norm)
        self.x = zeros_image(op, y) if x0 is None else self.box.prox(x0.clone())
        self.anchor = anchor
        mu_t = torch.as_tensor(mu, dtype=self.x.dtype, device=self.x.device).reshape(-1)
        if anchor is not None and bool((mu_t < 0).any()):
            raise ValueError("tv: the anchor weight mu must be >= 0")
        self.mu = mu_t.expand(y.shape[0]).reshape((-1,) + (1,) * (self.x.dim() - 1)) if anchor is not None else None
        self.xbar = self.x.clone()
        self.q = torch.zeros_like(y)
        self.p = grad(self.x) * 0
        self._gap = torch.full((y.shape[0],), math.inf, dtype=torch.float64)

    def step(self) -> None:
        s, sig = self.s, self.sigma
        self.q = (self.q + sig * (self.op.forward(self.xbar) - self.y)) / (1.0 + sig)
        p = self.p + (sig * s) * grad(self.xbar)
        radius = self.lam / s
        nrm = pixel_norm(p, -3, keepdim=True)
        self.p = p / torch.clamp(nrm / radius, min=1.0) if radius > 0 else torch.zeros_like(p)
        v = self.x - self.tau * (self.op.adjoint(self.q) + s * grad_adjoint(self.p))
        if self.anchor is not None:
            v = (v + (self.tau * self.mu) * self.anchor) / (1.0 + self.tau * self.mu)
        x_new = self.box.prox(v)
        self.xbar = 2.0 * x_new - self.x
        self.x = x_new

    def primal(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(P(x), ‖Kx − y‖) per sample."""
        res = sqnorm(self.op.forward(self.x) - self.y)
        prim = 0.5 * res + self.lam * tv(self.x)
        if self.anchor is not None:
            prim = prim + 0.5 * self.mu.reshape(-1) * sqnorm(self.x - self.anchor)
        return prim, res.sqrt()

    def dual(self) -> torch.Tensor:
        """D(q, p) on the box B = C ∩ [−R, R]."""
        r = self.gap_radius if self.gap_radius is not None else max(1.0, 2.0 * float(self.x.abs().max()))
        z = -(self.op.adjoint(self.q) + self.s * grad_adjoint(self.p))
        return -0.5 * sqnorm(self.q) - dot(self.q, self.y) - self._g_conjugate(z, r)

    def _g_conjugate(self, z: torch.Tensor, r: float) -> torch.Tensor:
        """G*(z) on B: σ_B(z) without anchor; sup_{x ∈ B} <z, x> − (μ/2)‖x − a‖² with one
        (attained at x = P_B(a + z/μ), per sample where μ > 0)."""
        support = self.box.support(z, r)
        if self.anchor is None:
            return support
        lo = -r if self.box.lower is None else max(self.box.lower, -r)
        hi = r if self.box.upper is None else min(self.box.upper, r)
        mu = self.mu.clamp_min(1e-30)
        xs = torch.clamp(self.anchor + z / mu, lo, hi)
        anchored = dot(z, xs) - 0.5 * self.mu.reshape(-1) * sqnorm(xs - self.anchor)
        return torch.where(self.mu.reshape(-1) > 0, anchored, support)

    def record(self) -> dict:
        prim, res = self.primal()
        gap = prim - self.dual()
        self._gap = (gap / torch.clamp(prim.abs(), min=1e-12)).double().cpu()
        return {"objective": prim, "residual": res, "gap": gap}

    def stopped(self) -> torch.Tensor:
        if self.tol <= 0:
            return torch.zeros(self.x.shape[0], dtype=torch.bool)
        return self._gap <= self.tol


# ------------------------------------------------------------- the registered method

@METHODS.register("tv")
class TVMethod(Method):
    """Total variation: argmin ½‖Kx − y‖² + lam·TV(x) (+ box) by Chambolle–Pock."""

    tune_param = "lam"

    def __init__(self, lam: float = 1e-2, iters: int = 200, nonneg: bool = False,
                 lower: float | None = None, upper: float | None = None, tol: float = 0.0,
                 ratio: float = 1.0):
        super().__init__()
        if not lam >= 0:  # also rejects NaN
            raise ValueError(f"tv: lam must be >= 0, got {lam}")
        check_iters("tv", iters)
        if not 0 < ratio < math.inf:
            raise ValueError(f"tv: ratio must be a finite number > 0, got {ratio}")
        self.lam, self.iters, self.nonneg, self.lower, self.upper = float(lam), iters, nonneg, lower, upper
        self.tol, self.ratio = tol, ratio

    def _run(self, y, physics, x0, callback):
        s = ChambollePockTV(physics.operator, y, lam=self.lam, box=_box(self.lower, self.upper, self.nonneg),
                            x0=x0, max_iter=self.iters, tol=self.tol, ratio=self.ratio)
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"lam": _lam_grid(physics, 6, -4.0, 0.0, power=1)}
