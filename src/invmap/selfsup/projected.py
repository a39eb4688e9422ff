"""Projected (generalised) SURE: an unbiased estimate of the MSE in the range of Kᵀ, from y alone.

For y = K x + e with Gaussian noise e ~ N(0, Σ), Σ = diag(v) known, and a non-invertible linear
K, nothing computed from y sees the part of x in the null space of K; what can be estimated
without x is the error in the range of Kᵀ (Eldar 2009, "Generalized SURE for exponential
families"): with P = K⁺K the orthogonal projection onto range(Kᵀ) and K⁺ = Kᵀ(KKᵀ)⁺ the
pseudo-inverse,

    E‖P(x̂ − x)‖² = E[ ‖K⁺(K x̂ − y)‖² + 2 Σ_j v_j ∂[(K⁺)ᵀ x̂]_j/∂y_j − tr(K⁺ Σ K⁺ᵀ) ],

since ‖P x̂ − K⁺y‖² expands to ‖P x̂‖² − 2 x̂ᵀK⁺y + ‖K⁺y‖², E[x̂ᵀK⁺e] is the divergence term by
Stein's lemma and E‖K⁺y‖² = ‖Px‖² + tr(K⁺ Σ K⁺ᵀ). Both the divergence and the trace are taken by
one Monte-Carlo probe b ~ N(0, I) on the measured entries (unbiased, like `losses.sure`):

    Σ_j v_j ∂[(K⁺)ᵀ x̂]_j/∂y_j ≈ ⟨K⁺(v ⊙ b), x̂(y + εb) − x̂(y)⟩ / ε,   tr(K⁺ Σ K⁺ᵀ) ≈ ‖K⁺(√v ⊙ b)‖².

K⁺ r is the minimum-norm least-squares solution of K z = r, which CGLS started at z = 0 reaches
(`invmap.solvers.CGLS`; where KKᵀ is diagonal — inpainting, MRI masks — in one iteration; for CT
it must reach its tolerance within `max_iter`, else no estimate is given). For K = I the estimate is the plain SURE of the MSE.
Per image it is divided by n (pixels): an estimate of the projected MSE ‖P(x̂ − x)‖²/n, which is
a lower bound of the MSE ‖x̂ − x‖²/n: the null-space part of the error is invisible from y.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..physics import Physics
from ..solvers.cgls import CGLS
from .variance import per_image as _per_image, real as _real, variance as _variance

#: CGLS iterations and relative tolerance of K⁺ r (the pseudo-inverse by minimum-norm least squares)
PINV_ITERS = 200
PINV_TOL = 1e-6

Call = Callable[[torch.Tensor, Physics], torch.Tensor]


class NotConverged(ValueError):
    """K⁺ r by CGLS did not reach its tolerance: the estimate would not be the one derived."""


def pseudo_inverse(op, r: torch.Tensor, max_iter: int = PINV_ITERS, tol: float = PINV_TOL,
                   require: bool = False) -> torch.Tensor:
    """K⁺ r ``[B, 1, *in_shape]`` for measurements r ``[B, 1, *out_shape]``: CGLS from zero (the
    minimum-norm least-squares solution of K z = r). `require`: a `NotConverged` error when a sample
    has not reached the tolerance `tol` in `max_iter` iterations (an ill-conditioned K)."""
    solver = CGLS(op, r, max_iter=max_iter, tol=tol, record_every=max(1, max_iter))
    z = solver.solve()
    if require and not bool(solver.stopped().all()):
        raise NotConverged(f"K⁺ by CGLS did not reach its tolerance {tol:g} in {max_iter} iterations: K is "
                           "too ill-conditioned for projected SURE (K⁺ amplifies the noise past any use)")
    return z


def projected_sure(call: Call, y: torch.Tensor, physics: Physics, probes: Sequence[torch.Generator],
                   x_hat: torch.Tensor | None = None, eps: float = 0.01, max_iter: int = PINV_ITERS,
                   tol: float = PINV_TOL, require: bool = True) -> torch.Tensor:
    """Projected SURE of ‖P(x̂ − x)‖²/n per image ``[B]`` (module docstring) for x̂ = call(y, physics)
    (given as `x_hat` when already made), one Monte-Carlo probe per image from `probes`; Gaussian
    noise of known variance only (`losses.sure_available`). ε = `eps`·√v̄ per image. A K whose K⁺
    CGLS cannot reach to `tol` in `max_iter` iterations raises `NotConverged` (no number: the
    identity above holds for the exact K⁺ alone; on 128² 60-view CT a truncated K⁺ gave 2.8× the
    true projected MSE and 1000 iterations 27×, BENCHMARKS.md); `require` False computes it anyway
    (to measure that)."""
    op = physics.operator
    if x_hat is None:
        x_hat = call(y, physics)
    v, m = _variance(y, physics)
    ry = _real(y)
    dtype = torch.float64 if ry.dtype == torch.float64 else torch.float32
    b = torch.stack([torch.randn(ry.shape[1:], generator=g, dtype=dtype) for g in probes]).to(ry.device) * m
    shape = (-1, *([1] * (v.dim() - 1)))
    count = _per_image(m.float()).clamp_min(1)
    step = eps * (_per_image(v) / count).sqrt()
    step = torch.where(step > 0, step, torch.ones_like(step)).reshape(shape).to(dtype)

    def complex_like(t: torch.Tensor) -> torch.Tensor:
        return torch.view_as_complex(t.contiguous()) if y.is_complex() else t

    yb = complex_like(ry.to(dtype) + step * b)
    x_b = call(yb, physics).to(dtype)
    x0 = x_hat.to(dtype)
    kx = op(x0)
    fit = pseudo_inverse(op, kx - y.to(kx.dtype), max_iter, tol, require)
    vb = pseudo_inverse(op, complex_like(v.to(dtype) * b), max_iter, tol, require)
    sb = pseudo_inverse(op, complex_like(v.to(dtype).sqrt() * b), max_iter, tol, require)
    div = _per_image(vb * (x_b - x0)) / step.flatten()
    value = _per_image(fit * fit) + 2 * div - _per_image(sb * sb)
    return value / float(x_hat[0].numel())


__all__ = ["NotConverged", "pseudo_inverse", "projected_sure", "PINV_ITERS", "PINV_TOL"]
