"""Show the embedded default experiment, or check a config file.

    invmap config --show-default > my.yaml     # a commented starting point
    invmap config --check my.yaml [--set training.lr=3e-4 ...]   # validate, print the full config
    invmap config --presets                    # the experiment presets (ct-lpd, ct-lgd, ct-pnp, ...)
    invmap config --preset ct-lpd > my.yaml    # one preset's file (laid over the default when read)

A preset's name works wherever a config file does: ``invmap train ct-lpd``.

``--check`` builds what ``invmap train`` builds — operator, noise, network, image sources —
with the network on PyTorch's ``meta`` device and the operator's matrices left for their
first use, so it rejects what train rejects without allocating.
"""

from __future__ import annotations

import argparse

from ..config import default_text, load_config, presets
from ..evaluation.runs import check_fixed_params
from ..evaluation.zoo_task import beside
from ..training.checks import check_config

HELP = "show the default experiment config or check a config file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--show-default", action="store_true", help="print the embedded default config (YAML)")
    g.add_argument("--check", metavar="FILE", help="validate FILE (or a preset name) and print the resolved config")
    g.add_argument("--presets", action="store_true", help="list the experiment presets")
    g.add_argument("--preset", metavar="NAME", help="print the preset NAME (YAML, laid over the default when read)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, e.g. --set training.lr=3e-4 (repeatable)")


def run(args: argparse.Namespace) -> int:
    if args.presets:
        for name, path in presets().items():
            print(f"{name}: {path.read_text().splitlines()[0].lstrip('# ')}")
        return 0
    if args.preset is not None:
        if args.preset not in presets():
            raise ValueError(f"unknown preset '{args.preset}'; available: {', '.join(presets())}")
        print(presets()[args.preset].read_text(), end="")
        return 0
    if args.show_default and not args.overrides:
        print(default_text(), end="")
        return 0
    cfg = load_config(args.check, args.overrides)
    check_config(cfg)  # what `train` builds, on the meta device: no memory, same errors
    if isinstance(cfg.evaluation.zoo, list):  # and what `invmap run` refuses before it starts: the zoo
        beside(cfg)                            # entries named (unknown, of another task), fixed method settings
    check_fixed_params(cfg)
    print(cfg.to_yaml(), end="")
    if args.check:
        import sys

        print(f"# {args.check}: OK", file=sys.stderr)
    return 0
