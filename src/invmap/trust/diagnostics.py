"""Ground-truth-free diagnostics of a reconstruction x̂ = method(y, physics).

At inference y and K are known but x is not. For y = K x + e with a known noise model:

- **data consistency** ρ = ‖K x̂ − y‖ / √(E‖e‖²): ≈ 1 when x̂ explains y as well as the
  truth would (within ≈ 1/√(2m) for m measured entries); E‖e‖² = Σ_i Var(e_i) from the
  noise model (`NoiseModel.variance`, y standing in for K x: Gaussian m σ², Poisson
  Σ y_i / N, Poisson–Gaussian both);
- the same against the method's **training conditions**: real data carry a model error
  (a finer grid than K's, calibration) that no x̂ on K's grid removes. Its relative size
  f² = median_i max(0, ‖K x̂_i − y_i‖² − E‖e_i‖²) / ‖y_i‖², measured on measurements from the
  training conditions (`residual_floor`), gives ρ_home = ‖K x̂ − y‖ / √(E‖e‖² + f²‖y‖²) ≈ 1
  at home, at any noise level the physics states; large when y does not fit K (another
  geometry, a calibration error). The misfit against the baseline (a, below) is *not*
  calibrated: a map that explains its data worse than the tuned TV, at home or not, is
  suspected for it;
- the same ratio ρ_b of a **classical baseline** x̂_b (the run's tuned TV) on the same y;
- **sensitivity**: the rms pixel change of x̂ when y gets one more fresh noise draw,
  x̂(y + ẽ_k) − x̂(y), ẽ_k ~ e (k draws, one batched call), per unit of noise (rms per entry
  of e) — its *gain* g. The same gain g_ref is measured at the conditions the method was
  trained for (its reference physics, on y_ref = K_ref x̂ + e_ref);
- **disagreement** (optional): the rms spread between x̂ and other reconstructors (e.g.
  other trained runs) on y, against the same spread at the reference conditions.

They combine into one excess factor and a trust score per image:

    a = ‖K x̂ − y‖ / max(‖K x̂_b − y‖, √(E‖e‖²))   misfit against the baseline's or the noise's
    b = g / g_ref,   c = disagreement / disagreement_ref          (1 when not measured)
    E = max(a, ρ_home) · max(1, b) · max(1, c),   trust T = 1 / (1 + E) ∈ (0, 1)

T = ½ when x̂ is as consistent as its references; the verdict is "suspect" when E > 2
(T < ⅓), e.g. ``suspect: ρ = 4.1, 3.2× the baseline's``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

Reconstructor = Callable[[torch.Tensor, Any], torch.Tensor]

#: the excess factor E above which a reconstruction is called suspect (trust < 1/3)
SUSPECT_EXCESS = 2.0


def _sqnorm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample Σ|t|² (complex-safe), float64 ``[B]``."""
    a = torch.view_as_real(t) if t.is_complex() else t
    return (a.double() ** 2).reshape(a.shape[0], -1).sum(dim=1).cpu()


def _entries(t: torch.Tensor) -> int:
    return int(t[0].numel())


def noise_energy(y: torch.Tensor, physics: Any) -> torch.Tensor:
    """E‖e‖² per sample ``[B]`` from the noise model (y standing in for K x)."""
    return physics.noise.variance(y, physics.operator.measured()).double().reshape(y.shape[0], -1).sum(dim=1).cpu()


def residual(x_hat: torch.Tensor, y: torch.Tensor, physics: Any) -> torch.Tensor:
    """‖K x̂ − y‖ per sample ``[B]``."""
    with torch.no_grad():
        return _sqnorm(physics.operator(x_hat.to(y.device)) - y).sqrt()


def consistency(x_hat: torch.Tensor, y: torch.Tensor, physics: Any) -> torch.Tensor:
    """ρ = ‖K x̂ − y‖ / √(E‖e‖²) per sample (inf where the noise model has no noise)."""
    r, n = residual(x_hat, y, physics), noise_energy(y, physics).sqrt()
    return torch.where(n > 0, r / n.clamp_min(1e-300), torch.full_like(r, math.inf))


