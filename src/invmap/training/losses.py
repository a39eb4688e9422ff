"""Training losses ℓ(x̂, x) for min_Θ E ℓ(f_Θ(y), x), averaged over the minibatch.

- ``mse``: ‖x̂ − x‖² / n
- ``l1``: ‖x̂ − x‖₁ / n
- ``psnr``: −(1/B) Σ_i PSNR_i = (1/B) Σ_i 10·log₁₀(‖x̂_i − x_i‖²/n + ε) (data range 1, in dB):
  the mean PSNR over the images, the number the evaluation reports. Its gradient weighs image
  i by 1/MSE_i, so a batch that mixes easy and hard measurements (drawn physics,
  `invmap.distributions`) is not ruled by the hard ones as under ``mse``, where an image with
  10× the error pulls 10× as hard. ε = 1e-10 (PSNR ≤ 100 dB).
- ``ssim-mix``: (1 − w)·base(x̂, x) + w·(1 − SSIM(x̂, x)), base = l1 (default) or mse, w =
  ``ssim_weight``; SSIM is `invmap.metrics.ssim` (Gaussian 11×11 window, σ = 1.5, data
  range 1; differentiable), so images must be at least 11×11.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from .. import metrics

LOSSES = ("mse", "l1", "psnr", "ssim-mix")

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def build_loss(name: str, ssim_weight: float = 0.5, mix_base: str = "l1") -> Loss:
    """The loss ``name`` (one of `LOSSES`) as a function (x̂, x) ↦ scalar tensor (computed in float32)."""
    if name == "mse":
        return lambda x_hat, x: F.mse_loss(x_hat.float(), x.float())
    if name == "l1":
        return lambda x_hat, x: F.l1_loss(x_hat.float(), x.float())
    if name == "psnr":
        return neg_psnr
    if name == "ssim-mix":
        if mix_base not in ("l1", "mse"):
            raise ValueError(f"loss 'ssim-mix': mix_base {mix_base!r} is not one of l1, mse")
        base = F.l1_loss if mix_base == "l1" else F.mse_loss
        w = float(ssim_weight)

        def mix(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            x_hat, x = x_hat.float(), x.float()
            return (1 - w) * base(x_hat, x) + w * (1 - metrics.ssim(x_hat, x).mean())

        return mix
    raise ValueError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}")


def neg_psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−mean_i PSNR_i (dB, data range 1) over the batch; see the module docstring."""
    err = metrics.mse(x_hat.float(), x.float())
    return (10.0 / math.log(10.0)) * torch.log(err + 1e-10).mean()
