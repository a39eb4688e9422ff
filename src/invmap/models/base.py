"""What every network in the model registry shares.

A network maps its input z (the measurement y, or an image such as Kᵀy, FBP(y) or a
pseudo-inverse — see `reconstructor.LearnedReconstructor`) to the estimate x̂:

- image-to-image networks (cnn, rescnn, unet, vit): ``[B, in_channels, H, W] → [B, out_channels, H, W]``
  for any H, W;
- dense networks (linear, mlp): a fixed input size, on plain vectors ``[N, in_features]`` or on
  tensors ``[B, in_channels, *in_shape]`` (flattened, the output reshaped to
  ``[B, out_channels, *out_shape]``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

import torch
from torch import nn


class Network(nn.Module):
    """Base class of the registered networks (see the module docstring)."""

    #: True when the output has the input's spatial size (fully convolutional / patch models).
    same_size: bool = True
    #: True when plain vectors ``[N, d]`` are accepted (dense models).
    accepts_vectors: bool = False
    #: the registered name and every parameter (JSON-able) it was built with, set by
    #: `invmap.models.build` so `save_model` can rebuild it (None: not built by name)
    model_name: str | None = None
    model_params: Mapping[str, Any] = MappingProxyType({})

    @property
    def fixed_input_shape(self) -> tuple[int, ...] | None:
        """The per-sample input shape the network requires, or None if any H, W works."""
        return None

    @property
    def any_size(self) -> bool:
        """True when weights learned on images of one size apply to any other (fully convolutional):
        a model trained on 128² patches reconstructs whole 256² images. False for dense models
        (a fixed input size) and for a ViT with learned positions (fixed to the training grid)."""
        return self.fixed_input_shape is None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample output shape for a per-sample input shape ``(C, H, W)``."""
        return (self.out_channels,) + tuple(input_shape[1:])  # type: ignore[attr-defined]


def check_image_input(net: nn.Module, x: torch.Tensor) -> None:
    """Raise a one-line ValueError unless x is ``[B, in_channels, H, W]``."""
    c = net.in_channels  # type: ignore[attr-defined]
    if x.dim() != 4 or x.shape[1] != c:
        raise ValueError(
            f"{type(net).__name__}: expected input [B, {c}, H, W], got [{', '.join(map(str, x.shape))}]"
        )
