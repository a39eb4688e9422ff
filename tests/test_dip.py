"""The deep image prior (``dip``): an untrained network fitted to one y, stopped by a rule that reads
no x — it lowers the data misfit and stops by its rule, is deterministic, runs in ``reconstruct``,
``evaluate`` and ``stress``, and refuses parameters outside its declared ranges in one line (tiny
sizes here; its 128² quality and time against TV are measured in BENCHMARKS.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import invmap.noise as noise_mod
import invmap.operators as ops
import invmap.variational as var
import invmap.variational.dip as dip
from invmap.cli import main
from invmap.physics import Physics

SIZE = 16
TINY = {"width": 8, "depth": 2, "lr": 0.01, "steps": 2000}


def _images(n: int = 2, seed: int = 0) -> torch.Tensor:
    """Piecewise-constant images in [0, 1]: a bright disc and a square on a dim background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, SIZE), torch.linspace(-1, 1, SIZE), indexing="ij")
    out = torch.full((n, 1, SIZE, SIZE), 0.1)
    for b in range(n):
        c = torch.rand(2, generator=g) * 0.6 - 0.3
        out[b, 0][((yy - c[0]) ** 2 + (xx - c[1]) ** 2) < 0.25] = 0.8
        out[b, 0][(yy.abs() < 0.2) & ((xx + c[0]).abs() < 0.2)] = 0.5
    return out


def _start_misfit(m, y: torch.Tensor, physics: Physics) -> torch.Tensor:
    """‖K f_Θ₀(z) − y‖² per image: the misfit before the first Adam step."""
    with torch.no_grad():
        x0 = m.network()(m.input(physics.operator.in_shape))
        return (physics.operator(x0) - y).abs().pow(2).flatten(1).sum(1).double()


@pytest.mark.parametrize("op", ["blur", "tomography"])
def test_dip_lowers_the_misfit_and_stops_by_the_discrepancy_principle(op):
    K = ops.build(op, image_shape=(SIZE, SIZE), **({"angles": 12} if op == "tomography" else {}))
    phys = Physics(K, noise_mod.build("gaussian", sigma=0.02, seed=1))
    x = _images(2)
    y = phys.measure(x, torch.Generator().manual_seed(3))
    m = var.build("dip", **TINY)
    x_hat = m(y, phys)
    assert x_hat.shape == x.shape and bool(torch.isfinite(x_hat).all())
    m_count = y[0].numel()
    start = _start_misfit(m, y, phys)
    for i, fit in enumerate(m.history):
        # the rule: ‖K x̂ − y‖² ≤ τ·m·σ², reached before the step limit, and the misfit of what it returned
        assert fit["rule"] == "discrepancy" and fit["stopped_by"] == "discrepancy", fit
        assert fit["expected_misfit"] == pytest.approx(m_count * 0.02 ** 2)
        assert fit["steps"] < TINY["steps"] and fit["returned_step"] == fit["steps"]
        misfit = float((K(x_hat[i:i + 1]) - y[i:i + 1]).pow(2).sum())
        assert misfit == pytest.approx(fit["misfit"], rel=1e-4) and misfit <= fit["expected_misfit"]
        assert misfit < 0.1 * float(start[i])
    assert m.record()["fits"] == m.history


def test_the_discrepancy_stop_follows_tau():
    """A larger τ stops earlier (a looser target), at a larger misfit."""
    K = ops.build("blur", image_shape=(SIZE, SIZE))
    phys = Physics(K, noise_mod.build("gaussian", sigma=0.02, seed=1))
    y = phys.measure(_images(1), torch.Generator().manual_seed(3))
    tight, loose = var.build("dip", **TINY), var.build("dip", **TINY, tau=4.0)
    tight(y, phys), loose(y, phys)
    assert loose.history[0]["steps"] < tight.history[0]["steps"]
    assert tight.history[0]["misfit"] < loose.history[0]["misfit"] <= 4.0 * loose.history[0]["expected_misfit"]


def test_the_variance_rule_stops_after_its_minimum_and_returns_the_iterate_there():
    """stop=variance reads no σ: it stops `patience` steps after the windowed variance's last low and
    returns the iterate there."""
    K = ops.build("blur", image_shape=(SIZE, SIZE))
    phys = Physics(K, noise_mod.build("gaussian", sigma=0.05, seed=1))
    y = phys.measure(_images(1), torch.Generator().manual_seed(3))
    m = var.build("dip", **{**TINY, "steps": 3000}, stop="variance", window=20, patience=60)
    x_hat = m(y, phys)
    fit = m.history[0]
    assert fit["rule"] == "variance" and fit["stopped_by"] == "variance", fit
    assert fit["steps"] == fit["returned_step"] + 60 and fit["steps"] < 3000
    assert fit["misfit"] < 0.1 * float(_start_misfit(m, y, phys)[0])
    assert fit["misfit"] == pytest.approx(float((K(x_hat) - y).pow(2).sum()), rel=1e-4)


