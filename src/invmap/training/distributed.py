"""Data-parallel training on torch.distributed (DDP), launched by torchrun.

    torchrun --standalone --nproc-per-node N -m invmap train CONFIG …        # one machine
    invmap train CONFIG --nproc N                                            # launches exactly that
    torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d \\
             --rdzv-endpoint HOST:PORT --rdzv-id JOB -m invmap train CONFIG …  # on each of M machines

Each of the W = M·N processes (ranks) holds a replica of f_Θ (gloo on CPUs, NCCL on GPUs:
rank r uses ``cuda:LOCAL_RANK``). Every rank draws the same permutation of the training
pairs; the global minibatch of b = ``training.batch_size`` pairs is cut into W slices of
b_r pairs, and rank r minimises its slice's mean loss weighted by its share W·b_r/b, so
that DDP's gradient average is the gradient of the global batch's mean loss:

    (1/W) Σ_r (W b_r / b) ∇_Θ (1/b_r) Σ_{i ∈ slice r} ℓ_i  =  ∇_Θ (1/b) Σ_{i ∈ batch} ℓ_i .

Results thus depend on W only through the order of float32 sums. The per-index seeds of
`invmap.data.PairDataset` make every slice the same pairs with the same noise on any rank.
Validation scores are sums over each rank's share of the validation pairs, all-reduced, so
every rank takes the same decisions (best model, early stopping); the time budget follows
rank 0's clock. Only rank 0 writes (logs, checkpoints, models, the progress bar).

The wrapping lives here, in `wrap`, so every training loop that calls a module method
(today ``recon.from_input(z)``, tomorrow ``recon(y, physics)``) is made data-parallel the
same way.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.distributed as tdist
from torch import nn

if tdist.is_available():  # before any process group exists: see `Dist.stop`
    import torch.distributed.nn  # noqa: F401


class _Call(nn.Module):
    """``module.<method>(*args)`` as a module's forward, so DDP can wrap any method."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args, **kwargs):
        return getattr(self.module, self.method)(*args, **kwargs)


