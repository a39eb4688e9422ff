"""Calibrated per-image bounds: "PSNR(x̂, x) ≥ b dB with probability 1 − α", without x.

Split conformal prediction (Vovk et al. 2005; normalised scores as in Papadopoulos et al.
2008), on n calibration pairs (y_j, x_j) simulated at the method's training conditions. Per
image, from what inference has — y, K, the method's x̂ and a classical baseline's x̂_b:

    a   = PSNR(x̂, x̂_b)               the agreement with the baseline (dB; ground-truth free)
    σ   = 1 + S₊ / S₀ = 1 − log₂ T    the trust score's suspicion, as a scale (1 when trusted)

and on the calibration pairs, with their truth p_j = PSNR(x̂_j, x_j):

    c   = median_j (p_j − a_j)        what the method gains over its agreement at home
    r_j = (a_j + c − p_j) / σ_j       the normalised nonconformity
    q   = the ⌈(n + 1)(1 − α)⌉-th smallest r_j

the bound of a new image is b = a + c − q σ. When the image and the calibration pairs are
exchangeable (the same conditions), P(p ≥ b) ≥ 1 − α, and ≤ 1 − α + 1/(n + 1) (no ties).
Away from the training conditions the guarantee is gone; the bound stays honest as far as
its two signals follow the failure: a falls when x̂ and x̂_b part (one of them failed), σ
grows when the trust score sees the data misfit. The stress study measures its coverage
per level. It needs n ≥ 1/α − 1 calibration pairs (else q would be +∞).

The PSNR uses the run's data range convention; with ``max-min`` the agreement uses x̂_b's
range (the truth's is unknown at inference).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch

from .. import metrics


def min_pairs(level: float) -> int:
    """The fewest calibration pairs a bound at probability `level` = 1 − α needs: ⌈1/α − 1⌉."""
    return math.ceil(round(1.0 / (1.0 - level) - 1.0, 9))  # rounded: 1/(1 − 0.9) is 10.000000000000002


def agreement(x_hat: torch.Tensor, x_baseline: torch.Tensor, data_range: metrics.DataRange = 1.0) -> torch.Tensor:
    """a = PSNR(x̂, x̂_b) per image (dB, float64): how close the method's image is to the baseline's."""
    return metrics.psnr(x_hat.float(), x_baseline.float(), data_range).double().cpu()


def scale(trust: torch.Tensor) -> torch.Tensor:
    """σ = 1 − log₂ T = 1 + S₊ / S₀ (≥ 1; `invmap.trust.Diagnostics.trust` is T = 2^(−S₊/S₀))."""
    t = trust.double().cpu().clamp(1e-300, 1.0)
    return 1.0 - torch.log2(t)


@dataclass(frozen=True)
class PsnrBound:
    """A fitted bound b = a + offset − quantile · σ holding with probability `level` at the
    training conditions (see the module docstring)."""

    level: float       # 1 − α
    offset: float      # c (dB)
    quantile: float    # q
    n: int             # calibration pairs
    data_range: Any = 1.0

    def __call__(self, agreement_db: torch.Tensor, trust: torch.Tensor) -> torch.Tensor:
        """b per image (dB)."""
        return agreement_db.double().cpu() + self.offset - self.quantile * scale(trust)

    def describe(self, of: str = "PSNR") -> str:
        return (f"{of} lower bound at probability {self.level:g} (split conformal on {self.n} calibration pairs "
                f"at the training conditions, scaled by the trust score; valid there, measured elsewhere)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PsnrBound":
        b = cls(float(d["level"]), float(d["offset"]), float(d["quantile"]), int(d["n"]), d.get("data_range", 1.0))
        if not (0 < b.level < 1 and math.isfinite(b.offset) and math.isfinite(b.quantile) and b.n >= min_pairs(b.level)):
            raise ValueError(f"not a PSNR bound: {dict(d)!r:.120}")
        return b


def fit(psnr: torch.Tensor, agreement_db: torch.Tensor, trust: torch.Tensor, level: float = 0.9,
        data_range: Any = 1.0) -> PsnrBound:
    """Fit the bound on calibration pairs: their true PSNR p_j, agreement a_j and trust T_j.

    A one-line ValueError when there are too few pairs for `level` (n < 1/α − 1) or none finite."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"a bound's probability must be in (0, 1), got {level}")
    p, a, s = psnr.double().cpu(), agreement_db.double().cpu(), scale(trust)
    ok = torch.isfinite(p) & torch.isfinite(a) & torch.isfinite(s)
    p, a, s = p[ok], a[ok], s[ok]
    n, need = int(p.numel()), min_pairs(level)
    if n < need:
        raise ValueError(f"a PSNR bound at probability {level:g} needs at least {need} calibration pairs "
                         f"(n ≥ 1/α − 1, α = {1 - level:.3g}); got {n}")
    c = float((p - a).median())
    r = torch.sort((a + c - p) / s).values
    k = math.ceil(round((n + 1) * level, 9))  # 1-based rank; k ≤ n by the check above
    return PsnrBound(float(level), c, float(r[k - 1]), n, data_range)


__all__ = ["PsnrBound", "fit", "agreement", "scale", "min_pairs"]
