"""The loop every iterative solver shares: ``step()`` until a stopping rule, with history.

A solver holds its state (iterate ``x`` shaped ``[B, C, H, W]`` and whatever else it
needs), advances it by one ``step()``, says per sample whether it has stopped
(``stopped() -> [B] bool``) and reports per-sample diagnostics (``record() -> dict``).
`solve` runs at most ``max_iter`` steps, records the diagnostics every ``record_every``
steps (and at the end) in ``history`` and calls ``callback(k, x)`` after step k; a callback
returning True stops the loop.
"""

from __future__ import annotations

from typing import Callable

import torch

Callback = Callable[[int, torch.Tensor], "bool | None"]

#: Fraction of the largest admissible step a solver takes when that step comes from ‖K‖
#: (gradient descent and FISTA 1/L, PDHG στ‖A‖² < 1): ‖K‖ is itself a numerical estimate
#: (to `LinearOperator.norm`'s tolerance), and a step on the bound is on the edge of divergence.
STEP_SAFETY = 0.98


class IterativeSolver:
    """Base class: subclasses implement `step`, `record` and optionally `stopped`."""

    x: torch.Tensor

    def __init__(self, max_iter: int = 100, record_every: int = 10):
        if int(max_iter) < 0:
            raise ValueError(f"{type(self).__name__}: max_iter must be >= 0, got {max_iter}")
        self.max_iter = int(max_iter)
        self.record_every = int(record_every)
        self.iter = 0
        self.history: list[dict] = []

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def record(self) -> dict:
        """Per-sample diagnostics of the current iterate, e.g. objective and residual."""
        return {}

    def stopped(self) -> torch.Tensor:
        """Per-sample stop flags ``[B]``; the loop ends when every sample has stopped."""
        return torch.zeros(self.x.shape[0], dtype=torch.bool, device=self.x.device)

    def _log(self) -> None:
        rec = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in self.record().items()}
        self.history.append({"iter": self.iter, **rec})

    def solve(self, callback: Callback | None = None) -> torch.Tensor:
        """Run `step` until ``max_iter`` or every sample stopped; returns the iterate x."""
        self.history = []
        if self.record_every > 0:
            self._log()
        while self.iter < self.max_iter and not bool(self.stopped().all()):
            self.step()
            self.iter += 1
            if self.record_every > 0 and self.iter % self.record_every == 0:
                self._log()
            if callback is not None and callback(self.iter, self.x):
                break
        if self.record_every > 0 and self.history[-1]["iter"] != self.iter:
            self._log()
        return self.x


__all__ = ["IterativeSolver", "STEP_SAFETY", "Callback"]
