"""``hdf5:<glob>`` — ground truth x read lazily from HDF5 files (h5py), e.g. LoDoPaB-CT.

Every file matching the glob (sorted by name) holds one dataset (``dataset``, default
``data``) of images ``[N, H, W]`` (or a single image ``[H, W]``). Building the source reads
only the files' shapes; image i is read from its file when it is asked for, so a data set
far larger than memory costs no more memory than one minibatch. Open files are kept per
process (DataLoader workers open their own).

Splits:

- by name, when every file's name says its split — ``train``, ``validation`` / ``val`` or
  ``test`` as a ``_``-separated word, as in LoDoPaB-CT's
  ``ground_truth_{train,validation,test}_NNN.hdf5`` (128 slices of 362 × 362 per file);
- otherwise by file, in consecutive blocks train | val | test (``splits``: fractions or
  counts, as for ``folder:``).

Values: x = clip((a − lo) / (hi − lo), 0, 1) with ``value_range=(lo, hi)``; without it the
stored values must already lie in [0, 1] (LoDoPaB-CT's ground truth does). Each image is
fitted to ``size × size`` by ``fit``: ``resize`` (centre square, anti-aliased) or ``crop``
(the centre ``size × size``).

A file that cannot be opened (not HDF5, truncated), lacks the dataset or holds the wrong
shape is a ``ValueError`` naming it, raised when the source is built; a slice that cannot
be read, or holds NaN or values outside [0, 1], is one when it is read.
"""

from __future__ import annotations

import bisect
import glob as globlib
import os
import re
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from .. import budget
from ..files import check_regular
from .io import _resize, centre_square, fit_items, split_counts
from .sources import SOURCES, ImageSource, split_code

#: words in a file name that name its split
SPLIT_WORDS = {"train": "train", "training": "train", "validation": "val", "val": "val", "test": "test"}


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise ValueError("hdf5 sources need the h5py package (pip install h5py)") from None
    return h5py


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def split_of(path: Path) -> str | None:
    """The split a file's name states (``…_train_000.hdf5`` → ``train``), or None."""
    words = re.split(r"[_\-.]", path.stem.lower())
    found = {SPLIT_WORDS[w] for w in words if w in SPLIT_WORDS}
    return found.pop() if len(found) == 1 else None


