"""A training run's directory and how a run starts there: fresh (never over another run or the
user's own config.yaml; an interrupted start reclaimed), resumed from its checkpoint (only the
``training`` and ``evaluation`` sections may change), or fine-tuned from another run's weights
(``training.init``)."""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

import invmap
from .. import zoo
from ..atomic import atomic_write, clean_orphans
from ..config import check_model_matches, Config, first_difference, load_config
from ..files import read_bytes
from ..models import check_compatible, load_model
from ..models.io import repair_model_json
from ..paths import inside
from .checkpoint import CHECKPOINT, load_checkpoint
from .log import LOG, read_log

#: files whose presence means a directory already holds a training run
RUN_FILES = ("model.safetensors", "checkpoint.safetensors", "train_log.csv")
#: the folders a training run writes into (figures by `invmap run`, snapshots, TensorBoard events)
RUN_FOLDERS = ("figures", "snapshots", "tensorboard")


#: what an interrupted start (killed before its first checkpoint) can have left besides config.yaml
START_FILES = ("model.safetensors", "model.json", "train_log.csv", "checkpoint.json")


def _interrupted_start(run: Path) -> bool:
    """Whether `run` holds only what a training start killed before its first checkpoint
    leaves: no checkpoint, and a log without any trained epoch (at most the row of epoch 0)."""
    if (run / CHECKPOINT).exists():
        return False
    try:
        rows = read_log(run / LOG) if (run / LOG).exists() else []
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return all((r.get("epoch") or "0").strip() in ("0", "") for r in rows)


def prepare_run_dir(out_dir: str | Path, config: Config, resume: bool) -> Path:
    """Create the run directory (refusing to overwrite a run unless resuming) and write config.yaml.

    Opening a directory removes the temporary files of writes a kill interrupted
    (`invmap.atomic.clean_orphans`) and restores model.json when a kill fell between the
    two writes of a model (`invmap.models.io.repair_model_json`). A fresh run reclaims a
    directory whose earlier start was killed before its first checkpoint (nothing trained
    was kept there), and says so on stderr.
    """
    run = Path(out_dir)
    if run.exists() and not run.is_dir():
        raise NotADirectoryError(f"run directory {run} is a file")
    for folder in RUN_FOLDERS:  # the folders training writes into: never a link out of the run
        inside(run, folder, f"the {folder} folder")
    held = [f for f in RUN_FILES if (run / f).exists()]
    if resume:
        if not (run / CHECKPOINT).exists():
            hint = " (its start was interrupted: train it again without --resume)" if held and _interrupted_start(run) else ""
            raise FileNotFoundError(f"cannot resume: no {CHECKPOINT} in {run}{hint}")
    elif held and _interrupted_start(run):
        for f in START_FILES:
            (run / f).unlink(missing_ok=True)
        shutil.rmtree(run / "tensorboard", ignore_errors=True)
        print(f"invmap: {run} held an interrupted start without a checkpoint (no trained epoch); "
              f"starting it again", file=sys.stderr)
    elif held:
        raise FileExistsError(f"{run} already holds a training run ({held[0]}); continue it with --resume "
                              f"or choose a new directory with --out")
    text = config.to_yaml()
    if not resume and not held:
        keep_user_config(run / "config.yaml", text)
    run.mkdir(parents=True, exist_ok=True)
    clean_orphans(run)
    repair_model_json(run)
    atomic_write(run / "config.yaml", text)
    return run


def keep_user_config(path: Path, text: str) -> None:
    """Refuse to start a run over a ``config.yaml`` that is not the resolved config `text`.

    In a directory without a run, such a file is the user's own (``invmap train my/config.yaml
    --out my``: a commented, partial config): invmap never replaces it. A config.yaml that
    already holds `text` (written by an earlier start) is fine.
    """
    if not (path.exists() or path.is_symlink()):
        return
    try:  # a link, a FIFO or a device under that name is not this config either
        same = read_bytes(path, "config", limit=len(text.encode())) == text.encode()
    except (ValueError, FileNotFoundError):
        same = False
    if not same:
        raise FileExistsError(f"{path} exists and is not this run's resolved config (your own config file?); "
                              f"invmap never replaces it: choose another --out, e.g. {path.parent / 'run'}")


#: config sections a resumed run may change (the others describe what the checkpoint learned)
RESUMABLE = ("training", "evaluation")


