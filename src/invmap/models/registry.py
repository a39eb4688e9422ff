"""The registries of `invmap.models`: architectures (``MODELS``) and reconstructor kinds with K
inside (``KINDS``), and how a network x̂ = f_θ(z) is built from typed parameters."""

from __future__ import annotations

import inspect
from typing import Any, cast

from torch import nn

from ..operators.base import jsonable
from ..registry import Registry

MODELS = Registry("model")
#: reconstructor kinds besides post-processing (lgd, lpd, unrolled, pnp): K and Kᵀ inside
KINDS = Registry("reconstructor kind")


def names() -> list[str]:
    """Names of every registered architecture."""
    return MODELS.names()


def build(name: str, **params: Any) -> nn.Module:
    """Build architecture `name` from typed parameters.

    Unknown names, unknown parameters or bad values raise a one-line ``ValueError``
    naming the parameter and what is allowed. The module remembers ``model_name`` and
    ``model_params`` (every parameter, defaults included, JSON-able) so `save_model`
    can rebuild it.
    """
    values = MODELS.validate(name, params)
    try:
        net = MODELS.get(name)(**values)
    except TypeError as e:  # pragma: no cover - a builder bug, not a user error
        raise ValueError(f"model '{name}': {e}") from None
    full = {p.name: p.default for p in MODELS.params(name) if not p.required}
    full.update(values)
    net.model_name = name
    net.model_params = jsonable(full)
    return cast(nn.Module, net)


def build_kind(name: str, **params: Any) -> nn.Module:
    """Build the model-based reconstructor kind `name` (`KINDS`) from typed parameters.

    Bad names or values raise a one-line ``ValueError`` as `build` does; the module keeps
    every parameter, defaults included, in ``kind_params`` (its saved `spec`).
    """
    values = KINDS.validate(name, params)
    recon = KINDS.get(name)(**values)
    full = {p.name: p.default for p in KINDS.params(name) if not p.required}
    full.update(values)
    recon.kind_params = jsonable(full)
    return cast(nn.Module, recon)


def listing() -> str:
    """`invmap models`: the reconstructor kinds, then the architectures of post-processing."""
    return ("reconstructor kinds (model.name), K and Kᵀ inside:\n" + KINDS.listing()
            + "\n\npost-processing x̂ = f_θ(P(y, K)) (model.name = an architecture, model.input = P):\n"
            + MODELS.listing())


def _takes(name: str, param: str) -> bool:
    return param in inspect.signature(MODELS.get(name)).parameters


def build_for(name: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...], **params: Any) -> nn.Module:
    """Build `name` for network inputs ``[B, C, *in_shape]`` and outputs ``[B, C', *out_shape]``.

    Size-aware models (linear, mlp) receive ``in_shape``/``out_shape``; image-to-image
    models need ``in_shape == out_shape`` (otherwise: a ValueError that suggests an
    image-domain input such as 'adjoint', 'fbp' or 'pinv', or a dense model).
    """
    in_shape, out_shape = tuple(int(s) for s in in_shape), tuple(int(s) for s in out_shape)
    if _takes(name, "in_shape"):
        params = {"in_shape": in_shape, "out_shape": out_shape, **params}
    elif in_shape != out_shape:
        raise ValueError(
            f"model '{name}' maps images to images of the same size, but its input is "
            f"[{', '.join(map(str, in_shape))}] and the image [{', '.join(map(str, out_shape))}]; "
            "use input 'adjoint', 'fbp' or 'pinv', or a dense model (linear, mlp)"
        )
    return build(name, **params)


def count_parameters(net: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of `net` (only those with requires_grad if asked)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def describe(net: nn.Module) -> str:
    """One line: ``name(param=value, ...): N parameters`` for a model built by `build`."""
    name = getattr(net, "model_name", None) or type(net).__name__
    params = getattr(net, "model_params", {})
    args = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"{name}({args}): {count_parameters(net):,} parameters"


__all__ = ["MODELS", "KINDS", "names", "build", "build_kind", "listing", "build_for", "count_parameters", "describe"]
