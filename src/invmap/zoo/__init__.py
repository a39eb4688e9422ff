"""Reference models shipped inside the package: ``pretrained:NAME`` wherever a run directory is.

Each entry is a directory ``invmap/zoo/NAME/`` holding what a trained run holds —
``model.safetensors`` + ``model.json`` (the weights, float16 storage where the test PSNR
moves < 0.05 dB; loaded into float32), ``config.yaml`` (the task and the training
settings), ``baselines.json`` (the classical baselines tuned for its task), ``metrics.csv``
(its test-set evaluation) — and ``card.json``: how it was made (config, command, commit,
CPU, minutes, steps, seeds, precision), its test PSNR beside FBP and tuned TV, the check a
test repeats (PSNR on a fixed small test set) and the SHA-256 of every file, verified
each time the entry is opened. Nothing is downloaded: the weights are installed with invmap.

- `names()`, `card(NAME)`: the entries and their cards (``invmap zoo``, ``invmap zoo show NAME``);
- `run_dir(target)`: ``pretrained:NAME`` → the verified entry directory (read-only use:
  ``reconstruct --model``, ``--ensemble``, ``compare``, ``model.denoiser``, ``training.init``);
  any other text → that path;
- `materialise(NAME, out)`: a copy of the entry as a run directory of its own, for the
  commands that write into a run (``evaluate``, ``stress``, ``report``).

Which entries are of a config's task, and the check a card records: `invmap.evaluation.zoo_task`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from .. import files
from ..atomic import atomic_dir
from ..files import read_json
from ..schemas import ZooCard, validated

#: how a zoo entry is named where a run directory is expected
PREFIX = "pretrained:"
#: the files of an entry besides its card (each one's SHA-256 is in the card)
FILES = ("model.safetensors", "model.json", "config.yaml", "baselines.json", "metrics.csv")
#: files an entry may hold besides (verified like the others when its card lists them; refused when it
#: does not): the trust calibration, so ``reconstruct --model pretrained:NAME`` needs no data beside it
OPTIONAL = ("trust_calibration.json",)
CARD = "card.json"
#: the most bytes a card may hold
MAX_CARD_BYTES = 1 << 20
#: all entries together stay below this (the wheel carries them)
MAX_TOTAL_BYTES = 25 << 20
#: where the entries live (tests point it elsewhere)
ROOT = Path(__file__).resolve().parent


def is_pretrained(target: object) -> bool:
    return isinstance(target, str) and target.startswith(PREFIX)


def names() -> list[str]:
    """The entries' names (directories of `ROOT` holding a card; not hidden ones, such as an entry
    being built), sorted."""
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / CARD).is_file())


def _entry(name: str) -> Path:
    if not name or "/" in name or name.startswith(".") or name not in names():
        have = ", ".join(names()) or "none installed"
        raise ValueError(f"no zoo entry '{name}' (entries: {have}; see `invmap zoo`)")
    return ROOT / name


def card(name: str) -> dict[str, Any]:
    """The card of entry `name`, checked against `invmap.schemas.ZooCard` (a one-line ValueError
    for an unknown name or a damaged card, naming the field)."""
    path = _entry(name) / CARD
    try:
        doc = read_json(path, "zoo card", limit=MAX_CARD_BYTES)
        validated(ZooCard, doc, path, "zoo card")
    except (OSError, ValueError) as e:
        raise ValueError(f"zoo entry '{name}': {str(e).splitlines()[0][:300]}; reinstall invmap") from None
    return doc


def sha256(path: Path) -> str:
    """The SHA-256 of an entry's file (`invmap.files.sha256`)."""
    return files.sha256(path, "zoo file")


def verify(name: str) -> Path:
    """The directory of entry `name` after checking every file against its card's SHA-256."""
    d, files = _entry(name), card(name)["files"]
    for f in (*FILES, *OPTIONAL):
        if f not in files:
            if f in OPTIONAL and not os.path.lexists(d / f):
                continue
            raise ValueError(f"zoo entry '{name}': its card has no SHA-256 for {f}; reinstall invmap")
        p = d / f
        if not p.is_file():
            raise FileNotFoundError(f"zoo entry '{name}': {f} is missing; reinstall invmap")
        if sha256(p) != files[f]:
            raise ValueError(f"zoo entry '{name}': {f} does not match the SHA-256 in its card (changed or damaged); "
                             "refusing to use it; reinstall invmap")
    return d


def run_dir(target: str | os.PathLike) -> Path:
    """``pretrained:NAME`` → the verified entry directory (to be read, never written); else `target` as a path."""
    if is_pretrained(target):
        return verify(str(target)[len(PREFIX):])
    return Path(target)


def materialise(name: str, out: str | os.PathLike) -> Path:
    """A run directory `out` holding a verified copy of entry `name` (its card included), for the
    commands that write into a run. An `out` that already holds that entry (same weights) is
    reused; any other existing `out` is refused (nothing is overwritten)."""
    src, dst = verify(name), Path(out)
    if dst.exists():
        mine = dst / CARD
        same = mine.is_file() and (dst / "model.safetensors").is_file() and \
            sha256(dst / "model.safetensors") == card(name)["files"]["model.safetensors"]
        if not same:
            raise FileExistsError(f"{dst} exists and is not a copy of pretrained:{name}; give another --out")
        return dst
    with atomic_dir(dst) as tmp:  # a kill leaves no half copy under `out`
        for f in (*FILES, *OPTIONAL, CARD):
            if f in FILES or f == CARD or (src / f).is_file():
                shutil.copyfile(src / f, tmp / f)
    return dst


def total_bytes() -> int:
    return sum(p.stat().st_size for n in names() for p in (ROOT / n).iterdir() if p.is_file())


__all__ = ["PREFIX", "FILES", "OPTIONAL", "CARD", "MAX_TOTAL_BYTES", "is_pretrained", "names", "card", "verify", "run_dir",
           "materialise", "sha256", "total_bytes"]
