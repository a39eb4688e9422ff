"""Train a learned inverse map f_Θ(y) ≈ x from simulated pairs (y, x) of an experiment.

    invmap train                          # the embedded default (sparse-view CT, UNet)
    invmap train my.yaml --set training.epochs=5 --out runs/quick
    invmap train --resume --out runs/quick            # continue an interrupted run
    invmap train my.yaml --nproc 2                    # data-parallel on 2 processes (torchrun)
    torchrun --standalone --nproc-per-node 2 -m invmap train my.yaml    # the same, by hand

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

from ..config import load_config
from ..training import distributed, train, TrainingDiverged

HELP = "train a model on simulated pairs (y, x) from an experiment config"
DISTRIBUTED = True  # one rank of a torchrun job (see invmap.training.distributed)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", metavar="CONFIG",
                   help="experiment YAML (default: the embedded default; with --resume: the run's config.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set training.lr=3e-4 (repeatable)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="data-parallel training on N processes of this machine: runs torchrun --standalone "
                        "--nproc-per-node N -m invmap train … (training.batch_size is the global batch)")


def _argv(args: argparse.Namespace) -> list[str]:
    """The command line of one rank: this one without --nproc."""
    argv = ["train", *([args.config] if args.config else [])]
    for ov in args.overrides:
        argv += ["--set", ov]
    argv += (["--out", args.out] if args.out else []) + (["--resume"] if args.resume else [])
    return argv + (["--quiet"] if args.quiet else [])


def run(args: argparse.Namespace) -> int:
    if args.nproc is not None:
        if distributed.under_torchrun():
            raise ValueError("--nproc starts torchrun itself; under torchrun leave it out")
        return distributed.launch(args.nproc, _argv(args))
    if not distributed.under_torchrun():
        return _train(args, *_load(args))
    dist = distributed.Dist.from_env()
    try:  # every rank reads the same config: rank 0 alone reports its errors
        cfg, out = _load(args)
        dist.check_batch(cfg.training.batch_size)
    except USER_ERRORS:
        if dist.main:
            raise
        return 2
    try:
        return _train(args, cfg, out, say=dist.main)
    except TrainingDiverged:  # all ranks see the same global loss
        if dist.main:
            raise
        return 2
    except USER_ERRORS as e:  # an error of this rank alone (e.g. its data): name the rank in the one line
        if dist.main:
            raise
        raise type(e)(f"rank {dist.rank} of {dist.world}: {str(e).strip().splitlines()[0]}") from None
    except RuntimeError as e:
        if distributed.peer_failure(e):  # another rank stopped first and reports why
            return 1
        raise


#: what the CLI reports as one line `invmap: error: …` (see invmap.cli)
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


def _load(args: argparse.Namespace):
    """The experiment config (a run's own config.yaml when resuming) and the run directory."""
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
    return cfg, Path(args.out) if args.out else Path("runs") / cfg.name


def _train(args: argparse.Namespace, cfg, out: Path, say: bool = True) -> int:
    if say:
        takes = "y and K" if cfg.model.is_kind else cfg.model.input  # a kind reconstructs from y itself
        print(f"invmap train: {'resuming' if args.resume else 'run'} {out}/  ({cfg.name}: "
              f"{cfg.operator.name} + {cfg.noise.name} noise, model {cfg.model.name} on {takes})",
              flush=True)
        drawn = cfg.physics_distribution()
        if drawn.random:  # invmap.distributions: evaluation and model.json keep the nominal physics
            spec = drawn.spec()
            names = [f"{sec}.{k}" for sec in ("operator", "noise") for k in spec[sec]] + (["data.simulation"] if
                                                                                          "simulation" in spec else [])
            print(f"invmap train: each training pair draws its own {', '.join(names)}; evaluation uses the nominal "
                  f"values", flush=True)
    try:
        res = train(cfg, out, resume=args.resume, progress=not args.quiet)
    except KeyboardInterrupt:
        if say:
            print(f"\ninvmap train: interrupted; continue with: invmap train --resume --out {out}", file=sys.stderr)
        raise
    if say:
        print(res.summary())
        print(f"invmap train: model and logs in {out}/  (next: invmap evaluate {out})")
    return 0
