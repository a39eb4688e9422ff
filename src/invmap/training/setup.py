"""What the training loop needs before its first step: device, precision, run directory, data.

Training pairs (y, x) come from `invmap.data.PairDataset`. The clean measurements K x of
all training images are simulated once (batched); each minibatch then draws its noise
per sample with the data set's own generators (new noise every epoch with
``fresh_noise``) and computes the network input z = P(y, K) (FBP, Kᵀy, ...) batched.
Without fresh noise, and for the fixed validation pairs, z is computed once.

With ``stream`` (``training.stream``: data larger than memory) nothing is simulated up
front: each minibatch's pairs are read and simulated when needed, by DataLoader workers
(``training.num_workers``), so memory does not grow with the number of training pairs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

import invmap
from .. import budget, models, zoo
from ..atomic import atomic_write, clean_orphans
from ..capabilities import capabilities
from ..config import check_model_matches, Config, first_difference, load_config
from ..data import PairDataset
from ..data.measurements import load_split
from ..files import read_bytes
from ..models import check_compatible, load_model, MODELS
from ..models.io import repair_model_json
from ..paths import inside
from ..selfsup import SelfSupervised
from .checkpoint import CHECKPOINT, load_checkpoint
from .curriculum import Curriculum
from .log import LOG, read_log

#: files whose presence means a directory already holds a training run
RUN_FILES = ("model.safetensors", "checkpoint.safetensors", "train_log.csv")
#: the folders a training run writes into (figures by `invmap run`, snapshots, TensorBoard events)
RUN_FOLDERS = ("figures", "snapshots", "tensorboard")


def select_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("config: training.device is 'cuda' but no CUDA device is available; use auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


#: "0" / "1" overrides the CPU probe below: ``amp: auto`` then behaves as on a CPU without / with
#: native bfloat16 (CI runs the suite both ways on one machine; "1" on a CPU without it is emulated, slower)
NATIVE_BF16_ENV = "INVMAP_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX tiles), unless
    ``INVMAP_CPU_BF16`` says otherwise."""
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ValueError(f"{NATIVE_BF16_ENV} must be 0 or 1 (or unset), got {forced!r}")
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