def check_resume(run_dir: str | Path, config: Config, recon: torch.nn.Module, device: torch.device) -> dict | None:
    """The checkpoint of `run_dir`, after checking that `config` may continue it; writes nothing
    (None without a checkpoint: `prepare_run_dir` then says why the run cannot resume).

    A resumed run keeps its name, seed, data, operator, noise and model (only `RESUMABLE`
    sections may change), and the checkpoint's weights must fit the network `recon` built
    from `config`. Any mismatch is a one-line ``ValueError`` raised before the run directory
    (config.yaml included) is touched.
    """
    run = Path(run_dir)
    if not (run / CHECKPOINT).exists():
        return None
    if (run / "config.yaml").exists():
        saved = load_config(run / "config.yaml").to_dict()
        new = config.to_dict()
        fixed = {k: v for k, v in saved.items() if k not in RESUMABLE}
        diff = first_difference(fixed, {k: new.get(k) for k in fixed})
        if diff:
            key, was, now = diff
            raise ValueError(f"cannot resume {run}: {key} would change from {was!r} to {now!r}; a resumed run "
                             f"keeps its name, seed, data, operator, noise and model (change only "
                             f"{' or '.join(RESUMABLE)} settings, or train a new run)")
    state = load_checkpoint(run, device)
    check_weights(recon, state.get("model") or {}, f"cannot resume {run}: the checkpoint's",
                  "; config and checkpoint describe different models")
    return state


def check_weights(recon: torch.nn.Module, stored: dict, what: str, why: str = "") -> None:
    """A one-line ``ValueError`` (``{what} tensor 'k' is …``) unless `stored` has every tensor of
    `recon` with its shape."""
    for k, v in recon.state_dict().items():
        if k not in stored or tuple(stored[k].shape) != tuple(v.shape):
            got = list(stored[k].shape) if k in stored else "missing"
            raise ValueError(f"{what} tensor '{k}' is {got}, but the configured network needs {list(v.shape)}{why}")


def load_init(config: Config, recon: torch.nn.Module, physics) -> tuple[dict, dict]:
    """Fine-tuning (``training.init: RUN``): the weights of the trained run RUN for `recon`, and
    what the new run records of its start (``init`` in model.json); writes nothing.

    RUN must hold a model that `config` describes (`invmap.config.check_model_matches`:
    same network, parameters and image size)
    and that can reconstruct this task (`invmap.models.check_compatible`, as ``invmap
    reconstruct --model`` checks) — each mismatch a one-line ``ValueError``.
    """
    init = str(config.training.init)
    run = zoo.run_dir(init) if zoo.is_pretrained(init) else Path(init).expanduser()  # or pretrained:NAME
    if not run.is_dir():
        raise FileNotFoundError(f"training.init: trained run directory not found: {run}")
    model, meta = load_model(run)
    check_compatible(meta, physics)
    check_model_matches(config, meta, where=f"training.init {run}")
    state = model.state_dict()
    check_weights(recon, state, f"training.init {run}: its")
    record = {"run": init if zoo.is_pretrained(init) else str(run.resolve()), "name": meta.get("name"),
              "weights_sha256": meta.get("weights_sha256"), "best_epoch": meta.get("best_epoch"),
              "val_psnr": meta.get("val_psnr"), "image_shape": meta.get("image_shape"), "data_source": (meta.get("data") or {}).get("source")}
    other = first_difference({"physics": meta.get("physics"), "data": {"source": record["data_source"]}},
                             {"physics": physics.spec(), "data": {"source": config.data.source}})
    if other is not None:  # a transfer (another operator, noise or image source): allowed, and said
        key, was, now = other
        record["task_difference"] = {"key": key, "was": was, "now": now}
        logging.getLogger(__name__).warning(
            f"invmap train: note: training.init {init} was trained for another task; the first difference: "
            f"{key} {str(was)[:60]} there, {str(now)[:60]} here (its weights are the start, not a model of this task)")
    return state, record


def versions() -> dict[str, Any]:
    """The software a run was trained with, as model.json records it."""
    return {"invmap": invmap.__version__, "torch": torch.__version__, "python": sys.version.split()[0]}


__all__ = ["prepare_run_dir", "keep_user_config", "check_resume", "check_weights", "load_init", "versions",
           "RUN_FILES", "RUN_FOLDERS", "START_FILES", "RESUMABLE"]
