"""Model-based reconstructor kinds (lgd, lpd, unrolled, pnp) through the registry: shape,
gradients, use of K and Kᵀ, save/load, configs, training and `invmap reconstruct --model`.
Everything is tiny: 32 px, 2 iterations, 4 channels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import invmap.models as models
import invmap.operators as ops
from invmap.cli import main
from invmap.physics import Physics

SIZE = 32
OPS = ops.names()
TINY = {"lgd": dict(iterations=2, memory=2, channels=4, depth=2),
        "lpd": dict(iterations=2, primal=2, dual=2, channels=4, depth=2),
        "lpd-light": dict(iterations=2, variant="light", primal=2, channels=4, depth=2),
        "unrolled": dict(iterations=2, channels=4, depth=2),
        "unfolded": dict(prior=None, iterations=2, depth=2, base_channels=4, cg_iters=2, tune=False),
        "unfolded-pgd": dict(prior=None, iterations=2, algorithm="pgd", depth=2, base_channels=4, tune=False)}
TRAINED_KINDS = sorted(TINY)


def kind_of(case: str) -> str:
    return case.split("-")[0]


def operator(name: str, **params):
    extra = {"angles": 12} if name == "tomography" else {}
    return ops.build(name, image_shape=(SIZE, SIZE), **{**extra, **params})


def build(case: str, op) -> torch.nn.Module:
    params = dict(TINY[case])
    if kind_of(case) == "lpd":
        params["complex_data"] = bool(op.complex_output)
    return models.build_kind(kind_of(case), **params)


def measure(op, b: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand((b, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(seed))
    return x, Physics(op).measure(x, torch.Generator().manual_seed(seed))


def spy(op, monkeypatch) -> dict:
    """Count the calls of K and Kᵀ on `op`."""
    calls = {"K": 0, "Kt": 0}
    fwd, adj = op._forward, op._adjoint

    def f(x):
        calls["K"] += 1
        return fwd(x)

    def a(y):
        calls["Kt"] += 1
        return adj(y)

    monkeypatch.setattr(op, "_forward", f)
    monkeypatch.setattr(op, "_adjoint", a)
    return calls


def paper_lpd_needs_2d(case: str, op) -> bool:
    return case == "lpd" and len(op.out_shape) != 2


@pytest.mark.parametrize("opname", OPS)
@pytest.mark.parametrize("case", TRAINED_KINDS)
def test_kind_shape_gradient_and_uses_K(case, opname, monkeypatch):
    op = operator(opname)
    recon = build(case, op)
    x, y = measure(op)
    if paper_lpd_needs_2d(case, op):  # the one place a kind does not apply: said in one line
        with pytest.raises(ValueError, match="variant 'light'") as e:
            recon(y, Physics(op))
        assert "\n" not in str(e.value)
        return
    op.norm()  # the power method is not counted below
    calls = spy(op, monkeypatch)
    out = recon(y, Physics(op))
    assert out.shape == x.shape and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert calls["K"] >= 2 and calls["Kt"] >= 2  # K and Kᵀ inside every iteration
    out.pow(2).mean().backward()
    trainable = [n for n, p in recon.named_parameters() if p.requires_grad]
    assert trainable and all(dict(recon.named_parameters())[n].grad is not None for n in trainable)
    # another operator of the same shapes (K composed with a blur) changes the reconstruction
    other = op @ ops.build("blur", image_shape=(SIZE, SIZE))
    with torch.no_grad():
        assert not torch.allclose(recon(y, Physics(other)), recon(y, Physics(op)), atol=1e-6)


@pytest.mark.parametrize("case", TRAINED_KINDS + ["lgd-fbp", "lgd-adjoint"])
def test_kind_trains_under_bfloat16_autocast(case):
    """``training.amp`` on a CPU with native bfloat16: every kind's step runs under bf16 autocast
    while K, Kᵀ and FBP (CSR matrices, no bf16 kernel) stay in float32."""
    op = operator("tomography")
    kind, init = kind_of(case), case.split("-")[1] if case.startswith("lgd-") else None
    recon = models.build_kind(kind, **TINY[kind], **({"init": init} if init else {})) if init else build(case, op)
    _, y = measure(op)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = recon(y, Physics(op))
    assert out.shape == (2, 1, SIZE, SIZE) and torch.isfinite(out).all()
    out.float().pow(2).mean().backward()
    assert all(p.grad is not None for p in recon.parameters() if p.requires_grad)


@pytest.mark.parametrize("case", TRAINED_KINDS)
def test_save_load_round_trip(case, tmp_path):
    op = operator("tomography")
    recon = build(case, op).eval()
    _, y = measure(op)
    with torch.no_grad():
        for p in recon.parameters():
            p.add_(0.01 * torch.randn_like(p))
    models.save_model(tmp_path, recon, physics=Physics(op))
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["kind"]["name"] == kind_of(case) and doc["architecture"] is None
    back, meta = models.load_model(tmp_path)
    assert type(back) is type(recon) and back.kind_params == recon.kind_params
    with torch.no_grad():
        torch.testing.assert_close(back(y, Physics(op)), recon(y, Physics(op)))
    models.check_compatible(meta, Physics(operator("tomography", angles=7)))  # K is read at call time


def test_old_model_json_without_kind_loads(tmp_path):
    recon = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="adjoint")
    models.save_model(tmp_path, recon)
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["kind"] == {"name": "post-processing"}
    del doc["kind"]
    (tmp_path / "model.json").write_text(json.dumps(doc))
    back, _ = models.load_model(tmp_path)
    assert isinstance(back, models.LearnedReconstructor) and back.input == "adjoint"


def test_checkpointing_gives_the_same_values_and_gradients():
    op = operator("tomography")
    _, y = measure(op)
    outs = []
    for ck in (False, True):
        torch.manual_seed(0)
        recon = models.build_kind("lpd", **TINY["lpd"], checkpoint=ck)
        out = recon(y, Physics(op))
        out.sum().backward()
        outs.append((out.detach(), [p.grad.clone() for p in recon.parameters() if p.grad is not None]))
    torch.testing.assert_close(outs[0][0], outs[1][0])
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("override, message", [
    ("model.iterations=0", "for 'iterations' (int >= 1, <= 10000)"),
    ("model.variant=fancy", "invalid value 'fancy' for 'variant'"),
    ("model.input_channels=3", "unknown parameter(s) 'input_channels'"),
])
def test_config_validates_kind_parameters(override, message, capsys):
    from invmap.config import load_config

    assert load_config(None, ["model.name=lpd"]).model.name == "lpd"
    assert main(["config", "--set", "model.name=lpd", "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and message in err and "\n" not in err


# ----------------------------------------------------------------------------- end to end
def tiny_task(**extra) -> list[str]:
    sets = {"data.size": SIZE, "data.train": 8, "data.val": 4, "data.test": 4, "data.test_simulation": "crime",
            "operator.angles": 12, "training.epochs": 1, "training.batch_size": 4, "training.amp": "off",
            "training.device": "cpu", **extra}
    return [a for k, v in sets.items() if v is not None for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory) -> str:
    """A denoiser trained by invmap itself: identity operator, σ drawn from a range."""
    out = tmp_path_factory.mktemp("den") / "run"
    args = ["train", "--quiet", "--out", str(out), "--set", "operator.name=identity", "--set", "noise.name=gaussian",
            "--set", "noise.relative=null", "--set", "noise.sigma_range=[0.01, 0.1]", "--set", "model.name=cnn", "--set", "model.input=adjoint",
            "--set", "model.depth=2", "--set", "model.channels=4", "--set", "model.residual=true"]
    assert main(args + tiny_task(**{"operator.angles": None})) == 0
    return str(out)


def test_pnp_with_an_invmap_denoiser_on_every_operator(denoiser, tmp_path, monkeypatch):
    recon = models.build_kind("pnp", denoiser=denoiser, iterations=2)
    assert not any(p.requires_grad for p in recon.parameters())
    models.save_model(tmp_path / "pnp", recon, physics=Physics(operator("blur")))
    back, _ = models.load_model(tmp_path / "pnp")  # rebuilt from its own files
    for opname in OPS:
        op = operator(opname)
        x, y = measure(op)
        op.norm()
        calls = spy(op, monkeypatch)
        out = recon(y, Physics(op))
        assert out.shape == x.shape and torch.isfinite(out).all() and calls["K"] and calls["Kt"]
        torch.testing.assert_close(back(y, Physics(op)), out)
    hqs = models.build_kind("pnp", denoiser=denoiser, iterations=2, algorithm="hqs")
    op = operator("tomography")
    _, y = measure(op)
    assert hqs(y, Physics(op)).shape == (2, 1, SIZE, SIZE)


def test_pnp_refuses_a_model_that_is_not_a_denoiser(tmp_path):
    recon = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="fbp")
    models.save_model(tmp_path, recon, physics=Physics(operator("tomography")))
    with pytest.raises(ValueError, match="not the identity"):
        models.build_kind("pnp", denoiser=str(tmp_path))


@pytest.mark.parametrize("kind, sets", [
    ("lpd", {"model.iterations": 2, "model.primal": 2, "model.dual": 2, "model.channels": 4, "model.depth": 2}),
    ("lgd", {"model.iterations": 2, "model.memory": 2, "model.channels": 4, "model.depth": 2}),
    ("pnp", {"model.iterations": 2, "model.strengths": "[0.5, 1.0]", "model.steps": "[1.0]"}),
    ("unfolded", {"model.iterations": 2, "model.cg_iters": 2}),  # the shipped prior, tuned, then trained
])
def test_train_and_reconstruct_with_the_run(kind, sets, tmp_path, request, capsys):
    sets = dict(sets)
    if kind == "pnp":
        sets["model.denoiser"] = request.getfixturevalue("denoiser")
    run = tmp_path / "run"
    assert main(["train", "--quiet", "--out", str(run), "--set", f"model.name={kind}"]
                + tiny_task(**sets)) == 0
    doc = json.loads((run / "model.json").read_text())
    assert doc["kind"]["name"] == kind
    if kind == "pnp":  # tuned on the validation pairs: the chosen point is recorded
        assert doc["kind"]["tuned"]["strength"] in (0.5, 1.0) and doc["kind"]["tuned"]["step"] == 1.0
    img = tmp_path / "x.npy"
    np.save(img, np.random.default_rng(0).random((SIZE, SIZE)))
    assert main(["reconstruct", "--model", str(run), "--input", str(img), "--simulate",
                 "--output", str(tmp_path / "a.npy")]) == 0
    task = tmp_path / "task.yaml"
    task.write_text((run / "config.yaml").read_text())
    assert main(["reconstruct", "--model", str(run), "--task", str(task), "--set", "operator.angles=7",
                 "--input", str(img), "--simulate", "--output", str(tmp_path / "b.npy")]) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == b.shape == (SIZE, SIZE) and np.isfinite(b).all() and not np.allclose(a, b)
    # --set without --task changes the run's own config.yaml: the same 7-view task
    assert main(["reconstruct", "--model", str(run), "--set", "operator.angles=7",
                 "--input", str(img), "--simulate", "--output", str(tmp_path / "c.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "c.npy"), b, atol=1e-6)
    # a measured 7-view sinogram (no --simulate) reconstructs under the 7-view physics
    from invmap.config import load_config

    seven = load_config(task, ["operator.angles=7"]).physics()
    x = torch.as_tensor(np.load(img), dtype=torch.float32)[None, None]
    np.save(tmp_path / "sino7.npy", seven.measure(x, torch.Generator().manual_seed(0))[0, 0].numpy())
    assert main(["reconstruct", "--model", str(run), "--set", "operator.angles=7", "--input",
                 str(tmp_path / "sino7.npy"), "--output", str(tmp_path / "d.npy")]) == 0
    assert np.isfinite(np.load(tmp_path / "d.npy")).all()
    capsys.readouterr()  # a sinogram of the wrong number of views: one line, nothing written
    assert main(["reconstruct", "--model", str(run), "--input", str(tmp_path / "sino7.npy"),
                 "--output", str(tmp_path / "e.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("invmap: error: ") and err.count("\n") == 1 and not (tmp_path / "e.npy").exists()


def test_stress_hands_model_based_methods_the_shifted_physics():
    """Geometry levels reconstruct with the new K; calibration levels with the nominal K."""
    from invmap.evaluation import stress
    from invmap.evaluation.task import Condition
    from invmap.physics import physics_spec

    seen: list[tuple[int, dict]] = []
    recon = models.build_kind("lgd", **TINY["lgd"]).eval()

    def calibration(op) -> dict:
        params = op.spec()["params"]
        return {k: params.get(k) for k in op.calibration_params}

    def method(y, physics):
        seen.append((physics.operator.spec()["params"]["angles"], calibration(physics.operator)))
        return recon(y, physics)

    ref = Condition.of("ellipses", SIZE, physics_spec({"name": "tomography", "params": {"angles": 12}},
                                                      {"name": "gaussian", "params": {"relative": 0.01}}),
                       simulation="crime", n=2)
    shifts = stress.applicable_shifts(ref, ["geometry", "calibration"])
    assert {s.kind for s in shifts} == {"geometry", "calibration"}
    rows = stress.run_shifts({"lgd": method}, ref, shifts, batch_size=2)
    assert rows and {r["method"] for r in rows} == {"lgd"}
    views = {a for a, _ in seen}
    assert len(views) > 1 and 12 in views  # new geometries, and the nominal one
    # calibration errors (angle offset, detector shift) never reach the method's K
    assert all(c == calibration(operator("tomography", angles=a)) for a, c in seen)


@pytest.mark.parametrize("name", sorted(__import__("invmap.config", fromlist=["presets"]).presets()))
def test_presets_are_shown_and_valid(name, capsys):
    from invmap.config import load_config, presets

    assert main(["config", "--presets"]) == 0
    assert f"{name}: " in capsys.readouterr().out
    assert main(["config", "--preset", name]) == 0
    assert capsys.readouterr().out == presets()[name].read_text()
    cfg = load_config(name)  # a preset's name works wherever a config file does
    assert cfg.name == load_config(str(presets()[name])).name != load_config(None).name


def test_pnp_without_its_denoiser_fails_in_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ct-pnp", "--quiet", "--out", str(out), "--set", f"model.denoiser={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err and "none" in err
    assert not out.exists()
    assert main(["config", "--preset", "no-such"]) == 2
    assert "ct-lpd" in capsys.readouterr().err


def test_memory_estimate_counts_the_iterations_and_checkpointing_lowers_it():
    from invmap.config import load_config
    from invmap.training.setup import check_memory

    sets = ["data.size=32", "data.train=8", "data.val=4", "operator.angles=12", "model.name=lpd", "model.channels=4"]
    full, ck, few = (check_memory(c, c.physics()) for c in (
        load_config(None, sets), load_config(None, sets + ["model.checkpoint=true"]),
        load_config(None, sets + ["model.iterations=2"])))
    assert ck < full and few < full


def test_start_asks_the_operator_for_its_fbp():
    """init 'fbp' is an error where K has no filtered back-projection; 'auto' asks K."""
    blur, ct = operator("blur"), operator("tomography")
    with pytest.raises(ValueError, match="no filtered back-projection|has none") as e:
        models.build_kind("lgd", **TINY["lgd"], init="fbp")(measure(blur)[1], Physics(blur))
    assert "\n" not in str(e.value)
    for op in (blur, ct):
        auto, explicit = (models.build_kind("unrolled", **TINY["unrolled"], init=i)
                          for i in ("auto", "fbp" if op.has_fbp else "adjoint"))
        explicit.load_state_dict(auto.state_dict())
        y = measure(op)[1]
        with torch.no_grad():
            torch.testing.assert_close(auto(y, Physics(op)), explicit(y, Physics(op)))


@pytest.mark.parametrize("kind, message", [("lpd-like", "unknown reconstructor kind 'lpd-like'"),
                                           ([1, 2], '"kind" must be'),
                                           ({"name": "lgd", "params": {"iterations": 0}}, "iterations")])
def test_bad_kind_in_model_json_is_one_line(kind, message, tmp_path, capsys):
    op = operator("tomography")
    models.save_model(tmp_path / "run", build("lgd", op), physics=Physics(op))
    doc = json.loads((tmp_path / "run" / "model.json").read_text())
    doc["kind"] = {"name": kind, "params": {}} if isinstance(kind, str) else kind
    (tmp_path / "run" / "model.json").write_text(json.dumps(doc))
    np.save(tmp_path / "x.npy", np.zeros((SIZE, SIZE)))
    assert main(["reconstruct", "--model", str(tmp_path / "run"), "--input", str(tmp_path / "x.npy"),
                 "--simulate", "--output", str(tmp_path / "out.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and message in err and "\n" not in err
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("data_range", [1.0, "max-min"])
def test_pnp_tuning_scores_with_the_evaluation_data_range(data_range):
    """PnP's strength and step are chosen by the PSNR convention of evaluation.data_range."""
    from types import SimpleNamespace

    from invmap import metrics
    from invmap.models.pnp import PlugAndPlay

    torch.manual_seed(0)
    denoiser = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4, residual=True), input="adjoint")
    recon = PlugAndPlay(denoiser, iterations=2, strengths=[0.5, 1.0], steps=[0.5, 1.5]).eval()
    op = operator("blur")
    x, y = measure(op, b=3)
    x = 0.2 + 0.5 * x  # values in [0.2, 0.7]: max − min differs from 1 in every image
    y = Physics(op).measure(x, torch.Generator().manual_seed(1))
    val = SimpleNamespace(n=3, minibatches=lambda order, size: list(order.split(size)),
                          epoch=lambda batches, e: ((y[b], x[b], Physics(op)) for b in batches))
    recon.prepare(None, val, data_range=data_range)
    assert len(recon.tuning) == 4
    for row in recon.tuning:
        recon.strength.fill_(row["strength"])
        recon.step.fill_(row["step"])
        want = float(metrics.psnr(recon(y, Physics(op)), x, data_range).mean())
        assert row["val_psnr"] == pytest.approx(want, abs=1e-4)


def test_reconstruct_set_without_task_needs_the_runs_config(tmp_path, capsys):
    """--set is never dropped silently: a model directory without config.yaml needs --task."""
    models.save_model(tmp_path / "m", build("lgd", operator("tomography")), physics=Physics(operator("tomography")))
    np.save(tmp_path / "x.npy", np.zeros((SIZE, SIZE)))
    capsys.readouterr()
    assert main(["reconstruct", "--model", str(tmp_path / "m"), "--set", "operator.angles=7", "--input",
                 str(tmp_path / "x.npy"), "--simulate", "--output", str(tmp_path / "out.npy")]) == 2
    err = capsys.readouterr().err
    assert err == f"invmap: error: --set needs --task CONFIG: {tmp_path / 'm'} has no config.yaml to apply it to\n"
    assert not (tmp_path / "out.npy").exists()
