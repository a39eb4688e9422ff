"""Trust at inference: is a reconstruction x̂ = method(y, physics) believable without ground truth?

- `diagnose(method, y, physics, baseline=…)` → `Diagnostics`: data-consistency ratio ρ
  (from the noise model), the baseline's ρ, noise sensitivity and disagreement, one score calibrated
  at the method's training conditions, a trust value and verdict per image;
- `SafeReconstructor(model, baseline)`: a TV solve anchored at x̂ whose anchor weakens as the score rises;
- `auroc` / `roc_curve`: how well a score separates an event (validation in the stress study).
"""

from .diagnostics import (DEFAULT_SPREAD, SUSPECT_SCORE, Diagnostics, calibration, consistency, diagnose, fresh_noise,
                          noise_energy, reference_physics, residual, residual_floor, sensitivity_gain, spread)
from .roc import auroc, roc_curve
from .safe import SafeReconstructor

__all__ = ["Diagnostics", "diagnose", "consistency", "residual", "noise_energy", "fresh_noise", "sensitivity_gain",
           "spread", "reference_physics", "residual_floor", "calibration", "SUSPECT_SCORE", "DEFAULT_SPREAD", "SafeReconstructor", "auroc", "roc_curve"]
