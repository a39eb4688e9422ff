"""Hardening: no result given wrong silently (issue 'Hardening', items 1–4 of its first group).

Each test builds its hostile situation itself on a tiny run (32×32 CT, a 2-level UNet, one
epoch) and checks the CLI either does the right thing and says so, or ends with one line
``invmap: error: …``, exit 2, and every file of the run unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from invmap import cli
from invmap.config import load_config
from invmap.evaluation.experiment import Experiment
from invmap.evaluation import runs
from invmap.evaluation.evaluate import read_metrics

TINY = {
    "name": "tiny",
    "data": {"size": 32, "train": 8, "val": 4, "test": 4},
    "operator": {"name": "tomography", "angles": 12},
    "model": {"name": "unet", "base_channels": 4, "depth": 2},
    "training": {"epochs": 1, "batch_size": 4},
    "evaluation": {"methods": ["fbp", "adjoint", "model"]},
}


def snapshot(d: Path) -> dict[str, bytes]:
    """Every file under `d` with its bytes."""
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def one_line_error(capsys, rc: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith("invmap: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run made by `invmap train` (no baselines.json), trained once for the module."""
    d = tmp_path_factory.mktemp("trained")
    cfg = d / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    assert cli.main(["train", str(cfg), "--out", str(d / "run"), "--quiet"]) == 0
    assert not (d / "run" / "baselines.json").exists()
    return d / "run"


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "run"))


# -- 1. baselines: tuned when missing, never labelled tuned when they were not ------------

@pytest.mark.parametrize("command", [["evaluate", "--no-figure"], ["stress", "--shifts", "noise", "--n", "2"]])
def test_missing_baselines_are_tuned_announced_and_recorded(run, command, capsys):
    assert cli.main([command[0], str(run), *command[1:]]) == 0
    err = capsys.readouterr().err
    announced = [ln for ln in err.splitlines() if "baselines.json" in ln]
    assert len(announced) == 1 and "tuning them now" in announced[0] and "fbp" in announced[0]
    entries = runs.read_baselines(run)
    assert set(entries) == {"fbp", "adjoint", "tv"}  # tv: the model's trust reference (evaluation.trust_reference)
    assert runs.is_tuned(entries["fbp"]) and "tuned on" in entries["fbp"]["how"]
    assert not runs.is_tuned(entries["adjoint"]) and "not tuned" in entries["adjoint"]["how"]
    # the parameters used are those the run's own validation pairs select
    cfg = load_config(run / "config.yaml")
    again = runs.tune_baselines(Experiment(cfg), ["fbp"])
    assert entries["fbp"]["params"] == again["fbp"]["params"]
    if command[0] == "stress":
        note = json.loads((run / "stress.json").read_text())["settings"]["baselines"]
        assert note == runs.baselines_note(entries) and "adjoint: default parameters, not tuned" in note


def test_recorded_baselines_are_reused_not_retuned(run, capsys):
    entries = {"fbp": {"params": {"filter": "cosine", "cutoff": 0.5}, "how": "tuned on 4 validation pairs",
                       "val_psnr": 1.0},
               "adjoint": {"params": {}, "how": "default parameters, not tuned (nothing to tune)"}}
    (run / "baselines.json").write_text(json.dumps(entries))
    before = (run / "baselines.json").read_bytes()
    assert cli.main(["evaluate", str(run), "--no-figure"]) == 0
    announced = [ln for ln in capsys.readouterr().err.splitlines() if "tuning them now" in ln]
    assert all("fbp" not in ln and "adjoint" not in ln for ln in announced)  # only the trust reference, tv
    after = runs.read_baselines(run)
    assert {k: after[k] for k in entries} == entries and before != b""


