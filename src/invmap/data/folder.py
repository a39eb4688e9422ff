"""``folder:<path>`` — the user's own images as ground truth x.

Files (PNG, JPEG, TIFF 8/16-bit, ``.npy``, ``.npz``; RGB/RGBA → gray) are taken in sorted
order of their path relative to the folder and split **by file** into consecutive blocks
train | val | test (``splits``: fractions or counts; ``shuffle=True`` shuffles the files
with `seed` first). Consecutive blocks keep neighbouring slices of one scan in one split.

Intensities are mapped to [0, 1] by x = clip((a − lo)/(hi − lo), 0, 1) with

- ``normalise="dataset"``: lo, hi = min, max over every readable file of the folder (all
  splits, so the three splits share one scale); recorded in the source's ``spec()["stats"]``;
- ``normalise="image"``: lo, hi = min, max of each image;
- ``normalise="dtype"``: lo = 0, hi = the integer type's full scale (255, 65535); float
  files must already lie in [0, 1];
- ``value_range=(lo, hi)``: a fixed window (e.g. a CT Hounsfield window), overriding `normalise`.

Then each image is fitted to ``size × size`` (``fit``: resize | crop | patches, see
`invmap.data.io.fit_items`). A file that cannot be read, holds NaN/Inf, or is smaller than
the crop raises a ``ValueError`` naming it; with ``skip_bad=True`` it is skipped with a
warning instead (never silently), and the skipped files are recorded.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .io import EXTENSIONS, centre_square, dtype_max, fit_items, read_image, split_counts
from .sources import IMAGE_STREAM, SOURCES, ImageSource, mix_seed, split_code


#: finer renderings of files kept in memory (re-read and resized otherwise): a small folder trained
#: for many epochs, or with zoomed crops (`invmap.data.augment`), decodes each file once per grid
FINE_CACHE_ITEMS = 256


def list_images(path: Path, recursive: bool = False) -> list[Path]:
    it = path.rglob("*") if recursive else path.iterdir()
    return sorted((p for p in it if p.is_file() and p.suffix.lower() in EXTENSIONS),
                  key=lambda p: p.relative_to(path).as_posix())


def _split_files(root: Path, files: list[Path], split: str, splits: Sequence[float], shuffle: bool,
                 seed: int) -> list[Path]:
    """The files of `split` (train, val, test: consecutive runs of the sorted, or with `shuffle`
    seeded-shuffled, list in the proportions or counts `splits`); an empty split is an error."""
    if shuffle:
        order = np.random.Generator(np.random.PCG64(mix_seed(seed, IMAGE_STREAM, 7))).permutation(len(files))
        files = [files[k] for k in order]
    counts = split_counts(len(files), tuple(splits))
    start = (0, counts[0], counts[0] + counts[1])[split_code(split)]
    mine = files[start:start + counts[split_code(split)]]
    if not mine:
        raise ValueError(f"image folder {root}: the {split} split is empty ({len(files)} files, splits {tuple(splits)})")
    return mine


@SOURCES.register("folder")
class Folder(ImageSource):
    """The user's images from a folder (PNG/JPEG/TIFF/npy/npz), split by file, normalised to [0, 1]."""

    def __init__(self, size: int, path: str, split: str = "train", seed: int = 0, count: int | None = None,
                 fit: Literal["resize", "crop", "patches"] = "resize",
                 normalise: Literal["dataset", "image", "dtype"] = "dataset",
                 value_range: tuple[float, float] | None = None,
                 splits: tuple[int, int, int] | tuple[float, float, float] = (0.8, 0.1, 0.1),
                 shuffle: bool = False, crops: int = 0, npz_key: str | None = None,
                 recursive: bool = False, skip_bad: bool = False):
        super().__init__(size, split, seed)
        root = Path(path).expanduser()
        if not root.exists():
            raise FileNotFoundError(f"image folder {root} does not exist")
        if not root.is_dir():
            raise ValueError(f"image folder {root} is not a directory")
        if value_range is not None and not value_range[1] > value_range[0]:
            raise ValueError(f"folder: value_range must be (low, high) with low < high, got {tuple(value_range)}")
        self.root, self.fit, self.normalise = root, fit, normalise
        self.value_range = None if value_range is None else (float(value_range[0]), float(value_range[1]))
        self.npz_key, self.crops = npz_key, int(crops)
        self._fine_cache: dict[tuple[int, int], torch.Tensor] = {}
        files = list_images(root, recursive)
        if not files:
            raise ValueError(f"image folder {root} holds no images ({', '.join(EXTENSIONS)})")

        need_all = skip_bad or (normalise == "dataset" and self.value_range is None)
        arrays: dict[Path, tuple[np.ndarray, np.dtype]] = {}
        skipped: list[str] = []
        if need_all:
            files = self._read_all(files, arrays, skipped, skip_bad)
        mine = _split_files(root, files, split, splits, shuffle, seed)

        lo_hi: tuple[float, float] | None = self.value_range
        if lo_hi is None and normalise == "dataset":
            lo_hi = (min(float(a.min()) for a, _ in arrays.values()), max(float(a.max()) for a, _ in arrays.values()))
        self._files, self._ranges = mine, []
        items: list[torch.Tensor] = []
        self._item_file: list[int] = []
        for k, f in enumerate(mine):
            a, dt = arrays[f] if f in arrays else read_image(f, npz_key)
            rng = self._range(a, dt, f, lo_hi)
            self._ranges.append(rng)
            x = self._apply(a, rng)
            try:
                its = fit_items(x, self.size, fit, name=str(f), crops=self.crops,
                                seed=mix_seed(seed, IMAGE_STREAM, split_code(split), k))
            except ValueError:
                if not skip_bad:
                    raise
                warnings.warn(f"skipping image {f}: smaller than {self.size}×{self.size}", stacklevel=2)
                skipped.append(f.relative_to(root).as_posix())
                continue
            items += its
            self._item_file += [k] * len(its)
        if not items:
            raise ValueError(f"image folder {root}: no {self.size}×{self.size} items in the {split} split")
        n = len(items) if count is None else min(int(count), len(items))
        self._x = torch.stack(items[:n])
        self._item_file = self._item_file[:n]
        self._params = {"path": str(root), "fit": fit, "normalise": normalise,
                        "value_range": None if self.value_range is None else list(self.value_range),
                        "splits": list(splits), "shuffle": bool(shuffle), "crops": self.crops,
                        "npz_key": npz_key, "recursive": bool(recursive), "skip_bad": bool(skip_bad)}
        self._stats = {"files": [f.relative_to(root).as_posix() for f in mine],
                       "skipped": skipped, "total_files": len(files) + (len(skipped) if need_all else 0),
                       "range": list(lo_hi) if lo_hi is not None else None}

    def _read_all(self, files: list[Path], arrays: dict[Path, tuple[np.ndarray, np.dtype]], skipped: list[str],
                  skip_bad: bool) -> list[Path]:
        """Read every file into `arrays` (the dataset's range needs them all; ``skip_bad`` needs to
        know which read); an unreadable one is an error, or with ``skip_bad`` a warning and a name in
        `skipped`. Returns the files that read."""
        good = []
        for f in files:
            try:
                arrays[f] = read_image(f, self.npz_key)
                good.append(f)
            except ValueError as e:
                if not skip_bad:
                    raise
                warnings.warn(f"skipping {e}", stacklevel=4)
                skipped.append(f.relative_to(self.root).as_posix())
        if not good:
            raise ValueError(f"image folder {self.root}: no readable images (all {len(skipped)} skipped)")
        return good

    def _range(self, a: np.ndarray, dt: np.dtype, f: Path, lo_hi) -> tuple[float, float]:
        if lo_hi is not None:
            return lo_hi
        if self.normalise == "image":
            return float(a.min()), float(a.max())
        m = dtype_max(dt)
        if m is None:
            if a.min() < 0 or a.max() > 1:
                raise ValueError(f"image {f}: float values in [{a.min():.4g}, {a.max():.4g}] are outside [0, 1]; "
                                 f"use normalise='image' or 'dataset', or value_range")
            m = 1.0
        return 0.0, m

    @staticmethod
    def _apply(a: np.ndarray, rng: tuple[float, float]) -> np.ndarray:
        lo, hi = rng
        if hi <= lo:
            return np.zeros_like(a)
        return np.clip((a - lo) / (hi - lo), 0.0, 1.0)

    def __len__(self) -> int:
        return self._x.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self._x[self._check_index(i)].clone()

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        idx = [self._check_index(i) for i in indices]
        return self._x[idx].clone() if idx else torch.zeros(0, 1, self.size, self.size)

    def fine(self, indices: Sequence[int], factor: int = 2) -> torch.Tensor:
        """Finer ground truth: with ``fit='resize'`` the file is resized again to factor·size when it
        has that many pixels (real detail, not interpolation); otherwise bicubic upsampling."""
        if self.fit != "resize" or factor == 1:
            return super().fine(indices, factor)
        out = []
        n = self.size * int(factor)
        for i in indices:
            k = self._item_file[self._check_index(i)]
            t = self._fine_cache.get((k, n))
            if t is None:
                a, _ = read_image(self._files[k], self.npz_key)
                sq = centre_square(self._apply(a, self._ranges[k]))
                if sq.shape[0] >= n:
                    t = F.interpolate(torch.from_numpy(sq).float()[None, None], size=(n, n), mode="bilinear",
                                      align_corners=False, antialias=True)[0]
                else:
                    t = super().fine([i], factor)[0]
                t = t.clamp(0, 1)
                if len(self._fine_cache) < FINE_CACHE_ITEMS:
                    self._fine_cache[(k, n)] = t
            out.append(t.clone())
        return torch.stack(out) if out else torch.zeros(0, 1, n, n)
