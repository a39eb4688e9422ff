"""Compare two or more trained runs side by side (the first is the reference): test metrics
of every method (the tuned baselines included), the stress heatmaps and the difference of
the models per shift and level, and verdicts computed from those numbers — e.g. a run
trained over a distribution of geometries against one trained at the nominal geometry.

Writes compare.csv, compare.json, compare.html and figures/ into --out, a new or empty
directory outside the runs; the runs themselves are only read.
"""

from __future__ import annotations

import argparse

from ..evaluation.compare import compare_runs

HELP = "compare two or more trained runs: test metrics, stress heatmaps and their difference, verdicts"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", metavar="RUN", nargs="+", help="run directories (runs/NAME); the first is the reference")
    p.add_argument("--out", required=True, help="the compare directory to write (new or empty; not inside a run)")
    p.add_argument("--margin", type=float, default=0.5,
                   help="dB below the best tuned baseline, and below the reference on the test set, that a "
                        "verdict still accepts (default 0.5)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    result = compare_runs(args.runs, args.out, margin=args.margin)
    for v in result["verdicts"]:
        print(f"• {v}")
    print(f"invmap compare: {Path(args.out) / 'compare.html'}")
    return 0