def test_untuned_baselines_are_never_called_tuned(run, capsys):
    """evaluation.tune off: the defaults are used, and the report and stress study say so."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["evaluation"]["tune"] = False
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert cli.main(["stress", str(run), "--shifts", "noise", "--n", "2"]) == 0
    err = capsys.readouterr().err
    assert "using their default parameters (evaluation.tune is off)" in err
    entries = runs.read_baselines(run)
    assert not any(runs.is_tuned(e) for e in entries.values())
    note = json.loads((run / "stress.json").read_text())["settings"]["baselines"]
    assert "tuned on validation" not in note and "fbp: default parameters, not tuned (evaluation.tune is off)" in note
    html = (run / "report.html").read_text()
    assert "tuned at the training conditions" not in html and "tuned on validation pairs" not in html
    assert "not tuned (evaluation.tune is off)" in html
    # once tuning is on again, those entries are tuned (and said so)
    cfg["evaluation"]["tune"] = True
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert cli.main(["evaluate", str(run), "--no-figure"]) == 0
    err = capsys.readouterr().err
    assert "no tuned parameters for fbp" in err and "tuning them now" in err
    assert runs.is_tuned(runs.read_baselines(run)["fbp"])


# -- 2. evaluate --methods merges metrics.csv --------------------------------------------

def test_evaluate_some_methods_keeps_the_other_rows(run, capsys):
    assert cli.main(["evaluate", str(run), "--no-figure"]) == 0
    first = {r["method"]: r for r in read_metrics(run / "metrics.csv")}
    assert set(first) == {"fbp", "adjoint", "model"}
    assert cli.main(["evaluate", str(run), "--methods", "fbp", "--no-figure"]) == 0
    assert "kept the earlier rows of adjoint, model" in capsys.readouterr().out
    second = read_metrics(run / "metrics.csv")
    assert [r["method"] for r in second] == ["fbp", "adjoint", "model"]
    by = {r["method"]: r for r in second}
    assert by["model"] == first["model"] and by["adjoint"] == first["adjoint"]
    assert "| model |" in (run / "metrics.md").read_text()


@pytest.mark.parametrize("text", ["garbage\n", "method,n\nfbp,zz\n", "method,n,psnr_mean\nfbp,3\n", "\xff\xfe"])
def test_a_damaged_metrics_table_is_refused_not_replaced(run, capsys, text):
    (run / "metrics.csv").write_text(text, encoding="latin-1")
    before = snapshot(run)
    rc = cli.main(["evaluate", str(run), "--methods", "fbp", "--no-figure"])
    assert "not a metrics table" in one_line_error(capsys, rc)
    assert snapshot(run) == before


@pytest.mark.parametrize("text", ["{", "[1, 2]", '{"fbp": 3}', '{"fbp": {"params": [1]}}'])
@pytest.mark.parametrize("command", [["evaluate", "--no-figure"], ["stress", "--shifts", "noise", "--n", "2"]])
def test_a_damaged_baselines_file_is_refused_not_replaced(run, capsys, text, command):
    (run / "baselines.json").write_text(text)
    before = snapshot(run)
    rc = cli.main([command[0], str(run), *command[1:]])
    assert "baselines.json" in one_line_error(capsys, rc)
    assert snapshot(run) == before


def test_partial_evaluation_leaves_the_full_figure(run, capsys):
    assert cli.main(["evaluate", str(run)]) == 0
    fig = run / "figures" / "reconstructions.png"
    before = fig.read_bytes()
    assert cli.main(["evaluate", str(run), "--methods", "fbp"]) == 0
    assert fig.read_bytes() == before


# -- 3. a failed resume changes nothing; a config that does not describe the model fails --

def test_incompatible_resume_writes_nothing(run, capsys):
    before = snapshot(run)
    rc = cli.main(["train", "--out", str(run), "--resume", "--set", "model.base_channels=8", "--quiet"])
    assert "model.base_channels would change from 4 to 8" in one_line_error(capsys, rc)
    assert snapshot(run) == before
    # the run still resumes with compatible changes
    assert cli.main(["train", "--out", str(run), "--resume", "--set", "training.epochs=2", "--quiet"]) == 0


def test_resume_with_a_checkpoint_of_another_network_writes_nothing(run, capsys):
    """config.yaml edited by hand after training: the checkpoint's tensors decide."""
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["base_channels"] = 8
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = snapshot(run)
    rc = cli.main(["train", "--out", str(run), "--resume", "--quiet"])
    msg = one_line_error(capsys, rc)
    assert "checkpoint" in msg and "different models" in msg
    assert snapshot(run) == before


@pytest.mark.parametrize("change", [["--set", "data.size=48"], ["--set", "model.base_channels=8"],
                                    ["--set", "model.input=adjoint"]])
def test_evaluate_refuses_a_config_that_does_not_describe_the_model(run, change, capsys):
    before = snapshot(run)
    rc = cli.main(["evaluate", str(run), *change])
    msg = one_line_error(capsys, rc)
    assert "does not describe this model" in msg
    assert snapshot(run) == before


