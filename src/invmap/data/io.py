"""Reading raster images and fitting them to a square size.

`read_image(path)` reads PNG / JPEG (imageio), TIFF (tifffile), ``.npy`` and ``.npz``
(numpy, no pickles) into a 2-D float64 array on the file's own intensity scale (a
multi-page TIFF is an error: one image per file), converting
RGB/RGBA to gray with the ITU-R 709 luma weights of ``skimage.color.rgb2gray``
(0.2125 R + 0.7154 G + 0.0721 B; alpha is dropped). Every failure is a ``ValueError`` that
names the file.

`fit_items(img, size, fit, ...)` turns one normalised image into one or more
``size × size`` items: ``resize`` (centre square crop, then anti-aliased resize),
``crop`` (centre crop at native resolution) or ``patches`` (a centred grid of
non-overlapping tiles).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import budget
from ..byteorder import native_order
from ..files import check_regular

#: file suffixes read by `read_image`
EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".npy", ".npz")
_LUMA = np.array([0.2125, 0.7154, 0.0721])


def read_image(path: str | os.PathLike, key: str | None = None) -> tuple[np.ndarray, np.dtype]:
    """Read one image as a 2-D float64 array (gray) and its stored dtype.

    ``key`` selects the array of an ``.npz`` holding several (one array needs no key).
    """
    p = Path(path)
    suf = p.suffix.lower()
    check_regular(p, "image")  # a FIFO or a device is refused before any decoder opens it
    _check_dimensions(p, suf, key)
    try:
        if suf in (".npy",):
            a = np.load(p, allow_pickle=False)
        elif suf == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = list(z.keys())
                if key is not None:
                    if key not in keys:
                        raise ValueError(f"has no array '{key}' (arrays: {', '.join(keys)})")
                    a = z[key]
                elif len(keys) == 1:
                    a = z[keys[0]]
                else:
                    raise ValueError(f"holds {len(keys)} arrays ({', '.join(keys)}); choose one with npz_key")
        elif suf in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(p) as tif:
                if len(tif.pages) != 1:  # a stack: which page is "the image" is the user's choice
                    raise ValueError(f"holds {len(tif.pages)} pages; invmap reads one image per file "
                                     "(save each page as its own file)")
                a = tif.pages[0].asarray()
        elif suf in (".png", ".jpg", ".jpeg"):
            import imageio.v3 as iio

            try:
                a = iio.imread(p, plugin="pillow")  # not every imageio plugin in turn (DICOM, …)
            except (OSError, SyntaxError, ValueError) as e:
                if not p.exists():
                    raise
                fmt = "JPEG" if suf != ".png" else "PNG"
                raise ValueError(f"not a readable {fmt} file, corrupt or truncated ({type(e).__name__})") from None
        else:
            raise ValueError(f"unsupported file type '{suf}' (supported: {', '.join(EXTENSIONS)})")
    except ValueError as e:
        raise ValueError(f"cannot read image {p}: {e}") from None
    except Exception as e:  # corrupt files raise many different types
        raise ValueError(f"cannot read image {p}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'corrupt or unreadable'}") from None
    a = native_order(np.asarray(a))
    dtype = a.dtype
    if a.dtype.kind not in "buif":
        raise ValueError(f"cannot read image {p}: unsupported array dtype {a.dtype}")
    return _to_gray(a, p), dtype


def _header_shape(p: Path, suf: str, key: str | None) -> tuple[int, ...] | None:
    """The array or image dimensions stored in the file's header, read without decoding."""
    if suf == ".npy":
        return tuple(np.load(p, mmap_mode="r", allow_pickle=False).shape)
    if suf == ".npz":
        import zipfile

        with zipfile.ZipFile(p) as z:
            names = [n for n in z.namelist() if n.endswith(".npy")]
            name = f"{key}.npy" if key is not None else (names[0] if len(names) == 1 else None)
            if name not in names:
                return None  # the reader names the missing or ambiguous array
            with z.open(name) as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                return tuple(read(f)[0])
    if suf in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(p) as t:
            return tuple(t.series[0].shape) if t.series else None
    if suf in (".png", ".jpg", ".jpeg"):
        import warnings

        from PIL import Image

        with warnings.catch_warnings():  # PIL's own bomb warning: the budget below decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                return (im.size[1], im.size[0], len(im.getbands()))
    return None


def _check_dimensions(p: Path, suf: str, key: str | None) -> None:
    """Refuse a file whose header promises more pixels than `invmap.budget` allows (a small
    compressed file can decode to gigabytes) before decoding it."""
    try:
        shape = _header_shape(p, suf, key)
    except FileNotFoundError:
        raise
    except Exception:  # noqa: BLE001 - an unreadable header is reported by the reader itself
        return
    if shape:
        budget.check_pixels(math.prod(int(s) for s in shape), f"image {p} ({'×'.join(map(str, shape))})")


