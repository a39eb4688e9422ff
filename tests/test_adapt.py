"""Test-time adaptation (`invmap.training.adapt`): a copy of a trained map fine-tuned on the
measurements at hand for every trainable kind, the saved map untouched, the early stop that needs
no x, divergence returned as the unadapted x̂ with a note; ``reconstruct --adapt`` (the run's
bytes unchanged, the printout, the trust sidecar) and its one-line refusals; the run-bound method
``adapted`` in ``invmap methods``, evaluate and stress."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import invmap.noise as noise_mod
import invmap.operators as ops
from invmap import variational
from invmap.cli import main
from invmap.data import build_source
from invmap.evaluation.resolve import ADAPTED, RUN_METHODS
from invmap.models import KINDS, LearnedReconstructor, build, build_kind
from invmap.physics import Physics
from invmap.training import adapt as adaptation
from invmap.training.adapt import Adapted, Settings, adapt, check_adaptable, home_fit

from _fitted_run import fitted_run

# every trainable kind, tiny (K inside every iteration), beside post-processing
KIND_PARAMS = {"lgd": {"iterations": 2, "memory": 2, "channels": 4, "depth": 2},
               "lpd": {"iterations": 2, "primal": 2, "dual": 2, "channels": 4, "depth": 2},
               "unrolled": {"iterations": 2, "channels": 4, "depth": 2},
               "unfolded": {"prior": None, "iterations": 2, "depth": 2, "base_channels": 4, "cg_iters": 2,
                            "tune": False}}
# kinds left out here: a noise-conditional denoiser is a prior for pnp, and pnp carries a fixed denoiser
# fitted on x (`tests/test_selfsup.py` UNTRAINED): neither is an inverse map trained for a task's y
NOT_MAPS = {"denoiser", "pnp"}


def _images(n: int = 2, size: int = 32) -> torch.Tensor:
    return build_source("ellipses", size, split="test", count=n, seed=0).batch(list(range(n)))


def _ct(angles: int = 16, rel: float = 0.02) -> Physics:
    return Physics(ops.build("tomography", image_shape=(32, 32), angles=angles), noise_mod.build("gaussian", relative=rel))


def _map(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "post-processing":
        return LearnedReconstructor(build("unet", depth=2, base_channels=4, residual=True), input="fbp").eval()
    return build_kind(kind, **KIND_PARAMS[kind]).eval()


def _state(m: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_every_trainable_kind_is_covered():
    assert set(KIND_PARAMS) | NOT_MAPS == set(KINDS.names())


@pytest.mark.parametrize("kind", ["post-processing", *KIND_PARAMS])
def test_adaptation_fits_the_scan_and_leaves_the_trained_map_as_it_was(kind):
    phys = _ct()
    y = phys.measure(_images(), torch.Generator().manual_seed(1))
    recon = _map(kind)
    before = _state(recon)
    with torch.no_grad():
        x_un = recon(y, phys)
    done = adapt(recon, y, phys, Settings(steps=6, lr=3e-3, loss="mc", stop="steps"), progress=None)
    assert done.adapted and done.steps == 6 and done.stopped_by == "steps" and done.note is None
    assert done.misfit < done.misfit_before  # measurement consistency fitted, x never given
    assert done.x.shape == x_un.shape and bool(torch.isfinite(done.x).all())
    assert not torch.equal(done.x, x_un)
    assert all(torch.equal(before[k], v) for k, v in recon.state_dict().items())  # the trained map untouched
    assert done.model is not recon
    with torch.no_grad():  # the returned copy is the map that made x̂
        assert torch.allclose(done.model(y, phys), done.x, atol=1e-5)


@pytest.mark.parametrize("loss", ["auto", "ei", "sure"])
def test_each_loss_adapts_under_the_scans_own_physics(loss):
    phys = _ct(angles=8, rel=0.0)
    phys = Physics(phys.operator, noise_mod.build("gaussian", sigma=0.05))  # a known σ for SURE
    y = phys.measure(_images(), torch.Generator().manual_seed(1))
    done = adapt(_map("post-processing"), y, phys, Settings(steps=3, lr=1e-3, loss=loss, stop="steps"), progress=None)
    assert done.steps == 3 and bool(torch.isfinite(done.x).all())
    assert done.loss.startswith("ei (rotations)" if loss in ("auto", "ei") else "sure")


def test_a_map_already_consistent_with_y_is_returned_unchanged():
    """The discrepancy rule reads y and the noise level alone: a target it already meets ends the fit
    before the first step, and x̂ is the trained map's own."""
    phys = _ct()
    y = phys.measure(_images(), torch.Generator().manual_seed(1))
    recon = _map("post-processing")
    with torch.no_grad():
        x_un = recon(y, phys)
    done = adapt(recon, y, phys, Settings(steps=50, tau=100.0), progress=None)
    assert not done.adapted and done.steps == 0 and done.stopped_by == "discrepancy" and done.note is None
    assert torch.equal(done.x, x_un) and "nothing to adapt" in done.describe()
    assert done.target == pytest.approx(100.0 * done.expected_misfit)