@dataclass
class Dist:
    """This process's place in the job: rank r of `world` (1 = no process group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @staticmethod
    def from_env() -> "Dist":
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as set by torchrun (absent: one process);
        values torchrun would not set (not integers, RANK ≥ WORLD_SIZE, …) are a one-line ValueError."""
        world = env_int("WORLD_SIZE", 1, 1, MAX_WORLD)
        return Dist(env_int("RANK", 0, 0, world - 1), world, env_int("LOCAL_RANK", 0, 0, world - 1))

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes."""
        return self.rank == 0

    def start(self, device: torch.device) -> torch.device:
        """Join the process group (gloo on CPU, NCCL on CUDA) and return this rank's device."""
        if device.type == "cuda" and self.world > 1:
            gpus = torch.cuda.device_count()
            if self.local_rank >= gpus:  # NCCL needs a GPU of its own per rank
                raise ValueError(f"rank {self.rank}: local rank {self.local_rank} has no GPU of its own ({gpus} "
                                 f"visible); start at most {gpus} processes per node (--nproc-per-node {gpus})")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        if self.world > 1 and not tdist.is_initialized():
            wait = timeout()
            try:
                tdist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                         timeout=datetime.timedelta(seconds=wait))
            except (tdist.DistError, RuntimeError) as e:  # e.g. WORLD_SIZE says 4, 2 ranks started
                why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
                raise ValueError(f"the process group of {self.world} ranks did not form within {wait:g} s "
                                 f"({why}); check that all {self.world} ranks started (WORLD_SIZE, --nproc-per-node, "
                                 f"--nnodes) or raise {TIMEOUT_ENV}") from None
        return device

    def stop(self) -> None:
        """Leave the process group, and with it end its threads, before this process exits.

        gloo runs a group on C++ threads (a socket loop, the collectives' workers) that are
        joined only when the group object is freed; ``destroy_process_group`` drops torch's
        own references to it, not others. A group still referenced at exit keeps those
        threads running while the interpreter shuts down, and the process then ends in no
        fixed order: under load a rank aborted after a finished run ("terminate called
        without an active exception", exit code −6). So nothing may hold the group here: the
        DDP wrapper is gone when training returns (a failed training's frames are cleared,
        `invmap.training.loop.train`), and ``torch.distributed.nn`` is imported at the top of
        this module, before any group exists — its functions take ``group=group.WORLD`` as a
        default argument, evaluated when it is first imported (DDP imports it), which would
        otherwise keep the job's group alive to the end.
        """
        if self.world > 1 and tdist.is_initialized():
            tdist.destroy_process_group()

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world:
            raise ValueError(f"config: training.batch_size {batch_size} is the global batch and must be divisible "
                             f"by the {self.world} processes; choose a multiple of {self.world}")

    def wrap(self, module: nn.Module, method: str = "forward"):
        """A callable running ``module.<method>`` whose gradients are averaged over the ranks (DDP)."""
        if self.world == 1 or not any(p.requires_grad for p in module.parameters()):  # e.g. PnP: nothing to train
            return getattr(module, method)
        if self.device.type == "cuda":
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(_Call(module, method), device_ids=ids)

    def batches(self, globs: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, float, int]]:
        """This rank's slices of the global minibatches `globs` (index tensors): ``(indices, share, b)``.

        A global batch smaller than the world (the last one) gives the ranks without a
        sample one sample with share 0, so every rank still takes part in the all-reduce.
        """
        out = []
        for glob in globs:
            mine = torch.tensor_split(glob, self.world)[self.rank]
            share = len(mine) * self.world / len(glob)
            out.append((mine if len(mine) else glob[:1], share, len(glob)))
        return out

    def sum(self, values: Sequence[float | torch.Tensor]) -> list[float]:
        """Σ over the ranks of each value (float64)."""
        t = torch.stack([torch.as_tensor(v, dtype=torch.float64).detach().cpu() for v in values])
        if self.world > 1:
            t = t.to(self.device)
            tdist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def from_main(self, value: float) -> float:
        """Rank 0's `value` on every rank (e.g. its clock, for the time budget and the schedule)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        tdist.broadcast(t, 0)
        return float(t.item())


#: the most ranks a job may declare (a typo such as WORLD_SIZE=10**9 is refused, not waited for)
MAX_WORLD = 65536
#: seconds a rank waits for the others: to form the process group, and at each collective
TIMEOUT_ENV, DEFAULT_TIMEOUT = "INVMAP_DIST_TIMEOUT", 600.0


def env_int(name: str, default: int, low: int, high: int) -> int:
    """The integer environment variable `name` in [low, high] (absent: `default`), else a one-line ValueError."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        v = int(text)
    except ValueError:
        raise ValueError(f"torchrun: {name}={text[:40]!r} is not an integer") from None
    if not low <= v <= high:
        raise ValueError(f"torchrun: {name}={v} is outside [{low}, {high}]"
                         + (" (RANK and LOCAL_RANK count from 0 to WORLD_SIZE − 1)" if name != "WORLD_SIZE" else ""))
    return v


def timeout() -> float:
    """`TIMEOUT_ENV` seconds (default `DEFAULT_TIMEOUT`): a finite number > 0, else a one-line ValueError."""
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        t = float(text) if text.strip() else DEFAULT_TIMEOUT
    except ValueError:
        t = math.nan
    if not (0 < t <= 7 * 86400):
        raise ValueError(f"{TIMEOUT_ENV}={text[:40]!r} must be a number of seconds in (0, 604800]")
    return t


def under_torchrun() -> bool:
    """Whether this process was started by torchrun (as one rank of a job)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or env_int("WORLD_SIZE", 1, 1, MAX_WORLD) > 1


def peer_failure(e: BaseException) -> bool:
    """Whether `e` is a collective that failed because another rank stopped (its error is reported there)."""
    return isinstance(e, tdist.DistError) or any(s in str(e) for s in PEER_GONE)


#: what gloo / NCCL say when the other end of a collective has gone away
PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``torchrun --standalone --nproc-per-node nproc -m invmap *argv`` (torch.distributed.run)
    and return its exit status; the ranks' own error lines are the report, torchrun's
    agent stays quiet."""
    from torch.distributed import run as tdrun
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    args = tdrun.parse_args(["--standalone", f"--nproc-per-node={nproc}", "--module", "invmap", *argv])
    try:
        tdrun.run(args)
    except ChildFailedError as e:
        rank, failure = min(e.failures.items(), key=lambda kv: kv[1].timestamp)
        if failure.exitcode == 2:  # the rank printed its own one-line `invmap: error: …`
            return 2
        print(f"invmap: error: training stopped: rank {rank} of {nproc} ended with exit code {failure.exitcode}; "
              "the other ranks were stopped and the run directory keeps its last checkpoint", file=sys.stderr)
        return 2
    return 0


__all__ = ["Dist", "launch", "under_torchrun", "peer_failure", "env_int", "timeout", "MAX_WORLD", "TIMEOUT_ENV"]
