"""Safe mode per stress level of a run: safe − the best classical baseline (FBP, tuned TV), whether the
level is identifiable from (y, K), and its promise (share promised, share kept).

    .venv/bin/python scripts/safe_summary.py RUN
"""
import json
import sys
from pathlib import Path
from invmap.evaluation.stress import read_stress_csv
run = Path(sys.argv[1])
m = json.loads((run / "stress.json").read_text())
rows = read_stress_csv(run / "stress.csv")
hidden = {(s["name"], lv) for s in m["shifts"] for lv in (s.get("unidentifiable") or {})}
ps = {(r["shift"], r["level"], r["method"], r["metric"]): r["mean"] for r in rows}
levels = list(dict.fromkeys((r["shift"], r["level"]) for r in rows))
worst = None
for s, lv in levels:
    base = max(ps.get((s, lv, b, "psnr"), float("-inf")) for b in ("fbp", "tv"))
    safe, model = ps.get((s, lv, "safe", "psnr")), ps.get((s, lv, "model", "psnr"))
    if safe is None:
        continue
    d = safe - base
    extra = " ".join(f"{k}={ps[(s, lv, 'safe', k)]:.3f}" for k in ("promised", "promise_kept", "margin_bound", "recalibrated")
                     if (s, lv, "safe", k) in ps)
    ident = (s, lv) not in hidden
    print(f"{s:22s} {lv:32s} model {model:6.2f} safe {safe:6.2f} best-base {base:6.2f} safe-base {d:+6.2f} "
          f"{'' if ident else '(unidentifiable)'} {extra}")
    if ident and (worst is None or d < worst[0]):
        worst = (d, s, lv)
print("worst identifiable safe − best baseline:", worst)
