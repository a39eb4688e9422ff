"""Arrays read from files in the machine's byte order.

A ``.npy`` (or ``.npz`` member, HDF5 dataset) may be stored big-endian (``>f8``): numpy reads it
as such, but torch takes native byte order only and refused it with its own message. Every array
invmap reads from a file, and every numpy array a method returns, goes through `native_order`.
"""

from __future__ import annotations

import numpy as np


def native_order(a: np.ndarray) -> np.ndarray:
    """`a` in the machine's byte order (a copy only when it was not)."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


__all__ = ["native_order"]
