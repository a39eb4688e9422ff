"""Posterior sampling with the learned prior: ``diffpir`` and ``dps``, x̂ = the posterior mean.

The noise-conditional denoiser D(v, σ) (`invmap.variational.prior`) is an MMSE denoiser, so
by Tweedie's formula it gives the score of the prior smoothed at level σ,
∇ log p_σ(v) = (D(v, σ) − v)/σ², and a variance-exploding diffusion x_σ = x + σ n can be run
backwards with it. Both samplers here run σ_1 > … > σ_N (geometric from ``sigma_start`` to
``sigma_end``), warm-started at x_1 = x_0 + σ_1 n with x_0 = FBP(y) where K has one, else K̃ᵀỹ
(the prior is trained up to σ = 0.3, so the chain starts from the data rather than from pure
noise, as SDEdit does), and per step:

    x̂⁰   = D(x_k, σ_k)                                      the prior's estimate of x
    diffpir: x̂⁰ ← prox_{τ_k}(x̂⁰) = argmin ½‖K̃x − ỹ‖² + (1/2τ_k)‖x − x̂⁰‖²,  τ_k = τ(σ_k/σ_1)²
    dps:     g  = ∇_{x_k} ‖K̃ x̂⁰(x_k) − ỹ‖   (through the network)
    ε̂    = (x_k − x̂⁰)/σ_k
    x_{k+1} = x̂⁰ + σ_{k+1}(√(1 − ζ) ε̂ + √ζ n)   [dps: − τ g]

returning the final x̂⁰ (with ``equivariant``, D at step k is g_k⁻¹ D(g_k ·, σ_k), g_k cycling
through the rotations and flips; `invmap.variational.prior`). Each call draws ``samples`` chains (seeded by ``seed``, so a method
gives the same samples for the same y) and returns their mean; `sample` also returns the
per-pixel standard deviation s and the samples — an uncertainty map, whose agreement with the
true error |x̂ − x| the evaluation records (Spearman correlation, coverage of x̂ ± 2s).
Zhu et al., "Denoising diffusion models for plug-and-play image restoration" (DiffPIR),
CVPRW 2023; Chung et al., "Diffusion posterior sampling for general noisy inverse problems"
(DPS), ICLR 2023.
"""

from __future__ import annotations

import math
from typing import Annotated, Callable, Literal, NamedTuple

import torch
from pydantic import Field

from ..operators.normalised import Normalised
from ..solvers.fbp import first_iterate
from .methods import METHODS, Method, check_iters
from .prior import MAX_CG_ITERS, MAX_STEPS, DEFAULT_DENOISER, CgIters, Steps, check_schedule, data_prox, load_prior, schedule, transformed

#: the most chains one call may draw (each costs a whole sampler run: about ``steps`` denoiser passes)
MAX_SAMPLES = 100
Samples = Annotated[int, Field(ge=1, le=MAX_SAMPLES)]


class Posterior(NamedTuple):
    """Samples of x | y: their mean, per-pixel standard deviation and the samples ``[S, B, 1, H, W]``."""

    mean: torch.Tensor
    std: torch.Tensor
    samples: torch.Tensor