@pytest.mark.parametrize("how", ["nan", "rising"])
def test_a_diverging_adaptation_returns_the_unadapted_image_with_a_note(how, monkeypatch):
    phys = _ct()
    y = phys.measure(_images(), torch.Generator().manual_seed(1))
    recon = _map("post-processing")
    with torch.no_grad():
        x_un = recon(y, phys)

    def broken_step(self, closure=None):  # the optimizer throws the weights away
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.fill_(float("nan")) if how == "nan" else p.mul_(1e3).add_(1.0)

    monkeypatch.setattr(torch.optim.Adam, "step", broken_step)
    done = adapt(recon, y, phys, Settings(steps=5, loss="mc", stop="steps"), progress=None)
    assert not done.adapted and done.stopped_by == "diverged" and "diverged" in done.note
    assert torch.equal(done.x, x_un) and bool(torch.isfinite(done.x).all())
    assert done.model is recon and "unadapted x̂ kept" in done.describe()


@pytest.mark.parametrize("field, value, allowed", [
    ("steps", 0, "[1, 10000]"), ("steps", 10 ** 9, "[1, 10000]"), ("steps", 2.5, "[1, 10000]"),
    ("lr", 10.0, "[1e-07, 0.1]"), ("lr", float("nan"), "[1e-07, 0.1]"), ("lr", -1e-3, "[1e-07, 0.1]"),
    ("loss", "x", "auto, mc, ei, sure"), ("stop", "never", "auto, discrepancy, variance, steps"),
    ("seconds", 0.0, "[0.001, 86400]")])
def test_settings_out_of_range_are_refused_with_the_range(field, value, allowed):
    with pytest.raises(ValueError, match=r"^adaptation .*") as e:
        Settings(**{field: value})
    assert allowed in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("what", ["variational", "callable"])
def test_a_method_without_weights_cannot_be_adapted(what):
    method = variational.build("tv") if what == "variational" else (lambda y, physics: physics.operator.adjoint(y))
    with pytest.raises(ValueError, match="no trained weights"):
        check_adaptable(method)
    with pytest.raises(ValueError, match="no trained weights"):
        Adapted(method)


def test_the_adaptation_is_checked_against_the_memory_budget_before_its_first_step(monkeypatch):
    phys = _ct()
    y = phys.measure(_images(), torch.Generator().manual_seed(1))
    monkeypatch.setenv("INVMAP_MAX_MEMORY", "64K")
    with pytest.raises(ValueError, match="adapting the map on 2 measurement"):
        adapt(_map("post-processing"), y, phys, Settings(steps=2), progress=None)


