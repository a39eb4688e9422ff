"""Inverse-crime guard: simulate y from a finer ground truth than the reconstruction grid.

Simulating y = K x + e with the very operator K (and pixel grid) used for reconstruction
— the *inverse crime* — flatters every method: the data hold no discretisation error. In
``simulation="fine"`` mode the measurement of image x (``size × size``) is

    y = s · R K_f x_f + e,

where x_f is the object on an f× finer grid (phantoms rendered again analytically, raster
images upsampled or re-read at higher resolution, see `ImageSource.fine`), K_f measures
the same physical quantity on that grid, R resamples its measurement to K's grid (average
pooling when K_f's measurement is an integer multiple finer; identity when equal) and s
fixes the units (e.g. s = 1/f for line integrals measured in pixel lengths). The result
has K's ``out_shape`` and differs from K x by the discretisation error only.

`fine_operator(K, f)` derives s·R·K_f, in order of preference:

1. ``K.refined(f)`` when the operator defines it (authoritative; same ``out_shape``);
2. ``rebuilt``: K rebuilt from its spec on the (fH, fW) grid with the parameters it
   declares as pixel lengths (``K.pixel_params``: tomography's detector spacing, fan-beam
   distances, blur widths, the downsampling factor) multiplied by f;
3. ``area``: K ∘ P_f, P_f the f×f average pooling — pixels integrate the finer object
   over their area (exact for pointwise operators: identity, inpainting, MRI, matrix).

For (1)–(2) the scale s is calibrated on a smooth test object and snapped to a power of f
(it must be one), and every derived operator is checked: on a smooth object rendered at
both resolutions ‖s R K_f x_f − K x‖ / ‖K x‖ must be below `CHECK_TOLERANCE`, otherwise a
``ValueError`` says the operator cannot be refined and suggests ``simulation="crime"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..operators import LinearOperator, from_spec

#: maximal relative mismatch ‖s R K_f x_f − K x‖/‖K x‖ on the smooth check object
CHECK_TOLERANCE = 0.05

MODES = ("crime", "fine")


class Pool(LinearOperator):
    """Average pooling P over the last two axes by (fh, fw): [.., fh·a, fw·b] → [.., a, b].

    (P z)[i, j] = mean of the fh×fw block; Pᵀ spreads each value/(fh·fw) over its block.
    """

    def __init__(self, in_shape: tuple[int, int], factors: tuple[int, int]):
        fh, fw = (int(v) for v in factors)
        super().__init__(in_shape, (in_shape[0] // fh, in_shape[1] // fw))
        if self.out_shape[0] * fh != in_shape[0] or self.out_shape[1] * fw != in_shape[1]:
            raise ValueError(f"Pool: shape {list(in_shape)} is not a multiple of factors {[fh, fw]}")
        self.factors = (fh, fw)
        self._params = {"factors": [fh, fw]}

    def _forward(self, z: torch.Tensor) -> torch.Tensor:
        fh, fw = self.factors
        a, b = self.out_shape
        return z.reshape(*z.shape[:-2], a, fh, b, fw).mean(dim=(-3, -1))

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        fh, fw = self.factors
        return y.repeat_interleave(fh, dim=-2).repeat_interleave(fw, dim=-1) / (fh * fw)


@dataclass
class Refined:
    """The fine-grid operator s·R·K_f and how it was derived (recorded in manifests)."""

    operator: LinearOperator
    factor: int
    method: str
    scale: float = 1.0
    mismatch: float = 0.0
    fine_spec: dict | None = field(default=None)

    def info(self) -> dict:
        return {"factor": self.factor, "method": self.method, "scale": self.scale,
                "check_mismatch": round(float(self.mismatch), 6), "fine_operator": self.fine_spec}


def smooth_object(size: int, factor: int = 1) -> torch.Tensor:
    """A smooth off-centre Gaussian bump on [-1, 1]² sampled at pixel centres, ``[1, 1, n, n]``."""
    n = size * factor
    c = (torch.arange(n, dtype=torch.float64) * 2 + 1) / n - 1
    s, t = c.view(1, n), (-c).view(n, 1)
    g = torch.exp(-((s - 0.12) ** 2 + (t + 0.08) ** 2) / (2 * 0.22 ** 2))
    g = g + 0.5 * torch.exp(-((s + 0.3) ** 2 + (t - 0.25) ** 2) / (2 * 0.12 ** 2))
    return g.float()[None, None]


def _rebuild(op: LinearOperator, factor: int) -> tuple[LinearOperator, dict]:
    """K on the f× finer grid: its own parameters, the pixel lengths it declares × f."""
    params = op.params()
    if "psf" in params:
        raise ValueError("cannot refine a blur with a user-given PSF (its width on a finer grid is unknown); "
                         "use simulation='crime' or give a PSF on the fine grid")
    for k in op.pixel_params:
        v = params.get(k)
        if v is None:
            continue
        if k == "size":  # odd kernel size covering the same physical support
            params[k] = int(v) * factor + (1 if (int(v) * factor) % 2 == 0 else 0)
        elif isinstance(v, int) and not isinstance(v, bool):
            params[k] = int(v) * factor
        elif isinstance(v, (list, tuple)):  # a point, e.g. the rotation centre (x, y)
            params[k] = [float(t) * factor for t in v]
        else:
            params[k] = float(v) * factor
    h, w = op.in_shape
    fine = from_spec({**op.spec(), "params": params}, (h * factor, w * factor))
    return fine, fine.spec()


def _calibrate(op: LinearOperator, fine: LinearOperator, size_hw: tuple[int, int], factor: int) -> float:
    """Scale s = <K x, F x_f>/‖F x_f‖², snapped to f^k (k = −2…2); ValueError if it is not one."""
    xc, xf = _check_pair(op, factor)
    a, b = op(xc), fine(xf)
    den = float((b.abs() ** 2).sum())
    if den == 0:
        return 1.0
    s = float((a.conj() * b).real.sum() if a.is_complex() else (a * b).sum()) / den
    for k in (0, -1, 1, -2, 2):
        target = float(factor) ** k
        if abs(s / target - 1) < 0.05:
            return target
    raise ValueError(f"operator '{op.name or type(op).__name__}': the fine-grid measurement has "
                     f"scale {s:.4g} relative to the coarse one (not a power of {factor}); "
                     "the operator cannot be refined generically — use simulation='crime'")


def _check_pair(op: LinearOperator, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = op.in_shape
    if h != w:  # non-square: resample the smooth object (still smooth)
        xc = F.interpolate(smooth_object(max(h, w)), size=(h, w), mode="bilinear", align_corners=False)
        xf = F.interpolate(smooth_object(max(h, w), factor), size=(h * factor, w * factor), mode="bilinear",
                           align_corners=False)
        return xc, xf
    return smooth_object(h), smooth_object(h, factor)


def mismatch(op: LinearOperator, fine: LinearOperator, factor: int) -> float:
    """‖F x_f − K x‖ / ‖K x‖ on the smooth check object."""
    xc, xf = _check_pair(op, factor)
    a, b = op(xc), fine(xf)
    return float((b - a).abs().norm() / a.abs().norm().clamp_min(1e-30))


def fine_operator(op: LinearOperator, factor: int = 2, like: Refined | None = None) -> Refined:
    """The operator s·R·K_f on the ``factor``× finer image grid with K's measurement grid (see module doc).

    `like`: the `Refined` of an operator of the same family (another drawn geometry or
    calibration of it, `invmap.distributions`): its scale s and its check are taken over
    instead of calibrating and checking again, so only K_f is built.
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"refinement factor must be >= 1, got {factor}")
    name = op.name or type(op).__name__
    h, w = op.in_shape
    if factor == 1:
        return Refined(op, 1, "crime", 1.0, 0.0, op.spec() if op.name is not None else None)
    hook = getattr(op, "refined", None)
    if callable(hook):
        fine, method, fspec = hook(factor), "refined", None
        scale = 1.0
    elif op.pixel_params:
        fine, fspec = _rebuild(op, factor)
        method = "rebuilt"
        if tuple(fine.out_shape) != tuple(op.out_shape):
            ratio = [fo // co if co and fo % co == 0 else 0 for fo, co in zip(fine.out_shape, op.out_shape)]
            if len(ratio) != 2 or 0 in ratio:
                raise ValueError(f"operator '{name}': fine-grid measurement shape {list(fine.out_shape)} is not a "
                                 f"multiple of {list(op.out_shape)}; use simulation='crime'")
            fine = Pool(fine.out_shape, tuple(ratio)) @ fine
        scale = like.scale if like is not None else _calibrate(op, fine, (h, w), factor)
        if scale != 1.0:
            fine = scale * fine
    else:
        fine, method, fspec, scale = op @ Pool((h * factor, w * factor), (factor, factor)), "area", None, 1.0
    if tuple(fine.in_shape) != (h * factor, w * factor) or tuple(fine.out_shape) != tuple(op.out_shape):
        raise ValueError(f"operator '{name}': refined operator maps {list(fine.in_shape)} -> {list(fine.out_shape)}, "
                         f"expected {[h * factor, w * factor]} -> {list(op.out_shape)}")
    mm = like.mismatch if like is not None else mismatch(op, fine, factor)
    if not mm < CHECK_TOLERANCE:
        raise ValueError(f"operator '{name}': the {factor}× finer operator disagrees with the coarse one by "
                         f"{100 * mm:.1f}% on a smooth object (tolerance {100 * CHECK_TOLERANCE:.0f}%); "
                         "it cannot be refined generically — use simulation='crime'")
    return Refined(fine, factor, method, scale, mm, fspec)


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown simulation mode {mode!r}; choose 'crime' (y from K on the reconstruction "
                         f"grid) or 'fine' (y from a finer grid)")
    return str(mode)
