"""Training: run files, improvement, resume = uninterrupted, determinism, NaN stop, refusal to
overwrite; every optimizer, schedule and loss; pickle-free checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from invmap.cli import main
from invmap.config import load_config
from invmap.models import load_model
from invmap.training import (LOSSES, OPTIMIZERS, SCHEDULES, Schedule, TrainingDiverged, build_loss,
                             build_optimizer, load_checkpoint, read_log, save_checkpoint, train)
from invmap.training import checkpoint as ckpt
from invmap.training import loop

# denoising (K = I) of 32×32 ellipses with a tiny residual CNN: a few seconds per run
TINY = ["operator.name=identity", "noise.relative=0.3", "model.name=cnn", "model.input=adjoint",
        "model.channels=8", "model.depth=3", "model.residual=true", "data.size=32", "data.train=16",
        "data.val=8", "data.simulation=crime", "training.epochs=3", "training.batch_size=4", "training.max_minutes=0",
        "training.lr=3e-3", "training.warmup_epochs=1", "training.threads=1"]


def tiny(*more: str):
    return load_config(None, TINY + list(more))


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted 3-epoch run, shared by several tests."""
    out = tmp_path_factory.mktemp("runs") / "ref"
    return train(tiny(), out, progress=False)


def test_run_writes_all_files_and_improves(reference):
    run = reference.run_dir
    for f in ("config.yaml", "model.safetensors", "model.json", "train_log.csv", "checkpoint.safetensors",
              "checkpoint.json"):
        assert (run / f).is_file(), f
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # atomic writes left nothing behind
    rows = read_log(run / "train_log.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert set(rows[0]) == {"epoch", "step", "lr", "train_loss", "val_psnr", "val_ssim", "seconds"}
    assert reference.epochs == 3 and reference.steps == 12 and reference.stopped == "epochs"
    assert reference.best_val_psnr > reference.initial_val_psnr + 1.0
    assert load_config(run / "config.yaml").to_dict() == tiny().to_dict()
    recon, meta = load_model(run)
    assert meta["best_epoch"] == reference.best_epoch and meta["physics"]["operator"]["name"] == "identity"
    assert meta["val_psnr"] == pytest.approx(max(float(r["val_psnr"]) for r in rows), abs=1e-3)
    # the saved model reproduces its validation score
    from invmap.training.setup import Pairs
    cfg = tiny()
    val = Pairs(cfg, cfg.physics(), "val", recon, torch.device("cpu"))
    psnr, _ = loop.validate(recon, val, 8)
    assert psnr == pytest.approx(meta["val_psnr"], abs=1e-3)


def test_tensorboard_scalars_when_installed(reference):
    """With the optional tensorboard package, the run also holds TensorBoard event files with
    the same numbers as train_log.csv (skipped when tensorboard is not installed)."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(reference.run_dir / "tensorboard"))
    ea.Reload()
    assert {"loss/train", "val/psnr", "val/ssim", "lr"} <= set(ea.Tags()["scalars"])
    rows = read_log(reference.run_dir / "train_log.csv")
    psnr = [e.value for e in ea.Scalars("val/psnr")]
    assert psnr == pytest.approx([float(r["val_psnr"]) for r in rows], abs=1e-3)
    assert [e.step for e in ea.Scalars("val/psnr")] == [int(r["step"]) for r in rows]


def test_same_seed_same_weights(reference, tmp_path):
    again = train(tiny(), tmp_path / "again", progress=False)
    a, b = weights(reference.run_dir / "model.safetensors"), weights(again.run_dir / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = train(tiny("seed=1"), tmp_path / "other", progress=False)
    c = weights(other.run_dir / "checkpoint.safetensors")
    d = weights(reference.run_dir / "checkpoint.safetensors")
    assert not all(torch.equal(c[k], d[k]) for k in c if k.startswith("s.model."))


def test_resume_equals_uninterrupted(reference, tmp_path):
    out = tmp_path / "resumed"

    def interrupt(info):
        if info["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny(), out, progress=False, hooks=[interrupt])
    assert load_checkpoint(out)["epoch"] == 1
    res = train(tiny(), out, resume=True, progress=False)
    assert (res.epochs, res.steps, res.best_epoch) == (reference.epochs, reference.steps, reference.best_epoch)
    a, b = weights(reference.run_dir / "checkpoint.safetensors"), weights(out / "checkpoint.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    ra, rb = read_log(reference.run_dir / "train_log.csv"), read_log(out / "train_log.csv")
    assert [{k: r[k] for k in ("epoch", "step", "lr", "train_loss", "val_psnr")} for r in ra] == \
           [{k: r[k] for k in ("epoch", "step", "lr", "train_loss", "val_psnr")} for r in rb]


def test_snapshots_keep_the_weights_at_their_minutes_and_survive_a_resume(tmp_path, monkeypatch):
    """``training.snapshots``: the weights when the training clock passes each minute, a loadable
    model per minute (snapshots/<m>min/); a resumed run keeps the ones taken and adds the rest."""
    out, clock = tmp_path / "snap", iter(range(10**6))
    monkeypatch.setattr(loop.time, "perf_counter", lambda: float(next(clock)))  # each call 1 s later

    def interrupt(info):
        if info["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny("training.snapshots=[0.02, 0.4, 100000]", "training.amp=off"), out, progress=False, hooks=[interrupt])
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["0.02min"]  # epoch 1 ends at ~13 s of this clock
    first = weights(out / "snapshots" / "0.02min" / "model.safetensors")
    train(tiny("training.snapshots=[0.02, 0.4, 100000]", "training.amp=off"), out, resume=True, progress=False)
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["0.02min", "0.4min"]  # 3 epochs: ~40 s
    again = weights(out / "snapshots" / "0.02min" / "model.safetensors")
    assert all(torch.equal(first[k], again[k]) for k in first)  # taken once, never overwritten
    recon, meta = load_model(out / "snapshots" / "0.4min")
    assert meta["snapshot_minutes"] == 0.4 and 24 <= meta["seconds"] and 4 < meta["step"] <= 12


@pytest.mark.parametrize("before, after, note", [("off", "on", "trained in float32 with autocast bfloat16"),
                                                 ("on", "off", "trained in autocast bfloat16 with float32")])
def test_resume_across_a_precision_change_continues_with_a_note(tmp_path, caplog, before, after, note):
    """``--resume --set training.amp=…`` (or `auto` on another kind of CPU) keeps the weights and
    says that the numbers are no longer those of an uninterrupted run; the checkpoint records
    the precision it was written with."""
    import logging

    out = tmp_path / "run"

    def interrupt(info):
        if info["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny(f"training.amp={before}"), out, progress=False, hooks=[interrupt])
    was = load_checkpoint(out)
    with caplog.at_level(logging.WARNING):
        res = train(tiny(f"training.amp={after}"), out, resume=True, progress=False)
    assert res.epochs == 3 and note in caplog.text
    now = load_checkpoint(out)
    assert now["info"]["precision"] == ("float32" if after == "off" else "autocast bfloat16")
    assert now["epoch"] == 3 and was["epoch"] == 1


def test_refuses_to_overwrite_a_run(reference):
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny(), reference.run_dir, progress=False)


@pytest.mark.parametrize("overrides,message", [(["operator.name=blur", "operator.sigma=-1"], "sigma"),
                                               (["model.name=unet", "model.depth=9"], "'depth' must be <= 8"),
                                               (["data.source=folder:BAD"], "cannot read image")])
def test_a_failed_start_leaves_no_run_directory(tmp_path, overrides, message):
    """A bad operator/model value or an unreadable image fails before any run exists: neither
    `train` nor `invmap run` leaves a half-made run directory."""
    from invmap.pipeline import RunOptions, run as run_pipeline

    bad = tmp_path / "imgs"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not a png")
    base = [o for o in TINY if not (o.startswith("model.") and "model.name=unet" in overrides)]
    cfg = load_config(None, base + ["model.input=adjoint"] + [o.replace("BAD", str(bad)) for o in overrides])
    with pytest.raises(Exception, match=message):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(Exception, match=message):
        run_pipeline(cfg, RunOptions(out=tmp_path / "runs", progress=False))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train(tiny(), tmp_path / "empty", resume=True, progress=False)


def test_nan_loss_stops_and_keeps_the_last_good_state(tmp_path, monkeypatch):
    real = loop.build_loss

    def poisoned(*a, **k):
        f, calls = real(*a, **k), [0]

        def loss(x_hat, x):
            calls[0] += 1
            v = f(x_hat, x)
            return v * math.nan if calls[0] == 6 else v  # step 6 = 2nd step of epoch 2
        return loss

    monkeypatch.setattr(loop, "build_loss", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2") as e:
        train(tiny(), out, progress=False)
    assert "\n" not in str(e.value) and "training.lr" in str(e.value)
    state = load_checkpoint(out)
    assert state["epoch"] == 1 and state["step"] == 4
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    recon, meta = load_model(out)
    assert all(torch.isfinite(p).all() for p in recon.parameters())
    assert [int(r["epoch"]) for r in read_log(out / "train_log.csv")] == [0, 1]
    monkeypatch.setattr(loop, "build_loss", real)
    res = train(tiny(), out, resume=True, progress=False)  # the kept checkpoint resumes
    assert res.epochs == 3


def test_time_budget_and_early_stopping(tmp_path):
    res = train(tiny("training.max_minutes=1e-9"), tmp_path / "t", progress=False)
    assert res.stopped == "time" and res.steps == 1
    res = train(tiny("training.lr=1e-12", "training.early_stopping_patience=1", "training.epochs=5",
                     "training.warmup_epochs=0"), tmp_path / "e", progress=False)
    assert res.stopped == "early-stopping" and res.epochs < 5


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizers_reduce_a_regression_loss(name):
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    x = torch.rand(4, 1, 8, 8)
    target = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    opt = build_optimizer(net.parameters(), name, lr=0.05 if name == "sgd" else 0.02, momentum=0.9)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = torch.mean((net(x) - target) ** 2)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules(name):
    s = Schedule(name, steps_per_epoch=10, epochs=20, warmup_epochs=2, step_size=5, gamma=0.5)
    assert s.factor(0) == pytest.approx(0.05) and s.factor(19) == pytest.approx(1.0)  # linear warm-up
    f = [s.factor(k) for k in range(200)]
    assert all(0 <= v <= 1 for v in f)
    if name == "constant":
        assert f[20:] == [1.0] * 180
    if name == "step":
        assert s.factor(49) == 1.0 and s.factor(50) == 0.5 and s.factor(199) == 0.125
    if name == "cosine":
        assert all(a >= b for a, b in zip(f[20:], f[21:])) and f[-1] < 1e-3
        timed = Schedule(name, steps_per_epoch=10, epochs=20, max_seconds=100.0)
        assert timed.factor(0, seconds=50.0) == pytest.approx(0.5) and timed.factor(0, seconds=100.0) == 0.0


def test_warm_up_may_be_a_fraction_of_an_epoch():
    s = Schedule("cosine", steps_per_epoch=250, epochs=4, warmup_epochs=0.2)  # 50 steps, not 250
    assert s.factor(0) == pytest.approx(1 / 50) and s.factor(49) == pytest.approx(1.0) and s.factor(51) < 1.0
    assert load_config(None, ["training.warmup_epochs=0.2"]).training.warmup_epochs == 0.2


@pytest.mark.parametrize("name", LOSSES)
def test_losses(name):
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    x_hat = (x + 0.1 * torch.randn_like(x)).requires_grad_()
    f = build_loss(name, ssim_weight=0.3)
    best = float(f(x, x))  # a perfect reconstruction: 0, or −100 dB for psnr (ε = 1e-10)
    assert best == pytest.approx(-100.0 if name == "psnr" else 0.0, abs=1e-4)
    v = f(x_hat, x)
    assert v.dim() == 0 and v.item() > best
    v.backward()
    assert torch.isfinite(x_hat.grad).all() and x_hat.grad.abs().sum() > 0
    if name == "ssim-mix":
        from invmap.metrics import ssim
        with torch.no_grad():
            want = 0.7 * torch.mean((x_hat - x).abs()) + 0.3 * (1 - ssim(x_hat, x).mean())
        assert v.item() == pytest.approx(want.item(), rel=1e-5)
    if name == "psnr":
        from invmap.metrics import psnr
        assert v.item() == pytest.approx(-psnr(x_hat.detach(), x, data_range=1.0).mean().item(), rel=1e-5)


def test_psnr_loss_does_not_let_the_hard_images_rule_the_batch():
    """Under mse an image with 10× the squared error pulls 10× as hard; under psnr each image's
    pull is divided by its own error, so the easy image counts as much as the hard one."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    noise = torch.randn_like(x)
    x_hat = (x + noise * torch.tensor([0.01, 0.1 ** 0.5 * 0.1]).view(2, 1, 1, 1)).requires_grad_()
    pulls = {}
    for name in ("mse", "psnr"):
        x_hat.grad = None
        build_loss(name)(x_hat, x).backward()
        g = x_hat.grad.flatten(1).norm(dim=1)
        pulls[name] = (g[1] / g[0]).item()
    assert pulls["mse"] > 3 and 0.2 < pulls["psnr"] < 0.5  # √10 ≈ 3.2 vs 1/√10 ≈ 0.32


@pytest.mark.processes
@pytest.mark.parametrize("option", ["training.optimizer=sgd", "training.optimizer=adamw", "training.schedule=step",
                                    "training.schedule=constant", "training.loss=l1", "training.loss=psnr",
                                    "training.loss=ssim-mix",
                                    "training.fresh_noise=false", "training.grad_clip=0",
                                    "training.num_workers=1", "training.amp=on", "training.amp=off"])
def test_train_with_each_option(option, tmp_path):
    res = train(tiny(option, "training.epochs=1"), tmp_path / "r", progress=False)
    assert res.epochs == 1 and math.isfinite(res.best_val_psnr)
    if option.startswith("training.amp"):  # amp on a CPU: bfloat16 autocast; validation stays float32
        assert res.device == ("cpu, autocast bfloat16" if option.endswith("on") else "cpu, float32")


def test_auto_precision_follows_the_hardware():
    from invmap.training.setup import Precision, cpu_has_native_bf16

    cpu = Precision.choose("auto", torch.device("cpu"))
    assert cpu.dtype == (torch.bfloat16 if cpu_has_native_bf16() else None) and not cpu.scaler
    assert Precision.choose("off", torch.device("cpu")).dtype is None
    assert Precision.choose("on", torch.device("cpu")).dtype == torch.bfloat16


@pytest.mark.parametrize("native", ["0", "1"])
def test_the_bf16_probe_can_be_overridden(native, monkeypatch):
    """INVMAP_CPU_BF16 makes ``auto`` behave as on the other kind of CPU (CI runs the suite both ways)."""
    from invmap.training.setup import NATIVE_BF16_ENV, Precision

    monkeypatch.setenv(NATIVE_BF16_ENV, native)
    assert Precision.choose("auto", torch.device("cpu")).dtype == (torch.bfloat16 if native == "1" else None)
    assert Precision.choose("off", torch.device("cpu")).dtype is None
    monkeypatch.setenv(NATIVE_BF16_ENV, "yes")
    with pytest.raises(ValueError, match="INVMAP_CPU_BF16 must be 0 or 1"):
        Precision.choose("auto", torch.device("cpu"))


def test_checkpoint_round_trip_without_pickles(tmp_path):
    opt_state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(2)}},
                 "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0], "foreach": None}]}
    state = {"optimizer": opt_state, "rng": ckpt.rng_state({"g": torch.Generator().manual_seed(5)}),
             "epoch": 4, "best_psnr": -math.inf}
    save_checkpoint(tmp_path, state)
    raw = (tmp_path / "checkpoint.safetensors").read_bytes()
    assert b"__reduce__" not in raw and not raw.startswith(b"\x80")  # safetensors header, not a pickle
    back = load_checkpoint(tmp_path)
    assert back["epoch"] == 4 and back["best_psnr"] == -math.inf
    assert list(back["optimizer"]["state"]) == [0]  # int keys survive
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert torch.equal(back["optimizer"]["state"][0]["exp_avg"], torch.ones(2))
    g = torch.Generator()
    ckpt.set_rng_state(back["rng"], {"g": g})
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(5)))
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == 4


def test_cli_train_and_resume(tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(tiny("training.epochs=1").to_yaml())
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 0
    assert str(out) in capsys.readouterr().out
    assert main(["train", str(cfg), "--out", str(out), "--quiet"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--set", "training.epochs=2"]) == 0
    assert load_checkpoint(out)["epoch"] == 2
    assert main(["train", "--resume", "--quiet"]) == 2
    assert "needs --out" in capsys.readouterr().err
    (out / "checkpoint.safetensors").write_bytes(b"not a checkpoint")  # corrupt: one line, exit 2
    assert main(["train", "--resume", "--out", str(out), "--quiet", "--set", "training.epochs=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error:") and "corrupt checkpoint" in err[0]