def test_without_a_noise_level_auto_takes_the_variance_rule_and_noise_free_data_end_when_fitted():
    """Noise model 'none' (E‖e‖² = 0): auto picks the variance rule; data without noise are fitted to
    float32 precision (‖Kx − y‖² ≤ 10⁻⁶‖y‖²) long before the steps run out; complex y (MRI) works."""
    K = ops.build("mri", image_shape=(SIZE, SIZE))
    phys = Physics(K)
    x = _images(1)
    y = phys.measure(x)
    m = var.build("dip", **{**TINY, "steps": 3000})
    x_hat = m(y, phys)
    fit = m.history[0]
    assert fit["rule"] == "variance" and fit["stopped_by"] == "fitted" and fit["steps"] < 3000, fit
    assert fit["misfit"] <= 1e-6 * float(y.abs().pow(2).sum()) and fit["returned_step"] == fit["steps"]
    assert x_hat.shape == x.shape and not x_hat.is_complex()
    with pytest.raises(ValueError, match="stop=discrepancy needs a noise level"):
        var.build("dip", **TINY, stop="discrepancy")(y, phys)


def test_the_limits_end_a_fit_and_say_so():
    K = ops.build("blur", image_shape=(SIZE, SIZE))
    phys = Physics(K, noise_mod.build("gaussian", sigma=0.02, seed=1))
    y = phys.measure(_images(1), torch.Generator().manual_seed(3))
    m = var.build("dip", **{**TINY, "steps": 7})
    m(y, phys)
    assert m.history[0]["stopped_by"] == "steps" and m.history[0]["steps"] == 7
    m = var.build("dip", **TINY, stop="steps", seconds=1e-9)
    m(y, phys)
    assert m.history[0]["stopped_by"] == "seconds" and m.history[0]["steps"] == 1


def test_dip_is_deterministic_and_an_image_does_not_depend_on_its_batch():
    K = ops.build("blur", image_shape=(SIZE, SIZE))
    phys = Physics(K, noise_mod.build("gaussian", sigma=0.02, seed=1))
    y = phys.measure(_images(2), torch.Generator().manual_seed(3))
    params = {**TINY, "steps": 40, "stop": "steps"}
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = var.build("dip", **params)(y, phys)
    assert torch.equal(torch.get_rng_state(), state)  # the global random state is left alone
    b = var.build("dip", **params)(y[1:], phys)
    assert torch.equal(a, var.build("dip", **params)(y, phys)) and torch.equal(a[1:], b)
    assert not torch.equal(a, var.build("dip", **params, seed=1)(y, phys))


