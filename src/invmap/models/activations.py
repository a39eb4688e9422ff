"""Pointwise activations σ shared by every model (the ``activation`` parameter).

Every architecture takes ``activation: Activation``; the names are fixed here once, so
a bad value fails in the registry with the list of allowed ones.

    relu(t) = max(t, 0)            leaky_relu(t) = max(t, 0.01 t)
    sigmoid(t) = 1 / (1 + e^{−t})  tanh(t)
    gelu(t) = t Φ(t)               silu(t) = t · sigmoid(t)
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from torch import nn

Activation = Literal["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu"]

_CLASSES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}

#: the nonlinearity name `torch.nn.init.calculate_gain` knows for each activation
_GAIN_NAME = {"relu": "relu", "leaky_relu": "leaky_relu", "sigmoid": "sigmoid", "tanh": "tanh",
              "gelu": "relu", "silu": "relu"}


def names() -> list[str]:
    """The allowed activation names."""
    return list(get_args(Activation))


def make(name: str) -> nn.Module:
    """A fresh activation module for `name` (one of `names()`)."""
    if name not in _CLASSES:
        raise ValueError(f"unknown activation '{name}'; allowed: {', '.join(names())}")
    return _CLASSES[name]()


def module_class(name: str) -> type[nn.Module]:
    """The ``nn.Module`` class used for activation `name`."""
    make(name)  # validates
    return _CLASSES[name]


def gain(name: str) -> float:
    """Kaiming gain for a layer followed by activation `name` (√2 for relu-like)."""
    if name == "leaky_relu":
        return math.sqrt(2.0 / (1 + 0.01**2))
    return nn.init.calculate_gain(_GAIN_NAME[name])
