"""Plug-and-play: a classical splitting whose prox is a denoiser network trained by invmap.

The denoiser D is any post-processing model trained on a *denoising* task — the identity
operator, Gaussian noise with σ drawn from a range (`configs/denoiser.yaml`) — on images
alone, so one trained D serves every operator without retraining. With K̃ = K/‖K‖,
ỹ = y/‖K‖ (`invmap.models.iterative`), strength α ∈ (0, 1] (D_α(v) = (1−α)v + αD(v)) and
step τ > 0:

    pgd:  x_{k+1} = D_α(x_k − τ K̃ᵀ(K̃x_k − ỹ))
    hqs:  v_k = argmin_v ½‖K̃v − ỹ‖² + (1/2τ)‖v − x_k‖²   (CGLS, ``cg_iters`` steps),
          x_{k+1} = D_α(v_k)

— the iteration of `invmap.solvers.pnp` with one τ and a denoiser that takes no σ (the
``pnp`` method runs it with the noise-conditional prior and DPIR's σ schedule, the ``unfolded``
kind trains σ_k, τ_k and the prior's weights).

α and τ are tuned on the validation pairs (grid search on mean PSNR, as TV's λ) by
`prepare`, i.e. by ``invmap train``; nothing is learned by gradient steps. The saved model
holds D's weights, so it reloads without the denoiser's run directory. Works for every
operator with 2-D images (complex MRI included: K̃ᵀ of a complex residual is real).
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

import torch

from .. import metrics, zoo
from ..operators.normalised import Normalised
from ..physics import Physics
from ..solvers.fbp import first_iterate
from ..solvers.pnp import iterate
from .io import describe_network, load_model, network_from_description
from .iterative import Count
from .reconstructor import LearnedReconstructor, Reconstructor
from .registry import KINDS

DEFAULT_STEPS = {"pgd": (0.5, 1.0, 1.5, 1.9), "hqs": (0.1, 0.5, 2.0, 10.0)}
#: strengths α tried by the tuning; the trained blind denoiser applied 30 times wants a small α
#: (measured: CT and deblurring picked α = 0.05, the low end of [0.05, 0.35]; MRI α = 0.5; BENCHMARKS.md)
DEFAULT_STRENGTHS = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


class PlugAndPlay(Reconstructor):
    """PnP-PGD / PnP-HQS around a denoiser `LearnedReconstructor` (see the module docstring)."""

    kind = "pnp"

    def __init__(self, denoiser: LearnedReconstructor, algorithm: Literal["pgd", "hqs"] = "pgd",
                 iterations: Count = 30, strength: float = 1.0, step: float = 1.0, tune: bool = True,
                 strengths: list[float] | None = None, steps: list[float] | None = None, cg_iters: Count = 5,
                 init: Literal["auto", "zero", "adjoint", "fbp"] = "auto", source: str = ""):
        super().__init__()
        for name, v in (("strength", [strength] + list(strengths or [])), ("step", [step] + list(steps or []))):
            if not all(0 < float(t) < float("inf") for t in v) or (name == "strength" and max(v) > 1):
                raise ValueError(f"pnp: every {name} must be {'in (0, 1]' if name == 'strength' else '> 0'}, got {v}")
        self.denoiser = denoiser.requires_grad_(False)
        self.algorithm, self.iterations, self.cg_iters, self.init = algorithm, int(iterations), int(cg_iters), init
        self.tune, self.source = bool(tune), source
        self.grid = (tuple(strengths or DEFAULT_STRENGTHS), tuple(steps or DEFAULT_STEPS[algorithm]))
        self.register_buffer("strength", torch.tensor(float(strength)))
        self.register_buffer("step", torch.tensor(float(step)))
        self.tuning: list[dict] = []

    def denoise(self, v: torch.Tensor) -> torch.Tensor:
        """D_α(v) = (1 − α) v + α D(v)."""
        a = float(self.strength)
        return (1 - a) * v + a * self.denoiser.from_input(v).float()

    def forward(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """x̂ = x_iterations of PnP-PGD or PnP-HQS (see the module docstring)."""
        p, tau = Normalised(physics, y, "pnp"), float(self.step)
        x = first_iterate(p, self.init, y.shape[0], y)
        return iterate(p, x, lambda v, s, k: self.denoise(v), [None] * self.iterations, [tau] * self.iterations,
                       self.algorithm, self.cg_iters)

    @torch.no_grad()
    def prepare(self, train: Any, val: Any, data_range: metrics.DataRange = 1.0) -> None:
        """Tune (strength, step) on up to 16 validation pairs: the grid point of best mean PSNR
        (data range convention `data_range`, as the validation and the baselines' tuning)."""
        if not self.tune:
            return
        y, x, physics = next(val.epoch(val.minibatches(torch.arange(val.n), 16), 0))  # ≤ 16 pairs, one K
        best, self.tuning = None, []
        for a, t in itertools.product(*self.grid):
            self.strength.fill_(a)
            self.step.fill_(t)
            psnr = float(metrics.psnr(self(y, physics).float(), x, data_range).mean())
            self.tuning.append({"strength": a, "step": t, "val_psnr": psnr})
            if best is None or psnr > best[0]:
                best = (psnr, a, t)
        self.strength.fill_(best[1])
        self.step.fill_(best[2])

    def spec(self) -> dict:
        """The kind's spec plus the denoiser's description and the strength and step in use
        (``tuned``; ``params`` keep the configured start values)."""
        return {**super().spec(), "denoiser": describe_network(self.denoiser),
                "tuned": {"strength": float(self.strength), "step": float(self.step)}}

    @classmethod
    def from_spec(cls, spec: dict) -> "PlugAndPlay":
        params = {k: v for k, v in spec.get("params", {}).items() if k != "denoiser"}
        recon = cls(network_from_description(spec["denoiser"]), source=spec.get("params", {}).get("denoiser", ""),
                    **params)
        recon.kind_params = dict(spec.get("params", {}))
        return recon


def load_denoiser(path: str) -> LearnedReconstructor:
    """The post-processing model of a denoising run: trained on an operator with K x = x."""

    where = zoo.run_dir(path)  # a run directory, or pretrained:NAME (a zoo entry)
    if not where.is_dir():
        raise FileNotFoundError(f"pnp: denoiser run directory not found: {path} (train one: invmap train denoiser "
                                f"--out {path})")
    with torch.device("cpu"):  # also when a config check describes the run on the meta device
        recon, meta = load_model(where)
        return _checked_denoiser(recon, meta, path)


def _checked_denoiser(recon: torch.nn.Module, meta: dict, path: str) -> LearnedReconstructor:
    if not isinstance(recon, LearnedReconstructor):
        raise ValueError(f"pnp: denoiser {path} is a '{getattr(recon, 'kind', type(recon).__name__)}' model; "
                         "expected a post-processing network trained on a denoising task")
    op = Physics.from_spec(meta["physics"]).operator
    probe = torch.rand((1, 1) + tuple(op.in_shape), generator=torch.Generator().manual_seed(0))
    if tuple(op.in_shape) != tuple(op.out_shape) or not torch.allclose(op.forward(probe), probe, atol=1e-6):
        raise ValueError(f"pnp: denoiser {path} was trained with operator '{op.name}', not the identity "
                         "(train one on a denoising task: invmap train denoiser)")
    return recon


@KINDS.register("pnp")
def pnp(denoiser: str, algorithm: Literal["pgd", "hqs"] = "pgd", iterations: Count = 30, strength: float = 1.0,
        step: float = 1.0, tune: bool = True, strengths: list[float] | None = None,
        steps: list[float] | None = None, cg_iters: Count = 5,
        init: Literal["auto", "zero", "adjoint", "fbp"] = "auto") -> PlugAndPlay:
    """Plug-and-play PGD / HQS with a denoiser trained by invmap (denoiser: its run directory); α, τ tuned on validation pairs."""
    return PlugAndPlay(load_denoiser(denoiser), algorithm, iterations, strength, step, tune, strengths, steps,
                       cg_iters, init, source=denoiser)


pnp.from_spec = PlugAndPlay.from_spec  # a saved pnp model rebuilds its denoiser from model.json, not from the run

__all__ = ["PlugAndPlay", "pnp", "load_denoiser"]
