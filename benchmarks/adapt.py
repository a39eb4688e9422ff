"""Test-time adaptation of a zoo entry at the stress levels where it loses most: PSNR and CPU seconds.

    .venv/bin/python benchmarks/adapt.py [--model pretrained:unet-ct] [--n 4] [--steps 20] [--lr 1e-4]
        [--loss auto] [--levels "15 views,90°,120°,+1 px,60 views"] [--threads 2] [--out adapt.json]

The model's own task (its config.yaml: for ``unet-ct`` the default task, 128² ellipses, parallel-beam
CT of 60 views, 1% relative Gaussian noise, test y simulated on the 2× grid); the stress study's
levels (`invmap.evaluation.stress.build_shifts`) named by ``--levels`` (a level's label, as in
stress.csv), each on the first ``--n`` test images of that level, as ``invmap stress`` makes them.
Per level: the PSNR of the tuned TV the entry ships (baselines.json), of the model, and of the model
adapted on that level's measurements (`invmap.training.adapt`, one adaptation per level's batch as
the run-bound method ``adapted`` does, x never seen); the adaptation's steps, why it stopped, and its
process CPU seconds per image (`time.process_time`: under load a wall clock says little). The
1-minute load average is recorded before and after. Precision: float32 throughout (no autocast).
The calibration levels (a shifted detector) are reconstructed with the nominal K, as in the stress
study: the adaptation sees only the physics the level gives it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, replace

import torch

from invmap import zoo
from invmap.evaluation.experiment import Experiment
from invmap.evaluation.resolve import EVALUATION_ADAPTATION
from invmap.evaluation.runs import build_methods, resolve
from invmap.evaluation.stress import build_shifts
from invmap.evaluation.task import condition_from_config, make_pairs
from invmap.evaluation.trust import calibrate_model
from invmap.metrics import psnr
from invmap.training.adapt import adapt, home_fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pretrained:unet-ct")
    ap.add_argument("--n", type=int, default=4, help="test images per level")
    ap.add_argument("--steps", type=int, default=None, help="at most this many Adam steps (default: the evaluation's)")
    ap.add_argument("--lr", type=float, default=None, help="Adam's rate (default: the evaluation's)")
    ap.add_argument("--loss", default=None, help="auto | mc | ei | sure (default: the evaluation's)")
    ap.add_argument("--tau", type=float, default=None, help="the discrepancy target τ (default: the evaluation's)")
    ap.add_argument("--levels", default="15 views,90°,120°,+1 px,60 views",
                    help="comma-separated level labels of the geometry, limited-angle and calibration shifts")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    given = {k: v for k, v in (("steps", args.steps), ("lr", args.lr), ("loss", args.loss), ("tau", args.tau))
             if v is not None}
    settings = replace(EVALUATION_ADAPTATION, **given)
    run = str(zoo.run_dir(args.model)) if zoo.is_pretrained(args.model) else args.model
    config = resolve(run)[0]
    ref = condition_from_config(config, n=args.n)
    methods = build_methods(["tv", "model"], run)
    # the model's trust calibration at home (a zoo entry ships it): its floor f sets the discrepancy target
    _cal_methods, cal = calibrate_model(methods["model"], Experiment(config, run), run, methods["tv"], store=False)
    record = cal.of("model")
    floor = home_fit(None if record is None else record.score)
    print(f"model floor f = {floor[0]:.4g} (its relative misfit at the training conditions)")
    wanted = [w.strip() for w in args.levels.split(",") if w.strip()]
    load0 = os.getloadavg()[0]
    rows = []
    for sh in build_shifts(ref, ["geometry", "limited-angle", "calibration"]):
        for lv in sh.levels:
            if lv.label not in wanted or any(r["level"] == lv.label for r in rows):
                continue
            y, x, phys = make_pairs(ref.with_changes(**lv.changes))
            with torch.no_grad():
                x_tv, x_m = methods["tv"](y, phys), methods["model"](y, phys)
            c0, w0 = time.process_time(), time.perf_counter()
            done = adapt(methods["model"], y, phys, settings, progress=None, floor=floor)
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            row = {"shift": sh.name, "level": lv.label, "training": lv.training, "images": int(y.shape[0]),
                   "psnr_tv": round(float(psnr(x_tv, x).mean()), 2), "psnr_model": round(float(psnr(x_m, x).mean()), 2),
                   "psnr_adapted": round(float(psnr(done.x, x).mean()), 2), "steps": done.steps,
                   "stopped_by": done.stopped_by, "note": done.note, "target": done.target,
                   "misfit_before": done.misfit_before, "misfit": done.misfit, "expected_misfit": done.expected_misfit,
                   "cpu_seconds_per_image": round(cpu / y.shape[0], 1), "wall_seconds_per_image": round(wall / y.shape[0], 1)}
            rows.append(row)
            print(json.dumps(row, ensure_ascii=False), flush=True)
    out = {"model": args.model, "settings": asdict(settings), "threads": args.threads, "load_before": round(load0, 2),
           "load_after": round(os.getloadavg()[0], 2), "precision": "float32", "rows": rows}
    print(f"{'level':<12} {'TV':>7} {'model':>7} {'adapted':>8} {'steps':>6} {'CPU s/img':>10}  stopped by")
    for r in rows:
        print(f"{r['level']:<12} {r['psnr_tv']:7.2f} {r['psnr_model']:7.2f} {r['psnr_adapted']:8.2f} {r['steps']:6d} "
              f"{r['cpu_seconds_per_image']:10.1f}  {r['stopped_by']}")
    print(f"{args.n} images per level; settings {asdict(settings)}; load average {out['load_before']} → "
          f"{out['load_after']} (1 min); float32")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
