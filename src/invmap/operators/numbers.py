"""Numbers that depend on K alone, kept on disk across processes (`LinearOperator.remembered`).

‖K‖ = sqrt(λ_max(KᵀK)) and PDHG's ‖[K; s∇]‖ are Lanczos iterations over K and Kᵀ
(`invmap.operators.base.top_eigenvalue`): for a 60-view CT at 128² about 20 and 140 products
KᵀK v, at 512² over 300 — tens of seconds, the same answer every time for the same K. An
operator whose system matrix is cached on disk (`invmap.operators._geometry`) names a file
beside it (`LinearOperator.numbers_file`), and the numbers computed for it are kept there as
JSON ``{what: value}``, floats written by ``repr`` (read back bit for bit), so the next process
reads them instead of iterating again: the same steps, so the same TV, as if recomputed.

The file is a cache: one that cannot be read, is not such a document or holds a value that is
not a finite number ≥ 0 is ignored (and replaced by the next write); a write that fails (a
read-only home) is skipped. Two processes writing at once each write whole files (`atomic_write`):
the loser's number is computed once more later.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from ..atomic import atomic_write
from ..files import read_json

#: the most bytes a numbers file may hold (a few dozen entries)
MAX_BYTES = 1 << 16
#: the most entries kept per file (the newest)
MAX_ENTRIES = 64


def name_of(what: tuple) -> str:
    """The key of a number in its file: ``what`` as canonical JSON (tuples as lists)."""
    return json.dumps(list(what), default=str, separators=(",", ":"))


def read(path: Path) -> dict[str, float]:
    """The numbers stored at `path`; {} when there is none or it is not a numbers file."""
    try:
        doc = read_json(path, "numbers cache", limit=MAX_BYTES)
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: float(v) for k, v in doc.items() if isinstance(k, str) and valid(v)}


def valid(v: Any) -> bool:
    """A stored number invmap could have written: finite and ≥ 0 (norms, step sizes)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def remembered(path: Path, what: tuple, compute: Callable[[], float]) -> float:
    """The number `what` from `path`, or `compute()`d and added to it."""
    name = name_of(what)
    have = read(path)
    if name in have:
        return have[name]
    value = compute()
    if valid(value):
        have.pop(name, None)
        have[name] = float(value)
        kept = dict(list(have.items())[-MAX_ENTRIES:])
        try:
            atomic_write(path, json.dumps(kept, indent=0) + "\n")
        except OSError:  # a read-only or full disk: recomputed next time
            pass
    return value


__all__ = ["remembered", "read", "name_of", "MAX_BYTES"]
