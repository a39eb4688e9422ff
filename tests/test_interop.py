"""Bridges to deepinv and ASTRA (`invmap.interop`): deepinv's own LinearPhysics checks on every
registered operator through the bridge, and ASTRA projections through converted geometries.
Skipped when the peer is not importable."""

from __future__ import annotations

import pytest
import torch

import invmap.operators as ops
from invmap import variational
from invmap.interop import require
from invmap.noise import build as build_noise
from invmap.physics import Physics

NAMES = ops.names()
SHAPE = (16, 16)
#: deepinv's own notices (deprecations, "composition is not decomposable") are not ours to check
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def dinv():
    return pytest.importorskip("deepinv")


def _bridged(name, noise="none"):
    from invmap.interop import to_deepinv

    op = ops.build(name, image_shape=SHAPE)
    return op, to_deepinv(Physics(op, build_noise(noise)))


def _x(op, gen, batch=2):
    return torch.randn((batch, 1) + op.in_shape, generator=gen, dtype=torch.float64)


def test_a_missing_peer_is_one_clear_line():
    with pytest.raises(ImportError) as e:
        require("invmap_no_such_peer", "the test bridge")
    assert "\n" not in str(e.value) and "pip install invmap_no_such_peer" in str(e.value)


# ------------------------------------------------------------------ deepinv's checks, every operator
@pytest.mark.parametrize("name", NAMES)
def test_deepinv_adjointness_norm_and_autograd(name, dinv, gen):
    """deepinv's ``adjointness_test``, ``compute_sqnorm`` (= ‖K‖² of invmap's norm) and the
    autograd gradient of ½‖Ax − y‖² (= Aᵀ(Ax − y))."""
    op, phys = _bridged(name)
    assert isinstance(phys, dinv.physics.LinearPhysics)
    x = _x(op, gen, batch=1)
    assert float(phys.adjointness_test(x)) < 1e-6
    sq = float(phys.compute_sqnorm(x, max_iter=2000, tol=1e-9, verbose=False))
    assert sq == pytest.approx(op.norm() ** 2, rel=1e-2)
    y = phys.A(_x(op, gen, batch=1)) if not op.complex_output else phys.A(x) * 0.5
    z = x.clone().requires_grad_(True)
    with torch.enable_grad():
        (0.5 * (phys.A(z) - y).pow(2).sum()).backward()
    torch.testing.assert_close(z.grad, phys.A_adjoint(phys.A(x) - y))


@pytest.mark.parametrize("name", NAMES)
def test_deepinv_torch_func_adjoint_and_vjp(name, dinv, gen):
    """deepinv's automatic adjoint (``adjoint_function``: ``torch.func.vjp`` of A) equals
    A_adjoint, and ``torch.func.grad`` of its L2 data fidelity equals ``L2().grad``."""
    from deepinv.physics.forward import adjoint_function

    op, phys = _bridged(name)
    x = _x(op, gen)
    y = phys.A(x)
    auto = adjoint_function(phys.A, x.shape, x.device, x.dtype)
    torch.testing.assert_close(auto(y), phys.A_adjoint(y))
    l2 = dinv.optim.L2()
    ones = torch.ones_like(y)
    g = torch.func.grad(lambda v: l2(v, ones, phys).sum())(x)
    torch.testing.assert_close(g, l2.grad(x, ones, phys))


@pytest.mark.parametrize("name", NAMES)
def test_deepinv_pseudo_inverse_prox_and_concatenation(name, dinv, gen):
    """deepinv's pseudo-inverse test (A_dagger on the range of Aᵀ), the optimality of
    ``prox_l2`` and its concatenation test (deepinv Inpainting ∘ bridged K, then A_dagger)."""
    op, phys = _bridged(name)
    x = _x(op, gen, batch=1)
    r = phys.A_adjoint(phys.A(x))
    y = phys.A(r)
    dag = phys.A_dagger(y, solver="lsqr", tol=1e-6, max_iter=200)
    assert float((dag - r).norm() / r.norm()) < 0.05
    gamma, z = 0.7, _x(op, gen, batch=1)
    p = phys.prox_l2(z, y, gamma, max_iter=500, tol=1e-10)
    kkt = p - z + gamma * phys.A_adjoint(phys.A(p) - y)  # the gradient of the prox objective
    assert float(kkt.norm() / z.norm()) < 1e-3
    both = dinv.physics.Inpainting(img_size=y.shape[1:], mask=0.5, pixelwise=False) * phys
    r = both.A_adjoint(both.A(x))
    assert float((both.A_dagger(both.A(r), solver="lsqr", tol=1e-6, max_iter=200) - r).norm() / r.norm()) < 0.05


