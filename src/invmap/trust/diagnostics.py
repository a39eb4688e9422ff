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
  geometry, a calibration error) and small when y lacks the model error the method saw;
- the same ratio ρ_b of a **classical baseline** x̂_b (the run's tuned TV) on the same y;
- **sensitivity**: the rms pixel change of x̂ when y gets one more fresh noise draw,
  x̂(y + ẽ_k) − x̂(y), ẽ_k ~ e (k draws, one batched call), per unit of noise (rms per entry
  of e) — its *gain* g. The same gain g_ref is measured at the conditions the method was
  trained for (its reference physics, on y_ref = K_ref x̂ + e_ref);
- **disagreement** (optional): the rms spread between x̂ and other reconstructors (e.g.
  other trained runs) on y, against the same spread at the reference conditions;
- **calibration read from y** (operators that can, `LinearOperator.estimate_calibration`):
  e.g. the detector offset of parallel-beam CT from the first moments of the projections,
  with its standard error; z_k = |estimate − K's value| / stderr. No x̂ is involved: a
  scanner whose calibration differs from K's is outside the conditions of any method.

They combine into one score, calibrated against the method's validation pairs (y_v, x̂_v)
at its training conditions (`calibration`; their ground truth is not used). Each log ratio
becomes a robust z-score, z = (log v − median_v log v) / (1.4826 · MAD_v log v):

    a = ‖K x̂ − y‖ / max(‖K x̂_b − y‖, √(E‖e‖² + f²‖y‖²))   misfit against the baseline's, counted
                                    only beyond what x̂ leaves at home (noise and model-error floor
                                    f; the noise alone without a calibration): data with less noise
                                    than the training data let TV fit closer without x̂ being wrong
    z_a = z(log a)                  one-sided: x̂ explains y worse, relative to TV, than at home
    z_h = z(log ρ_home)             two-sided: y fits worse *or better* than training data do
                                    (data without the model error the map was trained on, e.g.
                                    simulated on its own grid, are also outside its conditions)
    z_c = log c / s₀                the ensemble disagreement ratio (when given)
    z_k                             the calibration read from y, in its standard errors
                                    (counted only above S₀: closer to K's value it is no evidence)
    S = max(z_a, |z_h|, z_c, z_k),   trust T = 2^(−S₊/S₀) ∈ (0, 1]

"suspect" when S > S₀ = 3 (three spreads; T < ½), e.g. ``suspect: ρ = 4.1, 3.2× the
baseline's``. Without a calibration the spreads default to s₀ = ln 2 / S₀ around 0 (a
misfit factor 2 is three spreads). The noise sensitivity ratio b is reported but not
scored: on the default run's stress study it rose where the model did well (noise family)
and stayed at 1 where it failed (calibration, objects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from ..capabilities import Method, capabilities
from ..operators.base import CalibrationEstimate
from ..physics import Physics, resized_physics


#: the score S (in spreads of the training conditions) above which x̂ is suspect (trust < ½)
SUSPECT_SCORE = 3.0
#: the spread of a log ratio without a calibration: a factor 2 counts as SUSPECT_SCORE spreads
DEFAULT_SPREAD = math.log(2.0) / SUSPECT_SCORE
#: the smallest spread a calibration may state (a 2% change of a residual ratio is no evidence)
MIN_SPREAD = 0.02


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


def sensitivity_gain(method: Method, y: torch.Tensor, physics: Any, x_hat: torch.Tensor,
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
    `shape` (H, W) when the operator can be — the same acquisition at that size, its size-bound
    parameters rescaled (`invmap.physics.resized_physics`: a CT detector covering the image, as
    ``reconstruct --size`` builds it, so the two share one system matrix); None when the method
    declares none."""
    ref = capabilities(method).training_physics
    if ref is None or shape is None or tuple(ref.operator.in_shape) == tuple(shape):
        return ref
    try:
        return Physics(resized_physics(ref.spec(), tuple(shape)).operator, ref.noise)
    except (ValueError, TypeError):
        return None


@dataclass
class Diagnostics:
    """Per-image diagnostics (tensors ``[B]``, float64) and the combined score S and trust T."""

    rho: torch.Tensor                       # ‖K x̂ − y‖ / √E‖e‖²
    rho_baseline: torch.Tensor | None       # the baseline's ρ on the same y
    misfit: torch.Tensor                    # a (see the module docstring)
    rho_home: torch.Tensor | None = None    # ‖K x̂ − y‖ / √(E‖e‖² + f²‖y‖²)
    sensitivity: torch.Tensor | None = None  # gain g
    sensitivity_ref: torch.Tensor | None = None  # gain g_ref at the reference physics
    disagreement: torch.Tensor | None = None
    disagreement_ref: torch.Tensor | None = None
    calibration: Mapping[str, Any] | None = None  # `calibration`'s statistics (None: default spreads)
    estimated: dict[str, CalibrationEstimate] = field(default_factory=dict)  # calibration read from y
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

    def _z(self, name: str, v: torch.Tensor) -> torch.Tensor:
        """Robust z-score of log v against the calibration's `name` statistics (0: no evidence)."""
        st = (self.calibration or {}).get(name) or {"median": 0.0, "spread": DEFAULT_SPREAD}
        z = (v.log() - float(st["median"])) / float(st["spread"])
        return torch.where(torch.isfinite(z), z, torch.zeros_like(z))

    @property
    def z_misfit(self) -> torch.Tensor:
        """z_a: the misfit against the baseline, in spreads of its value at the training conditions."""
        return self._z("misfit", self.misfit)

    @property
    def z_home(self) -> torch.Tensor | None:
        """z_h: the data fit against the training conditions' (two-sided), or None uncalibrated."""
        return None if self.rho_home is None else self._z("home", self.rho_home)

    @property
    def z_calibration(self) -> torch.Tensor | None:
        """z_k: the largest |estimate − K's value| / stderr over the estimated parameters, or None."""
        return largest_z(self.estimated)

    def miscalibrated(self, i: int) -> dict[str, float]:
        """{parameter: the value y says} for image i where it differs from K's by more than
        `SUSPECT_SCORE` standard errors."""
        return {k: float(e.value[i]) for k, e in self.estimated.items() if float(e.z[i]) > SUSPECT_SCORE}

    @property
    def score(self) -> torch.Tensor:
        """S = max(z_a, |z_h|, z_c, z_k) per image."""
        s = self.z_misfit.clone()
        if self.z_home is not None:
            s = torch.maximum(s, self.z_home.abs())
        c = self.disagreement_ratio
        if c is not None:
            s = torch.maximum(s, c.clamp_min(1e-300).log() / DEFAULT_SPREAD)
        k = self.z_calibration
        if k is not None:  # within S₀ standard errors of K's value an estimate is no evidence
            s = torch.maximum(s, torch.where(k > SUSPECT_SCORE, k, torch.zeros_like(k)))
        return s

    @property
    def trust(self) -> torch.Tensor:
        """T = 2^(−S₊/S₀) ∈ (0, 1]; ½ at the suspect threshold."""
        return torch.exp2(-self.score.clamp_min(0.0) / SUSPECT_SCORE)

    @property
    def suspect(self) -> torch.Tensor:
        return self.score > SUSPECT_SCORE

    def verdict(self, i: int = 0) -> str:
        """One line for image i: ``consistent: ρ = 1.02 …`` or ``suspect: ρ = 4.1, 3.2× the baseline's``."""
        parts = [f"ρ = {_fmt(self.rho[i])}"]
        if self.rho_baseline is not None:
            parts.append(f"{_fmt(self.rho[i] / self.rho_baseline[i])}× the baseline's (ρ_b = {_fmt(self.rho_baseline[i])})")
        if self.rho_home is not None:
            parts.append(f"data fit {_fmt(self.rho_home[i])}× that at its training conditions")
        c = self.disagreement_ratio
        if c is not None:
            parts.append(f"disagreement {_fmt(c[i])}× its training conditions'")
        for k in self.miscalibrated(i):
            e = self.estimated[k]
            parts.append(f"y says {k} = {float(e.value[i]):+.3g} ± {float(e.stderr[i]):.2g} (K has {e.nominal:g})")
        word = "suspect" if bool(self.suspect[i]) else "consistent"
        how = "spreads of its training conditions" if self.calibration else "uncalibrated"
        return (f"{word}: {', '.join(parts)} (score {_fmt(self.score[i])} {how}, limit {SUSPECT_SCORE:g}; "
                f"trust {float(self.trust[i]):.2f})")

    def record(self, i: int) -> dict:
        """The numbers of image i, JSON-able."""
        def val(t: torch.Tensor | None) -> float | None:
            return None if t is None or not math.isfinite(float(t[i])) else float(t[i])

        return {"verdict": "suspect" if bool(self.suspect[i]) else "consistent", "line": self.verdict(i),
                "trust": val(self.trust), "score": val(self.score), "suspect_above_score": SUSPECT_SCORE,
                "rho": val(self.rho), "rho_baseline": val(self.rho_baseline), "misfit_vs_baseline": val(self.misfit),
                "z_misfit": val(self.z_misfit), "fit_vs_training_conditions": val(self.rho_home),
                "z_fit": val(self.z_home), "sensitivity_gain": val(self.sensitivity),
                "sensitivity_gain_reference": val(self.sensitivity_ref),
                "sensitivity_ratio": val(self.sensitivity_ratio), "disagreement": val(self.disagreement),
                "disagreement_reference": val(self.disagreement_ref),
                "disagreement_ratio": val(self.disagreement_ratio),
                "calibration_from_data": {k: {"value": val(e.value), "stderr": val(e.stderr), "nominal": e.nominal,
                                              "z": val(e.z)} for k, e in self.estimated.items()},
                "calibration": dict(self.calibration) if self.calibration else None, "notes": list(self.notes)}


def largest_z(estimated: Mapping[str, CalibrationEstimate]) -> torch.Tensor | None:
    """Per image, the largest |estimate − K's value| / stderr over the estimated parameters
    (`LinearOperator.estimate_calibration`), or None when none were estimated."""
    zs = [e.z for e in estimated.values()]
    return torch.stack(zs).max(dim=0).values if zs else None


def _fmt(v: torch.Tensor | float) -> str:
    v = float(v)
    return "n/a" if not math.isfinite(v) else (f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}")


def _fits(x_hat: torch.Tensor, y: torch.Tensor, physics: Any, x_baseline: torch.Tensor | None,
          floor: float | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """(ρ, ρ_b, misfit a, ρ_home) per image; ρ_b None without x̂_b, ρ_home None without a floor."""
    r = residual(x_hat, y, physics)
    noise = noise_energy(y, physics).sqrt()
    rho, rho_b, misfit = _ratio_or_inf(r, noise), None, _ratio_or_inf(r, noise)
    h = None if floor is None else (noise ** 2 + (float(floor) * _sqnorm(y).sqrt()) ** 2).sqrt()
    if x_baseline is not None:
        r_b = residual(x_baseline, y, physics)
        rho_b = _ratio_or_inf(r_b, noise)
        expected = noise if h is None else h  # what x̂ leaves at its training conditions
        misfit = r / torch.maximum(expected, r_b).clamp_min(1e-12 * max(1.0, float(r.max())))
    home = None if h is None else torch.where(h > 0, r / h.clamp_min(1e-300), torch.full_like(r, math.nan))
    return rho, rho_b, misfit, home


def diagnose(method: Method, y: torch.Tensor, physics: Any, *, x_hat: torch.Tensor | None = None,
             baseline: Method | None = None, x_baseline: torch.Tensor | None = None,
             others: Sequence[Method] = (), reference: Any | None = None, draws: int = 3,
             calibration: Mapping[str, Any] | None = None, seed: int = 0) -> Diagnostics:
    """Diagnose x̂ = method(y, physics) without ground truth (see the module docstring).

    `x_hat` / `x_baseline` reuse reconstructions already computed; `baseline` (or
    `x_baseline`) gives ρ_b — the trust reference's x̂_r (``evaluation.trust_reference``); `calibration`
    (see `calibration`: the ``score`` of the method's `invmap.trust.fitted.Fitted` record; None:
    uncalibrated, default spreads) sets the training conditions' residual floor and the spreads of
    the score; `reference` is the physics the method was trained for (default:
    ``reference_physics(method)``; None: no sensitivity ratio); `others` are further
    reconstructors for the disagreement; `draws` fresh noise draws for the (reported)
    sensitivity.
    """
    with torch.no_grad():
        if x_hat is None:
            x_hat = method(y, physics)
        if x_baseline is None and baseline is not None:
            x_baseline = baseline(y, physics)
    notes: list[str] = []
    cal = dict(calibration or {})
    rho, rho_b, misfit, home = _fits(x_hat, y, physics, x_baseline, cal.get("floor"))
    if x_baseline is None:
        notes.append("no baseline: misfit against the noise level only")
    if cal and bool(cal.get("baseline")) != (x_baseline is not None):
        cal.pop("misfit", None)  # calibrated with(out) a baseline: that spread does not apply
        notes.append("misfit calibrated " + ("with" if x_baseline is None else "without")
                     + " a baseline: default spread")
    if not cal:
        notes.append("not calibrated at the training conditions: misfit against the baseline and the noise only")
    d = Diagnostics(rho, rho_b, misfit, rho_home=home, calibration=cal or None, notes=notes,
                    estimated=physics.operator.estimate_calibration(y))
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


def _log_stats(v: torch.Tensor) -> dict[str, float]:
    """median and robust spread (1.4826 · MAD, at least `MIN_SPREAD`) of log v over the finite values."""
    lv = v.log()
    lv = lv[torch.isfinite(lv)]
    if lv.numel() == 0:
        return {"median": 0.0, "spread": DEFAULT_SPREAD}
    med = float(lv.median())
    return {"median": med, "spread": max(1.4826 * float((lv - med).abs().median()), MIN_SPREAD)}


def calibration(x_hat: torch.Tensor, y: torch.Tensor, physics: Any,
                x_baseline: torch.Tensor | None = None) -> dict[str, Any]:
    """The method at its training conditions, from validation measurements y (x̂ its
    reconstructions, x̂_b the baseline's; no ground truth): the residual ``floor`` f
    (`residual_floor`), and the median and robust spread of log a (``misfit``) and of
    log ρ_home (``home``) that turn them into z-scores; ``baseline`` says whether a was
    measured against a baseline."""
    floor = residual_floor(x_hat, y, physics)
    _rho, _rho_b, misfit, home = _fits(x_hat, y, physics, x_baseline, floor)
    return {"floor": floor, "baseline": x_baseline is not None, "misfit": _log_stats(misfit),
            "home": _log_stats(home), "images": int(y.shape[0])}


def residual_floor(x_hat: torch.Tensor, y: torch.Tensor, physics: Any) -> float:
    """f = median_i √(max(0, ‖K x̂_i − y_i‖² − E‖e_i‖²) / ‖y_i‖²): the relative model error a
    method's reconstructions leave in measurements y from its training conditions."""
    r2, n2, y2 = residual(x_hat, y, physics) ** 2, noise_energy(y, physics), _sqnorm(y)
    return float(((r2 - n2).clamp_min(0) / y2.clamp_min(1e-300)).sqrt().median())


__all__ = ["Diagnostics", "diagnose", "calibration", "residual_floor", "consistency", "residual", "noise_energy",
           "fresh_noise", "sensitivity_gain", "spread", "reference_physics", "SUSPECT_SCORE", "DEFAULT_SPREAD"]
