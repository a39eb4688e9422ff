"""Convolution blur K x = h * x with a stated boundary condition (deblurring).

For a PSF ``h`` of size (kh, kw) with centre ``(ch, cw) = (kh // 2, kw // 2)``

    (K x)[i, j] = Σ_{a, b} h[a, b] · x̃[i − (a − ch), j − (b − cw)],

a true convolution (the PSF is flipped), where x̃ extends x outside the image by the
boundary condition:

- ``zero``:     x̃ = 0 outside                       (scipy.ndimage mode ``'constant'``, cval 0)
- ``reflect``:  half-sample symmetric, ``d c b a | a b c d | d c b a``
                                                     (scipy.ndimage mode ``'reflect'``)
- ``circular``: periodic, ``a b c d | a b c d | a b c d`` (scipy.ndimage mode ``'wrap'``)

so that ``K x`` equals ``scipy.ndimage.convolve(x, h, mode=...)`` with the mode above, for
odd and even PSF sizes alike (scipy centres even sizes the same way).

The extension is a linear map E (valid for any PSF size, even one larger than the image),
so K = C E with C the valid convolution, and the exact adjoint is Kᵀ = Eᵀ Cᵀ: a "full"
correlation with h followed by adding every extended pixel back onto the pixel it was
copied from.  `invmap.operators.convolution` computes K and Kᵀ by the cheapest exact path
for the PSF and boundary (shift-and-add over the taps, two 1-D passes for a separable PSF,
or FFTs: periodic for ``circular``, zero-padded past the extension otherwise); the choice
is internal (`Blur.path()`) and does not change K beyond float rounding.  Everything is plain
torch, so autograd through `forward` equals this adjoint.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from .. import budget
from . import axes
from .base import LinearOperator
from .convolution import Convolution, extension_index, wrapped
from .registry import OPERATORS

#: kernel → (its width parameter, geometry axis label, level format, calibration axis label)
WIDTHS = {"gaussian": ("sigma", "PSF width σ (pixels)", "σ={v:g}", "true σ / assumed σ"),
          "motion": ("length", "motion blur length (pixels)", "length={v:g}", "true length / assumed length"),
          "disk": ("radius", "defocus disk radius (pixels)", "r={v:g}", "true radius / assumed radius")}


def _check_psf_size(rows: int, cols: int) -> None:
    """Refuse a PSF array beyond the memory budget (`invmap.budget`) before building it."""
    budget.check(8.0 * rows * cols, f"blur: a {rows}×{cols} PSF")


def gaussian_psf(sigma: float, size: int | None = None) -> np.ndarray:
    """Normalised (sum 1) isotropic Gaussian PSF of std `sigma`, default size 2·⌈3σ⌉+1."""
    if not sigma > 0:
        raise ValueError(f"blur: sigma must be > 0, got {sigma}")
    if size is None:
        size = 2 * int(math.ceil(3 * sigma)) + 1
    if size < 1 or size % 2 == 0:
        raise ValueError(f"blur: size must be an odd number >= 1 (the PSF is centred), got {size}")
    _check_psf_size(size, size)
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-0.5 * (t / sigma) ** 2)
    h = np.outer(g, g)
    return h / h.sum()


def motion_psf(length: float, angle: float = 0.0) -> np.ndarray:
    """Normalised linear motion PSF: a segment of `length` pixels at `angle` degrees.

    The angle is counter-clockwise from the image's horizontal axis (rows point down);
    the segment is centred and drawn with bilinear weights (anti-aliased).
    """
    if not length >= 1:
        raise ValueError(f"blur: motion length must be >= 1, got {length}")
    r = int(math.ceil((length - 1) / 2)) + 1
    size = 2 * r + 1
    _check_psf_size(size, size)
    h = np.zeros((size, size))
    th = math.radians(angle)
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, int(8 * length) + 1):
        row, col = r - t * math.sin(th), r + t * math.cos(th)
        r0, c0 = int(math.floor(row)), int(math.floor(col))
        fr, fc = row - r0, col - c0
        for dr, wr in ((0, 1 - fr), (1, fr)):
            for dc, wc in ((0, 1 - fc), (1, fc)):
                if 0 <= r0 + dr < size and 0 <= c0 + dc < size:
                    h[r0 + dr, c0 + dc] += wr * wc
    # trim all-zero border rows/columns symmetrically, keeping the centre
    while h.shape[0] > 1 and not h[0].any() and not h[-1].any():
        h = h[1:-1]
    while h.shape[1] > 1 and not h[:, 0].any() and not h[:, -1].any():
        h = h[:, 1:-1]
    return h / h.sum()


def disk_psf(radius: float, oversample: int = 16) -> np.ndarray:
    """Normalised uniform disk PSF of `radius` pixels (defocus), anti-aliased: each pixel's
    weight is the fraction of its area inside the disk (``oversample``² sub-samples)."""
    if not radius >= 0.5:
        raise ValueError(f"blur: disk radius must be >= 0.5, got {radius}")
    r = int(math.ceil(radius - 0.5))
    size = 2 * r + 1
    _check_psf_size(size * oversample, size * oversample)
    t = (np.arange(size * oversample) + 0.5) / oversample - size / 2
    inside = (t[:, None] ** 2 + t[None, :] ** 2) <= radius**2
    h = inside.reshape(size, oversample, size, oversample).mean(axis=(1, 3))
    return h / h.sum()


@OPERATORS.register("blur")
class Blur(LinearOperator):
    """Convolution blur y = h * x (Gaussian, motion, disk or any PSF) with a zero/reflect/circular boundary.

    Parameters
    ----------
    kernel: ``"gaussian"`` (std `sigma`, `size` default 2⌈3σ⌉+1), ``"motion"``
        (`length` pixels at `angle` degrees) or ``"disk"`` (defocus: a uniform disk of
        `radius` pixels) — all normalised to sum 1 — or ignored when `psf` is given.
    psf: any 2-D PSF (nested list / array), used as given (not renormalised); its centre is
        pixel ``(kh // 2, kw // 2)``.
    boundary: ``"zero"``, ``"reflect"`` (half-sample symmetric, scipy ``'reflect'``) or
        ``"circular"`` (periodic, scipy ``'wrap'``). Default ``"reflect"``.

    K is a true convolution (see the module docstring); Kᵀ is the exact adjoint for each
    boundary (correlation with h, then the transpose of the boundary extension).
    """

    def __init__(self, image_shape: tuple[int, int], kernel: Literal["gaussian", "motion", "disk"] = "gaussian",
                 sigma: float = 1.5, size: int | None = None, length: float = 9.0, angle: float = 0.0,
                 radius: float = 3.0,
                 psf: list[list[float]] | np.ndarray | torch.Tensor | None = None,
                 boundary: Literal["zero", "reflect", "circular"] = "reflect"):
        super().__init__(image_shape, image_shape)
        if psf is not None:
            h = np.asarray(psf.detach().cpu() if isinstance(psf, torch.Tensor) else psf, dtype=np.float64)
            if h.ndim != 2 or h.size == 0:
                raise ValueError(f"blur: psf must be a non-empty 2-D array, got shape {list(h.shape)}")
            if not np.isfinite(h).all():
                raise ValueError("blur: psf contains NaN or Inf values")
        elif kernel == "gaussian":
            h = gaussian_psf(sigma, size)
        elif kernel == "motion":
            h = motion_psf(length, angle)
        elif kernel == "disk":
            h = disk_psf(radius)
        else:  # pragma: no cover - Literal validated by the registry
            raise ValueError(f"blur: unknown kernel '{kernel}'; choose gaussian, motion or disk")
        extension_index(1, 0, 0, boundary)  # validates the boundary name
        self.psf = h
        self.boundary = boundary
        self._conv = Convolution(h, self.in_shape, boundary)
        self.kernel = kernel
        # the construction parameters, enough to rebuild K: build("blur", image_shape, **params());
        # the Gaussian support is recorded only when given (by default it follows σ)
        self._params = {"kernel": kernel, "boundary": boundary}
        if psf is not None:
            self._params["psf"] = h.tolist()
        elif kernel == "gaussian":
            self._params.update(sigma=float(sigma), **({"size": int(size)} if size is not None else {}))
        elif kernel == "motion":
            self._params.update(length=float(length), angle=float(angle))
        else:
            self._params.update(radius=float(radius))

    geometry_params = ("kernel", "sigma", "size", "length", "angle", "radius", "psf", "boundary")

    def transform_groups(self) -> tuple[str, ...]:
        """Rotations and flips of the scene; circular shifts with a circular boundary (then K commutes with them)."""
        return self._image_groups(shifts=self.boundary == "circular")
    calibration_params = ("sigma", "length", "radius")
    pixel_params = ("sigma", "length", "radius", "size")

    def stress_axes(self) -> list[axes.StressAxis]:
        """PSF width (geometry), PSF family (kernel) and PSF width error (calibration)."""
        p = self.params()
        if "psf" in p:
            why = "a user-given psf has no width to vary"
            return [axes.StressAxis("geometry", "geometry", "Acquisition geometry", "PSF", (), skipped={"*": why}),
                    axes.StressAxis("kernel", "kernel", "Blur kernel family", "PSF", (), ordered=False,
                                    skipped={"*": "a user-given psf has no family to change"}),
                    axes.StressAxis("calibration", "calibration-psf", "Calibration: PSF width error", "PSF", (),
                                    sim_only=True, skipped={"*": why})]
        param, axis, fmt, cal_axis = WIDTHS[self.kernel]
        levels, skipped = axes.scaled(self, param, (0.5, 0.75, 1.0, 1.5, 2.0), fmt)
        cal, _ = axes.scaled(self, param, (1.0, 1.1, 1.25, 1.5), "×{f:g}")
        return [axes.StressAxis("geometry", "geometry", "Acquisition geometry", axis, tuple(levels),
                                f"'{param}' of K changed for simulation AND reconstruction (methods see the new "
                                "geometry).", skipped=skipped),
                self._family_axis(),
                axes.StressAxis("calibration", "calibration-psf", "Calibration: PSF width error", cal_axis, tuple(cal),
                                f"y simulated with '{param}' off by the given amount; every method reconstructs "
                                "with the nominal K.", sim_only=True)]

    def _family_axis(self) -> axes.StressAxis:
        """The other PSF families at a comparable width: the same per-axis second moment, i.e.
        Gaussian σ ↔ motion L = √12·σ (along its direction) ↔ disk r = 2σ."""
        p = self.params()
        sigma = {"gaussian": lambda: p["sigma"], "motion": lambda: p["length"] / math.sqrt(12.0),
                 "disk": lambda: p["radius"] / 2.0}[self.kernel]()
        keep = {k: v for k, v in p.items() if k not in ("kernel", "sigma", "size", "length", "angle", "radius")}
        length, radius = max(1.0, math.sqrt(12.0) * sigma), max(0.5, 2.0 * sigma)  # the operators' minima
        fams = {"gaussian": ({"sigma": sigma}, f"gaussian σ={sigma:.3g}"),
                "motion": ({"length": length, "angle": float(p.get("angle", 0.0))}, f"motion L={length:.3g}"),
                "disk": ({"radius": radius}, f"disk r={radius:.3g}")}
        order = [self.kernel] + [k for k in fams if k != self.kernel]
        levels = [axes.AxisLevel(fams[k][1] + " (training)", None) if k == self.kernel
                  else axes.AxisLevel(fams[k][1], {**keep, "kernel": k, **fams[k][0]}) for k in order]
        return axes.StressAxis("kernel", "kernel", "Blur kernel family", "PSF family", tuple(levels),
                               "Another PSF family of comparable width, for simulation AND reconstruction.",
                               ordered=False)

    def path(self, images: int = 1) -> str:
        """How K x is computed for a batch of `images` images: ``conv`` (torch's convolution,
        a separable PSF in two 1-D passes), ``fft`` (periodic, circular boundary) or
        ``fft-padded`` (`invmap.operators.convolution`; the cheapest by its cost estimate)."""
        return self._conv.choose(images)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv.forward(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._conv.adjoint(y)

    def norm(self, *args, **kwargs) -> float:
        """‖K‖₂; exact (max |DFT of h| on the image grid) for the circular boundary."""
        if self.boundary == "circular" and self._norm is None:
            self._norm = float(np.abs(np.fft.fft2(wrapped(self.psf, self.in_shape))).max())
        return super().norm(*args, **kwargs)
