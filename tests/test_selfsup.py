"""Learning from y alone (`invmap.selfsup`): the losses' mathematics (MC blind to the null space,
SURE unbiased, EI's groups and the splits asked of the operator), training with each loss for a
post-processing and a K-inside model without reading x, resume = uninterrupted, drawn physics,
and the one-line refusals of a loss the task cannot serve."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import invmap.noise as noise_mod
import invmap.operators as ops
from invmap.cli import main
from invmap.config import load_config
from invmap.physics import Physics
from invmap.selfsup import GROUPS, SelfSupervised, measurement_consistency, noise_weights, sure
from invmap.selfsup.losses import mean_gain
from invmap.selfsup.projected import projected_sure, pseudo_inverse
from invmap.selfsup import transforms
from invmap.training import load_checkpoint, read_log, train
from invmap.training import setup as training_setup

LOSSES = ("mc", "ei", "sure", "split")
# inpainting of 32×32 ellipses (half the pixels missing) with a tiny residual CNN on Kᵀy: every
# loss applies (rotations for EI, pixels to split, Gaussian noise of known σ for SURE)
TINY = ["operator.name=inpainting", "noise.relative=null", "noise.sigma=0.05",
        "model.name=cnn", "model.input=adjoint", "model.channels=8", "model.depth=3", "model.residual=true",
        "data.size=32", "data.train=16", "data.val=8", "data.simulation=crime", "training.epochs=3",
        "training.batch_size=4", "training.max_minutes=0", "training.lr=3e-3", "training.warmup_epochs=1",
        "training.threads=1", "training.amp=off"]
# every trainable reconstructor kind (K inside every iteration), tiny, in place of the CNN
KINDS = {"lgd": "{name: lgd, iterations: 2, memory: 2, channels: 4, depth: 2}",
         "lpd": "{name: lpd, iterations: 2, primal: 2, dual: 2, channels: 4, depth: 2}",
         "unrolled": "{name: unrolled, iterations: 2, channels: 4, depth: 2}",
         "denoiser": "{name: denoiser, depth: 2, base_channels: 4}",
         "unfolded": "{name: unfolded, prior: null, iterations: 2, depth: 2, base_channels: 4, cg_iters: 2}"}
UNTRAINED = {"pnp"}  # a fixed denoiser whose strength is fitted on x: refused (below)


def tiny(*more: str, kind_file=None, kind: str = "unrolled"):
    """The tiny config; with `kind_file` (a path to write to), the model-based `kind` in place of the CNN."""
    if kind_file is None:
        return load_config(None, TINY + list(more))
    kind_file.write_text(f"model: {KINDS[kind]}\n")
    return load_config(kind_file, [s for s in TINY if not s.startswith("model.")] + list(more))


def test_every_kind_is_covered():
    from invmap.models import KINDS as registry

    assert set(KINDS) | UNTRAINED == set(registry.names())


def images(b: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    from invmap.data import build_source

    src = build_source("ellipses", size=size, count=b, seed=seed)
    return src.batch(list(range(b)))


# ------------------------------------------------------------------ the losses' mathematics

def test_measurement_consistency_is_blind_to_the_null_space():
    """MC(x̂ + u) = MC(x̂) for every u with K u = 0 (here: any image on the missing pixels), while
    an error K sees raises it: what MC alone cannot learn."""
    K = ops.build("inpainting", image_shape=(32, 32), missing=0.5)
    phys = Physics(K, noise_mod.build("none"))
    x = images()
    y = K(x)
    u = torch.rand_like(x) * (1 - K.mask.float())  # K u = 0
    assert float(measurement_consistency(x, y, phys).abs().max()) == 0.0
    assert float(measurement_consistency(x + u, y, phys).abs().max()) == 0.0
    assert bool((measurement_consistency(x + 0.1 * K.mask.float(), y, phys) > 0).all())


def test_noise_weights_follow_the_noise_model():
    """Gaussian noise of one σ: W = I on the measured entries (0 off them); Poisson: W ∝ 1/Kx."""
    K = ops.build("inpainting", image_shape=(32, 32), missing=0.5)
    y = K(images()) + 0.1
    w = noise_weights(y, Physics(K, noise_mod.build("gaussian", sigma=0.05)))
    assert torch.allclose(w, K.measured().float().expand_as(w), atol=1e-6)
    wp = noise_weights(y, Physics(ops.build("identity", image_shape=(32, 32)), noise_mod.build("poisson", photons=100)))
    ratio = wp * y
    assert float((ratio / ratio.mean(dim=(-2, -1), keepdim=True) - 1).abs().max()) < 1e-5


@pytest.mark.parametrize("op", ["identity", "inpainting", "mri"])
def test_sure_is_unbiased_for_the_error_k_sees(op):
    """Averaged over noise draws, SURE equals the true ‖K(x̂ − x)‖²/‖K‖_F² of a fixed map
    x̂ = a·Kᵀy (for K = I: the MSE itself), within 4 standard errors."""
    K = ops.build(op, image_shape=(32, 32))
    phys = Physics(K, noise_mod.build("gaussian", sigma=0.1))
    x = images(16).repeat(4, 1, 1, 1)
    g = torch.Generator().manual_seed(1)
    y = torch.cat([phys.noisy(K(x[i:i + 1]), torch.Generator().manual_seed(100 + i)) for i in range(len(x))])

    def call(v, p):
        return 0.7 * p.operator.adjoint(v)

    x_hat = call(y, phys)
    est = sure(call, y, phys, x_hat, [torch.Generator().manual_seed(int(torch.randint(1 << 30, (1,), generator=g)))
                                      for _ in range(len(x))])
    e = K(x_hat - x)
    e = torch.view_as_real(e) if e.is_complex() else e
    true = (e ** 2).flatten(1).sum(1) / (32 * 32 * mean_gain(K))
    d = est - true
    assert abs(float(d.mean())) < 4 * float(d.std()) / len(d) ** 0.5 + 1e-9, (float(d.mean()), float(d.std()))
    assert float(true.mean()) > 10 * float(d.std()) / len(d) ** 0.5  # the test can tell a wrong estimate


@pytest.mark.parametrize("op", ["tomography", "inpainting", "mri", "identity"])
def test_projected_sure_is_unbiased_for_the_projected_error(op):
    """Averaged over noise draws, projected SURE equals the true ‖P(x̂ − x)‖²/n (P = K⁺K, the
    projection onto the range of Kᵀ) of a fixed nonlinear map x̂ = tanh(3·Kᵀy)/2, within 4 standard
    errors, for a non-invertible K (sparse-view CT through CGLS; masks where KKᵀ is diagonal); the
    error in the null space of K, which no y reveals, is not in it."""
    size = 12
    K = ops.build(op, image_shape=(size, size), **({"angles": 5} if op == "tomography" else {}))
    phys = Physics(K, noise_mod.build("gaussian", sigma=0.05))
    n = 384
    x = images(8, size).repeat(n // 8, 1, 1, 1).double()
    y = torch.cat([phys.noisy(K(x[i:i + 1]), torch.Generator().manual_seed(100 + i)) for i in range(n)])

    def call(v, p):
        return torch.tanh(3 * p.operator.adjoint(v)) / 2

    x_hat = call(y, phys)
    est = projected_sure(call, y, phys, [torch.Generator().manual_seed(7000 + i) for i in range(n)], x_hat=x_hat)
    proj = pseudo_inverse(K, K(x_hat - x), max_iter=500, tol=1e-12)
    true = (proj ** 2).flatten(1).sum(1) / size ** 2
    d = est - true
    assert abs(float(d.mean())) < 4 * float(d.std()) / n ** 0.5 + 1e-12, (float(d.mean()), float(d.std()))
    assert float(true.mean()) > 10 * float(d.std()) / n ** 0.5  # the test can tell a wrong estimate
    mse = ((x_hat - x) ** 2).flatten(1).mean(1)
    if op != "identity":  # the null-space error is real and missing from what is estimated
        assert float(mse.mean() - true.mean()) > 1e-3
    else:
        assert torch.allclose(true, mse)


def test_transform_draws_are_group_elements_other_than_the_identity():
    x = images(2)
    g = torch.Generator().manual_seed(0)
    for name in GROUPS:
        for _ in range(20):
            e = transforms.draw(name, tuple(x.shape), g)
            t = transforms.apply(name, e, x)
            assert t.shape == x.shape and not torch.equal(t, x)
            assert torch.equal(t.flatten(1).sort().values, x.flatten(1).sort().values)  # a permutation of pixels


@pytest.mark.parametrize("name", ops.names())
def test_what_each_operator_offers_the_self_supervised_losses(name):
    """Declared groups are known groups; a declared shift group commutes with K; every split is
    consistent (K_S x = take_S(K x)) and the two halves cover the measured units."""
    extra = {"angles": 12} if name in ("tomography", "fanbeam") else {}
    K = ops.build(name, image_shape=(16, 16), **extra)
    x = images(2, 16)
    groups = K.transform_groups()
    assert set(groups) <= set(GROUPS)
    if "shifts" in groups:
        T = lambda v: torch.roll(v, (3, 5), dims=(-2, -1))  # noqa: E731
        assert torch.allclose(K(T(x)), T(K(x)), atol=1e-5)
    units = K.split_units()
    if units is None:
        return
    assert tuple(units.shape) == tuple(K.out_shape)
    loss = SelfSupervised("split")
    covered = None
    for sub, take in loss._halves(K):
        assert torch.allclose(sub(x), take(K(x)), atol=1e-5)
        m = take(torch.ones_like(K(x)).abs()) if sub.out_shape == K.out_shape else None
        if m is not None:
            covered = m if covered is None else covered + m
    if covered is not None:
        measured = K.measured()
        assert torch.equal(covered[0, 0] > 0, measured if measured is not None else torch.ones_like(covered[0, 0]) > 0)


# ------------------------------------------------------------------ training from y alone

def never_read_x(monkeypatch):
    """Training pairs whose x is NaN: any loss or validation that read x would turn NaN."""
    init = training_setup.Pairs.__init__

    def poisoned(self, *a, **k):
        init(self, *a, **k)
        self.x = torch.full_like(self.x, float("nan"))

    monkeypatch.setattr(training_setup.Pairs, "__init__", poisoned)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("model", ["post-processing", *KINDS])
def test_each_loss_trains_each_kind_from_y_alone(loss, model, tmp_path, monkeypatch):
    never_read_x(monkeypatch)
    cfg = tiny(f"training.supervision={loss}", kind_file=tmp_path / "kind.yaml" if model in KINDS else None,
               kind=model)
    res = train(cfg, tmp_path / "run", progress=False)
    rows = read_log(tmp_path / "run" / "train_log.csv")
    assert set(rows[0]) == {"epoch", "step", "lr", "train_loss", "val_loss", "val_sure", "seconds"}
    assert res.supervision == loss and res.best_val_loss < res.initial_val_loss
    assert all(float(r["val_loss"]) == float(r["val_loss"]) for r in rows)  # finite: x (NaN) never entered
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["supervision"]["loss"] == loss and meta["supervision"]["reads_x"] is False
    assert "val_psnr" not in meta and meta["val_loss"] == pytest.approx(res.best_val_loss, rel=1e-5)
    assert "PSNR" not in res.summary().replace("no PSNR", "")


def test_sure_validation_estimates_the_denoising_mse(tmp_path):
    """Denoising (K = I): validation's SURE column is an estimate of the MSE of the saved model."""
    cfg = tiny("operator.name=identity", "training.supervision=sure")
    train(cfg, tmp_path / "run", progress=False)
    from invmap.models import load_model
    from invmap.training.setup import Pairs

    recon, meta = load_model(tmp_path / "run")
    val = Pairs(cfg, cfg.physics(), "val", recon, torch.device("cpu"))
    mse = []
    with torch.no_grad():
        for z, x, _ in val.epoch(val.minibatches(torch.arange(val.n), 8), 0):
            mse.append(((recon.from_input(z) - x) ** 2).flatten(1).mean(1))
    true = float(torch.cat(mse).mean())
    assert meta["val_sure"] == pytest.approx(true, rel=0.2)  # 8 images, one probe each (measured: 3% apart)


