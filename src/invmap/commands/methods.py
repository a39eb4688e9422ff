"""List every registered variational reconstruction method with its parameters, then the
methods of a trained run (`invmap.evaluation.resolve.RUN_METHODS`)."""

from __future__ import annotations

import argparse

from ..evaluation.resolve import RUN_METHODS
from ..variational import METHODS

HELP = "list the reconstruction methods (fbp, cgls, tikhonov, tv, pnp, ...; model, safe) and their parameters"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show only this method")


def run(args: argparse.Namespace) -> int:
    def line(m) -> str:
        return f"{m.name}(reuses: {', '.join(m.reuses) or 'nothing'})  — {m.help}"

    if args.name in RUN_METHODS:
        print(line(RUN_METHODS[args.name]))
        return 0
    print(METHODS.listing(args.name))
    if args.name is None:
        print("\nof a trained run (invmap evaluate RUN --methods ...):")
        print("\n".join(line(m) for m in RUN_METHODS.values()))
    return 0
