"""One-line errors (exit 2) instead of tracebacks, and clear errors from the library API.

CLI cases run `invmap.cli.main` in-process; a read-only or full disk is simulated by
making the atomic writer's rename fail with EROFS / ENOSPC (tests may run as root, for
whom a chmod-ed folder is still writable). Every such failure must leave the files
written before — checkpoint, model, log, metrics — byte for byte as they were.
"""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import invmap.operators as ops
from invmap import metrics, models, variational
from invmap.cli import main
from invmap.models.io import MODEL_JSON
from invmap.physics import Physics

TASK = {"name": "tiny", "data": {"size": 32, "train": 4, "val": 2, "test": 2},
        "operator": {"name": "tomography", "angles": 60}, "model": {"name": "cnn", "depth": 2, "channels": 4},
        "training": {"epochs": 1, "batch_size": 2, "device": "cpu", "amp": "off", "threads": 1},
        "evaluation": {"methods": ["fbp", "model"], "tune": False}}


def _one_line_error(capsys, argv, expect: str | None = None) -> str:
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("invmap: error: "), err
    if expect is not None:
        assert expect in err[0], err[0]
    return err[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained run (1 epoch), evaluated and stressed once so every output exists."""
    d = tmp_path_factory.mktemp("run")
    (d / "task.yaml").write_text(yaml.safe_dump(TASK))
    run = d / "run"
    assert main(["train", str(d / "task.yaml"), "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", str(run), "--n", "2", "--no-figure"]) == 0
    assert main(["stress", str(run), "--shifts", "noise", "--methods", "fbp", "--n", "2", "--no-report"]) == 0
    assert main(["report", str(run)]) == 0
    return d, run


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


# -- the machine refuses: read-only file system, full disk ------------------------------

COMMANDS = {
    "train": lambda d, run: ["train", "--out", str(run), "--resume", "--quiet", "--set", "training.epochs=2"],
    "evaluate": lambda d, run: ["evaluate", str(run), "--n", "2", "--no-figure"],
    "stress": lambda d, run: ["stress", str(run), "--shifts", "noise", "--methods", "fbp", "--n", "2", "--no-report"],
    "report": lambda d, run: ["report", str(run)],
}


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC], ids=["read-only", "disk-full"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_refused_writes_are_one_line_and_keep_every_file(trained, capsys, monkeypatch, command, code):
    d, run = trained
    before = _snapshot(run)
    real = os.replace

    def refuse(src, dst):
        os.unlink(src)  # what a full disk leaves: nothing new
        raise OSError(code, os.strerror(code), str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    try:
        line = _one_line_error(capsys, COMMANDS[command](d, run), os.strerror(code))
    finally:
        monkeypatch.setattr(os, "replace", real)
    assert str(run) in line
    assert _snapshot(run) == before  # the previous checkpoint, model, log and tables are intact
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary files either


def test_disk_full_at_a_checkpoint_keeps_the_previous_one_and_resumes(trained, tmp_path, capsys, monkeypatch):
    import shutil

    from invmap.training import load_checkpoint, read_log

    run = tmp_path / "run"
    shutil.copytree(trained[1], run)
    ckpt_before = (run / "checkpoint.safetensors").read_bytes()
    real = os.replace

    def full(src, dst):
        if Path(dst).name.startswith("checkpoint"):
            os.unlink(src)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    _one_line_error(capsys, ["train", "--out", str(run), "--resume", "--quiet", "--set", "training.epochs=2"],
                    "No space left on device")
    monkeypatch.setattr(os, "replace", real)
    assert (run / "checkpoint.safetensors").read_bytes() == ckpt_before  # epoch 1's checkpoint, intact
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--set", "training.epochs=2"]) == 0
    assert load_checkpoint(run)["epoch"] == 2
    assert [int(r["epoch"]) for r in read_log(run / "train_log.csv")] == [0, 1, 2]


def test_out_of_memory_is_one_line(trained, capsys, monkeypatch):
    d, run = trained
    import invmap.training.loop as loop

    for i, exc in enumerate((MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to "
                                                           "allocate 1000000000000 bytes"))):
        def boom(*a, _e=exc, **k):
            raise _e

        monkeypatch.setattr(loop, "validate", boom)
        _one_line_error(capsys, ["train", str(d / "task.yaml"), "--out", str(d / f"oom{i}"), "--quiet"], "out of memory")


def test_other_runtime_errors_still_raise(trained, monkeypatch):
    """Only allocation failures are turned into one line; a bug keeps its traceback."""
    d, _ = trained
    import invmap.training.loop as loop

    monkeypatch.setattr(loop, "validate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["train", str(d / "task.yaml"), "--out", str(d / "bug"), "--quiet"])


# -- hostile files ----------------------------------------------------------------------

def test_deeply_nested_yaml_is_one_line(tmp_path, capsys):
    p = tmp_path / "deep.yaml"
    p.write_text("data: " + "{a: " * 100000 + "1" + "}" * 100000 + "\n")
    _one_line_error(capsys, ["config", "--check", str(p)], "nested deeper than")
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: ok\n")
    _one_line_error(capsys, ["config", "--check", str(ok), "--set", "name=" + "[" * 100000 + "]" * 100000],
                    "nested deeper than")


@pytest.mark.parametrize("how", ["--method", "--model"])
def test_empty_batch_is_one_line(trained, tmp_path, capsys, how):
    d, run = trained
    np.save(tmp_path / "empty.npy", np.zeros((0, 1, 60, 47), np.float32))
    src = ["--method", "fbp", "--task", str(d / "task.yaml")] if how == "--method" else ["--model", str(run)]
    _one_line_error(capsys, ["reconstruct", *src, "--input", str(tmp_path / "empty.npy"),
                             "--output", str(tmp_path / "x.npy")], "empty")
    assert not (tmp_path / "x.npy").exists()


MODEL_EDITS = {
    "format_version-null": (lambda doc: doc.update(format_version=None), '"format_version" must be an integer, got null'),
    "format_version-list": (lambda doc: doc.update(format_version=[1]), '"format_version" must be an integer, got a list'),
    "physics-string": (lambda doc: doc.update(physics="tomography"), '"physics" must be an object, got a string'),
    "architecture-list": (lambda doc: doc.update(architecture=["cnn"]), '"architecture" must be an object'),
    "input-number": (lambda doc: doc.update(input=3), '"input" must be an object or null'),
    "params-string": (lambda doc: doc["architecture"].update(params="x"), '"architecture" must be {'),
}


@pytest.mark.parametrize("case", list(MODEL_EDITS))
def test_model_json_with_wrong_types_is_one_line(trained, tmp_path, capsys, case):
    import shutil

    d, run = trained
    m = tmp_path / "m"
    shutil.copytree(run, m)
    edit, expect = MODEL_EDITS[case]
    doc = json.loads((m / MODEL_JSON).read_text())
    edit(doc)
    (m / MODEL_JSON).write_text(json.dumps(doc))
    np.save(tmp_path / "y.npy", np.zeros((1, 1, 60, 47), np.float32))
    _one_line_error(capsys, ["reconstruct", "--model", str(m), "--input", str(tmp_path / "y.npy"),
                             "--output", str(tmp_path / "x.npy")], expect)
    _one_line_error(capsys, ["evaluate", str(m), "--n", "2", "--no-figure", "--methods", "model"])


# -- library API ------------------------------------------------------------------------

def _ct():
    return ops.build("tomography", image_shape=(16, 16), angles=8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("direction", ["forward", "adjoint"])
def test_half_precision_is_computed_in_float32(dtype, direction, gen):
    """float16/bfloat16 in, float32 out, equal to the float32 computation on the same values."""
    op = _ct()
    shape = (2, 1) + (op.in_shape if direction == "forward" else op.out_shape)
    t = torch.rand(shape, generator=gen).to(dtype)
    fn = getattr(op, direction)
    out = fn(t)
    assert out.dtype == torch.float32
    assert torch.equal(out, fn(t.float()))


@pytest.mark.parametrize("name", ops.names())
@pytest.mark.parametrize("bad", ["int", "bool", "meta", "complex-image"])
def test_operators_refuse_inputs_they_cannot_compute(name, bad):
    op = ops.build(name, image_shape=(16, 16))
    shape = (1, 1) + op.in_shape
    t = {"int": torch.zeros(shape, dtype=torch.int64), "bool": torch.zeros(shape, dtype=torch.bool),
         "meta": torch.zeros(shape, device="meta"), "complex-image": torch.zeros(shape, dtype=torch.complex64)}[bad]
    with pytest.raises(TypeError, match=type(op).__name__):
        op(t)


def test_real_operators_refuse_complex_measurements():
    op = ops.build("blur", image_shape=(16, 16))
    with pytest.raises(TypeError, match="expected a real measurement"):
        op.adjoint(torch.zeros(1, 1, 16, 16, dtype=torch.complex64))


def test_complex_operators_still_take_complex_measurements():
    mri = [n for n in ops.names() if ops.build(n, image_shape=(16, 16)).complex_output]
    for n in mri:
        op = ops.build(n, image_shape=(16, 16))
        y = op(torch.rand(1, 1, 16, 16))
        assert op.adjoint(y).shape == (1, 1, 16, 16)
        assert op.T(y).shape == (1, 1, 16, 16)  # Kᵀ as an operator takes the complex y as its input


EMPTY = {
    "fbp": lambda op, y: variational.fbp(y, op),
    "tv": lambda op, y: variational.build("tv")(y, Physics(op)),
    "cgls": lambda op, y: variational.build("cgls")(y, Physics(op)),
    "forward": lambda op, y: op(torch.zeros(0, 1, *op.in_shape)),
    "adjoint": lambda op, y: op.adjoint(y),
    "model": lambda op, y: models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="measurement")(y, op),
    "mse": lambda op, y: metrics.mse(torch.zeros(0, 1, 4, 4), torch.zeros(0, 1, 4, 4)),
    "psnr": lambda op, y: metrics.psnr(torch.zeros(0, 1, 4, 4), torch.zeros(0, 1, 4, 4)),
}


@pytest.mark.parametrize("what", list(EMPTY))
def test_empty_batches_are_a_clear_error(what):
    op = ops.build("tomography", image_shape=(32, 32), angles=60)
    with pytest.raises(ValueError, match="empty"):
        EMPTY[what](op, torch.zeros(0, 1, 60, 47))


@pytest.mark.parametrize("c", [math.nan, math.inf, -math.inf])
def test_scaling_an_operator_by_a_non_finite_number_is_refused(c):
    op = _ct()
    with pytest.raises(ValueError, match="finite"):
        c * op
    with pytest.raises(ValueError, match="finite"):
        op * c
