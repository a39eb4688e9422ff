"""Reconstruct an image from a measurement y with a variational method or a trained model.

    invmap reconstruct --method tv --task task.yaml --input sino.npy --output x.png
    invmap reconstruct --method tv --param lam=0.02 --task task.yaml --input x.png --simulate --output x_tv.png
    invmap reconstruct --model runs/NAME --input sino.npy --output x.npy

The task config (the experiment YAML) gives the operator K, the noise model and the image
size (with ``--model`` alone: the model's own physics, at ``--size N`` for N×N images — a fully
convolutional model trained on patches reconstructs whole images); ``--simulate`` reads an image x instead of y and measures y = K x + e first (noise
seeded by the config's ``seed``).

With ``--model`` every reconstruction is checked against its own data without ground truth
(`invmap.trust`): the data-consistency ratio ρ = ‖K x̂ − y‖ / √E‖e‖², the tuned TV's ρ on
the same y (the run's baselines.json), the sensitivity to fresh noise draws against the
model's training conditions (and, with ``--ensemble RUN``, the disagreement with other
runs), combined into one score calibrated on the run's validation measurements. It prints
one verdict per image (``consistent: …`` / ``suspect: …``) and writes the numbers to
``OUTPUT.trust.json``; ``--residual-map R.png`` also writes Kᵀ(K x̂ − y) in image space
(grey = 0). ``--safe`` refines x̂ by a TV solve anchored at x̂ whose anchor weakens as the
score rises (`invmap.trust.SafeReconstructor`); where y itself says a calibration parameter
of K is off (the CT detector offset), safe re-runs the model and TV with K recalibrated to
the value read from y and says so. Inputs: ``.npy`` (a measurement shaped like the
operator's output, optionally with leading batch/channel axes, or an image) or an image
file (PNG/JPEG/TIFF, read as gray values in [0, 1]). Outputs: ``.npy`` (float32) or an
image file (values clipped to [0, 1]). An existing output is never replaced without
``--overwrite``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .. import budget, variational, zoo
from ..atomic import atomic_write
from ..byteorder import native_order
from ..capabilities import capabilities
from ..config import first_difference, load_config, load_yaml, YAMLBoundsError
from ..data.io import dtype_max, fit_items, read_image
from ..evaluation.evaluate import atomic_write_json
from ..evaluation.resolve import BASELINE, SAFE
from ..evaluation.runs import build_methods, load_baselines, resolve
from ..evaluation.trust import calibrate_model
from ..evaluation.experiment import Experiment
from ..files import check_regular
from ..models import check_compatible, load_model
from ..paths import distinct_outputs
from ..physics import Physics, resized_physics
from ..trust import diagnose, reference_physics, SafeReconstructor
from ..trust.conformal import agreement
from ..trust.safe import TOLERANCE_DB
from ..variational.posterior import Posterior

HELP = "reconstruct x from a measurement y (variational method or trained model)"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def add_arguments(p: argparse.ArgumentParser) -> None:
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--method", help="variational method (see `invmap reconstruct --list`): fbp, tv, cgls, ...")
    how.add_argument("--model", metavar="RUN_DIR", help="a trained model's run directory (model.safetensors + model.json)")
    how.add_argument("--list", action="store_true", help="list the variational methods and their parameters")
    p.add_argument("--task", metavar="CONFIG", help="experiment YAML giving operator, noise and data.size "
                   "(default: the model's own physics with --model, the built-in default otherwise)")
    p.add_argument("--input", help="measurement y (.npy or image file), or an image x with --simulate")
    p.add_argument("--output", help="reconstruction x̂ (.npy or .png)")
    p.add_argument("--simulate", action="store_true", help="the input is an image x: measure y = K x + e first")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="method parameter, repeatable (e.g. --param lam=0.01 --param iters=300)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="overrides",
                   help="override a task config value, e.g. --set operator.angles=30 (with --model and no "
                        "--task: a value of the run's own config.yaml)")
    p.add_argument("--size", type=int, metavar="N", help="with --model and no --task: reconstruct N×N images, the "
                   "model's physics built for that size (a fully convolutional model trained on smaller patches)")
    p.add_argument("--resize", action="store_true", help="with --simulate: resample the input image to the size the "
                   "operator takes (centre square, anti-aliased, as an image folder is read) instead of refusing "
                   "another size")
    p.add_argument("--safe", action="store_true", help="with --model: refine the model's x̂ by a data-consistent "
                   "TV solve warm-started and anchored at x̂, the anchor weaker the less it is trusted")
    p.add_argument("--residual-map", metavar="PATH", help="with --model: also write Kᵀ(K x̂ − y) (.png: grey = 0, "
                   "or .npy)")
    p.add_argument("--ensemble", action="append", default=[], metavar="RUN_DIR",
                   help="with --model: another trained run of the same task; their disagreement joins the trust "
                        "score (repeatable)")
    p.add_argument("--bound", type=float, metavar="P", help="with --model: per-image PSNR lower bound at probability "
                   "P (0 < P < 1; default the run's evaluation.bound, 0.9), split conformal on its validation pairs")
    p.add_argument("--intervals", action="store_true", help="with --model: also write OUTPUT.lower / OUTPUT.upper, "
                   "per-pixel intervals missing at most evaluation.pixel_risk (0.1) of the pixels with probability "
                   "1 − evaluation.pixel_delta (0.9), risk-controlled on the run's validation pairs")
    p.add_argument("--samples", type=int, metavar="N", help="with a posterior sampler (--method diffpir | dps): "
                   "draw N samples of x | y; OUTPUT is their mean, OUTPUT.std.npy the per-pixel standard deviation, "
                   "OUTPUT.samples.npy the samples [N, B, H, W]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...); default cpu")


# ----------------------------------------------------------------------------- task
def task_physics(path: str | None, overrides: list[str]) -> tuple[Any, int, int]:
    """(Physics, image size, seed) from an experiment config — the one coupling to `invmap.config`."""
    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"task config not found: {path}")
    cfg = load_config(path, overrides)
    size = int(cfg.data.size)
    return cfg.physics(), size, int(cfg.seed)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["lam=0.01", "nonneg=true"]`` → ``{"lam": 0.01, "nonneg": True}`` (values read as YAML by
    the hardened loader `invmap.config.load_yaml`; text that is not YAML stays text)."""
    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--param expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        k = k.strip()
        if not k:
            raise ValueError(f"--param expects KEY=VALUE, got {it!r}")
        try:
            out[k] = load_yaml(v) if v.strip() else None
        except YAMLBoundsError as e:
            raise ValueError(f"--param {k[:40]}: the value is {e}") from None
        except yaml.YAMLError:
            out[k] = v
    return out