class _Sampler(Method):
    """The loop shared by the samplers; `_step` is each one's data-consistency update."""

    learned = True
    tune_param = "step"
    #: `sample` returns draws of x | y and their spread (an uncertainty map)
    posterior = True

    def __init__(self, denoiser: str = DEFAULT_DENOISER, steps: Steps = 30, sigma_start: float = 0.1,
                 sigma_end: float = 0.01, step: float = 300.0, zeta: float = 0.3, samples: Samples = 4,
                 seed: int = 0, cg_iters: CgIters = 10, init: Literal["auto", "zero", "adjoint", "fbp"] = "auto",
                 equivariant: bool = True):
        super().__init__()
        who = self.name if self.name != "method" else type(self).__name__.lower()
        check_iters(who, steps, "steps", low=1, high=MAX_STEPS)
        check_iters(who, cg_iters, "cg_iters", low=1, high=MAX_CG_ITERS)
        check_schedule(who, sigma_start, sigma_end, steps, step)
        if not 0 <= zeta <= 1:
            raise ValueError(f"{who}: zeta must lie in [0, 1], got {zeta}")
        if not 1 <= samples <= MAX_SAMPLES:
            raise ValueError(f"{who}: samples must lie in [1, {MAX_SAMPLES}], got {samples}")
        self.denoiser, self.steps, self.sigma_start, self.sigma_end = denoiser, steps, float(sigma_start), float(sigma_end)
        self.step, self.zeta, self.samples, self.seed, self.cg_iters, self.init = \
            float(step), float(zeta), samples, seed, cg_iters, init
        self.equivariant = bool(equivariant)

    def _run(self, y, physics, x0, callback):
        return self.sample(y, physics, self.samples, x0=x0).mean

    @torch.no_grad()
    def sample(self, y: torch.Tensor, physics, n: int | None = None, x0: torch.Tensor | None = None,
               progress: Callable[[str], None] | None = None) -> Posterior:
        """`n` (default ``samples``) chains for each measurement in y: mean, std (0 for one chain), samples;
        `progress` hears of each chain drawn."""
        n = self.samples if n is None else int(n)
        if not 1 <= n <= MAX_SAMPLES:
            raise ValueError(f"{self.name}: the number of samples must lie in [1, {MAX_SAMPLES}], got {n}")
        prior = load_prior(self.denoiser)
        prior.check_sigma(torch.tensor([self.sigma_start, self.sigma_end]))
        p = Normalised(physics, y, self.name)
        start = first_iterate(p, self.init, y.shape[0], y) if x0 is None else x0.float()
        g = torch.Generator(device=start.device).manual_seed(int(self.seed))
        chains = []
        for i in range(n):
            chains.append(self._chain(prior, p, start, g))
            if progress is not None:
                progress(f"{self.name}: chain {i + 1} of {n} drawn ({self.steps} steps each)")
        draws = torch.stack(chains)
        std = draws.std(0, unbiased=True) if n > 1 else torch.zeros_like(draws[0])
        return Posterior(draws.mean(0), std, draws)

    def _chain(self, prior, p: Normalised, start: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        sigmas = schedule(self.sigma_start, self.sigma_end, self.steps)
        x = start + sigmas[0] * torch.randn(start.shape, generator=g, device=start.device)
        for k, s in enumerate(sigmas):
            x0, push = self._step(self._prior(prior, k), p, x, s, s / sigmas[0])
            if k == len(sigmas) - 1:
                return x0
            eps = (x - x0) / s
            noise = torch.randn(x.shape, generator=g, device=x.device)
            x = x0 + sigmas[k + 1] * (math.sqrt(1 - self.zeta) * eps + math.sqrt(self.zeta) * noise) - push
        return x  # pragma: no cover - the loop returns

    def _prior(self, prior, k: int):
        """What step k denoises with: D, or g_k⁻¹ D(g_k ·) (``equivariant``)."""
        if not self.equivariant:
            return prior
        return _Transformed(prior, k)

    def _step(self, prior, p: Normalised, x: torch.Tensor, sigma: float, rel: float):
        """(x̂⁰, a correction subtracted from the next state)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def default_grid(self, physics, y):
        return {"sigma_start": [0.1, 0.2], "step": self._steps}


class _Transformed:
    """D_k(v, σ) = g_k⁻¹ D(g_k v, σ) as an object with D's `denoise`."""

    def __init__(self, prior, k: int):
        self.prior, self.k = prior, k

    def denoise(self, v: torch.Tensor, sigma: float) -> torch.Tensor:
        return transformed(self.prior, v, sigma, self.k)


@METHODS.register("diffpir")
class DiffPIR(_Sampler):
    """Posterior mean of DiffPIR chains: denoiser at decreasing σ, a data proximal step, re-noising."""

    _steps = [30.0, 300.0, 3000.0]

    @torch.no_grad()
    def _step(self, prior, p, x, sigma, rel):
        return data_prox(p, prior.denoise(x, sigma), self.step * rel * rel, self.cg_iters), 0.0


@METHODS.register("dps")
class DPS(_Sampler):
    """Posterior mean of DPS chains: the data gradient taken through the denoiser (Tweedie)."""

    _steps = [0.1, 0.3, 1.0]

    def __init__(self, denoiser: str = DEFAULT_DENOISER, steps: Steps = 30, sigma_start: float = 0.1,
                 sigma_end: float = 0.01, step: float = 0.3, zeta: float = 0.3, samples: Samples = 4,
                 seed: int = 0, cg_iters: CgIters = 10, init: Literal["auto", "zero", "adjoint", "fbp"] = "auto",
                 equivariant: bool = True):
        super().__init__(denoiser, steps, sigma_start, sigma_end, step, zeta, samples, seed, cg_iters, init,
                         equivariant)

    def _step(self, prior, p, x, sigma, rel):
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            x0 = prior.denoise(xg, sigma)
            r = p.K(x0) - p.y
            r = torch.view_as_real(r) if r.is_complex() else r
            norms = r.flatten(1).norm(dim=1)  # ‖K̃x̂⁰ − ỹ‖ per image; their sum has each image's own gradient
            (grad,) = torch.autograd.grad(norms.sum(), xg)
        return x0.detach(), self.step * grad


__all__ = ["DiffPIR", "DPS", "Posterior", "MAX_SAMPLES"]
