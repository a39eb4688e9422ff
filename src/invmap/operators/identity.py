"""Identity operator K = I (denoising: y = x + e)."""

from __future__ import annotations

import torch

from .base import LinearOperator
from .registry import OPERATORS


@OPERATORS.register("identity")
class Identity(LinearOperator):
    """K = I: denoising, y = x + e; Kᵀ = I, ‖K‖ = 1."""

    def __init__(self, image_shape: tuple[int, int]):
        super().__init__(image_shape, image_shape)
        self._params = {}

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y.clone()

    def norm(self, *args, **kwargs) -> float:
        return 1.0

    def transform_groups(self) -> tuple[str, ...]:
        """Rotations, flips and shifts (K = I commutes with each)."""
        return self._image_groups(shifts=True)
