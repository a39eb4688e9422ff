"""Measurement splitting's two halves of y = K x + e, and test-time averaging over them.

The units of y an operator offers (`LinearOperator.split_units`: CT views, sampled MRI lines,
observed pixels) are split in two interleaved halves A, B (every other unit, in the order of their
ids); `LinearOperator.restricted` gives each half's K_A and the map y ↦ y_A.

A network trained by splitting (``training.supervision: split``) only ever saw half of y as its
input. `SplitAverage` applies it as Noise2Inverse does (Hendriksen et al. 2020), on each half and
averaged: x̂ = ½ [f(y_A, K_A) + f(y_B, K_B)], inputs like those it learned from (run method
``split-mean``; BENCHMARKS.md measures what it gains over f(y, K)).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..physics import Physics

Half = tuple[Any, Callable[[torch.Tensor], torch.Tensor]]


def splittable(op) -> str | None:
    """None when `op` offers two halves to split y into; else why not (one line)."""
    units = op.split_units()
    if units is None or len(torch.unique(units[units >= 0])) < 2:
        name = op.name or type(op).__name__
        return (f"operator '{name}' has nothing to split its measurements into (no views, sampled lines or "
                "observed pixels)")
    return None


def interleaved_halves(op) -> list[Half]:
    """[(K_A, y ↦ y_A), (K_B, y ↦ y_B)]: the units of K in two interleaved halves (module docstring)."""
    why = splittable(op)
    if why is not None:
        raise ValueError(why)
    units = op.split_units()
    ids = torch.unique(units[units >= 0])
    n = int(units.max()) + 1
    halves = []
    for parity in (0, 1):
        keep = torch.zeros(n, dtype=torch.bool)
        keep[ids[parity::2]] = True
        halves.append(op.restricted(keep))
    return halves


class SplitAverage(torch.nn.Module):
    """x̂ = ½ [f(y_A, K_A) + f(y_B, K_B)]: a network trained by measurement splitting, applied on each
    half of y and averaged (module docstring). The halves of each K are made once."""

    learned = True

    def __init__(self, model: Any):
        super().__init__()
        self.model = model
        self._halves: dict[int, tuple[Any, list[Half]]] = {}

    def forward(self, y: torch.Tensor, physics: Physics) -> torch.Tensor:
        op = physics.operator
        hit = self._halves.get(id(op))
        if hit is None or hit[0] is not op:
            hit = self._halves[id(op)] = (op, interleaved_halves(op))
        parts = [self.model(take(y), Physics(k, physics.noise)) for k, take in hit[1]]
        return sum(parts) / len(parts)


__all__ = ["splittable", "interleaved_halves", "SplitAverage"]
