"""The unfolded kind on the default task: the number of iterations N, by its tuned start and its cost.

    .venv/bin/python benchmarks/unfolded.py [--iterations 4,6,8] [--prior pretrained:denoiser] [--val 8]

For each N: the model built from the prior (`invmap.models.unfolded`), its DPIR schedule tuned on
`--val` validation pairs of the default task (`prepare`, as ``invmap train`` does before the first
step) — the validation PSNR of that start is tuned PnP with N steps — and the CPU seconds of one
training step (batch 8, 128², forward and backward, checkpointed, float32). Process CPU time,
one thread: a number that means the same on a loaded machine; say the load beside it.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from invmap.config import load_config
from invmap.training.setup import Pairs, build_reconstructor


def measure(n: int, prior: str, val: int) -> dict:
    cfg = load_config(None, ["model.name=unfolded", f"model.prior={prior}", f"model.iterations={n}",
                             f"data.val={val}", "data.train=8"])
    physics = cfg.physics()
    recon = build_reconstructor(cfg, physics, torch.device("cpu"))
    pairs = Pairs(cfg, physics, "val", recon, torch.device("cpu"))
    t0 = time.process_time()
    recon.prepare(None, pairs)
    tune = time.process_time() - t0
    best = max(recon.tuning, key=lambda r: r["val_psnr"])
    z, x, p = next(pairs.epoch(pairs.minibatches(torch.arange(min(8, pairs.n)), 8), 0))
    recon.train()
    t0 = time.process_time()
    ((recon(z, p) - x) ** 2).mean().backward()
    return {"iterations": n, "val_psnr": round(best["val_psnr"], 2), "schedule": best,
            "tune_cpu_s": round(tune, 1), "step_cpu_s": round(time.process_time() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", default="4,6,8")
    ap.add_argument("--prior", default="pretrained:denoiser")
    ap.add_argument("--val", type=int, default=8)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| N | val PSNR of the tuned start (dB) | σ_1, σ_N, τ | one step, batch 8 (CPU s) |\n|---:|---:|---|---:|")
    for n in (int(v) for v in a.iterations.split(",")):
        r = measure(n, a.prior, a.val)
        s = r["schedule"]
        print(f"| {n} | {r['val_psnr']:.2f} | {s['sigma_start']}, {s['sigma_end']}, {s['step']:g} | {r['step_cpu_s']} |")


if __name__ == "__main__":
    main()
