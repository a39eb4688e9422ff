"""Analytic phantoms: random ellipses and the (modified) Shepp–Logan phantom.

A phantom is a sum of constant-intensity ellipses on the square [-1, 1]², clipped to
[0, 1]:

    x(s, t) = clip( Σ_k ρ_k · 1[ ((u_k cos φ_k + v_k sin φ_k)/a_k)² + ((−u_k sin φ_k + v_k cos φ_k)/b_k)² ≤ 1 ], 0, 1 ),
    u_k = s − s_k,  v_k = t − t_k,

with s to the right and t upwards. A raster of N×N samples it at the pixel centres
s_j = −1 + (2j + 1)/N (row 0 at the top), so the same object can be rendered at any size —
the finer ground truth used against the inverse crime is the exact object, not an
upsampled image. Rendering is vectorised over the batch; the ellipses are added in a
fixed order so an image does not depend on the batch it is rendered in.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .sources import IMAGE_STREAM, SOURCES, ImageSource, mix_seed, split_code

#: Modified Shepp–Logan (Toft 1996): intensity ρ, semi-axes a, b, centre (s0, t0), angle φ (deg).
SHEPP_LOGAN_MODIFIED = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
)


def render_ellipses(e: torch.Tensor, size: int) -> torch.Tensor:
    """Rasterise ellipses ``e`` ``[B, K, 6]`` = (ρ, a, b, s0, t0, φ[rad]) to ``[B, 1, size, size]``.

    Pixel (row h, column j) gets ρ_k when its centre (s_j, t_h) lies in ellipse k. Per row
    the inside of an ellipse is the interval of s where the quadratic
    q_a u² + q_b u v + q_c v² ≤ 1 (u = s − s0, v = t_h − t0) holds, so each ellipse adds
    +ρ at the first and −ρ after the last covered column of a difference array, and one
    cumulative sum along the columns (float64) gives the image: O(B·K·H + B·H·W) instead of
    O(B·K·H·W). Unused slots have ρ = 0. Values are clipped to [0, 1].
    """
    e = torch.as_tensor(e, dtype=torch.float64)
    b, k = e.shape[0], e.shape[1]
    n = int(size)
    t = -((torch.arange(n, dtype=torch.float64) * 2 + 1) / n - 1)  # row centres, t upwards
    rho, a, bb, s0, t0, phi = (e[..., j, None] for j in range(6))  # [B, K, 1]
    cos, sin = torch.cos(phi), torch.sin(phi)
    ia2, ib2 = 1.0 / (a * a), 1.0 / (bb * bb)
    qa = cos * cos * ia2 + sin * sin * ib2          # coefficient of u²  (> 0)
    qc = sin * sin * ia2 + cos * cos * ib2          # coefficient of v²
    qb = 2.0 * cos * sin * (ia2 - ib2)              # coefficient of u·v
    v = t.view(1, 1, n) - t0                        # [B, K, H]
    disc = (qb * v) ** 2 - 4.0 * qa * (qc * v * v - 1.0)
    root = torch.sqrt(disc.clamp_min(0.0))
    s_lo = s0 + (-qb * v - root) / (2.0 * qa)
    s_hi = s0 + (-qb * v + root) / (2.0 * qa)
    # column j has centre s_j = (2j + 1)/n − 1, i.e. j = ((s + 1)·n − 1)/2
    j0 = torch.ceil(((s_lo + 1.0) * n - 1.0) / 2.0).clamp(0, n)
    j1 = torch.floor(((s_hi + 1.0) * n - 1.0) / 2.0).clamp(-1, n - 1)
    hit = (disc >= 0) & (j0 <= j1)
    w = torch.where(hit, rho.expand_as(v), torch.zeros((), dtype=torch.float64))
    j0 = torch.where(hit, j0, torch.zeros_like(j0)).long()
    j1 = torch.where(hit, j1 + 1, torch.zeros_like(j1)).long()
    diff = torch.zeros(b, n, n + 1, dtype=torch.float64)
    for kk in range(k):  # fixed order: an image never depends on its batch
        diff.scatter_add_(2, j0[:, kk, :, None], w[:, kk, :, None])
        diff.scatter_add_(2, j1[:, kk, :, None], -w[:, kk, :, None])
    img = diff[..., :n].cumsum(dim=-1)
    return img.clamp_(0.0, 1.0).to(torch.float32).unsqueeze(1)


def render_ellipses_direct(e: torch.Tensor, size: int) -> torch.Tensor:
    """Reference rasteriser: tests every pixel centre against every ellipse (O(B·K·H·W))."""
    e = torch.as_tensor(e, dtype=torch.float64)
    c = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1
    s, t = c.view(1, 1, 1, size), (-c).view(1, 1, size, 1)
    rho, a, bb, s0, t0, phi = (e[..., j, None, None] for j in range(6))
    u, v = s - s0, t - t0
    xr = u * torch.cos(phi) + v * torch.sin(phi)
    yr = -u * torch.sin(phi) + v * torch.cos(phi)
    inside = (xr / a) ** 2 + (yr / bb) ** 2 <= 1.0
    return (inside * rho).sum(dim=1, keepdim=True).clamp(0.0, 1.0).to(torch.float32)


def shepp_logan(size: int, modified: bool = True) -> torch.Tensor:
    """The (modified) Shepp–Logan phantom ``[1, size, size]`` in [0, 1].

    ``modified=False`` uses the original intensities (2, −0.98, −0.02, …), whose soft-tissue
    contrast is tiny; the result is clipped to [0, 1] either way.
    """
    return render_ellipses(_shepp_table(modified)[None], size)[0]


def _shepp_table(modified: bool = True) -> torch.Tensor:
    t = np.array(SHEPP_LOGAN_MODIFIED, dtype=np.float64)
    if not modified:
        t[:, 0] = (2.0, -0.98, -0.02, -0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01)
    t[:, 5] = np.deg2rad(t[:, 5])
    return torch.tensor(t, dtype=torch.float32)


def _rng(seed: int, split: str, i: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(mix_seed(seed, IMAGE_STREAM, split_code(split), i)))


@SOURCES.register("ellipses")
class Ellipses(ImageSource):
    """Random ellipse phantoms: a random number of ellipses (random centre, axes, angle, intensity).

    Each image adds ``n ~ U{min_ellipses..max_ellipses}`` ellipses with centres uniform in
    the disc of radius `center_radius`, semi-axes uniform in `axes`, angles uniform in
    [0, π) and intensities uniform in `intensity`; overlaps add and the sum is clipped to
    [0, 1]. ``dots > 0`` adds up to that many small bright discs (lesion-like: radius
    uniform in `dot_radius`, intensity uniform in `dot_intensity`). Image i of a split is a
    function of (seed, split, i) only; the splits use independent seed streams.
    """

    analytic = True

    def __init__(self, size: int, split: str = "train", seed: int = 0, count: int | None = None,
                 min_ellipses: int = 3, max_ellipses: int = 10,
                 axes: tuple[float, float] = (0.05, 0.4), center_radius: float = 0.5,
                 intensity: tuple[float, float] = (0.1, 0.6), dots: int = 0,
                 dot_radius: tuple[float, float] = (0.01, 0.03),
                 dot_intensity: tuple[float, float] = (0.5, 1.0)):
        super().__init__(size, split, seed)
        if not 0 <= min_ellipses <= max_ellipses:
            raise ValueError(f"ellipses: need 0 <= min_ellipses <= max_ellipses, got {min_ellipses}, {max_ellipses}")
        for nm, r in (("axes", axes), ("dot_radius", dot_radius)):
            if not 0 < r[0] <= r[1]:
                raise ValueError(f"ellipses: {nm} must be (low, high) with 0 < low <= high, got {tuple(r)}")
        for nm, r in (("intensity", intensity), ("dot_intensity", dot_intensity)):
            if not r[0] <= r[1]:
                raise ValueError(f"ellipses: {nm} must be (low, high) with low <= high, got {tuple(r)}")
        if dots < 0 or center_radius < 0:
            raise ValueError("ellipses: dots and center_radius must be >= 0")
        self.count = {"train": 1000, "val": 100, "test": 100}[split] if count is None else int(count)
        self.nmin, self.nmax, self.ndots = int(min_ellipses), int(max_ellipses), int(dots)
        self.axes, self.center_radius, self.intensity = tuple(axes), float(center_radius), tuple(intensity)
        self.dot_radius, self.dot_intensity = tuple(dot_radius), tuple(dot_intensity)
        self._params = {"min_ellipses": self.nmin, "max_ellipses": self.nmax, "axes": list(self.axes),
                        "center_radius": self.center_radius, "intensity": list(self.intensity),
                        "dots": self.ndots, "dot_radius": list(self.dot_radius),
                        "dot_intensity": list(self.dot_intensity)}

    def __len__(self) -> int:
        return self.count

    def table(self, i: int) -> torch.Tensor:
        """The ellipse table ``[max_ellipses + dots, 6]`` of image i (unused rows have ρ = 0)."""
        i = self._check_index(i)
        g = _rng(self.seed, self.split, i)
        k = self.nmax + self.ndots
        e = np.zeros((k, 6))
        n = int(g.integers(self.nmin, self.nmax + 1))
        # draw every slot so slot j's parameters do not depend on n (then mask)
        r = self.center_radius * np.sqrt(g.random(self.nmax))
        ang = 2 * math.pi * g.random(self.nmax)
        e[: self.nmax, 0] = g.uniform(*self.intensity, self.nmax) * (np.arange(self.nmax) < n)
        e[: self.nmax, 1] = g.uniform(*self.axes, self.nmax)
        e[: self.nmax, 2] = g.uniform(*self.axes, self.nmax)
        e[: self.nmax, 3] = r * np.cos(ang)
        e[: self.nmax, 4] = r * np.sin(ang)
        e[: self.nmax, 5] = math.pi * g.random(self.nmax)
        if self.ndots:
            m = int(g.integers(0, self.ndots + 1))
            rd = 0.7 * np.sqrt(g.random(self.ndots))
            ad = 2 * math.pi * g.random(self.ndots)
            rad = g.uniform(*self.dot_radius, self.ndots)
            e[self.nmax:, 0] = g.uniform(*self.dot_intensity, self.ndots) * (np.arange(self.ndots) < m)
            e[self.nmax:, 1] = rad
            e[self.nmax:, 2] = rad
            e[self.nmax:, 3] = rd * np.cos(ad)
            e[self.nmax:, 4] = rd * np.sin(ad)
        e[:, 1:3] = np.maximum(e[:, 1:3], 1e-6)
        return torch.tensor(e, dtype=torch.float32)

    def batch(self, indices: Sequence[int], size: int | None = None) -> torch.Tensor:
        if len(indices) == 0:
            n = size or self.size
            return torch.zeros(0, 1, n, n)
        tab = torch.stack([self.table(i) for i in indices])
        return render_ellipses(tab, size or self.size)

    def fine(self, indices: Sequence[int], factor: int = 2) -> torch.Tensor:
        return self.batch(indices, size=self.size * int(factor))


@SOURCES.register("shepp-logan")
class SheppLogan(ImageSource):
    """The modified Shepp–Logan phantom (Toft), rasterised at any size; `jitter` > 0 perturbs it.

    With ``jitter = 0`` every image is the standard phantom (a test object: ``count``
    copies, identical in every split). With ``jitter > 0`` image i is the table perturbed
    at random (centres ± 0.03·jitter, axes × (1 ± 0.1·jitter), angles ± 10°·jitter,
    inner intensities × (1 ± 0.5·jitter), Gaussian), seeded per (seed, split, i): a family
    of head-like phantoms with disjoint splits.
    """

    analytic = True

    def __init__(self, size: int, split: str = "train", seed: int = 0, count: int | None = None,
                 modified: bool = True, jitter: float = 0.0):
        super().__init__(size, split, seed)
        if not jitter >= 0:
            raise ValueError(f"shepp-logan: jitter must be >= 0, got {jitter}")
        self.count = 1 if count is None else int(count)
        self.modified, self.jitter = bool(modified), float(jitter)
        self._base = _shepp_table(self.modified)
        self._params = {"modified": self.modified, "jitter": self.jitter}

    def __len__(self) -> int:
        return self.count

    def table(self, i: int) -> torch.Tensor:
        i = self._check_index(i)
        if self.jitter == 0:
            return self._base.clone()
        g = _rng(self.seed, self.split, i)
        t = self._base.double().numpy().copy()
        k, j = t.shape[0], self.jitter
        t[:, 3:5] += 0.03 * j * g.standard_normal((k, 2))
        t[:, 1:3] *= np.clip(1 + 0.1 * j * g.standard_normal((k, 2)), 0.5, 1.5)
        t[:, 5] += np.deg2rad(10.0) * j * g.standard_normal(k)
        t[2:, 0] *= 1 + 0.5 * j * g.standard_normal(k - 2)
        return torch.tensor(t, dtype=torch.float32)

    def batch(self, indices: Sequence[int], size: int | None = None) -> torch.Tensor:
        if len(indices) == 0:
            n = size or self.size
            return torch.zeros(0, 1, n, n)
        return render_ellipses(torch.stack([self.table(i) for i in indices]), size or self.size)

    def fine(self, indices: Sequence[int], factor: int = 2) -> torch.Tensor:
        return self.batch(indices, size=self.size * int(factor))
