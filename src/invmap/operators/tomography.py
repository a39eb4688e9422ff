"""Computed tomography: parallel-beam and fan-beam (flat detector) ray transforms.

    y = K x + e,   (K x)[θ, k] = ∫ x(ray(θ, k)) dℓ   (line integrals, pixel size 1)

K is a sparse matrix A (Joseph's method, see `invmap.operators._geometry` for the
construction and the full geometry convention), built once per geometry and cached in
memory and on disk. ``K x = A x`` and ``Kᵀ y = Aᵀ y`` use the *same* matrix (its
transpose is stored as its own CSR for speed), so the adjoint is exact to rounding.

Geometry, in one paragraph: the origin is the image centre, ``x`` points right (columns),
``y`` points up (rows are counted downwards), pixels are 1×1. A view angle θ (degrees) is
counter-clockwise from the ``x`` axis; detector cells lie along ``(cos θ, sin θ)`` with
cell ``k`` at ``u_k = (k - (n-1)/2)·spacing``; parallel rays travel along
``(-sin θ, cos θ)``, so view θ integrates ``x`` over ``x cos θ + y sin θ = u_k``. The
scanner rotates about the image centre unless ``rotation_center`` says otherwise. For odd
N this is ``skimage.transform.radon``'s geometry (its sinogram is ``y[θ, k]`` transposed);
for even N scikit-image rotates about pixel N//2, which ``rotation_center=(0.5, -0.5)``,
``detector_offset=-0.5`` reproduce — see docs/CONVENTIONS.md for ASTRA, scikit-image,
deepinv and ODL. Fan beam: the source is at ``-SO·(-sin θ, cos θ)`` and a flat detector at
distance OD beyond the rotation centre, parallel to ``(cos θ, sin θ)``; rays join the
source to each cell centre.

Measurements are shaped ``[B, C, views, detectors]``; float32 or float64; CPU or CUDA.
For square images rotated about their centre whose views come in pairs (θ, θ + 90°) —
every uniform set with an even number of views — only one view of each pair is stored: view θ + 90° of ``x`` is view θ of
``x`` rotated by 90°, which halves memory and build time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import budget
from . import axes
from ._geometry import Geometry, cache_dir, csr_tensor, default_detectors, system_matrix
from .base import CalibrationEstimate, LinearOperator
from .registry import OPERATORS


#: below this many stored entries the ~150 Lanczos products of ‖K‖ and ‖[K; s∇]‖ take milliseconds, and
#: their numbers are not kept on disk (`LinearOperator.numbers_file`; 60 views at 128²: 1.4 million)
MIN_NUMBERS_NNZ = 100_000


def view_angles(angles: int | Sequence[float], arc: float, start: float = 0.0) -> tuple[float, ...]:
    """Angles in degrees: ``angles`` uniform views over [start, start + arc), or the given list."""
    if isinstance(angles, (int, np.integer)) and not isinstance(angles, bool):
        if angles <= 0:
            raise ValueError(f"angles must be a positive number of views, got {angles}")
        if not (0 < arc <= 360):
            raise ValueError(f"arc must be in (0, 360] degrees, got {arc}")
        return tuple(float(a) for a in start + np.arange(angles) * (arc / angles))
    vals = [float(a) for a in angles]
    if len(vals) == 0:
        raise ValueError("angles: the list of view angles is empty")
    if not all(math.isfinite(a) for a in vals):
        raise ValueError("angles: view angles must be finite numbers (degrees)")
    return tuple(vals)


def _pair_views(angles: tuple[float, ...], square: bool) -> tuple[list[int], list[int], list[int]]:
    """Split view indices into (base, partner, single): angle[partner[i]] = angle[base[i]] + 90°."""
    if not square:
        return [], [], list(range(len(angles)))
    key = lambda a: round((a % 360.0) * 1e6) % 360_000_000  # noqa: E731
    free: dict[int, list[int]] = {}
    for i, a in enumerate(angles):
        free.setdefault(key(a), []).append(i)
    used = [False] * len(angles)
    base, partner = [], []
    for i, a in enumerate(angles):
        if used[i]:
            continue
        cands = [j for j in free.get(key(a + 90.0), []) if not used[j] and j != i]
        if cands:
            j = cands[0]
            used[i] = used[j] = True
            base.append(i)
            partner.append(j)
    single = [i for i in range(len(angles)) if not used[i]]
    return base, partner, single


class _RayTransform(LinearOperator):
    """Shared machinery: K = A (sparse CSR, Joseph), Kᵀ = Aᵀ, batch as matrix columns."""

    grad_via_adjoint = True
    geometry_params = ("angles", "arc", "detectors", "detector_spacing")
    calibration_params = ("angles", "detector_offset", "angle_offset")

    def fbp_geometry(self) -> Geometry:
        """The geometry FBP filters and back-projects along (`invmap.solvers.fbp`)."""
        return self.geometry

    def numbers_file(self) -> Path | None:
        """‖K‖ and the like kept in the disk cache of system matrices, under the geometry's key
        (`cache_dir`); None for a matrix of fewer than `MIN_NUMBERS_NNZ` entries."""
        folder = cache_dir()
        if folder is None or self.nnz() < MIN_NUMBERS_NNZ:
            return None
        return folder / f"{self.geometry.key()}.numbers.json"

    def stress_axes(self) -> list[axes.StressAxis]:
        """Views (geometry), arc (limited angle), angle offset and detector shift (calibration)."""
        p = self.params()
        levels, skipped = axes.scaled(self, "angles", (0.25, 0.5, 1.0, 2.0), "{v} views", integer=True)
        out = [axes.StressAxis("geometry", "geometry", "Acquisition geometry", "number of views", tuple(levels),
                               "'angles' of K changed for simulation AND reconstruction (methods see the new "
                               "geometry).", skipped=skipped)]
        if isinstance(p["angles"], int):
            levels, skipped = axes.scaled(self, "arc", (1 / 2, 2 / 3, 5 / 6, 1.0), "{v:g}°")
        else:
            levels, skipped = [], {"*": "the views are an explicit list of angles (no arc to shorten)"}
        out.append(axes.StressAxis("limited-angle", "limited-angle", "Limited angle", "arc of views (degrees)",
                                   tuple(levels), "Views spread over a shorter arc ('arc'), simulation and "
                                   "reconstruction.", skipped=skipped))
        shifted_views = tuple(axes.shifted(self, "angle_offset", (0.0, 0.5, 1.0, 2.0), "{v:+g}°"))
        out.append(axes.StressAxis("calibration", "calibration-angle", "Calibration: angle offset",
                                   "angle offset of the simulated views (degrees)", shifted_views,
                                   "y simulated with every view angle shifted by the offset; every method "
                                   "reconstructs with the nominal K.", sim_only=True,
                                   unidentifiable="every view shifted by δ gives the data of the object rotated by "
                                                  "δ (R_{θ+δ} x = R_θ(rot_δ x)): y is consistent with K, so no "
                                                  "signal in (y, K) can see the offset"))
        out.append(axes.StressAxis("calibration", "calibration-detector", "Calibration: detector shift / centre of rotation",
                                   "detector shift (pixels)",
                                   tuple(axes.shifted(self, "detector_offset", (0.0, 0.25, 0.5, 1.0), "{v:+g} px")),
                                   "y simulated with 'detector_offset' off by the given amount; every method "
                                   "reconstructs with the nominal K.", sim_only=True))
        return out

    def _setup(self, geometry_kw: dict, angles: tuple[float, ...]) -> None:
        H, W = self.in_shape
        self.angles = angles
        self.geometry = Geometry(H, W, angles, **geometry_kw)
        base, partner, single = _pair_views(angles, H == W and not any(self.geometry.center))
        self._nb = len(base)
        order = base + single + partner  # stored views (base, single), then rotated partners
        self._perm = torch.tensor(np.argsort(order), dtype=torch.long)  # stored → user order
        self._order = torch.tensor(order, dtype=torch.long)  # user → stored order
        self._parts = {part: Geometry(H, W, tuple(angles[i] for i in idx), **geometry_kw)
                       for part, idx in (("base", base), ("single", single)) if idx}
        self._built: dict[str, dict[str, np.ndarray]] | None = None
        self._dev: dict = {}
        super().__init__((H, W), (len(angles), self.geometry.detectors))

    # ---------------------------------------------------------------- matrices
    @property
    def _mats(self) -> dict[str, dict[str, np.ndarray]]:
        """The system matrices, built on first use: building the operator (e.g. to check a
        config) costs only its geometry."""
        if self._built is None:
            self._built = {part: system_matrix(g, transpose=False) for part, g in self._parts.items()}
        return self._built

    def _tensors(self, like: torch.Tensor, transpose: bool = False) -> dict[str, torch.Tensor]:
        """A (and, for Kᵀ, Aᵀ: made on the first adjoint) as torch CSR on `like`'s device and dtype."""
        hit = self._dev.setdefault((like.device, like.dtype), {})
        n = self.in_shape[0] * self.in_shape[1]
        for part, m in self._mats.items():
            rows = len(m["crow"]) - 1
            if part not in hit:
                hit[part] = csr_tensor(m["crow"], m["col"], m["val"], (rows, n)).to(device=like.device, dtype=like.dtype)
            if transpose and part + "T" not in hit:
                if "tcrow" not in m:
                    m.update(system_matrix(self._parts[part], transpose=True))
                At = csr_tensor(m["tcrow"], m["tcol"], m["tval"], (n, rows))
                hit[part + "T"] = At.to(device=like.device, dtype=like.dtype)
        hit.setdefault("perm", self._perm.to(like.device))
        hit.setdefault("order", self._order.to(like.device))
        return hit

    def nnz(self) -> int:
        """Stored entries of A (one view of each (θ, θ+90°) pair)."""
        return sum(len(m["col"]) for m in self._mats.values())

    # ------------------------------------------------------------------ K, Kᵀ
    @staticmethod
    def _rot(x: torch.Tensor) -> torch.Tensor:
        """[..., H, H] image ↦ image rotated so that view θ of it is view θ + 90° of x."""
        return x.flip(-2).transpose(-2, -1)

    @staticmethod
    def _unrot(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(-2, -1).flip(-2)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        T = self._tensors(x)
        lead = x.shape[:-2]
        H, W = self.in_shape
        A_, D = self.out_shape
        xb = x.reshape(-1, H, W)
        m = xb.shape[0]
        parts = []
        if "base" in T:
            X = torch.cat([xb, self._rot(xb)], 0).reshape(2 * m, H * W).T.contiguous()
            Yb = (T["base"] @ X).reshape(self._nb, D, 2 * m)
            parts.append(Yb[..., :m])
        if "single" in T:
            X1 = xb.reshape(m, H * W).T.contiguous()
            parts.append((T["single"] @ X1).reshape(-1, D, m))
        if "base" in T:
            parts.append(Yb[..., m:])
        Y = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
        Y = Y.index_select(0, T["perm"])  # [views, D, m] in the user's order
        return Y.permute(2, 0, 1).reshape(*lead, A_, D)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        T = self._tensors(y, transpose=True)
        lead = y.shape[:-2]
        H, W = self.in_shape
        A_, D = self.out_shape
        yb = y.reshape(-1, A_, D)
        m = yb.shape[0]
        Ys = yb.index_select(1, T["order"])  # [m, stored order views, D]
        nb = self._nb
        ns = A_ - 2 * nb
        out = None
        if "base" in T:
            Yb = torch.cat([Ys[:, :nb], Ys[:, nb + ns:]], 0)  # [2m, nb, D]
            Xb = (T["baseT"] @ Yb.reshape(2 * m, nb * D).T.contiguous()).T.reshape(2 * m, H, W)
            out = Xb[:m] + self._unrot(Xb[m:])
        if "single" in T:
            Y1 = Ys[:, nb:nb + ns].reshape(m, ns * D).T.contiguous()
            X1 = (T["singleT"] @ Y1).T.reshape(m, H, W)
            out = X1 if out is None else out + X1
        return out.reshape(*lead, H, W)


def _check_matrix_size(H: int, W: int, angles: int | Sequence[float], detectors: int) -> None:
    """Refuse a system matrix beyond the memory budget (`invmap.budget`) before building it:
    Joseph's method puts at most 2·max(H, W) entries in a ray's row, and A, Aᵀ and their
    torch copies take about 40 bytes per entry."""
    views = angles if isinstance(angles, int) else len(angles) if hasattr(angles, "__len__") else 1
    budget.check(40.0 * 2 * max(H, W) * max(int(views), 1) * detectors,
                 f"the CT system matrix ({views} views × {detectors} detectors, {H}×{W} images)")


def _check_positive(name: str, v: float | int | None) -> None:
    if v is not None and not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be positive, got {v}")


@OPERATORS.register("tomography")
class Tomography(_RayTransform):
    """Parallel-beam CT (Radon transform): y[θ, k] = ∫ x over the line x cos θ + y sin θ = u_k.

    Parameters
    ----------
    image_shape:
        (H, W) in pixels (pixel size 1, origin at the image centre).
    angles:
        Number of views, spread uniformly over [0°, arc) — or an explicit list of angles in
        degrees (sparse-view: few views; limited-angle: a sub-arc). ``arc`` is then ignored.
    arc:
        Angular range in degrees covered by an ``angles`` count (180 = full; less =
        limited-angle).
    detectors:
        Number of detector cells; default ``ceil(hypot(H, W) / detector_spacing) + 1``,
        which covers the image diagonal.
    detector_spacing:
        Cell width in pixels.
    detector_offset:
        Shift of the whole detector along ``(cos θ, sin θ)``, in pixels: cell ``k`` sits at
        ``u_k + detector_offset``. A nonzero value models a centre-of-rotation error.
    rotation_center:
        ``(x, y)`` of the rotation axis relative to the image centre, in pixels (x right,
        y up); rays are placed relative to it. ``(0.5, -0.5)`` is scikit-image's centre
        (pixel N//2) for even N.
    angle_offset:
        Degrees added to every view angle (a count's uniform views or an explicit list): a
        gantry-angle calibration error.

    K = A (Joseph's method), Kᵀ = Aᵀ exactly; y shaped ``[B, C, views, detectors]``.

    >>> import torch, invmap.operators as ops
    >>> K = ops.build("tomography", image_shape=(32, 32), angles=30)
    >>> K(torch.ones(1, 1, 32, 32)).shape
    torch.Size([1, 1, 30, 47])
    """

    pixel_params = ("detector_spacing", "detector_offset", "rotation_center")
    estimable_params = ("detector_offset",)

    def __init__(self, image_shape: tuple[int, int], angles: int | list[float] = 180, arc: float = 180.0,
                 detectors: int | None = None, detector_spacing: float = 1.0, detector_offset: float = 0.0,
                 rotation_center: tuple[float, float] = (0.0, 0.0), angle_offset: float = 0.0):
        H, W = (int(s) for s in image_shape)
        _check_positive("arc", arc)
        _check_positive("detector_spacing", detector_spacing)
        _check_positive("detectors", detectors)
        n = int(detectors) if detectors is not None else default_detectors(H, W, detector_spacing)
        _check_matrix_size(H, W, angles, n)
        ang = _offset(view_angles(angles, arc), angle_offset)
        self._params = {"angles": list(angles) if not isinstance(angles, int) else angles, "arc": arc,
                        "detectors": n, "detector_spacing": detector_spacing}
        if detector_offset:
            self._params["detector_offset"] = float(detector_offset)
        if angle_offset:
            self._params["angle_offset"] = float(angle_offset)
        center = _center(rotation_center, self._params)
        self.in_shape = (H, W)
        self._setup({"detectors": n, "spacing": float(detector_spacing), "offset": _finite("detector_offset", detector_offset),
                     "center": center}, ang)

    @classmethod
    def resized_params(cls, params: dict, old_shape: Sequence[int], new_shape: Sequence[int]) -> dict:
        """The detector count follows the image diagonal (`default_detectors`): at its default for
        `old_shape` it becomes the default for `new_shape`, a stated count scales with it; the
        spacing (in pixels), views, arc and offsets are kept."""
        p = dict(params)
        if p.get("detectors") is not None:
            spacing = float(p.get("detector_spacing", 1.0))
            was, now = default_detectors(*old_shape, spacing), default_detectors(*new_shape, spacing)
            p["detectors"] = now if int(p["detectors"]) == was else max(1, round(int(p["detectors"]) * now / was))
        return p

    def transform_groups(self) -> tuple[str, ...]:
        """Rotations by 90° and flips of the scene: parallel-beam views over an arc see a rotated
        object as other views (R_θ(rot_δ x) = R_{θ+δ} x), which the sparse view set lacks —
        what equivariant imaging learns the missing views from."""
        return self._image_groups()

    def split_units(self) -> torch.Tensor:
        """One unit per view (the row of y it fills)."""
        views, cells = self.out_shape
        return torch.arange(views)[:, None].expand(views, cells)

    def restricted(self, keep: torch.Tensor):
        """(K_S, take_S): the same scanner with the views S only (an explicit list of their angles,
        FBP applies), y_S = the rows S of y."""
        rows = torch.nonzero(keep.to(torch.bool)).flatten()
        if len(rows) == 0:
            raise ValueError("tomography: a measurement split keeps no view")
        p = {k: v for k, v in self.params().items() if k not in ("angle_offset", "arc")}
        p["angles"] = [float(self.angles[int(i)]) for i in rows]  # the offset is inside self.angles
        sub = type(self)(self.in_shape, **p)
        return sub, lambda y: y.index_select(-2, rows.to(y.device))

    def estimate_calibration(self, y: torch.Tensor) -> dict[str, CalibrationEstimate]:
        """The detector offset the measurements say, per sample (`detector_offset_from_moments`)."""
        g = self.geometry
        value, stderr = detector_offset_from_moments(y, self.angles, g.detector_positions())
        return {"detector_offset": CalibrationEstimate(g.offset + value, stderr, float(g.offset))}


#: projections whose outermost cells carry more than this fraction of the total are truncated
TRUNCATED_EDGE_FRACTION = 0.01


def detector_offset_from_moments(y: torch.Tensor, angles: Sequence[float], cells: np.ndarray
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """How far the detector of parallel-beam data y ``[B, C, views, detectors]`` is shifted from
    the cell positions `cells` (pixels), from the first-moment consistency of the Radon transform.

    Every projection of an object with centre of mass (c₁, c₂) has its first moment on the
    sinusoid m(θ) = Σ_k s_k y[θ, k] / Σ_k y[θ, k] = c₁ cos θ + c₂ sin θ. If the cells really
    sit at s_k + δ (a centre-of-rotation error), the moments computed at s_k follow
    c₁ cos θ + c₂ sin θ − δ; a least-squares fit of (c₁, c₂, δ) over the views gives δ and
    its standard error from the fit's residuals (noise and discretisation). Returns (δ, se)
    per sample (float64 ``[B]``; NaN where the data allow no estimate: fewer than 4 views,
    views too close to tell a constant from the sinusoid, a view without positive mass, NaN
    data, or truncated projections — more than `TRUNCATED_EDGE_FRACTION` of the mass in the two
    outermost cells at either end)."""
    B, views, n = y.shape[0], y.shape[-2], y.shape[-1]
    nan = torch.full((B,), math.nan, dtype=torch.float64)
    if B == 0 or y.is_complex() or views < 4 or n < 5:
        return nan, nan.clone()
    p = y.detach().to(torch.float64).cpu().reshape(B, -1, views, n).sum(dim=1)  # channels share K
    theta = torch.tensor([math.radians(a) for a in angles], dtype=torch.float64)
    A = torch.stack([theta.cos(), theta.sin(), torch.ones_like(theta)], dim=1)
    if float(torch.linalg.cond(A)) > 1e4:  # a very short arc: the offset and the sinusoid alias
        return nan, nan.clone()
    mass = p.sum(dim=-1)  # [B, views]; constant over θ for exact data
    m1 = (p * torch.as_tensor(cells, dtype=torch.float64)).sum(dim=-1) / mass
    coef = m1 @ torch.linalg.pinv(A).T  # [B, 3]: least squares with one pseudo-inverse (NaN data stay NaN)
    resid = m1 - coef @ A.T
    var = (resid ** 2).sum(dim=-1) / (views - 3)
    se = (var * torch.linalg.inv(A.T @ A)[2, 2]).sqrt()
    edge = (p[..., :2].sum(dim=(-1, -2)).abs() + p[..., -2:].sum(dim=(-1, -2)).abs()) / mass.sum(dim=-1)
    ok = (mass.min(dim=-1).values > 0) & (edge <= TRUNCATED_EDGE_FRACTION) & torch.isfinite(coef[:, 2])
    return torch.where(ok, -coef[:, 2], nan), torch.where(ok, se, nan)


@OPERATORS.register("fanbeam")
class FanBeam(_RayTransform):
    """Fan-beam CT with a flat detector: y[β, k] = ∫ x along the ray source(β) → cell k.

    Parameters
    ----------
    image_shape:
        (H, W) in pixels (pixel size 1, origin at the image centre = rotation centre).
    angles:
        Number of source positions uniform over [0°, arc), or an explicit list (degrees).
    arc:
        Angular range of an ``angles`` count; 360 = full scan. A short scan of 180° plus
        the fan angle is complete data too (`fbp` then applies Parker weights).
    source_distance:
        Source–origin distance SO in pixels; default ``2·max(H, W)``. Must exceed the
        image's half-diagonal (the source stays outside the image).
    detector_distance:
        Origin–detector distance OD in pixels (≥ 0); default ``SO``.
    detectors:
        Number of cells; default covers the fan through the image's circumscribed circle.
    detector_spacing:
        Cell width on the detector; default the magnification ``(SO + OD) / SO`` (one
        cell per pixel at the rotation centre).
    detector_offset:
        Shift of the detector along its own axis (detector units); models a
        centre-of-rotation / detector-placement error.
    rotation_center:
        ``(x, y)`` of the rotation axis relative to the image centre, in pixels; source
        and detector distances are measured from it.
    angle_offset:
        Degrees added to every source angle (a gantry-angle calibration error).

    The source at view β sits at ``-SO·(-sin β, cos β)``, the detector line at
    ``OD·(-sin β, cos β) + u·(cos β, sin β)``. K = A (Joseph), Kᵀ = Aᵀ exactly.
    """

    pixel_params = ("source_distance", "detector_distance", "detector_spacing", "detector_offset", "rotation_center")

    @classmethod
    def resized_params(cls, params: dict, old_shape: Sequence[int], new_shape: Sequence[int]) -> dict:
        """The distances follow max(H, W) and the detector count the fan through the image
        (`_fan_geometry`): each at its default for `old_shape` becomes the default for
        `new_shape`, a stated one scales with it; the spacing (a ratio of distances at its
        default), views, arc and offsets are kept."""
        p = dict(params)
        so0, od0, _, _ = _fan_geometry(old_shape, None, None, None, None)
        r = max(new_shape) / max(old_shape)
        stated = {k: p.get(k) for k in ("source_distance", "detector_distance")}
        for k, default in (("source_distance", so0), ("detector_distance", od0 if stated["source_distance"] is None
                                                       else float(stated["source_distance"]))):
            if p.get(k) is not None:
                p[k] = None if math.isclose(float(p[k]), default) else float(p[k]) * r
        if p.get("detectors") is not None:
            was = _fan_geometry(old_shape, stated["source_distance"], stated["detector_distance"],
                                p.get("detector_spacing"), None)[3]
            now = _fan_geometry(new_shape, p.get("source_distance"), p.get("detector_distance"),
                                p.get("detector_spacing"), None)[3]
            p["detectors"] = now if int(p["detectors"]) == was else max(1, round(int(p["detectors"]) * now / was))
        return {k: v for k, v in p.items() if v is not None or k not in ("source_distance", "detector_distance")}

    def __init__(self, image_shape: tuple[int, int], angles: int | list[float] = 360, arc: float = 360.0,
                 source_distance: float | None = None, detector_distance: float | None = None,
                 detectors: int | None = None, detector_spacing: float | None = None,
                 detector_offset: float = 0.0, rotation_center: tuple[float, float] = (0.0, 0.0),
                 angle_offset: float = 0.0):
        H, W = (int(s) for s in image_shape)
        _check_positive("arc", arc)
        _check_positive("source_distance", source_distance)
        _check_positive("detector_spacing", detector_spacing)
        _check_positive("detectors", detectors)
        if detector_distance is not None and not (detector_distance >= 0 and math.isfinite(detector_distance)):
            raise ValueError(f"detector_distance must be ≥ 0, got {detector_distance}")
        so, od, spacing, n = _fan_geometry((H, W), source_distance, detector_distance, detector_spacing, detectors)
        _check_matrix_size(H, W, angles, n)
        ang = _offset(view_angles(angles, arc), angle_offset)
        self._params = {"angles": list(angles) if not isinstance(angles, int) else angles, "arc": arc,
                        "source_distance": so, "detector_distance": od, "detectors": n,
                        "detector_spacing": spacing}
        if detector_offset:
            self._params["detector_offset"] = float(detector_offset)
        if angle_offset:
            self._params["angle_offset"] = float(angle_offset)
        center = _center(rotation_center, self._params)
        self.in_shape = (H, W)
        self._setup({"detectors": n, "spacing": spacing, "source_distance": so, "detector_distance": od,
                     "offset": _finite("detector_offset", detector_offset), "center": center}, ang)


def _fan_geometry(image_shape: Sequence[int], source_distance: float | None, detector_distance: float | None,
                  detector_spacing: float | None, detectors: int | None) -> tuple[float, float, float, int]:
    """(SO, OD, spacing, detector count) of a fan beam, the unstated ones at their defaults for
    `image_shape`: SO = 2·max(H, W), OD = SO, spacing = the magnification (SO + OD)/SO, and the
    flat detector covering the fan through the image's circumscribed circle."""
    H, W = (int(s) for s in image_shape)
    so = float(source_distance) if source_distance is not None else 2.0 * max(H, W)
    od = float(detector_distance) if detector_distance is not None else so
    radius = math.hypot(H, W) / 2.0
    if so <= radius:
        raise ValueError(f"source_distance {so} must exceed the image half-diagonal {radius:.2f} "
                         "(the source would lie inside the image)")
    spacing = float(detector_spacing) if detector_spacing is not None else (so + od) / so
    if detectors is not None:
        return so, od, spacing, int(detectors)
    half = (so + od) * radius / math.sqrt(so * so - radius * radius)  # flat-detector half-width of the fan
    return so, od, spacing, int(math.ceil(2 * half / spacing)) + 1


def _center(rotation_center, params: dict) -> tuple[float, float]:
    """The rotation centre (x, y) as finite floats; recorded in `params` when not (0, 0)."""
    vals = tuple(rotation_center)
    if len(vals) != 2:
        raise ValueError(f"rotation_center must be (x, y) in pixels, got {rotation_center!r}")
    c = (_finite("rotation_center", vals[0]), _finite("rotation_center", vals[1]))
    if any(c):
        params["rotation_center"] = list(c)
    return c


def _offset(angles: tuple[float, ...], offset: float) -> tuple[float, ...]:
    """Every view angle moved by `offset` degrees (a gantry-angle calibration error)."""
    o = _finite("angle_offset", offset)
    return tuple(a + o for a in angles) if o else angles


def _finite(name: str, v: float) -> float:
    if not math.isfinite(float(v)):
        raise ValueError(f"{name} must be a finite number, got {v}")
    return float(v)
