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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .. import metrics
from ..atomic import atomic_dir
from ..config import Config
from ..models import save_model
from ..selfsup import SelfSupervised
from . import checkpoint as ckpt
from .distributed import Dist
from .log import SELFSUP_COLUMNS, CSVLog, TensorBoard, TrainProgress
from .losses import build_loss
from .optim import Schedule, build_optimizer
from .checks import check_measurements, check_memory
from .curriculum import Curriculum
from .factory import build_reconstructor
from .pairs import Pairs, Preprocessed
from .precision import Precision, select_device
from .run_dir import check_resume, load_init, prepare_run_dir, versions


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
    `physics`: the task's (K, e) when the caller has built it (`invmap.evaluation.experiment.Experiment`);
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


@dataclass
class TrainState:
    """What the checkpoint keeps of the loop besides weights, optimiser and random state (its keys,
    in this order, are those of ``checkpoint.json``)."""

    epoch: int = 0
    step: int = 0
    seconds: float = 0.0
    best_psnr: float = -math.inf
    best_ssim: float = math.nan
    best_epoch: int = 0
    initial_psnr: float = math.nan
    bad_epochs: int = 0
    stopped: str = ""
    best_loss: float = math.inf
    initial_loss: float = math.nan
    cpu_seconds: float = 0.0  # this process's CPU time spent training (summed over resumes)


@dataclass
class Run:
    """One training run as built by `_build`: what every step, validation and checkpoint uses."""

    config: Config
    run: Path
    physics: Any
    recon: Any
    train_set: Pairs
    val: Pairs
    selfsup: SelfSupervised | None
    prec: Precision
    device: torch.device
    dist: Dist
    start: tuple[dict, dict] | None
    step_net: Any = None   # x̂ = f_Θ(z, K), gradients averaged over the ranks (supervised by x)
    step_loss: Any = None  # the self-supervised loss of a minibatch as one module call
    opt: Any = None
    scaler: Any = None
    sched: Any = None
    loss_fn: Any = None
    steps_per_epoch: int = 0
    gens: dict[str, torch.Generator] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    log: Any = None
    tb: Any = None
    state: TrainState = field(default_factory=TrainState)
    curriculum: Curriculum | None = None  # the first steps on smaller images
    cpu0: float = 0.0  # `time.process_time()` when this process's training clock would have read 0

    def cpu_clock(self) -> float:
        """CPU seconds of training so far by rank 0 (summed over resumes)."""
        return self.dist.from_main(time.process_time() - self.cpu0)

    def validation(self) -> tuple[float, float]:
        """(val PSNR, SSIM) by x; self-supervised: (val loss, SURE estimate) by y alone."""
        ev = self.config.evaluation
        if self.selfsup is not None:
            return validate_selfsup(self.recon, self.selfsup, self.val, ev.batch_size, self.dist)
        return validate(self.recon, self.val, ev.batch_size, ev.data_range, self.dist)

    def improved(self, score: float) -> bool:
        return score < self.state.best_loss if self.selfsup is not None else score > self.state.best_psnr

    def scalars(self, p: float, s: float) -> dict:
        return {"val_loss": p, "val_sure": s} if self.selfsup is not None else {"val_psnr": p, "val_ssim": s}

    def shown(self, score: float) -> str:
        return f"{score:.4g}" if self.selfsup is not None else f"{score:.2f}"

    def save_best(self, epoch: int, psnr: float, ssim: float) -> None:
        st = self.state
        if self.selfsup is not None:  # (psnr, ssim) are (val loss, val SURE): no PSNR without x
            st.best_loss, st.best_epoch, st.bad_epochs = psnr, epoch, 0
            scores = {"val_loss": psnr, **({"val_sure": ssim} if math.isfinite(ssim) else {})}
        else:
            st.best_psnr, st.best_ssim, st.best_epoch, st.bad_epochs = psnr, ssim, epoch, 0
            scores = {"val_psnr": psnr, "val_ssim": ssim}
        if self.dist.main:
            save_model(self.run, self.recon, {**self.meta, "best_epoch": epoch, **scores}, physics=self.physics)

    def save_checkpoint(self) -> None:
        if not self.dist.main:
            return
        info = {"config": self.config.name, "device": str(self.device), "processes": self.dist.world,
                "precision": self.prec.describe(), "supervision": self.config.training.supervision}
        ckpt.save_checkpoint(self.run, {"model": self.recon.state_dict(), "optimizer": self.opt.state_dict(),
                                        "scaler": self.scaler.state_dict() if self.prec.scaler else None,
                                        "rng": ckpt.rng_state(self.gens), **asdict(self.state), "info": info})

    def take_snapshots(self, seconds: float, cpu_seconds: float) -> None:
        """The weights at each `training.snapshots` minute passed, of the training clock or (``snapshot_clock:
        cpu``, the measure of work on a loaded machine) of CPU time (rank 0; written whole or not at all)."""
        if not self.dist.main:
            return
        tc = self.config.training
        for m in tc.snapshots:
            where = self.run / "snapshots" / f"{m:g}min"
            if (cpu_seconds if tc.snapshot_clock == "cpu" else seconds) >= m * 60 and not where.exists():
                with atomic_dir(where) as tmp:
                    save_model(tmp, self.recon, {**self.meta, "snapshot_minutes": m, "snapshot_clock": tc.snapshot_clock,
                                                 "seconds": seconds, "cpu_seconds": cpu_seconds,
                                                 "step": self.state.step}, physics=self.physics)


