"""Variational solvers and methods: closed forms, library references, one call per method."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import invmap.operators as ops
import invmap.variational as var
from invmap.noise import build as build_noise
from invmap.physics import Physics
from invmap.variational import functionals as fn


def _have(name: str) -> bool:
    return name in ops.names()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from invmap.metrics import psnr

    return psnr(a, b, data_range=1.0)


def _phantom(n: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Piecewise-constant test images in [0, 1]: a few random rectangles and discs."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, n), torch.linspace(-1, 1, n), indexing="ij")
    out = torch.zeros(batch, 1, n, n)
    for b in range(batch):
        for _ in range(4):
            c = torch.rand(2, generator=g) * 1.2 - 0.6
            r = 0.15 + 0.3 * float(torch.rand(1, generator=g))
            v = 0.3 + 0.7 * float(torch.rand(1, generator=g))
            out[b, 0][((yy - c[0]) ** 2 + (xx - c[1]) ** 2) < r * r] = v
    return out


def _dense(op, n_in: int) -> torch.Tensor:
    eye = torch.eye(n_in, dtype=torch.float64).reshape((n_in, 1) + op.in_shape)
    return op.forward(eye).reshape(n_in, -1).T


# ------------------------------------------------------------------ closed forms
def _small_problem():
    g = torch.Generator().manual_seed(1)
    h, w, m = 4, 5, 14
    kmat = torch.randn(m, h * w, generator=g, dtype=torch.float64)
    if _have("matrix"):
        op = ops.build("matrix", image_shape=(h, w), matrix=kmat)
    else:  # pragma: no cover - fallback while the matrix operator is missing
        class _M(ops.LinearOperator):
            def __init__(self):
                super().__init__((h, w), (m,))

            def _forward(self, x):
                return (x.reshape(x.shape[:-2] + (-1,)) @ kmat.to(x.dtype).T)

            def _adjoint(self, y):
                return (y @ kmat.to(y.dtype)).reshape(y.shape[:-1] + (h, w))

        op = _M()
    y = torch.randn((3, 1) + op.out_shape, generator=g, dtype=torch.float64)
    return op, _dense(op, h * w), y


def _closed_form(kmat, lmat, y, lam, shape):
    a = kmat.T @ kmat + lam * lmat.T @ lmat
    b = y.reshape(y.shape[0], -1) @ kmat
    return torch.linalg.solve(a, b.T).T.reshape((y.shape[0], 1) + shape)


@pytest.mark.parametrize("lam", [1e-3, 0.5])
def test_tikhonov_and_cgls_match_closed_form(lam):
    op, kmat, y = _small_problem()
    n = kmat.shape[1]
    ref = _closed_form(kmat, torch.eye(n, dtype=torch.float64), y, lam, op.in_shape)
    x_tik = var.Tikhonov(op, y, lam=lam, max_iter=200, tol=1e-14).solve()
    x_cgls = var.CGLS(op, y, damp=lam, max_iter=200, tol=1e-14).solve()
    x_m = var.build("tikhonov", lam=lam, iters=200, tol=1e-14)(y, Physics(op))
    for x in (x_tik, x_cgls, x_m):
        assert torch.allclose(x, ref, atol=1e-5, rtol=0), float((x - ref).abs().max())


def test_tikhonov_gradient_matches_closed_form():
    op, kmat, y = _small_problem()
    lmat = _dense(fn.Gradient(op.in_shape), kmat.shape[1])
    ref = _closed_form(kmat, lmat, y, 0.3, op.in_shape)
    x = var.Tikhonov(op, y, lam=0.3, reg="gradient", max_iter=200, tol=1e-14).solve()
    assert torch.allclose(x, ref, atol=1e-5, rtol=0)


def test_cgls_discrepancy_principle_stops_per_sample():
    op, kmat, y = _small_problem()
    delta = torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64) * y.reshape(3, -1).norm(dim=1) / 8
    s = var.CGLS(op, y, delta=delta, tau=1.0, max_iter=50, record_every=1)
    s.solve()
    res = torch.tensor([h["residual"] for h in s.history])  # [iters+1, B]
    for b in range(3):
        below = (res[:, b] <= delta[b]).nonzero()
        k = int(below[0])  # first iterate satisfying the discrepancy principle
        assert k >= 1 and float(res[k - 1, b]) > float(delta[b])
        assert torch.allclose(res[k:, b], res[k, b].expand(res.shape[0] - k))  # frozen afterwards


def test_gradient_adjoint_is_minus_divergence():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 7, 9, generator=g, dtype=torch.float64)
    p = torch.randn(2, 1, 2, 7, 9, generator=g, dtype=torch.float64)
    assert abs(float(fn.dot(fn.grad(x), p).sum() - fn.dot(x, fn.grad_adjoint(p)).sum())) < 1e-12
    assert torch.allclose(fn.div(p), -fn.grad_adjoint(p))
    assert fn.Gradient((7, 9)).norm() <= math.sqrt(8) + 1e-9


# ---------------------------------------------------------------- prox vs brute force
PROX_CASES = {
    "l1": fn.L1(0.7),
    "squared-l2": fn.SquaredL2(1.3),
    "group-l1": fn.GroupL1(0.8),
    "huber": fn.Huber(0.9, delta=0.3),
    "box": fn.Box(-0.2, 0.5),
}


@pytest.mark.parametrize("name", sorted(PROX_CASES))
@pytest.mark.parametrize("t", [0.4, 1.5])
def test_prox_matches_brute_force(name, t):
    from scipy.optimize import minimize

    f = PROX_CASES[name]
    g = torch.Generator().manual_seed(3)
    v = torch.randn(1, 1, 2, 1, 3, generator=g, dtype=torch.float64)  # groups along dim -3 have 2 entries
    v[..., 0] *= 0.1  # one group near the origin (inside the threshold / quadratic zone)
    p = f.prox(v, t)

    def obj(z):
        zt = torch.as_tensor(z, dtype=torch.float64).reshape(v.shape)
        val = float(0.5 * ((zt - v) ** 2).sum() + t * f(zt)[0])
        return val if math.isfinite(val) else 1e6 + float(((zt - v) ** 2).sum())

    best = min((minimize(obj, x0, method="Powell", options={"xtol": 1e-10, "ftol": 1e-14, "maxiter": 20000})
                for x0 in (v.flatten().numpy(), np.zeros(v.numel()))), key=lambda r: r.fun)
    assert obj(p.flatten().numpy()) <= best.fun + 1e-9
    assert np.allclose(p.flatten().numpy(), best.x, atol=1e-4)


def test_conjugate_prox_by_moreau():
    v = torch.linspace(-2, 2, 9, dtype=torch.float64).reshape(1, 1, 1, 1, 9)
    # (w‖·‖₁)* is the indicator of ‖·‖∞ ≤ w: its prox is the clamp
    assert torch.allclose(fn.L1(0.7).conj_prox(v, 0.3), v.clamp(-0.7, 0.7))
    p = torch.randn(2, 1, 2, 4, 4, dtype=torch.float64)
    gl = fn.GroupL1(0.5)
    assert torch.allclose(gl.conj_prox(p, 2.0), fn.Functional.conj_prox(gl, p, 2.0))


def _tv_objective(x, f, weight):
    return 0.5 * ((x - f) ** 2).sum() + weight * fn.tv(torch.as_tensor(x).reshape(1, 1, *x.shape)).item()


def _camera(n: int = 32) -> np.ndarray:
    from skimage import data, transform

    return transform.resize(data.camera().astype(np.float64) / 255.0, (n, n), anti_aliasing=True)


def test_tv_prox_matches_skimage():
    from skimage.restoration import denoise_tv_chambolle

    f = _camera(24) + 0.1 * np.random.default_rng(0).standard_normal((24, 24))
    ref = denoise_tv_chambolle(f, weight=0.1, eps=1e-10, max_num_iter=3000)
    p = fn.TV(0.1, iters=1500, warm_start=False).prox(torch.as_tensor(f).reshape(1, 1, 24, 24), 1.0)[0, 0].numpy()
    assert _tv_objective(p, f, 0.1) <= _tv_objective(ref, f, 0.1) * 1.001
    assert np.abs(p - ref).max() < 5e-3


# ------------------------------------------------------------------ Chambolle–Pock
def test_chambolle_pock_gap_decreases_and_matches_skimage():
    from skimage.restoration import denoise_tv_chambolle

    weight = 0.1
    f = _camera(32) + 0.1 * np.random.default_rng(1).standard_normal((32, 32))
    y = torch.as_tensor(f).reshape(1, 1, 32, 32)
    s = var.ChambollePockTV(ops.build("identity", image_shape=(32, 32)), y, lam=weight, max_iter=1000,
                            record_every=50)
    x = s.solve()[0, 0].numpy()
    gaps = [h["gap"][0] for h in s.history[1:]]
    assert all(g >= -1e-8 for g in gaps)
    assert gaps[-1] < 0.01 * gaps[0] and gaps[len(gaps) // 2] < gaps[0]
    assert all(b <= 1.5 * a for a, b in zip(gaps, gaps[1:]))  # no growth beyond jitter
    ref = denoise_tv_chambolle(f, weight=weight, eps=1e-10, max_num_iter=3000)
    ours, theirs = _tv_objective(x, f, weight), _tv_objective(ref, f, weight)
    assert abs(ours - theirs) <= 0.01 * theirs
    # objective recorded by the solver is the same formula
    assert abs(s.history[-1]["objective"][0] - ours) <= 1e-6 * ours


def test_tv_box_constraint_holds():
    y = torch.rand(2, 1, 16, 16) * 2 - 0.5
    x = var.build("tv", lam=0.05, iters=50, nonneg=True, upper=1.0)(y, Physics(ops.build("identity", image_shape=(16, 16))))
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


# ---------------------------------------------------------------------- FISTA
def test_fista_l1_with_identity_is_soft_thresholding():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    x = var.build("fista-l1", lam=0.4, iters=30)(y, Physics(ops.build("identity", image_shape=(8, 8))))
    assert torch.allclose(x, torch.sign(y) * (y.abs() - 0.4).clamp_min(0), atol=1e-12)


@pytest.mark.parametrize("params", [{"huber": 0.0, "inner_iters": 20}, {"huber": 1e-3}])
def test_fista_tv_approaches_the_tv_minimiser(params):
    f = _camera(24) + 0.1 * np.random.default_rng(2).standard_normal((24, 24))
    y = torch.as_tensor(f).reshape(1, 1, 24, 24)
    phys = Physics(ops.build("identity", image_shape=(24, 24)))
    x = var.build("fista-tv", lam=0.1, iters=300, **params)(y, phys)[0, 0].numpy()
    ref = var.ChambollePockTV(phys.operator, y, lam=0.1, max_iter=1500, record_every=0).solve()[0, 0].numpy()
    assert _tv_objective(x, f, 0.1) <= _tv_objective(ref, f, 0.1) * 1.01


# --------------------------------------------------------- every method, one call
def _test_operator(name: str, n: int = 24):
    """A small operator each method can use: tomography for FBP, else 2× downsampling (or identity)."""
    if name == "fbp":
        if not _have("tomography"):
            pytest.skip("tomography operator not registered")
        return ops.build("tomography", image_shape=(n, n), angles=30)
    if _have("downsample"):
        return ops.build("downsample", image_shape=(n, n), factor=2)
    return ops.build("identity", image_shape=(n, n))  # pragma: no cover


@pytest.mark.parametrize("name", var.names())
def test_every_method_reconstructs(name):
    op = _test_operator(name)
    x = _phantom(op.in_shape[0], batch=2)
    phys = Physics(op, build_noise("gaussian", sigma=0.01, seed=0))
    y = phys.measure(x)
    m = var.build(name)
    x_hat = m(y, phys)
    assert x_hat.shape == x.shape and x_hat.dtype == x.dtype and bool(torch.isfinite(x_hat).all())
    assert bool((_psnr(x_hat, x) > _psnr(torch.zeros_like(x), x)).all())
    # settings are recorded and rebuild the same method
    again = var.build(name, **m.params())
    assert again.params() == m.params() and m.record()["method"] == name


def test_bare_operator_is_accepted():
    op = ops.build("identity", image_shape=(8, 8))
    y = torch.rand(2, 1, 8, 8)
    assert torch.allclose(var.build("tv", lam=0.1, iters=20)(y, op), var.build("tv", lam=0.1, iters=20)(y, Physics(op)))


@pytest.mark.parametrize("name", [n for n in var.names() if n != "fbp"])
def test_every_method_handles_complex_measurements(name):
    if not _have("mri"):
        pytest.skip("mri operator not registered")
    op = ops.build("mri", image_shape=(16, 16))
    assert op.complex_output
    x = _phantom(16, batch=2)
    y = op(x)
    x_hat = var.build(name)(y, Physics(op))
    assert x_hat.shape == x.shape and not x_hat.is_complex() and bool(torch.isfinite(x_hat).all())


def test_fbp_needs_tomography():
    op = ops.build("identity", image_shape=(8, 8))
    with pytest.raises(ValueError, match="fbp: needs an operator with a filtered back-projection"):
        var.build("fbp")(torch.zeros(1, 1, 8, 8), Physics(op))


def test_bad_parameters_fail_clearly():
    with pytest.raises(ValueError, match="unknown parameter"):
        var.build("tv", lambda_=0.1)
    with pytest.raises(ValueError, match="lam must be >= 0"):
        var.build("tv", lam=-1.0)
    with pytest.raises(ValueError, match="unknown variational method"):
        var.build("nope")
    with pytest.raises(ValueError, match="shape mismatch"):
        var.build("tv")(torch.zeros(1, 1, 5, 5), ops.build("identity", image_shape=(8, 8)))
    # settings are checked when the method is built, not at its first call
    for name, kw, msg in [("tv", {"lam": float("nan")}, "lam must be >= 0"), ("tv", {"iters": -1}, "iters"),
                          ("tikhonov", {"iters": -1}, "iters"), ("fista-l1", {"iters": -1}, "iters"),
                          ("fista-tv", {"inner_iters": 0}, "inner_iters"), ("fbp", {"filter": "gauss"}, "filter")]:
        with pytest.raises(ValueError, match=f"{name}: .*{msg}"):
            var.build(name, **kw)


# ------------------------------------------------------------------------- tuning
def test_tune_lambda_and_iterations():
    op = _test_operator("tv", 24)
    x = _phantom(24, batch=3, seed=5)
    phys = Physics(op, build_noise("gaussian", sigma=0.05, seed=1))
    y = phys.measure(x)
    m, table = var.tune("tikhonov", (y, x), {"lam": [1e-3, 1e-2, 1e-1, 1.0]}, phys, refine=2)
    assert 5 <= len(table) <= 8  # 4 grid points + up to 2 midpoints per refinement round
    assert [r["params"]["lam"] for r in table[:4]] == [1.0, 1e-1, 1e-2, 1e-3]  # continuation order
    best = max(r["psnr"] for r in table)
    assert m.tuning["chosen"]["lam"] == m.lam and m.tuning["search_psnr"] == best
    assert m.tuning["psnr"] >= best - 1e-3  # tikhonov is solved exactly: cold start = search
    assert m.record()["tuning"]["chosen"] == {"lam": m.lam}
    # iteration counts come from one run's history
    g, gtab = var.tune("cgls", (y, x), {"iters": [1, 3, 10, 40]}, phys)
    assert [r["params"]["iters"] for r in gtab] == [1, 3, 10, 40]
    assert g.iters == max(gtab, key=lambda r: r["psnr"])["params"]["iters"]
    direct = float(_psnr(var.build("cgls", iters=3)(y, phys), x).mean())
    assert abs(direct - gtab[1]["psnr"]) < 1e-4


# ------------------------------------------------------------ CT: TV versus FBP
def test_tuned_tv_beats_fbp_on_sparse_view_ct():
    if not _have("tomography"):
        pytest.skip("tomography operator not registered")
    from skimage import data, transform

    n = 128
    ph = transform.resize(data.shepp_logan_phantom(), (n, n), anti_aliasing=True)
    x = torch.as_tensor(ph, dtype=torch.float32).reshape(1, 1, n, n)
    x_val = torch.flip(x, dims=(-1,)).roll(6, dims=-2)  # another object for tuning
    op = ops.build("tomography", image_shape=(n, n), angles=60)
    phys = Physics(op, build_noise("gaussian", relative=0.01, seed=0))
    y_val, y = phys.measure(x_val), phys.measure(x)
    tv, _ = var.tune("tv", (y_val, x_val), physics=phys, fixed={"iters": 200, "nonneg": True},
                     search_iters=80, refine=1, final_eval=False)
    p_tv = float(_psnr(tv(y, phys), x)[0])
    p_fbp = float(_psnr(var.build("fbp")(y, phys), x)[0])
    fbp_tuned, _ = var.tune("fbp", (y_val, x_val), physics=phys, final_eval=False)
    p_fbp_tuned = float(_psnr(fbp_tuned(y, phys), x)[0])
    print(f"\nShepp-Logan {n}x{n}, 60 views, 1% noise: FBP (ramp) {p_fbp:.2f} dB, tuned FBP {p_fbp_tuned:.2f} dB "
          f"({fbp_tuned.filter}, cutoff {fbp_tuned.cutoff}), tuned TV {p_tv:.2f} dB (lam={tv.lam:.4g})")
    assert p_tv >= p_fbp + 3.0


# --------------------------------------------------------------------------- CLI
@pytest.fixture()
def task(tmp_path):
    cfg = tmp_path / "task.yaml"
    cfg.write_text("seed: 3\ndata:\n  size: 16\noperator:\n  name: downsample\n  factor: 2\n"
                   "noise:\n  name: gaussian\n  relative: 0.02\n")
    return cfg


def _cli(*argv: str) -> int:
    from invmap.cli import main

    return main([str(a) for a in argv])


def test_cli_reconstruct_simulate_and_measurement(tmp_path, task, capsys):
    import imageio.v3 as iio

    x = _phantom(16, batch=1)[0, 0].numpy()
    img = tmp_path / "x.png"
    iio.imwrite(img, np.round(x * 255).astype(np.uint8))
    out = tmp_path / "x_tv.npy"
    assert _cli("reconstruct", "--method", "tv", "--param", "lam=0.01", "--param", "iters=50", "--task", task,
                "--input", img, "--simulate", "--output", out) == 0
    x_hat = np.load(out)
    assert x_hat.shape == (16, 16) and np.isfinite(x_hat).all()
    # the same as the Python call with the task's physics and seed
    op = ops.build("downsample", image_shape=(16, 16), factor=2)
    phys = Physics(op, build_noise("gaussian", relative=0.02))
    xt = torch.as_tensor(iio.imread(img) / 255.0, dtype=torch.float32).reshape(1, 1, 16, 16)
    ref = var.build("tv", lam=0.01, iters=50)(phys.measure(xt, torch.Generator().manual_seed(3)), phys)
    assert np.allclose(x_hat, ref[0, 0].numpy(), atol=1e-5)
    assert ((x_hat - x) ** 2).mean() < 0.5 * (x ** 2).mean()
    # a measurement file in, a PNG out
    y = ops.build("downsample", image_shape=(16, 16), factor=2)(torch.as_tensor(x).reshape(1, 1, 16, 16))
    np.save(tmp_path / "y.npy", y[0, 0].numpy())
    png = tmp_path / "x_cgls.png"
    assert _cli("reconstruct", "--method", "cgls", "--task", task, "--input", tmp_path / "y.npy", "--output", png) == 0
    assert iio.imread(png).shape == (16, 16)


@pytest.mark.parametrize("case", ["unknown-method", "bad-param", "missing-input", "nan", "wrong-shape",
                                  "exists", "bad-suffix", "bad-device"])
def test_cli_reconstruct_errors(tmp_path, task, capsys, case):
    y = np.zeros((8, 8), dtype=np.float32)
    if case == "nan":
        y[0, 0] = np.nan
    if case == "wrong-shape":
        y = np.zeros((9, 8), dtype=np.float32)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / ("x.txt" if case == "bad-suffix" else "x.npy")
    if case == "exists":
        out.write_text("keep me")
    args = ["reconstruct", "--method", "nope" if case == "unknown-method" else "tikhonov", "--task", task,
            "--input", tmp_path / ("missing.npy" if case == "missing-input" else "y.npy"), "--output", out]
    if case == "bad-param":
        args += ["--param", "lambda=3"]
    if case == "bad-device":
        args += ["--device", "nodevice"]
    assert _cli(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error:")
    if case == "exists":
        assert out.read_text() == "keep me"
        assert _cli(*args, "--overwrite") == 0 and np.load(out).shape == (16, 16)
    else:
        assert not out.exists()


def test_cli_reconstruct_with_a_saved_model(tmp_path, task):
    models = pytest.importorskip("invmap.models")
    if not hasattr(models, "load_model"):
        pytest.skip("invmap.models.load_model not available")
    op = ops.build("downsample", image_shape=(16, 16), factor=2)
    phys = Physics(op, build_noise("gaussian", relative=0.02))
    recon = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="adjoint")
    models.save_model(tmp_path / "run", recon, {}, physics=phys)
    y = op(_phantom(16, batch=1))
    np.save(tmp_path / "y.npy", y[0, 0].numpy())
    out = tmp_path / "x.npy"
    assert _cli("reconstruct", "--model", tmp_path / "run", "--input", tmp_path / "y.npy", "--output", out) == 0
    loaded, _ = models.load_model(tmp_path / "run")
    with torch.no_grad():
        ref = loaded(y, phys)[0, 0].numpy()
    assert np.allclose(np.load(out), ref, atol=1e-5)


def test_cgls_discrepancy_from_the_noise_model():
    op = _test_operator("cgls", 24)
    x = _phantom(24, batch=2, seed=7)
    sigma = 0.05
    phys = Physics(op, build_noise("gaussian", sigma=sigma, seed=2))
    y = phys.measure(x)
    m = var.build("cgls", iters=200, tau=1.0)
    x_hat = m(y, phys)
    delta = sigma * math.sqrt(y[0].numel())
    res = (op(x_hat) - y).reshape(2, -1).norm(dim=1)
    assert bool((res <= delta).all()) and m.stopped_at < 200
    with pytest.raises(ValueError, match="needs a noise level"):
        var.build("cgls", tau=1.0)(y, Physics(op, build_noise("poisson", photons=100.0)))


def test_tune_follows_a_fixed_plan_that_the_time_budget_only_caps():
    """The plan (every grid point, then two per refinement round) decides the choice: a generous
    budget gives the same table as none; a spent budget stops the search from the first
    evaluation on — the grid included — and the cut is recorded with what was done."""
    op = _test_operator("tv", 16)
    x = _phantom(16, batch=1, seed=2)
    phys = Physics(op, build_noise("gaussian", sigma=0.05, seed=1))
    y = phys.measure(x)
    grid = var.build("tv").default_grid(phys, y)
    free, table = var.tune("tv", (y, x), physics=phys, fixed={"iters": 20})
    assert free.tuning["evaluations"] == free.tuning["planned"] == len(grid["lam"]) + 4 == len(table)
    assert free.tuning["budget_cut"] is False
    capped, table2 = var.tune("tv", (y, x), physics=phys, fixed={"iters": 20}, time_budget=3600.0)
    assert table2 == table and capped.lam == free.lam and capped.tuning["budget_cut"] is False
    cut, table3 = var.tune("tv", (y, x), physics=phys, fixed={"iters": 20}, time_budget=1e-9)
    assert len(table3) == 1 and table3 == table[:1]  # the first evaluation only: the grid is not exempt
    assert cut.tuning["budget_cut"] is True and (cut.tuning["evaluations"], cut.tuning["planned"]) == (1, len(table))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="time budget must be a positive number"):
            var.tune("tv", (y, x), physics=phys, fixed={"iters": 20}, time_budget=bad)
    with pytest.raises(ValueError, match="has 20000 points; at most 1000"):
        var.tune("tv", (y, x), {"lam": [1e-3 * (1 + i) for i in range(20000)]}, phys, fixed={"iters": 20})


def test_cli_reconstruct_model_simulate_and_operator_mismatch(tmp_path, capsys):
    """--model --simulate measures through the model's own physics; a task whose measurement
    shape does not fit a dense model is refused with one line."""
    models = pytest.importorskip("invmap.models")
    op = ops.build("downsample", image_shape=(16, 16), factor=2)
    phys = Physics(op, build_noise("gaussian", relative=0.02))
    recon = models.LearnedReconstructor(models.build_for("linear", (8, 8), (16, 16)), input="measurement")
    models.save_model(tmp_path / "run", recon, {}, physics=phys)
    x = _phantom(16, batch=1)
    np.save(tmp_path / "x.npy", x[0, 0].numpy())
    out = tmp_path / "x_hat.npy"
    assert _cli("reconstruct", "--model", tmp_path / "run", "--input", tmp_path / "x.npy", "--simulate",
                "--output", out) == 0
    loaded, meta = models.load_model(tmp_path / "run")
    p = Physics.from_spec(meta["physics"])
    with torch.no_grad():
        ref = loaded(p.measure(x, torch.Generator().manual_seed(0)), p)[0, 0].numpy()
    assert np.allclose(np.load(out), ref, atol=1e-5)
    task = tmp_path / "task4.yaml"
    task.write_text("data:\n  size: 16\noperator:\n  name: downsample\n  factor: 4\n")
    np.save(tmp_path / "y4.npy", np.zeros((4, 4), dtype=np.float32))
    capsys.readouterr()
    assert _cli("reconstruct", "--model", tmp_path / "run", "--task", task, "--input", tmp_path / "y4.npy",
                "--output", tmp_path / "z.npy") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match the model" in err[0] and not (tmp_path / "z.npy").exists()
