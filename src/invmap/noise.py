"""Noise models e of y = K x + e, seeded through a ``torch.Generator``.

Every model is called as ``noise(y_clean, generator=None, mask=None)`` and returns a noisy
copy. Without a generator it uses its own, seeded at construction (``seed``), so the same
seed gives the same noise; data sets pass a per-index generator instead. ``mask`` is the
operator's `measured()` entries (MRI's sampled k-space, inpainting's observed pixels):
noise is added there only, the other entries of y stay exactly as K x left them (0), and
relative levels are measured over the m measured entries. `invmap.physics.Physics` passes
it for you.

Models (registry `NOISES`, `build(name, **params)`):

- ``none``: e = 0.
- ``gaussian``: e ~ N(0, σ²I) with an absolute σ (``sigma``), a relative level
  (``relative``: σ = level · ‖Kx‖/√m per sample, m = number of measured entries), or σ
  drawn uniformly per sample from ``sigma_range`` / ``relative_range``.
- ``poisson``: y = Poisson(photons · Kx) / photons (Kx ≥ 0; photon count per unit intensity).
- ``poisson-gaussian``: Poisson part as above plus Gaussian read noise of absolute σ.

`level(...)` scaling (`scaled(f)`) supports stress studies ("noise ×4").
Complex measurements (MRI) get independent noise on real and imaginary parts, each of
variance σ²/2, so E|e|² = σ² per measured entry. deepinv adds N(0, σ²) to each of the real
and imaginary channels (E|e|² = 2σ² per sampled entry): invmap σ = √2 · deepinv σ is the
same noise (docs/CONVENTIONS.md).
"""

from __future__ import annotations

from typing import Any

import torch

from .registry import Registry

NOISES = Registry("noise")


def names() -> list[str]:
    return NOISES.names()


def build(name: str, **params: Any) -> "NoiseModel":
    m = NOISES.build(name, **params)
    m.name = name
    return m


