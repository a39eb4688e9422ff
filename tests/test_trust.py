"""Trust at inference: data consistency ρ, the trust score and verdict, the anchored TV solve,
the safe wrapper, AUROC, and the `invmap reconstruct --model` verdict (tiny sizes)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import invmap.noise as noise_mod
import invmap.operators as ops
import invmap.variational as var
from invmap.cli import main
from invmap.evaluation.experiment import Experiment
from invmap.data import build_source
from invmap.physics import Physics
from invmap.trust import SafeReconstructor, auroc, consistency, diagnose, noise_energy, roc_curve

#: a small noise model of every registered family (the parametrized tests cover the registry)
NOISE_CASES = {"none": {}, "gaussian": {"relative": 0.02}, "poisson": {"photons": 500.0},
               "poisson-gaussian": {"photons": 500.0, "sigma": 0.02}}


def _images(n: int = 4, size: int = 32) -> torch.Tensor:
    return build_source("ellipses", size, split="test", count=n, seed=0).batch(list(range(n)))


def test_every_noise_model_has_a_case():
    assert set(NOISE_CASES) == set(noise_mod.names())


@pytest.mark.parametrize("name", noise_mod.names())
def test_noise_variance_matches_its_draws(name):
    """Σ Var(e_i) from the model equals the mean ‖e‖² of many draws (y = K x ≥ 0 given)."""
    m = noise_mod.build(name, **NOISE_CASES[name])
    y = torch.rand(2, 1, 40, 40) + 0.5
    g = torch.Generator().manual_seed(0)
    e2 = torch.stack([((m(y, g) - y) ** 2).reshape(2, -1).sum(dim=1) for _ in range(50)]).mean(dim=0)
    expected = noise_energy(y, Physics(ops.build("identity", image_shape=(40, 40)), m))
    assert torch.allclose(e2.double(), expected, rtol=0.03, atol=1e-12)


def test_noise_variance_of_a_drawn_sigma_is_its_mean():
    m = noise_mod.build("gaussian", sigma_range=(0.01, 0.03))
    y = torch.zeros(400, 1, 8, 8)
    e2 = ((m(y) - y) ** 2).mean()
    assert float(m.variance(y).mean()) == pytest.approx(float(e2), rel=0.05)


@pytest.mark.parametrize("op_name, params", [("tomography", {"angles": 20}), ("blur", {"sigma": 1.5})])
@pytest.mark.parametrize("noise", ["gaussian", "poisson", "poisson-gaussian"])
def test_the_truth_explains_its_data_within_the_spread(op_name, params, noise):
    """ρ(x) = ‖K x − y‖ / √E‖e‖² ≈ 1: over many noise draws its mean is 1 within its standard
    error, and for Gaussian noise its spread is that of √(χ²_m / m), ≈ 1/√(2m)."""
    x = _images(4)
    phys = Physics(ops.build(op_name, image_shape=(32, 32), **params), noise_mod.build(noise, **NOISE_CASES[noise]))
    g = torch.Generator().manual_seed(1)
    rho = torch.cat([consistency(x, phys.measure(x, g), phys) for _ in range(40)])
    m = phys.operator(x)[0].numel()
    assert abs(float(rho.mean()) - 1) < 4 * float(rho.std()) / math.sqrt(rho.numel())
    if noise == "gaussian":
        assert float(rho.std()) == pytest.approx(1 / math.sqrt(2 * m), rel=0.3)


def test_a_wrong_geometry_raises_rho():
    """Data measured 1 px off-centre (or 2° rotated) are not explained by the nominal K."""
    x = _images(4)
    nz = noise_mod.build("gaussian", relative=0.02)
    nominal = Physics(ops.build("tomography", image_shape=(32, 32), angles=20), nz)
    rotated = [a + 2.0 for a in nominal.operator.angles]
    for sim in ({"angles": 20, "detector_offset": 1.0}, {"angles": rotated}):
        y = Physics(ops.build("tomography", image_shape=(32, 32), **sim), nz).measure(x)
        assert float(consistency(x, y, nominal).min()) > 1.5
    assert float(consistency(x, nominal.measure(x), nominal).max()) < 1.3


class _Scaled(torch.nn.Module):
    """A 'learned' map for constructed cases: x̂ = s · FBP(y), trained at `training_physics`."""

    def __init__(self, scale: float, training_physics: Physics):
        super().__init__()
        self.scale, self.training_physics = scale, training_physics

    def forward(self, y, physics):
        return self.scale * var.fbp(y, physics.operator)


def _ct(angles: int = 20, rel: float = 0.02) -> Physics:
    return Physics(ops.build("tomography", image_shape=(32, 32), angles=angles), noise_mod.build("gaussian", relative=rel))


def test_verdict_consistent_for_a_good_map_and_suspect_for_a_bad_one():
    phys = _ct()
    x = _images(4)
    y = phys.measure(x, torch.Generator().manual_seed(3))
    tv = var.build("tv", lam=0.3, iters=60)
    good = diagnose(_Scaled(1.0, phys), y, phys, baseline=tv)
    bad = diagnose(_Scaled(0.6, phys), y, phys, baseline=tv)
    assert not bool(good.suspect.any()) and bool(bad.suspect.all())
    assert bool((bad.trust < good.trust).all()) and bool((bad.rho > 3 * good.rho).all())
    line = bad.verdict(0)
    assert line.startswith("suspect: ρ = ") and "× the baseline's" in line
    assert good.verdict(0).startswith("consistent: ")
    rec = bad.record(1)
    assert rec["verdict"] == "suspect" and rec["rho"] == pytest.approx(float(bad.rho[1]))
    assert json.loads(json.dumps(rec)) == rec  # JSON-able


def test_sensitivity_is_compared_with_the_training_conditions():
    """A linear map fed 4× its training noise moves 4× as much, i.e. as much per unit of noise:
    its sensitivity ratio stays ≈ 1 (more noise alone is no evidence against the map)."""
    phys = _ct()
    x = _images(3)
    f = _Scaled(1.0, phys)
    noisy = Physics(phys.operator, phys.noise.scaled(4.0))
    d = diagnose(f, noisy.measure(x), noisy, draws=3)
    assert torch.allclose(d.sensitivity_ratio, torch.ones(3, dtype=torch.float64), rtol=0.15)
    assert d.disagreement is None


def test_disagreement_between_maps():
    phys = _ct()
    x = _images(2)
    y = phys.measure(x)
    d = diagnose(_Scaled(1.0, phys), y, phys, others=[_Scaled(1.0, phys)], draws=0)
    assert float(d.disagreement.max()) == 0.0
    d2 = diagnose(_Scaled(1.0, phys), y, phys, others=[_Scaled(0.9, phys)], draws=0)
    assert bool((d2.disagreement > 0).all()) and d2.disagreement_ratio is not None


# ----------------------------------------------------------------------------------- AUROC
def test_auroc_equals_the_pairwise_count():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 40).astype(float)  # ties on purpose
    z = rng.random(40) < 0.4
    pos, neg = s[z], s[~z]
    brute = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert auroc(s, z) == pytest.approx(brute)
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0 and auroc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert math.isnan(auroc([1, 2], [1, 1]))
    fpr, tpr = roc_curve(s, z)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(brute)


# ------------------------------------------------------------------------- anchored TV, safe
def test_anchored_tv_has_the_closed_form_without_tv():
    """λ = 0, K = I: argmin ½‖x − y‖² + (μ/2)‖x − a‖² = (y + μ a) / (1 + μ), per-sample μ."""
    from invmap.variational.pdhg import ChambollePockTV

    op = ops.build("identity", image_shape=(8, 8))
    g = torch.Generator().manual_seed(0)
    y, a = torch.randn(2, 1, 8, 8, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    mu = torch.tensor([0.5, 4.0])
    s = ChambollePockTV(op, y, lam=0.0, anchor=a, mu=mu, max_iter=400, record_every=50)
    x = s.solve()
    ref = (y + mu.reshape(-1, 1, 1, 1) * a) / (1 + mu.reshape(-1, 1, 1, 1))
    assert torch.allclose(x, ref, atol=1e-4)
    assert max(s.history[-1]["gap"]) < 1e-5  # the conjugate of the anchored G enters the gap
    with pytest.raises(ValueError, match="mu"):
        ChambollePockTV(op, y, anchor=a, mu=-1.0)


def _psnr(a, b):
    from invmap.metrics import psnr

    return psnr(a.clamp(-1, 2), b)


def test_safe_anchor_weakens_continuously_with_the_score():
    """μ/‖K‖² = μ₀ within S_free spreads, then a decade per S_decade spreads."""
    safe = SafeReconstructor(_Scaled(1.0, _ct()), var.build("tv", lam=0.3, iters=10), mu0=1e-2, free=2.0, decade=2.0)
    mu = safe.relative_weight(torch.tensor([0.0, 2.0, 3.0, 4.0, 6.0]))
    assert torch.allclose(mu, torch.tensor([1e-2, 1e-2, 1e-2 / math.sqrt(10), 1e-3, 1e-4], dtype=mu.dtype))


def test_safe_keeps_a_trusted_map_and_is_never_much_worse_than_tv():
    """A small study: a good map at its training conditions, calibrated there, keeps its quality
    (the anchor holds it: μ near μ₀); a map that fails (too few views, a wrong scale, more noise) is moved towards
    TV: better than the map on every image, and on average within 0.5 dB of the best classical
    method or better (the issue's goal, per level)."""
    train = _ct(30)
    x = _images(4)
    tv = var.build("tv", lam=0.3, iters=80)
    from invmap.trust import calibration
    from invmap.trust.fitted import Fitted

    f = _Scaled(1.0, train)
    x_val = build_source("ellipses", 32, split="val", count=12, seed=0).batch(list(range(12)))
    y_val = train.measure(x_val, torch.Generator().manual_seed(4))
    record = Fitted(calibration(f(y_val, train), y_val, train, tv(y_val, train)))
    good = SafeReconstructor(f, tv, calibration=record)
    y = train.measure(x, torch.Generator().manual_seed(5))
    assert float(_psnr(good(y, train), x).mean()) > float(_psnr(f(y, train), x).mean()) - 0.1
    assert bool((good.mu > good.mu0 / 10).all()) and float(good.mu.max()) == good.mu0
    for scale, phys in ((1.0, _ct(8)), (0.5, train), (0.7, Physics(train.operator, train.noise.scaled(6.0)))):
        y = phys.measure(x, torch.Generator().manual_seed(6))
        safe = SafeReconstructor(_Scaled(scale, train), tv)
        x_safe = safe(y, phys)
        assert bool((safe.mu < safe.mu0).all())
        best = torch.maximum(_psnr(tv(y, phys), x), _psnr(var.fbp(y, phys.operator), x))
        assert float(_psnr(x_safe, x).mean() - best.mean()) > -0.5
        assert bool((_psnr(x_safe, x) > _psnr(_Scaled(scale, train)(y, phys), x)).all())


def test_the_calibrated_score_flags_data_that_fit_worse_or_better_than_at_home():
    """A perfect x̂ (the truth itself), calibrated on validation measurements that carry a model
    error (y simulated with every view 1° off the nominal K's, as real data never match K
    exactly; an angle error the data cannot reveal by themselves), is consistent on new data of that
    kind; data with a larger error (6°) fit worse and data
    without any (simulated with K itself, the inverse crime) fit *better* than at home: both
    lie outside the training conditions and are suspect (|z_h| > 3). The calibration's own
    z-scores centre on 0."""
    from invmap.trust import calibration

    nz = noise_mod.build("gaussian", relative=0.01)
    nominal = Physics(ops.build("tomography", image_shape=(32, 32), angles=20), nz)
    def measured(offset: float, x: torch.Tensor, seed: int) -> torch.Tensor:
        K = ops.build("tomography", image_shape=(32, 32), angles=20, angle_offset=offset)
        return Physics(K, nz).measure(x, torch.Generator().manual_seed(seed))

    f = _Scaled(1.0, nominal)  # only its x̂ = x is used
    x_val = build_source("ellipses", 32, split="val", count=12, seed=0).batch(list(range(12)))
    y_val = measured(1.0, x_val, 0)
    cal = calibration(x_val, y_val, nominal)
    assert cal["floor"] > 0 and cal["home"]["spread"] > 0
    assert abs(float(diagnose(f, y_val, nominal, x_hat=x_val, calibration=cal, draws=0).z_home.median())) < 0.5
    x = _images(4)
    home = diagnose(f, measured(1.0, x, 1), nominal, x_hat=x, calibration=cal, draws=0)
    worse = diagnose(f, measured(6.0, x, 1), nominal, x_hat=x, calibration=cal, draws=0)
    crime = diagnose(f, nominal.measure(x, torch.Generator().manual_seed(1)), nominal, x_hat=x, calibration=cal,
                     draws=0)
    assert not bool(home.suspect.any())
    assert bool((worse.z_home > 3).all()) and bool((crime.z_home < -3).all())
    assert bool(worse.suspect.all()) and bool(crime.suspect.all())
    assert bool((crime.trust < home.trust).all()) and bool((worse.trust < home.trust).all())
    assert "data fit" in crime.verdict(0) and "spreads of its training conditions" in crime.verdict(0)


def test_the_detector_offset_read_from_ct_data_and_when_it_cannot_be():
    """Parallel-beam data say where their rotation centre is (first moments of the projections):
    data 1.5 px off K's detector give 1.5 ± a few hundredths; the estimate is NaN (no
    evidence, z = 0) for truncated projections, too few views and complex data."""
    from invmap.operators.tomography import detector_offset_from_moments

    x = _images(3)
    nz = noise_mod.build("gaussian", relative=0.01)
    K = ops.build("tomography", image_shape=(32, 32), angles=20)
    off = Physics(ops.build("tomography", image_shape=(32, 32), angles=20, detector_offset=1.5), nz)
    e = K.estimate_calibration(off.measure(x, torch.Generator().manual_seed(0)))["detector_offset"]
    assert bool(((e.value - 1.5).abs() < 4 * e.stderr + 0.02).all()) and float(e.stderr.max()) < 0.1
    cells = np.arange(K.out_shape[1]) - (K.out_shape[1] - 1) / 2
    y = K(x)
    truncated = y.clone()
    truncated[..., :3] += y.max()
    for args in ((truncated, K.angles, cells), (y[..., :3, :], K.angles[:3], cells), (y.to(torch.complex128), K.angles, cells)):
        value, se = detector_offset_from_moments(*args)
        assert bool(value.isnan().all()) and bool(se.isnan().all())
    e = K.estimate_calibration(truncated)["detector_offset"]
    assert float(e.z.abs().max()) == 0.0
    with_nan = y.clone()
    with_nan[0, 0, 3, 4] = float("nan")
    for bad in (with_nan[:1], torch.zeros_like(y), y[:0]):  # NaN, no mass, an empty batch: no estimate, no error
        e = K.estimate_calibration(bad)["detector_offset"]
        assert e.value.shape == (bad.shape[0],) and float(e.z.abs().sum()) == 0.0 and bool(e.value.isnan().all())
    e = K.estimate_calibration(with_nan)["detector_offset"]  # one NaN image spoils only its own estimate
    assert bool(e.value[0].isnan()) and bool(e.value[1:].isfinite().all())


def test_safe_recalibrates_k_where_the_data_say_it_is_off():
    """Data from a scanner whose detector sits 1.5 px off K's: the diagnosis says so ("y says
    detector_offset = +1.5 …", suspect), and safe re-runs the map and TV with K recalibrated
    to the estimate: within 0.3 dB of the same safe on the correctly calibrated K, far above
    the map on the nominal K; data at K's own calibration are not recalibrated."""
    x = _images(4)
    nz = noise_mod.build("gaussian", relative=0.01)
    nominal = _ct(30, 0.01)
    true = Physics(ops.build("tomography", image_shape=(32, 32), angles=30, detector_offset=1.5), nz)
    y = true.measure(x, torch.Generator().manual_seed(7))
    tv = var.build("tv", lam=0.3, iters=80)
    f = _Scaled(1.0, nominal)
    d = diagnose(f, y, nominal, baseline=tv, draws=0)
    assert bool(d.suspect.all()) and "y says detector_offset = +1.5" in d.verdict(0)
    assert d.record(0)["calibration_from_data"]["detector_offset"]["z"] > 10
    safe = SafeReconstructor(f, tv)
    x_safe = safe(y, nominal)
    assert all(abs(c["detector_offset"] - 1.5) < 0.1 for c in safe.corrections)
    assert all(a is not None and "y says" not in a for a in safe.after)  # K now agrees with y
    oracle = SafeReconstructor(f, tv)(y, true)
    assert float(_psnr(x_safe, x).mean()) > float(_psnr(oracle, x).mean()) - 0.3
    assert float(_psnr(x_safe, x).mean()) > float(_psnr(f(y, nominal), x).mean()) + 2.0
    home = SafeReconstructor(f, tv, recalibrate=True)
    y_home = nominal.measure(x, torch.Generator().manual_seed(8))
    x_home = home(y_home, nominal)
    assert home.corrections == [{}] * 4 and home.after == [None] * 4
    mixed = SafeReconstructor(f, tv)  # one batch, two scanners: each image gets its own K
    x_mixed = mixed(torch.cat([y_home[:2], y[2:]]), nominal)
    assert mixed.corrections[:2] == [{}, {}] and all(mixed.corrections[2:])
    assert torch.allclose(x_mixed[:2], x_home[:2], atol=1e-5) and torch.allclose(x_mixed[2:], x_safe[2:], atol=1e-5)
    assert torch.allclose(mixed.mu[:2], home.mu[:2])
    off = SafeReconstructor(f, tv, recalibrate=False)
    off(y, nominal)
    assert off.corrections == [{}] * 4


def test_safe_keeps_the_nominal_k_when_the_operator_refuses_the_estimate(monkeypatch):
    """A recalibrated K the operator cannot build is no reason to fail: safe refines on the
    nominal K (as without recalibration) and notes why."""
    import invmap.trust.safe as safe_mod

    def refuse(physics, values):
        raise ValueError("detector_offset out of range")

    x = _images(2)
    nominal = _ct(30, 0.01)
    true = Physics(ops.build("tomography", image_shape=(32, 32), angles=30, detector_offset=1.5), nominal.noise)
    y = true.measure(x, torch.Generator().manual_seed(9))
    tv = var.build("tv", lam=0.3, iters=40)
    f = _Scaled(1.0, nominal)
    plain = SafeReconstructor(f, tv, recalibrate=False)(y, nominal)
    monkeypatch.setattr(safe_mod, "recalibrated", refuse)
    safe = SafeReconstructor(f, tv)
    assert torch.allclose(safe(y, nominal), plain) and safe.corrections == [{}, {}]
    assert any("refused by the operator" in n for n in safe.last.notes)


# --------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def tiny_ct_run(tmp_path_factory) -> Path:
    """A run directory with a tiny CT model (32×32, 30 views, 3% noise; a small UNet after 30 CGLS
    steps) trained here for a few seconds on 32 ellipse pairs, saved the way training saves it,
    and the tuned TV."""
    from invmap.config import load_config
    from invmap.evaluation.runs import tune_baselines
    from invmap.models import LearnedReconstructor, build, save_model

    cfg = load_config(None, ["data.size=32", "data.val=4", "operator.angles=30", "data.simulation=crime",
                             "data.test_simulation=crime", "noise.relative=0.03", "model.depth=2",
                             "model.base_channels=8", "model.input=pinv", "model.pinv_iters=30", "name=tiny"])
    phys = cfg.physics()
    x = build_source("ellipses", 32, split="train", count=32, seed=0).batch(list(range(32)))
    y = phys.measure(x, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    recon = LearnedReconstructor(build("unet", depth=2, base_channels=8, residual=True), input="pinv", pinv_iters=30)
    z = recon.preprocess(y, phys)
    recon.fit_input_scale(z)
    opt = torch.optim.Adam(recon.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(30):
        idx = torch.randperm(32, generator=g)[:16]
        loss = torch.nn.functional.mse_loss(recon.from_input(z[idx]), x[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    d = tmp_path_factory.mktemp("trust") / "run"
    d.mkdir()
    (d / "config.yaml").write_text(cfg.to_yaml())
    save_model(d, recon.eval(), {}, physics=phys)
    tune_baselines(Experiment(cfg), ["tv"], d, n_val=4, time_budget=2.0)
    return d


def test_cli_reconstruct_verdict_consistent_at_training_geometry_suspect_elsewhere(tiny_ct_run, tmp_path, capsys):
    x = _images(1)
    nz = noise_mod.build("gaussian", relative=0.03)
    for name, K in (("train", ops.build("tomography", image_shape=(32, 32), angles=30)),
                    ("other", ops.build("tomography", image_shape=(32, 32), angles=30, detector_offset=3.0))):
        np.save(tmp_path / f"y_{name}.npy", Physics(K, nz).measure(x, torch.Generator().manual_seed(2))[0, 0].numpy())
    capsys.readouterr()
    out = tmp_path / "x_train.png"
    assert main(["reconstruct", "--model", str(tiny_ct_run), "--input", str(tmp_path / "y_train.npy"),
                 "--output", str(out), "--residual-map", str(tmp_path / "r.png")]) == 0
    printed = capsys.readouterr().out
    assert "consistent: ρ = " in printed and "suspect" not in printed
    side = json.loads((tmp_path / "x_train.trust.json").read_text())
    assert side["images"][0]["verdict"] == "consistent" and side["images"][0]["rho_baseline"] is not None
    assert (tmp_path / "r.png").stat().st_size > 100
    assert main(["reconstruct", "--model", str(tiny_ct_run), "--input", str(tmp_path / "y_other.npy"),
                 "--output", str(tmp_path / "x_other.npy"), "--safe"]) == 0
    printed = capsys.readouterr().out
    assert "suspect: ρ = " in printed and "safe: TV solve anchored at x̂ with μ/‖K‖² = " in printed
    side = json.loads((tmp_path / "x_other.trust.json").read_text())
    assert side["images"][0]["verdict"] == "suspect" and side["images"][0]["calibration"]["images"] >= 4
    assert side["safe"]["mu_relative"][0] < side["safe"]["params"]["mu0"]  # suspect: a weaker anchor
    assert "y says detector_offset = +" in printed and "safe: K recalibrated to detector_offset = +" in printed
    assert abs(side["safe"]["recalibrated"][0]["detector_offset"] - 3.0) < 0.15
    assert side["images"][0]["calibration_from_data"]["detector_offset"]["z"] > 10


@pytest.mark.parametrize("case", ["safe-without-model", "sidecar-exists", "bad-residual-type", "missing-ensemble"])
def test_cli_reconstruct_trust_errors(tiny_ct_run, tmp_path, capsys, case):
    x = _images(1)
    np.save(tmp_path / "y.npy", _ct(30).measure(x)[0, 0].numpy())
    out = tmp_path / "x.npy"
    args = ["reconstruct", "--model", str(tiny_ct_run), "--input", str(tmp_path / "y.npy"), "--output", str(out)]
    if case == "safe-without-model":
        args = ["reconstruct", "--method", "fbp", "--input", str(tmp_path / "y.npy"), "--output", str(out), "--safe"]
    elif case == "sidecar-exists":
        (tmp_path / "x.trust.json").write_text("keep me")
    elif case == "bad-residual-type":
        args += ["--residual-map", str(tmp_path / "r.txt")]
    else:
        args += ["--ensemble", str(tmp_path / "nope")]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error: ")
    assert not out.exists()
    if case == "sidecar-exists":
        assert (tmp_path / "x.trust.json").read_text() == "keep me"


def test_evaluate_and_stress_report_trust(tiny_ct_run, capsys):
    """`invmap evaluate` adds ρ (every method) and trust (the model) columns; `invmap stress` adds
    them per level, the AUROC per shift and overall to stress.json, and a section to the report."""
    from invmap.evaluation.evaluate import read_metrics
    from invmap.evaluation.stress import read_stress_csv

    assert main(["evaluate", str(tiny_ct_run), "--methods", "fbp,tv,model,safe", "--n", "3", "--no-figure"]) == 0
    rows = {r["method"]: r for r in read_metrics(tiny_ct_run / "metrics.csv")}
    assert set(rows) == {"fbp", "tv", "model", "safe"}
    assert all(math.isfinite(r["rho_mean"]) for r in rows.values())
    assert 0 < rows["model"]["trust_mean"] < 1 and rows["tv"]["trust_mean"] is None
    assert main(["stress", str(tiny_ct_run), "--shifts", "geometry,calibration", "--n", "2", "--tv-iters", "20",
                 "--methods", "fbp,tv,model,safe"]) == 0
    meta = json.loads((tiny_ct_run / "stress.json").read_text())
    summary = meta["trust"]
    assert set(summary["per_shift"]) == {"geometry", "calibration-angle", "calibration-detector"}
    for v in [summary] + list(summary["per_shift"].values()):
        assert v["auroc"] is None or 0.0 <= v["auroc"] <= 1.0
    # the training condition is shared by the three shifts but counted once overall
    assert summary["images"] == 2 * (sum(len(s["trust_images"]) for s in meta["shifts"]) - 2)
    stress_rows = read_stress_csv(tiny_ct_run / "stress.csv")
    metrics = {(r["method"], r["metric"]) for r in stress_rows}
    assert ("model", "trust") in metrics and ("safe", "rho") in metrics and ("safe", "trust") not in metrics
    recal = {r["level"]: r["mean"] for r in stress_rows if r["metric"] == "recalibrated" and r["method"] == "safe"}
    assert recal["+1 px"] == 1.0 and recal["+0 px"] == 0.0 and ("model", "recalibrated") not in metrics
    html = (tiny_ct_run / "report.html").read_text()
    assert "Trust at inference" in html and "AUROC" in html and "K recalibrated (fraction of images)" in html
    assert (tiny_ct_run / "figures" / "trust_roc.png").exists() == bool(summary["roc"]["fpr"])


def test_safe_in_an_evaluation_reuses_the_model_and_tv_and_gives_the_same_images():
    """evaluate_methods hands safe the x̂ of model and tv it already computed (``reuses``): the
    scores are those of safe's own call, and its time includes theirs."""
    from invmap.evaluation.evaluate import evaluate_methods

    train = _ct(30)
    x = _images(4)
    y = _ct(8).measure(x, torch.Generator().manual_seed(7))
    model, tv = _Scaled(1.0, train), var.build("tv", lam=0.3, iters=40)
    safe = SafeReconstructor(model, tv, reuses={"model": "model", "baseline": "tv"})
    res, recons = evaluate_methods({"model": model, "tv": tv, "safe": safe}, y, x, _ct(8), batch_size=2, keep=4)
    own = torch.cat([safe(y[:2], _ct(8)), safe(y[2:], _ct(8))])  # the same batches (the noise redraws follow them)
    assert torch.allclose(recons["safe"], own, atol=1e-6)
    assert res["safe"].seconds_per_image >= res["tv"].seconds_per_image


def _kinds_built_alone() -> list[str]:
    """The model-based kinds that build from their own parameters (pnp needs a trained denoiser run)."""
    from invmap.models import KINDS

    return [k for k in KINDS.names() if not any(p.required for p in KINDS.params(k))]


@pytest.mark.parametrize("kind", _kinds_built_alone())
def test_every_reconstructor_kind_is_diagnosed_and_made_safe(kind, tmp_path):
    """Saved and loaded, every model-based kind declares its training physics; the diagnostics and
    the safe wrapper only call x̂ = recon(y, physics), so they work for each kind."""
    import invmap.models as models

    torch.manual_seed(0)
    if kind == "denoiser":  # a prior for every operator: its own task is denoising
        phys = Physics(ops.build("identity", image_shape=(16, 16)), noise_mod.build("gaussian", sigma=0.05))
        recon = models.build_kind(kind, depth=2, base_channels=4)
    else:
        phys = Physics(ops.build("tomography", image_shape=(16, 16), angles=8), noise_mod.build("gaussian", relative=0.02))
        recon = (models.build_kind(kind, prior=None, iterations=2, depth=2, base_channels=4, tune=False)
                 if kind == "unfolded" else models.build_kind(kind, iterations=2, channels=4, depth=2))
    models.save_model(tmp_path / "run", recon, {}, physics=phys)
    loaded, _ = models.load_model(tmp_path / "run")
    assert loaded.training_physics is not None
    x = torch.rand(2, 1, 16, 16)
    y = phys.measure(x, torch.Generator().manual_seed(0))
    tv = var.build("tv", lam=0.05, iters=20)
    d = diagnose(loaded, y, phys, baseline=tv, draws=2)
    assert bool(torch.isfinite(d.trust).all()) and d.sensitivity_ratio is not None
    assert d.verdict(1).split(":")[0] in ("consistent", "suspect")
    assert SafeReconstructor(loaded, tv, draws=2)(y, phys).shape == x.shape


def test_the_trust_event_never_counts_a_learned_method_as_a_baseline():
    """A second learned method (e.g. PnP) beside the model is not a baseline the model must beat."""
    from types import SimpleNamespace

    from invmap.evaluation.trust import worse_than_baselines

    def r(*v):
        return SimpleNamespace(error=None, scores={"psnr": torch.tensor(v)})

    res = {"model": r(30.0, 30.0), "tv": r(29.0, 31.0), "pnp": r(35.0, 35.0)}
    assert worse_than_baselines(res, learned=("model", "pnp")).tolist() == [False, True]
    assert worse_than_baselines(res, learned=("model",)).tolist() == [True, True]


def test_trust_summary_adds_the_large_failure_auroc_and_reads_older_records():
    """Besides "worse than the best baseline", the summary scores "worse by more than 1 dB";
    records of older runs (no margin) give the first AUROC only."""
    from invmap.evaluation.trust import LARGE_FAILURE_DB, level_records, trust_summary
    from types import SimpleNamespace

    def r(psnr, trust=None):
        return SimpleNamespace(error=None, scores={"psnr": torch.tensor(psnr),
                                                   **({"trust": torch.tensor(trust)} if trust else {})})

    # trust falls with the margin; two near-ties (−0.2, +0.1) that the score orders the wrong way
    res = {"model": r([30.0, 27.0, 29.8, 30.1, 25.0], [0.9, 0.3, 0.8, 0.7, 0.1]), "tv": r([29.0, 29.0, 30.0, 30.0, 29.0]),
           "fbp": r([28.0] * 5)}
    recs = level_records(res)
    assert [x[2] for x in recs] == pytest.approx([1.0, -2.0, -0.2, 0.1, -4.0])
    s = trust_summary([{"name": "geometry", "trust_images": {"15 views": recs}}])
    assert s["worse"] == 3 and s["large_failures"] == 2 and s["large_failure_db"] == LARGE_FAILURE_DB
    assert s["auroc"] == pytest.approx(5 / 6, abs=1e-4)  # the near-tie at −0.2 dB ranks below +0.1
    assert s["auroc_large"] == 1.0 and s["per_shift"]["geometry"]["auroc_large"] == 1.0
    old = trust_summary([{"name": "geometry", "trust_images": {"15 views": [x[:2] for x in recs]}}])
    assert old["auroc"] == s["auroc"] and "auroc_large" not in old


def test_trust_is_scored_apart_on_the_levels_y_and_k_can_reveal():
    """A shift's ``unidentifiable`` levels (a global angle offset; inverse crime) stay in the overall
    AUROC but not in ``identifiable``, which names them; the report greys them with the reason and
    still shows their numbers; the study declares them for the CT task."""
    from invmap.evaluation.report import stress_table_html
    from invmap.evaluation.stress import CRIME_NOT_DEPLOYED, build_shifts
    from invmap.evaluation.task import Condition
    from invmap.evaluation.trust import trust_summary

    seen = [[0.9, 0.0, 1.0], [0.2, 1.0, -3.0], [0.8, 0.0, 0.5], [0.3, 1.0, -2.0]]  # the score sees these failures
    hidden = [[0.9, 1.0, -4.0], [0.95, 1.0, -5.0]]  # a rotated object: trusted, and wrong
    shifts = [{"name": "calibration-angle", "levels": ["+0°", "+2°"], "training_level": "+0°",
               "unidentifiable": {"+2°": "the data of the rotated object"},
               "trust_images": {"+0°": seen, "+2°": hidden}}]
    s = trust_summary(shifts)
    assert s["identifiable"]["auroc_large"] == 1.0 and s["identifiable"]["images"] == 4
    assert s["identifiable"]["left_out"] == ["calibration-angle +2°"] and s["auroc_large"] < 0.6  # 9 of 16 pairs
    rows = [{"shift": "calibration-angle", "level": lv, "method": m, "metric": "psnr", "mean": v, "std": 0.0}
            for lv, m, v in [("+0°", "model", 35.0), ("+0°", "tv", 34.0), ("+2°", "model", 30.0), ("+2°", "tv", 31.0)]]
    html = stress_table_html(shifts[0], rows)
    assert '<tr class="unidentifiable"><td>+2° (not identifiable)</td>' in html and "30.00" in html
    assert "the data of the rotated object" in html
    ref = Condition.of("ellipses", 32, {"operator": {"name": "tomography", "params": {"angles": 16}},
                                        "noise": {"name": "gaussian", "params": {"relative": 0.01}}},
                       simulation="fine")
    declared = {s.name: s.unidentifiable for s in build_shifts(ref, ["calibration", "discretisation"])}
    assert set(declared["calibration-angle"]) == {"+0.5°", "+1°", "+2°"} and declared["calibration-detector"] == {}
    assert declared["discretisation"] == {"crime": CRIME_NOT_DEPLOYED}
