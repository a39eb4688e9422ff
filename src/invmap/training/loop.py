"""The training loop: learn x̂ = recon_Θ(y, K) from pairs (y, x) by minibatch descent on

    min_Θ (1/N) Σᵢ ℓ(recon_Θ(yᵢ, K), xᵢ),   yᵢ = K xᵢ + eᵢ,

end to end, K and Kᵀ inside for the model-based kinds. The call is split as
``recon.from_input(z, physics)``, z = ``recon.preprocess(y, physics)`` without parameters
(post-processing: P = FBP, Kᵀ, CGLS, cached for fixed pairs; other kinds: z = y), and
``recon.prepare(train, val, data_range=)`` fits what gradients do not (input scale, PnP's strength).
Every epoch: validation PSNR/SSIM on fixed pairs, the best model saved (``model.safetensors`` + ``model.json``), a row of ``train_log.csv``, a checkpoint.
``training.init: RUN`` starts from RUN's trained weights (fine-tuning, recorded as ``init`` in model.json).
``training.snapshots: [1, 3, 10, …]`` keeps the weights at those training-clock minutes in
``snapshots/<m>min/`` (each a loadable model, for a learning curve; a resumed run skips the ones on disk).
Stops at ``epochs``, at the ``max_minutes`` budget, by early stopping, or — with a clear
error, keeping the last good checkpoint and best model — on a non-finite loss.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .. import metrics
from ..atomic import atomic_dir
from ..config import Config
from ..models import save_model
from . import checkpoint as ckpt
from .distributed import Dist
from .log import CSVLog, TensorBoard, TrainProgress
from .losses import build_loss
from .optim import Schedule, build_optimizer
from .setup import (Pairs, Precision, build_reconstructor, check_memory, check_resume, load_init, prepare_run_dir,
                    select_device, versions)


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; the run directory keeps the last good state."""


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int            # epochs completed
    steps: int             # optimizer steps taken
    best_epoch: int        # epoch of the saved model (0 = untrained)
    best_val_psnr: float
    best_val_ssim: float
    initial_val_psnr: float  # the untrained network on the validation pairs
    seconds: float
    stopped: str           # epochs | time | early-stopping
    device: str
    processes: int = 1     # data-parallel ranks (torchrun)

    def summary(self) -> str:
        on = f" on {self.processes} processes" if self.processes > 1 else ""
        return (f"trained {self.epochs} epochs ({self.steps} steps, {self.seconds:.0f} s, {self.device}{on}; "
                f"stopped: {self.stopped}); best epoch {self.best_epoch}: val PSNR {self.best_val_psnr:.2f} dB, "
                f"SSIM {self.best_val_ssim:.4f} (untrained: {self.initial_val_psnr:.2f} dB)")


@torch.no_grad()
def validate(recon, val: Pairs, batch_size: int, data_range: metrics.DataRange = 1.0,
             dist: Dist = Dist()) -> tuple[float, float]:
    """Mean PSNR and SSIM (data range convention `data_range`) of x̂ = f_Θ(z) over the
    validation pairs, in float32 (as the evaluation computes them, whatever precision the
    training steps use). Under DDP each rank scores its share of the pairs and the sums
    are all-reduced."""
    recon.eval()
    mine = torch.tensor_split(torch.arange(val.n), dist.world)[dist.rank]
    ps, ss = [torch.zeros(0)], [torch.zeros(0)]
    for z, x, physics in val.epoch(val.minibatches(mine, batch_size), 0):
        x_hat = recon.from_input(z, physics).float()
        ps.append(metrics.psnr(x_hat, x, data_range).cpu())
        ss.append(metrics.ssim(x_hat, x, data_range).cpu() if min(x.shape[-2:]) >= 11
                  else torch.full_like(ps[-1], math.nan))
    p, s, n = dist.sum([torch.cat(ps).double().sum(), torch.cat(ss).double().sum(), len(mine)])
    return p / n, s / n


def train(config: Config, out_dir: str | Path, resume: bool = False, progress: bool = True,
          hooks: Sequence[Callable[[dict], None]] = (), physics: Any = None) -> TrainResult:
    """Train the model of `config`; writes the run directory `out_dir` (see the module docstring).

    `hooks` are called after every epoch's checkpoint with a dict (epoch, step, row, run_dir).
    `physics`: the task's (K, e) when the caller has built it (`invmap.experiment.Experiment`);
    default: built from `config`.
    """
    tc = config.training
    dist = Dist.from_env()
    dist.check_batch(tc.batch_size)
    device = dist.start(select_device(tc.device))
    try:
        return _train(config, out_dir, resume, progress and dist.main, hooks, dist, device, physics)
    except BaseException as e:
        if dist.world > 1:  # the failed frames' locals (the DDP wrapper) would keep the process group alive
            traceback.clear_frames(e.__traceback__)  # past `Dist.stop`; the traceback's text stays
        raise
    finally:
        dist.stop()


