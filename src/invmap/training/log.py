"""Training logs: a CSV file per run, a progress bar (a line per epoch in a log), TensorBoard when installed.

``train_log.csv`` has one row per epoch (epoch 0 = the untrained network):
``epoch, step, lr, train_loss, val_psnr, val_ssim, seconds``; a run trained from y alone
(`invmap.selfsup`) has ``val_loss, val_sure`` (its self-supervised loss and SURE's estimate) in
place of the PSNR and SSIM it cannot compute.
TensorBoard event files go to ``run_dir/tensorboard`` when ``torch.utils.tensorboard``
can be imported (the ``tensorboard`` package is optional, never required).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TextIO

from ..atomic import atomic_write_csv
from ..files import read_csv
from ..progress import Progress

COLUMNS = ("epoch", "step", "lr", "train_loss", "val_psnr", "val_ssim", "seconds")
SELFSUP_COLUMNS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_sure", "seconds")
LOG = "train_log.csv"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


class CSVLog:
    """Per-epoch numbers; the whole file is rewritten atomically after every row
    (`invmap.atomic`), so a kill leaves the previous complete log, never a truncated one.

    With `keep_until_epoch` (resuming) the rows of later epochs — written after the
    checkpoint being resumed from — are dropped; rows of an earlier crash that cannot be
    parsed are dropped too.
    """

    def __init__(self, run_dir: str | Path, keep_until_epoch: int | None = None, enabled: bool = True,
                 columns: tuple[str, ...] = COLUMNS):
        self.path, self.enabled, self.columns = Path(run_dir) / LOG, enabled, columns
        if not enabled:  # a data-parallel rank other than 0 writes nothing
            return
        old = read_log(self.path) if (keep_until_epoch is not None and self.path.exists()) else []
        self.rows = [r for r in old if _epoch(r) is not None and _epoch(r) <= keep_until_epoch]
        self._flush()

    def write(self, **row: Any) -> None:
        if not self.enabled:
            return
        self.rows.append({c: _fmt(row.get(c)) for c in self.columns})
        self._flush()

    def _flush(self) -> None:
        atomic_write_csv(self.path, self.columns, self.rows)


def _epoch(row: dict[str, str]) -> int | None:
    try:
        return int(row.get("epoch") or "")
    except ValueError:
        return None


def read_log(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``train_log.csv`` as dicts of strings."""
    return read_csv(path, "training log")[1]


class TensorBoard:
    """Scalars to TensorBoard if it is installed; otherwise does nothing."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter  # lazy, optional
        except Exception:  # ImportError, or a broken tensorboard install
            return
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def scalars(self, step: int, **values: float | None) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if v is not None and not (isinstance(v, float) and math.isnan(v)):
                self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class TrainProgress:
    """The training's progress: optimizer steps, or — with a time budget — seconds; on a terminal
    a bar, elsewhere (a log file, a pipe) one line per epoch (`epoch`), never a ``\r`` stream.

    With a budget of B seconds the bar counts elapsed training seconds, and its total (hence
    its ETA) is the sooner of B and the time the remaining epochs are predicted to take at
    the rate seen so far: training stops at whichever comes first, so the bar never promises
    the epoch count's "22 min left" when the budget ends it at 10.
    """

    def __init__(self, total_steps: int, initial_step: int, enabled: bool, budget_s: float = 0.0,
                 elapsed_s: float = 0.0, stream: TextIO | None = None):
        self.total_steps, self.budget = int(total_steps), float(budget_s)
        self.start = (int(initial_step), float(elapsed_s))
        if not self.budget:
            self.bar = Progress(total_steps, initial_step, enabled=enabled, unit="step", stream=stream)
            return
        self.bar = Progress(self.budget, min(float(elapsed_s), self.budget), enabled=enabled, unit="s",
                            desc=f"≤ {self.budget / 60:g} min budget", stream=stream,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s "
                                       "[{elapsed}<{remaining}{postfix}]")

    def step(self, step: int, elapsed_s: float) -> None:
        """One optimizer step done: `step` steps in all, `elapsed_s` seconds of training."""
        if not self.budget:
            self.bar.update(1)
            return
        s0, e0 = self.start
        predicted = elapsed_s + (self.total_steps - step) * (elapsed_s - e0) / max(1, step - s0)
        self.bar.set_total(max(min(self.budget, predicted), elapsed_s))
        self.bar.update(min(elapsed_s, self.bar.total) - self.bar.n)

    def epoch(self, epoch: int, epochs: int, step: int, loss: float, val: str, elapsed_s: float) -> None:
        """The line of one finished epoch where no bar is drawn: its mean training loss, the
        validation score `val` ("val PSNR 31.20 dB", or a self-supervised run's "val loss 0.0123"),
        the steps and the seconds so far (against the budget, if any)."""
        budget = f" of the ≤ {self.budget / 60:g} min budget" if self.budget else ""
        self.bar.stage(f"epoch {epoch}/{epochs}: loss {loss:.4g}, {val}, step {step}/"
                       f"{self.total_steps}, {elapsed_s:.0f} s{budget}")

    def set_postfix(self, *args, **kwargs) -> None:
        self.bar.set_postfix(*args, **kwargs)

    def close(self) -> None:
        self.bar.close()
