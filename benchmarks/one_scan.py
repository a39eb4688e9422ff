"""One scan with a zoo model, as a user runs it: `invmap reconstruct --model pretrained:unet-ct` in a
fresh process, trust included, at 128² and at 512² (``--size 512``), beside FBP on the same input.

    .venv/bin/python benchmarks/one_scan.py [--reps 3] [--out /tmp/one_scan] [--cold-norms]

Prints, per case, the wall seconds of each fresh-process run (the median marked) and, for the
``--size`` case, the PSNR of the model's x̂ and of FBP on the same measurement y (the model's
acquisition rebuilt for 512², `invmap.physics.resized_physics`; y = K x + e seeded as the
command seeds it) and the detector width against the image diagonal. Names the CPU, the
threads, the load average and the precision (float32; the model runs as stored, in float32).

The trust check's TV needs ‖K‖ and ‖[K; s∇]‖ of the case's acquisition: Lanczos iterations the
first process computes and keeps beside the cached CT matrix (`invmap.operators.numbers`), later
ones read. Each case says whether they were on disk before its first run; ``--cold-norms`` removes
them first, so that the first run shows a machine's first call and the others every later one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from invmap import zoo
from invmap.data import build_source
from invmap.metrics import psnr
from invmap.models import load_model
from invmap.physics import resized_physics
from invmap.variational import build as build_method
from invmap.evaluation.zoo_build import cpu_model


def image(size: int, out: Path) -> Path:
    """A test ellipse image of `size`² (the default task's source, its test split) as an 8-bit PNG."""
    x = build_source("ellipses", size, split="test", count=1, seed=11).batch([0])[0, 0].numpy()
    path = out / f"x{size}.png"
    iio.imwrite(path, (np.clip(x, 0, 1) * 255).round().astype(np.uint8))
    return path


def timed(args: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "invmap", "reconstruct", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"invmap reconstruct {' '.join(args)} failed: {r.stderr.strip()[-400:]}")
    return time.perf_counter() - t0


def norms_file(size: int) -> Path | None:
    """Where the norms of the zoo model's acquisition at size² are kept (None: the disk cache is off)."""
    meta = load_model(zoo.run_dir("pretrained:unet-ct"))[1]
    return resized_physics(meta["physics"], (size, size)).operator.numbers_file()


def same_y(size: int, png: Path) -> dict:
    """PSNR (dB) of the model and of FBP on one y of the model's acquisition rebuilt for size²."""
    model, meta = load_model(zoo.run_dir("pretrained:unet-ct"))
    model.eval()
    phys = resized_physics(meta["physics"], (size, size))
    x = torch.from_numpy(iio.imread(png).astype(np.float32) / 255.0)[None, None]
    y = phys.measure(x, torch.Generator().manual_seed(0))  # as `reconstruct --simulate` seeds it
    with torch.no_grad():
        xm, xf = model(y, phys), build_method("fbp")(y, phys)
    p = phys.operator.params()
    return {"model": float(psnr(xm.clamp(0, 1), x)), "fbp": float(psnr(xf.clamp(0, 1), x)),
            "detector width": p["detectors"] * p["detector_spacing"], "diagonal": size * 2 ** 0.5}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/one_scan"))
    ap.add_argument("--cold-norms", action="store_true", help="remove the cases' stored ‖K‖, ‖[K; s∇]‖ first")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    print(f"CPU {cpu_model()}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, float32, "
          f"load average {os.getloadavg()[0]:.1f}")
    cases = {"128², pretrained:unet-ct with trust": (128, ["--model", "pretrained:unet-ct"]),
             "128², FBP": (128, ["--method", "fbp", "--task", "-"]),
             "512², pretrained:unet-ct --size 512 with trust": (512, ["--model", "pretrained:unet-ct", "--size", "512"])}
    for label, (size, how) in cases.items():
        png = image(size, a.out)
        if "--task" in how:  # FBP on the model's own task (its config.yaml)
            how = ["--method", "fbp", "--task", str(zoo.run_dir("pretrained:unet-ct") / "config.yaml")]
        norms = norms_file(size) if "--model" in how else None
        if norms is not None and a.cold_norms:
            norms.unlink(missing_ok=True)
        kept = "" if norms is None else f" [norms {'on disk' if norms.exists() else 'computed by the first run'}]"
        times = []
        for i in range(a.reps):
            out = a.out / f"{label.split(',')[0][:3]}-{len(times)}-{i}.png"
            for f in a.out.glob(out.stem + "*"):
                f.unlink()
            times.append(timed([*how, "--input", str(png), "--simulate", "--output", str(out), "--overwrite"], a.out))
        print(f"{label}: {', '.join(f'{t:.2f}' for t in times)} s (median {statistics.median(times):.2f} s){kept}, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for size in (128, 512):
        r = same_y(size, a.out / f"x{size}.png")
        print(f"same y at {size}²: model {r['model']:.2f} dB, FBP {r['fbp']:.2f} dB; detector width "
              f"{r['detector width']:.0f} px against the image diagonal {r['diagonal']:.0f} px")


if __name__ == "__main__":
    main()
