"""One scan with a trained model: the right physics at another size, the trust calibration computed
once per run and task and stored beside it (shipped with the zoo), no bound printed where it does
not apply, and a tuning plan that the time budget only caps (tiny sizes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import invmap.operators as ops
from invmap.operators import tomography
from invmap import zoo
from invmap.cli import main
from invmap.evaluation.trust_check import VACUOUS_DB, no_bound_because
from invmap.config import load_config
from invmap.data import build_source
from invmap.evaluation.runs import baselines_note, tune_baselines
from invmap.evaluation.stress import resolution_shift
from invmap.evaluation.task import Condition, condition_physics
from invmap.evaluation.experiment import Experiment
from invmap.physics import Physics, resized_physics
from invmap.trust.fitted import FILE, CalibrationStore
from invmap.models import build

from _fitted_run import fitted_run

NAMES = ops.names()
SMALL, LARGE = (24, 24), (40, 40)


# ------------------------------------------------------------------ the physics at another size
@pytest.mark.parametrize("name", NAMES)
def test_a_stored_spec_resized_is_the_operator_built_for_that_size(name):
    """K built with its defaults at one size, recorded (every parameter stated, as model.json does)
    and resized, is K built with its defaults at the other: nothing of the old size sticks."""
    stored = ops.build(name, image_shape=SMALL).spec()
    assert ops.from_spec(ops.resized_spec(stored, LARGE)).spec() == ops.build(name, image_shape=LARGE).spec()


@pytest.mark.parametrize("name,stated,check", [
    ("tomography", {"angles": 12, "detectors": 50},  # 1.5× the default 35 at 24²: 1.5× the new default
     lambda p: p["detectors"] == round(50 * 58 / 35)),
    ("tomography", {"angles": 12, "detector_offset": 1.5, "arc": 120.0},
     lambda p: p["detector_offset"] == 1.5 and p["arc"] == 120.0 and p["detectors"] == 58),
    ("fanbeam", {"angles": 12, "source_distance": 60.0, "detector_distance": 30.0},
     lambda p: p["source_distance"] == 100.0 and p["detector_distance"] == 50.0),
    ("inpainting", {"box": [6, 12, 6, 6]}, lambda p: p["box"] == [10, 20, 10, 10]),
    ("matrix", {"m": 192}, lambda p: p["m"] == 533),  # a third of the pixels stays a third
])
def test_stated_size_bound_parameters_scale_with_the_image(name, stated, check):
    stored = ops.build(name, image_shape=SMALL, **stated).spec()
    resized = ops.from_spec(ops.resized_spec(stored, LARGE))
    assert check(resized.params()), resized.params()


def test_a_given_matrix_cannot_be_resized_and_a_finer_grid_keeps_what_is_stated():
    stored = ops.build("matrix", image_shape=(3, 3), matrix=np.eye(9)[:4]).spec()
    with pytest.raises(ValueError, match="defined for 3x3 images only"):
        ops.resized_spec(stored, (6, 6))
    ct = ops.build("tomography", image_shape=SMALL, angles=12).spec()  # from_spec: every stated parameter kept
    assert ops.from_spec(ct, LARGE).params()["detectors"] == 35


def test_the_ct_detector_covers_a_512_image_rebuilt_from_a_128_model():
    """The flagship case: the 128² model's physics, recorded with its 183 detectors, at 512²."""
    spec = Physics.from_spec({"operator": {"name": "tomography", "params": {"angles": 60}},
                              "noise": {"name": "gaussian", "params": {"relative": 0.01}}}, (128, 128)).spec()
    assert spec["operator"]["params"]["detectors"] == 183
    op = resized_physics(spec, (512, 512)).operator
    assert op.params()["detectors"] * op.params()["detector_spacing"] >= 512 * 2 ** 0.5


def test_the_stress_resolution_shift_rescales_a_stated_detector():
    stated = Condition.of("ellipses", 24, {"operator": {"name": "tomography", "params": {"angles": 8, "detectors": 35}},
                                           "noise": {"name": "gaussian", "params": {"relative": 0.01}}})
    for lv in resolution_shift(stated)[0].levels:
        size = lv.changes["size"]
        op = condition_physics(stated.with_changes(**lv.changes)).operator
        assert op.out_shape[1] == ops.build("tomography", image_shape=(size, size), angles=8).out_shape[1]
    unstated = Condition.of("ellipses", 24, {"operator": {"name": "tomography", "params": {"angles": 8}}})
    assert all(set(lv.changes) == {"size"} for lv in resolution_shift(unstated)[0].levels)  # nothing else moves


