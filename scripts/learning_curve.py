"""Test PSNR of a run's snapshots against training minutes (`invmap.evaluation.zoo_build.learning_curve`):

    .venv/bin/python scripts/learning_curve.py RUN [--n 128]

RUN was trained with ``training.snapshots: [1, 3, 10, 30, 100]``; writes RUN/learning_curve.csv
and prints it as a Markdown table: the snapshot's minutes (of the training clock, or of CPU time with
``training.snapshot_clock: cpu``), the training-clock and CPU minutes it recorded, steps, test PSNR.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from invmap.evaluation.zoo_build import learning_curve


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, help="test images (default: the run's data.test)")
    a = ap.parse_args()
    rows = learning_curve(a.run, a.n)
    print("| snapshot | clock | wall minutes | CPU minutes | steps | test PSNR (dB) |\n|---:|---|---:|---:|---:|---:|")
    for r in rows:
        doc = json.loads((a.run / "snapshots" / f"{r['minutes']:g}min" / "model.json").read_text())
        cpu = f"{doc['cpu_seconds'] / 60:.1f}" if "cpu_seconds" in doc else "–"  # older runs: not recorded
        print(f"| {r['minutes']:g} min | {doc.get('snapshot_clock', 'wall')} | {r['seconds'] / 60:.1f} | {cpu} | "
              f"{r['step']} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
