"""The training loop: learn x̂ = recon_Θ(y, K) from pairs (y, x) by minibatch descent on

    min_Θ (1/N) Σᵢ ℓ(recon_Θ(yᵢ, K), xᵢ),   yᵢ = K xᵢ + eᵢ,

end to end, K and Kᵀ inside for the model-based kinds. The call is split as
``recon.from_input(z, physics)``, z = ``recon.preprocess(y, physics)`` without parameters
(post-processing: P = FBP, Kᵀ, CGLS, cached for fixed pairs; other kinds: z = y), and
``recon.prepare(train, val, data_range=)`` fits what gradients do not (input scale, PnP's strength).
Every epoch: validation PSNR/SSIM on fixed pairs, the best model saved (``model.safetensors`` + ``model.json``), a row of ``train_log.csv``, a checkpoint.
``training.init: RUN`` starts from RUN's trained weights (fine-tuning, recorded as ``init`` in model.json).
Self-supervised training (``training.supervision``: mc, ei, sure, split; `invmap.selfsup`) learns
from the measurements alone: the loss calls the whole map f_Θ(y, K) on y (and on its transforms or
halves), x is never read, validation scores the same loss (and SURE's estimate where the noise
allows), and the best model is the one of least validation loss; model.json records ``supervision``.
``training.snapshots: [1, 3, 10, …]`` keeps the weights at those training-clock minutes in
``snapshots/<m>min/`` (each a loadable model, for a learning curve; a resumed run skips the ones on disk;
``training.snapshot_clock: cpu``: minutes of this process's CPU time instead).
``training.curriculum: {size, steps}`` trains the first steps on smaller images (`invmap.training.curriculum`).
Stops at ``epochs``, at the ``max_minutes`` budget, by early stopping, or — with a clear
error, keeping the last good checkpoint and best model — on a non-finite loss.
"""

from __future__ import annotations

import contextlib
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
from ..selfsup import SelfSupervised
from . import checkpoint as ckpt
from .curriculum import Curriculum
from .distributed import Dist
from .log import SELFSUP_COLUMNS, CSVLog, TensorBoard, TrainProgress
from .losses import build_loss
from .optim import Schedule, build_optimizer
from .setup import (Pairs, Precision, Preprocessed, build_reconstructor, check_measurements, check_memory,
                    check_resume, load_init, prepare_run_dir, select_device, versions)


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
    supervision: str = "x"  # x: pairs (y, x); else the self-supervised loss (`invmap.selfsup`)
    best_val_loss: float = math.nan  # self-supervised: the validation loss of the saved model
    initial_val_loss: float = math.nan

    def summary(self) -> str:
        on = f" on {self.processes} processes" if self.processes > 1 else ""
        if self.supervision != "x":
            return (f"trained {self.epochs} epochs from y alone ({self.supervision} loss, {self.steps} steps, "
                    f"{self.seconds:.0f} s, {self.device}{on}; stopped: {self.stopped}); best epoch {self.best_epoch}: "
                    f"val {self.supervision} loss {self.best_val_loss:.4g} (untrained: {self.initial_val_loss:.4g}); "
                    f"no PSNR: x was not read")
        return (f"trained {self.epochs} epochs ({self.steps} steps, {self.seconds:.0f} s, {self.device}{on}; "
                f"stopped: {self.stopped}); best epoch {self.best_epoch}: val PSNR {self.best_val_psnr:.2f} dB, "
                f"SSIM {self.best_val_ssim:.4f} (untrained: {self.initial_val_psnr:.2f} dB)")


@torch.no_grad()
def validate(recon, val: Pairs, batch_size: int, data_range: metrics.DataRange = 1.0,
             dist: Dist | None = None) -> tuple[float, float]:
    """Mean PSNR and SSIM (data range convention `data_range`) of x̂ = f_Θ(z) over the
    validation pairs, in float32 (as the evaluation computes them, whatever precision the
    training steps use). Under DDP each rank scores its share of the pairs and the sums
    are all-reduced (`dist`: this process's place in the job; None: one process)."""
    dist = dist if dist is not None else Dist()
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


