"""Image-to-image Vision Transformer x̂ = z + f_θ(z) (Dosovitskiy et al. 2021, used as a denoiser).

1. patch embedding: the image (replicate-padded to a multiple of p) is cut into p × p patches,
   each mapped linearly to a token t ∈ R^D (a stride-p convolution);
2. position embedding: learned on the grid of a reference ``image_size`` and bicubically
   interpolated to other grids, or fixed 2-D sinusoidal (any grid);
3. ``depth`` pre-norm transformer blocks: t ← t + MHSA(LN t),  t ← t + MLP(LN t)
   (``heads`` heads, MLP hidden width ``mlp_ratio`` · D, activation σ);
4. patch un-embedding: LN, a linear map R^D → R^{C·p²} per token, tokens folded back into the
   image and cropped to H × W; with ``residual`` the input is added.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .registry import MODELS
from . import activations
from .activations import Activation
from .base import Network, check_image_input
from .layers import check_positive, check_residual, pad_to_multiple


def sincos_2d(dim: int, gh: int, gw: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Fixed 2-D sine–cosine position embedding ``[1, gh·gw, dim]`` (dim divisible by 4)."""
    q = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(q, device=device, dtype=torch.float64) / q))
    yy, xx = torch.meshgrid(torch.arange(gh, device=device, dtype=torch.float64),
                            torch.arange(gw, device=device, dtype=torch.float64), indexing="ij")
    ay, ax = yy.reshape(-1, 1) * omega, xx.reshape(-1, 1) * omega
    return torch.cat([ay.sin(), ay.cos(), ax.sin(), ax.cos()], dim=1)[None].to(dtype)


class Attention(nn.Module):
    """Multi-head self-attention softmax(QKᵀ/√d) V (torch's fused kernel)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        b, n, d = t.shape
        q, k, v = self.qkv(t).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)
        return self.proj(o.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, activation: str):
        super().__init__()
        hidden = max(int(round(dim * mlp_ratio)), 1)
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), activations.make(activation), nn.Linear(hidden, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        t = t + self.attn(self.norm1(t))
        return t + self.mlp(self.norm2(t))


@MODELS.register("vit")
class ViT(Network):
    """Image-to-image ViT: p×p patches → ``depth`` transformer blocks → patch un-embedding (+ input).

    ``activation`` defaults to gelu here (the transformer convention); ``image_size`` is the
    reference size of the learned position embedding (other sizes interpolate it).
    """

    def __init__(self, patch_size: int = 8, embed_dim: int = 96, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 2.0, image_size: int = 128,
                 pos_embed: Literal["learned", "sinusoidal"] = "learned", residual: bool = True,
                 in_channels: int = 1, out_channels: int = 1, activation: Activation = "gelu"):
        super().__init__()
        check_positive("vit", patch_size=patch_size, embed_dim=embed_dim, depth=depth, heads=heads,
                       image_size=image_size, in_channels=in_channels, out_channels=out_channels)
        if embed_dim % heads:
            raise ValueError(f"model 'vit': 'embed_dim' ({embed_dim}) must be divisible by 'heads' ({heads})")
        if pos_embed == "sinusoidal" and embed_dim % 4:
            raise ValueError(f"model 'vit': 'embed_dim' ({embed_dim}) must be divisible by 4 for sinusoidal 'pos_embed'")
        if mlp_ratio <= 0:
            raise ValueError(f"model 'vit': 'mlp_ratio' must be > 0, got {mlp_ratio}")
        check_residual("vit", residual, in_channels, out_channels)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.p, self.residual, self.pos_kind = patch_size, residual, pos_embed
        self.grid = max(math.ceil(image_size / patch_size), 1)
        self.embed = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        if pos_embed == "learned":
            self.pos = nn.Parameter(torch.zeros(1, embed_dim, self.grid, self.grid))
            nn.init.trunc_normal_(self.pos, std=0.02)
        else:
            self.pos = None
        self.blocks = nn.Sequential(*[Block(embed_dim, heads, mlp_ratio, activation) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, out_channels * patch_size**2)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    @property
    def any_size(self) -> bool:
        """Sine–cosine positions extend to any grid; learned ones were fitted to the training grid only."""
        return self.pos is None

    def _pos(self, gh: int, gw: int, like: torch.Tensor) -> torch.Tensor:
        if self.pos is None:
            return sincos_2d(like.shape[-1], gh, gw, like.device, like.dtype)
        pos = self.pos
        if (gh, gw) != (self.grid, self.grid):
            pos = F.interpolate(pos, size=(gh, gw), mode="bicubic", align_corners=False)
        return pos.flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_input(self, x)
        z, (h, w) = pad_to_multiple(x, self.p)
        e = self.embed(z)  # [B, D, gh, gw]
        b, d, gh, gw = e.shape
        t = e.flatten(2).transpose(1, 2)
        t = self.blocks(t + self._pos(gh, gw, t))
        out = self.head(self.norm(t))  # [B, gh·gw, C·p²]
        p, c = self.p, self.out_channels
        out = out.reshape(b, gh, gw, c, p, p).permute(0, 3, 1, 4, 2, 5).reshape(b, c, gh * p, gw * p)
        out = out[..., :h, :w]
        return x + out if self.residual else out
