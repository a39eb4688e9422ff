"""Metrics against closed forms and scikit-image references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from invmap import metrics


def noisy_pair(img: np.ndarray, sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.clip(img + sigma * rng.standard_normal(img.shape), 0, 1), img


def as_batch(*imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(imgs))[:, None]


def test_mse_relative_error_psnr_closed_forms(camera64):
    xh, x = noisy_pair(camera64, 0.05, 0)
    xh2, _ = noisy_pair(camera64, 0.2, 1)
    XH, X = as_batch(xh, xh2), as_batch(x, x)
    mse = metrics.mse(XH, X)
    assert mse.shape == (2,)
    np.testing.assert_allclose(mse.numpy(), [np.mean((xh - x) ** 2), np.mean((xh2 - x) ** 2)], rtol=1e-12)
    np.testing.assert_allclose(metrics.relative_error(XH, X).numpy(),
                               [np.linalg.norm(xh - x) / np.linalg.norm(x), np.linalg.norm(xh2 - x) / np.linalg.norm(x)],
                               rtol=1e-12)
    for L in (1.0, 2.0):
        ref = [peak_signal_noise_ratio(x, xh, data_range=L), peak_signal_noise_ratio(x, xh2, data_range=L)]
        np.testing.assert_allclose(metrics.psnr(XH, X, data_range=L).numpy(), ref, rtol=1e-12)
    assert float(metrics.psnr(XH, X)[0]) > float(metrics.psnr(XH, X)[1])


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.3])
@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_ssim_matches_skimage(camera64, sigma, scale):
    crops = [camera64[:40, :48], camera64[20:60, 10:58]]
    pairs = [noisy_pair(c, sigma, seed=i) for i, c in enumerate(crops)]
    XH = as_batch(*[p[0] for p in pairs]) * scale
    X = as_batch(*[p[1] for p in pairs]) * scale
    ours = metrics.ssim(XH, X, data_range=scale)
    ref = [structural_similarity(xh * scale, x * scale, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=scale) for xh, x in pairs]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-3)
    ours32 = metrics.ssim(XH.float(), X.float(), data_range=scale)
    np.testing.assert_allclose(ours32.numpy(), ref, atol=1e-3)


def test_ssim_properties_and_batching(camera64):
    x = as_batch(camera64, camera64[::-1].copy())
    assert torch.allclose(metrics.ssim(x, x), torch.ones(2, dtype=torch.float64))
    xh = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    both = metrics.ssim(xh, x)
    torch.testing.assert_close(both[1:], metrics.ssim(xh[1:], x[1:]))
    assert float(both.max()) < 1.0
    # channels are averaged; [B, H, W] is one channel
    two = torch.cat([x, xh], dim=1)
    torch.testing.assert_close(metrics.ssim(torch.cat([xh, xh], 1), two), (1 + metrics.ssim(xh, x)) / 2)
    torch.testing.assert_close(metrics.ssim(xh[:, 0], x[:, 0]), both)


def test_ssim_is_differentiable():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 12, 11, generator=g, dtype=torch.float64)
    xh = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=x.dtype)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: 1 - metrics.ssim(a, x), (xh,), fast_mode=True)
    loss = (1 - metrics.ssim(xh, x)).mean()
    loss.backward()
    assert xh.grad is not None and float(xh.grad.abs().sum()) > 0


def test_metric_errors():
    a, b = torch.zeros(2, 1, 16, 16), torch.zeros(2, 1, 16, 15)
    for f in (metrics.mse, metrics.relative_error, metrics.psnr, metrics.ssim):
        with pytest.raises(ValueError, match=r"shape mismatch.*\[2, 1, 16, 16\].*\[2, 1, 16, 15\]"):
            f(a, b)
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        metrics.ssim(torch.zeros(1, 1, 8, 30), torch.zeros(1, 1, 8, 30))
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(a, a, data_range=0)


def test_max_min_data_range_is_per_ground_truth(camera64):
    """``data_range="max-min"``: L = max(x) − min(x) of each ground truth (DIVal / LoDoPaB)."""
    crops = [0.2 + 0.5 * camera64[:40, :48], camera64[20:60, 10:58] ** 2]
    pairs = [noisy_pair(c, 0.05, seed=i) for i, c in enumerate(crops)]
    XH, X = as_batch(*[p[0] for p in pairs]), as_batch(*[p[1] for p in pairs])
    spans = [float(x.max() - x.min()) for _, x in pairs]
    assert min(spans) < 0.9  # the conventions differ on these images
    np.testing.assert_allclose(metrics.data_range_of(X, "max-min").numpy(), spans, rtol=1e-12)
    ref = [peak_signal_noise_ratio(x, xh, data_range=L) for (xh, x), L in zip(pairs, spans)]
    np.testing.assert_allclose(metrics.psnr(XH, X, data_range="max-min").numpy(), ref, rtol=1e-12)
    ref_ssim = [structural_similarity(xh, x, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                      data_range=L) for (xh, x), L in zip(pairs, spans)]
    np.testing.assert_allclose(metrics.ssim(XH, X, data_range="max-min").numpy(), ref_ssim, atol=1e-3)
    gap = metrics.psnr(XH, X, data_range=1.0) - metrics.psnr(XH, X, data_range="max-min")
    np.testing.assert_allclose(gap.numpy(), [-20 * np.log10(L) for L in spans], rtol=1e-9)
    for bad in ("max", -1.0, 0):
        with pytest.raises(ValueError, match="data_range"):
            metrics.psnr(XH, X, data_range=bad)
    with pytest.raises(ValueError, match="constant"):
        metrics.psnr(XH, torch.ones_like(X), data_range="max-min")