# ------------------------------------------------------------------ a tiny trained CT run
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny CT model (24², 12 views, 2% noise; a small CNN on FBP), trained in seconds, and its tuned TV."""
    cfg = load_config(None, ["data.size=24", "data.val=24", "operator.angles=12", "data.simulation=crime",
                             "data.test_simulation=crime", "noise.relative=0.02", "name=tiny"])
    torch.manual_seed(0)
    return fitted_run(tmp_path_factory.mktemp("scan") / "run", cfg, build("cnn", channels=8, depth=3, residual=True))


@pytest.fixture
def image(tmp_path) -> Path:
    x = build_source("ellipses", 24, split="test", count=1, seed=3).batch([0])[0, 0].numpy()
    np.save(tmp_path / "x24.npy", x)
    return tmp_path / "x24.npy"


def _reconstruct(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["reconstruct", *args])
    got = capsys.readouterr()
    return code, got.out, got.err


def test_the_trust_checks_tv_tells_its_progress_and_computes_the_same(run, image, tmp_path, capsys, monkeypatch):
    """The tuned tv the trust check runs (a minute at 512²) says so on stderr, then a line every
    TICK_SECONDS of its iterations; telling does not change what it computes."""
    import invmap.evaluation.trust_check as rec

    args = ["--model", str(run), "--input", str(image), "--simulate"]
    code, _, err = _reconstruct(capsys, *args, "--output", str(tmp_path / "a.npy"))
    iters = json.loads((run / "baselines.json").read_text())["tv"]["params"]["iters"]
    assert code == 0 and f"trust check: the run's tuned tv on the same y ({iters} iterations" in err
    monkeypatch.setattr(rec, "TICK_SECONDS", 0.0)
    code, _, err = _reconstruct(capsys, *args, "--output", str(tmp_path / "b.npy"))
    ticks = [ln for ln in err.splitlines() if ln.startswith("trust check: tv ")]
    assert code == 0 and len(ticks) == iters and ticks[-1].startswith(f"trust check: tv {iters} of {iters} iterations")
    a, b = (json.loads((tmp_path / f"{n}.trust.json").read_text())["images"] for n in "ab")
    assert a == b


def test_the_calibration_is_computed_once_then_read(run, image, tmp_path, capsys):
    for f in run.glob(FILE):
        f.unlink()
    code, first, _ = _reconstruct(capsys, "--model", str(run), "--input", str(image), "--simulate",
                                  "--output", str(tmp_path / "a.npy"))
    assert code == 0 and "calibrating the trust score" in first and (run / FILE).is_file()
    assert "on 24 validation pairs" in first  # what it used: the run's data.val (24), not the 2n it asks for
    code, second, _ = _reconstruct(capsys, "--model", str(run), "--input", str(image), "--simulate",
                                   "--output", str(tmp_path / "b.npy"))
    assert code == 0 and "calibrating" not in second
    a, b = (json.loads((tmp_path / f"{n}.trust.json").read_text())["images"][0] for n in "ab")
    assert a["trust"] == b["trust"] and a["calibration"] == b["calibration"]  # the stored record is the computed one
    code, third, _ = _reconstruct(capsys, "--model", str(run), "--input", str(image), "--simulate", "--safe",
                                  "--output", str(tmp_path / "c.npy"))
    assert code == 0 and "calibrating" in third  # safe's promise was not fitted yet: computed and added
    assert len(json.loads((run / FILE).read_text())["records"]) == 2


@pytest.mark.parametrize("damage", ["not-json", "not-a-store", "bad-floor", "directory"])
def test_a_damaged_calibration_store_is_one_line(run, image, tmp_path, capsys, damage):
    path = run / FILE
    kept = path.read_bytes() if path.is_file() else None
    try:
        if path.is_file():
            path.unlink()
        if damage == "directory":
            path.mkdir()
        elif damage == "bad-floor":
            _reconstruct(capsys, "--model", str(run), "--input", str(image), "--simulate",
                         "--output", str(tmp_path / "seed.npy"))
            doc = json.loads(path.read_text())
            for rec in doc["records"].values():
                rec["fitted"]["score"]["floor"] = "Infinity"
            path.write_text(json.dumps(doc))
        else:
            path.write_text("{[" if damage == "not-json" else json.dumps({"records": [1]}))
        code, _, err = _reconstruct(capsys, "--model", str(run), "--input", str(image), "--simulate",
                                    "--output", str(tmp_path / "x.npy"))
        assert code == 2 and len(err.strip().splitlines()) == 1 and "remove it to recompute" in err
        assert not (tmp_path / "x.npy").exists()
    finally:
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        if kept is not None:
            path.write_bytes(kept)


def test_another_size_names_the_ways_out_and_size_builds_its_detector(run, tmp_path, capsys):
    x = build_source("ellipses", 40, split="test", count=1, seed=3).batch([0])[0, 0].numpy()
    iio.imwrite(tmp_path / "x40.png", (x.clip(0, 1) * 255).round().astype(np.uint8))
    common = ["--model", str(run), "--input", str(tmp_path / "x40.png"), "--simulate"]
    code, _, err = _reconstruct(capsys, *common, "--output", str(tmp_path / "no.png"))
    assert code == 2 and "--size 40" in err and "--resize" in err and len(err.strip().splitlines()) == 1
    code, out, _ = _reconstruct(capsys, *common, "--size", "40", "--output", str(tmp_path / "big.png"))
    assert code == 0
    side = json.loads((tmp_path / "big.trust.json").read_text())
    assert side["physics"]["operator"]["params"]["detectors"] == ops.build("tomography", image_shape=(40, 40),
                                                                           angles=12).out_shape[1]
    assert "PSNR ≥" not in out and "no PSNR bound" in out  # calibrated at 24²: not this physics
    assert side["images"][0]["psnr_bound"]["db"] is None and "image_shape" in side["images"][0]["psnr_bound"]["why"]
    code, _, _ = _reconstruct(capsys, *common, "--resize", "--output", str(tmp_path / "small.png"))
    assert code == 0 and iio.imread(tmp_path / "small.png").shape == (24, 24)
    code, _, err = _reconstruct(capsys, "--model", str(run), "--input", str(tmp_path / "x40.png"), "--resize",
                                "--output", str(tmp_path / "m.png"))
    assert code == 2 and "--resize resamples an input image: it needs --simulate" in err


def test_a_bound_that_does_not_apply_or_says_nothing_is_not_printed():
    assert no_bound_because(30.0, None, False) is None
    assert "calibrated at" in no_bound_because(30.0, "operator.angles: 30 against 60 calibrated", False)
    assert "unlike the training conditions" in no_bound_because(30.0, None, True)
    assert "says nothing" in no_bound_because(-8.21, None, False)
    assert "says nothing" in no_bound_because(VACUOUS_DB, None, False)


# ------------------------------------------------------------------ the zoo ships its calibration
SHIPPED = [n for n in zoo.names() if (zoo.ROOT / n / FILE).is_file()]


@pytest.mark.parametrize("name", SHIPPED)
def test_a_zoo_calibration_is_verified_and_read_like_a_run_s(name):
    d = zoo.verify(name)  # its SHA-256 is in the card
    records = json.loads((d / FILE).read_text())["records"]
    assert records and all(CalibrationStore(d).get(k) is not None for k in records)


@pytest.mark.processes
def test_the_real_ct_entry_runs_where_its_training_data_is_not(tmp_path):
    """unet-ct-real was calibrated on ../shared's slices; from any other folder it reads its record."""
    if "unet-ct-real" not in SHIPPED:
        pytest.skip("unet-ct-real ships no calibration")
    x = build_source("ellipses", 128, split="test", count=1, seed=1).batch([0])[0, 0].numpy()
    iio.imwrite(tmp_path / "x.png", (x.clip(0, 1) * 255).round().astype(np.uint8))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "invmap", "reconstruct", "--model", "pretrained:unet-ct-real",
                        "--input", "x.png", "--simulate", "--output", "out.png"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "calibrating" not in r.stdout and (tmp_path / "out.png").is_file()


