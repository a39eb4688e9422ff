"""Trust at inference: is a reconstruction x̂ = method(y, physics) believable without ground truth?

- `diagnose(method, y, physics, baseline=…)` → `Diagnostics`: data-consistency ratio ρ
  (from the noise model), the baseline's ρ, noise sensitivity and disagreement against the
  method's training conditions, one trust score and verdict per image;
- `SafeReconstructor(model, baseline)`: refines suspect images by a TV solve anchored at x̂;
- `auroc` / `roc_curve`: how well a score separates an event (validation in the stress study).
"""

from .diagnostics import (SUSPECT_EXCESS, Diagnostics, consistency, diagnose, fresh_noise, noise_energy, residual_floor,
                          calibration,
                          reference_physics, residual, sensitivity_gain, spread)
from .roc import auroc, roc_curve
from .safe import SafeReconstructor

__all__ = ["Diagnostics", "diagnose", "consistency", "residual", "noise_energy", "fresh_noise", "sensitivity_gain",
           "spread", "reference_physics", "residual_floor", "calibration", "SUSPECT_EXCESS", "SafeReconstructor", "auroc", "roc_curve"]