def fresh_noise(y: torch.Tensor, physics: Any, draws: int, generator: torch.Generator) -> torch.Tensor:
    """``draws`` fresh noise realisations ẽ_k ~ e per sample, stacked ``[draws·B, …]``
    (sample-major per draw), drawn by the physics' own noise model with y standing in for K x."""
    stand_in = y.repeat((draws,) + (1,) * (y.dim() - 1))
    if not stand_in.is_complex() and float(stand_in.min()) >= -0.05 * float(stand_in.abs().max()):
        stand_in = stand_in.clamp_min(0)  # nonnegative data (CT, photon counts): keep K x ≥ 0
    return physics.noise(stand_in, generator, mask=physics.operator.measured()) - stand_in


def _rms_change(x_many: torch.Tensor, x_hat: torch.Tensor, draws: int) -> torch.Tensor:
    """rms over draws and pixels of x_many (``[draws·B, …]``) − x̂, per sample ``[B]``."""
    b = x_hat.shape[0]
    d = (x_many.double().cpu().reshape((draws, b) + tuple(x_hat.shape[1:])) - x_hat.double().cpu())
    return (d ** 2).reshape(draws, b, -1).mean(dim=(0, 2)).sqrt()


def sensitivity_gain(method: Reconstructor, y: torch.Tensor, physics: Any, x_hat: torch.Tensor,
                     draws: int = 3, seed: int = 0) -> torch.Tensor:
    """g = rms(x̂(y + ẽ_k) − x̂(y)) / rms(e) per sample: how much x̂ moves per unit of noise
    (NaN where the noise model has no noise)."""
    g = torch.Generator().manual_seed(seed)
    e = fresh_noise(y, physics, draws, g)
    with torch.no_grad():
        x_many = method(y.repeat((draws,) + (1,) * (y.dim() - 1)) + e, physics)
    mask = physics.operator.measured()
    m = _entries(y) if mask is None else float(mask.expand(y.shape[1:]).sum())
    noise_rms = (noise_energy(y, physics) / max(m, 1.0)).sqrt()
    s = _rms_change(x_many, x_hat, draws)
    return torch.where(noise_rms > 0, s / noise_rms.clamp_min(1e-300), torch.full_like(s, math.nan))


def spread(x_hat: torch.Tensor, others: Sequence[torch.Tensor]) -> torch.Tensor:
    """rms pixel difference between x̂ and the other reconstructions, per sample ``[B]``."""
    d = torch.stack([(o.double().cpu() - x_hat.double().cpu()) ** 2 for o in others])
    return d.reshape(len(others), x_hat.shape[0], -1).mean(dim=(0, 2)).sqrt()


def reference_physics(method: Any, shape: Sequence[int] | None = None) -> Any | None:
    """The physics `method` was trained for (its ``training_physics``), rebuilt for images of
    `shape` (H, W) when the operator can be; None when the method declares none."""
    ref = getattr(method, "training_physics", None)
    if ref is None or shape is None or tuple(ref.operator.in_shape) == tuple(shape):
        return ref
    from ..operators import from_spec
    from ..physics import Physics

    spec = dict(ref.spec()["operator"], image_shape=list(shape))
    try:
        return Physics(from_spec(spec), ref.noise)
    except (ValueError, TypeError):
        return None