def _train(config: Config, out_dir: str | Path, resume: bool, progress: bool,
           hooks: Sequence[Callable[[dict], None]], dist: Dist, device: torch.device, physics: Any) -> TrainResult:
    tc = config.training
    prec = Precision.choose(tc.amp, device)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.manual_seed(config.seed)
    if physics is None:
        physics = config.physics()  # a bad operator / noise / model value fails before the run directory exists
    check_memory(config, physics)  # and so does a run that would not fit in memory
    recon = build_reconstructor(config, physics, device)
    new_dir = not Path(out_dir).exists()
    saved = check_resume(out_dir, config, recon, device) if resume else None  # before anything is written
    start = load_init(config, recon, physics) if tc.init and not resume else None  # fine-tuning
    run = prepare_run_dir(out_dir, config, resume) if dist.main else Path(out_dir)  # rank 0 alone writes
    try:
        train_set = Pairs(config, physics, "train", recon, device, fresh_noise=tc.fresh_noise,
                          num_workers=tc.num_workers, stream=tc.stream)
        val = Pairs(config, physics, "val", recon, device, num_workers=tc.num_workers)
    except BaseException:  # e.g. an unreadable image: leave no half-made run behind
        if dist.main and new_dir and {f.name for f in run.iterdir()} <= {"config.yaml"}:
            shutil.rmtree(run)
        raise
    if not resume:
        recon.prepare(train_set, val, data_range=config.evaluation.data_range)
    if start is not None:  # after prepare: the trained run's input scale is part of what it learned
        recon.load_state_dict(start[0])
    if prec.channels_last:
        recon = recon.to(memory_format=torch.channels_last)
    step_net = dist.wrap(recon, "from_input")  # x̂ = f_Θ(z, K), gradients averaged over the ranks
    opt = build_optimizer(recon.parameters(), tc.optimizer, tc.lr, tc.momentum, tc.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=prec.scaler)
    steps_per_epoch = len(train_set.minibatches(torch.arange(train_set.n), tc.batch_size))
    sched = Schedule(tc.schedule, steps_per_epoch, tc.epochs, tc.warmup_epochs, tc.step_size, tc.gamma, tc.max_minutes * 60)
    loss_fn = build_loss(tc.loss, tc.ssim_weight, tc.mix_base)
    gens = {"shuffle": torch.Generator().manual_seed(config.seed)}
    st = {"epoch": 0, "step": 0, "seconds": 0.0, "best_psnr": -math.inf, "best_ssim": math.nan, "best_epoch": 0,
          "initial_psnr": math.nan, "bad_epochs": 0, "stopped": ""}
    if saved is not None:
        recon.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        if saved.get("scaler") and prec.scaler:  # float16 on CUDA; other precisions keep no scale
            scaler.load_state_dict(saved["scaler"])
        ckpt.set_rng_state(saved["rng"], gens)
        st.update({k: saved[k] for k in st}, stopped="")
        info = saved.get("info") or {}
        before = info.get("processes", 1)
        if before != dist.world and dist.main:
            logging.getLogger(__name__).warning(
                f"invmap train: note: resuming a run trained on {before} process(es) with {dist.world}; the global "
                f"batch stays {tc.batch_size}, so the run continues the same optimisation up to float rounding "
                "(it is not bit-identical to an uninterrupted run)")
        was = info.get("precision", "float32")  # checkpoints written before it was recorded: float32 or unknown
        if was != prec.describe() and dist.main:
            logging.getLogger(__name__).warning(
                f"invmap train: note: resuming a run trained in {str(was)[:40]} with {prec.describe()} (training.amp: "
                f"{tc.amp} on {device.type}); the weights carry over, the numbers from here on are not "
                "bit-identical to an uninterrupted run")
    log = CSVLog(run, keep_until_epoch=st["epoch"] if resume else None, enabled=dist.main)
    tb = TensorBoard(run, enabled=dist.main)
    meta = {"name": config.name, "physics": physics.spec(), "data": config.data.model_dump(mode="json"),
            "training": {"optimizer": tc.optimizer, "loss": tc.loss, "lr": tc.lr, "batch_size": tc.batch_size},
            "software": versions(), **({"init": start[1]} if start is not None else {})}
    if config.physics_distribution().random:  # trained over drawn physics; `physics` is the nominal one
        meta["physics_distributions"] = config.physics_distribution().spec()

    def save_best(epoch: int, psnr: float, ssim: float) -> None:
        st.update(best_psnr=psnr, best_ssim=ssim, best_epoch=epoch, bad_epochs=0)
        if not dist.main:
            return
        save_model(run, recon, {**meta, "best_epoch": epoch, "val_psnr": psnr, "val_ssim": ssim}, physics=physics)

    def save_checkpoint() -> None:
        if not dist.main:
            return
        ckpt.save_checkpoint(run, {"model": recon.state_dict(), "optimizer": opt.state_dict(),
                                   "scaler": scaler.state_dict() if prec.scaler else None,
                                   "rng": ckpt.rng_state(gens), **st, "info": {"config": config.name, "device": str(device),
                                                                          "processes": dist.world,
                                                                          "precision": prec.describe()}})

    def take_snapshots(seconds: float) -> None:
        """The weights at each `training.snapshots` minute passed (rank 0; written whole or not at all)."""
        if not dist.main:
            return
        for m in tc.snapshots:
            where = run / "snapshots" / f"{m:g}min"
            if seconds >= m * 60 and not where.exists():
                with atomic_dir(where) as tmp:
                    save_model(tmp, recon, {**meta, "snapshot_minutes": m, "seconds": seconds, "step": st["step"]},
                               physics=physics)

    if not resume:  # epoch 0: the untrained network
        p0, s0 = validate(recon, val, config.evaluation.batch_size, config.evaluation.data_range, dist)
        st["initial_psnr"] = p0
        save_best(0, p0, s0)
        log.write(epoch=0, step=0, lr=tc.lr, val_psnr=p0, val_ssim=s0, seconds=0.0)
        tb.scalars(0, **{"val/psnr": p0, "val/ssim": s0})
        save_checkpoint()
    if not any(p.requires_grad for p in recon.parameters()):  # e.g. PnP: a fixed denoiser, tuned in prepare
        st["stopped"] = "nothing to train"
    bar = TrainProgress(tc.epochs * steps_per_epoch, st["step"], progress, tc.max_minutes * 60, st["seconds"])
    t0, shown = time.perf_counter() - st["seconds"], f"{st['best_psnr']:.2f}"

    def clock() -> float:
        """Seconds of training so far by rank 0's clock (every rank takes the same time decisions)."""
        return dist.from_main(time.perf_counter() - t0)

    try:
        for epoch in range(st["epoch"] + 1, 0 if st["stopped"] else tc.epochs + 1):
            recon.train()
            perm, total, count, lr = torch.randperm(train_set.n, generator=gens["shuffle"]), 0.0, 0, tc.lr
            parts = dist.batches(train_set.minibatches(perm, tc.batch_size))  # this rank's slice of each batch
            for (_, share, b), (z, x, phys) in zip(parts, train_set.epoch([p[0] for p in parts], epoch)):
                if prec.channels_last and z.dim() == 4:
                    z = z.contiguous(memory_format=torch.channels_last)
                lr = sched.apply(opt, tc.lr, st["step"], clock())
                with prec.autocast(device):
                    loss = loss_fn(step_net(z, phys), x)  # phys: the task's K, or the batch's drawn one
                lv = loss.item() if dist.world == 1 else dist.sum([loss * share * b])[0] / (dist.world * b)
                if not math.isfinite(lv):
                    raise TrainingDiverged(
                        f"training stopped: the loss became {lv} at epoch {epoch}, step {st['step'] + 1}; "
                        f"kept the checkpoint of epoch {st['epoch']} and the best model (epoch {st['best_epoch']}) "
                        f"in {run}; try a lower training.lr (now {tc.lr:g}) or training.grad_clip")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss * share if share != 1 else loss).backward()
                if tc.grad_clip > 0:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(recon.parameters(), tc.grad_clip)
                scaler.step(opt)
                scaler.update()
                st["step"] += 1
                total, count = total + lv * b, count + b
                bar.step(st["step"], time.perf_counter() - t0)  # rank 0's bar, its own clock
                if tc.snapshots:
                    take_snapshots(clock())
                bar.set_postfix(epoch=epoch, loss=f"{lv:.4g}", val_psnr=shown, refresh=False)
                if tc.max_minutes and clock() >= tc.max_minutes * 60:
                    st["stopped"] = "time"
                    break
            psnr, ssim = validate(recon, val, config.evaluation.batch_size, config.evaluation.data_range, dist)
            st.update(epoch=epoch, seconds=clock())
            row = dict(epoch=epoch, step=st["step"], lr=lr, train_loss=total / max(count, 1), val_psnr=psnr,
                       val_ssim=ssim, seconds=st["seconds"])
            log.write(**row)
            tb.scalars(st["step"], **{"loss/train": row["train_loss"], "val/psnr": psnr, "val/ssim": ssim, "lr": lr})
            if psnr > st["best_psnr"]:
                save_best(epoch, psnr, ssim)
            else:
                st["bad_epochs"] += 1
            shown = f"{psnr:.2f}"
            bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.4g}", val_psnr=shown)
            if tc.max_minutes and st["seconds"] >= tc.max_minutes * 60:
                st["stopped"] = "time"
            if tc.early_stopping_patience and st["bad_epochs"] >= tc.early_stopping_patience:
                st["stopped"] = "early-stopping"
            st["stopped"] = st["stopped"] or ("epochs" if epoch == tc.epochs else "")
            save_checkpoint()
            for hook in hooks:
                hook({"epoch": epoch, "step": st["step"], "row": row, "run_dir": run})
            if st["stopped"]:
                break
    finally:
        bar.close()
        tb.close()
    return TrainResult(run, st["epoch"], st["step"], st["best_epoch"], st["best_psnr"], st["best_ssim"],
                       st["initial_psnr"], st["seconds"], st["stopped"] or "epochs", f"{device}, {prec.describe()}",
                       dist.world)


__all__ = ["train", "TrainResult", "TrainingDiverged", "validate"]
