"""The model factory: the configured reconstructor x̂ = f_Θ(y, K), a model-based kind or a network
after the input strategy z = P(y, K), built on a device (``meta``: described without memory)."""

from __future__ import annotations

import inspect

import torch

from .. import budget, models
from ..config import Config
from ..models import MODELS


def build_reconstructor(config: Config, physics, device: torch.device):
    """The configured reconstructor: a model-based kind (`invmap.models.KINDS`), or a
    `LearnedReconstructor` around the configured network, sized from the shape of its input.

    On the ``meta`` device nothing is allocated: the network is described (every shape and
    parameter check runs) without memory, as `check_config` and `check_memory` need.
    """
    m = config.model
    if m.is_kind:
        params = m.params()
        if _takes(m.name, "complex_data", models.KINDS):
            params.setdefault("complex_data", bool(physics.operator.complex_output))
        if device.type == "meta":
            return budget.on_meta(lambda: models.build_kind(m.name, **params))
        return models.build_kind(m.name, **params).to(device)
    probe = models.LearnedReconstructor(torch.nn.Identity(), **m.reconstructor_params())
    z0 = probe.input_shape(physics)
    params = m.params()
    if z0[0] != 1 and "in_channels" not in params and _takes(m.name, "in_channels"):
        params["in_channels"] = int(z0[0])  # e.g. complex measurements as [Re, Im]

    def build():
        net = models.build_for(m.name, tuple(z0[1:]), (config.data.size, config.data.size), **params)
        return models.LearnedReconstructor(net, **m.reconstructor_params())

    if device.type == "meta":
        return budget.on_meta(build)
    return build().to(device)


def _takes(name: str, param: str, registry=None) -> bool:
    """Whether the registered `name` takes the keyword `param`."""
    return param in inspect.signature((registry or MODELS).get(name)).parameters


__all__ = ["build_reconstructor"]
