"""Bridges to peer libraries (optional dependencies, imported only when a bridge is used).

- `to_deepinv(physics)`: an invmap operator or `Physics` as a deepinv ``LinearPhysics``
  (``A``, ``A_adjoint``, the noise model; deepinv's solvers, norms and pseudo-inverse
  work on it); `from_deepinv(physics, image_shape)`: a deepinv linear physics as an
  invmap `LinearOperator`.
- `to_astra(op)`: an invmap CT operator (parallel or fan beam) as ASTRA
  ``(proj_geom, vol_geom)``; `from_astra(proj_geom, vol_geom)`: back to invmap.

A missing peer is a one-line ``ImportError`` naming the package to install.

>>> from invmap.interop import to_deepinv  # doctest: +SKIP
>>> physics = to_deepinv(invmap.operators.build("tomography", image_shape=(128, 128)))  # doctest: +SKIP
"""

from __future__ import annotations

from .astra_geometry import from_astra, to_astra
from .deepinv_physics import from_deepinv, to_deepinv
from .optional import require

__all__ = ["require", "to_deepinv", "from_deepinv", "to_astra", "from_astra"]
