"""Crash windows: a kill at any moment leaves a run that `--resume` or a fresh train continues.

Fast tests simulate the kill in-process (an exception where the process would die);
the slow ones kill -9 a real ``invmap train`` in a loop.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from invmap import models
from invmap.atomic import atomic_write, clean_orphans, is_temp
from invmap.config import load_config
from invmap.models.io import MODEL_JSON, MODEL_WEIGHTS, repair_model_json
from invmap.training import checkpoint as ckpt
from invmap.training import read_log, train

TINY = {"name": "tiny", "data": {"size": 32, "train": 8, "val": 4, "test": 4},
        "operator": {"name": "tomography", "angles": 16}, "model": {"name": "cnn", "depth": 2, "channels": 4},
        "training": {"epochs": 2, "batch_size": 4, "device": "cpu", "amp": "off", "threads": 1}}


def _cfg(tmp_path, epochs=2):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump({**TINY, "training": {**TINY["training"], "epochs": epochs}}))
    return p, load_config(p)


class Killed(BaseException):
    """Stands for kill -9: not an Exception, so no `except Exception` handler runs."""


def _killed_write(path: Path) -> Path:
    """The temporary directory an `atomic_write` of `path` leaves when its process is killed mid-write."""
    before = set(path.parent.iterdir())
    code = ("import os, sys; from pathlib import Path; from invmap.atomic import atomic_write; "
            "atomic_write(sys.argv[1], lambda tmp: (Path(tmp).write_text('half'), os._exit(9)))")
    assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == 9
    (left,) = set(path.parent.iterdir()) - before
    return left


def _die_at_first(monkeypatch, module, name):
    real = getattr(module, name)

    def die(*a, **k):
        monkeypatch.setattr(module, name, real)
        raise Killed

    monkeypatch.setattr(module, name, die)


def test_interrupted_start_is_reclaimed_by_a_fresh_train(tmp_path, monkeypatch, capsys):
    _, cfg = _cfg(tmp_path)
    run = tmp_path / "run"
    _die_at_first(monkeypatch, ckpt, "save_checkpoint")  # dies after train_log.csv and model.*, before the checkpoint
    with pytest.raises(Killed):
        train(cfg, run, progress=False)
    assert {"train_log.csv", MODEL_WEIGHTS, MODEL_JSON} <= {p.name for p in run.iterdir()}
    assert not (run / ckpt.CHECKPOINT).exists()
    with pytest.raises(FileNotFoundError, match="interrupted: train it again without --resume"):
        train(cfg, run, resume=True, progress=False)
    res = train(cfg, run, progress=False)
    assert "interrupted start" in capsys.readouterr().err
    assert res.epochs == 2 and [int(r["epoch"]) for r in read_log(run / "train_log.csv")] == [0, 1, 2]


def test_a_trained_run_is_never_reclaimed(tmp_path, monkeypatch):
    _, cfg = _cfg(tmp_path)
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    (run / ckpt.CHECKPOINT).unlink()  # a trained run that lost its checkpoint: still not an interrupted start
    with pytest.raises(FileExistsError, match="already holds a training run"):
        train(cfg, run, progress=False)


def test_kill_during_log_rewrite_on_resume_keeps_the_log(tmp_path, monkeypatch):
    _, cfg = _cfg(tmp_path, epochs=3)
    run = tmp_path / "run"
    train(load_config(_cfg(tmp_path)[0], ["training.epochs=2"]), run, progress=False)
    before = (run / "train_log.csv").read_bytes()
    real = os.replace

    def die(src, dst):
        if str(dst).endswith("train_log.csv"):
            raise Killed  # the process dies with the new log still under its temporary name
        return real(src, dst)

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(Killed):
        train(cfg, run, resume=True, progress=False)
    monkeypatch.setattr(os, "replace", real)
    assert (run / "train_log.csv").read_bytes() == before  # not truncated, not rewritten in place
    res = train(cfg, run, resume=True, progress=False)
    assert res.epochs == 3 and [int(r["epoch"]) for r in read_log(run / "train_log.csv")] == [0, 1, 2, 3]


def _two_models(tmp_path):
    a = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="adjoint")
    b = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="adjoint")
    models.save_model(tmp_path, a, {"best_epoch": 1})
    old_json = (tmp_path / MODEL_JSON).read_text()
    models.save_model(tmp_path, b, {"best_epoch": 2})
    return a, b, old_json


def test_torn_model_pair_loads_the_weights_own_document(tmp_path):
    _, b, old_json = _two_models(tmp_path)
    (tmp_path / MODEL_JSON).write_text(old_json)  # the kill fell between the weights and model.json
    loaded, meta = models.load_model(tmp_path)
    assert meta["best_epoch"] == 2
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in loaded.state_dict().items())
    assert repair_model_json(tmp_path) is True
    assert json.loads((tmp_path / MODEL_JSON).read_text())["best_epoch"] == 2
    assert repair_model_json(tmp_path) is False  # nothing left to repair


def test_model_json_edits_are_not_overridden_by_the_weights_header(tmp_path):
    _two_models(tmp_path)
    doc = json.loads((tmp_path / MODEL_JSON).read_text())
    doc["architecture"]["params"]["channels"] = 8  # same commit: model.json is the one read, and checked
    (tmp_path / MODEL_JSON).write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="has shape"):
        models.load_model(tmp_path)


@pytest.mark.processes
def test_orphaned_temp_files_are_removed_when_a_run_is_opened(tmp_path):
    _, cfg = _cfg(tmp_path)
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    old = _killed_write(run / "train_log.csv")
    new = _killed_write(run / "model.json")
    for p in (old, *old.iterdir()):
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    assert is_temp(old.name) and is_temp(new.name) and not is_temp("train_log.csv")
    train(load_config(_cfg(tmp_path)[0], ["training.epochs=3"]), run, resume=True, progress=False)
    assert not old.exists()   # a kill's leftover
    assert new.exists()       # young: could be another process's write in progress
    assert clean_orphans(run, min_age_s=0) == [new]


def test_atomic_write_fsyncs_file_and_folder(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd))[1])
    atomic_write(tmp_path / "a.txt", "x")
    atomic_write(tmp_path / "b.bin", lambda p: Path(p).write_bytes(b"y"))
    assert sum(is_temp(Path(s).parent.name) for s in synced) == 2  # each file's data before its rename
    assert synced.count(str(tmp_path)) == 2                   # the folder entry after it


# -- kill -9 of a real process ----------------------------------------------------------

def _invmap(*args):
    return [sys.executable, "-c", "import sys; from invmap.cli import main; sys.exit(main())", *args]


def _start(cfg_path, run, cwd, resume=False):
    args = ["train", str(cfg_path), "--out", str(run), "--quiet"] if not resume else \
        ["train", "--out", str(run), "--resume", "--quiet"]
    return subprocess.Popen(_invmap(*args), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc, ready, delay):
    """kill -9 `proc` `delay` s after `ready()` holds (or when it ends by itself)."""
    while proc.poll() is None and not ready():
        time.sleep(0.002)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _continue(cfg_path, run, cwd):
    """What a user does after a crash: train again; if told to, --resume. One must succeed."""
    fresh = subprocess.run(_invmap("train", str(cfg_path), "--out", str(run), "--quiet"), cwd=cwd,
                           capture_output=True, text=True)
    if fresh.returncode == 0:
        return "fresh"
    assert fresh.returncode == 2 and "--resume" in fresh.stderr, fresh.stderr
    again = subprocess.run(_invmap("train", "--out", str(run), "--resume", "--quiet"), cwd=cwd,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    return "resume"


@pytest.mark.processes
@pytest.mark.slow
def test_kill9_loop_in_the_start_window(tmp_path):

    cfg_path, _ = _cfg(tmp_path)
    run = tmp_path / "run"
    # kill at the moments the start writes its files, and a little after each
    moments = [(lambda: (run / "config.yaml").exists(), 0.0), (lambda: (run / "train_log.csv").exists(), 0.0),
               (lambda: (run / MODEL_WEIGHTS).exists(), 0.0), (lambda: (run / "train_log.csv").exists(), 0.004),
               (lambda: (run / "config.yaml").exists(), 0.05)]
    for ready, delay in moments:
        shutil.rmtree(run, ignore_errors=True)
        _kill_when(_start(cfg_path, run, tmp_path), ready, delay)
        assert _continue(cfg_path, run, tmp_path) in ("fresh", "resume")
        assert [int(r["epoch"]) for r in read_log(run / "train_log.csv")] == [0, 1, 2]
        models.load_model(run)


@pytest.mark.processes
@pytest.mark.slow
def test_kill9_during_log_and_model_writes_then_resume(tmp_path):
    cfg_path, _ = _cfg(tmp_path, epochs=6)
    run = tmp_path / "run"
    subprocess.run(_invmap("train", str(cfg_path), "--out", str(run), "--quiet", "--set", "training.epochs=1"),
                   cwd=tmp_path, check=True, capture_output=True)
    for rows, delay in [(2, 0.0), (3, 0.001), (4, 0.003)]:
        p = subprocess.Popen(_invmap("train", "--out", str(run), "--resume", "--quiet", "--set", "training.epochs=6"),
                             cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def enough(n=rows):
            try:
                return len(read_log(run / "train_log.csv")) >= n
            except (OSError, ValueError):
                return False

        _kill_when(p, enough, delay)
        models.load_model(run)  # the best model loads after every kill
        epochs = [int(r["epoch"]) for r in read_log(run / "train_log.csv")]
        assert epochs == list(range(len(epochs)))  # complete and in order, never truncated
    done = subprocess.run(_invmap("train", "--out", str(run), "--resume", "--quiet", "--set", "training.epochs=6"),
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [int(r["epoch"]) for r in read_log(run / "train_log.csv")] == list(range(7))
    assert ckpt.load_checkpoint(run)["epoch"] == 6


@pytest.mark.processes
def test_evaluate_and_stress_clean_orphans_of_their_run(tmp_path):
    from invmap.evaluation import runs

    _, cfg = _cfg(tmp_path)
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    (run / "figures").mkdir()
    old = [_killed_write(run / "metrics.csv"), _killed_write(run / "figures" / "curves.png")]
    for p in old:
        for q in (p, *p.iterdir()):
            os.utime(q, (time.time() - 3600, time.time() - 3600))
    runs.resolve(run)  # how evaluate and stress open a run
    assert not any(p.exists() for p in old)


# -- kill -9 in the newer long stages: drawn-physics training, compare, stress of a model-based kind --

def _tensors(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / ckpt.CHECKPOINT))


@pytest.mark.processes
def test_kill9_during_drawn_physics_training_then_resume_is_bit_identical(tmp_path):
    """Training over drawn geometries (each sample its own K, seeded by index) killed by SIGKILL
    mid-epoch, twice: each `--resume` continues from the last checkpoint, and the finished run
    holds the same weights, bit for bit, as one never interrupted."""
    drawn = {**TINY, "operator": {"name": "tomography", "angles": {"choice": [8, 16], "weights": [1, 2]}},
             "training": {**TINY["training"], "epochs": 8, "max_minutes": 0}}  # no time budget: lr by step only
    cfg_path = tmp_path / "drawn.yaml"
    cfg_path.write_text(yaml.safe_dump(drawn))
    reference = train(load_config(cfg_path), tmp_path / "reference", progress=False)
    run = tmp_path / "run"

    def at_epoch(n):
        def ready():
            try:
                return ckpt.load_checkpoint(run)["epoch"] >= n
            except (OSError, ValueError, KeyError):
                return False
        return ready

    _kill_when(_start(cfg_path, run, tmp_path), at_epoch(1), 0.002)
    first = ckpt.load_checkpoint(run)["epoch"]
    assert 1 <= first < 8
    _kill_when(_start(cfg_path, run, tmp_path, resume=True), at_epoch(first + 1), 0.002)
    done = subprocess.run(_invmap("train", "--out", str(run), "--resume", "--quiet"), cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a, b = _tensors(reference.run_dir), _tensors(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [int(r["epoch"]) for r in read_log(run / "train_log.csv")] == list(range(9))


@pytest.fixture(scope="module")
def lpd_run(tmp_path_factory) -> Path:
    """A tiny learned primal-dual run, trained and evaluated, with a noise stress study."""
    from invmap.cli import main

    d = tmp_path_factory.mktemp("lpd") / "lpd"
    sets = ["data.size=32", "data.train=8", "data.val=4", "data.test=4", "training.epochs=1", "training.batch_size=4",
            "training.amp=off", "training.threads=1", "operator.name=tomography", "operator.angles=16",
            "model.name=lpd", "model.iterations=2", "model.channels=4", "model.depth=2", "model.variant=light",
            "evaluation.methods=[model,fbp,tv]"]
    assert main(["train", "--out", str(d), "--quiet", *[a for s in sets for a in ("--set", s)]]) == 0
    assert main(["evaluate", str(d), "--no-figure"]) == 0
    assert main(["stress", str(d), "--shifts", "noise", "--n", "2", "--no-report"]) == 0
    return d


def test_a_stress_study_killed_between_its_two_files_is_refused_then_replaced(lpd_run, tmp_path, monkeypatch, capsys):
    """The kill falls after stress.csv, before stress.json: `compare` refuses the pair in one line
    and the next `invmap stress` replaces it instead of merging it."""
    from invmap.cli import main
    from invmap.evaluation import compare, stress

    run = tmp_path / "lpd"
    shutil.copytree(lpd_run, run)
    real = stress.atomic_write_json

    def die(path, obj):
        if Path(path).name == "stress.json":
            raise Killed
        return real(path, obj)

    monkeypatch.setattr(stress, "atomic_write_json", die)
    with pytest.raises(Killed):
        main(["stress", str(run), "--shifts", "geometry", "--n", "2", "--no-report"])
    monkeypatch.setattr(stress, "atomic_write_json", real)
    assert main(["compare", str(lpd_run), str(run), "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err and "interrupted" in err, err
    assert not (tmp_path / "cmp").exists()
    assert main(["stress", str(run), "--shifts", "geometry", "--n", "2", "--no-report"]) == 0
    said = capsys.readouterr()
    assert "earlier results unreadable" in said.out + said.err
    shifts = {s["name"] for s in compare.read_run(run, "lpd").stress_meta["shifts"]}
    assert shifts == {"geometry"}  # the study that was half written is not merged in


@pytest.mark.processes
def test_kill9_during_stress_of_a_model_based_kind_then_rerun(lpd_run, tmp_path):
    """SIGKILL at several moments of `invmap stress` on an LPD run: every time the run's stress
    files are a whole study (the old or the new one) or refused as interrupted, and a rerun
    finishes with both shifts."""
    from invmap.evaluation import compare

    run = tmp_path / "lpd"
    shutil.copytree(lpd_run, run)
    cmd = _invmap("stress", str(run), "--shifts", "noise,geometry", "--n", "2", "--no-report")
    before = (run / "stress.csv").stat().st_mtime_ns
    for delay in (0.5, 2.0):
        p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _kill_when(p, lambda: True, delay)
        try:
            compare.read_run(run, "lpd")
        except ValueError as e:
            assert "interrupted" in str(e) or "disagree" in str(e), e
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _kill_when(p, lambda: (run / "stress.csv").stat().st_mtime_ns != before, 0.0)  # right after the new table
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = compare.read_run(run, "lpd")
    assert {s["name"] for s in got.stress_meta["shifts"]} == {"noise", "geometry"}
    assert not [q for q in run.rglob("*") if is_temp(q.name) and time.time() - q.stat().st_mtime > 3600]


@pytest.mark.processes
def test_kill9_during_compare_leaves_out_as_it_was_then_rerun(lpd_run, tmp_path):
    """`compare` builds its directory under a temporary name and renames it whole: killed at any
    moment it leaves --out absent (a rerun into it works) and a hidden leftover that
    `clean_orphans` removes."""
    from invmap.atomic import clean_orphans

    other = tmp_path / "lpd-copy"
    shutil.copytree(lpd_run, other)
    out = tmp_path / "compare" / "lpd"
    cmd = _invmap("compare", str(lpd_run), str(other), "--out", str(out))

    def building():
        return out.parent.is_dir() and any(is_temp(q.name) and q.is_dir() for q in out.parent.iterdir())

    killed = 0
    for delay in (0.0, 0.05, 0.2):
        p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _kill_when(p, building, delay)
        killed += p.returncode == -signal.SIGKILL
        assert not out.exists() or (out / "compare.html").is_file()  # nothing half made under --out
        if out.exists():  # it finished before the kill: start again from nothing
            shutil.rmtree(out)
    assert killed >= 1
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {"compare.csv", "compare.json", "compare.html"} <= {q.name for q in out.iterdir()}
    json.loads((out / "compare.json").read_text())
    left = [q for q in out.parent.iterdir() if is_temp(q.name)]
    assert clean_orphans(out.parent, min_age_s=0) == left and not any(is_temp(q.name) for q in out.parent.iterdir())
