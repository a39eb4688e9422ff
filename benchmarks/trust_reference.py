"""Which reference makes a better trust signal: agreement of the model's x̂ with tuned TV or with PnP?

    .venv/bin/python benchmarks/trust_reference.py RUN [--n 8] [--threads 2]

On a trained default run (CT of ellipses), for the training conditions and ten shifts (fewer
views, short arcs, other objects, stronger noise; `n` test images each), the model, FBP, TV
(λ from the run's baselines.json) and PnP (the learned prior with the CT task's tuned σ's and τ)
reconstruct each image; the event is "the model is more than 1 dB below the best of FBP and TV";
the signal is the disagreement −PSNR(x̂_model, x̂_reference). Prints the mean PSNRs per level and
the AUROC of each reference (`invmap.trust.roc.auroc`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

LEVELS = {"training": [], "15 views": ["operator.angles=15"], "30 views": ["operator.angles=30"],
          "120 views": ["operator.angles=120"], "arc 90°": ["operator.arc=90"], "arc 120°": ["operator.arc=120"],
          "arc 150°": ["operator.arc=150"], "shepp-logan": ["data.source=shepp-logan"],
          "samples": ["data.source=samples"], "noise 4%": ["noise.relative=0.04"], "noise 8%": ["noise.relative=0.08"]}
PNP = {"sigma_start": 0.05, "sigma_end": 0.04, "step": 300.0}  # the CT task's tuned values (BENCHMARKS.md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import invmap.variational as var
    from invmap.config import load_config
    from invmap.evaluation.task import condition_from_config, make_pairs
    from invmap.metrics import psnr
    from invmap.models import load_model
    from invmap.trust.roc import auroc

    model, _ = load_model(a.run)
    model.eval()
    tuned = json.loads((a.run / "baselines.json").read_text())
    tv, fbp = var.build("tv", **tuned["tv"]["params"]), var.build("fbp", **tuned["fbp"]["params"])
    pnp = var.build("pnp", **PNP)
    events, signals = [], {"tv": [], "pnp": []}
    for label, overrides in LEVELS.items():
        cfg = load_config(a.run / "config.yaml", overrides)
        y, x, phys = make_pairs(condition_from_config(cfg, n=a.n), split="test")
        with torch.no_grad():
            rec = {name: m(y, phys) for name, m in (("model", model), ("fbp", fbp), ("tv", tv), ("pnp", pnp))}
        p = {k: psnr(v, x) for k, v in rec.items()}
        agree = {k: psnr(rec["model"], rec[k]) for k in signals}
        events += (p["model"] < torch.maximum(p["tv"], p["fbp"]) - 1.0).tolist()
        for k in signals:
            signals[k] += (-agree[k]).tolist()
        print(label, " ".join(f"{k} {float(v.mean()):.2f}" for k, v in p.items()),
              " ".join(f"agree_{k} {float(v.mean()):.2f}" for k, v in agree.items()), flush=True)
    for k, s in signals.items():
        print(f"reference {k}: AUROC {auroc(s, events):.3f} for the model > 1 dB below the best of FBP and TV "
              f"({sum(events)} of {len(events)} images)")


if __name__ == "__main__":
    main()
