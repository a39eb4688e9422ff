"""Safe reconstruction: a learned x̂ is refined by a data-consistent, regularised solve
warm-started at x̂, held to x̂ by an anchor that weakens as the trust score S rises.

For each image the diagnostics (`invmap.trust.diagnose`) give the score S (spreads away from
the training conditions, see `invmap.trust.diagnostics`). x̂ becomes

    x̂_safe = argmin_x ½‖K x − y‖² + λ TV(x) + (μ/2)‖x − x̂‖²,
    μ = μ₀ ‖K‖² · 10^(−(S − S_free)₊ / S_decade),

solved by the tuned TV baseline's own Chambolle–Pock loop (`ChambollePockTV` with an
anchor; its λ, box and iteration count), started at x̂. μ falls continuously with S: within
S_free = 2 spreads of the training conditions μ = μ₀ (10⁻² by default), strong enough to
keep x̂'s gain where the data do not pin the image down (on the default run it adds ≈ 0.1 dB
at home); every S_decade = 2 spreads beyond it divide μ by 10, and at μ ≲ 10⁻⁴‖K‖² x̂_safe is
the TV answer within 0.1 dB (sparse-view CT). Measured on the default run (BENCHMARKS.md).

`SafeReconstructor` is itself a reconstructor, ``x̂ = safe(y, physics)``, so evaluate,
stress and the CLI use it like any other method.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .diagnostics import Diagnostics, Reconstructor, diagnose


class SafeReconstructor:
    """``safe(y, physics)``: `model`'s x̂, refined by the anchored TV solve with μ from its score."""

    learned = True  # it wraps a trained model: never a classical baseline in the verdicts

    def __init__(self, model: Reconstructor, baseline: Any, mu0: float = 1e-2, free: float = 2.0,
                 decade: float = 2.0, draws: int = 0, reference: Any | None = None,
                 reuses: Mapping[str, str] | None = None):
        if not hasattr(baseline, "lam") or not hasattr(baseline, "iters"):
            raise ValueError("safe: the baseline must be a TV-type method with lam and iters (e.g. the tuned 'tv')")
        if not (mu0 > 0 and free >= 0 and decade > 0):
            raise ValueError(f"safe: need mu0 > 0, free >= 0, decade > 0 (got {mu0}, {free}, {decade})")
        self.model, self.baseline = model, baseline
        self.mu0, self.free, self.decade, self.draws = float(mu0), float(free), float(decade), int(draws)
        self.reference = reference
        #: {"model": name, "baseline": name} of the methods of an evaluation computing the same x̂
        self.reuses = dict(reuses or {})
        self.last: Diagnostics | None = None  # the diagnostics of the last call
        self.mu: torch.Tensor | None = None  # μ / ‖K‖² per image of the last call

    def params(self) -> dict:
        return {"baseline": getattr(self.baseline, "params", lambda: {})(), "mu0": self.mu0, "free": self.free,
                "decade": self.decade, "draws": self.draws}

    def eval(self) -> "SafeReconstructor":
        if hasattr(self.model, "eval"):
            self.model.eval()
        return self

    def to(self, device: Any) -> "SafeReconstructor":
        if hasattr(self.model, "to"):
            self.model = self.model.to(device)
        return self

    def relative_weight(self, score: torch.Tensor) -> torch.Tensor:
        """μ / ‖K‖² per image: μ₀ · 10^(−(S − S_free)₊ / S_decade)."""
        return self.mu0 * torch.pow(10.0, -(score.double() - self.free).clamp_min(0.0) / self.decade)

    def refine(self, y: torch.Tensor, physics: Any, x_hat: torch.Tensor, diag: Diagnostics) -> torch.Tensor:
        """x̂_safe for every image of x̂ (see the module docstring)."""
        from ..variational.methods import _box
        from ..variational.pdhg import ChambollePockTV

        b = self.baseline
        self.mu = self.relative_weight(diag.score)
        mu = (self.mu * float(physics.operator.norm()) ** 2).to(device=x_hat.device, dtype=x_hat.dtype)
        solver = ChambollePockTV(physics.operator, y, lam=b.lam,
                                 box=_box(getattr(b, "lower", None), getattr(b, "upper", None),
                                          bool(getattr(b, "nonneg", False))),
                                 x0=x_hat, max_iter=int(b.iters), ratio=float(getattr(b, "ratio", 1.0)),
                                 record_every=0, anchor=x_hat, mu=mu)
        return solver.solve().to(x_hat.dtype)

    def from_reconstructions(self, y: torch.Tensor, physics: Any, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """x̂_safe from the model's x̂ (``parts["model"]``) and the baseline's (``parts["baseline"]``)
        on the same y — what ``safe(y, physics)`` computes, for an evaluation that already has them."""
        with torch.no_grad():
            diag = diagnose(self.model, y, physics, x_hat=parts["model"], x_baseline=parts["baseline"],
                            draws=self.draws, reference=self.reference)
            self.last = diag
            return self.refine(y, physics, parts["model"], diag)

    def __call__(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        with torch.no_grad():
            parts = {"model": self.model(y, physics), "baseline": self.baseline(y, physics)}
        return self.from_reconstructions(y, physics, parts)


__all__ = ["SafeReconstructor"]
