"""Training images from several sources with weights, and small sources cycled to a set count.

`Mixture([(src_1, n_1), …])` is one source of Σ n_k images: indices [0, n_1) are src_1's,
the next n_2 src_2's, and so on; a source holding fewer than its n_k images is cycled
(local index j ↦ j mod len(src_k)). Cycled copies of one image are distinct training pairs:
each draws its own noise (and augmentation, `invmap.data.augment`), since both are seeded
by the index in the mixture. The training loop shuffles the indices, so every minibatch
mixes the sources in proportion n_k / Σ n. The counts come from the weights w_k by largest
remainders (`mix_counts`): exactly reproducible, and within one image of w_k · N.

`split_source(...)` builds one split as a run uses it: the configured source (val and test
always, as they are), and for training the mixture of it and ``mix`` with their weights,
a small source cycled to ``count`` (``fill``), and augmentation on top.

>>> from invmap.data import build_source
>>> m = Mixture([(build_source("ellipses", 32, count=3), 3), (build_source("shepp-logan", 32, count=1), 5)])
>>> len(m), m.origin(7)
(8, (1, 0))
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from .augment import Augmented
from .sources import ImageSource, build_source


def mix_counts(total: int, weights: Sequence[float]) -> list[int]:
    """Integer counts n_k ≥ 0 with Σ n_k = `total`, n_k = w_k/Σw · total rounded by largest remainders."""
    w = [float(v) for v in weights]
    if not w or min(w) < 0 or not sum(w) > 0:
        raise ValueError(f"mixture weights must be >= 0 with a positive sum, got {w}")
    exact = [total * v / sum(w) for v in w]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(w)), key=lambda k: (counts[k] - exact[k], k))
    for k in by_remainder[:total - sum(counts)]:
        counts[k] += 1
    return counts


class Mixture(ImageSource):
    """Σ n_k images: the first n_1 from source 1, the next n_2 from source 2, … (small ones cycled)."""

    def __init__(self, parts: Sequence[tuple[ImageSource, int]]):
        parts = [(s, int(n)) for s, n in parts if int(n) > 0]
        if not parts:
            raise ValueError("a mixture needs at least one source with a positive count")
        first = parts[0][0]
        if any(s.size != first.size or s.split != first.split for s, _ in parts):
            raise ValueError("the sources of a mixture must share their image size and split")
        super().__init__(first.size, first.split, first.seed)
        self.parts = parts
        self.name = "+".join(s.name for s, _ in parts)
        self.analytic = all(s.analytic for s, _ in parts)
        self._starts = [sum(n for _, n in parts[:k]) for k in range(len(parts))]

    def __len__(self) -> int:
        return sum(n for _, n in self.parts)

    def origin(self, i: int) -> tuple[int, int]:
        """(part k, index in part k's source) of image i."""
        i = self._check_index(i)
        k = max(j for j, s in enumerate(self._starts) if s <= i)
        return k, (i - self._starts[k]) % len(self.parts[k][0])

    def _gather(self, indices: Sequence[int], get) -> torch.Tensor:
        where = [self.origin(i) for i in indices]
        out: list[torch.Tensor | None] = [None] * len(where)
        for k in sorted({k for k, _ in where}):
            ks = [m for m, (kk, _) in enumerate(where) if kk == k]
            for m, t in zip(ks, get(self.parts[k][0], [where[m][1] for m in ks])):
                out[m] = t
        return torch.stack(out)  # type: ignore[arg-type]

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        if not len(indices):
            return torch.zeros(0, 1, self.size, self.size)
        return self._gather(indices, lambda s, idx: s.batch(idx))

    def fine(self, indices: Sequence[int], factor: int = 2) -> torch.Tensor:
        if not len(indices):
            return torch.zeros(0, 1, self.size * factor, self.size * factor)
        return self._gather(indices, lambda s, idx: s.fine(idx, factor))

    def spec(self) -> dict:
        return {"name": self.name, "size": self.size, "split": self.split, "seed": self.seed, "count": len(self),
                "params": {"parts": [{**s.spec(), "count_in_mixture": n} for s, n in self.parts]}}


def split_source(source: str, size: int, split: str, count: int, seed: int = 0, params: Mapping[str, Any] | None = None,
                 mix: Sequence[Mapping[str, Any]] = (), fill: bool = False,
                 augment: Mapping[str, Any] | None = None) -> ImageSource:
    """The images of one split as a run uses them (see the module docstring).

    `mix`: entries ``{source, weight, params}``; the configured `source` takes the remaining
    weight 1 − Σ weight. `fill`: cycle a training source with fewer than `count` images.
    `augment`: `invmap.data.augment.Augmented` keyword arguments (None: no augmentation).
    """
    params = dict(params or {})
    if split != "train":
        return build_source(source, size, split=split, count=count, seed=seed, **params)
    entries = [(source, 1.0 - sum(float(m["weight"]) for m in mix), params)]
    entries += [(m["source"], float(m["weight"]), dict(m.get("params") or {})) for m in mix]
    counts = mix_counts(count, [max(w, 0.0) for _, w, _ in entries])
    parts = []
    for (name, _, p), n in zip(entries, counts):
        if n == 0:
            continue
        src = build_source(name, size, split="train", count=n, seed=seed, **p)
        parts.append((src, n if (fill or mix) else len(src)))
    images: ImageSource = parts[0][0] if len(parts) == 1 and parts[0][1] == len(parts[0][0]) else Mixture(parts)
    if augment is not None:
        images = Augmented(images, seed=seed, **augment)
    return images


__all__ = ["Mixture", "mix_counts", "split_source"]
