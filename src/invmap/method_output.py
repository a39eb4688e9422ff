"""What a reconstruction must be, checked in one place: x̂ = method(y, physics) is an image batch.

For measurements y of B samples and an operator K with image shape (H, W), x̂ must be

- a torch tensor or a numpy array (any byte order);
- real: floating point, or integers / booleans (converted to float32); never complex;
- shaped ``[B, 1, H, W]``;
- finite: no NaN, no ±Inf.

`check_output` returns x̂ as a float tensor or raises `MethodFailure` — a one-line ``ValueError``
naming the method and what it returned — so a bad output is the method's failure, never
mistaken for a failed simulation or passed on to the scores (where an int64 image or a NaN
would break or poison them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .byteorder import native_order
from .operators.base import operator_of


class MethodFailure(ValueError):
    """A method raised, ran past its time budget or returned something that is not an image batch."""


def expected_shape(y: torch.Tensor, physics: Any) -> tuple[int, ...]:
    """[B, 1, H, W]: B measurements of y, (H, W) the image shape of K (``physics.operator.in_shape``)."""
    op = operator_of(physics)
    return (int(y.shape[0]), 1, *(int(s) for s in op.in_shape))


def check_output(x_hat: Any, y: torch.Tensor, physics: Any, who: str) -> torch.Tensor:
    """x̂ as a real floating tensor shaped [B, 1, H, W] with finite values, or `MethodFailure`."""
    if isinstance(x_hat, np.ndarray):
        if x_hat.dtype.kind not in "biufc":
            raise MethodFailure(f"method '{who}' returned an array of dtype {x_hat.dtype}, not an image")
        x_hat = torch.from_numpy(np.ascontiguousarray(native_order(x_hat)))
    if not isinstance(x_hat, torch.Tensor):
        raise MethodFailure(f"method '{who}' returned {type(x_hat).__name__}, not an image tensor "
                            f"{list(expected_shape(y, physics))}")
    if x_hat.is_complex():
        raise MethodFailure(f"method '{who}' returned complex values ({x_hat.dtype}); a reconstruction is a real "
                            "image (take .real or .abs() yourself if that is what you mean)")
    if not x_hat.is_floating_point():
        x_hat = x_hat.to(torch.float32)
    want = expected_shape(y, physics)
    if tuple(x_hat.shape) != want:
        raise MethodFailure(f"method '{who}' returned shape {list(x_hat.shape)}, expected {list(want)}")
    bad = ~torch.isfinite(x_hat.detach())
    if bool(bad.any()):
        images = int(bad.flatten(1).any(1).sum())
        raise MethodFailure(f"method '{who}' returned NaN or Inf values (in {images} of {want[0]} images)")
    return x_hat


__all__ = ["MethodFailure", "check_output", "expected_shape"]
