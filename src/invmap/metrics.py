"""Image-quality metrics of a reconstruction x̂ against the ground truth x, per image.

Every metric takes batched tensors shaped ``[B, C, H, W]`` (``[B, ...]`` for `mse` and
`relative_error`), is plain differentiable torch (``1 − ssim`` is a training loss), and
returns one value per image, a tensor ``[B]``:

- ``mse(x̂, x)            = (1/n) ‖x̂ − x‖²``
- ``relative_error(x̂, x) = ‖x̂ − x‖ / ‖x‖``
- ``psnr(x̂, x, L)        = 10 log10(L² / mse)``, with an explicit data range L (default 1)
- ``ssim(x̂, x, L)``: mean structural similarity of Wang et al. (2004),

      SSIM = (2 μ_x̂ μ_x + C1)(2 σ_x̂x + C2) / ((μ_x̂² + μ_x² + C1)(σ_x̂² + σ_x² + C2)),

  local statistics under an 11×11 Gaussian window of σ = 1.5 (normalised), C1 = (0.01 L)²,
  C2 = (0.03 L)², population (not sample) covariances, averaged over the "valid" window
  positions (those fully inside the image) and over channels. This equals
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=L)``.

The data range L is a stated convention (`DataRange`, config ``evaluation.data_range``):

- a number, e.g. ``1`` (default): a fixed L for every image — right for images scaled to
  [0, 1] as invmap's sources are;
- ``"max-min"``: L = max(x) − min(x) of each ground-truth image, the convention of DIVal
  and the LoDoPaB-CT benchmark (and of ``skimage.metrics`` with ``data_range=None`` on
  images that span their dtype's range only by accident). On images whose values do not
  fill [0, 1] the two differ by 20 log10(1 / (max − min)) dB (~1 dB on ellipse phantoms).
"""

from __future__ import annotations

from typing import Literal, Union

import torch
import torch.nn.functional as F

__all__ = ["mse", "relative_error", "psnr", "ssim", "DataRange", "data_range_of", "data_range_label",
           "METRICS", "HIGHER_IS_BETTER"]

#: The PSNR/SSIM data range convention: a fixed L (> 0) or ``"max-min"`` of each ground truth.
DataRange = Union[float, Literal["max-min"]]


def data_range_of(x: torch.Tensor, data_range: DataRange = 1.0) -> torch.Tensor:
    """L per image ``[B]`` (float64) of the ground truth `x` under the convention `data_range`."""
    if data_range == "max-min":
        flat = x.detach().reshape(x.shape[0], -1).double()
        L = flat.max(dim=1).values - flat.min(dim=1).values
        if not bool((L > 0).all()):
            raise ValueError("data range 'max-min': a ground-truth image is constant (max = min)")
        return L
    if isinstance(data_range, str) or not data_range > 0:
        raise ValueError(f"data_range must be a number > 0 or 'max-min', got {data_range!r}")
    return torch.full((x.shape[0],), float(data_range), dtype=torch.float64, device=x.device)


def data_range_label(data_range: DataRange) -> str:
    """How reports state the convention: ``"L = 1"`` or ``"L = max − min of each ground truth"``."""
    return "L = max − min of each ground truth" if data_range == "max-min" else f"L = {float(data_range):g}"


def _check_pair(x_hat: torch.Tensor, x: torch.Tensor, what: str, min_dim: int = 1) -> None:
    if not isinstance(x_hat, torch.Tensor) or not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected torch tensors")
    if x_hat.shape != x.shape:
        raise ValueError(f"{what}: shape mismatch: estimate {list(x_hat.shape)} vs reference {list(x.shape)}")
    if x.dim() < min_dim:
        raise ValueError(f"{what}: expected a batch of at least {min_dim} dimensions, got shape {list(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{what}: empty batch {list(x.shape)}: nothing to score")


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: (1/n) ‖x̂ − x‖², shape ``[B]``."""
    _check_pair(x_hat, x, "mse")
    return (x_hat - x).pow(2).reshape(x.shape[0], -1).mean(dim=1)


def relative_error(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Relative error per image: ‖x̂ − x‖ / ‖x‖, shape ``[B]`` (inf where x = 0 and x̂ ≠ x)."""
    _check_pair(x_hat, x, "relative_error")
    b = x.shape[0]
    out: torch.Tensor = (x_hat - x).reshape(b, -1).norm(dim=1) / x.reshape(b, -1).norm(dim=1)
    return out


def psnr(x_hat: torch.Tensor, x: torch.Tensor, data_range: DataRange = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image: 10 log10(L² / mse), L from `data_range_of`."""
    L = data_range_of(x, data_range).to(x.device)
    err = mse(x_hat, x)
    return 10.0 * torch.log10(L.to(err.dtype) ** 2 / err)


def gaussian_window(size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian window of `size` taps and std `sigma`."""
    t = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def ssim(x_hat: torch.Tensor, x: torch.Tensor, data_range: DataRange = 1.0, win_size: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean SSIM per image (Wang et al. 2004, Gaussian 11×11 window, σ = 1.5), shape ``[B]``.

    Inputs ``[B, C, H, W]`` (or ``[B, H, W]``) with H, W ≥ `win_size`; differentiable.
    """
    _check_pair(x_hat, x, "ssim", min_dim=3)
    if x.dim() == 3:
        x_hat, x = x_hat[:, None], x[:, None]
    if x.dim() != 4:
        raise ValueError(f"ssim: expected [B, C, H, W] images, got shape {list(x.shape)}")
    L = data_range_of(x, data_range).reshape(-1, 1, 1, 1)
    B, C, H, W = x.shape
    if H < win_size or W < win_size:
        raise ValueError(f"ssim: images of {H}x{W} are smaller than the {win_size}x{win_size} window")
    dtype = torch.promote_types(x_hat.dtype, x.dtype)
    x_hat, x = x_hat.to(dtype), x.to(dtype)
    g = gaussian_window(win_size, sigma, dtype, x.device)
    gh, gw = g.reshape(1, 1, win_size, 1), g.reshape(1, 1, 1, win_size)

    def filt(z: torch.Tensor) -> torch.Tensor:  # separable valid Gaussian filtering
        return F.conv2d(F.conv2d(z.reshape(B * C, 1, H, W), gh), gw)

    mu1, mu2 = filt(x_hat), filt(x)
    s11 = filt(x_hat * x_hat) - mu1 * mu1
    s22 = filt(x * x) - mu2 * mu2
    s12 = filt(x_hat * x) - mu1 * mu2
    L = L.to(dtype).repeat_interleave(C, dim=0)  # one L per image, for each of its channels
    c1, c2 = (k1 * L) ** 2, (k2 * L) ** 2
    smap = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2))
    return smap.reshape(B, -1).mean(dim=1)


#: name → metric(x_hat, x) for reports; higher-is-better flags for tables.
METRICS = {"mse": mse, "relative_error": relative_error, "psnr": psnr, "ssim": ssim}
HIGHER_IS_BETTER = {"mse": False, "relative_error": False, "psnr": True, "ssim": True}
