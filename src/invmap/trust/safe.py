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

**Recalibration.** When the measurements themselves say that a calibration parameter of K
is off (`LinearOperator.estimate_calibration`, e.g. the detector offset of parallel-beam CT
from the projections' first moments, more than `SUSPECT_SCORE` standard errors from K's
value), x̂ and the baseline are recomputed with K set to the estimate (rounded to
`RECALIBRATION_STEP`, so the scans of one miscalibrated scanner share one operator), and
the anchored solve runs on that K. The classical baselines of an evaluation are not
recalibrated: they are the plain methods with the K they are given.

**What safe promises.** Per image, safe says whether it can promise to be within
`TOLERANCE_DB` (0.5 dB) of the baseline it falls back to, from the same signals as the PSNR
bound (`invmap.trust.conformal`): a split-conformal lower bound on the margin
m = PSNR(x̂_safe, x) − PSNR(x̂_b, x), fitted on held-out calibration pairs at the training
conditions and scaled by the model's trust score, m ≥ c − q·σ(T) at probability 1 − α
(`fit_promise`). Where that bound is below −0.5 dB it says so (``invmap reconstruct --safe``
prints it and the sidecar records it; the evaluation and the stress study score how often it
promised and how often a promise held) instead of answering silently.

`SafeReconstructor` is itself a reconstructor, ``x̂ = safe(y, physics)``, so evaluate,
stress and the CLI use it like any other method.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from .. import metrics
from ..capabilities import Method
from ..operators import from_spec
from ..physics import Physics
from ..variational.methods import _box
from ..variational.pdhg import ChambollePockTV
from .conformal import PsnrBound, fit
from .diagnostics import Diagnostics, diagnose
from .fitted import Fitted

#: estimated calibration parameters are rounded to these steps (the parameter's units; others
#: to 0.01) before K is rebuilt with them, so that nearby estimates share one operator and one
#: batched solve: 0.05 px is about two standard errors of the CT detector-offset estimate on
#: the default task and far below the shifts that cost a model accuracy (0.25 px: ≈ −0.2 dB)
RECALIBRATION_STEP = {"detector_offset": 0.05}

#: safe promises x̂_safe no more than this many dB below the baseline's x̂, or says it cannot
TOLERANCE_DB = 0.5


def recalibrated(physics: Any, values: Mapping[str, float]) -> Any:
    """`physics` with its operator's parameters set to `values` (the noise model kept)."""
    spec = physics.operator.spec()
    return Physics(from_spec(dict(spec, params=dict(spec["params"], **values))), physics.noise)


