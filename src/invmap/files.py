"""Reading the files invmap is given: regular files only, bounded by the bytes actually read.

A file a command reads — a config, a run's ``stress.json`` / ``baselines.json`` /
``metrics.csv`` / ``model.json``, a zoo card — may be anything a user or a stranger left
under that name: a FIFO (opening it for reading blocks until a writer comes), a device
(``/dev/zero`` never ends, and ``stat`` reports its size as 0), a directory, or a link out of
the run. `read_bytes` is the one reader for all of them:

- the path is resolved (links followed); with `within` it must stay inside that directory
  (`invmap.paths.inside`'s rule), so a run's file cannot be a link to elsewhere;
- it must be a regular file: checked with ``os.stat`` before opening, then again on the
  open descriptor (opened with ``O_NONBLOCK``, so a FIFO swapped in between does not block);
- at most ``limit + 1`` bytes are read, and more than `limit` is a one-line error — the
  bound holds for what is read, not for what ``stat`` claims.

`read_text` and `read_json` decode on top of it (a one-line ``ValueError`` naming the file
for bad UTF-8, bad JSON or JSON nested too deeply); `check_regular` is the same check for a
file handed whole to a library (safetensors, HDF5, an image decoder).
"""

from __future__ import annotations

import csv
import io
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

#: the most bytes a file invmap reads whole may hold (a run's tables and documents are kilobytes;
#: parsed, a table or JSON document takes several times its size in memory)
MAX_BYTES = 16 << 20
#: the most rows a table invmap reads may hold (a stress study writes a few thousand)
MAX_ROWS = 100_000

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"


def check_regular(path: str | os.PathLike, what: str = "file", within: str | os.PathLike | None = None) -> Path:
    """`path`, checked to be (a link to) an existing regular file — inside `within` when given —
    without opening it. One-line ``FileNotFoundError`` / ``ValueError`` otherwise."""
    p = Path(path)
    if within is not None:
        root = Path(within).resolve()
        if not p.resolve().is_relative_to(root):
            raise ValueError(f"{what} {p} is a link that leaves {within}; only files inside the run directory are read")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {p}") from None
    except OSError as e:  # a loop of links, a name too long, a folder without permission
        raise ValueError(f"{what} {p}: cannot be read ({e.strerror or type(e).__name__})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what} {p} is {_kind(st.st_mode)}, not a regular file")
    return p


def read_bytes(path: str | os.PathLike, what: str = "file", limit: int = MAX_BYTES,
               within: str | os.PathLike | None = None) -> bytes:
    """The bytes of the regular file `path` (see the module docstring); more than `limit` bytes
    is a one-line ``ValueError``."""
    p = check_regular(path, what, within)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ValueError(f"{what} {p}: cannot be read ({e.strerror or type(e).__name__})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the check and the open
            raise ValueError(f"{what} {p} is {_kind(st.st_mode)}, not a regular file")
        chunks, n = [], 0
        while n <= limit:
            block = os.read(fd, min(1 << 20, limit + 1 - n))
            if not block:
                break
            chunks.append(block)
            n += len(block)
    except BlockingIOError:
        raise ValueError(f"{what} {p}: not a regular file (reading would block)") from None
    finally:
        os.close(fd)
    if n > limit:
        raise ValueError(f"{what} {p}: larger than {_size(limit)}; not a file invmap wrote or reads")
    return b"".join(chunks)


def read_text(path: str | os.PathLike, what: str = "file", limit: int = MAX_BYTES,
              within: str | os.PathLike | None = None) -> str:
    """`read_bytes` decoded as UTF-8 (a one-line ``ValueError`` for bytes that are not)."""
    data = read_bytes(path, what, limit, within)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {path}: not UTF-8 text (byte {e.start})") from None


def read_json(path: str | os.PathLike, what: str = "file", limit: int = MAX_BYTES,
              within: str | os.PathLike | None = None) -> Any:
    """`read_text` parsed as JSON (a one-line ``ValueError`` for invalid or too deeply nested JSON)."""
    text = read_text(path, what, limit, within)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise ValueError(f"{what} {path}: JSON nested too deeply; not a file invmap wrote") from None


def read_csv(path: str | os.PathLike, what: str = "table", limit: int = MAX_BYTES, within: str | os.PathLike | None = None,
             max_rows: int = MAX_ROWS) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows as dicts of strings) of a CSV file read by `read_text`; more than `max_rows`
    rows, or a malformed file, is a one-line ``ValueError``."""
    reader = csv.DictReader(io.StringIO(read_text(path, what, limit, within), newline=""))
    try:
        header = list(reader.fieldnames or [])
        rows = []
        for row in reader:
            if len(rows) == max_rows:
                raise ValueError(f"{what} {path}: more than {max_rows} rows; not a table invmap wrote")
            rows.append(row)
    except csv.Error as e:
        raise ValueError(f"{what} {path}: not a CSV table ({e})") from None
    return header, rows


def sha256(path: str | os.PathLike, what: str = "file", within: str | os.PathLike | None = None) -> str:
    """The SHA-256 of the regular file `path` (`check_regular`), read in blocks of 1 MiB."""
    h = hashlib.sha256()
    with check_regular(path, what, within).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["MAX_BYTES", "MAX_ROWS", "check_regular", "read_bytes", "read_text", "read_json", "read_csv", "sha256"]