# ------------------------------------------------------------------------------- io
def read_array(path: str) -> np.ndarray:
    """A .npy array or an image file as float gray values in [0, 1]."""
    p = check_regular(path, "input file")  # not a FIFO, a device or a directory
    suf = p.suffix.lower()
    if suf == ".npy":
        try:
            header = np.load(p, mmap_mode="r", allow_pickle=False)  # the header only: refuse before reading
            budget.check(int(header.nbytes), f"input {path} ({'×'.join(map(str, header.shape))} {header.dtype})")
            a = np.load(p, allow_pickle=False)
        except budget.MemoryBudgetError:
            raise
        except Exception as e:  # noqa: BLE001 - corrupt files: one line
            raise ValueError(f"cannot read {path} as .npy: {e}") from None
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"{path}: expected a numeric array, got dtype {a.dtype}")
        return native_order(a)
    if suf in IMAGE_SUFFIXES:
        a, stored = read_image(p)  # gray, as the folder loader reads it
        return a / (dtype_max(stored) or 1.0)
    raise ValueError(f"unsupported input type '{suf}' ({path}); use .npy or an image file ({', '.join(IMAGE_SUFFIXES)})")


def to_batch(a: np.ndarray, shape: tuple[int, ...], what: str, complex_ok: bool):
    """Array shaped ``shape``, ``[C, *shape]`` or ``[B, C, *shape]`` → torch ``[B, 1, *shape]``."""
    import torch

    n = len(shape)
    if a.ndim < n or tuple(a.shape[-n:]) != tuple(shape) or a.ndim > n + 2 or (a.ndim > n and a.shape[-n - 1] != 1):
        raise ValueError(f"{what} has shape {list(a.shape)}; the task's operator expects "
                         f"{list(shape)} (optionally [B, 1, ...])")
    if np.iscomplexobj(a) and not complex_ok:
        raise ValueError(f"{what} is complex but the operator's {what} is real")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} contains NaN or Inf values")
    dtype = torch.complex64 if np.iscomplexobj(a) else torch.float32
    t = torch.as_tensor(np.ascontiguousarray(a)).to(dtype)
    return t.reshape((-1, 1) + tuple(shape))


