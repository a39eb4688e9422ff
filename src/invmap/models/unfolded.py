"""Deep unfolding of plug-and-play: DPIR's iteration with the shipped prior, trained end to end.

With K̃ = K/‖K‖, ỹ = y/‖K‖ (`invmap.models.iterative`) and the noise-conditional denoiser
D_θ(v, σ) of a zoo entry or run (`invmap.models.denoiser`, ``prior: pretrained:denoiser``),
``iterations`` = N steps of the plug-and-play iteration (`invmap.solvers.pnp`) from x_0 = FBP(y)
(or K̃ᵀỹ):

    hqs:  v_k = argmin_x ½‖K̃x − ỹ‖² + (1/2τ_k)‖x − x_{k−1}‖²     (``cg_iters`` CGLS steps)
    pgd:  v_k = x_{k−1} − τ_k K̃ᵀ(K̃x_{k−1} − ỹ)
    both: x_k = g_k⁻¹ D_θk(g_k v_k, σ_k),   x̂ = x_N

(g_k cycling through the rotations and flips of the square with ``equivariant``, else the
identity). Learned end to end on a task: σ_k = σ_max·sigmoid(a_k) ∈ (0, σ_max) — inside the prior's
trained range by construction — and τ_k = exp(b_k) > 0, both per iteration, and the denoiser's
weights θ, shared by every iteration (``shared``, the default) or one copy per iteration.
Training starts where plug-and-play is: θ from the prior, (σ_k, τ_k) from DPIR's schedule
σ_k geometric from ``sigma_start`` to ``sigma_end``, τ_k = τ·(σ_k/σ_1)² (hqs), whose endpoints and τ
`prepare` tunes on validation pairs (``tune``) as the ``pnp`` method tunes them — so the untrained
model is tuned PnP with N steps (Zhang et al., DPIR 2021; USRNet 2020, the unfolded form).

K and Kᵀ are the measurement's own at every call (a changed geometry changes the computation);
they and the CGLS steps run in float32 under autocast, D in the autocast dtype. ``checkpoint``
(default) recomputes each iteration's activations in the backward pass: the memory of one
denoiser pass instead of N. ``prior: null`` builds an untrained denoiser of ``depth``,
``base_channels`` and ``sigma_max`` (small tests; training from zero). A prior that is not a
noise-conditional denoiser of one image channel, a schedule outside its σ range, or an
architecture other than the prior's: a one-line ``ValueError`` when the model is built (config check).
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Annotated, Any, Literal

import annotated_types
import torch
from torch import nn

from .. import metrics
from ..operators.base import operator_of
from ..operators.normalised import Normalised
from ..solvers.fbp import first_iterate
from ..solvers.pnp import iterate, schedule, transformed
from .denoiser import NoiseConditionalDenoiser, load_prior
from .iterative import Count
from .reconstructor import Reconstructor
from .registry import KINDS, build_kind

#: the iterations a model unrolls: 1 … 64 (each one denoiser pass kept for backpropagation)
Iterations = Annotated[int, annotated_types.Ge(1), annotated_types.Le(64)]
Positive = Annotated[float, annotated_types.Gt(0), annotated_types.Lt(math.inf)]
#: the schedules `prepare` tries (σ_1, σ_N, τ): DPIR's defaults for the pnp method (`invmap.variational.pnp`)
GRID = {"sigma_start": (0.05, 0.1, 0.2), "sigma_end": (0.01, 0.02), "hqs": (300.0, 3000.0, 30000.0),
        "pgd": (0.5, 1.0, 1.9)}
#: validation pairs the schedule is tuned on
TUNE_PAIRS = 8


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1 - 1e-4)
    return torch.log(p) - torch.log1p(-p)


class UnfoldedPnP(Reconstructor):
    """Unfolded HQS / PGD around a noise-conditional denoiser: σ_k, τ_k and the denoiser trained (module docstring)."""

    kind = "unfolded"

    def __init__(self, denoiser: NoiseConditionalDenoiser, iterations: int = 6, algorithm: Literal["hqs", "pgd"] = "hqs",
                 sigma_start: float = 0.1, sigma_end: float = 0.02, step: float = 3000.0, cg_iters: int = 5,
                 shared: bool = True, equivariant: bool = True, tune: bool = True, checkpoint: bool = True,
                 init: Literal["auto", "zero", "adjoint", "fbp"] = "auto"):
        super().__init__()
        self.sigma_max = float(denoiser.sigma_max)
        if not 0 < sigma_end <= sigma_start <= self.sigma_max:
            raise ValueError(f"unfolded: need 0 < sigma_end <= sigma_start <= the prior's sigma_max "
                             f"{self.sigma_max:g}, got sigma_start={sigma_start:g}, sigma_end={sigma_end:g}")
        self.iterations, self.algorithm, self.cg_iters, self.init = int(iterations), algorithm, int(cg_iters), init
        self.shared, self.equivariant, self.tune, self.checkpoint = bool(shared), bool(equivariant), bool(tune), bool(checkpoint)
        self.denoisers = nn.ModuleList([denoiser] + [copy.deepcopy(denoiser) for _ in range(0 if shared else self.iterations - 1)])
        #: a_k, b_k of σ_k = σ_max·sigmoid(a_k) and τ_k = exp(b_k)
        self.sigma_logit = nn.Parameter(torch.zeros(self.iterations))
        self.log_step = nn.Parameter(torch.zeros(self.iterations))
        self.set_schedule(sigma_start, sigma_end, step)
        self.tuning: list[dict] = []

    # ------------------------------------------------------------------ the schedule
    @torch.no_grad()
    def set_schedule(self, sigma_start: float, sigma_end: float, step: float) -> None:
        """σ_k geometric from `sigma_start` to `sigma_end`; τ_k = step·(σ_k/σ_1)² (hqs), min(step, 1.99) (pgd)."""
        if self.sigma_logit.device.type == "meta":
            return
        sigmas = torch.tensor(schedule(sigma_start, sigma_end, self.iterations))
        steps = step * (sigmas / sigmas[0]) ** 2 if self.algorithm == "hqs" else torch.full_like(sigmas, min(step, 1.99))
        self.sigma_logit.copy_(_logit(sigmas / self.sigma_max))
        self.log_step.copy_(steps.log())

    def sigmas(self) -> torch.Tensor:
        """σ_1 … σ_N, each in (0, σ_max)."""
        return self.sigma_max * torch.sigmoid(self.sigma_logit)

    def steps(self) -> torch.Tensor:
        """τ_1 … τ_N, each > 0."""
        return self.log_step.exp()

    # ------------------------------------------------------------------ the map
    def denoise(self, v: torch.Tensor, sigma: torch.Tensor, k: int) -> torch.Tensor:
        """g_k⁻¹ D_θk(g_k v, σ_k) (g_k = identity without ``equivariant``)."""
        d = self.denoisers[0 if self.shared else k]
        return transformed(d, v, sigma, k) if self.equivariant else d.denoise(v, sigma)

    def forward(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """x̂ = x_N (see the module docstring)."""
        p = Normalised(physics, y, "unfolded")
        x = first_iterate(p, self.init, y.shape[0], y)
        return iterate(p, x, self.denoise, list(self.sigmas()), list(self.steps()), self.algorithm, self.cg_iters,
                       checkpoint=self.checkpoint)

    def trained_blocks(self, physics: Any) -> list:
        shape = (2, *operator_of(physics).in_shape)
        return [(self.denoisers[0 if self.shared else k].net, shape)
                for k in range(1 if self.checkpoint else self.iterations)]

    # ------------------------------------------------------------------ before training
    @torch.no_grad()
    def prepare(self, train: Any, val: Any, data_range: metrics.DataRange = 1.0) -> None:
        """With ``tune``: the DPIR schedule (σ_1, σ_N, τ) of best mean PSNR on up to 8 validation
        pairs (`GRID`), as the pnp method tunes it — training starts at tuned PnP. Without
        validation pairs with x (self-supervised training) the configured schedule stays."""
        if not self.tune or val is None:
            return
        y, x, physics = next(val.epoch(val.minibatches(torch.arange(val.n), TUNE_PAIRS), 0))
        was, best, self.tuning = self.training, None, []
        self.eval()
        for s1, sn, t in itertools.product(GRID["sigma_start"], GRID["sigma_end"], GRID[self.algorithm]):
            if not sn <= s1 <= self.sigma_max:
                continue
            self.set_schedule(s1, sn, t)
            psnr = float(metrics.psnr(self(y, physics).float(), x, data_range).mean())
            self.tuning.append({"sigma_start": s1, "sigma_end": sn, "step": t, "val_psnr": psnr})
            if best is None or psnr > best[0]:
                best = (psnr, s1, sn, t)
        self.train(was)
        if best is not None:
            self.set_schedule(*best[1:])

    # ------------------------------------------------------------------ saved and loaded
    @property
    def kind_params(self) -> dict:
        """The parameters it was built with, the denoiser's architecture resolved (a saved model
        rebuilds without its prior)."""
        return {**self.__dict__.get("_params", {}), **self.architecture()}

    @kind_params.setter
    def kind_params(self, params: dict) -> None:
        self.__dict__["_params"] = dict(params)

    def architecture(self) -> dict:
        """The denoiser's parameters (depth, base_channels, sigma_max), as `denoiser` builds it."""
        d = self.denoisers[0]
        return {"depth": d.depth, "base_channels": d.base_channels, "sigma_max": self.sigma_max}

    def spec(self) -> dict:
        """The kind's parameters and the schedule in use (``learned``: σ_k, τ_k)."""
        return {"name": self.kind, "params": self.kind_params,
                "learned": {"sigmas": [round(float(s), 6) for s in self.sigmas().detach()],
                            "steps": [round(float(t), 6) for t in self.steps().detach()]}}

    @classmethod
    def from_spec(cls, spec: dict) -> "UnfoldedPnP":
        params = dict(spec.get("params", {}))
        recon = build_kind("unfolded", **{**params, "prior": None})  # validated; the weights come from the file
        recon.kind_params = params
        return recon


