"""The forward-operator registry: `names()`, `build(name, image_shape=(H, W), **params)`."""

from __future__ import annotations

from typing import Any

from ..registry import Registry

OPERATORS = Registry("operator", fixed=("image_shape",))


def names() -> list[str]:
    """Names of every registered forward operator."""
    return OPERATORS.names()


def build(name: str, image_shape: tuple[int, int] = (64, 64), **params: Any):
    """Build operator `name` for images of `image_shape` = (H, W).

    Unknown names or parameters raise a ``ValueError`` listing what is allowed.
    The operator remembers ``name`` and ``params`` (``op.spec()``) so it can be
    rebuilt from a saved model or a dataset manifest.
    """
    if len(tuple(image_shape)) != 2 or any(int(s) < 1 for s in image_shape):
        raise ValueError(f"operator '{name}': image_shape must be (H, W) with positive sizes, got {tuple(image_shape)}")
    op = OPERATORS.build(name, image_shape=tuple(int(s) for s in image_shape), **params)
    op.name = name
    op._spec_params = {k: v for k, v in params.items()}
    return op


def spec(op) -> dict:
    """JSON-able description {name, image_shape, params} of an operator built by `build`."""
    return {"name": getattr(op, "name", type(op).__name__), "image_shape": list(op.in_shape),
            "params": _jsonable(getattr(op, "_spec_params", {}))}


def from_spec(d: dict):
    """Rebuild an operator from `spec(op)`."""
    return build(d["name"], image_shape=tuple(d["image_shape"]), **d.get("params", {}))


def _jsonable(v: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v