def test_stress_refuses_a_rewritten_config(run, capsys):
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"]["size"] = 48
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    before = snapshot(run)
    rc = cli.main(["stress", str(run), "--shifts", "noise", "--n", "2"])
    assert "does not describe this model" in one_line_error(capsys, rc)
    assert snapshot(run) == before


# -- 4. flipped weight bytes, multi-page TIFF, duplicate YAML keys, config --check = train --

def _saved_model(d: Path) -> Path:
    from invmap import models, noise, operators
    from invmap.physics import Physics

    phys = Physics(operators.build("tomography", image_shape=(32, 32), angles=8), noise.build("none"))
    recon = models.LearnedReconstructor(models.build("cnn", depth=1, channels=2), input="adjoint")
    models.save_model(d, recon, {"name": "t"}, physics=phys)
    return d


@pytest.mark.parametrize("where", [-1, -5, -40])
def test_flipped_weight_bytes_are_refused(tmp_path, capsys, where):
    import numpy as np

    from invmap import models

    d = _saved_model(tmp_path / "run")
    models.load_model(d)  # intact: loads
    w = bytearray((d / "model.safetensors").read_bytes())
    w[where] ^= 0x10  # one bit of the last tensor's data
    (d / "model.safetensors").write_bytes(bytes(w))
    with pytest.raises(ValueError, match="SHA-256"):
        models.load_model(d)
    np.save(tmp_path / "x.npy", np.zeros((32, 32), np.float32))
    rc = cli.main(["reconstruct", "--model", str(d), "--input", str(tmp_path / "x.npy"), "--simulate",
                   "--output", str(tmp_path / "out.npy")])
    assert "SHA-256" in one_line_error(capsys, rc)
    assert not (tmp_path / "out.npy").exists()


def test_recorded_digest_is_the_digest_of_the_weights(tmp_path):
    from safetensors.torch import load_file

    from invmap.models.io import weights_digest

    d = _saved_model(tmp_path / "run")
    doc = json.loads((d / "model.json").read_text())
    assert doc["weights_sha256"] == weights_digest(load_file(str(d / "model.safetensors")))
    doc["weights_sha256"] = "0" * 64
    (d / "model.json").write_text(json.dumps(doc))
    from invmap import models

    with pytest.raises(ValueError, match="SHA-256"):
        models.load_model(d)


def test_multi_page_tiff_is_an_error(tmp_path, capsys):
    import numpy as np
    import tifffile

    from invmap.data.io import read_image

    stack = tmp_path / "stack.tif"
    with tifffile.TiffWriter(stack) as t:
        for v in (10, 200, 90):
            t.write(np.full((32, 32), v, np.uint8), contiguous=False)
    with pytest.raises(ValueError, match="holds 3 pages"):
        read_image(stack)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "name": "t"}))
    rc = cli.main(["reconstruct", "--method", "adjoint", "--task", str(cfg), "--input", str(stack), "--simulate",
                   "--output", str(tmp_path / "x.npy")])
    assert "holds 3 pages" in one_line_error(capsys, rc)
    assert not (tmp_path / "x.npy").exists()
    single = tmp_path / "one.tif"
    tifffile.imwrite(single, np.full((32, 32), 7, np.uint8))
    assert read_image(single)[0].shape == (32, 32)


@pytest.mark.parametrize("text, key", [("training:\n  lr: 0.1\n  epochs: 3\n  lr: 0.5\n", "lr"),
                                       ("name: a\nseed: 1\nname: b\n", "name"),
                                       ("model: {name: unet, depth: 2, depth: 3}\n", "depth")])
def test_duplicate_yaml_keys_are_an_error(tmp_path, monkeypatch, capsys, text, key):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dup.yaml").write_text(text)
    for command in (["config", "--check", "dup.yaml"], ["train", "dup.yaml", "--quiet"]):
        msg = one_line_error(capsys, cli.main(command))
        assert f"duplicate key '{key}'" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dup.yaml"]


def test_yaml_merge_keys_may_be_overridden():
    from invmap.config import load_yaml as _yaml_load

    assert _yaml_load("b: &b {lr: 0.1, epochs: 2}\nt:\n  <<: *b\n  lr: 0.5\n")["t"] == {"lr": 0.5, "epochs": 2}


