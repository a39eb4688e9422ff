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
    assert set(entries) == {"fbp", "adjoint"}
    assert runs.is_tuned(entries["fbp"]) and "tuned on" in entries["fbp"]["how"]
    assert not runs.is_tuned(entries["adjoint"]) and "not tuned" in entries["adjoint"]["how"]
    # the parameters used are those the run's own validation pairs select
    cfg = load_config(run / "config.yaml")
    again = runs.tune_baselines(cfg, ["fbp"])
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
    assert "tuning them now" not in capsys.readouterr().err
    assert (run / "baselines.json").read_bytes() == before


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