def _train(config: Config, out_dir: str | Path, resume: bool, progress: bool,
           hooks: Sequence[Callable[[dict], None]], dist: Dist, device: torch.device, physics: Any) -> TrainResult:
    """Build the run, validate the untrained network (a fresh run), then one `_epoch` and `_end_epoch`
    after another until a stopping rule; the checkpoint after each epoch is the run's whole state."""
    tc = config.training
    r = _build(config, out_dir, resume, dist, device, physics)
    st = r.state
    if not resume:  # epoch 0: the untrained network
        p0, s0 = r.validation()
        if r.selfsup is not None:
            st.initial_loss = p0
        else:
            st.initial_psnr = p0
        r.save_best(0, p0, s0)
        r.log.write(epoch=0, step=0, lr=tc.lr, seconds=0.0, **r.scalars(p0, s0))
        r.tb.scalars(0, **{f"val/{k[4:]}": v for k, v in r.scalars(p0, s0).items()})
        r.save_checkpoint()
    if not any(p.requires_grad for p in r.recon.parameters()):  # e.g. PnP: a fixed denoiser, tuned in prepare
        st.stopped = "nothing to train"
    bar = TrainProgress(tc.epochs * r.steps_per_epoch, st.step, progress, tc.max_minutes * 60, st.seconds)
    t0 = time.perf_counter() - st.seconds
    r.cpu0 = time.process_time() - st.cpu_seconds
    shown = f"{st.best_loss:.4g}" if r.selfsup is not None else f"{st.best_psnr:.2f}"

    def clock() -> float:
        """Seconds of training so far by rank 0's clock (every rank takes the same time decisions)."""
        return dist.from_main(time.perf_counter() - t0)

    try:
        for epoch in range(st.epoch + 1, 0 if st.stopped else tc.epochs + 1):
            train_loss, lr = _epoch(r, epoch, bar, clock, t0, shown)
            shown = _end_epoch(r, epoch, train_loss, lr, bar, clock, hooks)
            if st.stopped:
                break
    finally:
        bar.close()
        r.tb.close()
    return TrainResult(r.run, st.epoch, st.step, st.best_epoch, st.best_psnr, st.best_ssim, st.initial_psnr,
                       st.seconds, st.stopped or "epochs", f"{device}, {r.prec.describe()}", dist.world,
                       tc.supervision, st.best_loss, st.initial_loss)


