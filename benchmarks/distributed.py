"""Scale-out on this machine: data-parallel training on 1 vs 2 processes, HDF5 vs in-memory
data loading, and peak memory as the data set grows.

1. Training (`invmap train --nproc N`, gloo, one torch thread per process; plus one process
   with two threads for reference): sparse-view CT (64², 60 views, 1% noise), the default
   UNet on FBP, global batch 16, fresh noise. Reports training img/s (from train_log.csv:
   pairs trained / seconds, per-epoch validation included), img/s per process, scaling
   efficiency = rate(2) / (2 · rate(1)), and peak RSS per process (the largest rank).
2. Loading: images/s of a LoDoPaB-CT-like HDF5 set (files of 128 slices, 362², float32)
   read lazily and resized to 128² by the ``hdf5:`` source (in the main process, and
   through 2 DataLoader workers) vs the same 128² images indexed from memory.
3. Memory: peak RSS of ``invmap train`` (denoising, a small CNN, one epoch) on 1× and 10×
   the HDF5 files, with ``training.stream`` (minibatches read when needed) and without
   (all pairs simulated up front).

    .venv/bin/python benchmarks/distributed.py [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from data import rate  # benchmarks/data.py: best-of-3 items/s after a warm-up

ROOT = Path(__file__).resolve().parents[1]
CT = {"name": "bench-ddp", "seed": 0,
      "data": {"source": "ellipses", "size": 64, "train": 512, "val": 32, "simulation": "crime"},
      "operator": {"name": "tomography", "angles": 60}, "noise": {"name": "gaussian", "relative": 0.01},
      "model": {"name": "unet", "input": "fbp", "depth": 3, "base_channels": 16, "residual": True},
      "training": {"epochs": 2, "batch_size": 16, "max_minutes": 0, "amp": "off", "warmup_epochs": 0}}


def run_child(cmd: list[str], env: dict) -> tuple[float, float]:
    """Run `cmd`; (wall seconds, peak RSS in MiB of its largest process, the children included)."""
    code = ("import resource, subprocess, sys, json, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:]); w = time.perf_counter() - t; "
            "m = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "
            "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); "
            "print(json.dumps([r.returncode, w, m]))")
    out = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, env=env)
    rc, wall, kib = json.loads(out.stdout.strip().splitlines()[-1])
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return wall, kib / 1024


def train_rate(run: Path, n_train: int) -> float:
    import csv

    with open(run / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return (len(rows) - 1) * n_train / float(rows[-1]["seconds"])


def training(tmp: Path, quick: bool) -> list[dict]:
    import yaml

    cfg = json.loads(json.dumps(CT))
    if quick:
        cfg["data"].update(train=64, val=16)
        cfg["training"]["epochs"] = 1
    path = tmp / "ct.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = []
    for nproc, threads in ((1, 1), (1, 2), (2, 1)):
        run = tmp / f"ddp-{nproc}x{threads}"
        shutil.rmtree(run, ignore_errors=True)  # this script's own run from an earlier --keep
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = [sys.executable, "-m", "invmap", "train", str(path), "--out", str(run), "--quiet",
               "--set", f"training.threads={threads}", "--nproc", str(nproc)]
        wall, rss = run_child(cmd, env)
        r = train_rate(run, cfg["data"]["train"])
        out.append({"processes": nproc, "threads": threads, "img_s": r, "img_s_per_process": r / nproc,
                    "peak_rss_mib_per_process": rss, "wall_s": wall})
        print(f"  {nproc} process(es) × {threads} thread(s): {r:.1f} img/s ({r / nproc:.1f} per process), "
              f"peak RSS {rss:.0f} MiB per process, {wall:.0f} s wall", flush=True)
    one = next(o for o in out if o["processes"] == 1 and o["threads"] == 1)["img_s"]
    two = next(o for o in out if o["processes"] == 2)["img_s"]
    print(f"  scaling efficiency 1 → 2 processes: {two / (2 * one):.2f}", flush=True)
    return out


def write_hdf5(path: Path, slices: int, side: int = 362, seed: int = 0) -> None:
    """One LoDoPaB-CT-like file: `slices` discs of random size and value, float32 in [0, 1]."""
    import h5py

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1:1:side * 1j, -1:1:side * 1j]
    r = rng.uniform(0.3, 0.95, (slices, 1, 1)).astype(np.float32)
    data = ((xx ** 2 + yy ** 2 < r ** 2) * rng.uniform(0.2, 1.0, (slices, 1, 1))).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data)


def lodopab_like(root: Path, files: int, slices: int) -> str:
    """`files` training files and one validation file of `slices` slices; the glob of all of them."""
    root.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        f = root / f"ground_truth_train_{k:03d}.hdf5"
        if not f.exists():
            shutil.copy(root.parent / "ground_truth_train_000.hdf5", f)
    shutil.copy(root.parent / "ground_truth_validation_000.hdf5", root / "ground_truth_validation_000.hdf5")
    return str(root / "ground_truth_*.hdf5")


def loading(glob: str, n: int) -> list[dict]:
    from invmap.data import build_source

    src = build_source(f"hdf5:{glob}", 128, split="train", count=n)
    batches = [list(range(s, min(n, s + 32))) for s in range(0, n, 32)]

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitems__(self, idx):
            return list(src.batch(idx).unbind(0))

    # best of 3 after a warm-up pass (the files are then in the page cache)
    hdf5 = rate(lambda: [src.batch(b) for b in batches], n)
    loader = torch.utils.data.DataLoader(Images(), batch_size=32, num_workers=2, persistent_workers=True)
    workers = rate(lambda: list(loader), n)
    memory = src.batch(range(n))
    mem = rate(lambda: [memory[b] for b in batches], n)
    out = [{"path": "hdf5 (lazy, 362² → 128²)", "img_s": hdf5}, {"path": "hdf5, 2 DataLoader workers", "img_s": workers},
           {"path": "in memory (128² tensor)", "img_s": mem}]
    for o in out:
        print(f"  {o['path']}: {o['img_s']:.0f} img/s", flush=True)
    return out


def memory(tmp: Path, globs: dict[str, tuple[str, int]]) -> list[dict]:
    import yaml

    out = []
    for scale, (glob, n) in globs.items():
        for stream in (True, False):
            cfg = {"name": "bench-mem", "data": {"source": f"hdf5:{glob}", "size": 128, "train": n, "val": 8,
                                                 "simulation": "crime"},
                   "operator": {"name": "identity"}, "noise": {"name": "gaussian", "relative": 0.05},
                   "model": {"name": "cnn", "input": "adjoint", "channels": 8, "depth": 3},
                   "training": {"epochs": 1, "batch_size": 16, "max_minutes": 0, "stream": stream, "threads": 1,
                                "fresh_noise": True}}
            path = tmp / f"mem-{scale}-{stream}.yaml"
            path.write_text(yaml.safe_dump(cfg))
            run = tmp / f"mem-{scale}-{stream}"
            shutil.rmtree(run, ignore_errors=True)
            cmd = [sys.executable, "-m", "invmap", "train", str(path), "--out", str(run), "--quiet"]
            wall, rss = run_child(cmd, {**os.environ, "OMP_NUM_THREADS": "1"})
            out.append({"data": scale, "pairs": n, "stream": stream, "peak_rss_mib": rss, "wall_s": wall})
            print(f"  {scale} ({n} pairs), stream={stream}: peak RSS {rss:.0f} MiB, {wall:.0f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of this script)")
    ap.add_argument("--keep", help="keep the runs and HDF5 files in DIR")
    ap.add_argument("--parts", default="training,loading,memory", help="which parts to run (comma-separated)")
    a = ap.parse_args()
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="invmap-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    print(f"cpu: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    parts = a.parts.split(",")
    train = load = mem = None
    if "training" in parts:
        print("training, 1 vs 2 processes:", flush=True)
        train = training(tmp, a.quick)
    slices = 16 if a.quick else 128
    write_hdf5(tmp / "ground_truth_train_000.hdf5", slices)  # the same slices in every copy: reading is what is timed
    write_hdf5(tmp / "ground_truth_validation_000.hdf5", 8, seed=1)
    small, big = lodopab_like(tmp / "h5-1x", 1, slices), lodopab_like(tmp / "h5-10x", 10, slices)
    if "loading" in parts:
        print("data loading (HDF5 vs memory):", flush=True)
        load = loading(small.replace("ground_truth_*", "ground_truth_train_*"), slices)
    if "memory" in parts:
        print("peak memory, 1× and 10× the data:", flush=True)
        mem = memory(tmp, {"1×": (small, slices), "10×": (big, 10 * slices)})
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    (tmp / "distributed.json").write_text(json.dumps({"training": train, "loading": load, "memory": mem}, indent=2))
    print(f"wrote {tmp / 'distributed.json'}")


if __name__ == "__main__":
    main()