class Pairs:
    """Training or validation pairs with their network inputs (see the module docstring).

    Drawn physics (`invmap.distributions`): sample i has its own K_{ω_i}. A post-processing
    model takes each sample's z_i = P(y_i, K_{ω_i}) in any minibatch; a reconstructor with K
    inside its map (``recon.operator_inside``: lgd, lpd, unrolled, PnP) is called with one K
    per minibatch, so `minibatches` then makes every minibatch of samples that share their K
    (``shared``) and `epoch` yields each minibatch's physics with it.

    ``raw`` (self-supervised training, `invmap.selfsup`): the minibatches carry y itself in place
    of z (the loss calls the whole map f(y, K) on y and on y's transforms or halves), and every
    minibatch shares its K under drawn physics.
    """

    def __init__(self, config: Config, physics, split: str, recon, device: torch.device,
                 fresh_noise: bool = False, chunk: int = 64, num_workers: int = 0, stream: bool = False,
                 raw: bool = False):
        d = config.data
        src = d.images(split, config.seed)
        sim = d.nominal_simulation if split != "test" else d.test_simulation
        drawn = config.physics_distribution() if split != "test" else None  # ω_i per sample (invmap.distributions)
        self.ds = PairDataset(src, drawn if drawn is not None and drawn.random else physics, seed=config.seed,
                              fresh_noise=fresh_noise, simulation=sim)
        self.physics, self.recon, self.device, self.chunk = physics, recon, device, chunk
        self.n, self.num_workers = len(self.ds), num_workers
        self.shared = self.ds.drawn is not None and (raw or capabilities(recon).operator_inside)
        # y itself (raw: a self-supervised loss calls f_Θ(y, K) whole), or the network's input z; no recon: y only
        self.preprocess = _measurement if raw or recon is None else recon.preprocess
        self.given = bool(d.measurements) and split != "test"  # y from files, no x (`invmap.data.measurements`)
        if self.given:
            op = physics.operator
            self.clean = load_split(d.measurements, split, d.train, d.val, op.out_shape,
                                    bool(op.complex_output)).to(device)  # the measurements, noise and all
            self.n = len(self.clean)
            self.x = torch.full((self.n, 1, d.size, d.size), float("nan"), device=device)  # no x: never read
            self.z = self.inputs(list(range(self.n)))
            return
        self.clean: torch.Tensor | list[torch.Tensor] | None = None
        self.z: torch.Tensor | list[torch.Tensor] | None = None
        if stream or hasattr(src, "set_epoch"):  # augmented images: y = K x' + e simulated per minibatch
            return
        idx = list(range(self.n))
        if self.ds.drawn is not None:  # K_{ω_i} x_i, each distinct K built once (indices sorted by their draw)
            order = sorted(idx, key=lambda i: (self.ds.draw(i).simulation, self.ds.draw(i).sim_operator))
            self.clean, self.x = [None] * self.n, torch.empty(self.n, 1, d.size, d.size, device=device)
            for i in range(0, self.n, chunk):
                part = order[i:i + chunk]
                ys, x = self.ds.clean_each(part, device=device)
                self.x[part] = x
                for k, y in zip(part, ys):
                    self.clean[k] = y
            if not fresh_noise and self.shared:  # z_i = y_i of each K's own shape, kept per sample
                self.z = [None] * self.n
                for part in self.minibatches(torch.arange(self.n), chunk):
                    for k, z in zip(part.tolist(), self.inputs(part.tolist()).split(1)):
                        self.z[k] = z
            elif not fresh_noise:
                self.z = self.inputs(idx)
            return
        if num_workers > 0:  # render + simulate in worker processes (image folders, fine grids)
            loader = torch.utils.data.DataLoader(_Clean(self.ds), batch_size=chunk, num_workers=num_workers)
            parts = [(yc.to(device), x.to(device)) for yc, x in loader]
        else:
            parts = [self.ds.clean(idx[i:i + chunk], device=device) for i in range(0, self.n, chunk)]
        self.clean = torch.cat([p[0] for p in parts])  # K x, [N, 1, *out_shape]
        self.x = torch.cat([p[1] for p in parts])      # x,   [N, 1, H, W]
        self.z = None if fresh_noise else self.inputs(idx)

    def minibatches(self, order: torch.Tensor, size: int) -> list[torch.Tensor]:
        """The minibatches (index tensors, at most `size` each) of the samples in `order`: its
        consecutive runs; with ``shared``, each K's samples in `order`'s order, cut into runs,
        the minibatches sorted by where their first sample stands in `order` (so a shuffled
        `order` shuffles them; every K still gets one last, shorter minibatch)."""
        if not self.shared:
            return list(order.split(size))
        groups: dict[str, list[int]] = {}
        for i in order.tolist():
            groups.setdefault(self.ds.draw(i).operator, []).append(i)
        place = {i: k for k, i in enumerate(order.tolist())}
        out = [g[j:j + size] for g in groups.values() for j in range(0, len(g), size)]
        return [torch.tensor(b, dtype=torch.long) for b in sorted(out, key=lambda b: place[b[0]])]

    def physics_for(self, idx: Sequence[int] | torch.Tensor):
        """The physics a minibatch is reconstructed with: its shared drawn K (``shared``), else the task's."""
        if not self.shared:
            return self.physics
        return self.ds.physics_of(self.ds.draw(int(idx[0])))

    def noisy(self, idx: Sequence[int]) -> torch.Tensor:
        """y = noise(K x_i) with sample i's own generator (the data set's current epoch); given
        measurements as they are."""
        if self.given:
            return self.clean[list(idx)]
        if self.clean is None:  # streaming
            return self.ds.simulate(idx, device=self.device)[0]
        return torch.cat([self.physics.noisy(self.clean[i:i + 1], self.ds.generator(i)) for i in idx])

    def inputs(self, idx: Sequence[int]) -> torch.Tensor:
        """Network inputs z = P(y, K) for `idx`, computed in chunks (drawn physics: each sample's own K)."""
        idx = list(idx)
        if self.ds.drawn is not None:
            return torch.cat([self.ds.inputs_each(idx[i:i + self.chunk], self.clean, self.preprocess,
                                                 self.recon.noise_conditional)
                              for i in range(0, len(idx), self.chunk)])
        return torch.cat([self.preprocess(self.noisy(idx[i:i + self.chunk]), self.physics)
                          for i in range(0, len(idx), self.chunk)])

    def batch(self, idx: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(z, x, physics) for a minibatch; with fresh noise, the noise of `epoch`."""
        if isinstance(self.z, list):
            return torch.cat([self.z[i] for i in idx.tolist()]), self.x[idx], self.physics_for(idx)
        if self.z is not None:
            return self.z[idx], self.x[idx], self.physics
        self.ds.set_epoch(epoch)
        return self.inputs(idx.tolist()), self.x[idx], self.physics_for(idx)

    def epoch(self, batches: Sequence[torch.Tensor], epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, Any]]:
        """(z, x, physics) for each minibatch of indices in `batches`, in order (streamed by
        DataLoader workers when nothing is held in memory)."""
        if self.clean is not None:
            yield from (self.batch(idx, epoch) for idx in batches)
            return
        self.ds.set_epoch(epoch)
        if self.ds.drawn is not None:  # augmented images under drawn physics: each sample's own K, per minibatch
            for idx in batches:
                part = idx.tolist()
                ys, x = self.ds.clean_each(part, device=self.device)
                z = self.ds.inputs_each(part, dict(zip(part, ys)), self.preprocess, self.recon.noise_conditional)
                yield z, x, self.physics_for(idx)
            return
        loader = torch.utils.data.DataLoader(self.ds, batch_sampler=[b.tolist() for b in batches],
                                             num_workers=self.num_workers)
        for y, x in loader:
            yield self.preprocess(y.to(self.device), self.physics), x.to(self.device), self.physics


def _measurement(y: torch.Tensor, physics) -> torch.Tensor:
    """z = y: what `Pairs` hands a self-supervised loss."""
    return y


class Preprocessed:
    """The network inputs z = P(y, K) of raw `Pairs` (y in place of z), for ``recon.prepare``
    (the input scale of post-processing from up to 256 training inputs; never x)."""

    def __init__(self, pairs: Pairs, recon):
        self.pairs, self.recon, self.n, self.z = pairs, recon, pairs.n, None
        self.physics = pairs.physics

    def inputs(self, idx) -> torch.Tensor:
        idx = torch.as_tensor(list(idx), dtype=torch.long)
        p = self.pairs
        return torch.cat([self.recon.preprocess(p.batch(b, 0)[0] if p.z is not None else p.inputs(b.tolist()),
                                                p.physics_for(b)) for b in p.minibatches(idx, p.chunk)])


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
    """The configured reconstructor: a model-based kind (`invmap.models.KINDS`), or a
    `LearnedReconstructor` around the configured network, sized from the shape of its input.

    On the ``meta`` device nothing is allocated: the network is described (every shape and
    parameter check runs) without memory, as `check_config` and `check_memory` need.
    """
    m = config.model
    if m.is_kind:
        params = m.params()
        if _takes(m.name, "complex_data", models.KINDS):
            params.setdefault("complex_data", bool(physics.operator.complex_output))
        if device.type == "meta":
            return budget.on_meta(lambda: models.build_kind(m.name, **params))
        return models.build_kind(m.name, **params).to(device)
    probe = models.LearnedReconstructor(torch.nn.Identity(), **m.reconstructor_params())
    z0 = probe.input_shape(physics)
    params = m.params()
    if z0[0] != 1 and "in_channels" not in params and _takes(m.name, "in_channels"):
        params["in_channels"] = int(z0[0])  # e.g. complex measurements as [Re, Im]

    def build():
        net = models.build_for(m.name, tuple(z0[1:]), (config.data.size, config.data.size), **params)
        return models.LearnedReconstructor(net, **m.reconstructor_params())

    if device.type == "meta":
        return budget.on_meta(build)
    return build().to(device)


def _activation_bytes(net: torch.nn.Module, z_shape: tuple[int, ...]) -> int:
    """Bytes of every module output of one forward pass on a meta batch of `z_shape`
    (what backpropagation keeps); 0 if the network cannot run on the meta device."""
    total = [0]

    def hook(_m, _inp, out):
        if isinstance(out, torch.Tensor):
            total[0] += out.numel() * 4

    handles = [mod.register_forward_hook(hook) for mod in net.modules() if not list(mod.children())]
    try:
        net(torch.zeros(z_shape, device="meta"))
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel: parameters and data only
        total[0] = 0
    finally:
        for h in handles:
            h.remove()
    return total[0]


def check_memory(config: Config, physics) -> int:
    """Estimate the bytes a training run of `config` allocates and refuse above the memory
    budget (`invmap.budget`) before allocating any of it; returns the estimate.

    Counted (float32): the network's parameters four times (weights, gradients, two Adam
    moments), the activations of one training batch (a forward pass on the meta device),
    and the training and validation pairs held in memory — x, K x and the network input z
    of every image (with ``training.stream`` the training pairs are read per minibatch
    and not held: only the validation pairs count).
    """
    d, tc = config.data, config.training
    recon = build_reconstructor(config, physics, torch.device("meta"))
    op = physics.operator
    y_shape = (2 if op.complex_output else 1, *op.out_shape)
    z_shape = tuple(recon.input_shape(physics))
    params = budget.tensor_bytes(recon)
    acts = (_activation_bytes(recon.net, (tc.batch_size, *z_shape)) if hasattr(recon, "net")
            else sum(_activation_bytes(block, (tc.batch_size, *shape)) for block, shape in recon.trained_blocks(physics)))
    pair = 4 * (d.size * d.size + math.prod(y_shape) + math.prod(z_shape))
    held = d.val + (0 if tc.stream or d.augment.enabled() else d.train)  # augmented: simulated per minibatch
    data = held * pair
    if d.augment.enabled():  # each minibatch rendered at the largest zoom on the 2× simulation grid
        data += tc.batch_size * 4 * (2 * max(d.augment.zoom) * d.size) ** 2
    total = 4 * params + acts + data
    budget.check(total, f"training '{config.model.name}' on {d.train}+{d.val} pairs of {d.size}×{d.size} images "
                        f"(parameters {budget.human(params)}, one batch's activations {budget.human(acts)}, "
                        f"pairs {budget.human(data)})")
    return total



def check_measurements(config: Config, physics) -> None:
    """Given measurements (``data.measurements``) hold y without x: only a self-supervised run can
    learn from them, with the config's one K; every file is checked (shape, kind, finite values)
    here, before anything is written. One-line ValueErrors."""

    d = config.data
    if not d.measurements:
        return
    if config.training.supervision == "x":
        raise ValueError("data.measurements holds y without x: supervised training (training.supervision x) cannot "
                         "learn from it; choose mc, ei, sure or split")
    if config.physics_distribution().random:
        raise ValueError("data.measurements: given measurements were taken with one K (the config's); drawn "
                         "operator or noise parameters cannot describe them")
    op = physics.operator
    for split in ("train", "val"):
        load_split(d.measurements, split, d.train, d.val, op.out_shape, bool(op.complex_output))


def check_config(config: Config, device: torch.device = torch.device("meta")) -> Any:
    """Build what a run builds — physics, network, the image source of every split — so that
    a bad value fails with its own message before anything is written. On the ``meta``
    device (the default) the network takes no memory and the operator's matrices are not
    built (they are made on first use), so a check costs milliseconds whatever the sizes.
    Returns the physics it built (the run's `invmap.experiment.Experiment` keeps it)."""
    select_device(config.training.device)  # e.g. cuda on a machine without one
    physics = config.physics()
    check_memory(config, physics)
    recon = build_reconstructor(config, physics, device)
    selfsup = SelfSupervised.from_config(config)
    if selfsup is not None:  # a self-supervised loss the task cannot serve
        selfsup.check(physics, recon)
    check_measurements(config, physics)
    if config.training.curriculum:  # a size the run cannot train at
        Curriculum(config, recon)
    for split in ("train", "val", "test"):
        config.data.images(split, config.seed)
    return physics


def _takes(name: str, param: str, registry=None) -> bool:
    import inspect

    return param in inspect.signature((registry or MODELS).get(name)).parameters


def versions() -> dict[str, Any]:
    import sys

    return {"invmap": invmap.__version__, "torch": torch.__version__, "python": sys.version.split()[0]}