def test_a_zoo_entry_with_an_unlisted_calibration_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "zoo"
    shutil.copytree(zoo.ROOT / "unet-ct", root / "unet-ct")
    card = json.loads((root / "unet-ct" / "card.json").read_text())
    card["files"].pop(FILE, None)
    (root / "unet-ct" / "card.json").write_text(json.dumps(card))
    (root / "unet-ct" / FILE).write_text(json.dumps({"records": {}}))
    monkeypatch.setattr(zoo, "ROOT", root)
    with pytest.raises(ValueError, match=f"no SHA-256 for {FILE}"):
        zoo.verify("unet-ct")


# ------------------------------------------------------------------ tuning: a plan, labelled when cut
def test_a_cut_tuning_is_labelled_wherever_its_numbers_are_described(tmp_path):
    cfg = load_config(None, ["data.size=16", "data.val=2", "operator.angles=8", "name=t"])
    full = tune_baselines(Experiment(cfg), ["tv"], tmp_path, n_val=2)
    assert not full["tv"]["budget_cut"] and full["tv"]["evaluations"] == full["tv"]["planned"]
    assert baselines_note(full) == "parameters tuned on validation pairs at the training conditions, kept fixed"
    cut = tune_baselines(Experiment(cfg), ["tv"], None, n_val=2, time_budget=1e-9)
    assert cut["tv"]["budget_cut"] and cut["tv"]["evaluations"] == 1
    assert "cut by the 1e-09 s time budget after 1 of" in cut["tv"]["how"]
    assert "cut by the" in baselines_note(cut)