def prior_denoiser(prior: str | None, depth: int | None, base_channels: int | None,
                   sigma_max: float | None) -> NoiseConditionalDenoiser:
    """A trainable copy of the prior `prior` (its weights; None: an untrained denoiser), checked
    against the architecture asked for (None: the prior's)."""
    asked = {"depth": depth, "base_channels": base_channels, "sigma_max": sigma_max}
    if prior is None:
        return NoiseConditionalDenoiser(depth or 3, base_channels or 32, sigma_max or 0.3)
    src = load_prior(prior)
    net = src.net
    if (getattr(net, "in_channels", 2), getattr(net, "out_channels", 1)) != (2, 1):
        raise ValueError(f"unfolded: prior {prior} takes {net.in_channels - 1} image channel(s) and gives "
                         f"{net.out_channels}; the iteration denoises one-channel images")
    have = {"depth": src.depth, "base_channels": src.base_channels, "sigma_max": src.sigma_max}
    for k, v in asked.items():
        if v is not None and v != have[k]:
            raise ValueError(f"unfolded: {k} = {v!r} but prior {prior} has {k} = {have[k]!r} (leave it out to use "
                             f"the prior's)")
    d = NoiseConditionalDenoiser(have["depth"], have["base_channels"], have["sigma_max"])
    if next(d.parameters()).device.type != "meta":  # a config check describes the model on meta: no weights
        d.load_state_dict(src.state_dict())
    return d


@KINDS.register("unfolded")
def unfolded(prior: str | None = "pretrained:denoiser", iterations: Iterations = 6,
             algorithm: Literal["hqs", "pgd"] = "hqs", sigma_start: Positive = 0.1, sigma_end: Positive = 0.02,
             step: Positive = 3000.0, cg_iters: Count = 5, shared: bool = True, equivariant: bool = True,
             tune: bool = True, checkpoint: bool = True, init: Literal["auto", "zero", "adjoint", "fbp"] = "auto",
             depth: Count | None = None, base_channels: Count | None = None,
             sigma_max: Positive | None = None) -> UnfoldedPnP:
    """Unfolded PnP-HQS/PGD from the shipped prior: σ_k, τ_k and the denoiser trained end to end (prior: a zoo entry or run)."""
    return UnfoldedPnP(prior_denoiser(prior, depth, base_channels, sigma_max), iterations, algorithm, sigma_start,
                       sigma_end, step, cg_iters, shared, equivariant, tune, checkpoint, init)


unfolded.from_spec = UnfoldedPnP.from_spec  # a saved model rebuilds from model.json, not from its prior

__all__ = ["UnfoldedPnP", "unfolded", "prior_denoiser"]
