"""Inpainting K x = M ⊙ x: a binary mask M keeps the observed pixels (Kᵀ = K, ‖K‖ = 1).

The mask removes either a seeded random set of pixels (exactly ``round(missing·H·W)`` of
them) or a rectangle ``box = (top, left, height, width)``, or both; y keeps the image
shape with zeros where pixels are missing (`measured()` = M: noise is drawn on the
observed pixels only, so missing pixels stay exactly 0). The random pixels are a prefix of one seeded
permutation, so for one seed a larger ``missing`` removes a superset of the pixels (the
stress study uses this for unflagged dead pixels: K_sim misses a few more pixels than the
nominal K knows of).
"""

from __future__ import annotations

from typing import Sequence

import torch

from . import axes
from .base import LinearOperator
from .registry import OPERATORS


@OPERATORS.register("inpainting")
class Inpainting(LinearOperator):
    """Pixel mask y = M ⊙ x: a seeded random `missing` fraction and/or a `box` (top, left, height, width) removed.

    `missing` defaults to 0.5 without a box and to 0 with one.
    """

    def __init__(self, image_shape: tuple[int, int], missing: float | None = None,
                 box: tuple[int, int, int, int] | None = None, seed: int = 0):
        super().__init__(image_shape, image_shape)
        H, W = self.in_shape
        if missing is None:
            missing = 0.5 if box is None else 0.0
        if not 0.0 <= missing <= 1.0:
            raise ValueError(f"inpainting: missing must be a fraction in [0, 1], got {missing}")
        keep = torch.ones(H * W, dtype=torch.float64)
        n_missing = int(round(missing * H * W))
        if n_missing:
            g = torch.Generator().manual_seed(int(seed))
            keep[torch.randperm(H * W, generator=g)[:n_missing]] = 0.0
        keep = keep.reshape(H, W)
        if box is not None:
            top, left, h, w = (int(v) for v in box)
            if h < 0 or w < 0 or not (0 <= top < H and 0 <= left < W):
                raise ValueError(f"inpainting: box (top, left, height, width) = {tuple(box)} is not inside the {H}x{W} image")
            keep[top: top + h, left: left + w] = 0.0
        self.mask = keep
        self._params = {"missing": float(missing), "box": list(box) if box is not None else None, "seed": int(seed)}

    geometry_params = ("missing", "box", "seed")

    @classmethod
    def resized_params(cls, params: dict, old_shape: Sequence[int], new_shape: Sequence[int]) -> dict:
        """The box (pixels) scales with the image so it covers the same part of it; the missing
        fraction and the seed are kept (the random pixels are a fraction of the new image)."""
        p = dict(params)
        if p.get("box") is not None:
            (h0, w0), (h1, w1) = old_shape, new_shape
            top, left, h, w = (int(v) for v in p["box"])
            p["box"] = [int(top * h1 // h0), int(left * w1 // w0), max(1, round(h * h1 / h0)) if h else 0,
                        max(1, round(w * w1 / w0)) if w else 0]
        return p
    calibration_params = ("missing",)

    def stress_axes(self) -> list[axes.StressAxis]:
        """Missing fraction (geometry); unflagged dead pixels (calibration: K_sim misses a superset)."""
        return [axes.StressAxis("geometry", "geometry", "Acquisition geometry", "missing pixel fraction",
                                tuple(axes.values(self, "missing", (0.3, 0.5, 0.7, 0.85), "{v:.0%} missing")),
                                "'missing' of K changed for simulation AND reconstruction (methods see the new "
                                "geometry)."),
                axes.StressAxis("calibration", "calibration-mask", "Calibration: unflagged dead pixels",
                                "extra missing fraction, not in the nominal mask",
                                tuple(axes.shifted(self, "missing", (0.0, 0.01, 0.03, 0.1), "+{v:.0%}")),
                                "y simulated with 'missing' off by the given amount; every method reconstructs "
                                "with the nominal K.", sim_only=True)]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.buffer("mask", x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.buffer("mask", y)

    def measured(self) -> torch.Tensor:
        """The observed pixels M."""
        return self.mask > 0

    def transform_groups(self) -> tuple[str, ...]:
        """Rotations and flips of the scene (the mask does not commute with them: what EI learns from)."""
        return self._image_groups()

    def split_units(self) -> torch.Tensor:
        """One unit per observed pixel (−1: missing)."""
        idx = torch.arange(self.mask.numel()).reshape(self.mask.shape)
        return torch.where(self.mask > 0, idx, torch.full_like(idx, -1))

    def norm(self, *args, **kwargs) -> float:
        return float(self.mask.max())
