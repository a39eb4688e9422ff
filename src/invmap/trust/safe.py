"""Safe reconstruction: a learned x̂ that cannot be trusted is refined by a data-consistent,
regularised solve warm-started at x̂; a trusted x̂ is returned untouched.

For each image the diagnostics (`invmap.trust.diagnose`) give the excess factor E (1 = as
consistent as the references, > 2 = suspect). A suspect x̂ becomes

    x̂_safe = argmin_x ½‖K x − y‖² + λ TV(x) + (μ/2)‖x − x̂‖²,
    μ = μ₀ ‖K‖² (E₀ / E)^p,   E₀ = the suspect threshold,

solved by the tuned TV baseline's own Chambolle–Pock loop (`ChambollePockTV` with an
anchor; its λ, box and iteration count), started at x̂. Near the threshold (μ₀ = 10⁻² by
default) the anchor keeps x̂ where the data do not pin it down; the less x̂ explains its data,
the weaker the anchor (p = 4: E = 2E₀ gives μ₀/16) and the closer x̂_safe comes to the TV
answer (μ ≲ 10⁻⁴‖K‖² is TV within 0.1 dB on sparse-view CT). Images with E ≤ E₀ keep x̂.

`SafeReconstructor` is itself a reconstructor, ``x̂ = safe(y, physics)``, so evaluate,
stress and the CLI use it like any other method.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .diagnostics import SUSPECT_EXCESS, Diagnostics, Reconstructor, diagnose


class SafeReconstructor:
    """``safe(y, physics)``: `model`'s x̂, refined where its diagnostics call it suspect."""

    def __init__(self, model: Reconstructor, baseline: Any, mu0: float = 1e-2, power: float = 4.0,
                 threshold: float = SUSPECT_EXCESS, draws: int = 3, reference: Any | None = None,
                 reuses: Mapping[str, str] | None = None):
        if not hasattr(baseline, "lam") or not hasattr(baseline, "iters"):
            raise ValueError("safe: the baseline must be a TV-type method with lam and iters (e.g. the tuned 'tv')")
        if not (mu0 > 0 and power >= 0 and threshold > 0):
            raise ValueError(f"safe: need mu0 > 0, power >= 0, threshold > 0 (got {mu0}, {power}, {threshold})")
        self.model, self.baseline = model, baseline
        self.mu0, self.power, self.threshold, self.draws = float(mu0), float(power), float(threshold), int(draws)
        self.reference = reference
        #: {"model": name, "baseline": name} of the methods of an evaluation computing the same x̂
        self.reuses = dict(reuses or {})
        self.last: Diagnostics | None = None  # the diagnostics of the last call
        self.refined: torch.Tensor | None = None  # which images of the last call were refined

    def params(self) -> dict:
        return {"baseline": getattr(self.baseline, "params", lambda: {})(), "mu0": self.mu0, "power": self.power,
                "threshold": self.threshold, "draws": self.draws}

    def eval(self) -> "SafeReconstructor":
        if hasattr(self.model, "eval"):
            self.model.eval()
        return self

    def to(self, device: Any) -> "SafeReconstructor":
        if hasattr(self.model, "to"):
            self.model = self.model.to(device)
        return self

    def anchor_weight(self, physics: Any, excess: torch.Tensor) -> torch.Tensor:
        """μ per image: μ₀‖K‖²(E₀/E)^p."""
        k2 = float(physics.operator.norm()) ** 2
        return self.mu0 * k2 * (self.threshold / excess.clamp_min(1e-12)) ** self.power

    def refine(self, y: torch.Tensor, physics: Any, x_hat: torch.Tensor, diag: Diagnostics) -> torch.Tensor:
        """Refine the suspect images of x̂ (see the module docstring); the others are returned as they are."""
        from ..variational.methods import _box
        from ..variational.pdhg import ChambollePockTV

        bad = diag.excess > self.threshold
        self.refined = bad
        if not bool(bad.any()):
            return x_hat
        idx = torch.nonzero(bad).reshape(-1).to(x_hat.device)
        b = self.baseline
        mu = self.anchor_weight(physics, diag.excess[bad]).to(x_hat.dtype)
        anchor = x_hat[idx]
        solver = ChambollePockTV(physics.operator, y[idx.to(y.device)], lam=b.lam,
                                 box=_box(getattr(b, "lower", None), getattr(b, "upper", None),
                                          bool(getattr(b, "nonneg", False))),
                                 x0=anchor, max_iter=int(b.iters), ratio=float(getattr(b, "ratio", 1.0)),
                                 record_every=0, anchor=anchor, mu=mu)
        out = x_hat.clone()
        out[idx] = solver.solve().to(out.dtype)
        return out

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
