"""``samples`` — natural and microscopy images that ship inside scikit-image (no download).

Only files present in the installed ``skimage/data`` folder are read (never the pooch
fetcher), converted to gray in [0, 1] (8-bit / 255, RGB → ITU-R 709 luma) and cut into
``size × size`` patches (a centred grid of tiles, or ``crops`` seeded random crops per
image; an image smaller than `size` is first upscaled so its short side is `size`).

The split is **by source image** — a patch of the test images never appears in training:

- train: astronaut, cell, chelsea, coffee, grass, hubble_deep_field, ihc, page, retina,
  rocket, motorcycle_left
- val: brick, moon, text
- test: camera, coins, gravel
"""

from __future__ import annotations

import functools
import os
from typing import Literal, Sequence

import numpy as np
import torch

from .io import fit_items, read_image
from .sources import IMAGE_STREAM, SOURCES, ImageSource, mix_seed, split_code

#: name → file in skimage/data, per split
SAMPLE_FILES = {
    "train": {"astronaut": "astronaut.png", "cell": "cell.png", "chelsea": "chelsea.png",
              "coffee": "coffee.png", "grass": "grass.png", "hubble_deep_field": "hubble_deep_field.jpg",
              "ihc": "ihc.png", "page": "page.png", "retina": "retina.jpg", "rocket": "rocket.jpg",
              "motorcycle_left": "motorcycle_left.png"},
    "val": {"brick": "brick.png", "moon": "moon.png", "text": "text.png"},
    "test": {"camera": "camera.png", "coins": "coins.png", "gravel": "gravel.png"},
}


def data_dir() -> str:
    import skimage

    return os.path.join(os.path.dirname(skimage.__file__), "data")


def available(split: str | None = None) -> dict[str, str]:
    """Bundled sample images present offline: name → path (optionally of one split)."""
    d = data_dir()
    splits = [split] if split else list(SAMPLE_FILES)
    out = {}
    for s in splits:
        for nm, f in SAMPLE_FILES[s].items():
            p = os.path.join(d, f)
            if os.path.isfile(p):
                out[nm] = p
    return out


@functools.lru_cache(maxsize=32)
def load_sample(name: str) -> np.ndarray:
    """One bundled image as a gray float64 array in [0, 1]."""
    paths = available()
    if name not in paths:
        raise ValueError(f"sample image '{name}' is not bundled offline; available: {', '.join(sorted(paths))}")
    a, dt = read_image(paths[name])
    return a / (255.0 if np.dtype(dt).kind in "ui" else 1.0)


@SOURCES.register("samples")
class Samples(ImageSource):
    """Gray patches of scikit-image's bundled sample images, split by source image."""

    def __init__(self, size: int, split: str = "train", seed: int = 0, count: int | None = None,
                 fit: Literal["patches", "resize"] = "patches", crops: int = 0,
                 images: list[str] | None = None):
        super().__init__(size, split, seed)
        names = list(available(split)) if images is None else list(images)
        allowed = set(SAMPLE_FILES[split])
        bad = [n for n in names if n not in allowed]
        if bad:
            raise ValueError(f"samples: image(s) {', '.join(bad)} are not in the {split} split; "
                             f"{split} images: {', '.join(sorted(allowed))}")
        if not names:
            raise ValueError(f"samples: no bundled images for the {split} split in {data_dir()}")
        items: list[torch.Tensor] = []
        self._origin: list[str] = []
        for k, nm in enumerate(names):
            its = fit_items(load_sample(nm), self.size, fit, name=nm, crops=int(crops),
                            seed=mix_seed(seed, IMAGE_STREAM, split_code(split), k), upscale_small=True)
            items += its
            self._origin += [nm] * len(its)
        n = len(items) if count is None else min(int(count), len(items))
        self._x = torch.stack(items[:n])
        self._origin = self._origin[:n]
        self._params = {"fit": fit, "crops": int(crops), "images": names}

    def __len__(self) -> int:
        return self._x.shape[0]

    def origin(self, i: int) -> str:
        """Name of the sample image that item i was cut from."""
        return self._origin[self._check_index(i)]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self._x[self._check_index(i)].clone()

    def batch(self, indices: Sequence[int]) -> torch.Tensor:
        idx = [self._check_index(i) for i in indices]
        return self._x[idx].clone() if idx else torch.zeros(0, 1, self.size, self.size)
