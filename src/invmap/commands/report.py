"""Write report.html for a run directory: one self-contained page (config, metrics,
figures, stress study and verdicts; images embedded, no external files)."""

from __future__ import annotations

import argparse

from .. import zoo
from ..evaluation import report
from ..evaluation.runs import resolve

HELP = "write the self-contained report.html of a run directory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a run directory (runs/NAME)")
    p.add_argument("--out", help="write the page here instead of RUN/report.html")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if zoo.is_pretrained(args.run_dir):  # a report is written into the run: a copy of the zoo entry
        d = resolve(args.run_dir)[1]
    else:
        d = Path(args.run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"run directory not found: {d}")
    print(report.build_report(d, args.out, curves=True))
    return 0