def test_long_fits_report_progress(monkeypatch):
    K = ops.build("blur", image_shape=(SIZE, SIZE))
    phys = Physics(K, noise_mod.build("gaussian", sigma=0.02, seed=1))
    y = phys.measure(_images(1), torch.Generator().manual_seed(3))
    heard: list[str] = []
    m = var.build("dip", **{**TINY, "steps": 30}, stop="steps")
    m.progress = heard.append
    monkeypatch.setattr(dip, "PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(dip, "PROGRESS_EVERY", 0.0)
    m(y, phys)
    assert len(heard) == 30 and heard[-1].startswith("dip: image 1 of 1, step 30 of at most 30")


# ------------------------------------------------------------------------------ the commands
def _task(tmp_path) -> list[str]:
    sets = {"data.size": SIZE, "data.val": 2, "data.test": 2, "data.simulation": "crime",
            "data.test_simulation": "crime", "operator.name": "blur", "noise.relative": "null", "noise.sigma": 0.02,
            "evaluation.zoo": "false", "evaluation.bound": 0, "evaluation.pixel_risk": 0,
            "evaluation.params": "{dip: {width: 8, depth: 2, steps: 300}}", "evaluation.tune_grid": "{tv: {lam: [0.01]}}"}
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


def test_dip_runs_in_reconstruct_evaluate_and_stress_and_is_listed(tmp_path, capsys):
    from invmap.evaluation.evaluate import read_metrics

    assert main(["methods", "dip"]) == 0
    listed = capsys.readouterr().out
    for what in ("steps: int >= 1, <= 100000", "lr: float > 0, <= 1", "width: int >= 1, <= 128", "stop:"):
        assert what in listed, listed
    img = tmp_path / "x.npy"
    np.save(img, _images(1)[0, 0].numpy())
    cfg = tmp_path / "task.yaml"
    cfg.write_text("name: dip\n")
    out = tmp_path / "x_dip.npy"
    assert main(["reconstruct", "--method", "dip", "--param", "width=8", "--param", "depth=2", "--task", str(cfg),
                 "--simulate", "--input", str(img), "--output", str(out)] + _task(tmp_path)) == 0
    assert np.load(out).shape == (SIZE, SIZE)
    run = tmp_path / "ev"
    capsys.readouterr()
    assert main(["evaluate", str(cfg), "--methods", "tv,dip", "--out", str(run), "--no-figure"] + _task(tmp_path)) == 0
    said = capsys.readouterr()
    said = said.out + said.err
    assert "tuned tv:" in said and "tuned dip" not in said and "dip: configured parameters, not tuned" in said, said
    rows = {r["method"]: r for r in read_metrics(run / "metrics.csv")}
    assert rows["dip"]["n"] == 2 and rows["dip"]["psnr_mean"] > 20
    entry = json.loads((run / "baselines.json").read_text())["dip"]
    assert entry["params"]["width"] == 8 and "not tuned" in entry["how"]  # its stop rule needs no x: nothing tuned
    assert main(["stress", str(run), "--shifts", "noise", "--n", "2", "--no-report", "--methods", "tv,dip"]) == 0
    stress = (run / "stress.csv").read_text()
    assert ",dip,psnr," in stress


@pytest.mark.parametrize("param, match", [
    ("steps=1000000", "'steps' (int >= 1, <= 100000)"),
    ("steps=0", "'steps' (int >= 1, <= 100000)"),
    ("lr=-0.1", "'lr' (float > 0, <= 1)"),
    ("lr=.nan", "'lr' (float > 0, <= 1)"),
    ("lr=5", "'lr' (float > 0, <= 1)"),
    ("width=0", "'width' (int >= 1, <= 128)"),
    ("width=100000", "'width' (int >= 1, <= 128)"),
    ("depth=40", "'depth' (int >= 1, <= 6)"),
    ("tau=0", "'tau' (float > 0, <= 100)"),
    ("seconds=.inf", "'seconds' (float > 0, <= 86400.0)"),
    ("window=1", "'window' (int >= 2, <= 10000)"),
    ("stop=never", "'stop'"),
    ("seed=-1", "'seed'"),
    ("seed=99999999999999999999999", "'seed'"),
    ("learning_rate=0.1", "unknown parameter(s) 'learning_rate'"),
])
def test_hostile_parameters_are_refused_in_one_line_before_anything_runs(param, match, tmp_path, capsys):
    img = tmp_path / "x.npy"
    np.save(img, _images(1)[0, 0].numpy())
    cfg = tmp_path / "task.yaml"
    cfg.write_text("name: dip\n")
    assert main(["reconstruct", "--method", "dip", "--param", param, "--task", str(cfg), "--simulate", "--input",
                 str(img), "--output", str(tmp_path / "o.npy")] + _task(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err and match in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task.yaml", "x.npy"]


def test_a_refused_setting_in_the_config_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "task.yaml"
    cfg.write_text("name: dip\n")
    assert main(["config", "--check", str(cfg), "--set", "evaluation.params={dip: {width: 1000}}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err and "evaluation.params.dip" in err, err


def test_a_fit_beyond_the_memory_budget_is_refused_before_it_starts(tmp_path, capsys, monkeypatch):
    """The network's activations and the variance window are checked against INVMAP_MAX_MEMORY
    (`invmap.budget`) before the first step: one line, nothing written."""
    from invmap import budget

    img = tmp_path / "x.npy"
    np.save(img, _images(1)[0, 0].numpy())
    cfg = tmp_path / "task.yaml"
    cfg.write_text("name: dip\n")
    monkeypatch.setenv(budget.MEMORY_ENV, "1M")
    assert main(["reconstruct", "--method", "dip", "--param", "width=128", "--task", str(cfg), "--simulate",
                 "--input", str(img), "--output", str(tmp_path / "o.npy")] + _task(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err and "dip: a fit of a 16×16 image" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task.yaml", "x.npy"]
