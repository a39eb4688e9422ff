"""Projected SURE on the default task against the truth it estimates.

    .venv/bin/python benchmarks/projected_sure.py RUN [--n 16] [--threads 1]

For the first `--n` default-task test measurements (128² ellipses, 60-view CT, 1 % noise, fine
simulation) and the run's trained model: the projected SURE of each image
(`invmap.selfsup.projected.projected_sure`, what `invmap evaluate` reports without x), the true
projected MSE ‖K⁺K(x̂ − x)‖²/n (K⁺ by CGLS to its tolerance) and the true MSE; mean ± standard error
over the images, the CPU seconds, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource

import torch

from invmap.config import load_config
from invmap.data.sources import mix_seed
from invmap.evaluation.task import condition_from_config, make_pairs
from invmap.evaluation.without_x import PROBE_STREAM
from invmap.models import load_model
from invmap.selfsup.projected import PINV_ITERS, PINV_TOL, projected_sure, pseudo_inverse


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def stats(t: torch.Tensor) -> list[float]:
    return [float(t.mean()), float(t.std() / len(t) ** 0.5)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=PINV_ITERS, help="CGLS iterations of K⁺ in the estimate")
    ap.add_argument("--tol", type=float, default=PINV_TOL)
    ap.add_argument("--eps", type=float, default=0.01, help="the divergence step, a fraction of σ")
    ap.add_argument("--unconverged", action="store_true",
                    help="estimate even where CGLS does not reach K⁺ (invmap gives no number there)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    load0 = os.getloadavg()[0]
    cfg = load_config(f"{a.run}/config.yaml")
    y, x, phys = make_pairs(condition_from_config(cfg, n=a.n), split="test")
    model, _ = load_model(a.run)
    model.eval()
    c0 = cpu()
    with torch.no_grad():
        est, true, mse = [], [], []
        for i in range(0, a.n, 8):
            yb, xb = y[i:i + 8], x[i:i + 8]
            x_hat = model(yb, phys)
            gens = [torch.Generator().manual_seed(mix_seed(int(cfg.seed), PROBE_STREAM, i + k)) for k in range(len(yb))]
            est.append(projected_sure(lambda v, p: model(v, p), yb, phys, gens, x_hat=x_hat, max_iter=a.iters,
                                      tol=a.tol, eps=a.eps, require=not a.unconverged))
            e = x_hat - xb
            true.append((pseudo_inverse(phys.operator, phys.operator(e), max_iter=1000, tol=1e-8) ** 2).flatten(1).mean(1))
            mse.append((e ** 2).flatten(1).mean(1))
    out = {"n": a.n, "iters": a.iters, "tol": a.tol, "eps": a.eps, "sure_projected_mse": stats(torch.cat(est)), "true_projected_mse": stats(torch.cat(true)),
           "true_mse": stats(torch.cat(mse)), "cpu_s": round(cpu() - c0, 1),
           "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
