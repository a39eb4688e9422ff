"""Data: ground-truth images x and reproducible (y, x) pairs for y = K x + e.

- Image sources (`build_source(name, size, split, count, seed, **params)`): ``ellipses``,
  ``shepp-logan``, ``samples`` (scikit-image's bundled images), ``folder:<path>`` and ``hdf5:<glob>`` (lazy); each
  gives disjoint ``train`` / ``val`` / ``test`` splits and ``[1, H, W]`` float32 images in
  [0, 1] that depend only on (source, params, seed, split, index).
- `PairDataset(images, physics, seed, fresh_noise, simulation)`: (y, x) with per-sample
  seeded noise; ``simulate(indices)`` is the batched path (also used by DataLoader).
- Inverse-crime guard (`crime.fine_operator`): ``simulation="fine"`` measures a finer
  ground truth through K refined to that grid (default for the test split).
- `materialise(ds, path)` / `load_pairs(path, expect=ds)`: one ``.npz`` + JSON manifest;
  ``materialise(ds, dir, shard_size=n)`` / `PairShards(dir, expect=ds)`: many shards streamed
  by DataLoader workers, each checked against the manifest (size, SHA-256).
"""

from ..registry import import_submodules
from .crime import Refined, fine_operator
from .io import read_image
from .materialise import PairShards, load_pairs, materialise
from .pairs import PairDataset
from .phantoms import render_ellipses, shepp_logan
from .sources import SOURCES, SPLITS, ImageSource, build_source, describe, from_spec, names, parse_source

import_submodules(__name__)

__all__ = ["SOURCES", "SPLITS", "ImageSource", "build_source", "describe", "from_spec", "names", "parse_source",
           "PairDataset", "materialise", "load_pairs", "PairShards", "fine_operator", "Refined", "read_image",
           "render_ellipses", "shepp_logan"]
