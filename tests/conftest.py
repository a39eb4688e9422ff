"""Shared test fixtures: a seeded generator and a small bundled test image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# Test tensors are tiny: one intra-op thread per process is fastest, and avoids OpenMP
# threads spinning against each other on a shared 2-core machine or under pytest-xdist.
torch.set_num_threads(1)


@pytest.fixture
def gen() -> torch.Generator:
    """A CPU torch.Generator seeded with 0."""
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="session")
def camera64() -> np.ndarray:
    """A 64×64 float64 crop of skimage's bundled ``camera`` image, values in [0, 1]."""
    import skimage.data

    return skimage.data.camera()[120:248:2, 180:308:2].astype(np.float64) / 255.0