def _to_gray(a: np.ndarray, p: Path) -> np.ndarray:
    a = a.astype(np.float64)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] > 4:  # channels first (TIFF)
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    elif a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3] @ _LUMA
    elif a.ndim != 2:
        raise ValueError(f"image {p}: expected a 2-D gray or H×W×3/4 colour image, got shape {list(a.shape)}")
    if a.size == 0 or min(a.shape) < 1:
        raise ValueError(f"image {p}: empty image (shape {list(a.shape)})")
    if not np.isfinite(a).all():
        raise ValueError(f"image {p}: contains NaN or Inf values")
    return a


def dtype_max(dtype: np.dtype) -> float | None:
    """The full-scale value of an integer dtype (255, 65535, …); None for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return 1.0
    if dtype.kind in "ui":
        return float(np.iinfo(dtype).max)
    return None


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Anti-aliased bilinear resize of ``[h, w]`` to ``[size, size]`` (pixel centres aligned)."""
    h, w = x.shape
    if (h, w) == (size, size):
        return x
    aa = h > size or w > size
    return F.interpolate(x[None, None], size=(size, size), mode="bilinear", align_corners=False,
                         antialias=aa)[0, 0]


def centre_square(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    m = min(h, w)
    return a[(h - m) // 2:(h - m) // 2 + m, (w - m) // 2:(w - m) // 2 + m]


def fit_items(img: np.ndarray, size: int, fit: str, name: str = "image",
              crops: int = 0, seed: int = 0, upscale_small: bool = False) -> list[torch.Tensor]:
    """Cut / resize one normalised 2-D image into ``[1, size, size]`` float32 items.

    fit: ``resize`` — centre square crop, then (anti-aliased) resize to `size`;
    ``crop`` — the centre ``size × size`` crop at native resolution;
    ``patches`` — a centred grid of non-overlapping tiles (or, with ``crops > 0``, that many
    random crops seeded by `seed`). An image smaller than `size` is an error for ``crop`` /
    ``patches`` (naming `name`), unless ``upscale_small`` resizes it so its short side is `size`.
    """
    h, w = img.shape
    if fit == "resize":
        return [_resize(torch.from_numpy(centre_square(img)).float(), size)[None].contiguous()]
    if h < size or w < size:
        if not upscale_small:
            raise ValueError(f"image {name} is {h}×{w}, smaller than the requested {size}×{size} ({fit}); "
                             f"use fit='resize' or a smaller size")
        f = size / min(h, w)
        nh, nw = max(size, round(h * f)), max(size, round(w * f))
        img = F.interpolate(torch.from_numpy(img)[None, None], size=(nh, nw), mode="bicubic",
                            align_corners=False)[0, 0].clamp(0, 1).numpy()
        h, w = nh, nw
    t = torch.from_numpy(np.ascontiguousarray(img)).float()
    if fit == "crop":
        r0, c0 = (h - size) // 2, (w - size) // 2
        return [t[r0:r0 + size, c0:c0 + size][None].contiguous()]
    if fit == "patches":
        if crops > 0:
            g = np.random.Generator(np.random.PCG64(seed))
            rs = g.integers(0, h - size + 1, crops)
            cs = g.integers(0, w - size + 1, crops)
            return [t[r:r + size, c:c + size][None].contiguous() for r, c in zip(rs, cs)]
        nr, nc = h // size, w // size
        r0, c0 = (h - nr * size) // 2, (w - nc * size) // 2
        return [t[r0 + i * size:r0 + (i + 1) * size, c0 + j * size:c0 + (j + 1) * size][None].contiguous()
                for i in range(nr) for j in range(nc)]
    raise ValueError(f"unknown fit '{fit}'; choose resize, crop or patches")


def split_counts(n: int, splits: tuple) -> tuple[int, int, int]:
    """Files per split: ``splits`` is three fractions (summing to ≤ 1) or three counts.

    Fractions round val and test to whole files (at least one each when its fraction is
    > 0 and there are ≥ 3 files); train takes the rest when the fractions sum to 1.
    """
    if len(splits) != 3:
        raise ValueError(f"splits must be three numbers (train, val, test), got {splits}")
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in splits):
        c = tuple(int(v) for v in splits)
        if min(c) < 0 or sum(c) > n:
            raise ValueError(f"split counts {c} need {sum(c)} files but there are {n}")
        return c  # type: ignore[return-value]
    fr = tuple(float(v) for v in splits)
    if min(fr) < 0 or sum(fr) > 1 + 1e-9:
        raise ValueError(f"split fractions must be >= 0 and sum to at most 1, got {fr}")
    val, test = (max(1 if (f > 0 and n >= 3) else 0, int(round(f * n))) for f in fr[1:])
    train = n - val - test if abs(sum(fr) - 1) < 1e-9 else int(round(fr[0] * n))
    if train < 0 or train + val + test > n:
        raise ValueError(f"cannot split {n} files by fractions {fr}")
    return train, val, test
