"""Transform groups {T_g} for equivariant imaging: maps of images x ``[B, C, H, W]`` onto images.

Equivariant imaging (EI, Chen, Tachella & Davies 2021) assumes the set of images is invariant,
x ∈ X ⇒ T_g x ∈ X; which groups hold is asked of the operator (``K.transform_groups()``), never
looked up by its name. Each draw excludes the identity (it would teach nothing):

- ``rotations``: rot90 by k ∈ {1, 2, 3} quarter turns (square images);
- ``flips``: left–right, up–down, or both;
- ``shifts``: circular shifts by (dy, dx) ≠ (0, 0).

A draw ``g`` is a small tuple, so one g applies to a whole batch; `apply(name, g, x)` is T_g x.
"""

from __future__ import annotations

import torch

GROUPS = ("rotations", "flips", "shifts")


def draw(name: str, shape: tuple[int, ...], generator: torch.Generator) -> tuple[int, ...]:
    """g ≠ identity of group `name` for images of `shape` (… H, W), from `generator`."""
    H, W = int(shape[-2]), int(shape[-1])
    if name == "rotations":
        return (int(torch.randint(1, 4, (1,), generator=generator)),)
    if name == "flips":
        return (int(torch.randint(1, 4, (1,), generator=generator)),)  # bit 0: left–right, bit 1: up–down
    if name == "shifts":
        k = int(torch.randint(1, H * W, (1,), generator=generator))
        return (k // W, k % W)
    raise ValueError(f"unknown transform group {name!r}; available: {', '.join(GROUPS)}")


def apply(name: str, g: tuple[int, ...], x: torch.Tensor) -> torch.Tensor:
    """T_g x for images x ``[..., H, W]``."""
    if name == "rotations":
        return torch.rot90(x, g[0], dims=(-2, -1))
    if name == "flips":
        dims = [d for d, bit in ((-1, 1), (-2, 2)) if g[0] & bit]
        return torch.flip(x, dims)
    if name == "shifts":
        return torch.roll(x, shifts=(g[0], g[1]), dims=(-2, -1))
    raise ValueError(f"unknown transform group {name!r}; available: {', '.join(GROUPS)}")


__all__ = ["GROUPS", "draw", "apply"]