def test_progress_is_told_for_a_long_adaptation(monkeypatch):
    phys = _ct()
    y = phys.measure(_images(), torch.Generator().manual_seed(1))
    monkeypatch.setattr(adaptation, "PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(adaptation, "PROGRESS_EVERY", 0.0)
    said: list[str] = []
    adapt(_map("post-processing"), y, phys, Settings(steps=2, stop="steps"), progress=said.append)
    assert said and all(s.startswith("adapt: step ") and "of at most 2" in s for s in said)


# ------------------------------------------------------------------ the command line

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory with a tiny CT model (32², 30 views, 3% noise, a small UNet after FBP) trained
    here on 32 ellipse pairs for a few seconds, and its tuned TV."""
    from invmap.config import load_config

    cfg = load_config(None, ["data.size=32", "data.val=4", "data.test=4", "operator.angles=30", "data.simulation=crime",
                             "data.test_simulation=crime", "noise.relative=0.03", "model.depth=2",
                             "model.base_channels=8", "name=tiny", "evaluation.bound=0", "evaluation.pixel_risk=0"])
    torch.manual_seed(0)
    return fitted_run(tmp_path_factory.mktemp("adapt") / "run", cfg,
                      build("unet", depth=2, base_channels=8, residual=True), tune_seconds=2.0)


def _bytes(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_reconstruct_adapt_leaves_the_run_as_it_was_and_says_what_it_did(tiny_run, tmp_path, capsys):
    y = _ct(angles=15, rel=0.03).measure(_images(1), torch.Generator().manual_seed(2))
    np.save(tmp_path / "y.npy", y[0, 0].numpy())
    before = _bytes(tiny_run)
    out = tmp_path / "x.npy"
    capsys.readouterr()
    assert main(["reconstruct", "--model", str(tiny_run), "--set", "operator.angles=15", "--input",
                 str(tmp_path / "y.npy"), "--output", str(out), "--adapt", "--adapt-steps", "4",
                 "--adapt-lr", "1e-3"]) == 0
    printed = capsys.readouterr().out
    assert _bytes(tiny_run) == before  # no calibration record, no weights, nothing written into the run
    line = next(s for s in printed.splitlines() if s.startswith("adapt: "))
    side = json.loads((tmp_path / "x.trust.json").read_text())
    rec = side["adaptation"]
    assert rec["settings"]["steps"] == 4 and rec["loss"].startswith("ei (") and rec["images"] == 1
    assert f"{rec['steps']} Adam step" in line or "nothing to adapt" in line or "unadapted" in line
    assert rec["stopped_by"] in line
    assert side["images"][0]["verdict"] in ("consistent", "suspect")  # the trust diagnosis, as for any model
    assert ("adapted" in printed.splitlines()[-2]) or ("unadapted" in printed)
    assert np.isfinite(np.load(out)).all()


@pytest.mark.parametrize("case", ["variational-method", "steps-zero", "steps-absurd", "lr-absurd", "lr-nan",
                                  "loss-unknown", "option-without-adapt", "run-without-weights", "memory"])
def test_reconstruct_adapt_refusals_are_one_line(case, tiny_run, tmp_path, capsys, monkeypatch):
    y = _ct(angles=30, rel=0.03).measure(_images(1), torch.Generator().manual_seed(2))
    np.save(tmp_path / "y.npy", y[0, 0].numpy())
    out = tmp_path / "x.npy"
    args = ["reconstruct", "--model", str(tiny_run), "--input", str(tmp_path / "y.npy"), "--output", str(out),
            "--adapt"]
    expect = None
    if case == "variational-method":
        args[1:3] = ["--method", "tv"]
        args += ["--task", str(tiny_run / "config.yaml")]
        expect = "variational method"
    elif case == "steps-zero":
        args += ["--adapt-steps", "0"]
        expect = "[1, 10000]"
    elif case == "steps-absurd":
        args += ["--adapt-steps", str(10 ** 12)]
        expect = "[1, 10000]"
    elif case == "lr-absurd":
        args += ["--adapt-lr", "50"]
        expect = "[1e-07, 0.1]"
    elif case == "lr-nan":
        args += ["--adapt-lr", "nan"]
        expect = "[1e-07, 0.1]"
    elif case == "loss-unknown":
        args += ["--adapt-loss", "split"]
    elif case == "option-without-adapt":
        args = args[:-1] + ["--adapt-steps", "5"]
        expect = "need --adapt"
    elif case == "run-without-weights":
        bare = tmp_path / "bare"
        bare.mkdir()
        (bare / "config.yaml").write_bytes((tiny_run / "config.yaml").read_bytes())
        args[2] = str(bare)
    else:  # 512 measurements at once: the adaptation's activations, not the operator, pass the limit
        np.save(tmp_path / "y.npy", y.repeat(512, 1, 1, 1).numpy())
        monkeypatch.setenv("INVMAP_MAX_MEMORY", "100M")
        expect = "adapting the map on 512 measurement"
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as e:  # argparse's own refusal (a choice it does not know), one line too
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error: ")
    if expect is not None:
        assert expect in err[0]
    assert not out.exists() and not (tmp_path / "x.trust.json").exists()


# ------------------------------------------------------------------ the run-bound method

def test_methods_lists_the_adapted_model(capsys):
    assert ADAPTED in RUN_METHODS
    assert main(["methods"]) == 0
    assert ADAPTED in capsys.readouterr().out


def test_stress_runs_the_adapted_model_beside_the_model(tiny_run, tmp_path, capsys):
    """One adaptation per level's batch: in stress.csv, the verdicts and the heatmap's rows beside the model."""
    from invmap.evaluation.stress import read_stress_csv

    run = tmp_path / "run"
    run.mkdir()
    for p in tiny_run.iterdir():
        if p.is_file():
            (run / p.name).write_bytes(p.read_bytes())
    assert main(["stress", str(run), "--shifts", "geometry", "--n", "2", "--no-report",
                 "--methods", f"tv,model,{ADAPTED}"]) == 0
    rows = read_stress_csv(run / "stress.csv")
    levels = {r["level"] for r in rows if r["method"] == ADAPTED and r["metric"] == "psnr"}
    assert levels and levels == {r["level"] for r in rows if r["method"] == "model" and r["metric"] == "psnr"}
    meta = json.loads((run / "stress.json").read_text())
    assert any(v.get("method") == ADAPTED for v in meta["verdicts"])
    assert ADAPTED in meta["learned"]


def test_one_adaptation_per_test_condition_on_its_first_measurements():
    """The run-bound method adapts once per physics (a stress level, the test set) on its first `images`
    measurements; the other batches of the condition reuse the adapted copy."""
    phys, other = _ct(), _ct(angles=8)
    method = Adapted(_map("post-processing"), Settings(steps=2, stop="steps"), images=1)
    y = phys.measure(_images(4), torch.Generator().manual_seed(1))
    first, second = method(y[:2], phys), method(y[2:], phys)
    assert len(method.history) == 1 and method.history[0]["images"] == 1 and method.history[0]["steps"] == 2
    assert first.shape == second.shape == (2, 1, 32, 32)
    method(other.measure(_images(2), torch.Generator().manual_seed(1)), other)
    assert len(method.history) == 2
    assert method.training_physics is method.wraps.training_physics


def test_invmap_run_adds_the_adapted_model_when_asked():
    from invmap.config import load_config
    from invmap.pipeline import adapted_beside

    assert adapted_beside(load_config(None, [])) == []  # off by default: it costs minutes of the main job
    assert adapted_beside(load_config(None, ["evaluation.adapt=true"])) == [ADAPTED]
    assert adapted_beside(load_config(None, ["evaluation.adapt=false"])) == []
    assert adapted_beside(load_config(None, ["evaluation.adapt=true", "evaluation.methods=[fbp,tv]"])) == []
    assert adapted_beside(load_config(None, ["evaluation.adapt=true", "evaluation.methods=[tv,model,adapted]"])) == []


def test_the_target_adds_the_misfit_the_model_leaves_at_home():
    """A map that leaves a relative misfit f at its training conditions (its trust calibration's floor) is
    adapted no further than τ·(E‖e‖² + f²‖y‖²): fitting y closer would fit that model error, not x."""
    phys = _ct()
    y = phys.measure(_images(), torch.Generator().manual_seed(1))
    recon = _map("post-processing")
    plain = adapt(recon, y, phys, Settings(steps=1), progress=None)
    score = {"floor": 10.0, "home": {"median": 0.1, "spread": 0.2}}  # far above: nothing to adapt
    done = adapt(recon, y, phys, Settings(steps=5), progress=None, floor=home_fit(score))
    energy, scale = float((y.double() ** 2).sum()), float(np.exp(2 * (0.1 + 2 * 0.2)))
    assert done.floor == 10.0
    assert done.target == pytest.approx(scale * (done.expected_misfit + 100.0 * energy), rel=1e-6)
    assert plain.floor == 0.0 and plain.target == pytest.approx(plain.expected_misfit)
    assert done.steps == 0 and not done.adapted and done.stopped_by == "discrepancy"
