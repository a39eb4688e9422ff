"""List every registered forward operator with its parameters."""

from __future__ import annotations

import argparse

HELP = "list the registered forward operators and their parameters"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show only this operator")


def run(args: argparse.Namespace) -> int:
    from ..operators import OPERATORS

    names = [args.name] if args.name else OPERATORS.names()
    for n in names:
        OPERATORS.get(n)
        print(OPERATORS.describe(n))
    return 0
