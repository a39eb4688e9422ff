"""Per-pixel intervals with risk control: [x̂ − λ̂u, x̂ + λ̂u] misses at most a fraction α of
the true pixels, with probability ≥ 1 − δ over the calibration set (Angelopoulos et al. 2022,
"Image-to-image regression with distribution-free uncertainty quantification", im2im-uq).

The width map u comes from what inference has — the method's x̂ and a classical baseline's
x̂_b on the same y:

    d = box₃(|x̂ − x̂_b|)              where the two disagree (3×3 mean), and
    u = d + median(d)                 a floor per image, so smooth regions get width too.

On n calibration pairs (y_j, x_j) at the training conditions, the risk of a scale λ is the mean
over images of the fraction of pixels outside their interval,
R̂(λ) = (1/n) Σ_j |{p : |x̂_j,p − x_j,p| > λ u_j,p}| / |pixels|, and λ̂ is the smallest λ of a
grid such that every λ' ≥ λ passes the Hoeffding–Bentkus test of "R(λ') > α" at level δ
(p-value min(exp(−n·h(min(R̂, α), α)), e·P(Binomial(n, α) ≤ ⌈nR̂⌉)), h the binary relative
entropy). Then P(R(λ̂) ≤ α) ≥ 1 − δ for images exchangeable with the calibration pairs. It
needs n ≥ log δ / log(1 − α) pairs (22 for α = δ = 0.1): with fewer even R̂ = 0 is no evidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch

#: the scales λ tried (a log grid: u is in image units, λ from 1/100 of it to 10⁴ times it)
GRID = torch.logspace(-2, 4, 241, dtype=torch.float64)


def min_pairs(alpha: float, delta: float) -> int:
    """⌈log δ / log(1 − α)⌉: the fewest calibration pairs with which the test can pass at all."""
    return math.ceil(round(math.log(delta) / math.log1p(-alpha), 9))


def width_map(x_hat: torch.Tensor, x_baseline: torch.Tensor) -> torch.Tensor:
    """u = box₃(|x̂ − x̂_b|) + its median per image (``[B, 1, H, W]``, float32)."""
    d = torch.nn.functional.avg_pool2d((x_hat.float() - x_baseline.float()).abs(), 3, stride=1, padding=1,
                                       count_include_pad=False)
    floor = d.flatten(1).median(dim=1).values.clamp_min(1e-6)
    return d + floor.view(-1, *([1] * (d.dim() - 1)))


def outside(x: torch.Tensor, x_hat: torch.Tensor, u: torch.Tensor, lam: float) -> torch.Tensor:
    """Per image, the fraction of pixels whose truth lies outside [x̂ − λu, x̂ + λu] (float64 ``[B]``)."""
    miss = (x.float() - x_hat.float()).abs() > lam * u
    return miss.flatten(1).double().mean(dim=1).cpu()


def hb_p_value(risk: float, n: int, alpha: float) -> float:
    """The Hoeffding–Bentkus p-value of "the mean risk exceeds α" given the empirical mean `risk` of n
    bounded losses in [0, 1] (Bates et al. 2021)."""
    from scipy.stats import binom

    r = min(max(risk, 0.0), alpha)

    def h(a: float, b: float) -> float:  # the binary relative entropy KL(a ‖ b)
        return (a * math.log(a / b) if a > 0 else 0.0) + ((1 - a) * math.log((1 - a) / (1 - b)) if a < 1 else 0.0)

    hoeffding = math.exp(-n * h(r, alpha))
    bentkus = math.e * float(binom.cdf(math.ceil(round(n * risk, 9)), n, alpha))
    return min(hoeffding, bentkus, 1.0)


@dataclass(frozen=True)
class PixelIntervals:
    """x̂ ± λ u with risk ≤ α at confidence 1 − δ at the training conditions (module docstring)."""

    lam: float
    alpha: float
    delta: float
    n: int
    risk: float  # R̂(λ̂) on the calibration pairs

    def __call__(self, x_hat: torch.Tensor, x_baseline: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(lower, upper) images."""
        w = self.lam * width_map(x_hat, x_baseline)
        return x_hat.float() - w, x_hat.float() + w

    def describe(self) -> str:
        return (f"per-pixel intervals x̂ ± {self.lam:.3g}·u missing at most {self.alpha:g} of the pixels with "
                f"probability {1 - self.delta:g} (risk control on {self.n} calibration pairs at the training "
                f"conditions; u from |x̂ − x̂_TV|)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PixelIntervals":
        p = cls(float(d["lam"]), float(d["alpha"]), float(d["delta"]), int(d["n"]), float(d["risk"]))
        if not (p.lam > 0 and math.isfinite(p.lam) and 0 < p.alpha < 1 and 0 < p.delta < 1
                and p.n >= min_pairs(p.alpha, p.delta)):
            raise ValueError(f"not pixel intervals: {dict(d)!r:.120}")
        return p


def fit(x: torch.Tensor, x_hat: torch.Tensor, x_baseline: torch.Tensor, alpha: float = 0.1,
        delta: float = 0.1) -> PixelIntervals:
    """λ̂ on calibration pairs (truth x, the method's x̂, the baseline's x̂_b); a one-line ValueError
    with too few pairs or when no λ of the grid passes."""
    if not (0 < alpha < 1 and 0 < delta < 1):
        raise ValueError(f"pixel intervals need 0 < α, δ < 1, got α = {alpha}, δ = {delta}")
    n, need = int(x.shape[0]), min_pairs(alpha, delta)
    if n < need:
        raise ValueError(f"pixel intervals with risk ≤ {alpha:g} at confidence {1 - delta:g} need at least {need} "
                         f"calibration pairs (n ≥ log δ / log(1 − α)); got {n}")
    u = width_map(x_hat, x_baseline)
    err = (x.float() - x_hat.float()).abs()
    chosen, risk = None, math.nan
    for lam in GRID.flip(0).tolist():  # from wide to narrow: stop at the first λ that fails the test
        r = float((err > lam * u).flatten(1).double().mean(dim=1).mean())
        if hb_p_value(r, n, alpha) > delta:
            break
        chosen, risk = lam, r
    if chosen is None:
        raise ValueError(f"no interval scale up to {float(GRID[-1]):g}·u controls the pixel risk at {alpha:g} "
                         f"(confidence {1 - delta:g}) on these {n} calibration pairs")
    return PixelIntervals(chosen, float(alpha), float(delta), n, risk)


__all__ = ["PixelIntervals", "fit", "width_map", "outside", "hb_p_value", "min_pairs", "GRID"]