def _epoch(r: Run, epoch: int, bar: Any, clock: Callable[[], float], t0: float, shown: str) -> tuple[float, float]:
    """One pass over this rank's share of the training minibatches; returns (mean training loss, last lr).
    A non-finite loss raises `TrainingDiverged` (the last checkpoint and best model stay)."""
    tc, st, prec, dist = r.config.training, r.state, r.prec, r.dist
    r.recon.train()
    perm, total, count, lr = torch.randperm(r.train_set.n, generator=r.gens["shuffle"]), 0.0, 0, tc.lr
    parts = dist.batches(r.train_set.minibatches(perm, tc.batch_size))  # this rank's slice of each batch
    for (ids, share, b), (z, x, phys) in zip(parts, r.train_set.epoch([p[0] for p in parts], epoch)):
        if r.curriculum is not None and r.curriculum.active(st.step):  # x, K and y at the smaller size
            z, x, phys = r.curriculum.batch(x, phys, st.step)
        if prec.channels_last and z.dim() == 4:
            z = z.contiguous(memory_format=torch.channels_last)
        lr = r.sched.apply(r.opt, tc.lr, st.step, clock())
        if r.step_loss is not None:  # z = y; x is not read (the network alone under autocast)
            loss = r.step_loss(z, phys, "train", st.step, ids.tolist())
        else:
            with prec.autocast(r.device):
                loss = r.loss_fn(r.step_net(z, phys), x)  # phys: the task's K, or the batch's drawn one
        lv = loss.item() if dist.world == 1 else dist.sum([loss * share * b])[0] / (dist.world * b)
        if not math.isfinite(lv):
            raise TrainingDiverged(
                f"training stopped: the loss became {lv} at epoch {epoch}, step {st.step + 1}; "
                f"kept the checkpoint of epoch {st.epoch} and the best model (epoch {st.best_epoch}) "
                f"in {r.run}; try a lower training.lr (now {tc.lr:g}) or training.grad_clip")
        r.opt.zero_grad(set_to_none=True)
        r.scaler.scale(loss * share if share != 1 else loss).backward()
        if tc.grad_clip > 0:
            r.scaler.unscale_(r.opt)
            torch.nn.utils.clip_grad_norm_(r.recon.parameters(), tc.grad_clip)
        r.scaler.step(r.opt)
        r.scaler.update()
        st.step += 1
        total, count = total + lv * b, count + b
        bar.step(st.step, time.perf_counter() - t0)  # rank 0's bar, its own clock
        if tc.snapshots:
            r.take_snapshots(clock(), r.cpu_clock())
        bar.set_postfix(epoch=epoch, loss=f"{lv:.4g}", val=shown, refresh=False)
        if tc.max_minutes and clock() >= tc.max_minutes * 60:
            st.stopped = "time"
            break
    return total / max(count, 1), lr


def _end_epoch(r: Run, epoch: int, train_loss: float, lr: float, bar: Any, clock: Callable[[], float],
               hooks: Sequence[Callable[[dict], None]]) -> str:
    """Validate, log, keep the best model, decide whether to stop, write the checkpoint, call the hooks;
    returns the validation score as the progress bar shows it."""
    tc, st = r.config.training, r.state
    psnr, ssim = r.validation()  # self-supervised: (val loss, SURE estimate)
    st.epoch, st.seconds, st.cpu_seconds = epoch, clock(), r.cpu_clock()
    row = dict(epoch=epoch, step=st.step, lr=lr, train_loss=train_loss, **r.scalars(psnr, ssim), seconds=st.seconds)
    r.log.write(**row)
    r.tb.scalars(st.step, **{"loss/train": row["train_loss"], "lr": lr},
                 **{f"val/{k[4:]}": v for k, v in r.scalars(psnr, ssim).items()})
    if r.improved(psnr):
        r.save_best(epoch, psnr, ssim)
    else:
        st.bad_epochs += 1
    shown = r.shown(psnr)
    bar.set_postfix(epoch=epoch, loss=f"{row['train_loss']:.4g}", val=shown)
    bar.epoch(epoch, tc.epochs, st.step, row["train_loss"],
              f"val loss {shown}" if r.selfsup is not None else f"val PSNR {shown} dB", st.seconds)
    if tc.max_minutes and st.seconds >= tc.max_minutes * 60:
        st.stopped = "time"
    if tc.early_stopping_patience and st.bad_epochs >= tc.early_stopping_patience:
        st.stopped = "early-stopping"
    st.stopped = st.stopped or ("epochs" if epoch == tc.epochs else "")
    r.save_checkpoint()
    for hook in hooks:
        hook({"epoch": epoch, "step": st.step, "row": row, "run_dir": r.run})
    return shown


