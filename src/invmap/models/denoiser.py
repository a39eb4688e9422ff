"""A noise-conditional denoiser D(v, σ): one learned image prior for every operator.

D estimates x from v = x + σ n (n white, unit Gaussian) given σ, FFDNet/DRUNet style: the
network sees the noisy image and a constant map of σ as a second channel,

    D(v, σ) = v + U([v, σ·1]),   U a UNet (`invmap.models.unet`),

so D(v, 0) ≈ v is easy to learn and one set of weights covers the whole range σ ∈
[0, ``sigma_max``]. Under the squared loss D is the MMSE denoiser E[x | v], hence by Tweedie's
formula a score, ∇ log p_σ(v) = (D(v, σ) − v)/σ² — what the plug-and-play splittings
(`invmap.models.pnp`) and the posterior samplers (`invmap.models.posterior`) use it for.

**Training by invmap** (`configs/zoo/denoiser.yaml`): the identity operator and Gaussian
noise whose σ is *drawn per image*, ``noise: {name: gaussian, sigma: {uniform: [0, 0.3]}}``
(`invmap.distributions`): every pair carries its own σ_i in its physics, and `preprocess`
reads it from there, z_i = [y_i, σ_i·1]. As a reconstructor on such a task, x̂ = D(y, σ)
with σ the task's noise level. σ outside the trained range, an image of other channels or
a measurement that is not an image (an operator other than a denoising one) is a one-line
``ValueError``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

from .. import zoo
from ..operators.base import operator_of
from .io import load_model
from .registry import KINDS
from .reconstructor import Reconstructor
from .unet import UNet

#: σ above the trained range by at most this fraction is still accepted (float rounding of schedules)
SIGMA_SLACK = 1e-6


class NoiseConditionalDenoiser(Reconstructor):
    """D(v, σ) = v + UNet([v, σ·1]) (see the module docstring)."""

    kind = "denoiser"
    operator_inside = False  # K only in `preprocess` (the identity): any minibatch mixes samples
    noise_conditional = True

    def __init__(self, depth: int = 3, base_channels: int = 32, sigma_max: float = 0.3):
        super().__init__()
        if not 0 < float(sigma_max) < float("inf"):
            raise ValueError(f"denoiser: sigma_max must be a finite number > 0, got {sigma_max}")
        self.net = UNet(depth=depth, base_channels=base_channels, in_channels=2, out_channels=1, residual=False)
        self.sigma_max, self.depth, self.base_channels = float(sigma_max), int(depth), int(base_channels)

    # ------------------------------------------------------------------ the prior
    def check_sigma(self, sigma: torch.Tensor | float) -> torch.Tensor:
        """σ as a float tensor; outside [0, sigma_max] (or not finite) is a one-line ValueError."""
        s = torch.as_tensor(sigma, dtype=torch.float32)
        c = s.detach()  # a learned σ (`invmap.models.unfolded`) keeps its gradient; the check reads values
        if c.numel() == 0 or not bool(torch.isfinite(c).all()) or float(c.min()) < 0 \
                or float(c.max()) > self.sigma_max * (1 + SIGMA_SLACK):
            lo, hi = (float(c.min()), float(c.max())) if c.numel() else (float("nan"),) * 2
            raise ValueError(f"denoiser: noise level σ in [{lo:.4g}, {hi:.4g}] is outside the trained range "
                             f"[0, {self.sigma_max:g}]")
        return s

    def denoise(self, v: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """D(v, σ) for images v ``[B, 1, H, W]`` and σ a number or one per image ``[B]``."""
        if v.dim() != 4 or v.shape[1] != 1 or v.is_complex():
            raise ValueError(f"denoiser: expected real images [B, 1, H, W], got {list(v.shape)}"
                             f"{' complex' if v.is_complex() else ''}")
        if v.shape[0] == 0:
            raise ValueError("denoiser: empty batch: nothing to denoise")
        s = self.check_sigma(sigma).to(v.device, v.dtype)
        if s.numel() not in (1, v.shape[0]):
            raise ValueError(f"denoiser: {s.numel()} noise levels for {v.shape[0]} images")
        s = s.reshape(-1, 1, 1, 1).expand(v.shape[0], 1, *v.shape[2:])
        return self.from_input(torch.cat([v, s], dim=1))

    # ------------------------------------------------------------------ as a reconstructor
    @torch.no_grad()
    def preprocess(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """z = [y, σ·1] with σ the noise level of `physics` (per sample when the noise is drawn)."""
        op = operator_of(physics)
        if tuple(op.in_shape) != tuple(op.out_shape) or y.is_complex():
            raise ValueError(f"denoiser: reconstructs denoising tasks (y an image like x); operator '{op.name}' "
                             f"maps {list(op.in_shape)} to {list(op.out_shape)}")
        noise = getattr(physics, "noise", None)
        sigma = noise.sigma(y) if noise is not None else None
        if sigma is None:
            raise ValueError("denoiser: needs the noise level σ of each image (gaussian noise with sigma or "
                             "relative, possibly drawn per image); a sigma_range is unknown per image")
        s = self.check_sigma(sigma.float()).to(y.device, y.dtype)
        return torch.cat([y.detach(), s.reshape(-1, 1, 1, 1).expand(y.shape[0], 1, *y.shape[2:])], dim=1)

    def from_input(self, z: torch.Tensor, physics: Any = None) -> torch.Tensor:
        """D = v + U(z) from z = [v, σ·1]."""
        return z[:, :1] + self.net(z)

    def forward(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """x̂ = D(y, σ), σ the noise level of `physics`."""
        return self.from_input(self.preprocess(y, physics))

    def input_shape(self, physics: Any) -> tuple[int, ...]:
        return (2, *operator_of(physics).in_shape)

    def trained_blocks(self, physics: Any) -> list:
        return [(self.net, self.input_shape(physics))]


@KINDS.register("denoiser")
def denoiser(depth: int = 3, base_channels: int = 32, sigma_max: float = 0.3) -> NoiseConditionalDenoiser:
    """Noise-conditional denoiser D(v, σ) = v + UNet([v, σ·1]) for σ ∈ [0, sigma_max] (train on drawn σ)."""
    return NoiseConditionalDenoiser(depth, base_channels, sigma_max)


denoiser.from_spec = NoiseConditionalDenoiser.from_spec  # a saved denoiser rebuilds from model.json


@functools.lru_cache(maxsize=4)
def _load(where: str, stamp: float) -> NoiseConditionalDenoiser:
    with torch.device("cpu"):  # also when a config check describes a model on the meta device
        recon, meta = load_model(where)
    if not getattr(recon, "noise_conditional", False) or not hasattr(recon, "denoise"):
        raise ValueError(f"{where}: a '{getattr(recon, 'kind', type(recon).__name__)}' model, not a noise-conditional "
                         "denoiser (train one: invmap train configs/zoo/denoiser.yaml)")
    return recon.eval().requires_grad_(False)


def load_prior(denoiser: str) -> NoiseConditionalDenoiser:
    """The noise-conditional denoiser of a run directory or zoo entry (``pretrained:NAME``), loaded
    once per file version (cached by path and modification time; frozen, shared: copy it to train it)."""
    where = zoo.run_dir(denoiser)
    weights = where / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"denoiser {denoiser}: no trained model at {where} (model.safetensors); the zoo "
                                f"entry is pretrained:denoiser, or train one: invmap train configs/zoo/denoiser.yaml")
    return _load(str(where.resolve()), os.stat(weights).st_mtime)


__all__ = ["NoiseConditionalDenoiser", "denoiser", "load_prior"]
