"""The posterior spread as a trust signal: does the std map s point at the true error?

A posterior sampler (`invmap.variational.posterior`) returns with its mean x̂ a per-pixel
standard deviation s. Per image, against the true error e = |x̂ − x|:

- ``spearman(s, e)``: Spearman's rank correlation over the pixels, ρ_S = Pearson(rank s, rank e)
  (1: the larger the spread, the larger the error, in the same order);
- ``coverage(e, s, k)``: the fraction of pixels with e ≤ k·s (k = 2: 95% for a Gaussian
  posterior that is right about its own spread).

Both need ground truth: the evaluation and the stress study record them per image
(``std_spearman``, ``std_coverage``) to say how far the spread can stand in for the error.
"""

from __future__ import annotations

import torch


def _ranks(t: torch.Tensor) -> torch.Tensor:
    """Ranks 0…n−1 along the last axis (ties in sort order)."""
    order = t.argsort(dim=-1)
    r = torch.empty_like(order, dtype=torch.float64)
    r.scatter_(-1, order, torch.arange(t.shape[-1], dtype=torch.float64).expand_as(order).contiguous())
    return r


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image (first axis) Spearman rank correlation of the pixels of `a` and `b`, ``[B]``;
    NaN for an image where either map is constant."""
    ra, rb = _ranks(a.reshape(a.shape[0], -1).double()), _ranks(b.reshape(b.shape[0], -1).double())
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    den = (ra.pow(2).sum(1) * rb.pow(2).sum(1)).sqrt()
    flat = (a.reshape(a.shape[0], -1).std(1) == 0) | (b.reshape(b.shape[0], -1).std(1) == 0)
    out = (ra * rb).sum(1) / den
    return torch.where(flat.cpu(), torch.full_like(out, float("nan")), out)


def coverage(error: torch.Tensor, std: torch.Tensor, k: float = 2.0) -> torch.Tensor:
    """Per image the fraction of pixels with |error| ≤ k·std, ``[B]``."""
    inside = error.abs().reshape(error.shape[0], -1) <= k * std.reshape(std.shape[0], -1)
    return inside.double().mean(1).cpu()


__all__ = ["spearman", "coverage"]
