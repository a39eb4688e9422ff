"""``pnp``: plug-and-play with the learned prior at a decreasing noise level (DPIR).

With the noise-conditional denoiser D(v, σ) (`invmap.variational.prior`, the zoo entry
``pretrained:denoiser`` by default), K̃ = K/‖K‖, ỹ = y/‖K‖ and σ_1 > … > σ_N geometric from
``sigma_start`` to ``sigma_end``:

    hqs:  v_k = prox_{τ_k}(x_{k−1}) = argmin_x ½‖K̃x − ỹ‖² + (1/2τ_k)‖x − x_{k−1}‖²,
          τ_k = τ·(σ_k/σ_1)²,   x_k = D(v_k, σ_k)
    pgd:  x_k = D(x_{k−1} − τ K̃ᵀ(K̃x_{k−1} − ỹ), σ_k)            (τ ≤ 2 for convergence of the
                                                                    gradient step)

from x_0 = FBP(y) where K has one, else K̃ᵀỹ; with ``equivariant`` (default) D at iteration k is
g_k⁻¹ D(g_k ·, σ_k), g_k cycling through the rotations and flips, and the last one their average
(`invmap.variational.prior`). The iteration is the one the ``pnp`` and ``unfolded`` model kinds run
(`invmap.solvers.pnp`). Nothing is trained for a task: the schedule's
endpoints and τ are tuned on validation pairs like TV's λ (`default_grid`, `invmap.variational.tune`),
so the same prior serves CT, deblurring, MRI, super-resolution and inpainting. Zhang et al.,
"Plug-and-play image restoration with deep denoiser prior" (DPIR), TPAMI 2021.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..operators.normalised import Normalised
from ..solvers.fbp import first_iterate
from .methods import METHODS, Method, check_iters
from ..solvers.pnp import averaged, iterate, schedule, transformed
from .prior import MAX_CG_ITERS, MAX_STEPS, DEFAULT_DENOISER, CgIters, Steps, check_schedule, load_prior


@METHODS.register("pnp")
class PnP(Method):
    """Plug-and-play HQS / PGD with the learned prior D(v, σ) at decreasing σ (DPIR); σ's and τ tuned."""

    learned = True  # its prior was learned from images
    tune_param = "step"

    def __init__(self, denoiser: str = DEFAULT_DENOISER, algorithm: Literal["hqs", "pgd"] = "hqs",
                 iters: Steps = 8, sigma_start: float = 0.1, sigma_end: float = 0.02, step: float = 300.0,
                 cg_iters: CgIters = 10, init: Literal["auto", "zero", "adjoint", "fbp"] = "auto",
                 equivariant: bool = True):
        super().__init__()
        check_iters("pnp", iters, low=1, high=MAX_STEPS)
        check_iters("pnp", cg_iters, "cg_iters", low=1, high=MAX_CG_ITERS)
        check_schedule("pnp", sigma_start, sigma_end, iters, step)
        self.denoiser, self.algorithm, self.iters, self.cg_iters, self.init = denoiser, algorithm, iters, cg_iters, init
        self.sigma_start, self.sigma_end, self.step = float(sigma_start), float(sigma_end), float(step)
        self.equivariant = bool(equivariant)

    def _run(self, y, physics, x0, callback):
        prior = load_prior(self.denoiser)
        prior.check_sigma(torch.tensor([self.sigma_start, self.sigma_end]))
        p = Normalised(physics, y, "pnp")
        x = first_iterate(p, self.init, y.shape[0], y) if x0 is None else x0.float()
        sigmas = schedule(self.sigma_start, self.sigma_end, self.iters)
        if self.algorithm == "hqs":
            steps = [self.step * (s / sigmas[0]) ** 2 for s in sigmas]
        else:
            steps = [min(self.step, 1.99)] * len(sigmas)

        def denoise(v: torch.Tensor, s: float, k: int) -> torch.Tensor:
            if not self.equivariant:
                return prior.denoise(v, s)
            # cycling through the rotations / flips, their average at the end
            return averaged(prior, v, s) if k == len(sigmas) - 1 else transformed(prior, v, s, k)

        with torch.no_grad():
            return iterate(p, x, denoise, sigmas, steps, self.algorithm, self.cg_iters, callback)

    def default_grid(self, physics, y):
        """σ_1 ∈ {0.05, 0.1, 0.2}, σ_N ∈ {0.01, 0.02, 0.04}, τ on a log scale (refined by `tune`).

        τ is large because K̃ = K/‖K‖: most of K̃'s singular values are far below 1 (measured best
        τ_1 on the default tasks: 100 for deblurring, 1000 for MRI and super-resolution, 3000–30000
        for sparse-view CT)."""
        steps = [30.0, 300.0, 3000.0] if self.algorithm == "hqs" else [0.5, 1.0, 1.9]
        return {"sigma_start": [0.05, 0.1, 0.2], "sigma_end": [0.01, 0.02, 0.04], "step": steps}


__all__ = ["PnP"]
