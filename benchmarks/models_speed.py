"""Training throughput of the registered networks: forward + backward + Adam step, images/s.

    .venv/bin/python benchmarks/models_speed.py [--size 128] [--batch 8] [--threads 2] [--steps 5]

Prints one row per configuration: parameter count, images/s of wall-clock time and images
per CPU-second of this process (median of `steps` timed steps after one warm-up). Wall-clock
timings are noisy on a shared machine; the CPU-second column is steadier under load, and
× threads estimates the wall-clock rate on an idle machine (when the threads scale).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import invmap.models as models

CONFIGS = [
    ("unet", {}),
    ("unet", dict(norm="batch")),
    ("unet", dict(base_channels=8)),
    ("unet", dict(base_channels=24)),
    ("unet", dict(base_channels=32)),
    ("unet", dict(depth=4, base_channels=16)),
    ("unet", dict(attention=True)),
    ("unet", dict(space_to_depth=2)),
    ("unet", dict(space_to_depth=2, base_channels=24)),
    ("unet", dict(space_to_depth=2, base_channels=32)),
    ("unet", dict(space_to_depth=2, base_channels=32, depth=4)),
    ("cnn", {}),
    ("rescnn", {}),
    ("vit", {}),
]


def bench(name: str, params: dict, size: int, batch: int, steps: int) -> tuple[int, float, float]:
    torch.manual_seed(0)
    net = models.build(name, **params).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, size, size)
    t = torch.rand(batch, 1, size, size)
    times, cpu = [], []
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = ((net(x) - t) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return models.count_parameters(net), batch / statistics.median(times), batch / statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--only", default="", help="comma-separated model names to run")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} threads, batch {a.batch}, {a.size}x{a.size}")
    print(f"{'model':<52}{'params':>12}{'images/s':>10}{'images/CPU-s':>14}")
    for name, params in CONFIGS:
        if a.only and name not in a.only.split(","):
            continue
        n, ips, ipc = bench(name, params, a.size, a.batch, a.steps)
        label = name + ("(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")" if params else " (default)")
        print(f"{label:<52}{n:>12,}{ips:>10.1f}{ipc:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
