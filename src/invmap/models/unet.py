"""U-Net x̂ = z + f_θ(z) (Ronneberger et al. 2015; attention gates: Oktay et al. 2018).

``depth`` scales: the encoder applies two (conv → norm → σ) at each scale and halves H, W
between scales (max-pool); the decoder doubles them (transposed conv), concatenates the
encoder features of the same scale (optionally weighted by an attention gate
α = sigmoid(ψᵀ σ(W_g g + W_x s)) computed from the decoder feature g and the skip s)
and applies two convs. Channels double at each coarser scale: base · 2^l.

Any H × W: the input is replicate-padded to a multiple of r·2^(depth−1) and the output
cropped back. No normalisation by default (as DRUNet, Zhang et al. 2021): batch-norm
running statistics lag behind in the short CPU trainings this package targets and make
eval-mode outputs differ from training-mode ones. ``space_to_depth`` = r > 1 runs the U-Net at H/r × W/r on r² sub-images
(reversible pixel-unshuffle in, pixel-shuffle out, as in FFDNet, Zhang et al. 2018): about
r² times less work at the finest scale, which is where a U-Net spends most of its time.
It trades accuracy for speed: on sparse-view CT (FBP input) it learned markedly worse than
the plain U-Net per step and per second (benchmarks/models_speed.py measures the speed). With ``residual`` (default) the network learns the correction
x̂ − z, as in FBPConvNet (Jin et al. 2017).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import MODELS
from .activations import Activation
from .base import Network, check_image_input
from .layers import ConvBlock, Norm, check_positive, check_residual, init_conv, pad_to_multiple


class AttentionGate(nn.Module):
    """s ↦ α ⊙ s with α = sigmoid(ψ(σ(W_g g + W_x s))) ∈ (0, 1) per pixel."""

    def __init__(self, channels: int):
        super().__init__()
        mid = max(channels // 2, 1)
        self.wg = nn.Conv2d(channels, mid, 1)
        self.wx = nn.Conv2d(channels, mid, 1, bias=False)
        self.psi = nn.Conv2d(mid, 1, 1)

    def forward(self, g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return s * torch.sigmoid(self.psi(torch.relu(self.wg(g) + self.wx(s))))


@MODELS.register("unet")
class UNet(Network):
    """U-Net with ``depth`` scales of base_channels·2^l maps, residual output, optional attention gates."""

    def __init__(self, depth: int = 3, base_channels: int = 16, in_channels: int = 1, out_channels: int = 1,
                 activation: Activation = "relu", norm: Norm = "none", attention: bool = False,
                 residual: bool = True, space_to_depth: int = 1):
        super().__init__()
        check_positive("unet", depth=depth, base_channels=base_channels, in_channels=in_channels,
                       out_channels=out_channels, space_to_depth=space_to_depth)
        if depth > 8:
            raise ValueError(f"model 'unet': 'depth' must be <= 8 scales, got {depth}")
        check_residual("unet", residual, in_channels, out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depth, self.residual, self.r = depth, residual, space_to_depth
        ch = [base_channels * 2**level for level in range(depth)]
        self.enc = nn.ModuleList(
            ConvBlock(in_channels * self.r**2 if level == 0 else ch[level - 1], ch[level], activation, norm)
            for level in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[level + 1], ch[level], 2, stride=2) for level in range(depth - 1))
        self.gates = nn.ModuleList(AttentionGate(ch[level]) for level in range(depth - 1)) if attention else None
        self.dec = nn.ModuleList(ConvBlock(2 * ch[level], ch[level], activation, norm) for level in range(depth - 1))
        self.out = nn.Conv2d(ch[0], out_channels * self.r**2, 1)
        init_conv(self, activation)
        if residual:  # start near the identity x̂ ≈ z: a small correction, not a random image
            self.out.weight.data.mul_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_input(self, x)
        h, size = pad_to_multiple(x, self.r * 2 ** (self.depth - 1))
        if self.r > 1:
            h = F.pixel_unshuffle(h, self.r)
        skips = []
        for level, block in enumerate(self.enc):
            h = block(h if level == 0 else self.pool(h))
            skips.append(h)
        h = skips.pop()
        for level in reversed(range(self.depth - 1)):
            g = self.up[level](h)
            s = skips[level]
            if self.gates is not None:
                s = self.gates[level](g, s)
            h = self.dec[level](torch.cat([g, s], dim=1))
        out = self.out(h)
        if self.r > 1:
            out = F.pixel_shuffle(out, self.r)
        out = out[..., : size[0], : size[1]]
        return x + out if self.residual else out