@dataclass
class Diagnostics:
    """Per-image diagnostics (tensors ``[B]``, float64) and the combined trust score."""

    rho: torch.Tensor                       # ‖K x̂ − y‖ / √E‖e‖²
    rho_baseline: torch.Tensor | None       # the baseline's ρ on the same y
    misfit: torch.Tensor                    # a (see the module docstring)
    rho_home: torch.Tensor | None = None    # ‖K x̂ − y‖ / √(E‖e‖² + f²‖y‖²)
    sensitivity: torch.Tensor | None = None  # gain g
    sensitivity_ref: torch.Tensor | None = None  # gain g_ref at the reference physics
    disagreement: torch.Tensor | None = None
    disagreement_ref: torch.Tensor | None = None
    notes: list[str] = field(default_factory=list)

    @staticmethod
    def _ratio(v: torch.Tensor | None, ref: torch.Tensor | None) -> torch.Tensor | None:
        if v is None or ref is None:
            return None
        r = v / ref.clamp_min(1e-300)
        return torch.where(torch.isfinite(r), r, torch.ones_like(r))  # not measurable: no evidence

    @property
    def sensitivity_ratio(self) -> torch.Tensor | None:
        return self._ratio(self.sensitivity, self.sensitivity_ref)

    @property
    def disagreement_ratio(self) -> torch.Tensor | None:
        return self._ratio(self.disagreement, self.disagreement_ref)

    @property
    def excess(self) -> torch.Tensor:
        """E = max(a, ρ_home) · max(1, b) · max(1, c) per image."""
        e = self.misfit.clone() if self.rho_home is None else torch.maximum(self.misfit, self.rho_home)
        for r in (self.sensitivity_ratio, self.disagreement_ratio):
            if r is not None:
                e = e * r.clamp_min(1.0)
        return e

    @property
    def trust(self) -> torch.Tensor:
        """T = 1 / (1 + E) ∈ (0, 1); ½ = as consistent as the references."""
        return 1.0 / (1.0 + self.excess)

    @property
    def suspect(self) -> torch.Tensor:
        return self.excess > SUSPECT_EXCESS

    def verdict(self, i: int = 0) -> str:
        """One line for image i: ``consistent: ρ = 1.02 …`` or ``suspect: ρ = 4.1, 3.2× the baseline's``."""
        parts = [f"ρ = {_fmt(self.rho[i])}"]
        if self.rho_baseline is not None:
            parts.append(f"{_fmt(self.rho[i] / self.rho_baseline[i])}× the baseline's (ρ_b = {_fmt(self.rho_baseline[i])})")
        if self.rho_home is not None:
            parts.append(f"misfit {_fmt(self.rho_home[i])}× that at its training conditions")
        b, c = self.sensitivity_ratio, self.disagreement_ratio
        if b is not None:
            parts.append(f"noise sensitivity {_fmt(b[i])}× its training conditions'")
        if c is not None:
            parts.append(f"disagreement {_fmt(c[i])}× its training conditions'")
        word = "suspect" if bool(self.suspect[i]) else "consistent"
        return f"{word}: {', '.join(parts)} (trust {float(self.trust[i]):.2f})"

    def record(self, i: int) -> dict:
        """The numbers of image i, JSON-able."""
        def val(t: torch.Tensor | None) -> float | None:
            return None if t is None or not math.isfinite(float(t[i])) else float(t[i])

        return {"verdict": "suspect" if bool(self.suspect[i]) else "consistent", "line": self.verdict(i),
                "trust": val(self.trust), "excess": val(self.excess), "rho": val(self.rho),
                "rho_baseline": val(self.rho_baseline), "misfit_vs_baseline": val(self.misfit),
                "misfit_vs_training_conditions": val(self.rho_home),
                "sensitivity_gain": val(self.sensitivity), "sensitivity_gain_reference": val(self.sensitivity_ref),
                "sensitivity_ratio": val(self.sensitivity_ratio), "disagreement": val(self.disagreement),
                "disagreement_reference": val(self.disagreement_ref),
                "disagreement_ratio": val(self.disagreement_ratio), "suspect_above_excess": SUSPECT_EXCESS,
                "notes": list(self.notes)}


def _fmt(v: torch.Tensor | float) -> str:
    v = float(v)
    return "n/a" if not math.isfinite(v) else (f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}")


