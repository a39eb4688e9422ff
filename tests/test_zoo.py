"""The zoo (`invmap.zoo`): every shipped entry reproduces its card; ``pretrained:NAME`` works
wherever a run directory does; a tampered or unknown entry is one line, exit 2.

The machinery is tested on a tiny entry made here from a 1-epoch run (`make_entry` into a
temporary zoo root); the shipped entries are re-evaluated on their cards' check sets."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from invmap import zoo
from invmap.cli import main
from invmap.evaluation.zoo_task import check_psnr
from invmap.evaluation.zoo_build import learning_curve, make_entry

SHIPPED = zoo.names()
TINY = ["data.size=32", "data.train=8", "data.val=4", "data.test=4", "training.epochs=1", "training.batch_size=4",
        "training.max_minutes=0", "training.threads=1", "training.amp=off", "operator.angles=16",
        "model.name=unet", "model.depth=2", "model.base_channels=4", "evaluation.methods=[fbp,tv,model]"]


def _sets(opts):
    return [a for o in opts for a in ("--set", o)]


def _images_absent(entry: Path) -> str | None:
    """Why an entry's test images are not here (an entry of a user's folder, such as the shared real
    CT slices, which a fresh clone lacks), or None."""
    from invmap.config import load_config

    src = load_config(entry / "config.yaml").data.source
    folder = src[len("folder:"):] if src.startswith("folder:") else None
    return None if folder is None or Path(folder).is_dir() else f"its test images ({folder}) are not here"


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_entry_reproduces_its_card(name):
    card = zoo.card(name)
    d = zoo.verify(name)  # every file against its SHA-256
    if _images_absent(d):
        pytest.skip(f"{name}: {_images_absent(d)}")
    assert check_psnr(d, card["check"]["n"]) == pytest.approx(card["check"]["psnr"], abs=card["check"]["tolerance_db"])
    t = card["training"]
    assert t["steps"] > 0 and t["minutes"] > 0 and t["commit"] and t["cpu"] and Path(t["config"]).name
    scored = set(card["test"]["psnr"])
    assert {"tv", "model"} <= scored and scored & {"fbp", "adjoint"}  # beside tuned TV and the start (FBP, or Kᵀy)


def test_the_shipped_entries_fit_the_size_limit():
    assert zoo.total_bytes() <= zoo.MAX_TOTAL_BYTES


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(a tiny trained + evaluated run, a zoo root holding it as entry 'tiny')."""
    base = tmp_path_factory.mktemp("zoo")
    run, root = base / "run", base / "root"
    root.mkdir()
    assert main(["train", "--out", str(run), "--quiet", *_sets(TINY + ["training.snapshots=[0.00001]"])]) == 0
    assert main(["evaluate", str(run), "--no-figure"]) == 0
    learning_curve(run, n=4)
    make_entry(run, "tiny", root, config="(test)", command="invmap train …", summary="a test entry",
               task="ellipses 32², 16-view CT")
    return run, root


@pytest.fixture
def tiny_zoo(tiny, monkeypatch, tmp_path):
    monkeypatch.setattr(zoo, "ROOT", tiny[1])
    monkeypatch.chdir(tmp_path)
    return tiny[0]


def test_an_entry_records_its_run_and_loads_within_the_storage_rule(tiny_zoo):
    card = zoo.card("tiny")
    ckpt = json.loads((tiny_zoo / "checkpoint.json").read_text())
    assert card["training"]["steps"] == ckpt["step"] == 2 and card["training"]["precision"] == "float32"
    assert card["parameters"] > 0 and card["storage"] in ("float16", "float32")
    assert [m for m, _ in card["training"]["curve"]][0] == 0 and len(card["training"]["curve"]) == 2  # epochs 0, 1
    (snap,) = card["training"]["test_curve"]  # the weights after the first step
    assert snap["minutes"] == 0.00001 and snap["step"] == 1 and snap["n"] == 4 and math.isfinite(snap["psnr"])
    full = check_psnr(tiny_zoo)
    assert card["check"]["psnr_float32_weights"] == pytest.approx(full, abs=1e-3)
    if card["storage"] == "float16":
        assert abs(card["check"]["psnr"] - full) < 0.05
    assert check_psnr(zoo.verify("tiny")) == pytest.approx(card["check"]["psnr"], abs=1e-3)
    rows = {r.split(",")[0]: r for r in (zoo.verify("tiny") / "metrics.csv").read_text().splitlines()[1:]}
    assert set(rows) == set(card["test"]["psnr"]) == {"fbp", "tv", "model"}