def _randn_like(y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    if y.is_complex():
        re = torch.randn(y.shape, generator=g, dtype=y.real.dtype, device=g.device).to(y.device)
        im = torch.randn(y.shape, generator=g, dtype=y.real.dtype, device=g.device).to(y.device)
        return torch.complex(re, im) / (2 ** 0.5)
    return torch.randn(y.shape, generator=g, dtype=y.dtype, device=g.device).to(y.device)


def _per_sample(y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (y.dim() - 1)).to(y.real.dtype if y.is_complex() else y.dtype).to(y.device)


def measured_count(y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """m per sample: the number of measured entries of y ``[B, ...]`` (all of them without a mask)."""
    per = torch.tensor(y[0].numel(), dtype=torch.float64)
    if mask is not None:
        per = mask.to(y.device).expand(y.shape[1:]).sum().double().cpu()
    return per.expand(y.shape[0])


def rms_measured(y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample rms of y over its measured entries, ‖y‖/√m (y is 0 off the mask), float64 ``[B]``."""
    sq = (y.abs() ** 2).reshape(y.shape[0], -1).sum(dim=1).double().cpu()
    return (sq / measured_count(y, mask).clamp_min(1)).sqrt()


class NoiseModel:
    """Base: holds its parameters and a seeded default generator."""

    name = "none"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self._gen = torch.Generator().manual_seed(self.seed)

    def params(self) -> dict:
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "name"}

    def spec(self) -> dict:
        return {"name": self.name, "params": self.params()}

    def __call__(self, y: torch.Tensor, generator: torch.Generator | None = None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
        if not bool(torch.isfinite(y).all()):
            raise ValueError(f"{type(self).__name__}: clean measurement contains NaN or Inf values")
        return self.apply(y, generator if generator is not None else self._gen, mask)

    def apply(self, y: torch.Tensor, g: torch.Generator, mask: torch.Tensor | None = None) -> torch.Tensor:
        """y + e with e on the entries of `mask` only (boolean, broadcast to y; None: every entry)."""
        out = self.sample(y, g, mask)
        return out if mask is None else torch.where(mask.to(y.device), out, y)

    def sample(self, y: torch.Tensor, g: torch.Generator,
               mask: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def scaled(self, factor: float) -> "NoiseModel":
        """The same family with its level multiplied by `factor` (σ for Gaussian, 1/√photons for Poisson)."""
        raise NotImplementedError(f"noise '{self.name}' cannot be scaled")

    def sigma(self, y_clean: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        """Nominal per-sample Gaussian std δ/√m on the measured entries (discrepancy principle), or None."""
        return None

    def variance(self, y: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-entry variance Var(e_i) of the noise, shaped like ``y`` (real; 0 off `mask`), with
        the measurement y standing in for the unknown K x; E‖e‖² = Σ_i Var(e_i)."""
        raise NotImplementedError(f"noise '{self.name}' has no variance model")

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({inner})"


@NOISES.register("none")
class NoNoise(NoiseModel):
    """No noise: y = K x."""

    def __init__(self, seed: int = 0):
        super().__init__(seed)

    def sample(self, y, g, mask=None):
        return y.clone()

    def scaled(self, factor: float) -> "NoiseModel":
        return NoNoise(seed=self.seed)

    def variance(self, y, mask=None):
        return _on_mask(torch.zeros(y.shape, dtype=y.real.dtype, device=y.device), mask)

    def sigma(self, y_clean, mask=None):
        return torch.zeros(y_clean.shape[0])


@NOISES.register("gaussian")
class GaussianNoise(NoiseModel):
    """Additive white Gaussian noise of absolute σ or relative level σ = level·‖Kx‖/√m."""

    def __init__(self, sigma: float | None = None, relative: float | None = None,
                 sigma_range: tuple[float, float] | None = None,
                 relative_range: tuple[float, float] | None = None, seed: int = 0):
        super().__init__(seed)
        given = [v is not None for v in (sigma, relative, sigma_range, relative_range)]
        if sum(given) == 0:
            relative = 0.01
        elif sum(given) > 1:
            raise ValueError("gaussian noise: give exactly one of sigma, relative, sigma_range, relative_range")
        for nm, v in (("sigma", sigma), ("relative", relative)):
            if v is not None and not (v >= 0 and v == v and v != float("inf")):
                raise ValueError(f"gaussian noise: {nm} must be a finite number >= 0, got {v}")
        for nm, r in (("sigma_range", sigma_range), ("relative_range", relative_range)):
            if r is not None and not (0 <= r[0] <= r[1] < float("inf")):
                raise ValueError(f"gaussian noise: {nm} must be (low, high) with 0 <= low <= high, got {r}")
        self.sigma_abs = sigma
        self.relative = relative
        self.sigma_range = tuple(sigma_range) if sigma_range is not None else None
        self.relative_range = tuple(relative_range) if relative_range is not None else None

    def params(self) -> dict:
        p = {"sigma": self.sigma_abs, "relative": self.relative, "sigma_range": self.sigma_range,
             "relative_range": self.relative_range, "seed": self.seed}
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.items() if v is not None or k == "seed"}

    def _levels(self, y: torch.Tensor, g: torch.Generator, mask: torch.Tensor | None = None) -> torch.Tensor:
        b = y.shape[0]
        if self.sigma_abs is not None:
            return torch.full((b,), float(self.sigma_abs), dtype=torch.float64)
        rms = rms_measured(y, mask).cpu()
        if self.relative is not None:
            return self.relative * rms
        lo, hi = self.sigma_range if self.sigma_range is not None else self.relative_range
        u = torch.rand(b, generator=g, dtype=torch.float64, device=g.device).cpu()
        lev = lo + (hi - lo) * u
        return lev if self.sigma_range is not None else lev * rms

    def sample(self, y, g, mask=None):
        s = self._levels(y, g, mask)
        return y + _per_sample(y, s) * _randn_like(y, g)

    def sigma(self, y_clean, mask=None):
        if self.sigma_range is not None or self.relative_range is not None:
            return None
        return self._levels(y_clean, self._gen, mask)

    def variance(self, y, mask=None):
        """σ² per measured entry; for a σ drawn uniformly from [lo, hi] its mean
        E σ² = (lo² + lo·hi + hi²)/3 (relative levels: times the mean square of y's measured entries)."""
        if self.sigma_range is None and self.relative_range is None:
            s2 = self._levels(y, self._gen, mask) ** 2
        else:
            lo, hi = self.sigma_range if self.sigma_range is not None else self.relative_range
            s2 = torch.full((y.shape[0],), (lo * lo + lo * hi + hi * hi) / 3.0, dtype=torch.float64)
            if self.relative_range is not None:
                s2 = s2 * rms_measured(y, mask) ** 2
        return _on_mask(_per_sample(y, s2).expand(y.shape).contiguous(), mask)

    def scaled(self, factor: float) -> "GaussianNoise":
        f = float(factor)
        sc = lambda v: None if v is None else v * f  # noqa: E731
        scr = lambda r: None if r is None else (r[0] * f, r[1] * f)  # noqa: E731
        return _named(GaussianNoise(sc(self.sigma_abs), sc(self.relative), scr(self.sigma_range),
                                    scr(self.relative_range), seed=self.seed), self.name)


@NOISES.register("poisson")
class PoissonNoise(NoiseModel):
    """Photon-counting noise: y = Poisson(photons·Kx)/photons (requires Kx ≥ 0)."""

    def __init__(self, photons: float = 1e4, seed: int = 0):
        super().__init__(seed)
        if not photons > 0:
            raise ValueError(f"poisson noise: photons must be > 0, got {photons}")
        self.photons = float(photons)

    def sample(self, y, g, mask=None):
        if y.is_complex():
            raise ValueError("poisson noise: measurement is complex; use gaussian noise for MRI")
        lam = (y.clamp_min(0) * self.photons).to(g.device)
        return (torch.poisson(lam, generator=g) / self.photons).to(y.device, y.dtype)

    def variance(self, y, mask=None):
        """(K x)_i / photons per measured entry, K x estimated by max(y, 0)."""
        return _on_mask(y.real.clamp_min(0) / self.photons, mask)

    def scaled(self, factor: float) -> "PoissonNoise":
        f = float(factor)
        return _named(PoissonNoise(photons=self.photons / (f * f) if f > 0 else 1e30, seed=self.seed), self.name)


@NOISES.register("poisson-gaussian")
class PoissonGaussianNoise(NoiseModel):
    """Poisson photon noise plus Gaussian read noise: y = Poisson(photons·Kx)/photons + σ·n."""

    def __init__(self, photons: float = 1e4, sigma: float = 0.01, seed: int = 0):
        super().__init__(seed)
        if not photons > 0:
            raise ValueError(f"poisson-gaussian noise: photons must be > 0, got {photons}")
        if not sigma >= 0:
            raise ValueError(f"poisson-gaussian noise: sigma must be >= 0, got {sigma}")
        self.photons, self.sigma_abs = float(photons), float(sigma)

    def params(self) -> dict:
        return {"photons": self.photons, "sigma": self.sigma_abs, "seed": self.seed}

    def sample(self, y, g, mask=None):
        p = PoissonNoise(self.photons).sample(y, g)
        return p + self.sigma_abs * _randn_like(y, g)

    def variance(self, y, mask=None):
        """(K x)_i / photons + σ² per measured entry, K x estimated by y itself: unbiased for the
        sum E‖e‖² (clamping y at 0 would count the read noise of dark entries twice)."""
        return _on_mask(y.real / self.photons + self.sigma_abs ** 2, mask)

    def scaled(self, factor: float) -> "PoissonGaussianNoise":
        f = float(factor)
        return _named(PoissonGaussianNoise(self.photons / (f * f) if f > 0 else 1e30, self.sigma_abs * f,
                                           seed=self.seed), self.name)


def _on_mask(v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`v` on the measured entries, 0 elsewhere."""
    return v if mask is None else torch.where(mask.to(v.device), v, torch.zeros_like(v))


def _named(m: NoiseModel, name: str) -> NoiseModel:
    m.name = name
    return m
