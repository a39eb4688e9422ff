"""The plug-and-play iteration: a data step on y = K x + e, then a denoiser D_σ as the prox.

With K̃ = K/‖K‖, ỹ = y/‖K‖ (`invmap.operators.normalised.Normalised`), noise levels σ_1, …, σ_N
and steps τ_1, …, τ_N, from x_0 (FBP(y) or K̃ᵀỹ, `invmap.solvers.fbp.first_iterate`):

    hqs:  v_k = prox_{τ_k}(x_{k−1}) = argmin_x ½‖K̃x − ỹ‖² + (1/2τ_k)‖x − x_{k−1}‖²
    pgd:  v_k = x_{k−1} − τ_k K̃ᵀ(K̃x_{k−1} − ỹ)
    both: x_k = D(v_k, σ_k, k)

The data proximal map is solved for the correction d = x − v by ``cg_iters`` CGLS steps on the
damped least-squares problem (exact for the identity after one step). Every step is
differentiable — in x, in τ_k (a tensor) and through D — so the same loop serves

- the ``pnp`` method (`invmap.variational.pnp`): DPIR's fixed schedule, σ_k geometric and
  τ_k = τ·(σ_k/σ_1)², around the shipped prior, without gradients;
- the ``pnp`` model kind (`invmap.models.pnp`): one tuned τ and a strength α, D_α = (1−α)·id + α·D
  around a run's denoiser;
- the ``unfolded`` kind (`invmap.models.unfolded`): σ_k, τ_k and D's weights trained end to end.

K̃ and the CGLS steps run in float32 outside any autocast; only D sees the autocast dtype.
Also here: the σ schedule of DPIR (`schedule`) and the equivariant use of a denoiser
(`transformed`, `averaged`).
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
from torch.utils.checkpoint import checkpoint as recompute

from ..operators.normalised import Normalised
from .cgls import CGLS

#: D(v, σ_k, k): the prox of iteration k (k counts from 0)
Denoise = Callable[[torch.Tensor, "torch.Tensor | float", int], torch.Tensor]
Algorithm = Literal["hqs", "pgd"]


def schedule(start: float, end: float, n: int) -> list[float]:
    """σ_1 = start > … > σ_n = end, geometric (start when n = 1)."""
    if n == 1:
        return [float(start)]
    return [float(start * (end / start) ** (k / (n - 1))) for k in range(n)]


def data_prox(p: Normalised, v: torch.Tensor, tau: torch.Tensor | float, cg_iters: int) -> torch.Tensor:
    """prox_τ(v) = argmin_x ½‖K̃x − ỹ‖² + (1/2τ)‖x − v‖², by CGLS on the correction d = x − v
    (float32, outside autocast; differentiable in v and in a tensor τ)."""
    with torch.autocast(v.device.type, enabled=False):
        v = v.float()
        d = CGLS(p.operator(), p.y - p.K(v), max_iter=cg_iters, damp=1.0 / tau, record_every=0).solve()
        return v + (d.real if d.is_complex() else d).float()


def data_step(p: Normalised, x: torch.Tensor, tau: torch.Tensor | float, algorithm: Algorithm,
              cg_iters: int) -> torch.Tensor:
    """v = prox_τ(x) (hqs) or x − τ K̃ᵀ(K̃x − ỹ) (pgd)."""
    if algorithm == "hqs":
        return data_prox(p, x, tau, cg_iters)
    return x.float() - tau * p.grad(x)


def iterate(p: Normalised, x: torch.Tensor, denoise: Denoise, sigmas: Sequence, steps: Sequence,
            algorithm: Algorithm = "hqs", cg_iters: int = 5,
            callback: Callable[[int, torch.Tensor], None] | None = None, checkpoint: bool = False) -> torch.Tensor:
    """x_N of the iteration in the module docstring, from x_0 = `x`; σ_k = ``sigmas[k]``, τ_k = ``steps[k]``.

    ``checkpoint`` (gradient checkpointing, when gradients are on): each iteration's activations are
    recomputed in the backward pass instead of stored (one iteration's memory instead of N).
    `callback(k, x_k)` after each iteration."""
    if len(sigmas) != len(steps):
        raise ValueError(f"plug-and-play: {len(sigmas)} noise levels for {len(steps)} steps")
    for k, (sigma, tau) in enumerate(zip(sigmas, steps)):

        def step(x: torch.Tensor, k: int = k, sigma=sigma, tau=tau) -> torch.Tensor:
            return denoise(data_step(p, x, tau, algorithm, cg_iters), sigma, k)

        x = recompute(step, x, use_reentrant=False) if checkpoint and torch.is_grad_enabled() else step(x)
        if callback is not None:
            callback(k + 1, x)
    return x


def transformed(prior: torch.nn.Module, v: torch.Tensor, sigma, k: int) -> torch.Tensor:
    """g_k⁻¹ D(g_k v, σ): g_k the k-th of the 8 rotations / flips of the square (k mod 8)."""
    r, flip = k % 4, (k // 4) % 2 == 1
    t = torch.rot90(v, r, (2, 3))
    out = prior.denoise(t.flip(3) if flip else t, sigma)
    return torch.rot90(out.flip(3) if flip else out, -r, (2, 3))


def averaged(prior: torch.nn.Module, v: torch.Tensor, sigma) -> torch.Tensor:
    """The mean of g⁻¹ D(g v, σ) over the 8 rotations and flips (an equivariant D, 8 calls)."""
    return torch.stack([transformed(prior, v, sigma, k) for k in range(8)]).mean(0)


__all__ = ["Denoise", "schedule", "data_prox", "data_step", "iterate", "transformed", "averaged"]
