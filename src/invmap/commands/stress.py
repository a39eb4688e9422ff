"""Stress-test a trained run: re-score the model and the classical baselines while moving one
factor at a time away from the training conditions (noise level and family, acquisition
geometry, limited angle, calibration mismatch, discretisation, resolution, object class).

Writes stress.csv (shift, level, method, metric, mean, std), stress.json (shifts and
verdicts) and figures/stress_<shift>.png into the run directory, refreshes report.html
and prints one verdict per shift. A run made by ``invmap train`` has no tuned baselines
(baselines.json): they are tuned first on its validation pairs, said on stderr, and
recorded. With --shifts only those shifts are recomputed; the others already in the run
are kept.
"""

from __future__ import annotations

import argparse

from ..evaluation import report, runs
from ..evaluation.stress import KINDS, parse_kinds
from ..evaluation.experiment import Experiment
from ..pipeline import stress_run, StressSettings
from . import TUNE_HELP, TUNE_SECONDS, add_failure_options, outside_budget

HELP = "stress-test a trained run under shifts of noise, geometry, calibration, resolution, object class"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN", help="a run directory (runs/NAME)")
    p.add_argument("--shifts", help=f"comma-separated subset of: {', '.join(KINDS)} (default: all that apply)")
    p.add_argument("--methods", help="comma-separated methods (default: the config's evaluation.methods)")
    p.add_argument("--n", type=int, default=32, help="test images per level (default 32)")
    p.add_argument("--tv-iters", type=int, default=0, help="TV iterations (default 0 = the tuned value)")
    p.add_argument("--tune-seconds", type=float, default=TUNE_SECONDS, help=TUNE_HELP)
    p.add_argument("--folder", help="also test on the images of this folder (object-class shift)")
    p.add_argument("--no-report", action="store_true", help="do not rewrite report.html")
    add_failure_options(p, "stress.json (skipped)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    config, run_dir = runs.resolve(args.run_dir, outside_budget(args))
    if run_dir is None:
        raise ValueError(f"{args.run_dir} is not a run directory; stress needs a trained run (runs/NAME) or the "
                         f"evaluation of a config (invmap evaluate CONFIG --methods … --out DIR)")
    kinds = parse_kinds(args.shifts)
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.folder and not Path(args.folder.removeprefix("folder:")).is_dir():
        raise FileNotFoundError(f"--folder: no directory {args.folder}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    settings = StressSettings(n_per_level=args.n, tv_iters=args.tv_iters, kinds=kinds, folder=args.folder,
                              keep_going=args.keep_going)
    _rows, meta = stress_run(Experiment(config, run_dir), settings, methods=methods, say=print, tune_seconds=args.tune_seconds)
    for sh in meta["shifts"]:
        for lv, why in sh["skipped"].items():
            print(f"  left out {sh['name']} {lv}: {why}")
    print(f"baselines: {meta['settings'].get('baselines')}")  # what the verdicts compare with
    for v in meta["verdicts"]:
        print(f"• {v['text']}")
    trust = meta.get("trust")
    if trust:
        per = ", ".join(f"{k} {v['auroc'] if v['auroc'] is not None else 'n/a'}" for k, v in trust["per_shift"].items())
        print(f"• trust score: AUROC {trust['auroc'] if trust['auroc'] is not None else 'n/a'} for \"model worse than "
              f"the best baseline\" over {trust['images']} images ({trust['worse']} worse); per shift: {per}")
        if trust.get("auroc_large") is not None:
            print(f"• trust score: AUROC {trust['auroc_large']} for \"model more than {trust['large_failure_db']:g} dB "
                  f"below the best baseline\" ({trust['large_failures']} of {trust['images']} images)")
    print(f"wrote {run_dir / 'stress.csv'}")
    if not args.no_report:
        print(f"report: {report.build_report(run_dir)}")
    return 0
