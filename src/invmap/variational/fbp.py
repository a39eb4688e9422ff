"""The ``fbp`` method: filtered back-projection x̂ = FBP(y) for the operators with a CT geometry
(the reconstruction formula, its filters and weights: `invmap.solvers.fbp`)."""

from __future__ import annotations

from ..solvers.fbp import FILTERS, fbp
from .methods import METHODS, Method


# ------------------------------------------------------------- the registered method
@METHODS.register("fbp")
class FBP(Method):
    """Filtered back-projection (operators with a CT geometry: ``K.has_fbp``)."""

    fallback = "adjoint"  # Kᵀy: where K has no filtered back-projection

    @classmethod
    def cannot_run(cls, operator):
        return None if operator.has_fbp else "needs an operator with a filtered back-projection (CT)"

    def __init__(self, filter: str = "ramp", cutoff: float = 1.0):
        super().__init__()
        if filter not in FILTERS:
            raise ValueError(f"fbp: unknown filter '{filter}'; available: {', '.join(FILTERS)}")
        if not 0 < cutoff <= 1:
            raise ValueError(f"fbp: cutoff must be in (0, 1], got {cutoff}")
        self.filter, self.cutoff = filter, float(cutoff)

    def _run(self, y, physics, x0, callback):
        op = physics.operator
        if not op.has_fbp:
            raise ValueError(f"fbp: needs an operator with a filtered back-projection (a CT geometry: tomography, "
                             f"fanbeam), got '{op.name or type(op).__name__}'")
        return fbp(y, op, filter=self.filter, cutoff=self.cutoff)

    def default_grid(self, physics, y):
        return {"filter": ["ramp", "hann"], "cutoff": [0.4, 0.6, 0.8, 1.0]}
