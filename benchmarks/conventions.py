"""Agreement of invmap with its peers under the settings of docs/CONVENTIONS.md, in one run.

Prints relative L2 differences ‖y_invmap − y_peer‖ / ‖y_peer‖ of sinograms (invmap's
Shepp–Logan phantom, pixel-averaged, 45 views) against ASTRA, scikit-image and deepinv — with the documented settings and with
invmap's defaults, so the size of each convention gap is on record — plus:

- ``norm()`` against the dense SVD on 64² blurs, and what the earlier 50-step power method
  gave (it is re-run here for the comparison only);
- the PSNR gap between the data range conventions (L = 1 vs max − min) on ellipse phantoms.

Peers that are not importable are reported as such. Run with the peer venv:

    PYTHONPATH=src /work/anchors-venv/bin/python benchmarks/conventions.py
"""

from __future__ import annotations

import math

import numpy as np
import torch

import invmap.operators as ops
from invmap import metrics
from invmap.data import build_source
from invmap.operators.peers import deepinv_tomography_settings, skimage_radon_settings

ANGLES = [float(a) for a in np.arange(0.0, 180.0, 4.0) + 1.0]


def phantom(n: int) -> np.ndarray:
    """invmap's Shepp–Logan phantom, n × n float64, area-averaged from a 4× finer rendering."""
    fine = build_source("shepp-logan", n, split="test", count=1).fine([0], 4)
    return torch.nn.functional.avg_pool2d(fine.double(), 4)[0, 0].numpy()


def agreement(op, img: np.ndarray, ref: np.ndarray) -> float:
    """‖K img − ref‖ / ‖ref‖."""
    y = op(torch.from_numpy(img)[None, None])[0, 0]
    y = (torch.view_as_real(y) if y.is_complex() else y).numpy()
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def row(what: str, value: float | str) -> None:
    print(f"| {what} | {value if isinstance(value, str) else f'{value:.2e}'} |")


def astra_rows() -> None:
    try:
        import astra
    except ImportError:
        row("ASTRA", "not installed")
        return

    def run(pg, shape, img, projector):
        pid = astra.create_projector(projector, pg, astra.create_vol_geom(*shape))
        sid, s = astra.create_sino(img.astype(np.float32), pid)
        astra.data2d.delete(sid)
        astra.projector.delete(pid)
        return s.astype(np.float64)

    for n, sp in ((64, 1.0), (63, 1.0), (64, 1.25)):
        img = phantom(n)
        K = ops.build("tomography", image_shape=(n, n), angles=ANGLES, detector_spacing=sp)
        pg = astra.create_proj_geom("parallel", sp, K.out_shape[1], np.deg2rad(ANGLES))
        row(f"ASTRA parallel + linear, {n}², spacing {sp}", agreement(K, img, run(pg, (n, n), img, "linear")))
    shape = (64, 64)
    img = phantom(64)
    angles = [float(a) for a in np.arange(0.0, 360.0, 6.0) + 0.5]
    F = ops.build("fanbeam", image_shape=shape, angles=angles)
    p = F.params()
    pg = astra.create_proj_geom("fanflat", p["detector_spacing"], p["detectors"], np.deg2rad(angles),
                                p["source_distance"], p["detector_distance"])
    for proj in ("strip_fanflat", "line_fanflat"):
        row(f"ASTRA fanflat + {proj} (no CPU Joseph fan), 64², 60 views", agreement(F, img, run(pg, shape, img, proj)))


def skimage_rows() -> None:
    from skimage.transform import radon

    for n in (63, 64, 128):
        for circle in (True, False):
            img = phantom(n)
            ref = radon(img, theta=np.asarray(ANGLES), circle=circle).T
            settings = skimage_radon_settings(n, circle)
            K = ops.build("tomography", image_shape=(n, n), angles=ANGLES, **settings)
            K0 = ops.build("tomography", image_shape=(n, n), angles=ANGLES, detectors=settings["detectors"])
            row(f"scikit-image radon(circle={circle}), {n}², documented settings", agreement(K, img, ref))
            row(f"scikit-image radon(circle={circle}), {n}², same cells about invmap's centre", agreement(K0, img, ref))


