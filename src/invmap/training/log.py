"""Training logs: a CSV file per run, a tqdm progress bar, TensorBoard when installed.

``train_log.csv`` has one row per epoch (epoch 0 = the untrained network):
``epoch, step, lr, train_loss, val_psnr, val_ssim, seconds``.
TensorBoard event files go to ``run_dir/tensorboard`` when ``torch.utils.tensorboard``
can be imported (the ``tensorboard`` package is optional, never required).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_csv

COLUMNS = ("epoch", "step", "lr", "train_loss", "val_psnr", "val_ssim", "seconds")
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

    def __init__(self, run_dir: str | Path, keep_until_epoch: int | None = None):
        self.path = Path(run_dir) / LOG
        old = read_log(self.path) if (keep_until_epoch is not None and self.path.exists()) else []
        self.rows = [r for r in old if _epoch(r) is not None and _epoch(r) <= keep_until_epoch]
        self._flush()

    def write(self, **row: Any) -> None:
        self.rows.append({c: _fmt(row.get(c)) for c in COLUMNS})
        self._flush()

    def _flush(self) -> None:
        atomic_write_csv(self.path, COLUMNS, self.rows)


def _epoch(row: dict[str, str]) -> int | None:
    try:
        return int(row.get("epoch") or "")
    except ValueError:
        return None


def read_log(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``train_log.csv`` as dicts of strings."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


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


def progress_bar(total: int, initial: int, enabled: bool):
    """A tqdm bar over optimizer steps (disabled → a no-op bar)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True,
                leave=True, mininterval=0.5)
