"""What the training loop needs before its first step: device, precision, run directory, data.

Training pairs (y, x) come from `invmap.data.PairDataset`. The clean measurements K x of
all training images are simulated once (batched); each minibatch then draws its noise
per sample with the data set's own generators (new noise every epoch with
``fresh_noise``) and computes the network input z = P(y, K) (FBP, Kᵀy, ...) batched.
Without fresh noise, and for the fixed validation pairs, z is computed once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..config import Config

#: files whose presence means a directory already holds a training run
RUN_FILES = ("model.safetensors", "checkpoint.safetensors", "train_log.csv")


def select_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("config: training.device is 'cuda' but no CUDA device is available; use auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX tiles)."""
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    try:
        return any(bool(f()) for f in probes if f is not None)
    except Exception:  # noqa: BLE001 - a private torch probe: never fail training over it
        return False


@dataclass
class Precision:
    """Mixed precision settings: autocast dtype (None = float32) and whether to scale gradients."""

    dtype: torch.dtype | None
    scaler: bool
    channels_last: bool

    @staticmethod
    def choose(amp: str, device: torch.device) -> "Precision":
        """``auto``: mixed precision on CUDA, and bfloat16 autocast on a CPU that computes in
        bfloat16 natively (AVX512-BF16 or AMX: 1.7–2× faster training here); else float32."""
        cuda = device.type == "cuda"
        if amp == "off" or (amp == "auto" and not cuda and not cpu_has_native_bf16()):
            return Precision(None, False, cuda)
        if cuda:
            bf16 = torch.cuda.is_bf16_supported()
            return Precision(torch.bfloat16 if bf16 else torch.float16, not bf16, True)
        return Precision(torch.bfloat16, False, False)  # amp: on, on a CPU

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    def describe(self) -> str:
        return "float32" if self.dtype is None else f"autocast {str(self.dtype).replace('torch.', '')}"


def prepare_run_dir(out_dir: str | Path, config: Config, resume: bool) -> Path:
    """Create the run directory (refusing to overwrite a run unless resuming) and write config.yaml."""
    from .checkpoint import CHECKPOINT, atomic_write_text

    run = Path(out_dir)
    if run.exists() and not run.is_dir():
        raise NotADirectoryError(f"run directory {run} is a file")
    held = [f for f in RUN_FILES if (run / f).exists()]
    if resume:
        if not (run / CHECKPOINT).exists():
            raise FileNotFoundError(f"cannot resume: no {CHECKPOINT} in {run}")
    elif held:
        raise FileExistsError(f"{run} already holds a training run ({held[0]}); continue it with --resume "
                              f"or choose a new directory with --out")
    text = config.to_yaml()
    if not resume and not held:
        keep_user_config(run / "config.yaml", text)
    run.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run / "config.yaml", text)
    return run


def keep_user_config(path: Path, text: str) -> None:
    """Refuse to start a run over a ``config.yaml`` that is not the resolved config `text`.

    In a directory without a run, such a file is the user's own (``invmap train my/config.yaml
    --out my``: a commented, partial config): invmap never replaces it. A config.yaml that
    already holds `text` (written by an earlier start) is fine.
    """
    if path.is_file() and path.read_bytes() != text.encode():
        raise FileExistsError(f"{path} exists and is not this run's resolved config (your own config file?); "
                              f"invmap never replaces it: choose another --out, e.g. {path.parent / 'run'}")


#: config sections a resumed run may change (the others describe what the checkpoint learned)
RESUMABLE = ("training", "evaluation")


def _first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, a's value, b's value) of the first place two nested dicts differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            d = _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
            if d:
                return d
        return None
    return None if a == b else (path, a, b)


def check_resume(run_dir: str | Path, config: Config, recon: torch.nn.Module, device: torch.device) -> dict | None:
    """The checkpoint of `run_dir`, after checking that `config` may continue it; writes nothing
    (None without a checkpoint: `prepare_run_dir` then says why the run cannot resume).

    A resumed run keeps its name, seed, data, operator, noise and model (only `RESUMABLE`
    sections may change), and the checkpoint's weights must fit the network `recon` built
    from `config`. Any mismatch is a one-line ``ValueError`` raised before the run directory
    (config.yaml included) is touched.
    """
    from ..config import load_config
    from .checkpoint import CHECKPOINT, load_checkpoint

    run = Path(run_dir)
    if not (run / CHECKPOINT).exists():
        return None
    if (run / "config.yaml").exists():
        saved = load_config(run / "config.yaml").to_dict()
        new = config.to_dict()
        fixed = {k: v for k, v in saved.items() if k not in RESUMABLE}
        diff = _first_difference(fixed, {k: new.get(k) for k in fixed})
        if diff:
            key, was, now = diff
            raise ValueError(f"cannot resume {run}: {key} would change from {was!r} to {now!r}; a resumed run "
                             f"keeps its name, seed, data, operator, noise and model (change only "
                             f"{' or '.join(RESUMABLE)} settings, or train a new run)")
    state = load_checkpoint(run, device)
    expected = recon.state_dict()
    stored = state.get("model") or {}
    for k, v in expected.items():
        if k not in stored or tuple(stored[k].shape) != tuple(v.shape):
            got = list(stored[k].shape) if k in stored else "missing"
            raise ValueError(f"cannot resume {run}: the checkpoint's tensor '{k}' is {got}, but the configured "
                             f"network needs {list(v.shape)}; config and checkpoint describe different models")
    return state


