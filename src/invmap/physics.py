"""Physics = forward operator K + noise model: the measurement y = K x + e.

Every reconstructor — FBP, CGLS, TV, a trained network — is called as
``x_hat = method(y, physics)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import noise as noise_mod
from .operators import LinearOperator, from_spec, spec


@dataclass
class Physics:
    """A measurement process: ``operator`` K and ``noise`` (default: none)."""

    operator: LinearOperator
    noise: noise_mod.NoiseModel = field(default_factory=lambda: noise_mod.build("none"))

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        """K x."""
        return self.operator(x)

    def measure(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """y = K x + e."""
        return self.noise(self.operator(x), generator)

    def spec(self) -> dict:
        return {"operator": spec(self.operator), "noise": self.noise.spec()}

    @staticmethod
    def from_spec(d: dict) -> "Physics":
        n = d.get("noise") or {"name": "none", "params": {}}
        return Physics(from_spec(d["operator"]), noise_mod.build(n["name"], **n.get("params", {})))
