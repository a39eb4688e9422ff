"""Test-time averaging for a model trained by measurement splitting: does it help?

    .venv/bin/python benchmarks/split_average.py [--task inpainting|tomography] [--epochs E] [--threads 1]

A network trained with ``training.supervision: split`` saw, at every step, half of y's units
(observed pixels, CT views) as its input: x̂ = f(y_A, K_A). At reconstruction it is handed all of
y — an input unlike those it learned from. Noise2Inverse (Hendriksen et al. 2020) instead averages
the network over the splits: x̂ = ½ [f(y_A, K_A) + f(y_B, K_B)]. This trains one split model on a
small task (example 12's inpainting, 32², or 64² CT with 60 views; ellipses, y simulated without
the inverse crime where the task allows) and prints the test PSNR of both, over the same test
measurements, with the CPU seconds of the training and of each inference and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import torch

from invmap.config import load_config
from invmap.evaluation.task import condition_from_config, make_pairs
from invmap.metrics import psnr
from invmap.models import load_model
from invmap.physics import Physics
from invmap.selfsup import SelfSupervised
from invmap.training import train

TASKS = {
    "inpainting": ["operator.name=inpainting", "noise.relative=null", "noise.sigma=0.02", "model.input=adjoint",
                   "data.size=32", "data.train=96", "data.test=32", "data.simulation=crime",
                   "data.test_simulation=crime", "model.base_channels=8", "model.depth=2"],
    "tomography": ["data.size=64", "data.train=256", "data.test=32", "model.base_channels=8", "model.depth=2"],
}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(TASKS), default="inpainting")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write the numbers as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    task = TASKS[a.task] + ["data.val=8", f"training.epochs={a.epochs}", "training.max_minutes=0",
                            "training.batch_size=8", "training.amp=off", "training.lr=3e-3", "seed=0",
                            f"training.threads={a.threads}", "training.supervision=split"]
    cfg = load_config(None, task)
    y, x, phys = make_pairs(condition_from_config(cfg))
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as runs:
        c0 = cpu_seconds()
        res = train(cfg, Path(runs) / "split", progress=False)
        c_train = cpu_seconds() - c0
        model, _ = load_model(Path(runs) / "split")
    model.eval()
    halves = SelfSupervised("split")._halves(phys.operator)  # the two halves the training drew from
    with torch.no_grad():
        c0 = cpu_seconds()
        whole = model(y, phys)
        c_whole = cpu_seconds() - c0
        c0 = cpu_seconds()
        avg = sum(model(take(y), Physics(k, phys.noise)) for k, take in halves) / len(halves)
        c_avg = cpu_seconds() - c0
        one = model(halves[0][1](y), Physics(halves[0][0], phys.noise))
    out = {"task": a.task, "steps": res.steps, "training_cpu_s": round(c_train, 1), "test_images": int(y.shape[0]),
           "psnr_all_of_y": round(float(psnr(whole, x).mean()), 3),
           "psnr_average_over_halves": round(float(psnr(avg, x).mean()), 3),
           "psnr_one_half": round(float(psnr(one, x).mean()), 3),
           "inference_cpu_s": {"all_of_y": round(c_whole, 2), "average": round(c_avg, 2)},
           "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)], "threads": a.threads,
           "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(out, indent=2))
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
