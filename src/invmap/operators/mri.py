"""Single-coil Cartesian MRI: K x = M ⊙ F x, a masked, centred, orthonormal 2-D DFT.

Convention (as fastMRI): F x = fftshift(fft2(ifftshift(x), norm="ortho")), so the image
origin is pixel (H//2, W//2) and the k-space DC term sits at (H//2, W//2); F is unitary.
Phase encoding runs along the rows: the mask M keeps whole k-space rows (ky lines, all kx),
namely the ``round(center_fraction·H)`` lines around the centre plus further lines chosen
at random (seeded) or equispaced, ``round(H / acceleration)`` lines in all.

y = M ⊙ F x is complex with the image's shape (unsampled entries are 0); real images and
the real inner product <a, b> = Re Σ conj(a) b give the adjoint

    Kᵀ y = Re F^H (M ⊙ y),   F^H y = fftshift(ifft2(ifftshift(y), norm="ortho")),

so Kᵀ is the zero-filled reconstruction and ‖K‖ = 1. `measured()` is M: noise is drawn on
the sampled entries only, so y is exactly 0 off the mask (see `invmap.noise` for the
complex-noise convention E|e|² = σ² per sampled entry).

``kspace_shift`` δ (in k-space samples, along the readout kx = the columns) models a
gradient delay: every sample is taken at kx + δ instead of kx, i.e.

    K x = M ⊙ F (φ ⊙ x),   φ[n] = exp(−2πi δ (n − W//2) / W),   Kᵀ y = Re(φ̄ ⊙ F^H (M ⊙ y)),

still exactly adjoint and ‖K‖ = 1. The stress study simulates with δ ≠ 0 while methods
reconstruct with δ = 0 (a calibration mismatch).
"""

from __future__ import annotations

from typing import Literal

import torch

from . import axes
from .base import LinearOperator
from .registry import OPERATORS


def centered_fft2(x: torch.Tensor) -> torch.Tensor:
    """F x = fftshift(fft2(ifftshift(x), norm="ortho")) over the last two dimensions."""
    d = (-2, -1)
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=d), norm="ortho"), dim=d)


def centered_ifft2(y: torch.Tensor) -> torch.Tensor:
    """F^H y = fftshift(ifft2(ifftshift(y), norm="ortho")) over the last two dimensions."""
    d = (-2, -1)
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(y, dim=d), norm="ortho"), dim=d)


def line_mask(n: int, acceleration: float, center_fraction: float, pattern: str, seed: int) -> torch.Tensor:
    """Boolean mask of the n phase-encoding lines kept (centre block + random/equispaced lines)."""
    if not acceleration >= 1:
        raise ValueError(f"mri: acceleration must be >= 1, got {acceleration}")
    if not 0 <= center_fraction <= 1:
        raise ValueError(f"mri: center_fraction must be in [0, 1], got {center_fraction}")
    keep = torch.zeros(n, dtype=torch.bool)
    n_center = int(round(center_fraction * n))
    start = n // 2 - n_center // 2
    keep[start: start + n_center] = True
    n_total = max(int(round(n / acceleration)), n_center, 1)
    if pattern == "equispaced":
        g = torch.Generator().manual_seed(int(seed))
        offset = int(torch.randint(0, max(int(round(acceleration)), 1), (1,), generator=g))
        idx = torch.arange(offset, n, max(int(round(acceleration)), 1))
        keep[idx] = True
    elif pattern == "random":
        rest = torch.nonzero(~keep).flatten()
        g = torch.Generator().manual_seed(int(seed))
        extra = max(n_total - int(keep.sum()), 0)
        keep[rest[torch.randperm(rest.numel(), generator=g)[:extra]]] = True
    else:  # pragma: no cover - Literal validated by the registry
        raise ValueError(f"mri: unknown pattern '{pattern}'; choose random or equispaced")
    if not keep.any():
        keep[n // 2] = True
    return keep


@OPERATORS.register("mri")
class MRI(LinearOperator):
    """Single-coil Cartesian MRI y = M ⊙ F x: centred orthonormal FFT, phase-encoding lines kept by a seeded mask."""

    complex_output = True

    def __init__(self, image_shape: tuple[int, int], acceleration: float = 4.0, center_fraction: float = 0.08,
                 pattern: Literal["random", "equispaced"] = "random", seed: int = 0, kspace_shift: float = 0.0):
        super().__init__(image_shape, image_shape)
        H, W = self.in_shape
        lines = line_mask(H, acceleration, center_fraction, pattern, seed)
        self.lines = lines
        self.mask = lines.to(torch.float64)[:, None].expand(H, W).contiguous()
        shift = float(kspace_shift)
        if not torch.isfinite(torch.tensor(shift)):
            raise ValueError(f"mri: kspace_shift must be a finite number of k-space samples, got {kspace_shift}")
        n = torch.arange(W, dtype=torch.float64) - W // 2
        self.phase = torch.polar(torch.ones(W, dtype=torch.float64), -2 * torch.pi * shift * n / W) if shift else None
        self._params = {"acceleration": float(acceleration), "center_fraction": float(center_fraction),
                        "pattern": pattern, "seed": int(seed), "kspace_shift": shift}

    geometry_params = ("acceleration", "center_fraction", "pattern", "seed")
    calibration_params = ("kspace_shift",)

    def stress_axes(self) -> list[axes.StressAxis]:
        """Acceleration (geometry); a gradient delay (calibration: k-space shift along the readout)."""
        levels, skipped = axes.scaled(self, "acceleration", (0.5, 1.0, 1.5, 2.0), "R={v:g}")
        return [axes.StressAxis("geometry", "geometry", "Acquisition geometry", "acceleration (k-space undersampling)",
                                tuple(levels), "'acceleration' of K changed for simulation AND reconstruction "
                                "(methods see the new geometry).", skipped=skipped),
                axes.StressAxis("calibration", "calibration-kspace", "Calibration: k-space shift (gradient delay)",
                                "readout shift of the k-space samples (samples)",
                                tuple(axes.shifted(self, "kspace_shift", (0.0, 0.25, 0.5, 1.0), "{v:+g}")),
                                "y simulated with 'kspace_shift' off by the given amount; every method "
                                "reconstructs with the nominal K.", sim_only=True)]

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.buffer("mask", x)
        if self.phase is not None:
            x = x * self.buffer("phase", x)
        return centered_fft2(x) * m

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        m = self.buffer("mask", y)
        z = centered_ifft2(y * m)
        if self.phase is not None:
            z = z * self.buffer("phase", y).conj()
        return z.real

    def measured(self) -> torch.Tensor:
        """The sampled k-space entries M (whole phase-encoding rows)."""
        return self.mask > 0

    def transform_groups(self) -> tuple[str, ...]:
        """Rotations and flips of the scene (the line mask does not commute with them)."""
        return self._image_groups()

    def split_units(self) -> torch.Tensor:
        """One unit per sampled phase-encoding line (row index; −1: a line not sampled)."""
        rows = torch.arange(self.mask.shape[0])[:, None].expand(self.mask.shape)
        return torch.where(self.mask > 0, rows, torch.full_like(rows, -1))

    def norm(self, *args, **kwargs) -> float:
        return 1.0 if bool(self.lines.any()) else 0.0
