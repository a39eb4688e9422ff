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

import importlib
from types import ModuleType
from typing import Any


def require(module: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import the optional peer `module`, or a one-line ImportError saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{purpose} needs the optional package '{package or module}' "
                          f"(pip install {package or module})") from None


def to_deepinv(physics: Any, **kwargs: Any) -> Any:
    """See `invmap.interop.deepinv_physics.to_deepinv`."""
    from .deepinv_physics import to_deepinv as f

    return f(physics, **kwargs)


def from_deepinv(physics: Any, image_shape: tuple[int, int]) -> Any:
    """See `invmap.interop.deepinv_physics.from_deepinv`."""
    from .deepinv_physics import from_deepinv as f

    return f(physics, image_shape)


def to_astra(op: Any) -> tuple[dict, dict]:
    """See `invmap.interop.astra_geometry.to_astra`."""
    from .astra_geometry import to_astra as f

    return f(op)


def from_astra(proj_geom: dict, vol_geom: dict) -> Any:
    """See `invmap.interop.astra_geometry.from_astra`."""
    from .astra_geometry import from_astra as f

    return f(proj_geom, vol_geom)


__all__ = ["require", "to_deepinv", "from_deepinv", "to_astra", "from_astra"]