class SafeReconstructor:
    """``safe(y, physics)``: `model`'s x̂, refined by the anchored TV solve with μ from its score."""

    learned = True  # it wraps a trained model: never a classical baseline in the verdicts

    def __init__(self, model: Method, baseline: Any, mu0: float = 1e-2, free: float = 2.0,
                 decade: float = 2.0, draws: int = 0, reference: Any | None = None,
                 reuses: Mapping[str, str] | None = None, recalibrate: bool = True,
                 calibration: Fitted | None = None, trust_reference: Method | None = None):
        if not hasattr(baseline, "lam") or not hasattr(baseline, "iters"):
            raise ValueError("safe: the baseline must be a TV-type method with lam and iters (e.g. the tuned 'tv')")
        if not (mu0 > 0 and free >= 0 and decade > 0):
            raise ValueError(f"safe: need mu0 > 0, free >= 0, decade > 0 (got {mu0}, {free}, {decade})")
        self.model, self.baseline = model, baseline  # `capabilities`: its baseline; it wraps the model
        self.mu0, self.free, self.decade, self.draws = float(mu0), float(free), float(decade), int(draws)
        self.reference = reference
        self.recalibrate = bool(recalibrate)
        #: {"model": name, "baseline": name} of the methods of an evaluation computing the same x̂
        self.reuses = dict(reuses or {})
        self.last: Diagnostics | None = None  # the diagnostics of the last call
        self.mu: torch.Tensor | None = None  # μ / ‖K‖² per image of the last call
        #: per image of the last call: {parameter: value} K was recalibrated to ({}: none)
        self.corrections: list[dict[str, float]] = []
        #: per image of the last call: the verdict after recalibration (None: not recalibrated)
        self.after: list[str | None] = []
        #: the model's calibration record (`invmap.trust.fitted.Fitted`: the score's spreads at its training
        #: conditions, the margin bound m ≥ c − q·σ(T) in ``promise``); None: not calibrated
        self.calibration = calibration
        #: the method the model's trust score is measured against (default: the baseline it falls back to)
        self.trust_reference = trust_reference if trust_reference is not None else baseline

    @property
    def promise(self) -> Any:
        """The fitted margin bound (`fit_promise`, kept in the calibration record), or None."""
        return None if self.calibration is None else self.calibration.promise

    def calibrated(self, fitted: Fitted, trust_reference: Method | None = None, reference_name: str | None = None
                   ) -> "SafeReconstructor":
        """The same safe mode with the model's calibration record `fitted` (and the trust reference it was
        fitted against, lent by an evaluation under `reference_name`)."""
        reuses = dict(self.reuses)
        if reference_name is not None and reuses:
            reuses["reference"] = reference_name
        return SafeReconstructor(self.model, self.baseline, self.mu0, self.free, self.decade, self.draws,
                                 self.reference, reuses, self.recalibrate, fitted,
                                 trust_reference if trust_reference is not None else self.trust_reference)

    def _score_calibration(self) -> Any:
        return None if self.calibration is None else self.calibration.score

    @property
    def wraps(self) -> Method:
        """The learned method it refines: calibrated for it (`invmap.capabilities`)."""
        return self.model

    def fit_promise(self, x: torch.Tensor, x_safe: torch.Tensor, x_baseline: torch.Tensor, trust: torch.Tensor,
                    level: float, data_range: Any = 1.0) -> PsnrBound:
        """The margin bound fitted on held-out calibration pairs (truth x, safe's and the baseline's x̂,
        the model's trust T on them) at probability `level` (see the module docstring); it goes into the
        calibration record (`calibrated`), never onto this object."""
        margin = metrics.psnr(x_safe.float(), x.float(), data_range) - metrics.psnr(x_baseline.float(), x.float(),
                                                                                    data_range)
        return fit(margin, torch.zeros_like(margin, dtype=torch.float64), trust, level, data_range)

    def promised(self, trust: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(margin lower bound in dB, promised: bound ≥ −`TOLERANCE_DB`) per image from the model's trust T."""
        if self.promise is None:
            raise ValueError("safe: no margin bound fitted (calibrate it on held-out validation pairs first)")
        b = self.promise(torch.zeros(trust.shape[0], dtype=torch.float64), trust)
        return b, b >= -TOLERANCE_DB

    def params(self) -> dict:
        return {"baseline": getattr(self.baseline, "params", lambda: {})(), "mu0": self.mu0, "free": self.free,
                "decade": self.decade, "draws": self.draws, "recalibrate": self.recalibrate,
                "recalibration_step": dict(RECALIBRATION_STEP)}

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

    def refine(self, y: torch.Tensor, physics: Any, x_hat: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
        """x̂_safe for every image of x̂, given its trust score S (see the module docstring)."""
        b = self.baseline
        self.mu = self.relative_weight(score)
        mu = (self.mu * float(physics.operator.norm()) ** 2).to(device=x_hat.device, dtype=x_hat.dtype)
        solver = ChambollePockTV(physics.operator, y, lam=b.lam,
                                 box=_box(getattr(b, "lower", None), getattr(b, "upper", None),
                                          bool(getattr(b, "nonneg", False))),
                                 x0=x_hat, max_iter=int(b.iters), ratio=float(getattr(b, "ratio", 1.0)),
                                 record_every=0, anchor=x_hat, mu=mu)
        return solver.solve().to(x_hat.dtype)

    def from_diagnosis(self, y: torch.Tensor, physics: Any, x_hat: torch.Tensor, diag: Diagnostics) -> torch.Tensor:
        """x̂_safe from the model's x̂ and its diagnostics on y: the anchored solve, on a
        recalibrated K where y says K is off (see the module docstring)."""
        groups: dict[tuple, list[int]] = {}
        for i in range(y.shape[0]):
            fix = diag.miscalibrated(i) if self.recalibrate else {}
            key = tuple(sorted((k, _rounded(k, v)) for k, v in fix.items()))
            groups.setdefault(key, []).append(i)
        out = torch.empty_like(x_hat)
        mu = torch.empty(y.shape[0], dtype=torch.float64)
        score = diag.score
        self.corrections, self.after = [{} for _ in range(y.shape[0])], [None] * y.shape[0]
        for key, idx in groups.items():
            sel = torch.tensor(idx, dtype=torch.long)
            try:
                phys = recalibrated(physics, dict(key)) if key else None
            except (ValueError, TypeError) as e:  # an estimate K cannot take: keep the nominal K
                diag.notes.append(f"recalibration to {dict(key)} refused by the operator: {e}")
                phys = None
            if phys is None:
                out[sel] = self.refine(y[sel], physics, x_hat[sel], score[sel])
            else:
                yk = y[sel]
                xk = self.model(yk, phys).to(x_hat)
                dk = diagnose(self.model, yk, phys, x_hat=xk, baseline=self.trust_reference, draws=self.draws,
                              reference=self.reference, calibration=diag.calibration)
                out[sel] = self.refine(yk, phys, xk, dk.score)
                for j, i in enumerate(idx):
                    self.corrections[i], self.after[i] = dict(key), dk.verdict(j)
            mu[sel] = self.mu
        self.mu = mu
        return out

    def from_reconstructions(self, y: torch.Tensor, physics: Any, parts: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """x̂_safe from the model's x̂ (``parts["model"]``), the baseline's (``parts["baseline"]``) and the
        trust reference's (``parts["reference"]``; default the baseline's) on the same y — what
        ``safe(y, physics)`` computes, for an evaluation that already has them."""
        with torch.no_grad():
            x_r = parts.get("reference", parts["baseline"])
            diag = diagnose(self.model, y, physics, x_hat=parts["model"], x_baseline=x_r,
                            draws=self.draws, reference=self.reference, calibration=self._score_calibration())
            self.last = diag
            return self.from_diagnosis(y, physics, parts["model"], diag)

    def __call__(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        with torch.no_grad():
            parts = {"model": self.model(y, physics), "baseline": self.baseline(y, physics)}
            if self.trust_reference is not self.baseline:
                parts["reference"] = self.trust_reference(y, physics)
        return self.from_reconstructions(y, physics, parts)


def _rounded(name: str, value: float) -> float:
    step = RECALIBRATION_STEP.get(name, 0.01)
    return round(round(value / step) * step, 10)


__all__ = ["SafeReconstructor", "recalibrated", "RECALIBRATION_STEP", "TOLERANCE_DB"]
