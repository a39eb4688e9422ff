"""The deep image prior on the default task: PSNR and seconds per 128² image against tuned TV.

    .venv/bin/python benchmarks/dip.py [--n 1] [--val 8] [--tv-lam L] [--threads 2] [--param lr=0.01 ...]
        [--sweep] [--out dip.json]

The default task (`invmap config --show-default`: ellipses, 128², parallel-beam CT with 60
views, 1% relative Gaussian noise, test y simulated on the 2× grid): TV's λ tuned on `--val`
validation pairs as a run tunes it (`invmap.evaluation.runs.tune_baselines`), then TV and
``dip`` (its defaults, or `--param`) on the same first `--n` test measurements, each image's
PSNR and seconds, and how each DIP fit ended (rule, step, misfit against its target). With
``--sweep`` DIP's rate and width are also tried on the first validation image (never on a test
image), to choose the defaults. The 1-minute load average is recorded before and after.
Nothing else may run beside it when the seconds matter (2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

SWEEP = [{"lr": lr, "width": w} for lr in (0.003, 0.01, 0.03) for w in (8, 16, 32)]


def _dip(y: torch.Tensor, x: torch.Tensor, physics, params: dict) -> list[dict]:
    import invmap.variational as var
    from invmap.metrics import psnr

    m = var.build("dip", **params)
    m.progress = None
    rows = []
    for i in range(y.shape[0]):
        t0 = time.perf_counter()
        x_hat = m(y[i:i + 1], physics)
        rows.append({"psnr": round(float(psnr(x_hat, x[i:i + 1])[0]), 3), "seconds": round(time.perf_counter() - t0, 2),
                     **{k: v for k, v in m.history[0].items() if k != "image"}})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1, help="test images")
    ap.add_argument("--val", type=int, default=8, help="validation pairs TV is tuned on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tv-lam", type=float, default=None, help="TV's λ as tuned by an earlier run of this script "
                    "(skips the tuning)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a dip parameter")
    ap.add_argument("--sweep", action="store_true", help="also try rates and widths on one validation image")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import invmap.variational as var
    from invmap.commands.reconstruct import parse_params
    from invmap.config import load_config
    from invmap.evaluation.runs import tune_baselines
    from invmap.evaluation.experiment import Experiment
    from invmap.metrics import psnr

    load_before = os.getloadavg()[0]
    params = parse_params(args.param)
    exp = Experiment(load_config(None))
    y, x, phys = exp.test_pairs(args.n)
    t0 = time.perf_counter()
    tuned = tune_baselines(exp, ["tv"], n_val=args.val)["tv"] if args.tv_lam is None else \
        {"params": var.build("tv", lam=args.tv_lam).params(), "how": f"λ = {args.tv_lam:g} from --tv-lam"}
    tune_seconds = time.perf_counter() - t0
    tv = var.build("tv", **tuned["params"])
    tv_rows = []
    for i in range(y.shape[0]):
        t0 = time.perf_counter()
        with torch.no_grad():
            x_tv = tv(y[i:i + 1], phys)
        tv_rows.append({"psnr": round(float(psnr(x_tv, x[i:i + 1])[0]), 3), "seconds": round(time.perf_counter() - t0, 2)})
    result: dict = {"task": "default (ct 60 views, 1% relative noise, 128², test on the 2× grid)",
                    "threads": args.threads, "tv": {"params": tuned["params"], "how": tuned["how"],
                                                    "tune_seconds": round(tune_seconds, 1), "images": tv_rows},
                    "dip": {"params": var.build("dip", **params).params(), "images": _dip(y, x, phys, params)}}
    if args.sweep:
        yv, xv, pv = exp.val_pairs(1)
        result["sweep_on_val_image_0"] = [{**p, **_dip(yv, xv, pv, {**params, **p})[0]} for p in SWEEP]
    result["loadavg_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
