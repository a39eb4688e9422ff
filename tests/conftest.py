"""Shared test fixtures: a seeded generator and a small bundled test image."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# Test tensors are tiny: one intra-op thread per process is fastest, and avoids OpenMP
# threads spinning against each other on a shared 2-core machine or under pytest-xdist.
torch.set_num_threads(1)
# The processes the tests start (the CLI as a process, torchrun ranks) inherit it: beside
# scripts/stress_tests.py's CPU hog a 2-thread child's small sparse products ran 4× slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU torch.Generator seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def camera64() -> np.ndarray:
    """A 64×64 float64 crop of skimage's bundled ``camera`` image, values in [0, 1]."""
    import skimage.data

    return skimage.data.camera()[120:248:2, 180:308:2].astype(np.float64) / 255.0


#: a tiny LoDoPaB-CT layout: files of slices per split (LoDoPaB-CT: 128 slices of 362² per file)
LODOPAB_FILES = {"train": (8, 8), "validation": (4,), "test": (4,)}


@pytest.fixture
def lodopab(tmp_path) -> str:
    """``ground_truth_{train,validation,test}_NNN.hdf5`` with dataset ``data`` [N, 40, 40] in [0, 1]
    under tmp_path/lodopab; returns the glob of an ``hdf5:<glob>`` source."""
    import h5py

    root = tmp_path / "lodopab"
    root.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[-1:1:40j, -1:1:40j]
    for split, counts in LODOPAB_FILES.items():
        for k, n in enumerate(counts):
            r = rng.uniform(0.3, 0.9, (n, 1, 1))
            disc = (xx ** 2 + yy ** 2 < r ** 2) * rng.uniform(0.2, 1.0, (n, 1, 1))  # discs of random size and value
            with h5py.File(root / f"ground_truth_{split}_{k:03d}.hdf5", "w") as f:
                f.create_dataset("data", data=disc.astype(np.float32))
    return str(root / "ground_truth_*.hdf5")
