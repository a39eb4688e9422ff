"""K̃ = K/‖K‖ and ỹ = y/‖K‖ for one call of an iterative method on y = K x + e.

Iterations on ½‖K̃x − ỹ‖² see ‖K̃‖ = 1 whatever the operator (a unit step size is stable, and
data-term gradients K̃ᵀ(K̃x − ỹ) = Kᵀ(Kx − y)/‖K‖² have one scale for CT, blur and MRI alike)
while K̃x = ỹ has the same solutions x. ‖K‖ is the operator's own cached power-method
estimate, so a changed geometry (the stress study) is normalised by its own norm. K̃ and K̃ᵀ
always run in float32, outside any autocast. Used by the learned kinds (`invmap.models`) and
the plug-and-play methods (`invmap.variational`); their first iterate: `invmap.solvers.fbp.first_iterate`.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import operator_of


class Normalised:
    """K̃ = K/‖K‖, K̃ᵀ and ỹ = y/‖K‖ for one call (see the module docstring)."""

    def __init__(self, physics: Any, y: torch.Tensor, who: str):
        op = operator_of(physics)
        if len(op.in_shape) != 2:
            raise ValueError(f"{who} reconstructs 2-D images, but operator '{op.name}' has images "
                             f"[{', '.join(map(str, op.in_shape))}]")
        n = float(op.norm())
        if not n > 0:
            raise ValueError(f"{who}: operator '{op.name}' has norm 0 (it measures nothing)")
        self.op, self.c, self.complex = op, 1.0 / n, bool(y.is_complex())
        self.y = self._fp32(y) * self.c

    @staticmethod
    def _fp32(t: torch.Tensor) -> torch.Tensor:
        return t if t.is_complex() else t.float()

    def K(self, x: torch.Tensor) -> torch.Tensor:
        """K̃ x."""
        with torch.autocast(x.device.type, enabled=False):
            return self.op.forward(x.float()) * self.c

    def Kt(self, r: torch.Tensor) -> torch.Tensor:
        """K̃ᵀ r (a real image)."""
        with torch.autocast(r.device.type, enabled=False):
            out = self.op.adjoint(self._fp32(r)) * self.c
        return out.real if out.is_complex() else out

    def operator(self):
        """K̃ as a `LinearOperator` (for the classical solvers)."""
        return self.op * self.c

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇ ½‖K̃x − ỹ‖² = K̃ᵀ(K̃x − ỹ)."""
        return self.Kt(self.K(x) - self.y)


__all__ = ["Normalised"]
