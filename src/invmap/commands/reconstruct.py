"""Reconstruct an image from a measurement y with a variational method or a trained model.

    invmap reconstruct --method tv --task task.yaml --input sino.npy --output x.png
    invmap reconstruct --method tv --param lam=0.02 --task task.yaml --input x.png --simulate --output x_tv.png
    invmap reconstruct --model runs/NAME --input sino.npy --output x.npy

The task config (the experiment YAML) gives the operator K, the noise model and the image
size; ``--simulate`` reads an image x instead of y and measures y = K x + e first (noise
seeded by the config's ``seed``). Inputs: ``.npy`` (a measurement shaped like the
operator's output, optionally with leading batch/channel axes, or an image) or an image
file (PNG/JPEG/TIFF, read as gray values in [0, 1]). Outputs: ``.npy`` (float32) or an
image file (values clipped to [0, 1]). An existing output is never replaced without
``--overwrite``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write

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
                   help="override a task config value, e.g. --set operator.angles=30")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...); default cpu")


# ----------------------------------------------------------------------------- task
def task_physics(path: str | None, overrides: list[str]) -> tuple[Any, int, int]:
    """(Physics, image size, seed) from an experiment config — the one coupling to `invmap.config`."""
    from ..config import load_config

    if path is not None and not Path(path).is_file():
        raise FileNotFoundError(f"task config not found: {path}")
    cfg = load_config(path, overrides)
    size = int(cfg.data.size)
    return cfg.physics(), size, int(cfg.seed)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["lam=0.01", "nonneg=true"]`` → ``{"lam": 0.01, "nonneg": True}`` (values read as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for it in items:
        if "=" not in it:
            raise ValueError(f"--param expects KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        k = k.strip()
        if not k:
            raise ValueError(f"--param expects KEY=VALUE, got {it!r}")
        try:
            out[k] = yaml.safe_load(v) if v.strip() else None
        except yaml.YAMLError:
            out[k] = v
    return out


# ------------------------------------------------------------------------------- io
def read_array(path: str) -> np.ndarray:
    """A .npy array or an image file as float gray values in [0, 1]."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    suf = p.suffix.lower()
    if suf == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - corrupt files: one line
            raise ValueError(f"cannot read {path} as .npy: {e}") from None
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise ValueError(f"{path}: expected a numeric array, got dtype {a.dtype}")
        return a
    if suf in IMAGE_SUFFIXES:
        from ..data.io import dtype_max, read_image

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
    if p.exists() and not overwrite:
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
    from .. import variational

    if args.list:
        for n in variational.names():
            print(variational.METHODS.describe(n))
        return 0
    if not args.input or not args.output:
        raise ValueError("reconstruct needs --input and --output")
    if Path(args.output).exists() and not args.overwrite:
        raise FileExistsError(f"output exists: {args.output} (use --overwrite to replace it)")

    import torch

    params = parse_params(args.param)
    if args.method is not None:
        method = variational.build(args.method, **params)
        physics, _, seed = task_physics(args.task, args.overrides)
    else:
        from ..models import check_compatible, load_model
        from ..physics import Physics

        if params:
            raise ValueError("--param applies to --method only")
        if not Path(args.model).is_dir():
            raise FileNotFoundError(f"model run directory not found: {args.model}")
        method, meta = load_model(args.model)
        if args.task is not None:
            physics, _, seed = task_physics(args.task, args.overrides)
        else:
            physics, seed = Physics.from_spec(meta["physics"]), 0
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
    if args.simulate:
        x = to_batch(a, op.in_shape, "input image", complex_ok=False)
        with torch.no_grad():
            y = physics.measure(x, torch.Generator().manual_seed(seed))
    else:
        y = to_batch(a, op.out_shape, "input measurement", complex_ok=op.complex_output)
    if hasattr(method, "to"):
        method = method.to(device)
    with torch.no_grad():
        x_hat = method(y.to(device), physics)
    x_hat = x_hat.detach().cpu().double().numpy()
    if not np.all(np.isfinite(x_hat)):
        raise ValueError("the reconstruction contains NaN or Inf values")
    write_output(args.output, x_hat.reshape((-1,) + tuple(op.in_shape)), args.overwrite)
    what = args.method or args.model
    print(f"wrote {args.output} ({what}, {x_hat.shape[0]} image(s) of {op.in_shape[0]}x{op.in_shape[1]})")
    return 0
