"""Per-sample reductions of batched tensors ``[B, ...]``: what every solver of y = K x + e
computes once per measurement in a batch (inner products, norms, step sizes)."""

from __future__ import annotations

import torch

from ..operators.base import LinearOperator


def sample_sum(x: torch.Tensor) -> torch.Tensor:
    """Per-sample sum over all but the first dimension: ``[B, ...] -> [B]``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample real inner product Re Σ conj(a)·b, shaped ``[B]``."""
    if a.is_complex() or b.is_complex():
        return sample_sum((a.conj() * b).real if a.is_complex() else a * b.real)
    return sample_sum(a * b)


def sqnorm(a: torch.Tensor) -> torch.Tensor:
    """Per-sample squared norm ‖a‖² (real, also for complex a), shaped ``[B]``."""
    return sample_sum(a.abs() ** 2 if a.is_complex() else a * a)


def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a ``[B]`` tensor to broadcast against ``like`` (``[B, 1, 1, ...]``)."""
    return v.reshape((-1,) + (1,) * (like.dim() - 1))


def zeros_image(op: LinearOperator, y: torch.Tensor) -> torch.Tensor:
    """The zero image x₀ = 0 for measurements y: ``[..., *in_shape]``, real, on y's device."""
    lead = y.shape[: y.dim() - len(op.out_shape)]
    return torch.zeros(tuple(lead) + op.in_shape, dtype=y.real.dtype, device=y.device)


__all__ = ["sample_sum", "dot", "sqnorm", "per_sample", "zeros_image"]
