"""Train a learned inverse map f_Θ(y) ≈ x from simulated pairs (y, x) of an experiment.

    invmap train                          # the embedded default (sparse-view CT, UNet)
    invmap train my.yaml --set training.epochs=5 --out runs/quick
    invmap train --resume --out runs/quick            # continue an interrupted run

The run directory holds config.yaml, model.safetensors + model.json (the best model on
the validation pairs), train_log.csv and checkpoint.safetensors (for --resume).
config.yaml is the resolved config: a config.yaml of your own already in --out is never
replaced (give the run its own folder, e.g. ``--out my/run``). A resume may change only
training and evaluation settings, and is checked against the checkpoint before anything
is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "train a model on simulated pairs (y, x) from an experiment config"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", metavar="CONFIG",
                   help="experiment YAML (default: the embedded default; with --resume: the run's config.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set training.lr=3e-4 (repeatable)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..training import train

    if args.resume:
        if not args.out:
            raise ValueError("--resume needs --out DIR: the run directory to continue")
        saved = Path(args.out) / "config.yaml"
        if not saved.exists():
            raise FileNotFoundError(f"cannot resume: {saved} not found (is {args.out} a run directory?)")
        cfg = load_config(saved, args.overrides)
        if args.config:
            given = load_config(args.config, args.overrides)
            if given.to_dict() != cfg.to_dict():
                raise ValueError(f"{args.config} differs from {saved}; to resume, leave out CONFIG "
                                 "(change settings such as training.epochs with --set)")
    else:
        cfg = load_config(args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    print(f"invmap train: {'resuming' if args.resume else 'run'} {out}/  ({cfg.name}: "
          f"{cfg.operator.name} + {cfg.noise.name} noise, model {cfg.model.name} on {cfg.model.input})", flush=True)
    try:
        res = train(cfg, out, resume=args.resume, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"\ninvmap train: interrupted; continue with: invmap train --resume --out {out}", file=sys.stderr)
        raise
    print(res.summary())
    print(f"invmap train: model and logs in {out}/  (next: invmap evaluate {out})")
    return 0