BAD = [("model.base_channels=-4", "'base_channels' must be >= 1"),
       ("model.base_channels=0", "'base_channels' must be >= 1"),
       ("model.depth=50", "'depth'"), ("operator.angles=0", "angles"),
       ("data.source=folder:{tmp}/missing", "does not exist"), ("model.input=measurement", "same size")]
if not __import__("torch").cuda.is_available():
    BAD.append(("training.device=cuda", "no CUDA device"))


@pytest.mark.parametrize("override, words", BAD, ids=[b[0].split("=")[0] + "=" + b[0].split("=")[1][:8] for b in BAD])
def test_config_check_rejects_what_train_rejects(tmp_path, monkeypatch, capsys, override, words):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    override = override.format(tmp=tmp_path)
    checked = one_line_error(capsys, cli.main(["config", "--check", str(cfg), "--set", override]))
    trained = one_line_error(capsys, cli.main(["train", str(cfg), "--set", override, "--out", "r", "--quiet"]))
    assert checked == trained and words in checked
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


def test_config_check_allocates_nothing(monkeypatch):
    """A 512² CT config with a wide UNet: checked on the meta device, no CT matrix built
    (the memory budget, where there is one, is lifted: this is about what is allocated)."""
    from invmap.operators import _geometry
    from invmap.training.setup import build_reconstructor, check_config

    monkeypatch.setenv("INVMAP_MAX_MEMORY", "1000T")

    cfg = load_config(None, ["data.size=512", "operator.angles=720", "model.base_channels=512"])
    builds = _geometry.BUILDS["count"]
    check_config(cfg)
    assert _geometry.BUILDS["count"] == builds
    import torch

    recon = build_reconstructor(cfg, cfg.physics(), torch.device("meta"))
    assert all(p.is_meta for p in recon.parameters()) and sum(p.numel() for p in recon.parameters()) > 10**8


def _input_cases():
    from invmap import operators
    from invmap.models.reconstructor import INPUTS

    return [(op, inp) for op in operators.names() for inp in INPUTS]


@pytest.mark.parametrize("op_name, strategy", _input_cases())
def test_input_shape_matches_preprocess(op_name, strategy):
    """The shape the network is sized from (no computation) is the shape of its real input."""
    import torch

    from invmap import models, noise, operators
    from invmap.physics import Physics

    phys = Physics(operators.build(op_name, image_shape=(24, 20)), noise.build("none"))
    probe = models.LearnedReconstructor(torch.nn.Identity(), input=strategy, pinv_iters=2)
    y = phys.operator(torch.rand(1, 1, 24, 20))
    try:
        z = probe.preprocess(y, phys)
    except ValueError as e:  # e.g. fbp of a non-CT operator: input_shape says the same
        with pytest.raises(ValueError, match=str(e)[:20]):
            probe.input_shape(phys)
        return
    assert probe.input_shape(phys) == tuple(z.shape[1:])


@pytest.mark.processes
def test_config_check_rejects_a_network_too_big_like_train(tmp_path):
    """The memory budget (`invmap.budget`) refuses the network before allocating: `config
    --check` and `train` say the same line (run by the CLI's `main` in one child process with an
    address-space cap, tests/_campaign_child.py, so a regression fails instead of taking the
    machine's memory)."""
    pytest.importorskip("invmap.budget")
    import os
    import resource
    import subprocess
    import sys

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(TINY))

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))

    env = {**os.environ, "INVMAP_MAX_MEMORY": "2G"}
    overrides = ["model.base_channels=100000", "model.base_channels=3000"]
    commands = {"config": ["config", "--check", str(cfg)], "train": ["train", str(cfg), "--out", str(tmp_path / "r"), "--quiet"]}
    cases = [[f"{o} {c}", [*argv, "--set", o]] for o in overrides for c, argv in commands.items()]
    child = Path(__file__).with_name("_campaign_child.py")
    p = subprocess.run([sys.executable, str(child), str(tmp_path), json.dumps(cases)], capture_output=True, text=True,
                       timeout=600, preexec_fn=cap, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    done = {r["name"]: r for r in json.loads(p.stdout.strip().splitlines()[-1])}
    for o in overrides:
        outs = []
        for c in commands:
            r = done[f"{o} {c}"]
            err = r["stderr"].strip().splitlines()
            assert r["rc"] == 2 and len(err) == 1 and err[0].startswith("invmap: error: "), (o, c, r["stderr"][-500:])
            outs.append(err[0])
        assert outs[0] == outs[1] and "memory" in outs[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]
