"""Trust at inference on a run: the issue's three numbers, read from the files the run holds.

After ``invmap evaluate RUN --methods fbp,tv,model,safe`` and
``invmap stress RUN --methods fbp,tv,model,safe``:

1. AUROC of the trust score for "the model is worse than the best classical baseline on this
   image", per shift and overall (stress.json) — goal ≥ 0.9 overall;
2. safe-model PSNR minus the best classical baseline's, minimum over every level of every
   shift (stress.csv) — goal ≥ −0.5 dB;
3. the share of the model's in-distribution gain over TV that ``safe`` keeps on the test set,
   (PSNR_safe − PSNR_tv) / (PSNR_model − PSNR_tv) (metrics.csv) — goal ≥ 80%.

    .venv/bin/python benchmarks/trust.py RUN
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from invmap.evaluation.evaluate import read_metrics
from invmap.evaluation.stress import read_stress_csv
from invmap.evaluation.verdicts import LEARNED


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    run = ap.parse_args().run
    meta = json.loads((run / "stress.json").read_text())
    t = meta.get("trust")
    if t:
        print(f"AUROC overall {t['auroc']} ({t['images']} images, {t['worse']} with the model below the best baseline)")
        if t.get("auroc_large") is not None:
            print(f"AUROC for the model more than {t['large_failure_db']:g} dB below the best baseline: "
                  f"{t['auroc_large']} ({t['large_failures']} images)")
        print("| shift | AUROC | images | model worse | AUROC, worse by > 1 dB | of them |\n|---|---:|---:|---:|---:|---:|")
        for k, v in t["per_shift"].items():
            print(f"| {k} | {v['auroc']} | {v['images']} | {v['worse']} | {v.get('auroc_large', '—')} | "
                  f"{v.get('large_failures', '—')} |")
    every = read_stress_csv(run / "stress.csv")
    rows = [r for r in every if r["metric"] == "psnr"]
    recal = {(r["shift"], r["level"]): r["mean"] for r in every if r["metric"] == "recalibrated" and r["method"] == "safe"}
    table: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        table.setdefault((r["shift"], r["level"]), {})[r["method"]] = r["mean"]
    gaps = []
    for (shift, level), vals in table.items():
        base = [v for m, v in vals.items() if m not in LEARNED and math.isfinite(v)]
        if "safe" in vals and base:
            gaps.append((vals["safe"] - max(base), vals.get("model", math.nan) - max(base), shift, level))
    if gaps:
        print("\n| shift | level | model − best baseline (dB) | safe − best baseline (dB) | safe: K recalibrated from y |"
              "\n|---|---|---:|---:|---:|")
        for g_safe, g_model, shift, level in gaps:
            r = recal.get((shift, level))
            print(f"| {shift} | {level} | {g_model:+.2f} | {g_safe:+.2f} | {'—' if r is None else f'{100 * r:.0f}%'} |")
        worst = min(gaps)
        print(f"\nsafe − best baseline, minimum over {len(gaps)} levels: {worst[0]:+.2f} dB ({worst[2]} {worst[3]})")
    if (run / "metrics.csv").exists():
        m = {r["method"]: r["psnr_mean"] for r in read_metrics(run / "metrics.csv")}
        if {"tv", "model", "safe"} <= set(m):
            gain = m["model"] - m["tv"]
            kept = (m["safe"] - m["tv"]) / gain if gain > 0 else math.nan
            print(f"test set: tv {m['tv']:.2f}, model {m['model']:.2f}, safe {m['safe']:.2f} dB; "
                  f"in-distribution gain over TV kept by safe: "
                  + (f"{100 * kept:.0f}%" if math.isfinite(kept) else "n/a (the model does not beat TV)"))


if __name__ == "__main__":
    main()