class Pairs:
    """Training or validation pairs with their network inputs (see the module docstring)."""

    def __init__(self, config: Config, physics, split: str, recon, device: torch.device,
                 fresh_noise: bool = False, chunk: int = 64, num_workers: int = 0):
        from ..data import PairDataset, build_source

        d = config.data
        count = {"train": d.train, "val": d.val, "test": d.test}[split]
        src = build_source(d.source, d.size, split=split, count=count, seed=config.seed, **d.params)
        sim = d.simulation if split != "test" else d.test_simulation
        self.ds = PairDataset(src, physics, seed=config.seed, fresh_noise=fresh_noise, simulation=sim)
        self.physics, self.recon, self.device, self.chunk = physics, recon, device, chunk
        self.n = len(self.ds)
        idx = list(range(self.n))
        if num_workers > 0:  # render + simulate in worker processes (image folders, fine grids)
            loader = torch.utils.data.DataLoader(_Clean(self.ds), batch_size=chunk, num_workers=num_workers)
            parts = [(yc.to(device), x.to(device)) for yc, x in loader]
        else:
            parts = [self.ds.clean(idx[i:i + chunk], device=device) for i in range(0, self.n, chunk)]
        self.clean = torch.cat([p[0] for p in parts])  # K x, [N, 1, *out_shape]
        self.x = torch.cat([p[1] for p in parts])      # x,   [N, 1, H, W]
        self.z: torch.Tensor | None = None if fresh_noise else self.inputs(idx)

    def noisy(self, idx: Sequence[int]) -> torch.Tensor:
        """y = noise(K x_i) with sample i's own generator (the data set's current epoch)."""
        nz = self.physics.noise
        return torch.cat([nz(self.clean[i:i + 1], generator=self.ds.generator(i)) for i in idx])

    def inputs(self, idx: Sequence[int]) -> torch.Tensor:
        """Network inputs z = P(y, K) for `idx`, computed in chunks."""
        idx = list(idx)
        return torch.cat([self.recon.preprocess(self.noisy(idx[i:i + self.chunk]), self.physics)
                          for i in range(0, len(idx), self.chunk)])

    def batch(self, idx: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, x) for a minibatch; with fresh noise, the noise of `epoch`."""
        if self.z is not None:
            return self.z[idx], self.x[idx]
        self.ds.set_epoch(epoch)
        return self.inputs(idx.tolist()), self.x[idx]


class _Clean(torch.utils.data.Dataset):
    """(K x, x) without noise, batched through `PairDataset.clean` (for DataLoader workers)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, indices):
        yc, x = self.ds.clean(list(indices))
        return list(zip(yc.unbind(0), x.unbind(0)))

    def __getitem__(self, i):
        return self.__getitems__([i])[0]


def build_reconstructor(config: Config, physics, device: torch.device):
    """`LearnedReconstructor` around the configured network, sized from the shape of its input.

    On the ``meta`` device nothing is allocated: the network is described (every shape and
    parameter check runs) without memory, as `check_config` needs.
    """
    from .. import models

    m = config.model
    probe = models.LearnedReconstructor(torch.nn.Identity(), **m.reconstructor_params())
    z0 = probe.input_shape(physics)
    params = m.params()
    if z0[0] != 1 and "in_channels" not in params and _takes(m.name, "in_channels"):
        params["in_channels"] = int(z0[0])  # e.g. complex measurements as [Re, Im]
    with torch.device(device) if device.type == "meta" else contextlib.nullcontext():
        net = models.build_for(m.name, tuple(z0[1:]), (config.data.size, config.data.size), **params)
        return models.LearnedReconstructor(net, **m.reconstructor_params()).to(device)


def check_config(config: Config, device: torch.device = torch.device("meta")) -> None:
    """Build what a run builds — physics, network, the image source of every split — so that
    a bad value fails with its own message before anything is written. On the ``meta``
    device (the default) the network takes no memory and the operator's matrices are not
    built (they are made on first use), so a check costs milliseconds whatever the sizes."""
    from ..data import build_source

    select_device(config.training.device)  # e.g. cuda on a machine without one
    physics = config.physics()
    build_reconstructor(config, physics, device)
    d = config.data
    for split, count in (("train", d.train), ("val", d.val), ("test", d.test)):
        build_source(d.source, d.size, split=split, count=count, seed=config.seed, **d.params)


def _takes(name: str, param: str) -> bool:
    import inspect

    from ..models import MODELS

    return param in inspect.signature(MODELS.get(name)).parameters


def versions() -> dict[str, Any]:
    import sys

    import invmap

    return {"invmap": invmap.__version__, "torch": torch.__version__, "python": sys.version.split()[0]}
