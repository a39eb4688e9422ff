"""Training learned inverse maps f_Θ(y) ≈ x from simulated pairs (see `loop.train`).

- `train(config, out_dir, resume=False, progress=True) -> TrainResult`
- losses (`losses.build_loss`: mse, l1, ssim-mix), optimizers and schedules (`optim`),
  checkpoints without pickles (`checkpoint`), logs (`log`: CSV, tqdm, TensorBoard).
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .log import read_log
from .loop import TrainingDiverged, TrainResult, train, validate
from .losses import LOSSES, build_loss
from .optim import OPTIMIZERS, SCHEDULES, Schedule, build_optimizer

__all__ = ["train", "TrainResult", "TrainingDiverged", "validate", "build_loss", "LOSSES", "build_optimizer",
           "Schedule", "OPTIMIZERS", "SCHEDULES", "save_checkpoint", "load_checkpoint", "read_log"]
