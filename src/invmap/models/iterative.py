"""What the model-based reconstructor kinds share: K normalised, complex channels, learned blocks.

For y = K x + e the iterations use K̃ = K / ‖K‖ and ỹ = y / ‖K‖ (`invmap.operators.normalised.Normalised`), so
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
from .registry import build


#: the largest count a kind accepts: a tampered model.json (``iterations: 10**12``) is refused
#: in one line instead of running for days (memory is checked separately, `invmap.budget`)
MAX_COUNT = 10_000
#: a count parameter of a kind (iterations, channels, ...): validated by the registry
Count = Annotated[int, annotated_types.Ge(1), annotated_types.Le(MAX_COUNT)]


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


