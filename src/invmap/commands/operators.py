"""List every registered forward operator with its parameters."""

from __future__ import annotations

import argparse

from ..operators import OPERATORS

HELP = "list the registered forward operators and their parameters"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show only this operator")


def run(args: argparse.Namespace) -> int:
    print(OPERATORS.listing(args.name))
    return 0
