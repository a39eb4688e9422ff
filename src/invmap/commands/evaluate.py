"""Score reconstructors on the test set of a run (or of a config): PSNR, SSIM, relative
error and reconstruction time per image, mean ± std over the test images.

Methods: ``model`` (the run's trained network) and any variational method (see
``invmap.variational.names()``), with the parameters the run tuned (baselines.json; a run
made by ``invmap train`` has none: they are tuned first, said on stderr, and recorded).
Writes metrics.csv and metrics.md into the run directory (or --out) and prints the table;
rows of methods not evaluated this time stay in metrics.csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..atomic import atomic_write
from ..evaluation import runs
from ..evaluation.evaluate import text_table
from ..evaluation.resolve import parse
from ..evaluation.experiment import Experiment
from ..pipeline import evaluate_run, new_run_dir
from . import TUNE_HELP, TUNE_SECONDS, add_failure_options, outside_budget

HELP = "score the trained model and classical methods on the test set (metrics.csv, metrics.md)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="RUN_OR_CONFIG", help="a run directory (runs/NAME) or an experiment YAML")
    p.add_argument("--methods", help="comma-separated, e.g. fbp,tv,model (default: the config's evaluation.methods)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. data.test=32 (repeatable)")
    p.add_argument("--n", type=int, help="number of test images (default: data.test)")
    p.add_argument("--out", help="where to write metrics.csv/metrics.md (default: the run directory; "
                                 "for a config: runs/NAME-eval)")
    p.add_argument("--tune-seconds", type=float, default=TUNE_SECONDS, help=TUNE_HELP)
    p.add_argument("--no-figure", action="store_true", help="skip figures/reconstructions.png")
    add_failure_options(p, "metrics.md")


def run(args: argparse.Namespace) -> int:
    config, run_dir = runs.resolve(args.target, args.overrides + outside_budget(args))
    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    for name in methods or ():
        if run_dir is None and parse(name).scheme == "run":
            raise ValueError(f"method '{name}' needs a run directory (runs/NAME), not a config file")
    if args.out:
        out = Path(args.out)
    elif run_dir is not None:
        out = run_dir
    else:
        out = new_run_dir("runs", f"{config.name}-eval")
    rows = evaluate_run(Experiment(config, run_dir), out, methods=methods, test_n=args.n, figure=not args.no_figure,
                        say=lambda s: print(s), tune_seconds=args.tune_seconds, keep_going=args.keep_going)
    if run_dir is None and not (out / "config.yaml").exists():  # a config's evaluation is a run of its
        atomic_write(out / "config.yaml", config.to_yaml())    # methods: `invmap stress OUT` takes it on
    print(text_table(rows))
    print(f"wrote {out / 'metrics.csv'} and {out / 'metrics.md'}")
    return 0
