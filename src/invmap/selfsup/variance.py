"""What the self-supervised estimates share about y = K x + e: a real view of y, sums per image,
and the noise variance of each real component of y (asked of the noise model)."""

from __future__ import annotations

import torch

from ..physics import Physics


def real(t: torch.Tensor) -> torch.Tensor:
    """A real view of y-shaped t (complex: its [Re, Im] as a last axis)."""
    return torch.view_as_real(t) if t.is_complex() else t


def per_image(t: torch.Tensor) -> torch.Tensor:
    """Σ over every axis but the first: one number per image ``[B]``."""
    return t.flatten(1).sum(dim=1)


def variance(y: torch.Tensor, physics: Physics) -> tuple[torch.Tensor, torch.Tensor]:
    """(v, m): the noise variance of each real component of y (0 off the measured entries), and
    the mask of the measured real components, both shaped like `real(y)` (a complex entry of
    variance E|e|² = v has v/2 on each of Re and Im)."""
    op = physics.operator
    mask = op.measured()
    v = physics.noise.variance(y.detach(), mask).to(torch.float32)
    m = torch.ones(y.shape, dtype=torch.bool, device=y.device) if mask is None else mask.to(y.device).expand(y.shape)
    if y.is_complex():
        v, m = (v / 2).unsqueeze(-1).expand(*v.shape, 2), m.unsqueeze(-1).expand(*m.shape, 2)
    return v, m


__all__ = ["real", "per_image", "variance"]
