"""Measurements without ground truth: a folder of ``.npy`` files (one measurement y each), or
``hdf5:<glob>`` files of observations (a dataset ``data`` of ``[N, *out_shape]``, as LoDoPaB-CT's
``observation_*.hdf5``).

``data.measurements: FOLDER`` trains from what a scanner gave (`invmap.selfsup`): K and the noise
model come from the config, y from the files — sorted by name, the last ``data.val`` of them
validate and the others (at most ``data.train``) train. There is no x, so such a run learns from
y alone (``training.supervision`` mc, ei, sure or split); a test set with x (``data.source``)
stays possible for measuring.

Each ``.npy`` file holds one array of K's measurement shape (``out_shape``, or ``[1, *out_shape]``):
real numbers for a real K, complex ones for a complex K (MRI k-space). HDF5 files (sorted by name)
give their frames in order; only the frames a run uses are read. Headers are checked before any
data is read, then the values (finite); the first bad file is named in a one-line ``ValueError``.
``.npy`` files are read through `invmap.files` (regular files only, bounded), no pickles loaded.
"""

from __future__ import annotations

import glob as globlib
import io
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import budget
from ..byteorder import native_order
from ..files import check_regular, read_bytes
from .hdf5 import _first_line, _h5py

SUFFIX = ".npy"
HDF5 = "hdf5:"
#: the dataset of observations in each HDF5 file (LoDoPaB-CT's name)
HDF5_DATASET = "data"
#: the config keys of measurements without x: training and validation, and a test set
KEY, TEST_KEY = "data.measurements", "data.test_measurements"


def files_of(folder: str | Path, key: str = KEY) -> list[Path]:
    """The ``.npy`` files of `folder`, sorted by name (a one-line error naming the config `key` when
    there are none)."""
    d = Path(folder).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"{key}: folder not found: {d}")
    found = sorted(p for p in d.iterdir() if p.suffix.lower() == SUFFIX)
    if not found:
        raise ValueError(f"{key}: {d} holds no {SUFFIX} measurements")
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


def split_files(folder: str | Path, split: str, train: int, val: int, key: str = KEY) -> list[Path]:
    """The files of `split` (``train`` or ``val``): the last `val` validate, at most `train` of the
    others train."""
    found = files_of(folder, key)
    if len(found) <= val:
        raise ValueError(f"{key}: {folder} holds {len(found)} measurement(s); data.val = {val} of them "
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


def _hdf5_files(spec: str, key: str = KEY) -> list[Path]:
    pattern = str(Path(spec[len(HDF5):]).expanduser())
    found = sorted(Path(f) for f in globlib.glob(pattern))
    if not found:
        raise ValueError(f"{key}: no HDF5 file matches {pattern}")
    return found


def _hdf5_header(f: Path, want: tuple[int, ...], complex_y: bool) -> int:
    """The number of frames of `f`'s dataset, after checking it holds [N, *want] (or one [*want])."""
    h5py = _h5py()
    check_regular(f, "hdf5 file")
    try:
        with h5py.File(f, "r") as h:
            d = h.get(HDF5_DATASET)
            if not isinstance(d, h5py.Dataset):
                raise ValueError(f"measurement file {f}: no dataset '{HDF5_DATASET}' of observations")
            shape, kind, dtype = tuple(int(s) for s in d.shape), d.dtype.kind, d.dtype
    except OSError as e:
        raise ValueError(f"measurement file {f}: cannot be read ({_first_line(e)}); is it truncated or not HDF5?") from None
    if shape not in (want,) and shape[1:] != want:
        raise ValueError(f"measurement file {f}: dataset '{HDF5_DATASET}' is {list(shape)}, but K measures "
                         f"{list(want)} (the first file that does not fit K's output)")
    if kind not in ("c" if complex_y else "iuf"):
        raise ValueError(f"measurement file {f}: dtype {dtype}; K measures {'complex' if complex_y else 'real'} numbers")
    return 1 if shape == want else shape[0]


def _hdf5_frames(spec: str, split: str, train: int, val: int, want: tuple[int, ...], complex_y: bool,
                 key: str = KEY) -> torch.Tensor:

    files = _hdf5_files(spec, key)
    counts = [_hdf5_header(f, want, complex_y) for f in files]
    total = sum(counts)
    if total <= val:
        raise ValueError(f"{key}: {spec} holds {total} observation(s); data.val = {val} of them validate, "
                         f"so at least {val + 1} are needed")
    lo, hi = (total - val, total) if split == "val" else (0, min(train, total - val))
    itemsize = 8 if complex_y else 4
    budget.check((hi - lo) * int(np.prod(want)) * itemsize, f"{hi - lo} observations of shape {list(want)}")
    out = torch.empty((hi - lo, 1, *want), dtype=torch.complex64 if complex_y else torch.float32)
    start, h5py = 0, _h5py()
    for f, n in zip(files, counts):
        a, b = max(lo, start), min(hi, start + n)
        if a < b:
            try:
                with h5py.File(f, "r") as h:
                    d = h[HDF5_DATASET]
                    frames = np.asarray(d[()] if n == 1 and tuple(d.shape) == want else d[a - start:b - start])
            except OSError as e:
                raise ValueError(f"measurement file {f}: cannot read its frames ({_first_line(e)})") from None
            t = torch.from_numpy(np.ascontiguousarray(native_order(frames).reshape(b - a, *want)))
            t = t.to(torch.complex64) if complex_y else t.to(torch.float32)
            if not bool(torch.isfinite(torch.view_as_real(t) if complex_y else t).all()):
                raise ValueError(f"measurement file {f}: holds NaN or Inf values (the first such file)")
            out[a - lo:b - lo, 0] = t
        start += n
    return out


def load_split(spec: str, split: str, train: int, val: int, out_shape: Sequence[int], complex_y: bool,
               key: str = KEY) -> torch.Tensor:
    """y ``[N, 1, *out_shape]`` of `split` (``train`` or ``val``) from ``data.measurements`` `spec`: a folder
    of .npy files or ``hdf5:<glob>`` (the last `val` measurements validate, at most `train` others train).
    `key`: the config key errors name."""
    want = tuple(int(s) for s in out_shape)
    if spec.startswith(HDF5):
        return _hdf5_frames(spec, split, train, val, want, complex_y, key)
    return read_measurements(split_files(spec, split, train, val, key), want, complex_y)


def load_test(spec: str, n: int, out_shape: Sequence[int], complex_y: bool) -> torch.Tensor:
    """The first `n` measurements y ``[N, 1, *out_shape]`` of ``data.test_measurements`` `spec` (a test set
    without x, `invmap.evaluation.without_x`), checked like the training ones."""
    return load_split(spec, "train", n, 0, out_shape, complex_y, TEST_KEY)


__all__ = ["files_of", "split_files", "read_measurements", "load_split", "load_test"]
