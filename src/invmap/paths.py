"""Paths a run reads or writes stay inside its run directory.

A run directory is self-describing (config.yaml, model.json, ...), and those files name
other files. `inside(base, name)` turns such a name into a path and refuses one that
leaves `base` — an absolute path, ``..``, or a symbolic link pointing elsewhere — so a
stranger's ``model.json`` with ``"weights": "/etc/passwd"`` reads nothing outside its run,
and a run's ``figures`` folder that is a link to elsewhere is never written through (every
writer into a run asks `inside` for the folders it writes, before any work).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Mapping


def inside(base: str | os.PathLike, name: object, what: str = "path") -> Path:
    """``base / name``, checked to stay inside `base` (one-line ``ValueError`` otherwise)."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ValueError(f"{what} must be a file name inside {base}, got {name!r}")
    rel = PurePath(name)
    if rel.is_absolute() or ".." in rel.parts or rel.drive:
        raise ValueError(f"{what} {name!r} points outside {base}; only files inside the run directory are read or "
                         "written")
    path = Path(base) / rel
    root = Path(base).resolve()
    if not path.resolve().is_relative_to(root):
        raise ValueError(f"{what} {name!r} is a link that leaves {base}; only files inside the run directory are read "
                         "or written")
    return path


def distinct_outputs(outputs: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse (one-line ``ValueError``) two outputs of one command that are the same file once
    resolved (``--residual-map same.png --output same.png``, a link to the other): checked before
    anything is written, so no output can land under another's name. `outputs`: what → path (None: unused)."""
    seen: dict[str, str] = {}
    for what, path in outputs.items():
        if path is None:
            continue
        key = os.path.normcase(os.path.realpath(path))
        if key in seen:
            raise ValueError(f"{what} and {seen[key]} are the same file ({path}); give each output its own name")
        seen[key] = what


__all__ = ["inside", "distinct_outputs"]
