"""Forward operators K: one generic test per property, parametrized over the registry
(so an operator added later is covered for free), plus per-operator independent references."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

import invmap.operators as ops
from invmap.operators import LinearOperator, inner

NAMES = ops.names()
SHAPE = (24, 20)  # non-square: catches transposed H/W
TINY = (9, 8)  # dense-matrix checks (H odd: catches cropping bugs)


def rand_in(op: LinearOperator, dtype: torch.dtype, g: torch.Generator, lead=(2, 1)) -> torch.Tensor:
    return torch.randn(tuple(lead) + op.in_shape, generator=g, dtype=dtype)


def rand_out(op: LinearOperator, dtype: torch.dtype, g: torch.Generator, lead=(2, 1)) -> torch.Tensor:
    shape = tuple(lead) + op.out_shape
    y = torch.randn(shape, generator=g, dtype=dtype)
    if op.complex_output:
        y = torch.complex(y, torch.randn(shape, generator=g, dtype=dtype))
    return y


def dense(op: LinearOperator) -> tuple[np.ndarray, np.ndarray]:
    """(K, Kᵀ) as real matrices, built column by column from basis vectors (float64).

    A complex output C^m is treated as R^{2m} (real parts, then imaginary parts), matching
    the real inner product Re<a, b> the adjoint is defined for.
    """
    n, m = int(np.prod(op.in_shape)), int(np.prod(op.out_shape))
    e_in = torch.eye(n, dtype=torch.float64).reshape((n, 1) + op.in_shape)
    k = op(e_in).reshape(n, m)
    K = torch.cat([k.real, k.imag], dim=1).T if op.complex_output else k.T
    e_out = torch.eye(m, dtype=torch.float64).reshape((m, 1) + op.out_shape)
    kt = op.adjoint(e_out).reshape(m, n)
    if op.complex_output:
        kt = torch.cat([kt, op.adjoint(1j * e_out.to(torch.complex128)).reshape(m, n)], dim=0)
    return K.numpy(), kt.T.numpy()


# ------------------------------------------------------------------ generic, over the registry
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)], ids=["f32", "f64"])
@pytest.mark.parametrize("name", NAMES)
def test_dot_test(name, dtype, tol, gen):
    """|<Kx, y> − <x, Kᵀy>| / (‖K‖‖x‖‖y‖) below tol, and dtypes are kept."""
    op = ops.build(name, image_shape=SHAPE)
    x, y = rand_in(op, dtype, gen), rand_out(op, dtype, gen)
    kx, kty = op(x), op.adjoint(y)
    assert tuple(kx.shape) == (2, 1) + op.out_shape and tuple(kty.shape) == (2, 1) + op.in_shape
    assert kx.is_complex() == op.complex_output
    assert (kx.real.dtype if kx.is_complex() else kx.dtype) == dtype and kty.dtype == dtype
    lhs, rhs = float(inner(kx, y)), float(inner(x, kty))
    scale = op.norm() * float(x.norm()) * float(y.norm())
    assert scale > 0
    assert abs(lhs - rhs) / scale < tol


@pytest.mark.parametrize("name", NAMES)
def test_autograd_matches_adjoint(name, gen):
    """The vjp of K (autograd through forward) is Kᵀ, and the vjp of Kᵀ is K (float64)."""
    op = ops.build(name, image_shape=SHAPE)
    x = rand_in(op, torch.float64, gen).requires_grad_(True)
    v = rand_out(op, torch.float64, gen)
    (gx,) = torch.autograd.grad(op(x), x, v)
    torch.testing.assert_close(gx, op.adjoint(v), rtol=1e-10, atol=1e-12)
    y = rand_out(op, torch.float64, gen).requires_grad_(True)
    w = rand_in(op, torch.float64, gen)
    (gy,) = torch.autograd.grad(op.adjoint(y), y, w)
    torch.testing.assert_close(gy, op(w).to(gy.dtype), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_dense_adjoint_is_transpose_and_norm(name):
    """At a tiny size the matrix of Kᵀ is the transpose of K's, and norm() is K's largest singular value."""
    op = ops.build(name, image_shape=TINY)
    K, Kt = dense(op)
    np.testing.assert_allclose(Kt, K.T, rtol=0, atol=1e-12 * max(1.0, np.abs(K).max()))
    smax = np.linalg.svd(K, compute_uv=False)[0]
    assert op.norm() == pytest.approx(smax, rel=1e-2)


@pytest.mark.parametrize("name", NAMES)
def test_batch_and_channels_are_independent(name, gen):
    """[B, C, H, W] inputs: every (b, c) slice is mapped on its own."""
    op = ops.build(name, image_shape=SHAPE)
    x = rand_in(op, torch.float64, gen, lead=(3, 2))
    y = op(x)
    torch.testing.assert_close(y[1, 1], op(x[1:2, 1:2])[0, 0])
    yy = rand_out(op, torch.float64, gen, lead=(3, 2))
    torch.testing.assert_close(op.adjoint(yy)[2, 0], op.adjoint(yy[2:3, 0:1])[0, 0])


@pytest.mark.parametrize("shape", [(5, 7), (33, 17)])
@pytest.mark.parametrize("name", NAMES)
def test_builds_with_defaults_at_other_sizes(name, shape):
    """Every registered operator builds with its defaults for other (odd, non-square) sizes."""
    op = ops.build(name, image_shape=shape)
    y = op(torch.rand((1, 1) + shape))
    assert op.in_shape == shape and tuple(y.shape) == (1, 1) + op.out_shape
    assert tuple(op.adjoint(y).shape) == (1, 1) + shape


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trip(name, gen):
    op = ops.build(name, image_shape=SHAPE)
    op2 = ops.from_spec(ops.spec(op))
    x = rand_in(op, torch.float64, gen)
    torch.testing.assert_close(op2(x), op(x))
    assert op2.in_shape == op.in_shape and op2.out_shape == op.out_shape
    op3 = ops.build(name, image_shape=SHAPE, **op.params())  # params() rebuilds K too
    torch.testing.assert_close(op3(x), op(x))
    json.dumps(ops.spec(op)), json.dumps(op.params())


@pytest.mark.parametrize("params", [dict(psf=np.arange(6.0).reshape(2, 3)), dict(kernel="motion", angle=20.0)])
def test_blur_spec_with_psf_round_trips(params, gen):
    op = ops.build("blur", image_shape=SHAPE, **params)
    x = rand_in(op, torch.float64, gen)
    torch.testing.assert_close(ops.from_spec(json.loads(json.dumps(ops.spec(op))))(x), op(x))
    torch.testing.assert_close(ops.build("blur", image_shape=SHAPE, **op.params())(x), op(x))


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shape_and_nan_inputs(name):
    op = ops.build(name, image_shape=SHAPE)
    with pytest.raises(ValueError, match=r"expected \[\.\.\., 24, 20\], got \[1, 1, 20, 24\]"):
        op(torch.zeros(1, 1, 20, 24))
    bad_out = tuple(s + 1 for s in op.out_shape)
    with pytest.raises(ValueError, match=r"expected .*got \[1, 1, " + ", ".join(map(str, bad_out))):
        op.adjoint(torch.zeros((1, 1) + bad_out))
    x = torch.zeros((1, 1) + op.in_shape)
    x[0, 0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        op(x)


@pytest.mark.parametrize("name", NAMES)
def test_finite_check_is_exact(name):
    """One +Inf or −Inf anywhere is refused; finite values whose sum overflows are accepted."""
    op = ops.build(name, image_shape=SHAPE)
    for bad in (float("inf"), -float("inf")):
        x = torch.zeros((2, 1) + op.in_shape)
        x[1, 0, -1, -1] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            op(x)
    big = torch.full((2, 1) + op.in_shape, torch.finfo(torch.float32).max / 2)
    assert not torch.isfinite(big.sum())
    op(big)  # no error: every entry is finite


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name, gen):
    op = ops.build(name, image_shape=SHAPE)
    x, y = rand_in(op, torch.float32, gen), rand_out(op, torch.float32, gen)
    kx, kty = op(x.cuda()), op.adjoint(y.cuda())
    assert kx.device.type == "cuda" and kty.device.type == "cuda"
    torch.testing.assert_close(kx.cpu(), op(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(kty.cpu(), op.adjoint(y), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------ algebra
def test_algebra(gen):
    B = ops.build("blur", image_shape=SHAPE, sigma=1.0)
    D = ops.build("downsample", image_shape=SHAPE, factor=2)
    M = ops.build("inpainting", image_shape=SHAPE, missing=0.3, seed=1)
    x = rand_in(B, torch.float64, gen)
    y = rand_out(D, torch.float64, gen)

    DB = D @ B
    assert DB.in_shape == SHAPE and DB.out_shape == D.out_shape
    torch.testing.assert_close(DB(x), D(B(x)))
    torch.testing.assert_close(DB.adjoint(y), B.adjoint(D.adjoint(y)))
    torch.testing.assert_close((B + M)(x), B(x) + M(x))
    torch.testing.assert_close((B + M).adjoint(x), B.adjoint(x) + M.adjoint(x))
    torch.testing.assert_close((B - M)(x), B(x) - M(x))
    torch.testing.assert_close((2.5 * B)(x), 2.5 * B(x))
    torch.testing.assert_close((B * -0.5).adjoint(x), -0.5 * B.adjoint(x))
    torch.testing.assert_close((-M)(x), -M(x))
    assert (3.0 * D).norm() == pytest.approx(3.0 * D.norm())
    assert D.T.in_shape == D.out_shape and D.T.T is D
    torch.testing.assert_close(D.T(y), D.adjoint(y))
    torch.testing.assert_close(D.T.adjoint(x), D(x))
    torch.testing.assert_close(B.normal(x), B.adjoint(B(x)))
    for op in (DB, B + M, 2.0 * B - M, D.T @ D):  # composites pass the dot test too
        xx, yy = rand_in(op, torch.float64, gen), rand_out(op, torch.float64, gen)
        assert abs(float(inner(op(xx), yy) - inner(xx, op.adjoint(yy)))) < 1e-10 * float(xx.norm() * yy.norm())


def test_algebra_shape_errors():
    B = ops.build("blur", image_shape=SHAPE)
    D = ops.build("downsample", image_shape=SHAPE, factor=2)
    with pytest.raises(ValueError, match=r"cannot compose.*\[24, 20\].*\[12, 10\]"):
        D @ D
    with pytest.raises(ValueError, match="cannot add"):
        B + D
    with pytest.raises(TypeError):
        B @ torch.zeros(3)


def test_unknown_operator_and_parameters():
    with pytest.raises(ValueError, match="unknown operator 'nope'.*blur"):
        ops.build("nope", image_shape=SHAPE)
    with pytest.raises(ValueError, match="unknown parameter.*'width'.*allowed: kernel"):
        ops.build("blur", image_shape=SHAPE, width=3)
    with pytest.raises(ValueError, match="boundary"):
        ops.build("blur", image_shape=SHAPE, boundary="periodic")
    with pytest.raises(ValueError, match="factor"):
        ops.build("downsample", image_shape=SHAPE, factor="two")
    with pytest.raises(ValueError, match="image_shape"):
        ops.build("blur", image_shape=(0, 4))


# --------------------------------------------------------------- per-operator references
PSFS = {
    "gaussian": dict(kernel="gaussian", sigma=1.2),
    "motion": dict(kernel="motion", length=5, angle=30.0),
    "disk": dict(kernel="disk", radius=2.3),
    "psf-3x5": dict(psf=np.random.default_rng(1).random((3, 5)).tolist()),
    "psf-even-4x2": dict(psf=np.random.default_rng(2).random((4, 2))),
    "psf-larger-than-image": dict(psf=np.random.default_rng(3).random((15, 13))),
}


@pytest.mark.parametrize("kind", list(PSFS))
@pytest.mark.parametrize("boundary,mode", [("zero", "constant"), ("reflect", "reflect"), ("circular", "wrap")])
def test_blur_matches_scipy(kind, boundary, mode, camera64):
    x = camera64[:11, :9]
    op = ops.build("blur", image_shape=x.shape, boundary=boundary, **PSFS[kind])
    y = op(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(y, ndi.convolve(x, op.psf, mode=mode, cval=0.0), atol=1e-12)
    if boundary != "reflect" and all(s % 2 for s in op.psf.shape):  # then Kᵀ is a plain correlation
        kty = op.adjoint(torch.from_numpy(x)[None, None])[0, 0].numpy()
        np.testing.assert_allclose(kty, ndi.correlate(x, op.psf, mode=mode, cval=0.0), atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "motion", "disk", "psf-larger-than-image"])
@pytest.mark.parametrize("boundary", ["zero", "reflect", "circular"])
def test_blur_dense_adjoint_and_norm_each_boundary(kind, boundary):
    op = ops.build("blur", image_shape=TINY, boundary=boundary, **PSFS[kind])
    K, Kt = dense(op)
    np.testing.assert_allclose(Kt, K.T, atol=1e-12)
    assert op.norm() == pytest.approx(np.linalg.svd(K, compute_uv=False)[0], rel=1e-2)


def test_blur_kernels():
    g = ops.build("blur", image_shape=SHAPE, sigma=2.0).psf
    assert g.shape == (13, 13) and g.sum() == pytest.approx(1.0) and np.allclose(g, g.T)
    assert np.unravel_index(g.argmax(), g.shape) == (6, 6)
    m = ops.build("blur", image_shape=SHAPE, kernel="motion", length=7, angle=0.0).psf
    assert m.shape[0] == 1 and m.sum() == pytest.approx(1.0) and np.count_nonzero(m) == 7
    v = ops.build("blur", image_shape=SHAPE, kernel="motion", length=7, angle=90.0).psf
    np.testing.assert_allclose(v.ravel(), m.ravel(), atol=1e-12)
    assert v.shape[1] == 1
    d = ops.build("blur", image_shape=SHAPE, kernel="disk", radius=2.0).psf
    assert d.shape == (5, 5) and d.sum() == pytest.approx(1.0) and np.allclose(d, d.T) and np.allclose(d, d[::-1])
    assert d[2, 2] == d.max() and d[0, 0] == 0.0  # the corner pixels lie outside a disk of radius 2
    # anti-aliased: the PSF's second moment is that of the continuous disk, r²/4 per axis
    big = ops.build("blur", image_shape=SHAPE, kernel="disk", radius=10.0).psf
    t = np.arange(big.shape[0]) - big.shape[0] // 2
    assert float((big.sum(axis=1) * t**2).sum()) == pytest.approx(10.0**2 / 4, rel=0.01)
    with pytest.raises(ValueError, match="disk radius"):
        ops.build("blur", image_shape=SHAPE, kernel="disk", radius=0.2)
    with pytest.raises(ValueError, match="psf must be a non-empty 2-D"):
        ops.build("blur", image_shape=SHAPE, psf=[[]])


@pytest.mark.parametrize("shape", [(24, 20), (25, 23)])
@pytest.mark.parametrize("filt", ["box", "gaussian", "none"])
def test_downsample_matches_numpy(filt, shape, camera64):
    f = 2 if filt == "gaussian" else 3
    x = camera64[: shape[0], : shape[1]]
    op = ops.build("downsample", image_shape=shape, factor=f, filter=filt)
    assert op.out_shape == (shape[0] // f, shape[1] // f)
    y = op(torch.from_numpy(x)[None, None])[0, 0].numpy()
    ho, wo = op.out_shape
    if filt == "gaussian":  # σ = f/2 = 1, radius 3 = int(truncate·σ + 0.5) with truncate 3
        x = ndi.gaussian_filter(x, sigma=1.0, mode="reflect", truncate=3.0)
    if filt == "none":
        ref = x[: ho * f: f, : wo * f: f]
    else:
        ref = x[: ho * f, : wo * f].reshape(ho, f, wo, f).mean(axis=(1, 3))
    np.testing.assert_allclose(y, ref, atol=1e-12)
    if filt == "box" and shape[0] % f == 0 and shape[1] % f == 0:
        from skimage.transform import downscale_local_mean

        np.testing.assert_allclose(y, downscale_local_mean(camera64[: shape[0], : shape[1]], (f, f)), atol=1e-12)
    # cropped rows/columns are not measured, so Kᵀ is zero there
    kty = op.adjoint(torch.ones((1, 1) + op.out_shape, dtype=torch.float64))[0, 0].numpy()
    if filt != "gaussian":
        assert np.all(kty[ho * f:, :] == 0) and np.all(kty[:, wo * f:] == 0)


def test_downsample_errors():
    with pytest.raises(ValueError, match="smaller than the factor"):
        ops.build("downsample", image_shape=(3, 8), factor=4)
    with pytest.raises(ValueError, match="sigma applies only"):
        ops.build("downsample", image_shape=SHAPE, sigma=1.0)


def test_inpainting_mask(camera64):
    x = camera64[:24, :20]
    op = ops.build("inpainting", image_shape=SHAPE, missing=0.3, seed=5)
    mask = op.mask.numpy()
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert int((mask == 0).sum()) == round(0.3 * 24 * 20)
    np.testing.assert_allclose(op(torch.from_numpy(x)[None, None])[0, 0].numpy(), mask * x)
    np.testing.assert_array_equal(ops.build("inpainting", image_shape=SHAPE, missing=0.3, seed=5).mask.numpy(), mask)
    assert not np.array_equal(ops.build("inpainting", image_shape=SHAPE, missing=0.3, seed=6).mask.numpy(), mask)
    box = ops.build("inpainting", image_shape=SHAPE, box=(2, 3, 5, 4)).mask.numpy()
    ref = np.ones(SHAPE)
    ref[2:7, 3:7] = 0
    np.testing.assert_array_equal(box, ref)
    with pytest.raises(ValueError, match="missing must be"):
        ops.build("inpainting", image_shape=SHAPE, missing=1.5)
    with pytest.raises(ValueError, match="box"):
        ops.build("inpainting", image_shape=SHAPE, box=(30, 0, 2, 2))


def test_matrix_matches_numpy(camera64):
    x = camera64[:6, :5]
    rng = np.random.default_rng(0)
    A = rng.standard_normal((7, 30))
    op = ops.build("matrix", image_shape=(6, 5), matrix=A)
    assert op.out_shape == (7,)
    np.testing.assert_allclose(op(torch.from_numpy(x)[None, None])[0, 0].numpy(), A @ x.ravel(), atol=1e-12)
    y = rng.standard_normal(7)
    np.testing.assert_allclose(op.adjoint(torch.from_numpy(y)[None, None])[0, 0].numpy(),
                               (A.T @ y).reshape(6, 5), atol=1e-12)
    assert op.norm() == pytest.approx(np.linalg.norm(A, 2), rel=1e-12)
    r1 = ops.build("matrix", image_shape=(6, 5), m=10, seed=3).matrix.numpy()
    assert r1.shape == (10, 30)
    np.testing.assert_array_equal(r1, ops.build("matrix", image_shape=(6, 5), m=10, seed=3).matrix.numpy())
    with pytest.raises(ValueError, match=r"shape \(m, 30\).*got shape \[7, 29\]"):
        ops.build("matrix", image_shape=(6, 5), matrix=A[:, :29])


def test_inpainting_masks_of_one_seed_are_nested():
    """For one seed a larger missing fraction removes a superset of the pixels (dead pixels)."""
    a = ops.build("inpainting", image_shape=(20, 16), missing=0.3, seed=4).mask
    b = ops.build("inpainting", image_shape=(20, 16), missing=0.35, seed=4).mask
    assert int((a == 0).sum()) == 96 and int((b == 0).sum()) == 112
    assert bool(((a == 0) <= (b == 0)).all())


def test_mri_kspace_shift_samples_the_dft_off_grid(camera64, gen):
    """kspace_shift δ: y[ky, kx] = M · Σ x[n] exp(−2πi (ky·ny/H + (kx + δ)·nx/W)) / √(HW)
    (centred indices), with an exact adjoint; δ = 0 is the plain operator."""
    H, W, d = 12, 10, 0.3
    x = camera64[:H, :W]
    op = ops.build("mri", image_shape=(H, W), acceleration=2, center_fraction=0.25, kspace_shift=d, seed=1)
    ny, nx = np.arange(H) - H // 2, np.arange(W) - W // 2
    ky, kx = np.arange(H) - H // 2, np.arange(W) - W // 2
    Ey = np.exp(-2j * np.pi * np.outer(ky, ny) / H)
    Ex = np.exp(-2j * np.pi * np.outer(nx, kx + d) / W)
    ref = (Ey @ x @ Ex) / np.sqrt(H * W) * op.lines.numpy()[:, None]
    np.testing.assert_allclose(op(torch.from_numpy(x)[None, None])[0, 0].numpy(), ref, atol=1e-12)
    xs, ys = rand_in(op, torch.float64, gen), rand_out(op, torch.float64, gen)
    assert abs(float(inner(op(xs), ys)) - float(inner(xs, op.adjoint(ys)))) < 1e-12 * float(xs.norm() * ys.norm())
    plain = ops.build("mri", image_shape=(H, W), acceleration=2, center_fraction=0.25, seed=1)
    torch.testing.assert_close(ops.build("mri", image_shape=(H, W), acceleration=2, center_fraction=0.25, seed=1,
                                         kspace_shift=0.0)(torch.from_numpy(x)), plain(torch.from_numpy(x)))
    with pytest.raises(ValueError, match="kspace_shift"):
        ops.build("mri", image_shape=(H, W), kspace_shift=float("nan"))


@pytest.mark.parametrize("pattern", ["random", "equispaced"])
def test_mri_matches_numpy_fft(pattern, camera64):
    x = camera64[:24, :20]
    op = ops.build("mri", image_shape=SHAPE, acceleration=4, center_fraction=0.125, pattern=pattern, seed=2)
    lines = op.lines.numpy()
    assert lines[12 - 1: 12 + 2].all()  # the round(0.125·24) = 3 centre lines around DC row 12
    if pattern == "random":
        assert lines.sum() == 24 // 4
    mask = np.repeat(lines[:, None], 20, axis=1).astype(float)
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x), norm="ortho"))
    y = op(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(y, mask * k, atol=1e-12)
    assert abs(y[12, 10] - x.sum() / np.sqrt(x.size)) < 1e-12  # DC at the centre
    kty = op.adjoint(torch.from_numpy(y)[None, None])[0, 0].numpy()
    ref = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(mask * y), norm="ortho")).real
    np.testing.assert_allclose(kty, ref, atol=1e-12)
    full = ops.build("mri", image_shape=SHAPE, acceleration=1, center_fraction=0.0)
    xt = torch.from_numpy(x)[None, None]
    torch.testing.assert_close(full.adjoint(full(xt)), xt)  # fully sampled: K is unitary
    same = ops.build("mri", image_shape=SHAPE, acceleration=4, center_fraction=0.125, pattern=pattern, seed=2)
    np.testing.assert_array_equal(same.lines.numpy(), lines)
