"""What the model-based reconstructor kinds share: K normalised, complex channels, learned blocks.

For y = K x + e the iterations use K̃ = K / ‖K‖ and ỹ = y / ‖K‖ (`Normalised`), so
‖K̃‖ = 1 whatever the operator (a unit step size is stable on ½‖K̃x − ỹ‖², and the
learned blocks see data-term gradients K̃ᵀ(K̃x − ỹ) = Kᵀ(Kx − y)/‖K‖² of one scale for CT,
blur and MRI alike) while K̃x = ỹ has the same solutions x. ‖K‖ is the operator's own
cached power-method estimate, so a changed geometry (the stress study) is normalised by
its own norm.

Complex measurements (MRI k-space) enter the learned blocks as real channels [Re, Im]
(`as_channels` / `as_complex`); K̃ and K̃ᵀ always run in float32, outside any autocast.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable

import annotated_types
import torch
from torch import nn

from .activations import Activation


#: the largest count a kind accepts: a tampered model.json (``iterations: 10**12``) is refused
#: in one line instead of running for days (memory is checked separately, `invmap.budget`)
MAX_COUNT = 10_000
#: a count parameter of a kind (iterations, channels, ...): validated by the registry
Count = Annotated[int, annotated_types.Ge(1), annotated_types.Le(MAX_COUNT)]


def operator_of(physics: Any):
    """K from a `Physics` or a `LinearOperator`."""
    if physics is None:
        raise ValueError("this reconstructor needs the physics: call it as recon(y, physics)")
    return getattr(physics, "operator", physics)


class Normalised:
    """K̃ = K/‖K‖, K̃ᵀ and ỹ = y/‖K‖ for one call (see the module docstring)."""

    def __init__(self, physics: Any, y: torch.Tensor, who: str):
        op = operator_of(physics)
        if len(op.in_shape) != 2:
            raise ValueError(f"{who} reconstructs 2-D images, but operator '{op.name}' has images "
                             f"[{', '.join(map(str, op.in_shape))}]")
        n = float(op.norm())
        if not n > 0:
            raise ValueError(f"{who}: operator '{op.name}' has norm 0 (it measures nothing)")
        self.op, self.c, self.complex = op, 1.0 / n, bool(y.is_complex())
        self.y = self._fp32(y) * self.c

    @staticmethod
    def _fp32(t: torch.Tensor) -> torch.Tensor:
        return t if t.is_complex() else t.float()

    def K(self, x: torch.Tensor) -> torch.Tensor:
        """K̃ x."""
        with torch.autocast(x.device.type, enabled=False):
            return self.op.forward(x.float()) * self.c

    def Kt(self, r: torch.Tensor) -> torch.Tensor:
        """K̃ᵀ r (a real image)."""
        with torch.autocast(r.device.type, enabled=False):
            out = self.op.adjoint(self._fp32(r)) * self.c
        return out.real if out.is_complex() else out

    def operator(self):
        """K̃ as a `LinearOperator` (for the classical solvers)."""
        return self.op * self.c

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """∇ ½‖K̃x − ỹ‖² = K̃ᵀ(K̃x − ỹ)."""
        return self.Kt(self.K(x) - self.y)

    def start(self, init: str, batch: int, like: torch.Tensor) -> torch.Tensor:
        """x₀: zeros, K̃ᵀỹ ('adjoint'), FBP(y) ('fbp', operators with a filtered back-projection),
        or 'auto': FBP(y) where K has one, else K̃ᵀỹ."""
        if init == "auto":
            init = "fbp" if getattr(self.op, "has_fbp", False) else "adjoint"
        if init == "zero":
            return torch.zeros((batch, 1) + self.op.in_shape, device=like.device, dtype=torch.float32)
        if init == "adjoint":
            return self.Kt(self.y)
        if not getattr(self.op, "has_fbp", False):
            raise ValueError(f"init 'fbp' needs an operator with a filtered back-projection; '{self.op.name}' "
                             "has none (use init 'zero' or 'adjoint')")
        from ..variational.fbp import fbp

        with torch.no_grad(), torch.autocast(like.device.type, enabled=False):  # K's matrices are float32
            return fbp(self.y.float() / self.c, self.op).float()


def as_channels(t: torch.Tensor) -> torch.Tensor:
    """Complex ``[B, C, ...]`` → real ``[B, 2C, ...]`` ([Re, Im] per channel); real t unchanged."""
    return torch.view_as_real(t).movedim(-1, 2).flatten(1, 2) if t.is_complex() else t


def as_complex(t: torch.Tensor) -> torch.Tensor:
    """Inverse of `as_channels` for a complex measurement: real ``[B, 2C, ...]`` → complex ``[B, C, ...]``."""
    b, c2 = t.shape[:2]
    return torch.view_as_complex(t.float().reshape(b, c2 // 2, 2, *t.shape[2:]).movedim(2, -1).contiguous())


def blocks(iterations: int, shared: bool, in_channels: int, out_channels: int, depth: int, channels: int,
           activation: Activation) -> nn.ModuleList:
    """The learned updates Γ_θk: one `cnn` per iteration (or one shared), same-size convolutions."""
    from . import build

    n = 1 if shared else int(iterations)
    return nn.ModuleList(build("cnn", depth=depth, channels=channels, in_channels=in_channels,
                               out_channels=out_channels, activation=activation) for _ in range(n))


def block_input(*parts: torch.Tensor) -> torch.Tensor:
    """A learned block's input: `parts` stacked along the channels, ``[B, Σc, H, W]``, in
    channels-last layout — the fast path of oneDNN's 3×3 convolutions on CPU (forward and
    backward of a 32-channel block at 128² ≈ 1.7× faster than the default layout, measured
    in BENCHMARKS.md). Only the activations change layout; the weights (saved, loaded,
    checkpointed) keep theirs, and the values are the same."""
    return torch.cat(parts, dim=1).contiguous(memory_format=torch.channels_last)


def run_step(step: Callable[..., Any], *args: torch.Tensor, checkpoint: bool = False) -> Any:
    """``step(*args)``, with gradient checkpointing when asked and gradients are on: the
    activations of the step are recomputed in the backward pass instead of stored (memory
    of one iteration instead of all)."""
    if checkpoint and torch.is_grad_enabled():
        from torch.utils.checkpoint import checkpoint as ckpt

        return ckpt(step, *args, use_reentrant=False)
    return step(*args)


