"""Shape handling shared by the dense models (linear, mlp).

A dense model holds matrices of a fixed size d_in → d_out. It accepts

- plain vectors ``[N, in_features]`` → ``[N, out_features]`` (regression on R^d), or
- tensors ``[B, in_channels, *in_shape]`` (images, measurements), flattened to
  d_in = in_channels · Π in_shape and reshaped to ``[B, out_channels, *out_shape]``.

`resolve_shapes` turns the user's parameters into (d_in, d_out, in_shape, out_shape).
"""

from __future__ import annotations

import math

import torch


def resolve_shapes(model: str, in_features: int | None, out_features: int | None,
                   in_shape: tuple[int, ...] | None, out_shape: tuple[int, ...] | None,
                   in_channels: int, out_channels: int):
    """(d_in, d_out, in_shape, out_shape) from the dense-model parameters (see module doc)."""
    for k, v in (("in_features", in_features), ("out_features", out_features),
                 ("in_channels", in_channels), ("out_channels", out_channels)):
        if v is not None and v < 1:
            raise ValueError(f"model '{model}': '{k}' must be >= 1, got {v}")
    for k, s in (("in_shape", in_shape), ("out_shape", out_shape)):
        if s is not None and (len(s) == 0 or any(n < 1 for n in s)):
            raise ValueError(f"model '{model}': '{k}' must be a non-empty tuple of positive sizes, got {s}")
    if in_shape is None and in_features is None:
        raise ValueError(f"model '{model}': give 'in_features' (vectors [N, d]) or 'in_shape' (tensors [B, C, ...])")
    d_in = in_channels * math.prod(in_shape) if in_shape is not None else in_features
    if in_features is not None and in_features != d_in:
        raise ValueError(f"model '{model}': 'in_features'={in_features} disagrees with in_channels·prod(in_shape)={d_in}")
    if out_shape is None and out_features is None:
        out_shape = in_shape  # image → image of the same size (or d → d for vectors)
    if out_shape is not None:
        d_out = out_channels * math.prod(out_shape)
    else:
        d_out = out_features if out_features is not None else d_in
    if out_features is not None and out_features != d_out:
        raise ValueError(f"model '{model}': 'out_features'={out_features} disagrees with out_channels·prod(out_shape)={d_out}")
    return int(d_in), int(d_out), (tuple(in_shape) if in_shape else None), (tuple(out_shape) if out_shape else None)


class DenseShapes:
    """Mixin: flatten the input and reshape the output (see the module docstring)."""

    d_in: int
    d_out: int
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    in_channels: int
    out_channels: int

    def _flatten(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """(x as [B, d_in], whether the input was a plain vector batch)."""
        if x.dim() == 2 and x.shape[1] == self.d_in:
            return x, True
        if self.in_shape is not None:
            want = (self.in_channels,) + self.in_shape
            if tuple(x.shape[1:]) == want:
                return x.reshape(x.shape[0], self.d_in), False
            exp = f"[N, {self.d_in}] or [B, {', '.join(map(str, want))}]"
        else:
            exp = f"[N, {self.d_in}]"
        raise ValueError(f"{type(self).__name__}: expected input {exp}, got [{', '.join(map(str, x.shape))}]")

    def _unflatten(self, y: torch.Tensor, vector: bool) -> torch.Tensor:
        if vector or self.out_shape is None:
            return y
        return y.reshape((y.shape[0], self.out_channels) + self.out_shape)

    @property
    def fixed_input_shape(self) -> tuple[int, ...]:
        if self.in_shape is None:
            return (self.d_in,)
        return (self.in_channels,) + self.in_shape

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.out_shape is None or len(input_shape) == 1:
            return (self.d_out,)
        return (self.out_channels,) + self.out_shape
