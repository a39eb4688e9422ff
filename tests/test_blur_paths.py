"""The blur's computation paths (`invmap.operators.convolution`): every path, for every boundary
it applies to, is the same K as scipy.ndimage (forward: ``convolve``; adjoint: the transpose of
scipy's matrix) and keeps the exact adjoint under autograd, ``torch.vmap`` and ``torch.func``.

The path is internal (chosen by cost); these tests force each one on a built operator."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

import invmap.operators as ops
from invmap.operators import inner
from invmap.operators.convolution import CHUNK, DEPTHWISE_MIN, PATHS, Convolution, costs, factors, fast_fft_size, plan

MODES = {"zero": "constant", "reflect": "reflect", "circular": "wrap"}
CASES = [("zero", "conv"), ("zero", "fft-padded"), ("reflect", "conv"), ("reflect", "fft-padded"),
         ("circular", "conv"), ("circular", "fft")]
_r = np.random.default_rng(7)
PSFS = {
    "gaussian (separable)": dict(kernel="gaussian", sigma=1.2),
    "motion 0° (1 row)": dict(kernel="motion", length=7),
    "motion 30° (sparse, non-separable)": dict(kernel="motion", length=6, angle=30.0),
    "disk": dict(kernel="disk", radius=2.3),
    "random 3x5": dict(psf=_r.random((3, 5))),
    "separable even 4x3": dict(psf=np.outer(_r.random(4), _r.random(3))),
    "random even 4x2": dict(psf=_r.random((4, 2))),
    "larger than the image": dict(psf=_r.random((15, 13))),
}
SHAPE = (11, 9)  # odd, non-square, not FFT-friendly sizes


def blur(boundary: str, path: str, shape=SHAPE, **params) -> ops.LinearOperator:
    """A blur operator computed by `path` (the operator's own choice replaced)."""
    op = ops.build("blur", image_shape=shape, boundary=boundary, **params)
    op._conv = Convolution(op.psf, op.in_shape, boundary, path=path)
    assert op.path() == op.path(DEPTHWISE_MIN) == path
    return op


def scipy_matrix(psf: np.ndarray, shape: tuple[int, int], mode: str) -> np.ndarray:
    """K as a dense matrix, column j = scipy.ndimage.convolve(e_j, psf, mode)."""
    n = shape[0] * shape[1]
    cols = [ndi.convolve(e.reshape(shape), psf, mode=mode, cval=0.0).ravel() for e in np.eye(n)]
    return np.stack(cols, 1)


@pytest.mark.parametrize("kind", list(PSFS))
@pytest.mark.parametrize("boundary,path", CASES)
def test_each_path_matches_scipy(kind, boundary, path, camera64):
    """K x = scipy.ndimage.convolve(x, h, mode) and Kᵀ = (scipy's matrix)ᵀ, float64."""
    x = camera64[:SHAPE[0], :SHAPE[1]]
    op = blur(boundary, path, **PSFS[kind])
    mode = MODES[boundary]
    y = op(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(y, ndi.convolve(x, op.psf, mode=mode, cval=0.0), rtol=0, atol=1e-12)
    K = scipy_matrix(op.psf, SHAPE, mode)
    v = np.random.default_rng(0).standard_normal(SHAPE)
    kty = op.adjoint(torch.from_numpy(v)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(kty.ravel(), K.T @ v.ravel(), rtol=0, atol=1e-12)
    if boundary != "reflect" and all(s % 2 for s in op.psf.shape):  # then Kᵀ is a plain correlation
        np.testing.assert_allclose(kty, ndi.correlate(v, op.psf, mode=mode, cval=0.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)], ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ["gaussian (separable)", "motion 30° (sparse, non-separable)",
                                  "larger than the image"])
@pytest.mark.parametrize("boundary,path", CASES)
def test_each_path_dot_test_and_autograd(boundary, path, kind, dtype, tol, gen):
    """|<Kx, y> − <x, Kᵀy>| / (‖K‖‖x‖‖y‖) < tol, dtypes kept; autograd through K is Kᵀ and back."""
    op = blur(boundary, path, shape=(24, 20), **PSFS[kind])
    x = torch.randn((2, 1, 24, 20), generator=gen, dtype=dtype)
    y = torch.randn((2, 1, 24, 20), generator=gen, dtype=dtype)
    kx, kty = op(x), op.adjoint(y)
    assert kx.dtype == dtype and kty.dtype == dtype and kx.shape == x.shape and kty.shape == y.shape
    assert abs(float(inner(kx, y)) - float(inner(x, kty))) / (op.norm() * float(x.norm() * y.norm())) < tol
    xd, yd = x.double().requires_grad_(True), y.double().requires_grad_(True)
    (gx,) = torch.autograd.grad(op(xd), xd, yd.detach())
    torch.testing.assert_close(gx, op.adjoint(yd.detach()), rtol=1e-10, atol=1e-12)
    (gy,) = torch.autograd.grad(op.adjoint(yd), yd, xd.detach())
    torch.testing.assert_close(gy, op(xd.detach()), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian (separable)", "motion 30° (sparse, non-separable)",
                                  "larger than the image"])
@pytest.mark.parametrize("boundary,path", CASES)
def test_each_path_under_vmap_and_torch_func(boundary, path, kind, gen):
    """vmap(K) = batched K; torch.func.grad / vjp give Kᵀ; jacrev is the dense matrix."""
    op = blur(boundary, path, shape=(7, 6), **PSFS[kind])
    x = torch.randn((3, 1, 7, 6), generator=gen, dtype=torch.float64)
    y = torch.randn((3, 1, 7, 6), generator=gen, dtype=torch.float64)
    torch.testing.assert_close(torch.vmap(op.forward)(x), op(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.vmap(op.adjoint, in_dims=-1)(y.movedim(0, -1)), op.adjoint(y),
                               rtol=1e-12, atol=1e-12)
    gx = torch.func.grad(lambda t: inner(op.forward(t), y))(x)
    torch.testing.assert_close(gx, op.adjoint(y), rtol=1e-10, atol=1e-12)
    gy = torch.func.grad(lambda t: inner(op.adjoint(t), x))(y)
    torch.testing.assert_close(gy, op(x), rtol=1e-10, atol=1e-12)
    J = torch.func.jacrev(op.forward)(x[:1]).reshape(42, 42)
    K = scipy_matrix(op.psf, (7, 6), MODES[boundary])
    np.testing.assert_allclose(J.numpy(), K, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian (separable)", "motion 30° (sparse, non-separable)"])
@pytest.mark.parametrize("boundary,path", CASES)
def test_a_large_batch_is_the_per_image_map(boundary, path, kind, gen):
    """A batch of CHUNK + DEPTHWISE_MIN + 1 images (computed CHUNK at a time; on the conv path
    the images of a chunk are the channels of one grouped convolution): each image's K x and
    Kᵀ y are still its own, and the dot test holds (float32)."""
    op = blur(boundary, path, shape=(24, 20), **PSFS[kind])
    n = CHUNK + DEPTHWISE_MIN + 1
    x = torch.randn((n, 1, 24, 20), generator=gen)
    y = torch.randn((n, 1, 24, 20), generator=gen)
    kx, kty = op(x), op.adjoint(y)
    for i in (0, CHUNK - 1, CHUNK, n - 1):
        torch.testing.assert_close(kx[i], op(x[i:i + 1])[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(kty[i], op.adjoint(y[i:i + 1])[0], rtol=1e-5, atol=1e-6)
    assert abs(float(inner(kx, y)) - float(inner(x, kty))) / (op.norm() * float(x.norm() * y.norm())) < 1e-5


@pytest.mark.parametrize("boundary", list(MODES))
def test_the_chosen_path_is_the_cheapest_and_separable_psfs_split(boundary):
    """The operator takes `plan`'s path; a rank-one PSF is two 1-D passes, others one 2-D pass;
    a wide PSF on one image takes an FFT path, a short single-row one a convolution."""
    for params in PSFS.values():
        op = ops.build("blur", image_shape=(128, 128), boundary=boundary, **params)
        for n in (1, DEPTHWISE_MIN, 64):
            c = costs(op.psf, (128, 128), boundary, n)
            assert op.path(n) == plan(op.psf, (128, 128), boundary, n) == min(c, key=c.get)
    g = ops.build("blur", image_shape=(128, 128), boundary=boundary, kernel="gaussian", sigma=3.0)
    assert [f.shape for f in factors(g.psf)] == [(19, 1), (1, 19)] and g.path(1) != "conv"
    m = ops.build("blur", image_shape=(128, 128), boundary=boundary, kernel="motion", length=7)
    assert [f.shape for f in factors(m.psf)] == [(1, 7)] and m.path(CHUNK) == "conv"
    if boundary != "circular":  # (circular: one 128² FFT convolution costs about as much)
        assert m.path(1) == "conv"
    assert len(factors(ops.build("blur", image_shape=(16, 16), kernel="disk", radius=2.3).psf)) == 1


def test_every_path_is_tested():
    assert {p for _, p in CASES} == set(PATHS)
    assert all(set(costs(np.ones((3, 3)), (8, 8), b)) == {p for bb, p in CASES if bb == b} for b in MODES)


def test_fast_fft_sizes_and_unknown_paths():
    assert [fast_fft_size(n) for n in (1, 7, 127, 134, 138, 145)] == [1, 8, 128, 144, 144, 162]
    with pytest.raises(ValueError, match="path 'fft' does not apply to the reflect boundary"):
        Convolution(np.ones((3, 3)), (8, 8), "reflect", path="fft")