def diagnose(method: Reconstructor, y: torch.Tensor, physics: Any, *, x_hat: torch.Tensor | None = None,
             baseline: Reconstructor | None = None, x_baseline: torch.Tensor | None = None,
             others: Sequence[Reconstructor] = (), reference: Any | None = None, draws: int = 3,
             calibration: Mapping[str, float] | None = None, seed: int = 0) -> Diagnostics:
    """Diagnose x̂ = method(y, physics) without ground truth (see the module docstring).

    `x_hat` / `x_baseline` reuse reconstructions already computed; `baseline` (or
    `x_baseline`) gives ρ_b; `calibration` ({"floor": f}, see `calibration`;
    default: the method's ``trust_calibration``) sets the training conditions' residual floor
    and misfit; `reference` is the physics the method was trained for (default:
    ``reference_physics(method)``; None: no sensitivity ratio); `others` are further
    reconstructors for the disagreement; `draws` fresh noise draws for the sensitivity.
    """
    with torch.no_grad():
        if x_hat is None:
            x_hat = method(y, physics)
        if x_baseline is None and baseline is not None:
            x_baseline = baseline(y, physics)
    notes: list[str] = []
    r = residual(x_hat, y, physics)
    noise = noise_energy(y, physics).sqrt()
    rho = _ratio_or_inf(r, noise)
    rho_b = None
    if x_baseline is not None:
        r_b = residual(x_baseline, y, physics)
        rho_b = _ratio_or_inf(r_b, noise)
        misfit = r / torch.maximum(noise, r_b).clamp_min(1e-12 * max(1.0, float(r.max())))
    else:
        notes.append("no baseline: misfit against the noise level only")
        misfit = rho.clone()
    cal = calibration if calibration is not None else getattr(method, "trust_calibration", None)
    d = Diagnostics(rho, rho_b, misfit, notes=notes)
    if cal:
        home = (noise ** 2 + (float(cal["floor"]) * _sqnorm(y).sqrt()) ** 2).sqrt()
        d.rho_home = torch.where(home > 0, r / home.clamp_min(1e-300), torch.full_like(r, math.nan))
    else:
        notes.append("not calibrated at the training conditions: misfit against the baseline and the noise only")
    ref = reference if reference is not None else reference_physics(method, tuple(x_hat.shape[-2:]))
    if ref is None:
        notes.append("no reference physics: sensitivity and disagreement not compared")
    if draws > 0:
        d.sensitivity = sensitivity_gain(method, y, physics, x_hat, draws, seed)
    if others:
        with torch.no_grad():
            d.disagreement = spread(x_hat, [o(y, physics) for o in others])
    if ref is not None and (draws > 0 or others):
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            y_ref = ref.measure(x_hat.to(y.device), g)
            x_ref = method(y_ref, ref)
            if draws > 0:
                d.sensitivity_ref = sensitivity_gain(method, y_ref, ref, x_ref, draws, seed + 2)
            if others:
                d.disagreement_ref = spread(x_ref, [o(y_ref, ref) for o in others])
    return d


def _ratio_or_inf(r: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    return torch.where(n > 0, r / n.clamp_min(1e-300), torch.full_like(r, math.inf))


def calibration(x_hat: torch.Tensor, y: torch.Tensor, physics: Any) -> dict[str, float]:
    """The method at its training conditions (y measured there, x̂ its reconstructions): the
    residual ``floor`` f (`residual_floor`), so that ρ_home ≈ 1 at home."""
    return {"floor": residual_floor(x_hat, y, physics)}


def residual_floor(x_hat: torch.Tensor, y: torch.Tensor, physics: Any) -> float:
    """f = median_i √(max(0, ‖K x̂_i − y_i‖² − E‖e_i‖²) / ‖y_i‖²): the relative model error a
    method's reconstructions leave in measurements y from its training conditions."""
    r2, n2, y2 = residual(x_hat, y, physics) ** 2, noise_energy(y, physics), _sqnorm(y)
    return float(((r2 - n2).clamp_min(0) / y2.clamp_min(1e-300)).sqrt().median())


__all__ = ["Diagnostics", "diagnose", "calibration", "residual_floor", "consistency", "residual", "noise_energy", "fresh_noise", "sensitivity_gain",
           "spread", "reference_physics", "SUSPECT_EXCESS"]