def write_output(path: str, x: np.ndarray, overwrite: bool) -> None:
    """Write x (``[B, H, W]``) as .npy or an 8-bit image, atomically (temp file + rename)."""
    p = Path(path)
    suf = p.suffix.lower()
    if suf != ".npy" and suf not in IMAGE_SUFFIXES:
        raise ValueError(f"unsupported output type '{suf}' ({path}); use .npy or .png")
    if suf in IMAGE_SUFFIXES and x.shape[0] != 1:
        raise ValueError(f"{x.shape[0]} images cannot go into one {suf} file; use .npy")
    if os.path.lexists(p) and not overwrite:  # a symlink, even a dangling one, is an existing output
        raise FileExistsError(f"output exists: {path} (use --overwrite to replace it)")
    if not p.parent.exists():
        raise FileNotFoundError(f"output directory does not exist: {p.parent}")
    if suf == ".npy":
        atomic_write(p, lambda tmp: np.save(tmp, (x[0] if x.shape[0] == 1 else x).astype(np.float32)))
    else:
        import imageio.v3 as iio

        img = np.round(np.clip(x[0], 0.0, 1.0) * 255.0).astype(np.uint8)
        atomic_write(p, lambda tmp: iio.imwrite(tmp, img, extension=suf))


# ------------------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> int:
    if args.list:
        for n in variational.names():
            print(variational.METHODS.describe(n))
        return 0
    if not args.input or not args.output:
        raise ValueError("reconstruct needs --input and --output")
    args.pretrained = zoo.is_pretrained(args.model)
    if args.model is not None:  # pretrained:NAME → the zoo entry's (verified) directory, only read
        args.model = str(zoo.run_dir(args.model))
    args.ensemble = [str(zoo.run_dir(r)) for r in args.ensemble]
    if os.path.lexists(args.output) and not args.overwrite:
        raise FileExistsError(f"output exists: {args.output} (use --overwrite to replace it)")
    if args.model is None and (args.safe or args.residual_map or args.ensemble or args.intervals
                               or args.bound is not None):
        raise ValueError("--safe, --residual-map, --ensemble, --bound and --intervals need --model")
    if args.size is not None and (args.model is None or args.task is not None):
        raise ValueError("--size applies to --model without --task (with --task, set data.size)")
    if args.size is not None and not 8 <= args.size <= 4096:
        raise ValueError(f"--size must lie in [8, 4096], got {args.size}")
    if args.samples is not None and (args.method is None or args.samples < 1):
        raise ValueError("--samples needs --method diffpir | dps" if args.method is None
                         else f"--samples must be >= 1, got {args.samples}")
    sidecar = trust_sidecar(args.output) if args.model is not None else None
    bands = interval_paths(args.output) if args.intervals else ()
    bands += sample_paths(args.output) if args.samples is not None else ()
    outputs = {"--output": args.output, "the trust sidecar": sidecar, "--residual-map": args.residual_map,
               **dict(zip(("the lower interval", "the upper interval", "the posterior std", "the posterior samples")
                          if args.intervals else ("the posterior std", "the posterior samples"), bands))}
    distinct_outputs(outputs)  # every output checked before the first is written
    for path in (args.output, sidecar, args.residual_map, *bands):
        if path is not None and Path(path).is_dir():  # --overwrite replaces files, never a directory
            raise IsADirectoryError(f"output is a directory: {path}; give a file name")
    suffix = Path(args.output).suffix.lower()
    if suffix != ".npy" and suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"unsupported output type '{suffix}' ({args.output}); use .npy or .png")
    for run in args.ensemble:
        if not Path(run).is_dir():
            raise FileNotFoundError(f"--ensemble: model run directory not found: {run}")
    for extra in (sidecar, args.residual_map, *bands):
        if extra is None:
            continue
        if os.path.lexists(extra) and not args.overwrite:
            raise FileExistsError(f"output exists: {extra} (use --overwrite to replace it)")
        suffix = Path(extra).suffix.lower()
        if extra == args.residual_map and suffix != ".npy" and suffix not in IMAGE_SUFFIXES:
            raise ValueError(f"unsupported residual map type '{suffix}' ({extra}); use .npy or .png")
        if not Path(extra).parent.exists():
            raise FileNotFoundError(f"output directory does not exist: {Path(extra).parent}")

    import torch

    params = parse_params(args.param)
    if args.method is not None:
        method = variational.build(args.method, **params)
        if args.samples is not None and not method.posterior:
            raise ValueError(f"--samples: '{args.method}' draws no samples; the posterior samplers are "
                             f"{', '.join(n for n in variational.names() if variational.build(n).posterior)}")
        physics, _, seed = task_physics(args.task, args.overrides)
    else:
        if params:
            raise ValueError("--param applies to --method only")
        if not Path(args.model).is_dir():
            raise FileNotFoundError(f"model run directory not found: {args.model}")
        method, meta = load_model(args.model)
        if args.task is not None:
            physics, _, seed = task_physics(args.task, args.overrides)
        elif args.overrides:  # --set changes the model's own task: the run's config.yaml
            own = Path(args.model) / "config.yaml"
            if not own.is_file():
                raise ValueError(f"--set needs --task CONFIG: {args.model} has no config.yaml to apply it to")
            physics, _, seed = task_physics(str(own), args.overrides)
            if args.size:
                physics = resized_physics(physics.spec(), (args.size, args.size))
        else:  # the model's own acquisition; at --size N rebuilt for N×N (a detector covering that image)
            physics = (resized_physics(meta["physics"], (args.size, args.size)) if args.size
                       else Physics.from_spec(meta["physics"]))
            seed = 0
        check_compatible(meta, physics)  # e.g. a dense model and a task with another measurement shape
        if hasattr(method, "eval"):
            method.eval()

    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ValueError(f"--device: unknown device '{args.device}'; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu")
    op = physics.operator
    a = read_array(args.input)
    if args.resize and not args.simulate:
        raise ValueError("--resize resamples an input image: it needs --simulate (a measurement cannot be resampled "
                         "to another acquisition)")
    if args.simulate:
        if args.resize:
            a = resized_image(a, op.in_shape)
        elif a.ndim >= 2 and tuple(a.shape[-2:]) != tuple(op.in_shape):
            raise ValueError(f"input image is {a.shape[-2]}×{a.shape[-1]} but {what_takes(args)} takes "
                             f"{op.in_shape[0]}×{op.in_shape[1]} images; " + size_hint(args, a.shape[-2:]))
        x = to_batch(a, op.in_shape, "input image", complex_ok=False)
        with torch.no_grad():
            y = physics.measure(x, torch.Generator().manual_seed(seed))
    else:
        y = to_batch(a, op.out_shape, "input measurement", complex_ok=op.complex_output)
    if hasattr(method, "to"):
        method = method.to(device)
    x_t, drawn = reconstruct_in_chunks(method, y, physics, device, args.samples)
    if not bool(torch.isfinite(x_t).all()):
        raise ValueError("the reconstruction contains NaN or Inf values")
    report = None
    if args.model is not None:
        x_t, report = check_trust(args, method, device, y, physics, x_t)
    x_hat = x_t.double().numpy()
    write_output(args.output, x_hat.reshape((-1,) + tuple(op.in_shape)), args.overwrite)
    what = args.method or args.model
    print(f"wrote {args.output} ({what}{', safe' if args.safe else ''}, {x_hat.shape[0]} image(s) of "
          f"{op.in_shape[0]}x{op.in_shape[1]})")
    if drawn is not None:
        shape = (-1,) + tuple(op.in_shape)
        std_path, samples_path = sample_paths(args.output)
        for path, a in ((std_path, drawn.std.reshape(shape)), (samples_path, drawn.samples.reshape((args.samples,) + shape))):
            arr = a.detach().cpu().float().numpy()
            atomic_write(Path(path), lambda tmp, arr=arr: np.save(tmp, arr[0] if arr.shape[0] == 1 and arr.ndim == 3 else arr))
        print(f"wrote {std_path} (per-pixel posterior std, mean {float(drawn.std.mean()):.4g}) and {samples_path} "
              f"({args.samples} samples)")
    if report is not None:
        atomic_write_json(sidecar, report)
        print(f"wrote {sidecar} (trust diagnostics)")
    return 0


