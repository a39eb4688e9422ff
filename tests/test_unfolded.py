"""The unfolded kind (`invmap.models.unfolded`) — PnP's iteration around the shipped prior, trained
end to end — and the size curriculum (`invmap.training.curriculum`). Tiny: 32 px, 2–3 iterations,
``training.amp: off``."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import invmap.models as models
import invmap.noise as noise_mod
import invmap.operators as ops
import invmap.variational as var
from invmap.cli import main
from invmap.config import load_config
from invmap.models import unfolded as unfolded_mod
from invmap.physics import Physics
from invmap.training import train
from invmap.training import loop as loop_mod
from invmap.training.curriculum import Curriculum

SIZE = 32
TINY = dict(prior=None, iterations=2, depth=2, base_channels=4, cg_iters=2, tune=False)
TASK = [f"data.size={SIZE}", "data.train=8", "data.val=4", "data.test=4", "data.simulation=crime",
        "data.test_simulation=crime", "operator.angles=12", "training.epochs=1", "training.batch_size=4",
        "training.amp=off", "training.device=cpu", "training.threads=1", "training.max_minutes=0"]
KIND = ["model.name=unfolded", "model.iterations=2", "model.cg_iters=2"]


def ct(angles: int = 12) -> Physics:
    return Physics(ops.build("tomography", image_shape=(SIZE, SIZE), angles=angles),
                   noise_mod.build("gaussian", relative=0.01))


def pairs(physics: Physics, b: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from invmap.data import build_source

    x = build_source("ellipses", size=SIZE, count=b, seed=seed).batch(list(range(b)))
    return x, physics.measure(x, torch.Generator().manual_seed(seed))


def sets(*items: str) -> list[str]:
    return [a for s in items for a in ("--set", s)]


# ------------------------------------------------------------------ the map
@pytest.mark.parametrize("algorithm", ["hqs", "pgd"])
def test_untrained_it_is_the_pnp_method_with_the_same_schedule(algorithm):
    """Built from the shipped prior, before any step it computes what ``--method pnp`` computes
    with the same σ schedule and step: one iteration, not two copies."""
    phys = ct()
    _, y = pairs(phys)
    step = 300.0 if algorithm == "hqs" else 1.0
    same = dict(algorithm=algorithm, sigma_start=0.1, sigma_end=0.02, step=step, cg_iters=4, equivariant=False)
    recon = models.build_kind("unfolded", iterations=3, tune=False, **same).eval()
    with torch.no_grad():
        mine = recon(y, phys)
    theirs = var.build("pnp", iters=3, **same)(y, phys)
    torch.testing.assert_close(mine, theirs.float(), atol=2e-5, rtol=0)


def test_sigma_and_step_stay_positive_and_in_range_and_all_learn():
    """σ_k = σ_max·sigmoid(a_k) stays inside the prior's range whatever a_k; τ_k = exp(b_k) > 0;
    gradients reach σ_k, τ_k and the denoiser, and one Adam step moves each."""
    phys = ct()
    x, y = pairs(phys)
    recon = models.build_kind("unfolded", **TINY)
    with torch.no_grad():
        recon.sigma_logit.copy_(torch.tensor([50.0, -50.0]))
        recon.log_step.copy_(torch.tensor([-30.0, 30.0]))
    s, t = recon.sigmas(), recon.steps()
    assert bool((s > 0).all()) and bool((s <= recon.sigma_max).all()) and bool((t > 0).all())
    assert torch.isfinite(recon(y, phys)).all()  # the prior's σ check accepts every learned σ
    recon = models.build_kind("unfolded", **TINY).train()
    before = {n: p.detach().clone() for n, p in recon.named_parameters()}
    opt = torch.optim.Adam(recon.parameters(), lr=1e-2)
    ((recon(y, phys) - x) ** 2).mean().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in
               (recon.sigma_logit, recon.log_step, recon.denoisers[0].net.out.weight))
    opt.step()
    moved = {n for n, p in recon.named_parameters() if not torch.equal(p, before[n])}
    assert {"sigma_logit", "log_step"} <= moved and any(n.startswith("denoisers.0.") for n in moved)


def test_checkpointing_gives_the_same_values_and_gradients():
    phys = ct()
    x, y = pairs(phys)
    out = {}
    for ck in (False, True):
        torch.manual_seed(0)
        recon = models.build_kind("unfolded", **{**TINY, "checkpoint": ck}).train()
        loss = ((recon(y, phys) - x) ** 2).mean()
        loss.backward()
        out[ck] = (loss.detach(), [p.grad.clone() for p in recon.parameters()])
    torch.testing.assert_close(out[True][0], out[False][0])
    for a, b in zip(out[True][1], out[False][1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_per_iteration_weights_start_from_the_prior_and_train_apart():
    prior = models.build_kind("unfolded", iterations=3, tune=False).denoisers[0]
    recon = models.build_kind("unfolded", iterations=3, shared=False, tune=False)
    assert len(recon.denoisers) == 3
    for d in recon.denoisers:
        for (n, a), b in zip(d.state_dict().items(), prior.state_dict().values()):
            assert torch.equal(a, b), n
    with torch.no_grad():
        recon.denoisers[1].net.out.bias.add_(1.0)
    assert not torch.equal(recon.denoisers[0].net.out.bias, recon.denoisers[1].net.out.bias)


def test_the_measurements_own_k_at_every_call():
    """A changed geometry changes the computation (the stress study's shifts act on it)."""
    recon = models.build_kind("unfolded", **TINY).eval()
    x, y = pairs(ct(12))
    with torch.no_grad():
        a = recon(y, ct(12))
        b = recon(ct(8).measure(x, torch.Generator().manual_seed(0)), ct(8))
        c = recon(ct(12).measure(x, torch.Generator().manual_seed(0)), ct(12))
    assert not torch.allclose(a, b, atol=1e-4)
    torch.testing.assert_close(a, c)


class _Val:
    """The part of `invmap.training.setup.Pairs` that `prepare` reads."""

    def __init__(self, y, x, physics):
        self.y, self.x, self.physics, self.n = y, x, physics, y.shape[0]

    def minibatches(self, order, size):
        return list(order.split(size))

    def epoch(self, batches, epoch):
        for idx in batches:
            yield self.y[idx], self.x[idx], self.physics


def test_prepare_starts_from_the_best_schedule_of_the_grid(monkeypatch):
    monkeypatch.setattr(unfolded_mod, "GRID", {"sigma_start": (0.05, 0.2), "sigma_end": (0.02,),
                                               "hqs": (30.0, 3000.0), "pgd": (1.0,)})
    phys = ct()
    x, y = pairs(phys, b=3)
    recon = models.build_kind("unfolded", iterations=2, cg_iters=3)
    recon.prepare(None, _Val(y, x, phys))
    assert len(recon.tuning) == 4
    best = max(recon.tuning, key=lambda r: r["val_psnr"])
    assert recon.sigmas().detach().tolist() == pytest.approx([best["sigma_start"], 0.02], rel=1e-4)
    assert float(recon.steps().detach()[0]) == pytest.approx(best["step"], rel=1e-4)
    untuned = models.build_kind("unfolded", iterations=2, cg_iters=3)
    untuned.prepare(None, None)  # self-supervised: no x to tune on, the configured schedule stays
    assert untuned.sigmas().detach().tolist() == pytest.approx([0.1, 0.02], rel=1e-4) and untuned.tuning == []


def test_a_saved_model_loads_without_its_prior(tmp_path, monkeypatch):
    phys = ct()
    _, y = pairs(phys)
    recon = models.build_kind("unfolded", iterations=2, tune=False).eval()
    with torch.no_grad():
        recon.log_step.add_(0.3)
    models.save_model(tmp_path, recon, physics=phys)
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["kind"]["params"]["prior"] == "pretrained:denoiser" and doc["kind"]["params"]["depth"] == 4
    assert doc["kind"]["learned"]["steps"][0] == pytest.approx(float(recon.steps().detach()[0]), rel=1e-5)

    def gone(name):
        raise FileNotFoundError(name)

    monkeypatch.setattr(unfolded_mod, "load_prior", gone)
    back, _ = models.load_model(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(back(y, phys), recon(y, phys))


# ------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def not_a_denoiser(tmp_path_factory) -> str:
    """A saved post-processing model: not a noise-conditional denoiser."""
    out = tmp_path_factory.mktemp("pp") / "run"
    net = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="adjoint")
    models.save_model(out, net, physics=ct())
    return str(out)


@pytest.mark.parametrize("change, message", [
    (["model.prior=NOT_A_DENOISER"], "not a noise-conditional denoiser"),
    (["model.prior=MISSING"], "no trained model"),
    (["model.sigma_start=0.5"], "sigma_max 0.3"),
    (["model.depth=2"], "depth = 2 but prior pretrained:denoiser has depth = 4"),
    (["training.curriculum={size: 32, steps: 2}"], "curriculum.size must be below data.size"),
    (["training.curriculum={size: 16, steps: 2}", "training.supervision=mc"], "needs the images x"),
])
def test_a_mismatched_prior_or_curriculum_is_one_line_at_config_check(change, message, not_a_denoiser, tmp_path,
                                                                      capsys):
    change = [c.replace("NOT_A_DENOISER", not_a_denoiser).replace("MISSING", str(tmp_path / "none")) for c in change]
    for cmd in (["config", "--check", "-"], ["train", "--quiet", "--out", str(tmp_path / "run")]):
        if cmd[0] == "config":
            (tmp_path / "c.yaml").write_text("{}\n")
            cmd = ["config", "--check", str(tmp_path / "c.yaml")]
        assert main(cmd + sets(*TASK, *KIND, *change)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("invmap: error:") and message in err[0], err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ training
def test_train_with_the_curriculum_then_fine_tune_on_another_task(tmp_path, monkeypatch, caplog):
    """The first steps see 16² images and a K rebuilt for them, the rest 32²; a fine-tuning run
    from it on another geometry names the first difference and records it."""
    seen = []

    class Spy(Curriculum):
        def batch(self, x, physics, step):
            z, xs, ps = super().batch(x, physics, step)
            seen.append((step, tuple(xs.shape[-2:]), tuple(ps.operator.in_shape), tuple(z.shape[-2:])))
            return z, xs, ps

    monkeypatch.setattr(loop_mod, "Curriculum", Spy)
    cfg = load_config(None, TASK + KIND + ["model.tune=false", "training.epochs=2", "training.lr=1e-4",
                                           "training.curriculum={size: 16, steps: 3}",
                                           "training.snapshots=[0.0001]", "training.snapshot_clock=cpu"])
    res = train(cfg, tmp_path / "a", progress=False)
    assert res.steps == 4 and [s[0] for s in seen] == [0, 1, 2]
    assert all(s[1] == s[2] == (16, 16) for s in seen) and all(s[3][0] == 12 for s in seen)  # 12 views of 16²
    snap = json.loads((tmp_path / "a" / "snapshots" / "0.0001min" / "model.json").read_text())
    assert snap["snapshot_clock"] == "cpu" and snap["cpu_seconds"] >= 0.006
    caplog.set_level(logging.WARNING)
    ft = load_config(None, TASK + KIND + ["model.tune=false", "operator.angles=8", f"training.init={tmp_path / 'a'}"])
    train(ft, tmp_path / "b", progress=False)
    note = [r.getMessage() for r in caplog.records if "another task" in r.getMessage()]
    assert len(note) == 1 and "physics.operator.params.angles 12 there, 8 here" in note[0]
    init = json.loads((tmp_path / "b" / "model.json").read_text())["init"]
    assert init["task_difference"] == {"key": "physics.operator.params.angles", "was": 12, "now": 8}


def test_the_curriculum_simulates_at_its_size():
    phys = ct()
    cfg = load_config(None, TASK + ["training.curriculum={size: 16, steps: 5}"])
    cur = Curriculum(cfg, models.build_kind("unfolded", **TINY))
    x, _ = pairs(phys, b=2)
    z, xs, ps = cur.batch(x, phys, 0)
    torch.testing.assert_close(xs, torch.nn.functional.avg_pool2d(x, 2))
    assert tuple(ps.operator.in_shape) == (16, 16) and ps.operator.out_shape[0] == 12  # 12 views of 16² images
    clean = ps.operator(xs)
    rel = float((z - clean).pow(2).mean().sqrt() / clean.pow(2).mean().sqrt())
    assert 0.002 < rel < 0.05  # 1% relative noise, drawn per step
    z2, _, _ = cur.batch(x, phys, 0)
    torch.testing.assert_close(z, z2)  # seeded by the step: a resumed run draws the same
    assert cur.active(4) and not cur.active(5)


@pytest.mark.parametrize("edit, message", [
    (lambda k: k["params"].update(iterations=10**9), "iterations"),
    (lambda k: k["params"].update(depth=3), "does not match architecture 'unfolded'"),
    (lambda k: k["params"].update(sigma_start=0.9), "sigma_max 0.3"),
    (lambda k: k["params"].update(shared=False), "does not match architecture 'unfolded'"),
    (lambda k: k["params"].update(algorithm="admm"), "algorithm"),
])
def test_a_tampered_model_json_is_one_line_and_reconstructs_nothing(edit, message, tmp_path, capsys):
    import numpy as np

    run = tmp_path / "run"
    models.save_model(run, models.build_kind("unfolded", **TINY), {"name": "t"}, physics=ct())
    doc = json.loads((run / "model.json").read_text())
    edit(doc["kind"])
    (run / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message) as e:
        models.load_model(run)
    assert "\n" not in str(e.value)
    np.save(tmp_path / "x.npy", np.zeros((SIZE, SIZE), dtype=np.float32))
    assert main(["reconstruct", "--model", str(run), "--input", str(tmp_path / "x.npy"), "--simulate",
                 "--output", str(tmp_path / "out.npy")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error:") and not (tmp_path / "out.npy").exists()