def _build(config: Config, out_dir: str | Path, resume: bool, dist: Dist, device: torch.device,
           physics: Any) -> Run:
    """Everything a run needs, checked before the run directory is touched (`_checked`), then the
    optimiser, schedule and loss, the checkpoint's state on resume, the log and what model.json records."""
    tc = config.training
    r, saved = _checked(config, out_dir, resume, dist, device, physics)
    if not resume:
        if r.selfsup is None:
            r.recon.prepare(r.train_set, r.val, data_range=config.evaluation.data_range)
        else:  # from the inputs z = P(y, K) alone (the input scale); `check` refused kinds that fit on x
            r.recon.prepare(Preprocessed(r.train_set, r.recon), None, data_range=config.evaluation.data_range)
    if r.start is not None:  # after prepare: the trained run's input scale is part of what it learned
        r.recon.load_state_dict(r.start[0])
    if r.prec.channels_last:
        r.recon = r.recon.to(memory_format=torch.channels_last)
    if r.selfsup is None:
        r.step_net = dist.wrap(r.recon, "from_input")
    else:  # one wrapper only: two over the same parameters would both reduce their gradients
        r.step_loss = dist.wrap(SelfSupervisedStep(r.recon, r.selfsup, lambda: r.prec.autocast(device)), "forward")
    r.opt = build_optimizer(r.recon.parameters(), tc.optimizer, tc.lr, tc.momentum, tc.weight_decay)
    r.scaler = torch.amp.GradScaler(device.type, enabled=r.prec.scaler)
    r.steps_per_epoch = len(r.train_set.minibatches(torch.arange(r.train_set.n), tc.batch_size))
    r.sched = Schedule(tc.schedule, r.steps_per_epoch, tc.epochs, tc.warmup_epochs, tc.step_size, tc.gamma,
                       tc.max_minutes * 60)
    r.loss_fn = build_loss(tc.loss, tc.ssim_weight, tc.mix_base)
    r.gens = {"shuffle": torch.Generator().manual_seed(config.seed)}
    if saved is not None:
        _restore(r, saved)
    r.log = CSVLog(r.run, keep_until_epoch=r.state.epoch if resume else None, enabled=dist.main,
                   **({"columns": SELFSUP_COLUMNS} if r.selfsup is not None else {}))
    r.tb = TensorBoard(r.run, enabled=dist.main)
    r.meta = {"name": config.name, "physics": r.physics.spec(), "data": config.data.model_dump(mode="json"),
              "training": {"optimizer": tc.optimizer, "loss": tc.loss, "lr": tc.lr, "batch_size": tc.batch_size},
              "software": versions(), **({"init": r.start[1]} if r.start is not None else {}),
              "supervision": r.selfsup.describe() if r.selfsup is not None else {"loss": "x", "reads_x": True}}
    if config.physics_distribution().random:  # trained over drawn physics; `physics` is the nominal one
        r.meta["physics_distributions"] = config.physics_distribution().spec()
    return r


def _checked(config: Config, out_dir: str | Path, resume: bool, dist: Dist, device: torch.device,
             physics: Any) -> tuple[Run, dict | None]:
    """The physics, network, loss and pairs of the run, each checked before anything is written (a bad
    value, a run that would not fit in memory, a resume that would change what was learned: one line),
    then the run directory and its pairs; with the checkpoint to resume from (None: a fresh start)."""
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
    given = check_measurements(config, physics)  # given measurements (no x): read and checked before anything is written
    curriculum = Curriculum(config, recon) if tc.curriculum else None  # a size the run cannot train at: one line
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
                          num_workers=tc.num_workers, stream=tc.stream, raw=raw, measured=given.get("train"))
        val = Pairs(config, physics, "val", recon, device, num_workers=tc.num_workers, raw=raw,
                    measured=given.pop("val", None))
        given.clear()  # the data sets hold them now
    except BaseException:  # e.g. an unreadable image: leave no half-made run behind
        if dist.main and new_dir and {f.name for f in run.iterdir()} <= {"config.yaml"}:
            shutil.rmtree(run)
        raise
    return Run(config, run, physics, recon, train_set, val, selfsup, prec, device, dist, start,
               curriculum=curriculum), saved


def _restore(r: Run, saved: dict) -> None:
    """The checkpoint's weights, optimiser, gradient scale, random state and loop state, with a note
    where the run continues on another number of processes or in another precision."""
    tc, dist = r.config.training, r.dist
    r.recon.load_state_dict(saved["model"])
    r.opt.load_state_dict(saved["optimizer"])
    if saved.get("scaler") and r.prec.scaler:  # float16 on CUDA; other precisions keep no scale
        r.scaler.load_state_dict(saved["scaler"])
    ckpt.set_rng_state(saved["rng"], r.gens)
    r.state = TrainState(**{**{k: saved.get(k, v) for k, v in asdict(r.state).items()}, "stopped": ""})
    info = saved.get("info") or {}  # older checkpoints: no best_loss
    before = info.get("processes", 1)
    if before != dist.world and dist.main:
        logging.getLogger(__name__).warning(
            f"invmap train: note: resuming a run trained on {before} process(es) with {dist.world}; the global "
            f"batch stays {tc.batch_size}, so the run continues the same optimisation up to float rounding "
            "(it is not bit-identical to an uninterrupted run)")
    was = info.get("precision", "float32")  # checkpoints written before it was recorded: float32 or unknown
    if was != r.prec.describe() and dist.main:
        logging.getLogger(__name__).warning(
            f"invmap train: note: resuming a run trained in {str(was)[:40]} with {r.prec.describe()} (training.amp: "
            f"{tc.amp} on {r.device.type}); the weights carry over, the numbers from here on are not "
            "bit-identical to an uninterrupted run")
