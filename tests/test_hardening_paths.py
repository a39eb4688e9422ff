"""Hardening: every path a run reads or writes stays inside its run directory, and a user's
file is never overwritten (issue 'Hardening', item 9).

Hostile inputs are built here: configs named like paths, a model.json pointing its weights
elsewhere, a weights file that is a link out of the run, a user's config in the --out folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from invmap import cli, models
from invmap.paths import inside

TINY = {"data": {"size": 32, "train": 4, "val": 2, "test": 2}, "operator": {"name": "tomography", "angles": 8},
        "model": {"name": "cnn", "depth": 1, "channels": 2}, "training": {"epochs": 1, "batch_size": 2}}


def one_line_error(capsys, rc: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("invmap: error: "), err
    return err[0]


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# -- a config name is a name, never a path ----------------------------------------------

@pytest.mark.parametrize("name", ["../../escaped", "../escaped", "/ABS/escaped", "a/b", "..", ".", "", "a\\..\\b"])
@pytest.mark.parametrize("command", [["train", "--quiet"], ["run", "--no-stress", "--quiet", "--out", "out"],
                                     ["evaluate", "--methods", "fbp"]])
def test_config_name_cannot_leave_out(tmp_path, monkeypatch, capsys, name, command):
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    name = name.replace("/ABS", str(tmp_path))
    cfg = work / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "name": name}))
    rc = cli.main([command[0], str(cfg), *command[1:]])
    assert "must be a plain name" in one_line_error(capsys, rc)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cfg.yaml", "deep", "work"]


def test_config_name_from_set_is_checked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = cli.main(["train", "--set", "name=../../x", "--quiet"])
    assert "must be a plain name" in one_line_error(capsys, rc)
    assert list(tmp_path.iterdir()) == []


# -- model.json names its weights file: only inside its own directory ------------------

@pytest.fixture
def model_dir(tmp_path) -> Path:
    from invmap.physics import Physics
    from invmap import noise, operators

    d = tmp_path / "run"
    phys = Physics(operators.build("tomography", image_shape=(32, 32), angles=8), noise.build("none"))
    recon = models.LearnedReconstructor(models.build("cnn", depth=1, channels=2), input="adjoint")
    models.save_model(d, recon, {"name": "t"}, physics=phys)
    return d


@pytest.mark.parametrize("weights", ["/etc/passwd", "../outside.safetensors", "sub/../../outside.safetensors",
                                     "", 7, None, ["model.safetensors"]])
def test_weights_outside_the_model_directory_are_refused(model_dir, tmp_path, capsys, weights):
    (tmp_path / "outside.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    doc = json.loads((model_dir / "model.json").read_text())
    doc["weights"] = weights
    (model_dir / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="weights"):
        models.load_model(model_dir)
    np.save(tmp_path / "x.npy", np.zeros((32, 32), np.float32))
    before = tree(tmp_path)
    rc = cli.main(["reconstruct", "--model", str(model_dir), "--input", str(tmp_path / "x.npy"), "--simulate",
                   "--output", str(tmp_path / "out.npy")])
    assert "weights" in one_line_error(capsys, rc)
    assert tree(tmp_path) == before


def test_weights_link_out_of_the_run_is_refused(model_dir, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    (model_dir / "model.safetensors").rename(outside)
    os.symlink(outside, model_dir / "model.safetensors")
    with pytest.raises(ValueError, match="link that leaves"):
        models.load_model(model_dir)


def test_inside_accepts_files_of_the_directory(tmp_path):
    (tmp_path / "sub").mkdir()
    assert inside(tmp_path, "model.safetensors") == tmp_path / "model.safetensors"
    assert inside(tmp_path, "sub/w.safetensors") == tmp_path / "sub" / "w.safetensors"


# -- a user's config.yaml in the --out folder is never replaced -------------------------

def test_train_never_overwrites_the_users_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    my = tmp_path / "my"
    my.mkdir()
    text = "# my experiment, commented\n" + yaml.safe_dump({**TINY, "name": "mine"})
    (my / "config.yaml").write_text(text)
    rc = cli.main(["train", "my/config.yaml", "--out", "my", "--quiet"])
    msg = one_line_error(capsys, rc)
    assert "never replaces it" in msg and "my/run" in msg
    assert tree(my) == {"config.yaml": text.encode()}
    # also without CONFIG (the default would go over it)
    rc = cli.main(["train", "--out", "my", "--quiet"])
    one_line_error(capsys, rc)
    assert tree(my) == {"config.yaml": text.encode()}
