"""List every registered network architecture with its parameters."""

from __future__ import annotations

import argparse

HELP = "list the registered network architectures and their parameters"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show only this architecture")


def run(args: argparse.Namespace) -> int:
    from ..models import MODELS

    for n in [args.name] if args.name else MODELS.names():
        MODELS.get(n)
        print(MODELS.describe(n))
    return 0
