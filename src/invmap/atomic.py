"""Atomic file writes: a temporary file beside the target, fsync, then ``os.replace``.

A crash, a kill -9 or an error mid-write leaves either the old file or the new one under
the final name, never half of one. Each write works in a temporary directory of its own in
the target's folder, named ``.invmap-tmp-<name>-<random>`` and holding a marker file
(`MARKER`, content `MARKER_TEXT`) beside the file being written (named as the target, so a
writer that goes by the suffix, e.g. ``np.save``, sees the right one). The data is flushed to
disk (``fsync``) before the rename and the folder's entry after it, so a power cut cannot
leave an empty file either. An error removes the temporary directory; a kill cannot, so
`clean_orphans` removes such leftovers when a run directory is opened again — and only
them: a directory is removed when invmap's marker is inside it, never because of its name
alone, so a user's ``.album.tmp/`` or ``.notes.20261207.tmp.txt`` is never touched. The new
file gets the usual permissions (``0o666`` minus the umask).

This is the one writer for every file a run writes (models, checkpoints, logs, metrics,
stress tables, figures, reports).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

#: every temporary name invmap makes starts with this
TEMP_PREFIX = ".invmap-tmp-"
#: the file inside each temporary directory that says invmap made it
MARKER = ".invmap-temporary"
MARKER_TEXT = b"invmap: a temporary directory of an atomic write; removed when left by a killed process\n"
#: the longest part of the target's name kept in a temporary name (file names are at most 255 bytes)
_NAME_CHARS = 120


def _fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    except OSError:
        if not directory:  # some file systems cannot fsync a folder; the file itself must sync
            raise
    finally:
        os.close(fd)


def _temp_dir(parent: Path, name: str) -> Path:
    """A new marked temporary directory in `parent` for building `name`."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name[:_NAME_CHARS]}-", dir=parent))
    fd = os.open(tmp / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, MARKER_TEXT)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o777 & ~_umask())  # a directory's usual permissions, not mkdtemp's 0o700
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, content: bytes | str | Callable[[str], None]) -> Path:
    """Write `content` to `path` atomically and durably; returns the path.

    `content` is bytes, text (UTF-8), or a function that writes the file at the temporary
    path it is given (e.g. ``lambda p: safetensors.torch.save_file(t, p)``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = _temp_dir(path.parent, path.name)
    tmp = folder / path.name
    try:
        if callable(content):
            content(str(tmp))
            _fsync_path(tmp)
        else:
            data = content.encode() if isinstance(content, str) else content
            with open(tmp, "xb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
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
    """Build a directory inside a marked temporary directory beside `path` and rename it to
    `path` when the block ends without error; `path` must be absent or an empty directory.

    A kill -9 inside the block leaves `path` as it was and the temporary directory, which
    `clean_orphans` removes later; an error removes it at once.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = _temp_dir(target.parent, target.name)
    try:
        building = folder / target.name
        building.mkdir()
        yield building
        os.replace(building, target)  # POSIX: replaces an empty directory, never a non-empty one
        _fsync_path(target.parent, directory=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def is_temp(name: str) -> bool:
    """Whether `name` is the name of one of invmap's temporary directories (its marker decides
    whether `clean_orphans` may remove it)."""
    return name.startswith(TEMP_PREFIX)


def _is_ours(p: Path) -> bool:
    """A real directory named as invmap's temporary ones, with invmap's marker inside (a regular
    file, not a link, holding exactly `MARKER_TEXT`)."""
    try:
        if not stat.S_ISDIR(os.lstat(p).st_mode):
            return False
        m = os.lstat(p / MARKER)
        if not stat.S_ISREG(m.st_mode) or m.st_size != len(MARKER_TEXT):
            return False
        with open(p / MARKER, "rb") as f:
            return f.read(len(MARKER_TEXT) + 1) == MARKER_TEXT
    except OSError:
        return False


def _newest(p: Path) -> float:
    """The latest modification time of the temporary directory `p` and what it holds directly."""
    times = [os.lstat(p).st_mtime]
    with contextlib.suppress(OSError):
        times += [os.lstat(q).st_mtime for q in p.iterdir()]
    return max(times)


def clean_orphans(folder: str | os.PathLike, min_age_s: float = 60.0) -> list[Path]:
    """Remove the temporary directories of `atomic_write` / `atomic_dir` that a killed process
    left in `folder`: those with invmap's marker inside (`MARKER`), nothing else.

    Only leftovers untouched for `min_age_s` seconds are removed, so a write in progress in
    another process (e.g. ``invmap stress`` beside ``invmap evaluate``) is left alone.
    A `folder` that is a symbolic link is not entered. Returns the removed paths.
    """
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir():
        return []
    now, removed = time.time(), []
    for p in sorted(folder.iterdir()):
        if not is_temp(p.name) or not _is_ours(p):
            continue
        try:
            if now - _newest(p) < min_age_s:
                continue
            shutil.rmtree(p)
        except OSError:  # a read-only folder: the leftover is harmless, reading goes on
            continue
        removed.append(p)
    return removed


__all__ = ["atomic_write", "atomic_write_csv", "atomic_dir", "clean_orphans", "is_temp", "TEMP_PREFIX", "MARKER"]
