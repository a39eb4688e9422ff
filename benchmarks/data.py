"""Data generation speed: (y, x) pairs per second for the default CT task.

Task: 128×128 random ellipse phantoms, parallel-beam tomography with 60 views, 1% relative
Gaussian noise (`invmap.data.PairDataset`). Paths timed:

- render: the ellipse phantoms alone (`ImageSource.batch`);
- per-item: ``ds[i]`` one at a time (one K call per sample);
- batched: ``ds.simulate(indices)`` (one K call per batch);
- DataLoader with 0 and 2 workers (the loader calls the batched path via ``__getitems__``);
- fine: the test-set simulation from a 2× finer ground truth (256² phantoms, K at 256²).

Goal: generation never bottlenecks training (≥ 500 pairs/s on a 2-core laptop CPU).

    .venv/bin/python benchmarks/data.py [--size 128] [--views 60] [--n 512] [--batch 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import invmap.data as D
import invmap.noise as nz
import invmap.operators as ops
from invmap.physics import Physics


def rate(fn, n: int, reps: int = 3) -> float:
    fn()  # warm-up (operator matrices, caches, worker start-up excluded from the best)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--views", type=int, default=60)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0, help="torch threads in the main process (0: torch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    n, b = a.n, a.batch
    src = D.build_source("ellipses", a.size, count=n)
    op = ops.build("tomography", image_shape=(a.size, a.size), angles=a.views)
    phys = Physics(op, nz.build("gaussian", relative=0.01))
    ds = D.PairDataset(src, phys, seed=0)
    batches = [list(range(s, min(n, s + b))) for s in range(0, n, b)]

    def loader(workers: int):
        dl = torch.utils.data.DataLoader(ds, batch_size=b, num_workers=workers,
                                         persistent_workers=workers > 0)
        return lambda: [None for _ in dl]

    rows = [
        ("render phantoms only", rate(lambda: [src.batch(i) for i in batches], n)),
        ("per-item ds[i]", rate(lambda: [ds[i] for i in range(min(n, 128))], min(n, 128), reps=1)),
        (f"batched simulate (B={b})", rate(lambda: [ds.simulate(i) for i in batches], n)),
        (f"DataLoader 0 workers (B={b})", rate(loader(0), n)),
        (f"DataLoader 2 workers (B={b})", rate(loader(2), n)),
    ]
    test = D.PairDataset(D.build_source("ellipses", a.size, count=n, split="test"), phys, seed=0)
    rows.append((f"fine (2x grid) simulate (B={b})", rate(lambda: [test.simulate(i) for i in batches], n, reps=1)))
    rel = float((test.clean(range(16))[0] - D.PairDataset(test.images, phys, simulation="crime").clean(range(16))[0]).norm()
                / D.PairDataset(test.images, phys, simulation="crime").clean(range(16))[0].norm())
    print(f"# {a.size}x{a.size} ellipses, tomography {a.views} views, 1% Gaussian noise, n={n}; "
          f"torch threads={torch.get_num_threads()}, cpus={os.cpu_count()}, load={os.getloadavg()[0]:.1f}")
    print(f"{'path':36s} pairs/s")
    for name, r in rows:
        print(f"{name:36s} {r:8.0f}")
    print(f"fine vs crime clean data: relative difference {100 * rel:.2f}% (16 test phantoms)")


if __name__ == "__main__":
    main()
