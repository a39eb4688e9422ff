"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A crash or an error mid-write leaves either the old file or the new one under the final
name, never half of one; the temporary file is removed. The new file gets the usual
permissions (``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[str], None]) -> Path:
    """Write `content` to `path` atomically; returns the path.

    `content` is bytes, text (UTF-8), or a function that writes the file at the temporary
    path it is given (e.g. ``lambda p: safetensors.torch.save_file(t, p)``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    try:
        if callable(content):
            os.close(fd)
            content(tmp)
        else:
            data = content.encode() if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


__all__ = ["atomic_write"]
