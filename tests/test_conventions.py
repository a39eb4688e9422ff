"""The conventions of docs/CONVENTIONS.md, checked against the peer libraries themselves.

Each test runs when its peer (ASTRA, deepinv, scikit-image) is importable and is skipped
otherwise. The settings used here are the ones the conventions page documents; the
tolerances are the agreement it states.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import invmap.operators as ops
from invmap.operators.peers import deepinv_tomography_settings, skimage_radon_settings


def phantom(h: int, w: int | None = None, inscribed: bool = False) -> np.ndarray:
    """scikit-image's Shepp–Logan phantom resized to h × w (float64), optionally zero outside the inscribed circle."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    w = h if w is None else w
    img = resize(shepp_logan_phantom(), (h, w), anti_aliasing=True)
    if inscribed:
        yy, xx = np.mgrid[:h, :w]
        img[np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) > min(h, w) / 2 - 2] = 0
    return img


def sino(op, img: np.ndarray) -> np.ndarray:
    return op(torch.from_numpy(img)[None, None]).numpy()[0, 0]


def rel(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


ANGLES = [float(a) for a in np.arange(0.0, 180.0, 4.0) + 1.0]


# ------------------------------------------------------------------------------ ASTRA
def _astra_sino(proj_geom: dict, shape: tuple[int, int], img: np.ndarray, projector: str) -> np.ndarray:
    astra = pytest.importorskip("astra")
    vg = astra.create_vol_geom(*shape)
    pid = astra.create_projector(projector, proj_geom, vg)
    sid, s = astra.create_sino(img.astype(np.float32), pid)
    astra.data2d.delete(sid)
    astra.projector.delete(pid)
    return s.astype(np.float64)


@pytest.mark.parametrize("shape,spacing", [((64, 64), 1.0), ((63, 63), 1.0), ((48, 64), 1.25)])
def test_parallel_beam_matches_astra_linear(shape, spacing):
    """ASTRA 'parallel' + 'linear' (Joseph) with angles in radians, same cells and spacing: ≤ 1e-4."""
    astra = pytest.importorskip("astra")
    img = phantom(*shape)
    K = ops.build("tomography", image_shape=shape, angles=ANGLES, detector_spacing=spacing)
    pg = astra.create_proj_geom("parallel", spacing, K.out_shape[1], np.deg2rad(ANGLES))
    assert rel(sino(K, img), _astra_sino(pg, shape, img, "linear")) <= 1e-4


def test_detector_offset_and_rotation_center_match_astra_parallel_vec():
    """Offset o and rotation centre c are ASTRA 'parallel_vec' rows (ray, c + o·e(θ), spacing·e(θ))."""
    astra = pytest.importorskip("astra")
    shape, o, c, sp = (48, 64), 1.3, (0.7, -0.4), 1.25
    img = phantom(*shape)
    K = ops.build("tomography", image_shape=shape, angles=ANGLES, detector_spacing=sp, detector_offset=o,
                  rotation_center=c)
    t = np.deg2rad(ANGLES)
    e = np.stack([np.cos(t), np.sin(t)], 1)
    vec = np.concatenate([np.stack([np.sin(t), -np.cos(t)], 1), np.asarray(c)[None] + o * e, sp * e], 1)
    pg = astra.create_proj_geom("parallel_vec", K.out_shape[1], vec)
    assert rel(sino(K, img), _astra_sino(pg, shape, img, "linear")) <= 1e-4


def test_fan_beam_matches_astra_fanflat():
    """ASTRA 'fanflat' (θ in radians, cell width, cells, SO, OD) — same geometry; ASTRA's CPU has
    no Joseph fan projector, so its 'strip_fanflat' agrees to the discretisation (≤ 1.5%) and a
    mirrored or rotated geometry does not."""
    astra = pytest.importorskip("astra")
    shape = (48, 64)
    img = phantom(*shape)
    angles = [float(a) for a in np.arange(0.0, 360.0, 6.0) + 0.5]
    F = ops.build("fanbeam", image_shape=shape, angles=angles)
    p = F.params()
    t = np.deg2rad(angles)
    pg = astra.create_proj_geom("fanflat", p["detector_spacing"], p["detectors"], t, p["source_distance"],
                                p["detector_distance"])
    ref = _astra_sino(pg, shape, img, "strip_fanflat")
    assert rel(sino(F, img), ref) <= 1.5e-2
    assert rel(sino(F, img)[:, ::-1], ref) > 0.1
    pg90 = astra.create_proj_geom("fanflat", p["detector_spacing"], p["detectors"], t + np.pi / 2,
                                  p["source_distance"], p["detector_distance"])
    assert rel(sino(F, img), _astra_sino(pg90, shape, img, "strip_fanflat")) > 0.1


# ------------------------------------------------------------------------- scikit-image
@pytest.mark.parametrize("n", [63, 64, 65, 128])
@pytest.mark.parametrize("circle", [True, False])
def test_parallel_beam_matches_skimage_radon(n, circle):
    """``radon(x, theta, circle).T`` under the documented settings: ≤ 1%; for even n the
    rotation centre is needed (without it the sinograms differ by several percent)."""
    from skimage.transform import radon

    img = phantom(n, inscribed=circle)
    ref = radon(img, theta=np.asarray(ANGLES), circle=circle).T
    settings = skimage_radon_settings(n, circle)
    K = ops.build("tomography", image_shape=(n, n), angles=ANGLES, **settings)
    assert rel(sino(K, img), ref) <= 1e-2
    if n % 2 == 0:
        plain = ops.build("tomography", image_shape=(n, n), angles=ANGLES, detectors=settings["detectors"])
        assert rel(sino(plain, img), ref) > 5e-2


def test_skimage_iradon_reads_invmap_sinograms_under_the_settings():
    """iradon of an invmap sinogram (documented settings) reconstructs as well as of radon's own."""
    from skimage.transform import iradon, radon

    n = 64
    img = phantom(n, inscribed=True)
    angles = np.arange(0.0, 180.0, 1.0)
    K = ops.build("tomography", image_shape=(n, n), angles=[float(a) for a in angles], **skimage_radon_settings(n))
    mine = iradon(sino(K, img).T, theta=angles, circle=True)
    theirs = iradon(radon(img, theta=angles, circle=True), theta=angles, circle=True)
    assert rel(mine, img) <= rel(theirs, img) * 1.05


# ------------------------------------------------------------------------------ deepinv
@pytest.mark.parametrize("n", [63, 64, 128])
@pytest.mark.parametrize("circle", [True, False])
def test_parallel_beam_matches_deepinv_tomography(n, circle):
    """``deepinv.physics.Tomography(angles, n, circle, normalize=False).A(x)`` is y transposed
    (``[B, C, detectors, views]``), under the documented settings: ≤ 1%."""
    dinv = pytest.importorskip("deepinv")
    img = phantom(n)
    P = dinv.physics.Tomography(angles=torch.tensor(ANGLES), img_width=n, circle=circle, normalize=False)
    ref = P.A(torch.from_numpy(img)[None, None].float())[0, 0].T.double().numpy()
    K = ops.build("tomography", image_shape=(n, n), angles=ANGLES, **deepinv_tomography_settings(n, circle))
    assert rel(sino(K, img), ref) <= 1e-2


def test_mri_matches_deepinv_and_the_noise_conventions():
    """deepinv MRI (channels = real, imaginary) = invmap MRI with the same mask; deepinv's σ per
    channel is invmap's σ/√2 (E|e|² = 2σ² vs σ² per sampled entry); both leave y = 0 off the mask."""
    dinv = pytest.importorskip("deepinv")
    from invmap import noise
    from invmap.physics import Physics

    n = 32
    K = ops.build("mri", image_shape=(n, n), acceleration=4.0)
    mask = K.measured().to(torch.float32)
    x = torch.from_numpy(phantom(n)).float()[None, None]
    sigma = 0.05
    P = dinv.physics.MRI(mask=mask, img_size=(2, n, n), noise_model=dinv.physics.GaussianNoise(sigma=sigma))
    x2 = torch.cat([x, torch.zeros_like(x)], 1)
    ref = P.A(x2)
    np.testing.assert_allclose(torch.view_as_real(K(x))[0, 0].permute(2, 0, 1).numpy(), ref[0].numpy(), atol=1e-6)
    xs = x2.repeat(64, 1, 1, 1)
    e_dinv = P(xs) - P.A(xs)
    e_mine = Physics(K, noise.build("gaussian", sigma=math.sqrt(2) * sigma)).measure(x.repeat(64, 1, 1, 1)) - K(x)
    on = mask > 0
    assert float(e_dinv[..., ~on].abs().max()) == 0 and float(e_mine[..., ~on].abs().max()) == 0
    p_dinv = float((e_dinv ** 2).sum(1)[..., on].mean())  # E|e|² per sampled entry
    p_mine = float((e_mine.abs() ** 2)[..., on].mean())
    assert p_dinv == pytest.approx(2 * sigma ** 2, rel=0.03) and p_mine == pytest.approx(p_dinv, rel=0.03)


@pytest.mark.parametrize("mine,theirs", [("circular", "circular"), ("zero", "constant")])
def test_blur_boundaries_match_deepinv(mine, theirs):
    """deepinv ``Blur(filter, padding)`` = invmap blur: 'circular' = 'circular', 'zero' = 'constant'.
    deepinv's 'reflect' is scipy's 'mirror' (edge pixel not repeated), which invmap does not offer;
    invmap's 'reflect' is scipy's 'reflect'."""
    dinv = pytest.importorskip("deepinv")
    n = 32
    K = ops.build("blur", image_shape=(n, n), kernel="motion", length=5.0, angle=30.0, boundary=mine)
    h = torch.from_numpy(K.psf).float()[None, None]
    x = torch.from_numpy(phantom(n)).float()[None, None]
    ref = dinv.physics.Blur(filter=h, padding=theirs)(x)
    torch.testing.assert_close(K(x), ref, rtol=0, atol=1e-6)
    if mine == "circular":  # deepinv 'reflect' differs from invmap 'reflect' at the border
        Kr = ops.build("blur", image_shape=(n, n), kernel="motion", length=5.0, angle=30.0, boundary="reflect")
        assert float((Kr(x) - dinv.physics.Blur(filter=h, padding="reflect")(x)).abs().max()) > 1e-3