@pytest.mark.parametrize("name", ["tomography", "mri", "blur"])
def test_deepinv_noise_is_invmaps_noise(name, dinv, gen):
    """The bridged physics draws invmap's noise: same seed, same y as ``Physics.measure``."""
    op = ops.build(name, image_shape=SHAPE)
    from invmap.interop import to_deepinv

    physics = Physics(op, build_noise("gaussian", sigma=0.1))
    bridged = to_deepinv(physics)
    x = _x(op, gen)
    y = physics.measure(x, torch.Generator().manual_seed(3))
    yd = bridged.noise_model(bridged.A(x), seed=3)
    torch.testing.assert_close(yd, torch.view_as_real(y) if y.is_complex() else y)


def test_deepinv_physics_as_an_invmap_operator(dinv, gen):
    """A deepinv Blur as invmap's K: its A, an exact adjoint, and invmap's solvers on it."""
    from invmap.interop import from_deepinv, to_deepinv

    blur = dinv.physics.Blur(filter=dinv.physics.blur.gaussian_blur(1.0), padding="circular")
    K = from_deepinv(blur, SHAPE)
    x = torch.rand((2, 3) + SHAPE, generator=gen, dtype=torch.float64)
    y = K(x)
    torch.testing.assert_close(y[:, 1:2].float(), blur.A(x[:, 1:2].float()))
    v = torch.randn_like(y)
    assert abs(float(ops.inner(y, v) - ops.inner(x, K.adjoint(v)))) < 1e-5 * float(y.norm() * v.norm())
    x_hat = variational.build("cgls", iters=20)(y, Physics(K))
    assert float((K(x_hat) - y).norm()) < 0.1 * float(y.norm())
    assert float(to_deepinv(K).adjointness_test(x[:1, :1])) < 1e-5
    with pytest.raises(TypeError, match="LinearPhysics"):
        from_deepinv(object(), SHAPE)


# ------------------------------------------------------------------------------------------ ASTRA
def _astra_sino(proj, vol, x, projector):
    import astra

    pid = astra.create_projector(projector, proj, vol)
    try:
        sid, s = astra.create_sino(x.numpy().astype("float32"), pid)
        astra.data2d.delete(sid)
    finally:
        astra.projector.delete(pid)
    return torch.from_numpy(s).double()


def _smooth(n):
    from invmap.data.crime import smooth_object

    return smooth_object(n)[0, 0].double()


@pytest.mark.parametrize("params", [{"angles": 20}, {"angles": 20, "detector_offset": 0.4},
                                    {"angles": [3.0, 47.5, 91.0, 170.0], "detectors": 40, "detector_spacing": 0.8}])
def test_astra_linear_matches_tomography_through_the_converted_geometry(params, gen):
    pytest.importorskip("astra")
    from invmap.interop import from_astra, to_astra

    K = ops.build("tomography", image_shape=(32, 32), **params)
    proj, vol = to_astra(K)
    x = torch.rand(32, 32, generator=gen, dtype=torch.float64)
    y = K(x[None, None])[0, 0]
    s = _astra_sino(proj, vol, x, "linear")
    assert float((s - y).abs().max() / y.abs().max()) <= 1e-4
    back = from_astra(proj, vol)
    torch.testing.assert_close(back(x[None, None]), K(x[None, None]))


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_astra_fanflat_matches_fanbeam_through_the_converted_geometry(offset):
    """ASTRA's CPU fan-beam projector is ray-driven (``line_fanflat``), not Joseph's: the same
    geometry agrees to discretisation error on a smooth object."""
    pytest.importorskip("astra")
    from invmap.interop import from_astra, to_astra

    K = ops.build("fanbeam", image_shape=(32, 32), angles=24, detector_offset=offset)
    proj, vol = to_astra(K)
    x = _smooth(32)
    y = K(x[None, None])[0, 0]
    s = _astra_sino(proj, vol, x, "line_fanflat")
    assert float((s - y).norm() / y.norm()) < 0.01
    torch.testing.assert_close(from_astra(proj, vol)(x[None, None]), K(x[None, None]))


def test_astra_geometries_invmap_cannot_hold_are_refused():
    astra = pytest.importorskip("astra")
    from invmap.interop import from_astra, to_astra

    proj, vol = to_astra(ops.build("tomography", image_shape=(16, 16), angles=4))
    with pytest.raises(ValueError, match="unit pixels centred"):
        from_astra(proj, astra.create_vol_geom(16, 16, -4.0, 4.0, -4.0, 4.0))
    with pytest.raises(ValueError, match="unsupported ASTRA projection geometry 'cone'"):
        from_astra({"type": "cone"}, vol)
    with pytest.raises(ValueError, match="needs a CT operator"):
        to_astra(ops.build("blur", image_shape=(16, 16)))