# --------------------------------------------------------------------------- chunks
#: the most image pixels (times posterior samples) one call reconstructs at once: a batch of many
#: measurements runs in chunks of ⌊CHUNK_PIXELS / (H·W·samples)⌋ images (at least one), so the
#: memory a method's intermediates take follows from the image size, not from the batch
CHUNK_PIXELS = 1 << 16


def chunk_images(image_shape: tuple[int, ...], samples: int | None = None) -> int:
    """Images per call for images of `image_shape` (and `samples` chains each): see `CHUNK_PIXELS`."""
    pixels = int(np.prod(image_shape)) * max(1, int(samples or 1))
    return max(1, CHUNK_PIXELS // max(1, pixels))


def reconstruct_in_chunks(method: Any, y: Any, physics: Any, device: Any, samples: int | None = None,
                          say: Any = None) -> tuple[Any, Any]:
    """(x̂ on the CPU, the posterior draws or None) for the batch y, `chunk_images` measurements per
    call; with several chunks or samples, progress goes to stderr (`say`)."""
    import sys

    import torch

    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    shape = tuple(physics.operator.in_shape)
    b = int(y.shape[0])
    if samples is not None:  # what the draws will hold in the end, before any of them is drawn
        budget.check(4 * int(samples) * b * int(np.prod(shape)), f"{samples} samples of {b} images of {shape}")
    step = chunk_images(shape, samples)
    t0, means, stds, draws = time.perf_counter(), [], [], []
    talk = b > step or (samples or 0) > 1
    with torch.no_grad():
        for i in range(0, b, step):
            yb = y[i:i + step].to(device)
            if samples is not None:
                got = method.sample(yb, physics, samples, progress=say if talk else None)
                means.append(got.mean.detach().cpu())
                stds.append(got.std.detach().cpu())
                draws.append(got.samples.detach().cpu())
            else:
                means.append(method(yb, physics).detach().cpu())
            if talk:
                say(f"reconstruct: {min(i + step, b)} of {b} images ({time.perf_counter() - t0:.0f} s)")
    x_t = torch.cat(means)
    if samples is None:
        return x_t, None
    return x_t, Posterior(x_t, torch.cat(stds), torch.cat(draws, dim=1))


# ---------------------------------------------------------------------------- trust
def what_takes(args: argparse.Namespace) -> str:
    """The thing whose image size an input must match, for error messages."""
    return f"the model {args.model}" if args.model is not None and args.task is None else "the task's operator"


def size_hint(args: argparse.Namespace, shape: tuple[int, ...]) -> str:
    """The ways out of an input of another size, named for the command the user ran."""
    h, w = (int(v) for v in shape)
    ways = []
    if args.model is not None and args.task is None and h == w:
        ways.append(f"--size {h} (the model's acquisition rebuilt for {h}×{h} images)")
    elif h == w:
        ways.append(f"--set data.size={h} (the task at {h}×{h})")
    ways.append("--resize (resample the image to the operator's size)")
    return "use " + " or ".join(ways)


def resized_image(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Image(s) ``[..., h, w]`` resampled to ``shape`` (H, W): the centre square, anti-aliased
    bilinear (`invmap.data.io.fit_items`, as an image folder is read)."""
    if a.ndim < 2 or np.iscomplexobj(a) or not np.all(np.isfinite(a)):
        raise ValueError(f"--resize needs a real, finite image; got shape {list(a.shape)}")
    if shape[0] != shape[1]:
        raise ValueError(f"--resize fits a square; the operator takes {shape[0]}×{shape[1]} images")
    flat = a.reshape((-1,) + a.shape[-2:]).astype(np.float32)
    out = [fit_items(img, int(shape[0]), "resize", name="input")[0][0].numpy() for img in flat]
    return np.stack(out).reshape(a.shape[:-2] + tuple(shape))


def trust_sidecar(output: str) -> str:
    """``x.png`` → ``x.trust.json``: where the trust diagnostics of a reconstruction go."""
    return str(Path(output).with_suffix(".trust.json"))


def interval_paths(output: str) -> tuple[str, str]:
    """``x.png`` → (``x.lower.png``, ``x.upper.png``): the per-pixel interval images (``--intervals``)."""
    p = Path(output)
    return str(p.with_suffix(".lower" + p.suffix)), str(p.with_suffix(".upper" + p.suffix))


def sample_paths(output: str) -> tuple[str, str]:
    """``x.png`` → (``x.std.npy``, ``x.samples.npy``): the posterior std map and samples (``--samples``)."""
    p = Path(output)
    return str(p.with_suffix(".std.npy")), str(p.with_suffix(".samples.npy"))


def check_same_operator(model: Any, other: Any, model_dir: str, other_dir: str) -> None:
    """An ``--ensemble`` member must have been trained for the model's operator K (its nominal
    one; the image size may differ): the disagreement of maps of other tasks says nothing."""
    a, b = (capabilities(m).training_physics for m in (model, other))
    if a is None or b is None:
        return
    ka, kb = ({k: v for k, v in p.spec()["operator"].items() if k != "image_shape"} for p in (a, b))
    diff = first_difference(ka, kb)
    if diff:
        key, was, now = diff
        raise ValueError(f"--ensemble {other_dir} was trained for another operator than {model_dir} (operator.{key}: "
                         f"{str(now)[:40]} against {str(was)[:40]}); an ensemble is of runs of one task")


def check_trust(args: argparse.Namespace, model: Any, device: Any, y: Any, physics: Any, x_hat: Any
                ) -> tuple[Any, dict]:
    """Diagnose the model's x̂ (print one verdict per image), refine it with ``--safe``, write
    ``--residual-map``; returns (x̂ to write, the sidecar's JSON document)."""
    import torch

    def on_device(m: Any) -> Any:
        return lambda yy, p: m(yy.to(device), p).detach().cpu()

    tuned = load_baselines(args.model)
    baseline = build_methods([BASELINE], args.model)[BASELINE] if BASELINE in tuned else None
    promise, home = None, None
    if (Path(args.model) / "config.yaml").exists():  # the score's spreads at its training conditions
        config = resolve(args.model)[0]
        if args.bound is not None:
            if not 0 < args.bound < 1:
                raise ValueError(f"--bound is a probability in (0, 1), got {args.bound:g}")
            config.evaluation.bound = args.bound
        if args.intervals and config.evaluation.pixel_risk <= 0:
            config.evaluation.pixel_risk = 0.1  # the run turned them off for its evaluations; asked for here
        strict = (["bound"] if args.bound is not None else []) + (["intervals"] if args.intervals else [])
        exp = Experiment(config, args.model)
        home = exp.physics
        methods = calibrate_model(model, exp, args.model, baseline, safe=args.safe,
                                  say=print, strict=strict, store=not args.pretrained)  # a zoo entry ships its record
        promise = capabilities(methods[SAFE]).promise if SAFE in methods else None
    elif args.bound is not None or args.intervals:
        raise ValueError(f"--bound and --intervals need the model's run directory with its config.yaml "
                         f"(calibration pairs); {args.model} has none")
    if (args.bound is not None or args.intervals) and baseline is None:
        raise ValueError(f"--bound and --intervals need the tuned tv baseline in {args.model}/baselines.json "
                         "(run `invmap evaluate RUN` first)")
    others = []
    for run in args.ensemble:
        other, meta = load_model(run)
        check_compatible(meta, physics)
        check_same_operator(model, other, args.model, run)
        others.append(on_device(other.to(device)))
    ref = reference_physics(model, tuple(x_hat.shape[-2:]))
    x_b = None if baseline is None else baseline_with_progress(baseline, y, physics)
    diag = diagnose(on_device(model), y, physics, x_hat=x_hat, x_baseline=x_b, others=others, reference=ref,
                    calibration=capabilities(model).trust_calibration)
    if baseline is None:
        diag.notes.append(f"no tuned tv in {args.model}/baselines.json: misfit against the noise level only")
    bound = capabilities(model).psnr_bound
    lows = None if bound is None or x_b is None else bound(agreement(x_hat, x_b, bound.data_range), diag.trust)
    many = x_hat.shape[0] > 1
    records = [diag.record(i) for i in range(x_hat.shape[0])]
    away = away_from_calibration(physics, home)
    for i in range(x_hat.shape[0]):
        head = f"image {i}: " if many else ""
        print(f"{head}{diag.verdict(i)}")
        if lows is None:
            continue
        why = no_bound_because(float(lows[i]), away, bool(diag.suspect[i]))
        if why is not None:  # a bound that does not apply, or says nothing, is not printed as one
            print(f"{head}no PSNR bound for the model's x̂: {why}")
            records[i]["psnr_bound"] = {"db": None, "why": why}
            continue
        print(f"{head}the model's x̂: PSNR ≥ {float(lows[i]):.2f} dB with probability {bound.level:g} (split "
              "conformal at its training conditions, scaled by trust; valid where the data look like them)")
        records[i]["psnr_bound"] = {"db": round(float(lows[i]), 3), "probability": bound.level, "of": "model",
                                    "how": bound.describe()}
    doc: dict = {"model": str(args.model), "input": str(args.input), "output": str(args.output),
                 "physics": physics.spec(), "baseline": baseline.record() if baseline is not None else None,
                 "ensemble": [str(r) for r in args.ensemble], "images": records}
    out = x_hat
    if args.safe:
        if baseline is None:
            raise ValueError(f"--safe needs the tuned tv baseline in {args.model}/baselines.json "
                             "(run `invmap evaluate RUN` or `invmap run` first)")
        safe = SafeReconstructor(on_device(model), baseline, reference=ref)
        with torch.no_grad():
            out = safe.from_diagnosis(y, physics, x_hat, diag)
        mu = safe.mu.tolist()
        doc["safe"] = {"params": safe.params(), "mu_relative": mu, "recalibrated": safe.corrections,
                       "verdict_after_recalibration": safe.after}
        for i, (fix, after) in enumerate(zip(safe.corrections, safe.after)):
            if fix:
                what = ", ".join(f"{k} = {v:+g}" for k, v in fix.items())
                print(f"{f'image {i}: ' if many else ''}safe: K recalibrated to {what} (read from y); "
                      f"the model and TV re-run with it: {after}")
        print(f"safe: TV solve anchored at x̂ with μ/‖K‖² = {', '.join(f'{m:.2g}' for m in mu)} "
              f"({safe.mu0:g} within {safe.free:g} spreads of the training conditions)")
        if promise is not None:  # never silent about an image it cannot vouch for
            safe.promise = promise
            lows, ok = safe.promised(diag.trust)
            doc["safe"]["promise"] = {"tolerance_db": TOLERANCE_DB, "probability": promise.level,
                                      "margin_bound_db": [round(float(b), 3) for b in lows],
                                      "promised": [bool(o) for o in ok], "how": promise.describe("PSNR margin to tv")}
            for i in range(x_hat.shape[0]):
                head = f"{f'image {i}: ' if many else ''}safe: "
                if bool(ok[i]):
                    print(f"{head}within {TOLERANCE_DB:g} dB of tv or better with probability {promise.level:g} "
                          f"(PSNR margin ≥ {float(lows[i]):+.2f} dB; split conformal at the training conditions, "
                          "scaled by trust)")
                else:
                    print(f"{head}CANNOT promise to be within {TOLERANCE_DB:g} dB of tv on this image (margin "
                          f"bound {float(lows[i]):+.2f} dB at probability {promise.level:g}); tv's own answer: "
                          f"invmap reconstruct --method tv with the run's tuned parameters")
    pixels = capabilities(model).pixel_intervals
    if args.intervals and pixels is not None and x_b is not None:
        lo, hi = pixels(x_hat, x_b)
        shape = (-1,) + tuple(x_hat.shape[-2:])
        for path, band in zip(interval_paths(args.output), (lo, hi)):
            write_output(path, band.double().numpy().reshape(shape), args.overwrite)
        doc["intervals"] = {"lower": interval_paths(args.output)[0], "upper": interval_paths(args.output)[1],
                            "of": "model", **pixels.to_dict(), "how": pixels.describe()}
        print(f"wrote {' and '.join(interval_paths(args.output))}: {pixels.describe()}")
    if args.residual_map:
        with torch.no_grad():
            r = physics.operator.adjoint(physics.operator(out) - y)
        write_residual(args.residual_map, r.real if r.is_complex() else r, args.overwrite)
        doc["residual_map"] = str(args.residual_map)
        print(f"wrote {args.residual_map} (Kᵀ(K x̂ − y))")
    return out, doc


#: seconds between two progress lines of a long step (the trust check's tv at 512² runs for a while)
TICK_SECONDS = 5.0


def baseline_with_progress(baseline: Any, y: Any, physics: Any, say: Any = None) -> Any:
    """The tuned baseline's x̂_b on y (no gradients), its progress told to `say` (stderr): once when it
    starts and every `TICK_SECONDS` of its iterations (‖K‖ and ‖[K; s∇]‖ come first, once per acquisition)."""
    import sys

    import torch

    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    iters = baseline.params().get("iters")
    kept = physics.operator.numbers_file()  # a CT acquisition's norms: on disk after its first call
    first = ", after ‖K‖ and ‖[K; s∇]‖ by Lanczos: once for this acquisition" if kept and not kept.exists() else ""
    say(f"trust check: the run's tuned {baseline.name} on the same y"
        f"{f' ({iters} iterations{first})' if iters else ''} …")
    t0 = time.perf_counter()
    last = [t0]

    def tick(k: int, _x: Any) -> None:
        now = time.perf_counter()
        if now - last[0] >= TICK_SECONDS:
            last[0] = now
            say(f"trust check: {baseline.name} {k}{f' of {iters}' if iters else ''} iterations ({now - t0:.0f} s)")

    with torch.no_grad():
        return baseline.run(y, physics, callback=tick)


#: the PSNR a constant mid-range image reaches on any image with values in a range of length L:
#: its error is at most L/2 everywhere, so PSNR ≥ 20 log10(L / (L/2)); a bound below says nothing
VACUOUS_DB = 20.0 * float(np.log10(2.0))


def away_from_calibration(physics: Any, home: Any | None) -> str | None:
    """How the input's physics differs from the one the model was calibrated at (its run's task),
    as ``key: ours against theirs``; None when they are the same (or there is no calibration)."""
    if home is None:
        return None
    diff = first_difference(home.spec(), physics.spec())
    return None if diff is None else f"{diff[0]}: {str(diff[2])[:40]} against {str(diff[1])[:40]} calibrated"


def no_bound_because(db: float, away: str | None, suspect: bool) -> str | None:
    """Why a fitted per-image PSNR bound must not be printed for this image, or None: it holds at
    the training conditions only, and one weaker than a constant image's says nothing."""
    if away is not None:
        return f"the input's physics is not the one the bound was calibrated at ({away})"
    if suspect:
        return "the trust check finds this image unlike the training conditions, where the bound was calibrated"
    if not db > VACUOUS_DB:
        return (f"the bound ({db:.2f} dB) is below the {VACUOUS_DB:.2f} dB a constant mid-range image reaches on any "
                "image: it says nothing")
    return None


def write_residual(path: str, r: Any, overwrite: bool) -> None:
    """Kᵀ(K x̂ − y) as .npy, or as an image with 0 at mid-grey and ±max|r| at black / white."""
    a = r.detach().double().cpu().numpy().reshape((-1,) + tuple(r.shape[-2:]))
    if Path(path).suffix.lower() != ".npy":
        a = 0.5 + 0.5 * a / max(float(np.abs(a).max()), 1e-30)
    write_output(path, a, overwrite)