@SOURCES.register("hdf5")
class HDF5(ImageSource):
    """Images [N, H, W] from HDF5 files (e.g. LoDoPaB-CT), read lazily, split by file name or by file."""

    def __init__(self, size: int, path: str, split: str = "train", seed: int = 0, count: int | None = None,
                 dataset: str = "data", fit: Literal["resize", "crop"] = "resize",
                 value_range: tuple[float, float] | None = None,
                 splits: tuple[int, int, int] | tuple[float, float, float] = (0.8, 0.1, 0.1)):
        super().__init__(size, split, seed)
        if value_range is not None and not value_range[1] > value_range[0]:
            raise ValueError(f"hdf5: value_range must be (low, high) with low < high, got {tuple(value_range)}")
        files = sorted(Path(p) for p in globlib.glob(os.path.expanduser(path)) if Path(p).is_file())
        if not files:
            raise FileNotFoundError(f"hdf5: no files match {path}")
        named = [split_of(f) for f in files]
        if all(named):
            mine = [f for f, s in zip(files, named) if s == split]
        else:
            counts = split_counts(len(files), tuple(splits))
            start = (0, counts[0], counts[0] + counts[1])[split_code(split)]
            mine = files[start:start + counts[split_code(split)]]
        if not mine:
            raise ValueError(f"hdf5: no files of the {split} split among the {len(files)} matching {path}")
        self.dataset, self.fit = dataset, fit
        self.value_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))
        self._files = mine
        self._sizes = [self._check(f) for f in mine]
        self._ends = list(np.cumsum(self._sizes))
        total = self._ends[-1]
        self._n = total if count is None else min(int(count), total)
        self._handles: dict[int, object] = {}
        self._pid = os.getpid()
        self._params = {"path": str(path), "dataset": dataset, "fit": fit,
                        "value_range": None if self.value_range is None else list(self.value_range),
                        "splits": list(splits)}
        self._stats = {"files": [f.name for f in mine], "images": int(total)}

    # ----------------------------------------------------------------- files
    def _check(self, f: Path) -> int:
        """Open `f` once: the dataset must exist and hold images [N, H, W] (or [H, W]) of numbers."""
        h5py = _h5py()
        check_regular(f, "hdf5 file")  # a FIFO or a device under a matching name: refused unopened
        try:
            with h5py.File(f, "r") as h:
                if self.dataset in h and isinstance(h[self.dataset], h5py.Group):
                    inside = ", ".join(sorted(h[self.dataset].keys())[:5]) or "nothing"
                    raise ValueError(f"hdf5 file {f}: '{self.dataset}' is a group (holding: {inside}), not a "
                                     f"dataset of images; set data.params.dataset to the path of one, e.g. "
                                     f"'{self.dataset}/NAME'")
                if self.dataset not in h or not isinstance(h[self.dataset], h5py.Dataset):
                    held = ", ".join(sorted(h.keys())) or "nothing"
                    raise ValueError(f"hdf5 file {f} has no dataset '{self.dataset}' (it holds: {held}); "
                                     f"set data.params.dataset")
                d = h[self.dataset]
                shape, kind, dtype = tuple(d.shape), d.dtype.kind, str(d.dtype)
        except OSError as e:
            raise ValueError(f"hdf5 file {f} cannot be read ({_first_line(e)}); is it truncated or not HDF5?") from None
        if len(shape) in (2, 3) and kind in "uif" and min(shape) == 0:
            raise ValueError(f"hdf5 file {f}: dataset '{self.dataset}' is {list(shape)}: it holds no images")
        if len(shape) not in (2, 3) or kind not in "uif":
            raise ValueError(f"hdf5 file {f}: dataset '{self.dataset}' is {list(shape)} of {dtype}, "
                             "expected images [N, H, W] of numbers")
        h, w = shape[-2:]
        # a declared shape costs nothing to write (chunks never stored); reading one image would
        budget.check_pixels(h * w, f"hdf5 file {f}: dataset '{self.dataset}' of images {h}×{w}, each image")
        need = self.size if self.fit == "crop" else 1
        if min(h, w) < need:
            raise ValueError(f"hdf5 file {f}: images are {h}×{w}, smaller than the {self.size}×{self.size} crop")
        return shape[0] if len(shape) == 3 else 1

    def _open(self, k: int):
        if os.getpid() != self._pid:  # a forked DataLoader worker: open its own handles
            self._handles, self._pid = {}, os.getpid()
        if k not in self._handles:
            self._handles[k] = _h5py().File(self._files[k], "r")
        return self._handles[k][self.dataset]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": {}}

    def _read(self, i: int) -> np.ndarray:
        """Image i as stored, mapped to [0, 1] (float32)."""
        k = bisect.bisect_right(self._ends, i)
        j = i - (self._ends[k - 1] if k else 0)
        f = self._files[k]
        try:
            d = self._open(k)
            a = np.asarray(d[j] if d.ndim == 3 else d[()], dtype=np.float32)
        except (OSError, KeyError) as e:
            raise ValueError(f"hdf5 file {f}: cannot read image {j} ({_first_line(e)})") from None
        if not np.isfinite(a).all():
            raise ValueError(f"hdf5 file {f}: image {j} holds NaN or Inf values")
        if self.value_range is not None:
            lo, hi = self.value_range
            return np.clip((a - lo) / (hi - lo), 0.0, 1.0, out=a)
        if a.min() < -1e-6 or a.max() > 1 + 1e-6:
            raise ValueError(f"hdf5 file {f}: image {j} has values in [{a.min():.4g}, {a.max():.4g}], outside [0, 1]; "
                             "set data.params.value_range: [low, high]")
        return np.clip(a, 0.0, 1.0, out=a)

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return self._n

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        items = [fit_items(self._read(self._check_index(i)), self.size, self.fit, name=str(i))[0] for i in indices]
        return torch.stack(items) if items else torch.zeros(0, 1, self.size, self.size)

    def fine(self, indices: Sequence[int], factor: int = 2) -> torch.Tensor:
        """Finer ground truth: with ``fit='resize'`` the stored image is resized to factor·size when it
        has that many pixels (real detail); otherwise bicubic upsampling."""
        n = self.size * int(factor)
        if self.fit != "resize" or factor == 1:
            return super().fine(indices, factor)
        out = []
        for i in indices:
            sq = centre_square(self._read(self._check_index(i)))
            if sq.shape[0] >= n:
                out.append(_resize(torch.from_numpy(sq).float(), n)[None].clamp(0, 1))
            else:
                out.append(super().fine([i], factor)[0])
        return torch.stack(out) if out else torch.zeros(0, 1, n, n)


__all__ = ["HDF5", "split_of"]
