"""List every registered network architecture with its parameters."""

from __future__ import annotations

import argparse

HELP = "list the registered network architectures and their parameters"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show only this architecture")


def run(args: argparse.Namespace) -> int:
    from ..models import MODELS

    print(MODELS.listing(args.name))
    return 0
