"""Learning from real images: scores on held-out real slices, and training throughput.

Quality (BENCHMARKS.md; docs/benchmarks-archive.md "Learning from real images"): trained runs, FBP and TV — both tuned
on the real validation slices of the task config at each size — scored on the held-out
real test slices, at the training size and at another (`--sizes 128,256`; the models
trained on 128² images and patches reconstruct the 256² images whole, K and FBP built for
that size). Mean ± std over the test slices, PSNR with the config's data range:

    .venv/bin/python benchmarks/real.py quality configs/ct-real.yaml --set data.source=folder:DIR \\
        --run ellipses=runs/ct-ellipses-unet --run real=runs/real ... [--sizes 128,256]

Throughput: each config trains for `--minutes` at the same time as the others (so they
share the machine's load alike), one thread each; images/s = steps × batch / training
seconds of the last logged epoch (validation and checkpoints included, set-up not):

    .venv/bin/python benchmarks/real.py throughput --minutes 2 \\
        --config ellipses= --config folder=--set,data.source=folder:DIR ...

A config is ``LABEL=[PATH][,--set,KEY=VALUE...]`` (no PATH: the embedded default).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def quality(args: argparse.Namespace) -> None:
    import torch

    from invmap.config import load_config
    from invmap.evaluation import evaluate as ev
    from invmap.evaluation import runs
    from invmap.evaluation.experiment import Experiment
    from invmap.models import load_model

    torch.set_num_threads(args.threads)
    models = {}
    for item in args.run:
        label, _, path = item.partition("=")
        models[label] = load_model(path)[0].eval()
    print(f"| size | {' | '.join(['fbp', 'tv'] + list(models))} | TV λ |")
    print(f"|---|{'---|' * (len(models) + 3)}")
    for size in (int(s) for s in args.sizes.split(",")):
        cfg = load_config(args.config, list(args.overrides) + [f"data.size={size}"])
        exp = Experiment(cfg)
        tuned = runs.tune_baselines(exp, ["fbp", "tv"], n_val=cfg.data.val, time_budget=args.tune_seconds)
        methods = runs.build_methods(["fbp", "tv"], baselines={n: t["params"] for n, t in tuned.items()})
        y, x, physics = exp.test_pairs()
        results, _ = ev.evaluate_methods({**methods, **models}, y, x, physics, batch_size=4,
                                         data_range=cfg.evaluation.data_range)
        cells = []
        for r in results.values():
            if r.error:
                cells.append(f"— ({r.error[:60]})")
                continue
            p = r.scores["psnr"]
            cells.append(f"{p.mean():.2f} ± {p.std(unbiased=False):.2f}")
        lam = tuned["tv"]["params"].get("lam")
        print(f"| {size}² ({x.shape[0]} slices) | {' | '.join(cells)} | {lam:.3g} |", flush=True)


def throughput(args: argparse.Namespace) -> None:
    from invmap.training import read_log

    out = Path(tempfile.mkdtemp(prefix="invmap-throughput-"))
    procs = {}
    for item in args.config:
        label, _, rest = item.partition("=")
        parts = [p for p in rest.split(",") if p]
        path = [parts.pop(0)] if parts and not parts[0].startswith("--") else []
        cmd = [sys.executable, "-m", "invmap.cli", "train", *path, "--out", str(out / label), "--quiet",
               *parts, "--set", f"training.max_minutes={args.minutes}", "--set", "training.threads=1"]
        procs[label] = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    for label, p in procs.items():
        if p.wait() != 0:
            raise SystemExit(f"{label}: training failed (exit {p.returncode})")
    print(f"load average during the runs (1, 5, 15 min): {os.getloadavg()}")
    print("| config | steps | seconds | images/s |\n|---|---|---|---|")
    for label in procs:
        from invmap.config import load_config

        batch = load_config(out / label / "config.yaml").training.batch_size
        last = read_log(out / label / "train_log.csv")[-1]
        steps, secs = int(last["step"]), float(last["seconds"])
        print(f"| {label} | {steps} | {secs:.0f} | {steps * batch / secs:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("config")
    q.add_argument("--set", dest="overrides", action="append", default=[])
    q.add_argument("--run", action="append", default=[], metavar="LABEL=RUN_DIR")
    q.add_argument("--sizes", default="128,256")
    q.add_argument("--tune-seconds", type=float, default=120.0)
    q.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("throughput")
    t.add_argument("--config", action="append", required=True, metavar="LABEL=[PATH][,--set,K=V...]")
    t.add_argument("--minutes", type=float, default=2.0)
    args = ap.parse_args()
    quality(args) if args.what == "quality" else throughput(args)


if __name__ == "__main__":
    main()
