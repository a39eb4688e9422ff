"""The experiment of a run: built once from its config, handed from stage to stage.

    simulate → tune → train → evaluate → stress → report

`Experiment(config, run_dir)` holds what the stages of `invmap.pipeline` share:

- ``physics``: the task's nominal (K, e), built once — the training, the tuning, the trust
  calibration and the evaluation reconstruct with this one object (an operator's matrices,
  made on first use, are made once);
- the validation pairs (y, x, physics) of the split the training validates on, each
  simulated once, when first asked for: the tuning of the baselines takes the first n and
  the trust calibration the first 2n of the same pairs;
- the test pairs of the evaluation (``data.test``, or the n asked for), simulated once.

Sample i's noise is seeded by (seed, split, i) (`invmap.data.PairDataset`), so pair i is the
same whichever call simulated it. The stress study builds its own conditions (each level moves
one factor away from these) and is not served from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import build_source
from .task import condition_from_config, make_pairs

Measured = tuple[torch.Tensor, torch.Tensor, Any]  # (y, x, physics)


@dataclass
class Experiment:
    """What a run is made of (see the module docstring); `physics` defaults to the config's."""

    config: Any
    run_dir: Path | None = None
    physics: Any = None
    _val: Measured | None = field(default=None, repr=False)
    _test: dict[int, Measured] = field(default_factory=dict, repr=False)
    _val_size: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.physics is None:
            self.physics = self.config.physics()
        self.run_dir = None if self.run_dir is None else Path(self.run_dir)

    @property
    def operator(self) -> Any:
        """The task's nominal K."""
        return self.physics.operator

    def val_pairs(self, n: int | None = None) -> Measured:
        """(y, x, physics) of the first `n` validation pairs (default and at most ``data.val``;
        fewer when the source has fewer), each simulated once."""
        d = self.config.data
        n = min(self.val_size(), self.val_size() if n is None else max(1, int(n)))
        if n == 0:
            raise ValueError(f"image source '{d.source}' has no val images")
        have = 0 if self._val is None else self._val[0].shape[0]
        if have < n:
            cond = condition_from_config(self.config, n=int(d.val), simulation=d.nominal_simulation)
            y, x, _ = make_pairs(cond, split="val", indices=range(have, n), physics=self.physics)
            self._val = (y, x, self.physics) if self._val is None else \
                (torch.cat([self._val[0], y]), torch.cat([self._val[1], x]), self.physics)
        y, x, phys = self._val
        return y[:n], x[:n], phys

    def val_size(self) -> int:
        """The pairs the validation split holds: ``data.val``, fewer when the source has fewer."""
        if self._val_size is None:
            d = self.config.data
            src = build_source(d.source, int(d.size), split="val", count=int(d.val), seed=int(self.config.seed), **d.params)
            self._val_size = min(int(d.val), len(src))
        return self._val_size

    def test_pairs(self, n: int | None = None) -> Measured:
        """(y, x, physics) of the first `n` test images (default ``data.test``; ``data.test_simulation``)."""
        n = int(self.config.data.test if n is None else n)
        if n not in self._test:
            self._test[n] = make_pairs(condition_from_config(self.config, n=n), split="test", physics=self.physics)
        return self._test[n]


__all__ = ["Experiment", "Measured"]
