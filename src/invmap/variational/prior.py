"""What the methods with a learned prior share: the denoiser, its σ schedule, the data step.

A *learned prior* is a noise-conditional denoiser D(v, σ) (`invmap.models.denoiser`), trained
once by invmap on images alone, so it serves every operator K. The methods that use it —
plug-and-play (`invmap.variational.pnp`) and the posterior samplers
(`invmap.variational.posterior`) — keep K outside the network and work with the normalised
K̃ = K/‖K‖, ỹ = y/‖K‖ (`invmap.operators.normalised.Normalised`), so their step sizes mean the
same for every operator:

- the σ schedule σ_1 > … > σ_N, geometric from ``sigma_start`` to ``sigma_end`` (DPIR);
- the data step (`invmap.solvers.pnp`, the iteration they share), the proximal map of the data term with weight 1/τ:

      prox_τ(v) = argmin_x ½‖K̃x − ỹ‖² + (1/2τ)‖x − v‖²,

  x = v + d with d from ``cg_iters`` CGLS steps on the damped problem (exact for the
  identity after one step); τ_k = τ·(σ_k/σ_1)², DPIR's α_k ∝ 1/σ_k²: the data dominate while
  the prior works at high σ, the prior's estimate while it works at low σ;
- equivariance: the images' prior does not change under the 8 rotations and flips g of the
  square, but a trained D is only approximately equivariant. Iteration k uses
  D_k(v) = g_k⁻¹ D(g_k v, σ) with g_k cycling through the group (as random transforms in
  equivariant PnP, Terris et al. 2024: free), and the last one their average (8 calls).
  Measured on 4 CT validation pairs with an early denoiser: +0.4 dB (cyclic), +0.5 dB (and
  the average).
"""

from __future__ import annotations

import math
from typing import Annotated
from pydantic import Field

from ..models.denoiser import load_prior
from ..solvers.pnp import averaged, data_prox, schedule, transformed

#: the zoo entry the methods with a learned prior use unless told otherwise
DEFAULT_DENOISER = "pretrained:denoiser"

#: the ranges the methods of the learned prior declare (pnp, diffpir, dps): denoiser steps per
#: solve and CGLS iterations per data proximal step. One step is a denoiser pass (about 0.1–0.5 s
#: for a 32×32 image on a 2-core CPU), so these bound a call to minutes, not days.
MAX_STEPS = 1000
MAX_CG_ITERS = 200
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]
CgIters = Annotated[int, Field(ge=1, le=MAX_CG_ITERS)]


def check_schedule(who: str, sigma_start: float, sigma_end: float, steps: int, step: float) -> None:
    """One-line ValueErrors for a schedule that cannot run: σ's not 0 < end ≤ start, τ ≤ 0, steps < 1."""
    if not (0 < sigma_end <= sigma_start < math.inf):
        raise ValueError(f"{who}: need 0 < sigma_end <= sigma_start, got sigma_start={sigma_start}, "
                         f"sigma_end={sigma_end}")
    if not 0 < step < math.inf:
        raise ValueError(f"{who}: step must be a finite number > 0, got {step}")
    if not 1 <= steps <= 10_000:
        raise ValueError(f"{who}: the number of iterations must lie in [1, 10000], got {steps}")


__all__ = ["DEFAULT_DENOISER", "load_prior", "schedule", "check_schedule", "data_prox", "transformed", "averaged"]