@pytest.mark.parametrize("loss", LOSSES)
def test_resume_equals_uninterrupted(loss, tmp_path):
    cfg = tiny(f"training.supervision={loss}")
    ref = train(cfg, tmp_path / "ref", progress=False)
    out = tmp_path / "resumed"

    def interrupt(info):
        if info["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, out, progress=False, hooks=[interrupt])
    assert load_checkpoint(out)["epoch"] == 1
    res = train(cfg, out, resume=True, progress=False)
    assert (res.steps, res.best_epoch) == (ref.steps, ref.best_epoch)
    a, b = load_file(str(ref.run_dir / "checkpoint.safetensors")), load_file(str(out / "checkpoint.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read_log(ref.run_dir / "train_log.csv") == [
        {**r, "seconds": ra["seconds"]} for r, ra in zip(read_log(out / "train_log.csv"), read_log(ref.run_dir / "train_log.csv"))]


def test_resume_cannot_change_the_supervision(tmp_path):
    cfg = tiny("training.supervision=mc", "training.epochs=1")
    train(cfg, tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "checkpoint.json").read_bytes()
    with pytest.raises(ValueError, match="training.supervision would change"):
        train(tiny("training.supervision=ei", "training.epochs=2"), tmp_path / "run", resume=True, progress=False)
    assert (tmp_path / "run" / "checkpoint.json").read_bytes() == before


@pytest.mark.parametrize("loss", ["ei", "split"])
def test_drawn_physics_train_from_y_alone(loss, tmp_path, monkeypatch):
    """Each sample's own drawn mask: the loss sees every minibatch with its shared K."""
    never_read_x(monkeypatch)
    cfg = tiny(f"training.supervision={loss}", "operator.missing={choice: [0.3, 0.5]}")
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.best_val_loss < res.initial_val_loss


# ------------------------------------------------------------------ refusals: one line, nothing written

BAD = {
    "sure under poisson noise": (["training.supervision=sure", "noise.name=poisson", "noise.photons=1000"],
                                 "sure needs Gaussian noise of a known σ"),
    "sure under a drawn noise level": (["training.supervision=sure", "noise.sigma=null",
                                        "noise.sigma_range=[0.01, 0.1]"], "sure needs Gaussian noise"),
    "ei with a group the operator does not declare": (["training.supervision=ei", "training.ei_group=shifts"],
                                                      "does not declare it"),
    "ei on an operator without groups": (["training.supervision=ei", "operator.name=matrix"], "does not declare it"),
    "split with nothing to split": (["training.supervision=split", "operator.name=blur"],
                                    "nothing to split"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_loss_the_task_cannot_serve_is_one_line_before_anything_is_written(case, tmp_path, capsys):
    sets, message = BAD[case]
    other_noise = any(s.startswith("noise.name=") for s in sets)
    base = [s for s in TINY if not (other_noise and s.startswith("noise."))]
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--quiet"]
    for s in base + sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error:") and message in err[0], err
    assert not out.exists()
    with pytest.raises(ValueError, match=message):  # `invmap run` and `invmap config --check` say it too
        training_setup.check_config(load_config(None, base + sets))


def test_show_default_lists_the_supervisions(capsys):
    assert main(["config", "--show-default"]) == 0
    text = capsys.readouterr().out
    for name in ("supervision:", "ei_group:", "ei_weight:", "sure_eps:"):
        line = next(line for line in text.splitlines() if line.strip().startswith(name))
        assert "#" in line, line
    for loss in LOSSES:
        assert f"{loss}:" in text or f" {loss} " in text


@pytest.mark.parametrize("loss", ["ei", "split"])
def test_mixed_precision_runs_the_network_alone_in_bfloat16(loss, tmp_path):
    """Under ``training.amp: on`` the network runs in bfloat16 while K, Kᵀ and FBP (sparse
    products without a bfloat16 path) of the loss stay in float32."""
    cfg = tiny(f"training.supervision={loss}", "training.amp=on", "operator.name=tomography", "operator.angles=12",
               "model.input=fbp", "training.epochs=1")
    res = train(cfg, tmp_path / "run", progress=False)
    assert "bfloat16" in res.device and res.steps == 4


def test_compare_says_how_each_run_was_supervised(tmp_path, capsys):
    """`invmap compare` of a run trained from y alone against a supervised one of the same task:
    both evaluated on the test set (which has x), each run's supervision in compare.json and the page."""
    from invmap.evaluation.compare import compare_runs

    evaluation = ["evaluation.methods=[adjoint, model]", "evaluation.bound=0", "evaluation.pixel_risk=0",
                  "evaluation.zoo=false", "data.test=4", "training.epochs=1"]
    runs = {}
    for sup in ("x", "ei"):
        runs[sup] = tmp_path / sup
        train(tiny(f"training.supervision={sup}", *evaluation), runs[sup], progress=False)
        assert main(["evaluate", str(runs[sup])]) == 0
    capsys.readouterr()
    result = compare_runs([runs["x"], runs["ei"]], tmp_path / "cmp")
    said = {r["label"]: r["supervision"] for r in result["runs"]}
    assert said["x"] == "supervised: pairs (y, x)"
    assert said["ei"].startswith("self-supervised from y alone (ei") and "x never read" in said["ei"]
    page = (tmp_path / "cmp" / "compare.html").read_text()
    assert "self-supervised from y alone (ei" in page and "supervised: pairs (y, x)" in page


@pytest.mark.processes
@pytest.mark.parametrize("loss", ["ei", "split"])
def test_two_processes_learn_from_y_as_one_does(loss, tmp_path):
    """Under torchrun (``--nproc 2``) each rank takes its slice of every batch with the same
    per-step draws (g, the split half) and each sample's own noise: the weights end where one
    process ends, up to float32 summation order."""
    import os
    import subprocess
    import sys

    cfg = tiny(f"training.supervision={loss}")
    path = tmp_path / "tiny.yaml"
    path.write_text(cfg.to_yaml())
    one = train(cfg, tmp_path / "one", progress=False)
    r = subprocess.run([sys.executable, "-m", "invmap", "train", str(path), "--out", str(tmp_path / "two"), "--quiet",
                        "--nproc", "2"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "from y alone" in r.stdout and "on 2 processes" in r.stdout
    a, b = load_file(str(one.run_dir / "checkpoint.safetensors")), load_file(str(tmp_path / "two" / "checkpoint.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point()) < 1e-5


@pytest.mark.parametrize("value", ["training.supervision=pairs", "training.supervision=[ei, mc]",
                                   "training.ei_weight=nan", "training.ei_weight=-1", "training.ei_weight=1e400",
                                   "training.sure_eps=inf", "training.sure_eps=0", "training.ei_group=rotate",
                                   "training.ei_group={a: 1}"])
def test_hostile_values_of_the_new_keys_are_one_line(value, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--quiet"]
    for s in TINY + [value]:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error:") and value.split("=")[0].split(".")[1] in err[0], err
    assert not out.exists()


def test_a_model_with_nothing_to_learn_from_y_is_refused(tmp_path):
    """PnP's kind fits its strength on x before training and has no weights to train: refused."""
    train(tiny("operator.name=identity", "training.epochs=1"), tmp_path / "denoiser", progress=False)
    f = tmp_path / "pnp.yaml"
    f.write_text(f"model: {{name: pnp, denoiser: {tmp_path / 'denoiser'}, iterations: 2}}\n")
    cfg = load_config(f, [s for s in TINY if not s.startswith("model.")] + ["training.supervision=ei"])
    with pytest.raises(ValueError, match="no parameters to learn from y"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_loss_scale_is_the_mean_gain_of_k():
    """g = ‖K‖_F²/n: exactly 1 for K = I, the kept fraction for a mask, and ‖K‖_F²/n of a dense
    matrix within the error of four probes."""
    assert mean_gain(ops.build("identity", image_shape=(16, 16))) == pytest.approx(1.0, abs=1e-6)
    K = ops.build("inpainting", image_shape=(32, 32), missing=0.25)
    assert mean_gain(K) == pytest.approx(0.75, rel=0.05)
    M = ops.build("matrix", image_shape=(8, 8), m=40, seed=3)
    dense = M(torch.eye(64).reshape(64, 1, 8, 8))
    assert mean_gain(M) == pytest.approx(float((dense ** 2).sum()) / 64, rel=0.2)


# ------------------------------------------------------------------ measurements without x

def write_measurements(folder, n: int = 12, op: str = "inpainting", size: int = 32):
    """`n` noisy measurements y of ellipses as .npy files (what a scanner would give: no x)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    K = ops.build(op, image_shape=(size, size))
    phys = Physics(K, noise_mod.build("gaussian", sigma=0.05))
    y = phys.noisy(K(images(n, size, seed=5)), torch.Generator().manual_seed(0))
    for i in range(n):
        np.save(folder / f"y_{i:03d}.npy", y[i, 0].numpy())
    return folder


@pytest.mark.parametrize("loss", ["ei", "split"])
def test_training_from_a_folder_of_measurements(loss, tmp_path):
    """y from files (the last data.val validate), K and the noise from the config; the test set of
    data.source (with x) measures the result."""
    folder = write_measurements(tmp_path / "scans")
    cfg = tiny(f"training.supervision={loss}", f"data.measurements={folder}", "data.train=100", "data.val=4",
               "data.test=4", "evaluation.methods=[adjoint, model]", "evaluation.bound=0", "evaluation.pixel_risk=0",
               "evaluation.zoo=false")
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.steps == 3 * 2  # 8 training files in batches of 4, 3 epochs
    assert res.best_val_loss < res.initial_val_loss
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    rows = (tmp_path / "run" / "metrics.csv").read_text()
    assert "model" in rows


def test_training_reads_each_measurement_file_once(tmp_path, monkeypatch):
    """The check before anything is written reads the files; the training takes what it read."""
    import invmap.data.measurements as measurements

    folder = write_measurements(tmp_path / "scans", n=6)
    reads, read = [], measurements.read_bytes
    monkeypatch.setattr(measurements, "read_bytes", lambda p, what: reads.append(p.name) or read(p, what))
    train(tiny("training.supervision=mc", f"data.measurements={folder}", "data.val=2", "training.epochs=1"),
          tmp_path / "run", progress=False)
    assert sorted(reads) == sorted(f.name for f in folder.iterdir())


def test_split_mean_averages_the_network_over_the_halves_it_was_trained_on(tmp_path, capsys):
    """``split-mean``: f on each interleaved half of y (the inputs a split-trained network learned
    from), averaged; evaluated beside ``model``; an operator with nothing to split fails in one line."""
    from invmap.evaluation.resolve import RUN_METHODS
    from invmap.models import load_model
    from invmap.selfsup.halves import interleaved_halves

    cfg = tiny("training.supervision=split", "training.epochs=1", "data.test=4", "evaluation.bound=0",
               "evaluation.pixel_risk=0", "evaluation.zoo=false")
    train(cfg, tmp_path / "run", progress=False)
    model, _ = load_model(tmp_path / "run")
    phys = cfg.physics()
    y = phys.noisy(phys.operator(images(2)), torch.Generator().manual_seed(0))
    avg = RUN_METHODS["split-mean"].build(model, {})
    with torch.no_grad():
        want = sum(model(take(y), Physics(k, phys.noise)) for k, take in interleaved_halves(phys.operator)) / 2
        assert torch.allclose(avg(y, phys), want) and not torch.allclose(want, model(y, phys))
    assert main(["evaluate", str(tmp_path / "run"), "--methods", "model,split-mean", "--no-figure"]) == 0
    rows = (tmp_path / "run" / "metrics.csv").read_text()
    assert "\nsplit-mean," in rows and "\nmodel," in rows
    with pytest.raises(ValueError, match="operator 'identity' has nothing to split"):
        avg(y, Physics(ops.build("identity", image_shape=(32, 32)), phys.noise))


def _bad_folder(tmp_path, case):
    import numpy as np

    folder = write_measurements(tmp_path / "scans", n=6)
    if case == "a file of another shape":
        np.save(folder / "y_002.npy", np.zeros((16, 16), dtype=np.float32))
        return folder, "y_002.npy: shape [16, 16], but K measures [32, 32]"
    if case == "NaN values":
        a = np.load(folder / "y_001.npy")
        a[3, 4] = np.nan
        np.save(folder / "y_001.npy", a)
        np.save(folder / "y_004.npy", a)
        return folder, "y_001.npy: holds NaN or Inf"
    if case == "complex values for a real K":
        np.save(folder / "y_000.npy", np.zeros((32, 32), dtype=np.complex64))
        return folder, "y_000.npy: dtype complex64"
    if case == "not an array":
        (folder / "y_003.npy").write_bytes(b"\x00garbage" * 10)
        return folder, "y_003.npy: not a .npy array"
    if case == "an object array":
        np.save(folder / "y_003.npy", np.array([{"a": 1}] * 4, dtype=object).reshape(2, 2), allow_pickle=True)
        return folder, "y_003.npy: shape [2, 2]"
    if case == "an empty folder":
        for f in folder.iterdir():
            f.unlink()
        return folder, "holds no .npy measurements"
    if case == "too few files":
        for f in sorted(folder.iterdir())[1:]:
            f.unlink()
        return folder, "at least 5 are needed"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["a file of another shape", "NaN values", "complex values for a real K",
                                  "not an array", "an object array", "an empty folder", "too few files",
                                  "supervised", "drawn physics"])
def test_bad_measurements_are_one_line_naming_the_first_bad_file(case, tmp_path, capsys):
    if case in ("supervised", "drawn physics"):
        folder = write_measurements(tmp_path / "scans", n=6)
        more = (["training.supervision=x"] if case == "supervised" else
                ["training.supervision=mc", "operator.missing={choice: [0.3, 0.5]}"])
        message = "supervised training" if case == "supervised" else "drawn operator or noise"
    else:
        (folder, message), more = _bad_folder(tmp_path, case), ["training.supervision=mc"]
    out = tmp_path / "run"
    args = ["train", "--out", str(out), "--quiet"]
    for s in TINY + [f"data.measurements={folder}", "data.val=4"] + more:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error:") and message in err[0], err
    assert not out.exists()


def test_a_run_from_measurements_calibrates_no_bound_on_x_it_lacks(tmp_path, capsys):
    """`invmap evaluate` of a run trained from a folder of y: the PSNR bound and pixel intervals,
    calibrated on validation pairs (y, x) of the training data, are not fitted, and it says why."""
    folder = write_measurements(tmp_path / "scans")
    cfg = tiny("training.supervision=mc", f"data.measurements={folder}", "data.val=4", "data.test=4",
               "training.epochs=1", "evaluation.methods=[tv, model]", "evaluation.zoo=false",
               "evaluation.tune_grid={tv: {lam: [0.01, 0.03]}}", "data.val=4")
    train(cfg, tmp_path / "run", progress=False)
    assert main(["evaluate", str(tmp_path / "run")]) == 0
    said = capsys.readouterr()
    assert "note: no PSNR bound: this run learned from measurements without x" in said.out + said.err
    import csv

    rows = {r["method"]: r for r in csv.DictReader((tmp_path / "run" / "metrics.csv").open())}
    assert rows["model"]["psnr_bound_mean"] in ("", "nan") and rows["model"]["psnr_mean"] not in ("", "nan")
    # nor does it choose by PSNR: no zoo entry picked by its test PSNR, no zoo card of its own
    from invmap.evaluation.zoo_build import make_entry
    from invmap.evaluation.zoo_task import beside, check_psnr

    assert beside(load_config(None)) != []  # the default task has an entry, picked by its test PSNR …
    assert beside(load_config(None, [f"data.measurements={folder}", "training.supervision=ei"])) == []  # … not here
    with pytest.raises(ValueError, match="cannot become a zoo entry: it learned from measurements without x"):
        make_entry(tmp_path / "run", "mine", tmp_path / "zoo", config="c.yaml", command="c", summary="s", task="t")
    with pytest.raises(ValueError, match="no test PSNR for a zoo card"):
        check_psnr(tmp_path / "run")
    assert not (tmp_path / "zoo").exists()


def test_hdf5_observations_train_and_a_bad_file_is_one_line(tmp_path, capsys):
    """``data.measurements: hdf5:<glob>``: observation files of [N, *out_shape] frames (as LoDoPaB-CT's
    observation_*.hdf5) train like .npy files; a file whose frames do not fit K is named."""
    h5py = pytest.importorskip("h5py")
    K = ops.build("inpainting", image_shape=(32, 32))
    y = Physics(K, noise_mod.build("gaussian", sigma=0.05)).noisy(K(images(10, seed=5)), torch.Generator().manual_seed(0))
    for k, part in enumerate((y[:6], y[6:])):
        with h5py.File(tmp_path / f"observation_train_{k:03d}.hdf5", "w") as h:
            h["data"] = part[:, 0].numpy()
    spec = f"hdf5:{tmp_path}/observation_*.hdf5"
    res = train(tiny("training.supervision=ei", f"data.measurements={spec}", "data.val=3"), tmp_path / "run",
                progress=False)
    assert res.steps == 3 * 2 and res.best_val_loss < res.initial_val_loss  # 7 training frames, batches of 4
    with h5py.File(tmp_path / "observation_train_002.hdf5", "w") as h:
        h["data"] = torch.zeros(2, 16, 16).numpy()
    out = tmp_path / "bad"
    args = ["train", "--out", str(out), "--quiet"]
    for s in TINY + ["training.supervision=ei", f"data.measurements={spec}", "data.val=3"]:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "observation_train_002.hdf5: dataset 'data' is [2, 16, 16]" in err[0], err
    assert not out.exists()