def deepinv_rows() -> None:
    try:
        import deepinv as dinv
    except ImportError:
        row("deepinv", "not installed")
        return
    for n in (64, 128):
        img = phantom(n)
        x = torch.from_numpy(img)[None, None].float()
        for circle in (True, False):
            P = dinv.physics.Tomography(angles=torch.tensor(ANGLES), img_width=n, circle=circle, normalize=False)
            ref = P.A(x)[0, 0].T.double().numpy()
            K = ops.build("tomography", image_shape=(n, n), angles=ANGLES, **deepinv_tomography_settings(n, circle))
            row(f"deepinv Tomography(circle={circle}), {n}², documented settings", agreement(K, img, ref))
            if not circle:
                D = ref.shape[1]
                Kc = ops.build("tomography", image_shape=(n, n), angles=ANGLES, detectors=D)
                row(f"deepinv Tomography(circle=False), {n}², {D} cells about invmap's centre", agreement(Kc, img, ref))
    n = 64
    img = phantom(n)
    angles = [float(a) for a in np.arange(0.0, 360.0, 6.0) + 0.5]
    F = ops.build("fanbeam", image_shape=(n, n), angles=angles)
    p = F.params()
    P = dinv.physics.Tomography(angles=torch.tensor(angles), img_width=n, normalize=False, fan_beam=True,
                                fan_parameters={"pixel_spacing": 1.0, "source_radius": p["source_distance"],
                                                "detector_radius": p["detector_distance"],
                                                "n_detector_pixels": p["detectors"],
                                                "detector_spacing": p["detector_spacing"]})
    ref = P.A(torch.from_numpy(img)[None, None].float())[0, 0].T.double().numpy()
    d = deepinv_tomography_settings(n)["rotation_center"]
    F2 = ops.build("fanbeam", image_shape=(n, n), angles=[(a - 90.0) % 360 for a in angles],
                   **{k: p[k] for k in ("source_distance", "detector_distance", "detectors", "detector_spacing")},
                   rotation_center=d)
    row("deepinv Tomography(fan_beam=True), 64², θ_invmap = θ_deepinv − 90°, its padded centre", agreement(F2, img, ref))
    row("deepinv Tomography(fan_beam=True), 64², same θ", agreement(F, img, ref))
    K = ops.build("mri", image_shape=(32, 32), acceleration=4.0)
    x = torch.from_numpy(phantom(32)).float()[None, None]
    Pm = dinv.physics.MRI(mask=K.measured().float(), img_size=(2, 32, 32))
    ref = Pm.A(torch.cat([x, torch.zeros_like(x)], 1))[0].permute(1, 2, 0).double().numpy()
    row("deepinv MRI (same mask), 32²", agreement(K, phantom(32), ref))


def norm_rows() -> None:
    def power(op, iters=50):  # the earlier estimate: 50 power steps from a seeded start, no margin
        x = torch.randn((1, 1) + op.in_shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        x = x / x.norm()
        lam = 0.0
        for _ in range(iters):
            z = op._adjoint(op._forward(x))
            lam = float((x * z).sum())
            x = z / z.norm()
        return math.sqrt(lam)

    n = 64
    for kw in (dict(sigma=2.0), dict(sigma=4.0), dict(kernel="motion", length=9.0, angle=30.0)):
        for boundary in ("zero", "reflect", "circular"):
            op = ops.build("blur", image_shape=(n, n), boundary=boundary, **kw)
            M = op._forward(torch.eye(n * n, dtype=torch.float64).reshape(-1, 1, n, n)).reshape(n * n, -1)
            s = float(torch.linalg.svdvals(M)[0])
            what = ", ".join(f"{k}={v}" for k, v in kw.items())
            row(f"blur {what}, {boundary}, {n}²: norm()/σ_max − 1 (50-step power method: "
                f"{power(op) / s - 1:+.2e})", f"{op.norm() / s - 1:+.2e}")


def psnr_rows() -> None:
    for n in (64, 128):
        x = build_source("ellipses", n, split="test", count=32, seed=0).batch(list(range(32)))
        L = metrics.data_range_of(x, "max-min")
        gap = float((20 * torch.log10(L)).mean())
        row(f"ellipses {n}², 32 images: PSNR(max − min) − PSNR(L = 1), mean dB", f"{gap:+.2f} dB")


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("| comparison | relative difference |\n|---|---|")
    astra_rows()
    skimage_rows()
    deepinv_rows()
    norm_rows()
    psnr_rows()
