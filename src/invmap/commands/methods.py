"""List every registered variational reconstruction method with its parameters."""

from __future__ import annotations

import argparse

HELP = "list the classical reconstruction methods (fbp, cgls, tikhonov, tv, ...) and their parameters"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show only this method")


def run(args: argparse.Namespace) -> int:
    from ..variational import METHODS

    print(METHODS.listing(args.name))
    return 0
