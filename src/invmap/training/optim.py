"""Optimizers (SGD with momentum, Adam, AdamW) and learning-rate schedules.

The schedule multiplies the base rate η by a factor that depends on the step, so the
rate is set every step:

- warm-up: η·(s + 1)/W for the first W = round(warmup_epochs · steps_per_epoch) steps (a
  fraction of an epoch is allowed: a short time budget of large epochs need not spend one
  whole epoch warming up);
- ``constant``: η;
- ``step``: η·γ^⌊epoch / step_size⌋;
- ``cosine``: η·½(1 + cos π p), p ∈ [0, 1] the progress after warm-up. Progress is the
  fraction of planned steps done or, with a time budget, the fraction of the budget
  spent, whichever is larger, so the rate reaches 0 when training ends either way.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")


def build_optimizer(params: Iterable[torch.nn.Parameter], name: str, lr: float, momentum: float = 0.9,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD (heavy-ball momentum), Adam or AdamW (decoupled weight decay)."""
    params = list(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; available: {', '.join(OPTIMIZERS)}")


class Schedule:
    """Learning-rate factor as a function of (step, epoch, time spent); stateless."""

    def __init__(self, name: str, steps_per_epoch: int, epochs: int, warmup_epochs: float = 0,
                 step_size: int = 10, gamma: float = 0.5, max_seconds: float = 0.0):
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; available: {', '.join(SCHEDULES)}")
        self.name, self.spe = name, max(1, int(steps_per_epoch))
        self.total = self.spe * max(1, int(epochs))
        self.warmup = min(round(self.spe * float(warmup_epochs)), self.total - 1)
        self.step_size, self.gamma, self.max_seconds = int(step_size), float(gamma), float(max_seconds)

    def factor(self, step: int, seconds: float = 0.0) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.name == "constant":
            return 1.0
        if self.name == "step":
            return self.gamma ** (step // self.spe // self.step_size)
        p = (step - self.warmup) / max(1, self.total - self.warmup)
        if self.max_seconds > 0:
            p = max(p, seconds / self.max_seconds)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, p)))

    def apply(self, optimizer: torch.optim.Optimizer, base_lr: float, step: int, seconds: float = 0.0) -> float:
        """Set every parameter group's rate for `step`; returns it."""
        lr = base_lr * self.factor(step, seconds)
        for g in optimizer.param_groups:
            g["lr"] = lr
        return lr
