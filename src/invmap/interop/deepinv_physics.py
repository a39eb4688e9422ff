"""invmap operators as deepinv ``LinearPhysics``, and deepinv linear physics as invmap operators.

`to_deepinv(K or Physics)` gives a ``deepinv.physics.LinearPhysics`` with

    A(x) = K x,   A_adjoint(y) = Kᵀ y,   noise: invmap's own model e (seeded, same draws),

so deepinv's solvers, ``compute_sqnorm``, ``A_dagger``, ``prox_l2`` and its adjointness
checks run on invmap operators — and a deepinv user gets invmap's sparse CT projector in
one call. Complex measurements (MRI k-space) are handed to deepinv as real tensors with a
trailing (real, imaginary) axis (``torch.view_as_real``): the real inner product of that
view is invmap's ⟨a, b⟩ = Re Σ conj(a) b, so A_adjoint stays the exact adjoint.

`from_deepinv(physics, (H, W))` gives an invmap `LinearOperator` whose ``K x`` is deepinv's
``physics.A`` on one-channel images ``[B, 1, H, W]`` (each invmap channel separately) and
whose ``Kᵀ`` is ``physics.A_adjoint``; it is not registered, so it has no ``spec()``.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import torch

from ..operators import LinearOperator
from ..physics import Physics
from .optional import require


def _deepinv():
    return require("deepinv", "the deepinv bridge")


@functools.cache
def _classes() -> tuple[type, type]:
    """The deepinv subclasses, defined on first use (deepinv is optional)."""
    dinv = _deepinv()

    class InvmapNoise(dinv.physics.NoiseModel):
        """invmap's noise model e as a deepinv noise model (y = K x + e, invmap's convention:
        e on the entries K measures only, `Physics.noisy`)."""

        def __init__(self, physics: Physics):
            super().__init__()
            self.invmap_physics, self.complex_output = physics, physics.operator.complex_output

        def forward(self, x: torch.Tensor, seed: int | None = None, **kwargs: Any) -> torch.Tensor:
            g = torch.Generator(x.device).manual_seed(int(seed)) if seed is not None else None
            y = torch.view_as_complex(x.contiguous()) if self.complex_output else x
            y = self.invmap_physics.noisy(y, g)
            return torch.view_as_real(y) if self.complex_output else y

    class InvmapLinearPhysics(dinv.physics.LinearPhysics):
        """An invmap operator K (with its noise model) as a deepinv LinearPhysics."""

        def __init__(self, physics: Physics, **kwargs: Any):
            op = physics.operator
            super().__init__(img_size=(1, *op.in_shape),
                             noise_model=InvmapNoise(physics), **kwargs)
            self.invmap_physics = physics

        @property
        def operator(self) -> LinearOperator:
            return self.invmap_physics.operator

        def A(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            y = self.operator.forward(x)
            return torch.view_as_real(y) if y.is_complex() else y

        def A_adjoint(self, y: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            if self.operator.complex_output:
                y = torch.view_as_complex(y.contiguous())
            return self.operator.adjoint(y)

    return InvmapNoise, InvmapLinearPhysics


def to_deepinv(physics: Physics | LinearOperator, **kwargs: Any) -> Any:
    """A deepinv ``LinearPhysics`` for an invmap `Physics` or operator (noise: none);
    `kwargs` go to ``LinearPhysics`` (e.g. ``max_iter``, ``tol`` of its pseudo-inverse)."""
    if isinstance(physics, LinearOperator):
        physics = Physics(physics)
    if not isinstance(physics, Physics):
        raise TypeError(f"to_deepinv: expected an invmap Physics or LinearOperator, got {type(physics).__name__}")
    return _classes()[1](physics, **kwargs)


class DeepinvOperator(LinearOperator):
    """A deepinv linear physics as invmap's K: ``K x = physics.A(x)``, ``Kᵀ y = physics.A_adjoint(y)``
    on ``[B, 1, H, W]`` images (each channel of ``[..., H, W]`` separately)."""

    def __init__(self, physics: Any, image_shape: Sequence[int]):
        dinv = _deepinv()
        if not isinstance(physics, dinv.physics.LinearPhysics):
            raise TypeError(f"from_deepinv: expected a deepinv LinearPhysics, got {type(physics).__name__}")
        H, W = (int(s) for s in image_shape)
        with torch.no_grad():
            y0 = physics.A(torch.zeros(1, 1, H, W))
        self._squeeze = y0.shape[1] == 1  # one measurement channel per image channel
        super().__init__((H, W), tuple(y0.shape[2:] if self._squeeze else y0.shape[1:]))
        self.physics = physics
        self.complex_output = y0.is_complex()
        #: deepinv's physics computes in the dtype of its buffers (a float32 filter, say)
        self.dtype = next((b.dtype for b in physics.buffers() if b.is_floating_point()), torch.get_default_dtype())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-2]
        y = self.physics.A(x.reshape(-1, 1, *self.in_shape).to(self.dtype))
        return y.reshape(*lead, *self.out_shape).to(x.dtype if not y.is_complex() else y.dtype)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        lead = y.shape[:-len(self.out_shape)]
        z = y.reshape(-1, *((1,) if self._squeeze else ()), *self.out_shape)
        x = self.physics.A_adjoint(z if z.is_complex() else z.to(self.dtype))
        return x.reshape(*lead, *self.in_shape).to(y.real.dtype)


def from_deepinv(physics: Any, image_shape: Sequence[int]) -> DeepinvOperator:
    """An invmap operator K for images ``image_shape`` = (H, W) from a deepinv linear physics."""
    return DeepinvOperator(physics, image_shape)


__all__ = ["to_deepinv", "from_deepinv", "DeepinvOperator"]
