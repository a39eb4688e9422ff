"""Atomic file writes: a temporary file in the target's folder, fsync, then ``os.replace``.

A crash, a kill -9 or an error mid-write leaves either the old file or the new one under
the final name, never half of one. The temporary file has a unique name
(``.<name>.<random>.tmp<suffix>``), its data is flushed to disk (``fsync``) before the
rename and the folder's entry after it, so a power cut cannot leave an empty file either.
An error removes the temporary file; a kill cannot, so `clean_orphans` removes such
leftovers when a run directory is opened again. The new file gets the usual permissions
(``0o666`` minus the umask), not ``mkstemp``'s private ``0o600``.

This is the one writer for every file a run writes (models, checkpoints, logs, metrics,
stress tables, figures, reports).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

#: the temporary names `atomic_write` uses: ``.<name>.<8 random chars>.tmp<suffix>``
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[^.]*)?$")


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems cannot fsync a folder; the file itself must sync
            raise
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[str], None]) -> Path:
    """Write `content` to `path` atomically and durably; returns the path.

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
            _fsync_path(tmp)
        else:
            data = content.encode() if isinstance(content, str) else content
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write a CSV file (a header of `columns`, one line per row; missing keys empty) atomically."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return atomic_write(path, buf.getvalue())


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name beside `path` (``.<name>.<random>.tmp``) and rename
    it to `path` when the block ends without error; `path` must be absent or an empty directory.

    A kill -9 inside the block leaves `path` as it was and the temporary directory, which
    `clean_orphans` removes later; an error removes it at once.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        mode = _umask_mode()
        os.chmod(tmp, mode | (mode & 0o444) >> 2)  # a directory's usual permissions (x where r), not mkdtemp's 0o700
        yield tmp
        os.replace(tmp, target)  # POSIX: replaces an empty directory, never a non-empty one
        _fsync_path(target.parent, directory=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_temp(name: str) -> bool:
    """Whether `name` is a temporary file name of `atomic_write`."""
    return bool(_TEMP.match(name))


def clean_orphans(folder: str | os.PathLike, min_age_s: float = 60.0) -> list[Path]:
    """Remove temporary files of `atomic_write` (and directories of `atomic_dir`) that a killed
    process left in `folder`.

    Only files older than `min_age_s` seconds are removed, so a write in progress in
    another process (e.g. ``invmap stress`` beside ``invmap evaluate``) is left alone.
    Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    now, removed = time.time(), []
    for p in folder.iterdir():
        if is_temp(p.name) and not p.is_symlink() and now - p.stat().st_mtime >= min_age_s:
            try:
                if p.is_dir():  # a directory `atomic_dir` was building
                    shutil.rmtree(p)
                else:
                    p.unlink()
            except OSError:  # a read-only folder: the leftover is harmless, reading goes on
                continue
            removed.append(p)
    return removed


__all__ = ["atomic_write", "atomic_write_csv", "atomic_dir", "clean_orphans", "is_temp"]