class SelfSupervisedStep(torch.nn.Module):
    """One step's self-supervised loss as one module call, mean over the batch: f_Θ is called
    several times inside it (y and its transform or half), and data parallelism sees one forward.
    `autocast` (the run's mixed precision) covers the network alone: K, Kᵀ and P(y, K) of the
    loss run in float32, as outside training."""

    def __init__(self, recon: torch.nn.Module, loss: SelfSupervised,
                 autocast: Callable[[], Any] = contextlib.nullcontext):
        super().__init__()
        self.recon, self.loss, self.autocast = recon, loss, autocast

    def call(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """x̂ = f_Θ(y, K) = recon.from_input(recon.preprocess(y, K), K), in float32."""
        z = self.recon.preprocess(y, physics)
        with self.autocast():
            x_hat = self.recon.from_input(z, physics)
        return x_hat.float()

    def forward(self, y: torch.Tensor, physics: Any, split: str, step: int, ids: Sequence[int]) -> torch.Tensor:
        return self.loss(self.call, y, physics, split, step, ids).mean()


@torch.no_grad()
def validate_selfsup(recon, loss: SelfSupervised, val: Pairs, batch_size: int,
                     dist: Dist | None = None) -> tuple[float, float]:
    """Mean self-supervised loss, and mean SURE estimate (NaN where the noise does not allow it),
    of x̂ = f_Θ(y, K) over the validation measurements (x is not read); float32, summed over ranks."""
    dist = dist if dist is not None else Dist()
    recon.eval()
    step = SelfSupervisedStep(recon, loss)
    call = lambda v, p: step.call(v, p).float()  # noqa: E731
    mine = torch.tensor_split(torch.arange(val.n), dist.world)[dist.rank]
    batches = val.minibatches(mine, batch_size)
    ls, ss = [torch.zeros(0, dtype=torch.float64)], [torch.zeros(0, dtype=torch.float64)]
    for idx, (y, _, physics) in zip(batches, val.epoch(batches, 0)):
        ids = idx.tolist()
        ls.append(loss(call, y, physics, "val", 0, ids).double().cpu())
        s = loss.sure_estimate(call, y, physics, 0, ids)
        ss.append(s.double().cpu() if s is not None else torch.full((len(ids),), math.nan, dtype=torch.float64))
    lv, sv, n = dist.sum([torch.cat(ls).sum(), torch.cat(ss).sum(), len(mine)])
    return lv / n, sv / n


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
    selfsup = SelfSupervised.from_config(config)  # None: supervised by x
    if selfsup is not None:
        selfsup.check(physics, recon)  # a loss the task cannot serve: one line, nothing written
    check_measurements(config, physics)  # given measurements (no x): their files, before anything is written
    curriculum = Curriculum(config, recon) if tc.curriculum else None  # the first steps on smaller images
    new_dir = not Path(out_dir).exists()
    saved = check_resume(out_dir, config, recon, device) if resume else None  # before anything is written
    was = (saved.get("info") or {}).get("supervision", "x") if saved is not None else tc.supervision
    if was != tc.supervision:
        raise ValueError(f"cannot resume {out_dir}: training.supervision would change from {was!r} to "
                         f"{tc.supervision!r}; train a new run (or fine-tune from this one with training.init)")
    start = load_init(config, recon, physics) if tc.init and not resume else None  # fine-tuning
    run = prepare_run_dir(out_dir, config, resume) if dist.main else Path(out_dir)  # rank 0 alone writes
    try:
        raw = selfsup is not None  # minibatches of y itself: the loss calls f_Θ(y, K) whole
        train_set = Pairs(config, physics, "train", recon, device, fresh_noise=tc.fresh_noise,
                          num_workers=tc.num_workers, stream=tc.stream, raw=raw)
        val = Pairs(config, physics, "val", recon, device, num_workers=tc.num_workers, raw=raw)
    except BaseException:  # e.g. an unreadable image: leave no half-made run behind
        if dist.main and new_dir and {f.name for f in run.iterdir()} <= {"config.yaml"}:
            shutil.rmtree(run)
        raise
    if not resume:
        if selfsup is None:
            recon.prepare(train_set, val, data_range=config.evaluation.data_range)
        else:  # from the inputs z = P(y, K) alone (the input scale); `check` refused kinds that fit on x
            recon.prepare(Preprocessed(train_set, recon), None, data_range=config.evaluation.data_range)
    if start is not None:  # after prepare: the trained run's input scale is part of what it learned
        recon.load_state_dict(start[0])
    if prec.channels_last:
        recon = recon.to(memory_format=torch.channels_last)
    if selfsup is None:
        step_net, step_loss = dist.wrap(recon, "from_input"), None  # x̂ = f_Θ(z, K), gradients averaged over the ranks
    else:  # one wrapper only: two over the same parameters would both reduce their gradients
        step_net, step_loss = None, dist.wrap(SelfSupervisedStep(recon, selfsup, lambda: prec.autocast(device)), "forward")
    opt = build_optimizer(recon.parameters(), tc.optimizer, tc.lr, tc.momentum, tc.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=prec.scaler)
    steps_per_epoch = len(train_set.minibatches(torch.arange(train_set.n), tc.batch_size))
    sched = Schedule(tc.schedule, steps_per_epoch, tc.epochs, tc.warmup_epochs, tc.step_size, tc.gamma, tc.max_minutes * 60)
    loss_fn = build_loss(tc.loss, tc.ssim_weight, tc.mix_base)
    gens = {"shuffle": torch.Generator().manual_seed(config.seed)}
    st = {"epoch": 0, "step": 0, "seconds": 0.0, "best_psnr": -math.inf, "best_ssim": math.nan, "best_epoch": 0,
          "initial_psnr": math.nan, "bad_epochs": 0, "stopped": "", "best_loss": math.inf, "initial_loss": math.nan,
          "cpu_seconds": 0.0}  # this process's CPU time spent training (summed over resumes)
    if saved is not None:
        recon.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        if saved.get("scaler") and prec.scaler:  # float16 on CUDA; other precisions keep no scale
            scaler.load_state_dict(saved["scaler"])
        ckpt.set_rng_state(saved["rng"], gens)
        st.update({k: saved.get(k, st[k]) for k in st}, stopped="")  # older checkpoints: no best_loss
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
    log = CSVLog(run, keep_until_epoch=st["epoch"] if resume else None, enabled=dist.main,
                 **({"columns": SELFSUP_COLUMNS} if selfsup is not None else {}))
    tb = TensorBoard(run, enabled=dist.main)
    meta = {"name": config.name, "physics": physics.spec(), "data": config.data.model_dump(mode="json"),
            "training": {"optimizer": tc.optimizer, "loss": tc.loss, "lr": tc.lr, "batch_size": tc.batch_size},
            "software": versions(), **({"init": start[1]} if start is not None else {}),
            "supervision": selfsup.describe() if selfsup is not None else {"loss": "x", "reads_x": True}}
    if config.physics_distribution().random:  # trained over drawn physics; `physics` is the nominal one
        meta["physics_distributions"] = config.physics_distribution().spec()

    def save_best(epoch: int, psnr: float, ssim: float) -> None:
        if selfsup is not None:  # (psnr, ssim) are (val loss, val SURE): no PSNR without x
            st.update(best_loss=psnr, best_epoch=epoch, bad_epochs=0)
            scores = {"val_loss": psnr, **({"val_sure": ssim} if math.isfinite(ssim) else {})}
        else:
            st.update(best_psnr=psnr, best_ssim=ssim, best_epoch=epoch, bad_epochs=0)
            scores = {"val_psnr": psnr, "val_ssim": ssim}
        if not dist.main:
            return
        save_model(run, recon, {**meta, "best_epoch": epoch, **scores}, physics=physics)

    def validation() -> tuple[float, float]:
        """(val PSNR, SSIM) by x; self-supervised: (val loss, SURE estimate) by y alone."""
        if selfsup is not None:
            return validate_selfsup(recon, selfsup, val, config.evaluation.batch_size, dist)
        return validate(recon, val, config.evaluation.batch_size, config.evaluation.data_range, dist)

    def improved(score: float) -> bool:
        return score < st["best_loss"] if selfsup is not None else score > st["best_psnr"]

    def scalars(p: float, s: float) -> dict:
        return {"val_loss": p, "val_sure": s} if selfsup is not None else {"val_psnr": p, "val_ssim": s}

    def save_checkpoint() -> None:
        if not dist.main:
            return
        ckpt.save_checkpoint(run, {"model": recon.state_dict(), "optimizer": opt.state_dict(),
                                   "scaler": scaler.state_dict() if prec.scaler else None,
                                   "rng": ckpt.rng_state(gens), **st, "info": {"config": config.name, "device": str(device),
                                                                          "processes": dist.world,
                                                                          "precision": prec.describe(),
                                                                          "supervision": tc.supervision}})

    def take_snapshots(seconds: float, cpu_seconds: float) -> None:
        """The weights at each `training.snapshots` minute passed, of the training clock or (``snapshot_clock:
        cpu``, the measure of work on a loaded machine) of CPU time (rank 0; written whole or not at all)."""
        if not dist.main:
            return
        for m in tc.snapshots:
            where = run / "snapshots" / f"{m:g}min"
            if (cpu_seconds if tc.snapshot_clock == "cpu" else seconds) >= m * 60 and not where.exists():
                with atomic_dir(where) as tmp:
                    save_model(tmp, recon, {**meta, "snapshot_minutes": m, "snapshot_clock": tc.snapshot_clock,
                                            "seconds": seconds, "cpu_seconds": cpu_seconds, "step": st["step"]},
                               physics=physics)

    if not resume:  # epoch 0: the untrained network
        p0, s0 = validation()
        st["initial_loss" if selfsup is not None else "initial_psnr"] = p0
        save_best(0, p0, s0)
        log.write(epoch=0, step=0, lr=tc.lr, seconds=0.0, **scalars(p0, s0))
        tb.scalars(0, **{f"val/{k[4:]}": v for k, v in scalars(p0, s0).items()})
        save_checkpoint()
    if not any(p.requires_grad for p in recon.parameters()):  # e.g. PnP: a fixed denoiser, tuned in prepare
        st["stopped"] = "nothing to train"
    bar = TrainProgress(tc.epochs * steps_per_epoch, st["step"], progress, tc.max_minutes * 60, st["seconds"])
    c0 = time.process_time() - st["cpu_seconds"]
    t0, shown = time.perf_counter() - st["seconds"], (f"{st['best_loss']:.4g}" if selfsup is not None
                                                      else f"{st['best_psnr']:.2f}")

    def clock() -> float:
        """Seconds of training so far by rank 0's clock (every rank takes the same time decisions)."""
        return dist.from_main(time.perf_counter() - t0)

    try:
        for epoch in range(st["epoch"] + 1, 0 if st["stopped"] else tc.epochs + 1):
            recon.train()
            perm, total, count, lr = torch.randperm(train_set.n, generator=gens["shuffle"]), 0.0, 0, tc.lr
            parts = dist.batches(train_set.minibatches(perm, tc.batch_size))  # this rank's slice of each batch
            for (ids, share, b), (z, x, phys) in zip(parts, train_set.epoch([p[0] for p in parts], epoch)):
                if curriculum is not None and curriculum.active(st["step"]):  # x, K and y at the smaller size
                    z, x, phys = curriculum.batch(x, phys, st["step"])
                if prec.channels_last and z.dim() == 4:
                    z = z.contiguous(memory_format=torch.channels_last)
                lr = sched.apply(opt, tc.lr, st["step"], clock())
                if step_loss is not None:  # z = y; x is not read (the network alone under autocast)
                    loss = step_loss(z, phys, "train", st["step"], ids.tolist())
                else:
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
                    take_snapshots(clock(), dist.from_main(time.process_time() - c0))
                bar.set_postfix(epoch=epoch, loss=f"{lv:.4g}", val=shown, refresh=False)
                if tc.max_minutes and clock() >= tc.max_minutes * 60:
                    st["stopped"] = "time"
                    break
            psnr, ssim = validation()  # self-supervised: (val loss, SURE estimate)
            st.update(epoch=epoch, seconds=clock(), cpu_seconds=time.process_time() - c0)
            row = dict(epoch=epoch, step=st["step"], lr=lr, train_loss=total / max(count, 1), **scalars(psnr, ssim),
                       seconds=st["seconds"])
            log.write(**row)
            tb.scalars(st["step"], **{"loss/train": row["train_loss"], "lr": lr},
                       **{f"val/{k[4:]}": v for k, v in scalars(psnr, ssim).items()})
            if improved(psnr):
                save_best(epoch, psnr, ssim)
            else:
                st["bad_epochs"] += 1
            shown = f"{psnr:.4g}" if selfsup is not None else f"{psnr:.2f}"
            bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.4g}", val=shown)
            bar.epoch(epoch, tc.epochs, st["step"], row["train_loss"],
                      f"val loss {shown}" if selfsup is not None else f"val PSNR {shown} dB", st["seconds"])
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
                       dist.world, config.training.supervision, st["best_loss"], st["initial_loss"])


__all__ = ["train", "TrainResult", "TrainingDiverged", "validate", "validate_selfsup", "SelfSupervisedStep"]
