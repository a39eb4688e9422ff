"""Which ground-truth-free diagnostics predict "the model is worse than the best baseline"?

On a development set of stress conditions (another seed than the stress study's, so the
choice is not fitted to the images it is reported on), each candidate score is calibrated on
the run's validation measurements (`invmap.trust.calibration`) and its AUROC for the event is
printed, overall and per shift; then the safe mode's anchor weight μ/‖K‖² is varied, fixed
for every image, to show what each choice keeps at home and gives back under shift.

    .venv/bin/python benchmarks/trust_candidates.py RUN [--n 8] [--seed 1] [--shifts noise,…]

Candidates (z: robust z-score of the log ratio against the validation measurements):
z_a the misfit against TV (one-sided), abs(z_h) the data fit against the training conditions
(two-sided), z_d the rms disagreement ‖x̂ − x̂_TV‖ (one-sided), z_k the calibration read from
y (|estimate − K's value| / standard error, e.g. the CT detector offset), and the ratio of
the noise sensitivity to that at the training conditions (uncalibrated; `diagnose(draws=3)`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch


def main() -> None:
    from invmap.evaluation import runs, stress
    from invmap.evaluation.evaluate import reconstruct
    from invmap.evaluation.task import condition_from_config, make_pairs
    from invmap.evaluation.experiment import Experiment
    from invmap.metrics import psnr
    from invmap.trust import auroc, calibration, diagnose
    from invmap.trust.diagnostics import _log_stats
    from invmap.variational.pdhg import ChambollePockTV

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, default=8, help="images per level (default 8)")
    ap.add_argument("--seed", type=int, default=1, help="image and noise seed (the stress study uses the config's)")
    ap.add_argument("--shifts", help="comma-separated shift kinds (default: all)")
    ap.add_argument("--mu", default="0.03,0.01,0.003,0.001", help="anchor weights μ/‖K‖² to try")
    a = ap.parse_args()
    config, run_dir = runs.resolve(str(a.run))
    m = runs.build_methods(["fbp", "tv", "model"], run_dir, config=config)
    model, tv = m["model"], m["tv"]
    yv, _xv, pv = Experiment(config).val_pairs(32)
    xm_v, xt_v = reconstruct(model, yv, pv)[0], reconstruct(tv, yv, pv)[0]
    cal = calibration(xm_v, yv, pv, xt_v)
    spread_d = _log_stats(((xm_v - xt_v).double() ** 2).flatten(1).mean(1).sqrt())
    ref = condition_from_config(config, n=a.n, simulation=config.data.simulation).with_changes(seed=a.seed)
    mus = [float(v) for v in a.mu.split(",")]
    seen: dict[str, tuple] = {}
    rows = []
    print("| shift | level | model − best (dB) | " + " | ".join(f"safe μ={v:g}" for v in mus) + " |")
    print("|---|---|---:|" + "---:|" * len(mus))
    for sh in stress.build_shifts(ref, stress.parse_kinds(a.shifts)):
        for lv in sh.levels:
            cond = ref.with_changes(**lv.changes)
            if cond.key() not in seen:
                y, x, phys = make_pairs(cond)
                xs = {k: reconstruct(v, y, phys)[0] for k, v in m.items()}
                d = diagnose(model, y, phys, x_hat=xs["model"], x_baseline=xs["tv"], calibration=cal, draws=3)
                dis = ((xs["model"] - xs["tv"]).double() ** 2).flatten(1).mean(1).sqrt()
                z_d = (dis.log() - spread_d["median"]) / spread_d["spread"]
                best = torch.maximum(psnr(xs["tv"], x), psnr(xs["fbp"], x))
                k2 = float(phys.operator.norm()) ** 2
                safe = []
                for mu in mus:
                    s = ChambollePockTV(phys.operator, y, lam=tv.lam, x0=xs["model"], max_iter=int(tv.iters),
                                        record_every=0, anchor=xs["model"], mu=mu * k2)
                    safe.append(float(psnr(s.solve(), x).mean() - best.mean()))
                pair = torch.maximum(d.z_misfit, d.z_home.abs())
                z_k = d.z_calibration if d.z_calibration is not None else torch.zeros_like(pair)
                cand = {"z_a": d.z_misfit, "abs(z_h)": d.z_home.abs(), "z_d": z_d, "z_k": z_k,
                        "max(z_a, abs(z_h))": pair, "max(z_a, abs(z_h), z_d)": torch.maximum(pair, z_d),
                        "S = max(z_a, abs(z_h), z_k) (kept)": d.score, "sensitivity ratio": d.sensitivity_ratio}
                seen[cond.key()] = (psnr(xs["model"], x) < best, cand)
                print(f"| {sh.name} | {lv.label} | {float((psnr(xs['model'], x) - best).mean()):+.2f} | "
                      + " | ".join(f"{v:+.2f}" for v in safe) + " |", flush=True)
            rows.append((sh.name, cond.key()))
    print("\n| candidate | AUROC overall | per shift |\n|---|---:|---|")
    for c in next(iter(seen.values()))[1]:
        def area(keys):
            s = torch.cat([seen[k][1][c] for k in keys]).nan_to_num(0.0)
            return auroc(s.tolist(), torch.cat([seen[k][0] for k in keys]).tolist())
        per = {}
        for name in dict.fromkeys(n for n, _ in rows):
            v = area([k for n, k in rows if n == name])
            per[name] = "n/a" if math.isnan(v) else f"{v:.2f}"
        print(f"| {c} | {area(list(seen)):.3f} | " + ", ".join(f"{k} {v}" for k, v in per.items()) + " |")


if __name__ == "__main__":
    main()
