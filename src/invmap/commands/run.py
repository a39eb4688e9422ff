"""Run the whole study in one command: simulate the data, tune the classical baselines,
train the learned map, evaluate everything on the test set, stress-test it (noise,
geometry, calibration, discretisation, object class) and write report.html.

Without CONFIG the embedded default runs (sparse-view CT of ellipses, FBP + UNet; about
15 minutes on a 2-core CPU). Each run gets a new directory OUT/NAME (NAME-2, … if taken):
nothing already written is overwritten.
"""

from __future__ import annotations

import argparse

from ..config import load_config
from ..evaluation.stress import applicable_shifts, parse_kinds
from ..evaluation.task import condition_from_config
from ..pipeline import run as run_pipeline, RunOptions, StressSettings
from . import TUNE_HELP, TUNE_SECONDS

HELP = "simulate → tune baselines → train → evaluate → stress → report, in one command"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", metavar="CONFIG", help="experiment YAML (default: the embedded default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. training.epochs=5 (repeatable)")
    p.add_argument("--out", default="runs", help="parent directory of the run (default: runs)")
    p.add_argument("--test-n", type=int, help="test images for the evaluation (default: data.test)")
    p.add_argument("--stress-n", type=int, default=32, help="test images per stress level (default 32)")
    p.add_argument("--stress-tv-iters", type=int, default=0,
                   help="TV iterations in the stress study (default 0 = the tuned value)")
    p.add_argument("--shifts", help="comma-separated subset of the stress shifts (default: all that apply)")
    p.add_argument("--folder", help="also stress-test on the images of this folder (object class)")
    p.add_argument("--no-stress", action="store_true", help="skip the stress study")
    p.add_argument("--tune-seconds", type=float, default=TUNE_SECONDS, help=TUNE_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--keep-going", action="store_true",
                   help="when a method fails in the evaluation or the stress study, score the others and record the "
                        "failure (metrics.md, stress.json) instead of stopping with exit 2")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    config = load_config(args.config, args.overrides)
    kinds = parse_kinds(args.shifts)
    for flag, v in (("--stress-n", args.stress_n), ("--test-n", args.test_n)):
        if v is not None and v < 1:
            raise ValueError(f"{flag} must be >= 1, got {v}")
    if args.folder and not Path(args.folder.removeprefix("folder:")).is_dir():
        raise FileNotFoundError(f"--folder: no directory {args.folder}")
    if args.shifts and not args.no_stress:  # say it now, not after the training
        applicable_shifts(condition_from_config(config, n=1), kinds)
    opts = RunOptions(out=args.out, test_n=args.test_n, tune_seconds=args.tune_seconds,
                      stress=StressSettings(n_per_level=args.stress_n, tv_iters=args.stress_tv_iters, kinds=kinds,
                                            folder=args.folder, keep_going=args.keep_going),
                      skip_stress=args.no_stress, progress=not args.quiet)
    run_dir = run_pipeline(config, opts)
    print(f"report: {run_dir / 'report.html'}")
    return 0
