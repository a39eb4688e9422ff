"""Augmented training images: x' = s · T(C_z(x)), a new draw per index (and epoch).

For training image i of epoch e a generator seeded by (seed, split, i[, e]) draws

- a zoom z from ``zoom`` and a crop C_z: the image rendered on a z× finer grid (a folder's
  file resized to z·size, real detail; a phantom rendered again), of which a random
  ``size × size`` window is kept (z = 1: the whole image);
- T: a random flip and/or a rotation by a multiple of 90° (``flips``, ``rot90``);
- an intensity factor s ∈ [1 − a, 1 + a] (``intensity`` = a).

The measurement is simulated from the augmented image, y = K x' + e (on the fine grid too:
``fine(indices, f)`` applies the same window, flip, rotation and factor to the image
rendered at f·z, with the window's offsets scaled by f), so y stays consistent with x'
and the inverse-crime guard (`invmap.data.crime`) holds. Image i is the same in every run
and in any batch; with ``fresh`` it changes with the epoch (`set_epoch`). Augmentation is
for training only: validation and test images are never augmented.

>>> from invmap.data import build_source
>>> src = Augmented(build_source("ellipses", size=32, count=4), flips=True, rot90=True)
>>> src.batch([0, 1]).shape
torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import budget
from .sources import ImageSource, mix_seed, split_code

#: salt of the augmentation draws (apart from the images' and the noise's streams)
AUGMENT_STREAM = 0xA06


class Augmented(ImageSource):
    """`base`'s images with seeded random zoomed crops, flips, 90° rotations and intensity factors."""

    def __init__(self, base: ImageSource, flips: bool = False, rot90: bool = False, zoom: Sequence[int] = (1,),
                 intensity: float = 0.0, fresh: bool = True, seed: int | None = None):
        super().__init__(base.size, base.split, base.seed if seed is None else seed)
        if base.split != "train":
            raise ValueError(f"augmentation is for training images only, not the {base.split} split")
        zoom = tuple(int(z) for z in zoom)
        if not zoom or min(zoom) < 1:
            raise ValueError(f"augment.zoom: integer factors >= 1, got {list(zoom)}")
        if not 0 <= float(intensity) < 1:
            raise ValueError(f"augment.intensity must lie in [0, 1), got {intensity}")
        self.base, self.name, self.analytic = base, base.name, base.analytic
        self.flips, self.rot90, self.zoom, self.intensity, self.fresh = bool(flips), bool(rot90), zoom, float(intensity), bool(fresh)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()  # seen by DataLoader workers too

    def set_epoch(self, epoch: int) -> None:
        """Select epoch `epoch`'s draws (only with ``fresh``; else every epoch draws the same)."""
        self._epoch.fill_(int(epoch))

    def __len__(self) -> int:
        return len(self.base)

    def draw(self, i: int) -> dict:
        """Image i's augmentation at the current epoch: zoom, window offset (on the size grid),
        flip, number of quarter turns, intensity factor."""
        i = self._check_index(i)
        e = int(self._epoch) if self.fresh else 0
        g = np.random.Generator(np.random.PCG64(mix_seed(self.seed, AUGMENT_STREAM, split_code(self.split), i, e)))
        z = int(self.zoom[int(g.integers(len(self.zoom)))])
        free = (z - 1) * self.size
        return {"zoom": z, "row": int(g.integers(free + 1)), "col": int(g.integers(free + 1)),
                "flip": bool(self.flips and g.integers(2)), "turns": int(g.integers(4)) if self.rot90 else 0,
                "scale": float(1 + self.intensity * (2 * g.random() - 1))}

    def _render(self, indices: Sequence[int], factor: int) -> torch.Tensor:
        n = self.size * factor
        out = torch.zeros(len(indices), 1, n, n)
        draws = [self.draw(i) for i in indices]
        for z in sorted({d["zoom"] for d in draws}):
            ks = [k for k, d in enumerate(draws) if d["zoom"] == z]
            budget.check(4 * len(ks) * (n * z) ** 2, f"augment.zoom {z}: {len(ks)} images of {n * z}×{n * z}")
            big = self.base.fine([indices[k] for k in ks], factor * z) if factor * z > 1 else self.base.batch(
                [indices[k] for k in ks])
            for b, k in zip(big, ks):
                d = draws[k]
                r, c = d["row"] * factor, d["col"] * factor
                x = b[:, r:r + n, c:c + n]
                if d["flip"]:
                    x = x.flip(-1)
                out[k] = torch.rot90(x, d["turns"], dims=(-2, -1)) * d["scale"]
        return out

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        return self._render([int(i) for i in indices], 1)

    def fine(self, indices: Sequence[int], factor: int = 2) -> torch.Tensor:
        """The same augmented images on a `factor`× finer grid (the base rendered at factor·z)."""
        return self._render([int(i) for i in indices], int(factor))

    def params(self) -> dict:
        return {**self.base.params(), "augment": {"flips": self.flips, "rot90": self.rot90, "zoom": list(self.zoom),
                                                  "intensity": self.intensity, "fresh": self.fresh}}

    def spec(self) -> dict:
        return {**self.base.spec(), "params": self.params()}


__all__ = ["Augmented", "AUGMENT_STREAM"]
