"""Learning from real images: augmentation, mixed sources, small folders cycled, fine-tuning
(``training.init``) and reconstruction at another size than the training patches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from invmap.cli import main
from invmap.config import load_config
from invmap.data import PairDataset, build_source
from invmap.data.augment import Augmented
from invmap.data.mixture import Mixture, mix_counts
from invmap.physics import Physics, resized_physics
from invmap.training import train

CT_SLICES = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct-slices"
EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "ct-real.yaml"

#: sparse-view CT of 32² images with a tiny UNet (16 angles): seconds per run
TINY = ["operator.angles=16", "model.base_channels=4", "model.depth=2", "data.size=32", "data.train=16",
        "data.val=4", "data.test=4", "data.simulation=crime", "training.epochs=1", "training.batch_size=8",
        "training.max_minutes=0", "training.warmup_epochs=0", "training.threads=1", "evaluation.tune=false"]

AUGMENTS = {"flips": dict(flips=True), "rot90": dict(rot90=True), "zoom": dict(zoom=(1, 2)),
            "intensity": dict(intensity=0.2), "all": dict(flips=True, rot90=True, zoom=(1, 2), intensity=0.1)}


@pytest.fixture
def folder(tmp_path) -> Path:
    """Six 64×64 PNG 'slices' (smooth blobs plus a bar) in tmp_path/slices."""
    import imageio.v3 as iio

    root = tmp_path / "slices"
    root.mkdir()
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    for k in range(6):
        a = np.exp(-((xx - 0.3 - 0.07 * k) ** 2 + (yy - 0.5) ** 2) / 0.05) + 0.5 * (np.abs(yy - 0.2 - 0.1 * k) < 0.05)
        iio.imwrite(root / f"slice_{k:03d}.png", (255 * a / a.max()).astype(np.uint8))
    return root


def sources(folder: Path):
    return {"ellipses": build_source("ellipses", 32, count=6, seed=3),
            "folder": build_source(f"folder:{folder}", 32, split="train", splits=(4, 1, 1), seed=3)}


# --------------------------------------------------------------------- augmentation
@pytest.mark.parametrize("kind", sorted(AUGMENTS))
@pytest.mark.parametrize("base", ["ellipses", "folder"])
def test_augmentation_is_seeded_per_index_and_epoch(kind, base, folder):
    def make(fresh=True):
        return Augmented(sources(folder)[base], fresh=fresh, **AUGMENTS[kind])

    a, b = make(), make()
    together = a.batch([0, 1, 2, 3])
    one_by_one = torch.cat([b.batch([i]) for i in (3, 2, 1, 0)]).flip(0)
    assert torch.equal(together, one_by_one)  # same index, same image, whatever the batch and order
    plain = sources(folder)[base].batch([0, 1, 2, 3])
    assert not torch.equal(together, plain)  # something was augmented
    a.set_epoch(1)
    assert not torch.equal(a.batch([0, 1, 2, 3]), together)  # another epoch, other draws
    a.set_epoch(0)
    assert torch.equal(a.batch([0, 1, 2, 3]), together)
    fixed = make(fresh=False)
    first = fixed.batch([0, 1, 2, 3])
    fixed.set_epoch(5)
    assert torch.equal(fixed.batch([0, 1, 2, 3]), first)  # fresh=False: the same draws every epoch


@pytest.mark.parametrize("base", ["ellipses", "folder"])
def test_augmented_measurements_come_from_the_augmented_image(base, folder):
    """y = K x' + e: the fine-grid simulation of an augmented pair matches K x' (not K x)."""
    from invmap import noise, operators

    src = Augmented(sources(folder)[base], flips=True, rot90=True, zoom=(1, 2), intensity=0.1)
    physics = Physics(operators.build("tomography", image_shape=(32, 32), angles=16), noise.build("none"))
    ds = PairDataset(src, physics, simulation="fine")
    idx = list(range(4))
    yc, x = ds.clean(idx)
    assert torch.equal(x, src.batch(idx))
    k_aug = physics.operator(x)
    k_plain = physics.operator(sources(folder)[base].batch(idx))

    def rel(a, b):
        return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))

    assert rel(yc, k_aug) < 0.1 < rel(yc, k_plain)
    fine = F.avg_pool2d(src.fine(idx, 2), 2)  # the same window, flip, turn and factor on the finer grid
    assert rel(fine, x) < 0.2 < rel(fine, sources(folder)[base].batch(idx))


def test_augmentation_is_for_training_only(folder):
    with pytest.raises(ValueError, match="training images only"):
        Augmented(build_source("ellipses", 32, split="val", count=2), flips=True)
    cfg = load_config(None, [f"data.source=folder:{folder}", "data.size=32", "data.augment.flips=true",
                             "data.params={splits: [4, 1, 1]}"])
    assert isinstance(cfg.data.images("train", 0), Augmented)
    assert not isinstance(cfg.data.images("val", 0), Augmented)
    assert not isinstance(cfg.data.images("test", 0), Augmented)


# ------------------------------------------------------------------ mixed sources
@pytest.mark.parametrize("total,weights", [(100, [0.5, 0.5]), (7, [0.2, 0.3, 0.5]), (1000, [1, 3]), (5, [1.0, 0.0])])
def test_mix_counts_follow_the_weights(total, weights):
    counts = mix_counts(total, weights)
    assert sum(counts) == total
    assert all(abs(n - total * w / sum(weights)) < 1 for n, w in zip(counts, weights))


@pytest.mark.parametrize("weight", [0.25, 0.5, 0.9])
def test_mixed_sources_in_proportion_and_reproducible(weight, folder):
    cfg = load_config(None, [f"data.source=folder:{folder}", "data.size=32", "data.train=40",
                             "data.params={splits: [4, 1, 1]}",
                             f"data.mix=[{{source: ellipses, weight: {weight}, params: {{dots: 0}}}}]"])
    src = cfg.data.images("train", 0)
    assert isinstance(src, Mixture) and len(src) == 40
    parts = [src.origin(i)[0] for i in range(40)]
    assert parts.count(1) == round(40 * weight) and parts.count(0) == 40 - round(40 * weight)
    assert [p.name for p, _ in src.parts] == ["folder", "ellipses"]
    again = cfg.data.images("train", 0)
    idx = [int(i) for i in torch.randperm(40)[:12]]
    assert torch.equal(src.batch(idx), again.batch(idx))
    assert torch.equal(src.fine(idx, 2), again.fine(idx, 2))
    assert len(cfg.data.images("val", 0)) == 1  # validation: the configured source alone


def test_mix_weights_are_checked():
    with pytest.raises(ValueError, match="sum to 1.2"):
        load_config(None, ["data.mix=[{source: ellipses, weight: 0.6}, {source: shepp-logan, weight: 0.6}]"])
    with pytest.raises(ValueError, match="unknown image source 'nope'"):
        load_config(None, ["data.mix=[{source: nope, weight: 0.5}]"])


def test_mix_with_a_bad_folder_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--out", str(out), "--quiet", "--set", f"data.mix=[{{source: 'folder:{tmp_path}/none', "
                                                                 "weight: 0.5}]", *sum((["--set", s] for s in TINY), [])])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("invmap: error:") and "does not exist" in err[0]
    assert not out.exists()


def test_a_small_folder_is_cycled_to_the_training_count(folder):
    """fill: 4 files make an epoch of data.train pairs, each copy with its own noise."""
    cfg = load_config(None, TINY + [f"data.source=folder:{folder}", "data.params={splits: [4, 1, 1]}",
                                    "data.train=12"])
    src = cfg.data.images("train", 0)
    assert len(src) == 12 and torch.equal(src.batch([1]), src.batch([5]))
    physics = cfg.physics()
    ds = PairDataset(src, physics, fresh_noise=True)
    (y1, _), (y5, _) = ds[1], ds[5]
    assert not torch.equal(y1, y5)
    off = load_config(None, TINY + [f"data.source=folder:{folder}", "data.params={splits: [4, 1, 1]}",
                                    "data.train=12", "data.fill=false"])
    assert len(off.data.images("train", 0)) == 4


def test_training_on_an_augmented_mixture(folder, tmp_path):
    res = train(load_config(None, TINY + [f"data.source=folder:{folder}", "data.params={splits: [4, 1, 1]}",
                                          "data.mix=[{source: ellipses, weight: 0.5}]", "data.augment.flips=true",
                                          "data.augment.zoom=[1, 2]", "training.epochs=2"]), tmp_path / "r",
                progress=False)
    assert res.epochs == 2 and res.steps == 4 and np.isfinite(res.best_val_psnr)


# ------------------------------------------------------------------- fine-tuning
@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "base"
    train(load_config(None, TINY + ["training.epochs=2"]), out, progress=False)
    return out


def test_fine_tuning_starts_from_the_run_and_records_it(base_run, tmp_path):
    base = json.loads((base_run / "model.json").read_text())
    res = train(load_config(None, TINY + [f"training.init={base_run}", "training.lr=1e-4"]), tmp_path / "ft",
                progress=False)
    # epoch 0 of the fine-tuning run scores the starting weights on the same validation pairs
    assert res.initial_val_psnr == pytest.approx(base["val_psnr"], abs=1e-4)
    init = json.loads((tmp_path / "ft" / "model.json").read_text())["init"]
    assert init["run"] == str(base_run.resolve()) and init["weights_sha256"] == base["weights_sha256"]
    fresh = train(load_config(None, TINY + ["training.lr=1e-4", "seed=1"]), tmp_path / "new", progress=False)
    assert fresh.initial_val_psnr != pytest.approx(base["val_psnr"], abs=1e-2)


@pytest.mark.parametrize("change,message", [
    (["model.base_channels=8"], "model.base_channels = 8"),
    (["model.residual=false"], "model.residual = False"),
    (["model.input=adjoint"], "model.input = 'adjoint'"),
])
def test_fine_tuning_refuses_another_model_in_one_line(base_run, tmp_path, capsys, change, message):
    out = tmp_path / "ft"
    args = sum((["--set", s] for s in TINY + [f"training.init={base_run}"] + change), [])
    assert main(["train", "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error: training.init") and message in err[0]
    assert not out.exists()  # refused before anything was written


def test_fine_tuning_from_a_missing_or_damaged_run(base_run, tmp_path, capsys):
    args = sum((["--set", s] for s in TINY), [])
    assert main(["train", "--out", str(tmp_path / "a"), "--quiet", *args, "--set",
                 f"training.init={tmp_path / 'none'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run directory not found" in err[0]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text((base_run / "model.json").read_text())
    (bad / "model.safetensors").write_bytes(b"\x00" * 64)
    assert main(["train", "--out", str(tmp_path / "b"), "--quiet", *args, "--set", f"training.init={bad}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error:") and "safetensors" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ------------------------------------------------------ train small, reconstruct large
def save_tiny(run: Path, name: str, **params) -> None:
    from invmap import models

    torch.manual_seed(0)  # the weights and images do not depend on what ran before in this worker
    physics = load_config(None, TINY).physics()
    net = models.build_for(name, (32, 32), (32, 32), **params)
    recon = models.LearnedReconstructor(net, input="fbp")
    recon.fit_input_scale(recon.preprocess(physics.measure(torch.rand(2, 1, 32, 32), torch.Generator()), physics))
    models.save_model(run, recon, {"name": "tiny"}, physics=physics)


@pytest.mark.parametrize("size", [48, 64])
def test_a_model_trained_on_patches_reconstructs_whole_images(tmp_path, size, capsys):
    from invmap.models import load_model

    run = tmp_path / "run"
    save_tiny(run, "unet", base_channels=4, depth=2)
    x = np.random.default_rng(0).random((size, size))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "x_hat.npy"
    assert main(["reconstruct", "--model", str(run), "--size", str(size), "--input", str(tmp_path / "x.npy"),
                 "--simulate", "--output", str(out)]) == 0
    x_hat = np.load(out)
    assert x_hat.shape[-2:] == (size, size)
    recon, meta = load_model(run)
    physics = resized_physics(meta["physics"], (size, size))  # K and FBP built for the new size
    y = physics.measure(torch.from_numpy(x).float()[None, None], torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = recon(y, physics)
    assert np.allclose(x_hat.reshape(size, size), want[0, 0].numpy(), atol=1e-5)
    capsys.readouterr()


@pytest.mark.parametrize("name,params", [("mlp", {"width": 16, "depth": 1}), ("vit", {"patch_size": 8, "embed_dim": 16,
                                                                             "depth": 1, "heads": 2})])
def test_fixed_size_models_refuse_another_size_in_one_line(tmp_path, capsys, name, params):
    run = tmp_path / "run"
    save_tiny(run, name, **params)
    np.save(tmp_path / "x.npy", np.zeros((64, 64)))
    out = tmp_path / "x_hat.npy"
    assert main(["reconstruct", "--model", str(run), "--size", "64", "--input", str(tmp_path / "x.npy"),
                 "--simulate", "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error:") and not out.exists()
    assert "cannot reconstruct [64, 64]" in err[0] or "gives images [1, 64, 64]" in err[0]


def test_stress_resolution_shift_runs_a_patch_trained_model(tmp_path):
    from invmap.evaluation.stress import build_shifts, run_shifts
    from invmap.evaluation.task import condition_from_config
    from invmap.models import load_model

    save_tiny(tmp_path / "run", "unet", base_channels=4, depth=2)
    recon, _ = load_model(tmp_path / "run")
    cfg = load_config(None, TINY)
    shifts = build_shifts(condition_from_config(cfg, n=2, simulation="crime"), ["resolution"])
    rows = run_shifts({"model": recon}, condition_from_config(cfg, n=2, simulation="crime"), shifts, trust=False)
    sizes = {r["level"] for r in rows if r["method"] == "model"}
    assert len(sizes) == len(shifts[0].levels) > 1 and not shifts[0].skipped


# ------------------------------------------------------------ the shared CT slices
@pytest.mark.skipif(not CT_SLICES.is_dir(), reason="the shared CT slices are not on this machine")
def test_ct_slices_split_by_file_in_consecutive_blocks():
    cfg = load_config(str(EXAMPLE), [f"data.source=folder:{CT_SLICES}"])
    train = cfg.data.images("train", 0)
    files = {s: cfg.data.images(s, 0).spec()["stats"]["files"] for s in ("val", "test")}
    files["train"] = train.base.parts[0][0].spec()["stats"]["files"]  # augmented, cycled folder
    names = sorted(p.name for p in CT_SLICES.iterdir())
    assert files["train"] + files["val"] + files["test"] == names  # disjoint blocks, in slice order
    assert len(cfg.data.images("train", 0)) == cfg.data.train  # cycled with their own augmentation


def test_example_config_is_valid(tmp_path):
    cfg = load_config(str(EXAMPLE), [f"data.source=folder:{tmp_path}"])
    assert cfg.data.augment.enabled() and cfg.data.fill and cfg.model.name == "unet"


def test_stress_resolution_shift_skips_a_model_with_learned_positions(tmp_path):
    from invmap.evaluation.stress import build_shifts, run_shifts
    from invmap.evaluation.task import condition_from_config
    from invmap.models import load_model

    save_tiny(tmp_path / "run", "vit", patch_size=8, embed_dim=16, depth=1, heads=2)
    recon, _ = load_model(tmp_path / "run")
    ref = condition_from_config(load_config(None, TINY), n=2, simulation="crime")
    shifts = build_shifts(ref, ["resolution"])
    rows = run_shifts({"model": recon}, ref, shifts, trust=False)
    assert {r["level"] for r in rows} == {"32×32"}  # the training size only
    assert all("cannot reconstruct" in why for why in shifts[0].skipped.values()) and shifts[0].skipped


@pytest.mark.parametrize("angles", [16, 60])
def test_fbp_input_keeps_its_scale_at_another_size(angles):
    """The network input FBP(y) of one object at 32² and 64² has the same intensities, so the
    input scale s fitted at the training size holds at the other."""
    from invmap.data.crime import smooth_object
    from invmap.variational import fbp

    means = []
    for n in (32, 64):
        x = smooth_object(n)  # the same object sampled on an n × n grid
        physics = load_config(None, [f"operator.angles={angles}", f"data.size={n}"]).physics()
        means.append(float(fbp(physics.operator(x), physics.operator).mean() / x.mean()))
    assert means[0] == pytest.approx(1.0, abs=0.05) and means[1] == pytest.approx(means[0], abs=0.05)


def test_a_huge_zoom_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    from invmap.training.setup import check_memory

    monkeypatch.setenv("INVMAP_MAX_MEMORY", "256M")
    small = [s for s in TINY if not s.startswith("operator.")]
    small += ["operator.name=identity", "model.input=adjoint", "data.size=256", "data.augment.flips=true"]
    cfg = load_config(None, small)
    check_memory(cfg, cfg.physics())  # flips alone fit
    out = tmp_path / "run"
    args = sum((["--set", s] for s in small + ["data.augment.zoom=[8]"]), [])
    assert main(["train", "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error: training") and not out.exists()