# ------------------------------------------------------------------ ‖K‖ once per K, not once per build

def count_eigenvalues(monkeypatch) -> list:
    """Count the power-method / Lanczos runs (`top_eigenvalue`) of ‖K‖ and of PDHG's stacked norm:
    one entry per call, the calls themselves unchanged."""
    import invmap.operators.base as base
    import invmap.variational.pdhg as pdhg

    calls, real = [], base.top_eigenvalue

    def counted(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(base, "top_eigenvalue", counted)
    monkeypatch.setattr(pdhg, "top_eigenvalue", counted)
    return calls

def test_the_norm_of_one_acquisition_is_computed_once_per_process(monkeypatch, tmp_path):
    """The stress study rebuilds K at every level; ‖K‖ and PDHG's ‖[K; s∇]‖ are computed once per spec."""
    import invmap.operators.base as base
    import invmap.variational.pdhg as pdhg

    monkeypatch.setenv("INVMAP_CACHE_DIR", str(tmp_path))  # nothing kept on disk by earlier processes
    calls = count_eigenvalues(monkeypatch)
    monkeypatch.setattr(base, "_REMEMBERED", type(base._REMEMBERED)())
    a, b = (ops.build("tomography", image_shape=(20, 20), angles=7) for _ in range(2))
    assert a.norm() == b.norm() and len(calls) == 1
    assert pdhg.stacked_norm(a, 0.5) == pdhg.stacked_norm(b, 0.5) and len(calls) == 2
    other = ops.build("tomography", image_shape=(20, 20), angles=8)
    assert other.norm() != a.norm() and len(calls) == 3
    fresh = ops.build("tomography", image_shape=(20, 20), angles=7)
    fresh._cache["spec_digest"] = None  # an operator without a spec keeps its own
    assert fresh.norm() == a.norm() and len(calls) == 4


def test_the_norms_of_a_ct_acquisition_are_kept_on_disk_for_the_next_process(monkeypatch, tmp_path):
    """A new process reads ‖K‖ and ‖[K; s∇]‖ beside the cached matrix, bit for bit, instead of iterating
    again; a damaged numbers file is ignored and rewritten; with the disk cache off nothing is kept."""
    import invmap.operators.base as base
    import invmap.variational.pdhg as pdhg

    calls = count_eigenvalues(monkeypatch)
    monkeypatch.setenv("INVMAP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tomography, "MIN_NUMBERS_NNZ", 0)  # kept for a large K: here a tiny one

    def new_process() -> tuple[float, float]:
        monkeypatch.setattr(base, "_REMEMBERED", type(base._REMEMBERED)())
        op = ops.build("tomography", image_shape=(20, 20), angles=7)
        return op.norm(), pdhg.stacked_norm(op, 0.5)

    first = new_process()
    assert len(calls) == 2
    (kept,) = (tmp_path / "tomography").glob("*.numbers.json")
    assert new_process() == first and len(calls) == 2  # read, not recomputed: the same floats
    kept.write_text('{"x": ')  # damaged: recomputed, the same numbers, and the file whole again
    assert new_process() == first and len(calls) == 4
    assert new_process() == first and len(calls) == 4
    kept.write_text(kept.read_text().replace(repr(first[0]), "-1.0"))  # not a norm: ignored
    assert new_process() == first and len(calls) == 5
    monkeypatch.setenv("INVMAP_CACHE_DIR", "off")
    kept.unlink()
    assert new_process() == first and len(calls) == 7
    assert not list((tmp_path / "tomography").glob("*.numbers.json"))
    monkeypatch.setenv("INVMAP_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tomography, "MIN_NUMBERS_NNZ", 10 ** 9)  # a K whose norms take milliseconds: not kept
    assert new_process() == first and len(calls) == 9
    assert not list((tmp_path / "tomography").glob("*.numbers.json"))


def test_the_trust_reference_at_another_size_is_the_acquisition_resized():
    """The sensitivity's reference conditions at --size N: the model's acquisition rebuilt for N×N as
    the input's is (a detector covering the image; it kept the 128² model's 183 detectors), so both
    use one system matrix; at the training size the training physics itself."""
    from invmap.trust import reference_physics

    home = Physics.from_spec({"operator": {"name": "tomography", "params": {"angles": 60}},
                              "noise": {"name": "gaussian", "params": {"relative": 0.01}}}, (128, 128))

    class Model:
        training_physics = home

    ref = reference_physics(Model(), (512, 512))
    assert ref.operator.spec() == resized_physics(home.spec(), (512, 512)).operator.spec()
    assert ref.operator.params()["detectors"] >= 512 * 2 ** 0.5 and ref.noise is home.noise
    assert reference_physics(Model(), (128, 128)) is home
