"""Image sources: the ground-truth images x of y = K x + e.

An `ImageSource` is a finite, indexable set of images of one split (``train``, ``val`` or
``test``): ``len(src)`` images, ``src[i]`` a ``[1, H, W]`` float32 tensor in [0, 1],
``src.batch(indices)`` a ``[B, 1, H, W]`` stack. Image i depends only on (source, params,
seed, split, i) — never on the order of access, the worker that reads it or the batch it
is read in — so data sets are reproducible across runs, machines and DataLoader workers.

The three splits of one source are disjoint: generated sources draw them from independent
seed streams, raster sources (`samples`, `folder:`) split by *file*, never by patch of the
same image.

``fine(indices, factor)`` gives the same images on a ``factor``× finer grid, used to
simulate measurements without the inverse crime (see `invmap.data.crime`): analytic
phantoms are rendered again at the finer size, raster images are upsampled (bicubic).

Sources (registry `SOURCES`):

- ``ellipses``: random ellipse phantoms (optionally with small high-contrast dots).
- ``shepp-logan``: the modified Shepp–Logan phantom (optionally randomly perturbed).
- ``samples``: grayscale images bundled with scikit-image (no download), cut into patches.
- ``folder:<path>``: the user's PNG/JPEG/TIFF/.npy/.npz images.
- ``hdf5:<glob>``: images in HDF5 files read lazily (LoDoPaB-CT's layout), see `invmap.data.hdf5`.

>>> from invmap.data import build_source
>>> src = build_source("ellipses", size=32, count=4, split="train", seed=0)
>>> src[0].shape
torch.Size([1, 32, 32])
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..registry import Registry

#: Builders take ``size, split, seed, count`` from the caller plus their own typed params.
SOURCES = Registry("image source", fixed=("size", "split", "seed", "count"))

SPLITS = ("train", "val", "test")
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}

#: salts separating the random streams of images and of noise
IMAGE_STREAM = 0x1A6E
NOISE_STREAM = 0x0015E
#: seeds each sample's drawn physics ω_i (`invmap.distributions`)
PHYSICS_STREAM = 0x0F1C5


def mix_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (numpy SeedSequence: well mixed, platform-independent)."""
    a, b = np.random.SeedSequence([int(p) & 0xFFFFFFFFFFFFFFFF for p in parts]).generate_state(2, np.uint32)
    return ((int(a) << 31) ^ int(b)) & 0x7FFFFFFFFFFFFFFF


def split_code(split: str) -> int:
    if split not in _SPLIT_CODE:
        raise ValueError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
    return _SPLIT_CODE[split]


class ImageSource:
    """Base class: ``len(src)`` images ``src[i]`` shaped ``[1, size, size]``, float32 in [0, 1]."""

    name: str = "source"
    #: True when `fine` renders the exact object at a finer grid (phantoms); False: upsampled
    analytic: bool = False

    def __init__(self, size: int, split: str = "train", seed: int = 0):
        if int(size) < 1:
            raise ValueError(f"image source: size must be a positive integer, got {size}")
        split_code(split)
        self.size, self.split, self.seed = int(size), split, int(seed)

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_index(self, i: int) -> int:
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"{self.name}: index {i} out of range for {n} images ({self.split} split)")
        return i

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.batch([i])[0]

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        """Images ``[B, 1, size, size]`` for `indices` (the fast path: one call per batch)."""
        return torch.stack([self[int(i)] for i in indices]) if len(indices) else torch.zeros(0, 1, self.size, self.size)

    def fine(self, indices: Sequence[int], factor: int = 2) -> torch.Tensor:
        """The images on a ``factor``× finer grid ``[B, 1, f·size, f·size]``.

        Default (raster images): bicubic upsampling (pixel centres aligned, no corner
        alignment), clipped to [0, 1]. Analytic sources render the object again instead.
        """
        x = self.batch(indices)
        if factor == 1:
            return x
        up = F.interpolate(x, scale_factor=int(factor), mode="bicubic", align_corners=False)
        return up.clamp_(0.0, 1.0)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    # ------------------------------------------------------------ description
    def params(self) -> dict:
        """Source-specific parameters (JSON-able), recorded in data set manifests."""
        return dict(getattr(self, "_params", {}))

    def spec(self) -> dict:
        """JSON-able description: name, size, split, seed, count and params."""
        d = {"name": self.name, "size": self.size, "split": self.split, "seed": self.seed,
             "count": len(self), "params": self.params()}
        if getattr(self, "_stats", None):
            d["stats"] = dict(self._stats)  # derived facts (e.g. a folder's intensity range, its files)
        return d

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, size={self.size}, split={self.split!r}, n={len(self)})"


def names() -> list[str]:
    """Names of the registered image sources (``folder`` / ``hdf5`` are used as ``folder:<path>`` / ``hdf5:<glob>``)."""
    return SOURCES.names()


#: sources written ``name:<path>``, with an example path
PATH_SOURCES = {"folder": "/data/ct-slices", "hdf5": "/data/lodopab/ground_truth_*.hdf5"}


def parse_source(source: str) -> tuple[str, dict]:
    """``"folder:/data/ct"`` → ``("folder", {"path": "/data/ct"})`` (also ``hdf5:<glob>``); other
    names pass through."""
    if not isinstance(source, str) or not source:
        raise ValueError(f"image source must be a non-empty string, got {source!r}")
    for name, example in PATH_SOURCES.items():
        if source.startswith(f"{name}:"):
            path = source[len(name) + 1:]
            if not path:
                raise ValueError(f"image source '{name}:' needs a path, e.g. {name}:{example}")
            return name, {"path": path}
    return source, {}


def build_source(source: str, size: int, split: str = "train", count: int | None = None,
                 seed: int = 0, **params: Any) -> ImageSource:
    """Build image source `source` (a registered name or ``folder:<path>``) for one split.

    Parameters
    ----------
    source: ``ellipses``, ``shepp-logan``, ``samples``, ``folder:<path>`` or ``hdf5:<glob>``.
    size: images are ``size × size``.
    split: ``train``, ``val`` or ``test`` (disjoint parts of the source).
    count: number of images (generated sources) or at most this many (raster sources;
        None = all of the split).
    seed: seeds the generated images / random crops; image i depends only on
        (seed, split, i, params).
    params: source-specific parameters (see ``invmap.data.describe(name)``).
    """
    name, extra = parse_source(source)
    split_code(split)
    if count is not None and int(count) < 0:
        raise ValueError(f"image source '{name}': count must be >= 0, got {count}")
    params = {**extra, **params}
    if name in PATH_SOURCES and "path" not in params:
        raise ValueError(f"image source '{name}' needs a path: write {name}:<path>")
    src = SOURCES.build(name, size=int(size), split=split, seed=int(seed),
                        count=None if count is None else int(count), **params)
    src.name = name
    return src


def from_spec(d: dict) -> ImageSource:
    """Rebuild a source from `ImageSource.spec()` (folder sources need the folder)."""
    p = dict(d.get("params", {}))
    return build_source(d["name"], d["size"], split=d["split"], count=d.get("count"), seed=d.get("seed", 0), **p)


def describe(name: str) -> str:
    """One line: the source's parameters with defaults and the first docstring line."""
    return SOURCES.describe(parse_source(name)[0])
