"""Noise models e of y = K x + e: seeding, levels, distributions, scaling, errors."""

from __future__ import annotations

import pytest
import torch

import invmap.noise as noise

NAMES = noise.names()


def clean(b: int = 4, n: int = 4096, dtype=torch.float64) -> torch.Tensor:
    """A positive clean measurement [b, 1, n] with a different scale per sample."""
    g = torch.Generator().manual_seed(123)
    base = 0.2 + torch.rand((b, 1, n), generator=g, dtype=dtype)
    return base * torch.arange(1, b + 1, dtype=dtype).reshape(b, 1, 1)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_reproducible_and_shape_kept(name):
    y = clean(dtype=torch.float32)
    a = noise.build(name, seed=3)(y)
    b = noise.build(name, seed=3)(y)
    assert a.shape == y.shape and a.dtype == y.dtype
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    m = noise.build(name, seed=0)
    torch.testing.assert_close(m(y, generator=g1), m(y, generator=g2), rtol=0, atol=0)
    if name != "none":
        assert not torch.equal(a, noise.build(name, seed=4)(y))
        assert not torch.equal(m(y), m(y))  # the default generator advances


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trip_and_nan(name):
    m = noise.build(name, seed=2)
    s = m.spec()
    assert s["name"] == name
    m2 = noise.build(s["name"], **s["params"])
    y = clean()
    torch.testing.assert_close(m(y), m2(y))
    bad = y.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m(bad)


def test_gaussian_absolute_sigma():
    y = clean()
    m = noise.build("gaussian", sigma=0.05, seed=1)
    e = m(y) - y
    std = e.reshape(4, -1).std(dim=1)
    torch.testing.assert_close(std, torch.full((4,), 0.05, dtype=torch.float64), rtol=0.05, atol=0)
    assert abs(float(e.mean())) < 0.005
    torch.testing.assert_close(m.sigma(y), torch.full((4,), 0.05, dtype=torch.float64))


def test_gaussian_relative_level_per_sample():
    y = clean()
    m = noise.build("gaussian", relative=0.1, seed=1)
    rms = y.reshape(4, -1).pow(2).mean(dim=1).sqrt()
    std = (m(y) - y).reshape(4, -1).std(dim=1)
    torch.testing.assert_close(std, 0.1 * rms, rtol=0.05, atol=0)
    torch.testing.assert_close(m.sigma(y), 0.1 * rms)


@pytest.mark.parametrize("key", ["sigma_range", "relative_range"])
def test_gaussian_ranges_draw_per_sample(key):
    y = clean(b=64, n=2048)
    m = noise.build("gaussian", **{key: (0.02, 0.2)}, seed=1)
    level = (m(y) - y).reshape(64, -1).std(dim=1)
    if key == "relative_range":
        level = level / y.reshape(64, -1).pow(2).mean(dim=1).sqrt()
    assert float(level.min()) > 0.02 * 0.9 and float(level.max()) < 0.2 * 1.1
    assert float(level.max() - level.min()) > 0.1  # levels really vary between samples
    assert m.sigma(y) is None


def test_gaussian_complex_measurement():
    g = torch.Generator().manual_seed(0)
    y = torch.complex(torch.randn(2, 1, 64, 64, generator=g), torch.randn(2, 1, 64, 64, generator=g))
    e = noise.build("gaussian", sigma=0.3, seed=0)(y) - y
    assert e.is_complex()
    assert float(e.abs().pow(2).mean()) == pytest.approx(0.09, rel=0.05)
    assert float(e.real.var()) == pytest.approx(0.045, rel=0.05)


def test_poisson_mean_and_variance():
    y = torch.full((2, 1, 100_000), 0.3, dtype=torch.float64)
    out = noise.build("poisson", photons=100.0, seed=0)(y)
    assert float(out.mean()) == pytest.approx(0.3, rel=0.01)
    assert float(out.var()) == pytest.approx(0.3 / 100.0, rel=0.03)
    assert torch.allclose(out * 100.0, (out * 100.0).round())  # photon counts are integers
    with pytest.raises(ValueError, match="complex"):
        noise.build("poisson")(torch.zeros(1, 1, 4, dtype=torch.complex64))


