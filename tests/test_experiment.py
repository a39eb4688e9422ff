"""The experiment of a run: its physics built once, its validation and test pairs simulated
once and handed to every stage (`invmap.evaluation.experiment`)."""

from __future__ import annotations

import torch

from invmap.cli import main
from invmap.config import Config, load_config
from invmap.data import PairDataset
from invmap.evaluation.experiment import Experiment

TINY = ["data.size=32", "data.train=8", "data.val=10", "data.test=4", "training.epochs=1", "training.batch_size=4",
        "training.max_minutes=0", "evaluation.batch_size=4", "operator.name=blur", "operator.sigma=1.0",
        "model.name=cnn", "model.input=adjoint", "model.depth=2", "model.channels=4", "evaluation.zoo=false"]


def _count_simulated(monkeypatch) -> list[int]:
    """The indices PairDataset.simulate is asked for, in order."""
    seen: list[int] = []
    real = PairDataset.simulate

    def simulate(self, indices, *a, **k):
        seen.extend(int(i) for i in indices)
        return real(self, indices, *a, **k)

    monkeypatch.setattr(PairDataset, "simulate", simulate)
    return seen


def test_validation_pairs_are_simulated_once_and_shared(monkeypatch):
    cfg = load_config(None, TINY)
    whole = Experiment(cfg).val_pairs()  # all data.val pairs in one simulation
    seen = _count_simulated(monkeypatch)
    exp = Experiment(cfg)
    parts = [exp.val_pairs(3), exp.val_pairs(7), exp.val_pairs(), exp.val_pairs(3), exp.val_pairs(50)]
    assert sorted(seen) == list(range(cfg.data.val))  # each pair once, whoever asked first
    assert [p[0].shape[0] for p in parts] == [3, 7, 10, 3, 10]
    for y, x, phys in parts:
        assert phys is exp.physics  # every stage reconstructs with the one physics
        n = y.shape[0]
        torch.testing.assert_close(x, whole[1][:n], rtol=0, atol=0)
        torch.testing.assert_close(y, whole[0][:n], rtol=1e-5, atol=1e-6)  # batching only rounds differently
    y, x, _ = exp.test_pairs()
    assert exp.test_pairs()[0] is y and x.shape[0] == cfg.data.test


def test_invmap_run_builds_its_physics_once_and_each_pair_once(tmp_path, monkeypatch):
    """Tune, train, calibrate and evaluate share the experiment: the config's physics is built
    once and each validation / test pair simulated once (the training's own pairs aside)."""
    built: list[int] = []
    real = Config.physics

    def physics(self):
        built.append(1)
        return real(self)

    monkeypatch.setattr(Config, "physics", physics)
    seen = _count_simulated(monkeypatch)
    args = ["run", "--out", str(tmp_path), "--quiet", "--no-stress"]
    for s in TINY + ["evaluation.methods=[adjoint,tv,model]"]:
        args += ["--set", s]
    assert main(args) == 0
    assert len(built) == 1
    assert sorted(seen) == sorted(list(range(10)) + list(range(4)))  # validation (tune + calibrate) and test pairs
    assert len(list(tmp_path.glob("*/metrics.csv"))) == 1


def test_the_tuning_announcement_counts_the_pairs_the_split_holds(tmp_path, capsys):
    """A folder whose validation split holds 3 images: evaluating a config says it tunes on 3
    pairs (not min(8, data.val)), and the recorded entry says the same."""
    import json

    out = tmp_path / "out"
    assert main(["evaluate", _folder_config(tmp_path, [2, 3, 1]), "--methods", "tikhonov", "--n", "1", "--no-figure",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "tuning them now on 3 validation pairs" in err, err
    assert json.loads((out / "baselines.json").read_text())["tikhonov"]["how"].startswith("tuned on 3 validation pairs")


def test_an_empty_validation_split_is_one_line_and_writes_nothing(tmp_path, capsys):
    """Tuning needs validation pairs: a folder whose split holds none stops in one line, exit 2,
    before the output directory exists."""
    out = tmp_path / "out"
    assert main(["evaluate", _folder_config(tmp_path, [5, 0, 1]), "--methods", "tv", "--n", "1", "--no-figure",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error: ") and "val split is empty" in err[0]
    assert not out.exists()


def _folder_config(tmp_path, splits: list[int]) -> str:
    """A config file whose images are 6 random PNGs of a folder, split by file counts `splits`."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray((rng.random((40, 40)) * 255).astype("uint8")).save(folder / f"{i}.png")
    cfg = load_config(None, TINY + ["data.source=folder", f"data.params.path={folder}",
                                    f"data.params.splits={splits}".replace(" ", "")])
    (tmp_path / "cfg.yaml").write_text(cfg.to_yaml())
    return str(tmp_path / "cfg.yaml")