def test_pretrained_works_wherever_a_run_does(tiny_zoo, tmp_path, capsys):
    import numpy as np

    np.save(tmp_path / "x.npy", np.full((32, 32), 0.5, np.float32))
    assert main(["reconstruct", "--model", "pretrained:tiny", "--simulate", "--input", "x.npy", "--output",
                 "xh.npy"]) == 0
    assert (tmp_path / "xh.npy").is_file() and (tmp_path / "xh.trust.json").is_file()
    assert main(["compare", "pretrained:tiny", str(tiny_zoo), "--out", "cmp"]) == 0
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["runs"][0]["label"] == "tiny"
    before = {p.name: zoo.sha256(p) for p in zoo.verify("tiny").iterdir()}
    assert main(["evaluate", "pretrained:tiny", "--no-figure", "--methods", "fbp,model"]) == 0
    assert main(["stress", "pretrained:tiny", "--shifts", "noise", "--n", "2", "--no-report"]) == 0
    copy = tmp_path / "runs" / "pretrained-tiny"
    assert (copy / "stress.json").is_file() and (copy / "metrics.csv").is_file()
    assert {p.name: zoo.sha256(p) for p in zoo.verify("tiny").iterdir()} == before  # the entry is only read
    out = tmp_path / "tuned"
    assert main(["train", "--out", str(out), "--quiet", *_sets(TINY + ["training.init=pretrained:tiny"])]) == 0
    assert json.loads((out / "model.json").read_text())["init"]["run"] == "pretrained:tiny"
    capsys.readouterr()


def test_run_sets_the_entry_of_its_task_beside_the_model(tiny_zoo, tmp_path, capsys):
    from invmap.evaluation.evaluate import read_metrics

    quick = ["--quiet", "--shifts", "noise", "--stress-n", "2"]
    assert main(["run", "--out", "beside", *quick, *_sets(TINY)]) == 0
    run = next((tmp_path / "beside").iterdir())
    assert {r["method"] for r in read_metrics(run / "metrics.csv")} == {"fbp", "tv", "model", "adapted",
                                                                      "pretrained:tiny"}
    study = json.loads((run / "stress.json").read_text())
    assert "pretrained:tiny" in study["methods"] and "pretrained:tiny" in study["shifts"][0]["learned"]
    assert "pretrained:tiny" in (run / "report.html").read_text()
    assert main(["run", "--out", "alone", *quick, *_sets(TINY + ["evaluation.zoo=false", "evaluation.adapt=false"])]) == 0
    run = next((tmp_path / "alone").iterdir())
    assert {r["method"] for r in read_metrics(run / "metrics.csv")} == {"fbp", "tv", "model"}
    assert main(["run", "--out", "other", *quick, *_sets(TINY + ["operator.angles=8"])]) == 0  # no entry of that task
    assert {r["method"] for r in read_metrics(next((tmp_path / "other").iterdir()) / "metrics.csv")} == \
        {"fbp", "tv", "model", "adapted"}
    (tmp_path / "48.yaml").write_text("data: {size: 48}\n")
    capsys.readouterr()
    assert main(["evaluate", "48.yaml", "--out", "bad", "--methods", "fbp,pretrained:tiny", "--n", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a zoo entry of another task than this run's (size: 32 against 48)" in err and "\n" not in err, err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "bad", "--quiet", *_sets(TINY[:-2] + ["model.base_channels=8", "training.init=pretrained:tiny"])],
     "base_channels"),
    (["train", "--out", "bad", "--quiet", *_sets(TINY[:9] + ["model.name=pnp", "model.denoiser=pretrained:tiny"])],
     "not the identity"),
    (["reconstruct", "--model", "pretrained:nothing", "--input", "x.npy", "--output", "y.npy"],
     "no zoo entry 'nothing' (entries: tiny"),
    (["evaluate", "pretrained:../tiny"], "no zoo entry '../tiny'"),
    (["zoo", "show"], "give an entry's name"),
    (["run", "--out", "bad", "--quiet", *_sets(TINY + ["evaluation.zoo=[nothing]"])], "no zoo entry 'nothing' (entries: tiny"),
    (["run", "--out", "bad", "--quiet", *_sets(TINY + ["operator.angles=8", "evaluation.zoo=[tiny]"])],
     "entry 'tiny' is of another task (physics.operator.params.angles: 16 against 8)"),

    (["zoo", "show", "nothing"], "no zoo entry 'nothing'"),
])
def test_bad_uses_are_one_line(tiny_zoo, tmp_path, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err and message in err, err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("damage", ["weights", "config", "missing", "card"])
def test_a_tampered_entry_is_refused(tiny, monkeypatch, tmp_path, capsys, damage):
    root = tmp_path / "root"
    shutil.copytree(tiny[1], root)
    monkeypatch.setattr(zoo, "ROOT", root)
    d = root / "tiny"
    if damage == "weights":
        data = bytearray((d / "model.safetensors").read_bytes())
        data[-1] ^= 0xFF
        (d / "model.safetensors").write_bytes(bytes(data))
    elif damage == "config":
        (d / "config.yaml").write_text((d / "config.yaml").read_text().replace("angles: 16", "angles: 17"))
    elif damage == "missing":
        (d / "baselines.json").unlink()
    else:
        (d / "card.json").write_text("{")
    assert main(["zoo", "show", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error: zoo entry 'tiny'") and "\n" not in err and "reinstall" in err, err


def test_zoo_lists_its_entries(tiny_zoo, capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "ellipses 32², 16-view CT" in out and "pretrained:tiny" in out
    assert main(["zoo", "show", "tiny"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "tiny"
