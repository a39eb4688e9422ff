"""What the training loop needs before its first step, each in its own module: the device and
precision (`precision`), the run directory and resume (`run_dir`), the pairs (`pairs`), the model
factory (`factory`) and the checks before anything is written (`checks`)."""

from __future__ import annotations

from .checks import check_config, check_measurements, check_memory
from .factory import build_reconstructor
from .pairs import Pairs, Preprocessed
from .precision import cpu_has_native_bf16, NATIVE_BF16_ENV, Precision, select_device
from .run_dir import (check_resume, check_weights, keep_user_config, load_init, prepare_run_dir, RESUMABLE, RUN_FILES,
                      RUN_FOLDERS, START_FILES, versions)

__all__ = ["check_config", "check_measurements", "check_memory", "build_reconstructor", "Pairs", "Preprocessed",
           "cpu_has_native_bf16", "NATIVE_BF16_ENV", "Precision", "select_device", "check_resume", "check_weights",
           "keep_user_config", "load_init", "prepare_run_dir", "RESUMABLE", "RUN_FILES", "RUN_FOLDERS", "START_FILES",
           "versions"]