def test_poisson_gaussian_variance():
    y = torch.full((2, 1, 100_000), 0.5, dtype=torch.float64)
    out = noise.build("poisson-gaussian", photons=200.0, sigma=0.05, seed=0)(y)
    assert float(out.mean()) == pytest.approx(0.5, rel=0.01)
    assert float(out.var()) == pytest.approx(0.5 / 200.0 + 0.05 ** 2, rel=0.03)


@pytest.mark.parametrize("name,params", [("gaussian", {"sigma": 0.05}), ("gaussian", {"relative": 0.05}),
                                         ("poisson", {"photons": 400.0}),
                                         ("poisson-gaussian", {"photons": 400.0, "sigma": 0.02})])
def test_scaled_multiplies_the_level(name, params):
    y = torch.full((2, 1, 50_000), 0.5, dtype=torch.float64)
    m = noise.build(name, **params, seed=0)
    m3 = m.scaled(3.0)
    assert m3.name == name
    s1 = float((m(y) - y).std())
    s3 = float((m3(y) - y).std())
    assert s3 / s1 == pytest.approx(3.0, rel=0.05)
    assert noise.build("none").scaled(5.0)(y).equal(y)


def test_invalid_parameters():
    with pytest.raises(ValueError, match="exactly one"):
        noise.build("gaussian", sigma=0.1, relative=0.1)
    with pytest.raises(ValueError, match="sigma must be"):
        noise.build("gaussian", sigma=-1.0)
    with pytest.raises(ValueError, match="sigma_range"):
        noise.build("gaussian", sigma_range=(0.3, 0.1))
    with pytest.raises(ValueError, match="photons"):
        noise.build("poisson", photons=0)
    with pytest.raises(ValueError, match="unknown parameter.*'level'"):
        noise.build("gaussian", level=0.1)
    with pytest.raises(ValueError, match="unknown noise 'laplace'"):
        noise.build("laplace")


@pytest.mark.parametrize("op_name,params", [("mri", {"acceleration": 4.0}), ("inpainting", {"missing": 0.6})])
@pytest.mark.parametrize("noise_params", [{"sigma": 0.05}, {"relative": 0.05}, {"relative_range": [0.02, 0.08]}])
def test_noise_only_on_measured_entries(op_name, params, noise_params):
    """y = K x + e is exactly 0 off the operator's measured entries, through every simulation path."""
    import invmap.operators as ops
    from invmap.data import PairDataset, build_source
    from invmap.physics import Physics

    K = ops.build(op_name, image_shape=(32, 32), **params)
    physics = Physics(K, noise.build("gaussian", **noise_params))
    off = ~K.measured()
    assert bool(off.any()) and bool((~off).any())
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    y = physics.measure(x)
    assert bool((y[..., off] == 0).all())
    assert bool((y[..., ~off] != K(x)[..., ~off]).all())  # noise on every measured entry
    ds = PairDataset(build_source("ellipses", 32, split="val", count=2), physics, simulation="crime")
    yd, _ = ds.simulate([0, 1])
    assert bool((yd[..., off] == 0).all())


def test_relative_level_is_measured_over_the_sampled_entries():
    """MRI at R = 4: relative σ is level × the rms of K x over the sampled entries, not all H·W."""
    import invmap.operators as ops
    from invmap.physics import Physics

    K = ops.build("mri", image_shape=(64, 64), acceleration=4.0)
    x = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    kx = K(x)
    mask = K.measured()
    m = int(mask.sum())
    assert m < 64 * 64 // 2
    rms = (kx.abs() ** 2).reshape(2, -1).sum(1).div(m).sqrt()
    model = noise.build("gaussian", relative=0.01)
    torch.testing.assert_close(model.sigma(kx, mask), 0.01 * rms)
    e = Physics(K, model).measure(x) - kx
    # E|e|² = σ² per sampled entry (σ²/2 on each of the real and imaginary parts)
    emp = (e.abs() ** 2).reshape(2, -1).sum(1) / m
    torch.testing.assert_close(emp, (0.01 * rms) ** 2, rtol=0.1, atol=0)
    # the discrepancy-principle noise norm δ = σ√m counts sampled entries only
    from invmap.variational.methods import noise_norm

    torch.testing.assert_close(noise_norm(kx, Physics(K, model)), 0.01 * rms * m ** 0.5)
