"""List the reconstructor kinds and the network architectures, with their parameters."""

from __future__ import annotations

import argparse

from ..models import KINDS, listing, MODELS

HELP = "list the reconstructor kinds and network architectures with their parameters"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show only this kind or architecture")


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        print(listing())
    else:
        print((KINDS if args.name in KINDS.names() else MODELS).listing(args.name))
    return 0
