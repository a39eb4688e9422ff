"""Training-pair throughput with drawn physics (ct-robust) against one fixed physics (the default).

    .venv/bin/python benchmarks/robust.py [--n 2000] [--threads 1] [--preset ct-robust]

For each config the training pairs of `invmap.training.setup.Pairs` are made as a run
makes them — the clean K_{ω_i} x_i of every pair simulated once (2× finer grid, as the
default), then the network inputs z_i = FBP_{ω_i}(K_{ω_i} x_i + e_i) of one epoch with fresh
noise — and timed in two parts:

    setup pairs/s = n / time of the clean simulation (once per run)
    epoch pairs/s = n / time of a later epoch's inputs (noise + FBP; every epoch)
    run pairs/s   = n / (setup + the first epoch, which also builds FBP's back-projections)

The drawn operators (each distinct K built once; system matrices from the disk cache when
they are there) are counted in the setup time: the first run on a machine builds them,
so `--cold` points INVMAP_CACHE_DIR at an empty folder. Timings on a shared CPU are noisy:
compare the ratio within one run, and state the load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch


def measure(preset: str | None, n: int) -> dict[str, float]:
    from invmap.config import load_config
    from invmap.training.setup import Pairs, build_reconstructor

    cfg = load_config(preset, [f"data.train={n}"])
    physics = cfg.physics()
    recon = build_reconstructor(cfg, physics, torch.device("cpu"))
    t0 = time.perf_counter()
    pairs = Pairs(cfg, physics, "train", recon, torch.device("cpu"), fresh_noise=True)
    t1 = time.perf_counter()
    pairs.ds.set_epoch(1)
    pairs.inputs(range(pairs.n))
    t2 = time.perf_counter()
    pairs.ds.set_epoch(2)
    pairs.inputs(range(pairs.n))
    t3 = time.perf_counter()
    ops = len(pairs.ds._ops) if pairs.ds.drawn is not None else 1
    return {"setup": n / (t1 - t0), "epoch": n / (t3 - t2), "run": n / (t2 - t0), "seconds": t2 - t0, "operators": ops}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="training pairs (the default run's data.train)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preset", default="ct-robust", help="the config with drawn physics")
    ap.add_argument("--cold", action="store_true", help="build every system matrix (an empty matrix disk cache)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if a.cold:
            os.environ["INVMAP_CACHE_DIR"] = tmp
        fixed = measure(None, a.n)
        drawn = measure(a.preset, a.n)
    print(f"# {a.n} training pairs, 128² default task; torch threads={torch.get_num_threads()}, cpus={os.cpu_count()}, "
          f"load={os.getloadavg()[0]:.1f}, matrix cache {'cold' if a.cold else 'as found'}")
    print(f"{'config':24s} {'setup pairs/s':>14s} {'epoch pairs/s':>14s} {'run pairs/s':>12s} {'seconds':>8s} {'K built':>8s}")
    for name, r in (("default (fixed)", fixed), (f"{a.preset} (drawn)", drawn)):
        print(f"{name:24s} {r['setup']:14.1f} {r['epoch']:14.1f} {r['run']:12.1f} {r['seconds']:8.1f} {r['operators']:8d}")
    print(f"drawn / fixed: setup {drawn['setup'] / fixed['setup']:.2f}, epoch {drawn['epoch'] / fixed['epoch']:.2f}, "
          f"run {drawn['run'] / fixed['run']:.2f} (goal >= 0.50)")


if __name__ == "__main__":
    main()
