"""Paths a run reads or writes stay inside its run directory.

A run directory is self-describing (config.yaml, model.json, ...), and those files name
other files. `inside(base, name)` turns such a name into a path and refuses one that
leaves `base` — an absolute path, ``..``, or a symbolic link pointing elsewhere — so a
stranger's ``model.json`` with ``"weights": "/etc/passwd"`` reads nothing outside its run.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath


def inside(base: str | os.PathLike, name: object, what: str = "path") -> Path:
    """``base / name``, checked to stay inside `base` (one-line ``ValueError`` otherwise)."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ValueError(f"{what} must be a file name inside {base}, got {name!r}")
    rel = PurePath(name)
    if rel.is_absolute() or ".." in rel.parts or rel.drive:
        raise ValueError(f"{what} {name!r} points outside {base}; only files inside the run directory are read")
    path = Path(base) / rel
    root = Path(base).resolve()
    if not path.resolve().is_relative_to(root):
        raise ValueError(f"{what} {name!r} is a link that leaves {base}; only files inside the run directory are read")
    return path


__all__ = ["inside"]
