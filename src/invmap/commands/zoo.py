"""The reference models shipped with invmap (``pretrained:NAME`` wherever a run directory is).

    invmap zoo                 # one line per entry: task, kind, size, training, test PSNR
    invmap zoo show NAME       # its card: how it was made and what it scores
"""

from __future__ import annotations

import argparse
import json

from .. import zoo

HELP = "list the pretrained reference models (invmap zoo), or show one's card (invmap zoo show NAME)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list", help="list (default) or show")
    p.add_argument("name", nargs="?", help="the entry to show")


def _psnr(card: dict, method: str) -> str:
    v = ((card.get("test") or {}).get("psnr") or {}).get(method)
    return f"{v:.2f}" if isinstance(v, (int, float)) else "n/a"


def row(card: dict) -> list[str]:
    """The `invmap zoo` line of an entry."""
    t = card.get("training") or {}
    return [card.get("name", "?"), card.get("task", {}).get("summary", "?"), card.get("kind", "?"),
            f"{card.get('parameters', 0):,}", f"{card.get('size_bytes', 0) / 2 ** 20:.2f} MiB",
            f"{t.get('minutes', float('nan')):.0f} min, {t.get('steps', '?')} steps",
            _psnr(card, "fbp"), _psnr(card, "tv"), _psnr(card, "model")]


def run(args: argparse.Namespace) -> int:
    if args.action == "show":
        if not args.name:
            raise ValueError("invmap zoo show NAME: give an entry's name (invmap zoo lists them)")
        zoo.verify(args.name)
        print(json.dumps(zoo.card(args.name), indent=2))
        return 0
    if args.name:
        raise ValueError(f"invmap zoo takes no name ({args.name!r}); to see one entry: invmap zoo show {args.name}")
    names = zoo.names()
    if not names:
        print("no zoo entries are installed")
        return 0
    header = ["name", "task", "kind", "parameters", "size", "training", "FBP dB", "TV dB", "entry dB"]
    cards = {n: zoo.card(n) for n in names}
    rows = [header] + [row(c) for c in cards.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    priors = [n for n, c in cards.items() if c.get("kind") == "denoiser"]
    maps = [n for n in names if n not in priors]
    if maps:
        print(f"use one as a run directory: pretrained:NAME (e.g. invmap reconstruct --model pretrained:{maps[0]} …)")
    if priors:
        print(f"the denoisers ({', '.join(priors)}) are the learned prior of --method pnp | diffpir | dps "
              f"(--param denoiser=pretrained:{priors[-1]})")
    return 0
