"""Measurements without ground truth: a folder of ``.npy`` files, one measurement y each.

``data.measurements: FOLDER`` trains from what a scanner gave (`invmap.selfsup`): K and the noise
model come from the config, y from the files — sorted by name, the last ``data.val`` of them
validate and the others (at most ``data.train``) train. There is no x, so such a run learns from
y alone (``training.supervision`` mc, ei, sure or split); a test set with x (``data.source``)
stays possible for measuring.

Each file holds one array of K's measurement shape (``out_shape``, or ``[1, *out_shape]``): real
numbers for a real K, complex ones for a complex K (MRI k-space). Headers are checked before any
data is read, then the values (finite); the first bad file is named in a one-line ``ValueError``.
Files are read through `invmap.files` (regular files only, bounded) and no pickles are loaded.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import budget
from ..byteorder import native_order
from ..files import check_regular, read_bytes

SUFFIX = ".npy"


def files_of(folder: str | Path) -> list[Path]:
    """The ``.npy`` files of `folder`, sorted by name (a one-line error when there are none)."""
    d = Path(folder).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"data.measurements: folder not found: {d}")
    found = sorted(p for p in d.iterdir() if p.suffix.lower() == SUFFIX)
    if not found:
        raise ValueError(f"data.measurements: {d} holds no {SUFFIX} measurements")
    return found


def _header(p: Path) -> tuple[tuple[int, ...], np.dtype]:
    check_regular(p, "measurement")
    try:
        with p.open("rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
    except Exception as e:  # a file that is not .npy raises many types
        raise ValueError(f"measurement file {p}: not a .npy array ({type(e).__name__})") from None
    return tuple(int(s) for s in shape), dtype


def split_files(folder: str | Path, split: str, train: int, val: int) -> list[Path]:
    """The files of `split` (``train`` or ``val``): the last `val` validate, at most `train` of the
    others train."""
    found = files_of(folder)
    if len(found) <= val:
        raise ValueError(f"data.measurements: {folder} holds {len(found)} measurement(s); data.val = {val} of them "
                         f"validate, so at least {val + 1} are needed")
    return found[len(found) - val:] if split == "val" else found[:len(found) - val][:train]


def read_measurements(paths: Sequence[Path], out_shape: Sequence[int], complex_y: bool) -> torch.Tensor:
    """y ``[N, 1, *out_shape]`` (float32, or complex64 for a complex K) from `paths`; every header is
    checked (shape, kind) before any data is read, then each file's values (finite)."""
    want = tuple(int(s) for s in out_shape)
    kinds = "c" if complex_y else "iuf"
    for p in paths:
        shape, dtype = _header(p)
        if shape not in (want, (1, *want)):
            raise ValueError(f"measurement file {p}: shape {list(shape)}, but K measures {list(want)} (the first "
                             f"file that does not fit K's output)")
        if dtype.kind not in kinds or dtype.hasobject:
            raise ValueError(f"measurement file {p}: dtype {dtype}; K measures {'complex' if complex_y else 'real'} "
                             "numbers")
    itemsize = 8 if complex_y else 4
    budget.check(len(paths) * int(np.prod(want)) * itemsize, f"{len(paths)} measurements of shape {list(want)}")
    out = torch.empty((len(paths), 1, *want), dtype=torch.complex64 if complex_y else torch.float32)
    for k, p in enumerate(paths):
        a = native_order(np.load(io.BytesIO(read_bytes(p, "measurement")), allow_pickle=False))
        t = torch.from_numpy(np.ascontiguousarray(a.reshape(want)))
        t = t.to(torch.complex64) if complex_y else t.to(torch.float32)
        if not bool(torch.isfinite(torch.view_as_real(t) if complex_y else t).all()):
            raise ValueError(f"measurement file {p}: holds NaN or Inf values (the first such file)")
        out[k, 0] = t
    return out


__all__ = ["files_of", "split_files", "read_measurements"]
