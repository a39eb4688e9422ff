"""invmap CT geometries as ASTRA projection / volume geometries, and back.

invmap's geometry (`invmap.operators._geometry`) is ASTRA's 2D convention with unit
pixels and the volume centred on the origin: view θ of `tomography` is ASTRA
``parallel`` at angle θ (radians) with detector width = ``detector_spacing``, and view β of
`fanbeam` is ASTRA ``fanflat`` with ``source_origin = SO`` and ``origin_det = OD``. A
detector shift (``detector_offset``) has no field in those, so it is written as the vector
geometries ``parallel_vec`` / ``fanflat_vec`` (the detector centre moved by the offset along
the detector direction u). ASTRA's ``linear`` projector on the converted geometry is
invmap's forward projection (Joseph's method), to float rounding.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..operators import build
from .optional import require


def _astra():
    return require("astra", "the ASTRA bridge", "astra-toolbox")


def to_astra(op: Any) -> tuple[dict, dict]:
    """``(proj_geom, vol_geom)`` of a CT operator (anything with ``fbp_geometry()``)."""
    g = op.fbp_geometry() if hasattr(op, "fbp_geometry") else None
    if g is None:
        raise ValueError(f"to_astra needs a CT operator (tomography, fanbeam), got "
                         f"'{getattr(op, 'name', None) or type(op).__name__}'")
    astra = _astra()
    vol = astra.create_vol_geom(g.height, g.width)
    theta = np.deg2rad(np.asarray(g.angles, dtype=np.float64))
    if g.fan:
        proj = astra.create_proj_geom("fanflat", g.spacing, g.detectors, theta, g.source_distance,
                                      g.detector_distance)
        kind = "fanflat_vec"
    else:
        proj = astra.create_proj_geom("parallel", g.spacing, g.detectors, theta)
        kind = "parallel_vec"
    if g.offset:
        vec = astra.geom_2vec(proj)["Vectors"].copy()
        vec[:, 2:4] += g.offset * vec[:, 4:6] / g.spacing  # detector centre moved along u
        proj = astra.create_proj_geom(kind, g.detectors, vec)
    return proj, vol


def _image_shape(vol: dict) -> tuple[int, int]:
    H, W = int(vol["GridRowCount"]), int(vol["GridColCount"])
    o = vol.get("option", {})
    window = (o.get("WindowMinX", -W / 2), o.get("WindowMaxX", W / 2), o.get("WindowMinY", -H / 2),
              o.get("WindowMaxY", H / 2))
    if not np.allclose(window, (-W / 2, W / 2, -H / 2, H / 2)):
        raise ValueError(f"from_astra: invmap CT uses unit pixels centred on the origin; the volume window "
                         f"{tuple(float(w) for w in window)} is not ({-W / 2}, {W / 2}, {-H / 2}, {H / 2})")
    return H, W


def from_astra(proj: dict, vol: dict):
    """The invmap `tomography` / `fanbeam` operator of ASTRA ``parallel(_vec)`` / ``fanflat(_vec)``
    geometries (a vector geometry must be one of those: fixed distances, detector ⟂ rays)."""
    shape = _image_shape(vol)
    kind = proj.get("type")
    if kind == "parallel":
        return build("tomography", image_shape=shape, angles=_degrees(proj["ProjectionAngles"]),
                     detectors=int(proj["DetectorCount"]), detector_spacing=float(proj["DetectorWidth"]))
    if kind == "fanflat":
        return build("fanbeam", image_shape=shape, angles=_degrees(proj["ProjectionAngles"]),
                     source_distance=float(proj["DistanceOriginSource"]),
                     detector_distance=float(proj["DistanceOriginDetector"]),
                     detectors=int(proj["DetectorCount"]), detector_spacing=float(proj["DetectorWidth"]))
    if kind in ("parallel_vec", "fanflat_vec"):
        v = np.asarray(proj["Vectors"], dtype=np.float64)
        u = v[:, 4:6]
        spacing = np.linalg.norm(u, axis=1)
        e = u / spacing[:, None]
        en = np.stack([-e[:, 1], e[:, 0]], 1)  # e⊥: rays travel along it
        offset = np.sum(v[:, 2:4] * e, 1)
        angles = _degrees(np.arctan2(e[:, 1], e[:, 0]))
        params = {"angles": angles, "detectors": int(proj["DetectorCount"]),
                  "detector_spacing": _same(spacing, "detector pixel size"),
                  "detector_offset": _same(offset, "detector offset")}
        if kind == "parallel_vec":
            if not np.allclose(np.sum(v[:, 0:2] * e, 1), 0.0, atol=1e-9):
                raise ValueError("from_astra: parallel_vec rays are not perpendicular to the detector; invmap's "
                                 "parallel beam has no such geometry")
            return build("tomography", image_shape=shape, **params)
        so = _same(-np.sum(v[:, 0:2] * en, 1), "source distance")
        od = _same(np.sum(v[:, 2:4] * en, 1), "detector distance")
        if not np.allclose(np.sum(v[:, 0:2] * e, 1), 0.0, atol=1e-9):
            raise ValueError("from_astra: the fanflat_vec source is not on the central ray; invmap's fan beam "
                             "has no such geometry")
        return build("fanbeam", image_shape=shape, source_distance=so, detector_distance=od, **params)
    raise ValueError(f"from_astra: unsupported ASTRA projection geometry '{kind}'; "
                     "available: parallel, parallel_vec, fanflat, fanflat_vec")


def _degrees(radians: Any) -> list[float]:
    return [float(a) for a in np.rad2deg(np.asarray(radians, dtype=np.float64))]


def _same(values: np.ndarray, what: str) -> float:
    if not np.allclose(values, values[0], rtol=1e-9, atol=1e-9):
        raise ValueError(f"from_astra: the {what} changes from view to view; invmap's geometry keeps it fixed")
    v = float(values[0])
    return 0.0 if math.isclose(v, 0.0, abs_tol=1e-12) else v


__all__ = ["to_astra", "from_astra"]
