"""Filtered back-projection (FBP) for the `tomography` and `fanbeam` operators.

Parallel beam, views θ_i covering [0°, 180°):

    x̂(p) = Σ_i Δθ_i · Q_i(p · e(θ_i)),     Q_i = τ · (y_i ∗ h) · window

with ``h`` the band-limited ramp kernel sampled at the detector spacing τ (Kak & Slaney,
eq. 3.61: h[0] = 1/(4τ²), h[odd n] = -1/(π n τ)², h[even n] = 0; it has no DC bias),
``e(θ) = (cos θ, sin θ)`` and Δθ_i the angular weight of view i.

Fan beam with a flat detector, full 360° scan (Kak & Slaney §3.4.2, equispaced
collinear detectors): with the detector rescaled to the virtual detector through the
origin, u' = u·SO/(SO+OD),

    R'_i(u') = y_i(u') · SO / sqrt(SO² + u'²),   Q_i = ½ τ' (R'_i ∗ h) · window,
    x̂(p) = Σ_i Δβ_i · Q_i(u'(p)) / U(p)²,
    U = (SO + p·e⊥(β_i)) / SO,   u'(p) = SO · (p·e(β_i)) / (SO + p·e⊥(β_i)).

The back-projection is *pixel-driven* (each pixel centre is projected on the detector and
the filtered sinogram is interpolated linearly there), the standard discretisation of the
inversion formula and that of ``skimage.transform.iradon``. It is not Kᵀ (which is
ray-driven, see `invmap.operators.tomography`); solvers use Kᵀ.

Windows multiply the ramp in frequency, ν = f / (cutoff · f_Nyquist) ∈ [0, 1], zero
beyond: ``ramp`` 1, ``shepp-logan`` sinc(ν/2), ``cosine`` cos(πν/2), ``hann``
(1 + cos πν)/2 — the same windows as scikit-image at ``cutoff=1``.

Angular weights Δθ_i: each view gets half the gap to each neighbour on the circle of
period 180° (parallel) or 360° (fan), each half capped at the median half-gap, so uniform
full scans get π/A (2π/A), sparse uniform views likewise, and a limited arc is not
inflated at its ends.

Fan-beam short scans (an arc between 180° and 360°) are Parker-weighted (Parker 1982):
the ray (β, γ), with γ = atan(u'/SO) the fan angle of detector cell u', meets the same line
as (β + π − 2γ, −γ) in this geometry, so rays measured twice get weights summing to one,

    w = sin²(π/4 · β/(δ + γ))              for 0 ≤ β < 2δ + 2γ,
    w = 1                                  for 2δ + 2γ ≤ β ≤ π + 2γ,
    w = sin²(π/4 · (π + 2δ − β)/(δ − γ))   for π + 2γ < β ≤ π + 2δ,

with β measured from the first view and π + 2δ the scanned span; the weights replace the
½ of the full-scan formula. The data are complete when δ is at least the half fan angle
(a span of 180° plus the full fan angle); a shorter arc is reconstructed as well as the
data allow. Below a 180° span (limited angle) Parker's formula does not apply; each ray
then gets 1 / (number of views within the arc that measure its line), so lines measured
once keep their full weight.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..operators.normalised import Normalised


FILTERS = ("ramp", "shepp-logan", "cosine", "hann")


def filter_response(n: int, spacing: float, filter: str = "ramp", cutoff: float = 1.0) -> np.ndarray:
    """Frequency response (length ``n//2 + 1``, for ``rfft`` of length n) of the windowed ramp."""
    if filter not in FILTERS:
        raise ValueError(f"unknown FBP filter '{filter}'; available: {', '.join(FILTERS)}")
    if not (0 < cutoff <= 1):
        raise ValueError(f"cutoff must be in (0, 1] (fraction of the Nyquist frequency), got {cutoff}")
    k = np.concatenate([np.arange(0, n // 2 + 1), np.arange(n // 2 - 1, 0, -1)]).astype(np.float64)
    h = np.zeros(n)
    h[0] = 1.0 / (4 * spacing**2)
    odd = k % 2 == 1
    h[odd] = -1.0 / (np.pi * k[odd] * spacing) ** 2
    resp = spacing * np.real(np.fft.rfft(h))
    nu = np.fft.rfftfreq(n) / (0.5 * cutoff)  # 1 at the cut-off
    if filter == "shepp-logan":
        resp = resp * np.sinc(nu / 2)
    elif filter == "cosine":
        resp = resp * np.cos(np.pi * nu / 2)
    elif filter == "hann":
        resp = resp * 0.5 * (1 + np.cos(np.pi * nu))
    resp[nu > 1] = 0.0
    return resp


def angular_weights(angles_deg, period: float) -> np.ndarray:
    """Δθ_i in radians (see the module docstring)."""
    a = np.asarray(angles_deg, dtype=np.float64) % period
    if len(a) == 1:
        return np.array([np.deg2rad(period)])
    order = np.argsort(a, kind="stable")
    s = a[order]
    gaps = np.diff(np.concatenate([s, [s[0] + period]]))  # gap after each sorted view
    half = gaps / 2
    cap = np.median(half)
    right = np.minimum(half, cap)
    left = np.minimum(np.roll(half, 1), cap)
    w = np.empty_like(a)
    w[order] = left + right
    return np.deg2rad(w)


def _short_scan(angles_deg) -> tuple[np.ndarray, float, float] | None:
    """(β of each view from the first, in radians; scanned span; median step), or None for a
    full 360° scan or a single view."""
    a = np.asarray(angles_deg, dtype=np.float64)
    if len(a) < 2:
        return None
    beta = np.deg2rad(a - a.min())
    span, step = float(beta.max()), float(np.median(np.diff(np.sort(beta))))
    return None if span + step >= 2 * np.pi - 1e-6 else (beta, span, step)


def parker_weights(angles_deg, gamma: np.ndarray) -> np.ndarray | None:
    """Parker weights w[i, j] for view i and fan angle ``gamma[j]`` (radians) of a fan-beam
    short scan; None for a full 360° scan or a span of at most 180° (see the module docstring)."""
    scan = _short_scan(angles_deg)
    if scan is None or scan[1] <= np.pi + 1e-9:
        return None
    beta, span, _ = scan
    delta = (span - np.pi) / 2
    b, g = beta[:, None], np.asarray(gamma, dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        rise = np.sin(np.pi / 4 * b / (delta + g)) ** 2
        fall = np.sin(np.pi / 4 * (np.pi + 2 * delta - b) / (delta - g)) ** 2
    w = np.where(b < 2 * (delta + g), rise, np.ones_like(b * g))
    w = np.where(b > np.pi + 2 * g, fall, w)
    return np.nan_to_num(np.clip(w, 0.0, 1.0), nan=0.0)


def redundancy_weights(angles_deg, gamma: np.ndarray) -> np.ndarray | None:
    """1 / (times the line of ray (β, γ) is measured within the arc) for a fan-beam scan
    shorter than 360°: conjugates (β ± π − 2γ, −γ); None for a full scan."""
    scan = _short_scan(angles_deg)
    if scan is None:
        return None
    beta, span, step = scan
    b, g = beta[:, None], np.asarray(gamma, dtype=np.float64)[None, :]
    count = 1.0 + (b + np.pi - 2 * g <= span + step / 2) + (b - np.pi - 2 * g >= -step / 2)
    return 1.0 / count


def short_scan_weights(angles_deg, gamma: np.ndarray) -> np.ndarray | None:
    """Weights of a fan-beam scan shorter than 360° (Parker's from a 180° span on, else
    `redundancy_weights`); None for a full scan."""
    w = parker_weights(angles_deg, gamma)
    return w if w is not None else redundancy_weights(angles_deg, gamma)


def _filter(y: torch.Tensor, spacing: float, filter: str, cutoff: float) -> torch.Tensor:
    D = y.shape[-1]
    n = max(64, 1 << int(math.ceil(math.log2(2 * D))))
    resp = torch.as_tensor(filter_response(n, spacing, filter, cutoff), dtype=y.dtype, device=y.device)
    Y = torch.fft.rfft(y, n=n, dim=-1)
    return torch.fft.irfft(Y * resp, n=n, dim=-1)[..., :D]


#: the pixel-driven back-projection is kept as a sparse matrix up to this many entries
MAX_BP_NNZ = 60_000_000


def _bp_coords(g, weights: np.ndarray, rows: slice, dev) -> tuple[torch.Tensor, torch.Tensor]:
    """For pixels `rows` × all views: fractional cell index k [P, A] and weight w [P, A] (float64)."""
    H, W, D = g.height, g.width, g.detectors
    pix = torch.arange(rows.start, rows.stop, device=dev)
    xs = (pix % W).to(torch.float64)[:, None] - (W - 1) / 2 - g.center[0]  # relative to the rotation centre
    ys = (H - 1) / 2 - (pix // W).to(torch.float64)[:, None] - g.center[1]
    th = torch.deg2rad(torch.tensor(g.angles, dtype=torch.float64, device=dev))[None, :]
    c, s = torch.cos(th), torch.sin(th)
    pe = xs * c + ys * s  # p · e(θ)
    w = torch.as_tensor(weights, dtype=torch.float64, device=dev)[None, :].expand_as(pe)
    if g.fan:
        so, sdd = g.source_distance, g.source_distance + g.detector_distance
        L = so + (-xs * s + ys * c)  # SO + p · e⊥(θ)
        k = (sdd * pe / L - g.offset) / g.spacing
        w = w * (so / L) ** 2
    else:
        k = (pe - g.offset) / g.spacing
    return (k + (D - 1) / 2).clamp(-1.0, float(D)), w


def _bp_entries(g, weights, rows: slice, dev):
    """Column index (into the zero-padded sinogram [A, D+2]) and value of both interpolation taps."""
    k, w = _bp_coords(g, weights, rows, dev)
    k0 = torch.floor(k)
    f = k - k0
    A = len(g.angles)
    col = (k0.long() + 1) + torch.arange(A, device=dev)[None, :] * (g.detectors + 2)
    return torch.stack([col, col + 1], -1), torch.stack([w * (1 - f), w * f], -1)  # [P, A, 2]


def _bp_csr(g, weights, rows: slice, like: torch.Tensor) -> torch.Tensor:
    """Rows `rows` of the pixel-driven back-projection as CSR [P, A·(D+2)] on like's device/dtype."""
    A, D = len(g.angles), g.detectors
    cols, vals = [], []
    step = max(1, (1 << 21) // A)
    for r0 in range(rows.start, rows.stop, step):
        c, v = _bp_entries(g, weights, slice(r0, min(rows.stop, r0 + step)), torch.device("cpu"))
        cols.append(c.reshape(-1).to(torch.int32))
        vals.append(v.reshape(-1).to(torch.float64 if like.dtype == torch.float64 else torch.float32))
    P = rows.stop - rows.start
    crow = torch.arange(0, 2 * A * P + 1, 2 * A, dtype=torch.int32)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        M = torch.sparse_csr_tensor(crow, torch.cat(cols), torch.cat(vals), size=(P, A * (D + 2)),
                                    check_invariants=False)
    return M.to(device=like.device, dtype=like.dtype)


def _backproject(q: torch.Tensor, op, weights: np.ndarray) -> torch.Tensor:
    """Pixel-driven back-projection x̂(p) = Σ_i w_i(p) · q_i(k_i(p)), linear interpolation in k.

    `q` is [m, A, D]; returns [m, H, W]. The interpolation weights form a sparse matrix
    [H·W, A·(D+2)], cached on the operator when it has at most `MAX_BP_NNZ` entries, else
    built and applied in blocks of pixels (same numbers, bounded memory, slower).
    """
    g = op.fbp_geometry()
    H, W, D = g.height, g.width, g.detectors
    m, A = q.shape[0], q.shape[1]
    qp = torch.nn.functional.pad(q, (1, 1)).permute(1, 2, 0).reshape(A * (D + 2), m).contiguous()
    if 2 * H * W * A <= MAX_BP_NNZ:
        cache = op._cache.setdefault("fbp", {})
        key = (tuple(np.round(weights, 12)), q.device, q.dtype)
        if key not in cache:
            cache[key] = _bp_csr(g, weights, slice(0, H * W), q)
        return (cache[key] @ qp).T.reshape(m, H, W)
    out = torch.empty(H * W, m, device=q.device, dtype=q.dtype)
    step = max(1, (1 << 24) // (2 * A))  # ~16M entries per block
    for r0 in range(0, H * W, step):
        r1 = min(H * W, r0 + step)
        out[r0:r1] = _bp_csr(g, weights, slice(r0, r1), q) @ qp
    return out.T.reshape(m, H, W)


def fbp_geometry(op):
    """The CT geometry that FBP needs from `op` (``op.fbp_geometry()``; a one-line
    ValueError when it has none)."""
    g = op.fbp_geometry() if hasattr(op, "fbp_geometry") else None
    if g is None:
        raise ValueError(f"fbp needs an operator with a CT geometry (tomography, fanbeam), got "
                         f"'{getattr(op, 'name', None) or type(op).__name__}'")
    return g


def fbp(y: torch.Tensor, op, filter: str = "ramp", cutoff: float = 1.0) -> torch.Tensor:
    """x̂ = FBP(y) for an operator `op` with a CT geometry (``op.fbp_geometry()``: `tomography`
    parallel beam, `fanbeam` flat detector).

    ``y`` is shaped ``[..., views, detectors]`` (e.g. ``[B, C, A, D]``); returns
    ``[..., H, W]`` on y's device and dtype. ``filter`` ∈ ramp, shepp-logan, cosine, hann;
    ``cutoff`` ∈ (0, 1] is the fraction of the Nyquist frequency kept.
    """
    g = fbp_geometry(op)
    y = op._check(y, op.out_shape, "measurement")
    lead = y.shape[:-2]
    q = y.reshape(-1, *op.out_shape)
    if g.fan:
        so, sdd = g.source_distance, g.source_distance + g.detector_distance
        tau = g.spacing * so / sdd
        u = (torch.arange(g.detectors, dtype=torch.float64, device=y.device) - (g.detectors - 1) / 2) * tau
        u = u + g.offset * so / sdd
        q = q * (so / torch.sqrt(so**2 + u**2)).to(q.dtype)
        short = short_scan_weights(g.angles, np.arctan(u.cpu().numpy() / so))
        if short is None:
            q = 0.5 * _filter(q, tau, filter, cutoff)
        else:
            q = _filter(q * torch.as_tensor(short, dtype=q.dtype, device=q.device), tau, filter, cutoff)
        weights = angular_weights(g.angles, 360.0)
    else:
        q = _filter(q, g.spacing, filter, cutoff)
        weights = angular_weights(g.angles, 180.0)
    x = _backproject(q, op, weights)
    return x.reshape(*lead, g.height, g.width)


def first_iterate(p: Normalised, init: str, batch: int, like: torch.Tensor) -> torch.Tensor:
    """x₀ of an iterative method on K̃ = K/‖K‖ (`p`): zeros, K̃ᵀỹ ('adjoint'), FBP(y) ('fbp',
    operators with a filtered back-projection), or 'auto': FBP(y) where K has one, else K̃ᵀỹ."""
    if init == "auto":
        init = "fbp" if getattr(p.op, "has_fbp", False) else "adjoint"
    if init == "zero":
        return torch.zeros((batch, 1) + p.op.in_shape, device=like.device, dtype=torch.float32)
    if init == "adjoint":
        return p.Kt(p.y)
    if not getattr(p.op, "has_fbp", False):
        raise ValueError(f"init 'fbp' needs an operator with a filtered back-projection; '{p.op.name}' "
                         "has none (use init 'zero' or 'adjoint')")
    with torch.no_grad(), torch.autocast(like.device.type, enabled=False):  # K's matrices are float32
        return fbp(p.y.float() / p.c, p.op).float()


__all__ = ["FILTERS", "fbp", "fbp_geometry", "filter_response", "angular_weights", "parker_weights",
           "redundancy_weights", "short_scan_weights", "first_iterate"]
