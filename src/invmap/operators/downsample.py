"""Downsampling K = S B by an integer factor f (super-resolution).

With ``Hc = f·⌊H/f⌋``, ``Wc = f·⌊W/f⌋`` (a size not divisible by f is **cropped**: the last
``H mod f`` rows and ``W mod f`` columns are not measured, K maps them to nothing and Kᵀ
returns zeros there), y has shape ``(H // f, W // f)`` and

- ``box`` (default): y[i, j] = (1/f²) Σ_{0≤a,b<f} x[f·i + a, f·j + b] — the mean of each
  f×f block (sensor-area integration, the anti-alias filter of `skimage.transform.
  downscale_local_mean`); Kᵀ y spreads y[i, j]/f² over its block, ‖K‖ = 1/f.
- ``gaussian``: the same block mean after a Gaussian optical blur of std `sigma` (default
  f/2 high-resolution pixels, reflect boundary, see `blur`): K = S_box B_σ, Kᵀ = B_σᵀ S_boxᵀ.
- ``none``: plain decimation, y[i, j] = x[f·i, f·j] (aliases; Kᵀ puts y back on the
  sampled pixels), ‖K‖ = 1.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from . import axes
from .base import LinearOperator
from .blur import Blur
from .registry import OPERATORS


@OPERATORS.register("downsample")
class Downsample(LinearOperator):
    """Super-resolution: anti-alias filter (box / gaussian / none) then decimation by `factor`.

    Sizes not divisible by `factor` are cropped (trailing rows/columns are not measured).
    """

    def __init__(self, image_shape: tuple[int, int], factor: int = 2,
                 filter: Literal["box", "gaussian", "none"] = "box", sigma: float | None = None):
        H, W = image_shape
        if factor < 1:
            raise ValueError(f"downsample: factor must be >= 1, got {factor}")
        if H < factor or W < factor:
            raise ValueError(f"downsample: image {H}x{W} is smaller than the factor {factor}")
        super().__init__(image_shape, (H // factor, W // factor))
        self.factor, self.filter = int(factor), filter
        self.blur: Blur | None = None
        self.sigma: float | None = None
        if filter == "gaussian":
            self.sigma = factor / 2 if sigma is None else float(sigma)
            self.blur = Blur(image_shape, kernel="gaussian", sigma=self.sigma, boundary="reflect")
            # σ is recorded only when given: by default it follows the factor
            self._params = {"factor": factor, "filter": filter, **({"sigma": self.sigma} if sigma is not None else {})}
        else:
            if sigma is not None:
                raise ValueError(f"downsample: sigma applies only to filter='gaussian' (filter is '{filter}')")
            self._params = {"factor": factor, "filter": filter}

    geometry_params = ("factor", "filter", "sigma")
    calibration_params = ("sigma",)
    pixel_params = ("factor", "sigma")

    def transform_groups(self) -> tuple[str, ...]:
        """Rotations and flips of the scene (decimation does not commute with shifts by less than the factor)."""
        return self._image_groups()

    def stress_axes(self) -> list[axes.StressAxis]:
        """Decimation factor (geometry); anti-alias kernel width error (calibration, Gaussian filter)."""
        levels, skipped = axes.scaled(self, "factor", (0.5, 1.0, 2.0), "×{v}", integer=True)
        out = [axes.StressAxis("geometry", "geometry", "Acquisition geometry", "decimation factor", tuple(levels),
                               "'factor' of K changed for simulation AND reconstruction (methods see the new "
                               "geometry).", skipped=skipped)]
        cal, skipped = axes.scaled(self, "sigma", (1.0, 1.1, 1.25, 1.5), "×{f:g}", nominal=self.sigma)
        if self.sigma is None:
            skipped = {"*": f"filter '{self.filter}' has no kernel width (only 'gaussian' has)"}
        out.append(axes.StressAxis("calibration", "calibration-psf", "Calibration: anti-alias kernel width error",
                                   "true σ / assumed σ", tuple(cal), "y simulated with 'sigma' off by the given "
                                   "amount; every method reconstructs with the nominal K.", sim_only=True,
                                   skipped=skipped))
        return out

    def _decimate(self, x: torch.Tensor) -> torch.Tensor:
        f = self.factor
        ho, wo = self.out_shape
        xc = x[..., : ho * f, : wo * f]
        if self.filter == "none":
            return xc[..., ::f, ::f]
        return xc.reshape(*x.shape[:-2], ho, f, wo, f).mean(dim=(-3, -1))

    def _decimate_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        f = self.factor
        H, W = self.in_shape
        ho, wo = self.out_shape
        if self.filter == "none":
            z = torch.zeros(*y.shape[:-2], ho, f, wo, f, dtype=y.dtype, device=y.device)
            z[..., :, 0, :, 0] = y
        else:
            z = (y / (f * f))[..., :, None, :, None].expand(*y.shape[:-2], ho, f, wo, f)
        z = z.reshape(*y.shape[:-2], ho * f, wo * f)
        return F.pad(z, (0, W - wo * f, 0, H - ho * f))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur is not None:
            x = self.blur._forward(x)
        return self._decimate(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        x = self._decimate_adjoint(y)
        if self.blur is not None:
            x = self.blur._adjoint(x)
        return x

    def norm(self, *args, **kwargs) -> float:
        """‖K‖₂: exact 1/f (box) or 1 (none); Lanczos (`top_eigenvalue`) for gaussian."""
        if self.filter == "box":
            return 1.0 / self.factor
        if self.filter == "none":
            return 1.0
        return super().norm(*args, **kwargs)
