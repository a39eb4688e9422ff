"""The forward-operator registry: `names()`, `build(name, image_shape=(H, W), **params)`,
and `spec(op)` / `from_spec(d)` to describe an operator as JSON and rebuild it."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping, Sequence

from .. import budget
from ..registry import Registry
from .base import ALGEBRA, LinearOperator


class OperatorRegistry(Registry):
    """A `Registry` whose entries learn their own name (``cls.name``), so an operator built
    directly (``Tomography((64, 64))``) describes itself exactly like one built by name."""

    def register(self, name: str) -> Callable[[Any], Any]:
        deco = super().register(name)

        def named(cls: Any) -> Any:
            cls.name = name
            return deco(cls)

        return named


OPERATORS = OperatorRegistry("operator", fixed=("image_shape",))

#: the entry-point group whose modules register the operators of installed packages
PLUGINS_GROUP = "invmap.operators"

#: bytes per pixel an operator may hold for its image size (masks, padded complex FFTs):
#: the estimate `build` checks against the memory budget before building anything
IMAGE_BYTES = 64


def names() -> list[str]:
    """Names of every registered forward operator."""
    return OPERATORS.names()


def build(name: str, image_shape: Sequence[int] = (64, 64), **params: Any) -> LinearOperator:
    """Build operator `name` for images of `image_shape` = (H, W).

    Unknown names or parameters raise a ``ValueError`` listing what is allowed;
    ``op.spec()`` describes the result, `from_spec` rebuilds it.
    """
    if len(tuple(image_shape)) != 2 or any(int(s) < 1 for s in image_shape):
        raise ValueError(f"operator '{name}': image_shape must be (H, W) with positive sizes, got {tuple(image_shape)}")
    H, W = (int(s) for s in image_shape)
    size = f"{H}×{W}" if max(H, W) < 10**9 else f"{float(H):.3g}×{float(W):.3g}"
    budget.check(IMAGE_BYTES * H * W, f"operator '{name}' for {size} images")
    op: LinearOperator = OPERATORS.build(name, image_shape=tuple(int(s) for s in image_shape), **params)
    return op


def spec(op: LinearOperator) -> dict[str, Any]:
    """JSON-able description of an operator: ``op.spec()`` (``{name, image_shape, params}``,
    or ``{name: compose | sum | scale | adjoint, parts: [...]}`` for the algebra)."""
    d: dict[str, Any] = op.spec()
    return d


def from_spec(d: Mapping[str, Any], image_shape: Sequence[int] | None = None) -> LinearOperator:
    """Rebuild an operator from `spec(op)`; `image_shape` (H, W) replaces the recorded one."""
    if not isinstance(d, Mapping) or "name" not in d:
        raise ValueError(f"not an operator spec (a mapping with a 'name'): {d!r}"[:200])
    name = d["name"]
    if name in ALGEBRA:
        parts = [from_spec(p, image_shape) for p in d.get("parts", [])]
        op: LinearOperator = ALGEBRA[name](d, parts)
        return op
    shape = image_shape if image_shape is not None else d.get("image_shape")
    if shape is None:
        raise ValueError(f"operator spec '{name}' gives no image_shape")
    return build(name, image_shape=tuple(shape), **dict(d.get("params") or {}))


def resized_spec(d: Mapping[str, Any], image_shape: Sequence[int]) -> dict[str, Any]:
    """The spec of the same acquisition as ``d`` for images of `image_shape` (H, W): what
    ``K.resized_params`` says for each operator (a detector still covering the image, a box
    still covering the same part of it). ``from_spec(d, image_shape)`` instead keeps every
    stated parameter (right for a finer grid of one physical object, `invmap.data.crime`);
    a spec with no recorded image shape (a config's) is taken as stated for `image_shape`."""
    if not isinstance(d, Mapping) or "name" not in d:
        raise ValueError(f"not an operator spec (a mapping with a 'name'): {d!r}"[:200])
    new = tuple(int(s) for s in image_shape)
    if d["name"] in ALGEBRA:
        return {**d, "parts": [resized_spec(p, new) for p in d.get("parts", [])]}
    old = d.get("image_shape")
    params = dict(d.get("params") or {})
    if old is not None and tuple(int(s) for s in old) != new:
        cls: Any = OPERATORS.get(d["name"])  # an operator class: `LinearOperator.resized_params`
        params = cls.resized_params(params, tuple(int(s) for s in old), new)
    return {**d, "image_shape": list(new), "params": params}


def load_operator_plugins() -> list[str]:
    """Import the modules installed packages declare under ``invmap.operators`` (`PLUGINS_GROUP`) (their operators
    register themselves); a plugin that fails to import is logged and skipped. Returns the names
    of the ones loaded."""
    loaded = []
    for ep in sorted(entry_points(group=PLUGINS_GROUP), key=lambda ep: ep.name):
        name = ep.name
        try:
            ep.load()
            loaded.append(name)
        except Exception as e:  # noqa: BLE001 - one broken plugin must not break invmap
            logging.getLogger(__name__).warning(f"invmap: operator plugin '{name}' ({ep.value}) not loaded: "
                                                f"{type(e).__name__}: {e}")
    return loaded
