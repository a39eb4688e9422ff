"""``adjoint``: back-projection x̂ = Kᵀy, the simplest method (and a template for a new one:
a class registered in `METHODS` with its typed settings; nothing else needs editing)."""

from __future__ import annotations

from .methods import METHODS, Method


@METHODS.register("adjoint")
class Adjoint(Method):
    """Back-projection x̂ = Kᵀy (optionally scaled by 1/‖K‖²)."""

    def __init__(self, normalize: bool = False):
        super().__init__()
        self.normalize = normalize

    def _run(self, y, physics, x0, callback):
        op = physics.operator
        x = op.adjoint(y)
        return x / op.norm() ** 2 if self.normalize else x
