"""The trust reference (``evaluation.trust_reference``, #40 item 4) and calibration as a record (#37 item 3):
one reference x̂_r for the trust score, the PSNR bound, the pixel intervals and safe's promise; calibration
returns `Fitted` records (the reference's name and the physics they were fitted for) kept beside the methods,
never written onto them; stored records of the older format stay readable; hostile settings are one line."""

from __future__ import annotations

import json

import pytest
import torch

import invmap.operators as ops
import invmap.variational as var
from invmap.cli import main
from invmap.config import load_config
from invmap.evaluation.evaluate import evaluate_methods
from invmap.evaluation.resolve import TRUST_REFERENCE, check_trust_reference, parse, trust_reference
from invmap.evaluation.trust import add_trust_scores, calibrate, calibrate_stored, calibration_parts, with_records
from invmap.evaluation.experiment import Experiment
from invmap.trust import SafeReconstructor, diagnose
from invmap.trust.conformal import agreement
from invmap.trust.fitted import Calibrations, CalibrationStore, Fitted, calibration_key

TINY = ["data.size=32", "data.val=24", "data.test=4", "operator.angles=16", "evaluation.bound=0.8",
        "evaluation.pixel_risk=0"]


class _Net:
    """A stand-in learned map: FBP, declaring the physics it was "trained" for (so trust diagnoses it)."""

    learned = True

    def __init__(self, physics):
        self.training_physics = physics

    def __call__(self, y, physics):
        return var.fbp(y, physics.operator)


@pytest.fixture(scope="module")
def exp():
    return Experiment(load_config(None, TINY))


@pytest.mark.parametrize("name, op, message", [
    ("fbp", "blur", "cannot run on the task's operator 'blur'"),
    ("model", "tomography", "is the run's own model or wraps it"),
    ("safe", "tomography", "is the run's own model or wraps it"),
    ("json:dumps", "tomography", "a method from outside"),
    ("no-such-method", "tomography", "unknown method"),
])
def test_a_reference_that_cannot_check_the_task_is_refused_in_one_line(name, op, message):
    K = ops.build(op, image_shape=(16, 16), **({"angles": 8} if op == "tomography" else {}))
    with pytest.raises(ValueError, match="evaluation.trust_reference") as e:
        check_trust_reference(name, K)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_the_reference_is_a_setting_resolved_in_one_place():
    K = ops.build("tomography", image_shape=(16, 16), angles=8)
    for name in ("tv", "pnp", "cgls", "fbp"):
        check_trust_reference(name, K)  # methods that run on CT: accepted
    assert trust_reference(load_config(None, [])) == TRUST_REFERENCE and parse(TRUST_REFERENCE).tuned
    assert trust_reference(load_config(None, ["evaluation.trust_reference=cgls"])) == "cgls"
    with pytest.raises(ValueError, match="trust_reference"):
        load_config(None, ["evaluation.trust_reference=[1, 2]"])


def test_calibration_returns_records_against_the_reference_and_writes_nothing_onto_the_method(exp):
    net = _Net(exp.physics)
    tv, cgls = var.build("tv", lam=0.05, iters=30), var.build("cgls", iters=5)
    by_tv = calibrate({"model": net}, exp, n=12, reference=tv, reference_name="tv")["model"]
    by_cgls = calibrate({"model": net}, exp, n=12, reference=cgls, reference_name="cgls")["model"]
    assert isinstance(by_tv, Fitted) and by_tv.reference == "tv" and by_cgls.reference == "cgls"
    assert by_tv.physics == exp.physics.spec() == by_cgls.physics
    assert by_tv.psnr_bound is not None and by_tv.pixel_intervals is None  # pixel_risk 0: none asked for
    assert by_tv.psnr_bound != by_cgls.psnr_bound  # b = a(x̂, x̂_r) + c − q·σ(T): fitted against another x̂_r
    assert not any(hasattr(net, k) for k in ("trust_calibration", "psnr_bound", "pixel_intervals", "promise"))
    assert Fitted.from_dict(json.loads(json.dumps(by_cgls.to_dict()))) == by_cgls


def test_the_evaluation_scores_trust_and_the_bound_against_the_reference_of_its_records(exp):
    """The reference need not be evaluated: its x̂_r is computed for trust; the trust score and the
    bound are those of `diagnose` and the record against that x̂_r."""
    net = _Net(exp.physics)
    cgls = var.build("cgls", iters=5)
    rec = calibrate({"model": net}, exp, n=12, reference=cgls, reference_name="cgls")
    y, x, phys = exp.test_pairs(4)
    methods = {"model": net, "tv": var.build("tv", lam=0.05, iters=30)}
    results, recons = evaluate_methods(methods, y, x, phys, keep=4)
    add_trust_scores(methods, y, phys, results, recons, x=x, calibration=Calibrations("cgls", cgls, rec))
    x_r = cgls(y, phys)
    want = diagnose(net, y, phys, x_hat=recons["model"], x_baseline=x_r, draws=0,
                    calibration=rec["model"].score).trust
    got = results["model"].scores
    assert torch.allclose(got["trust"], want)
    bound = rec["model"].psnr_bound
    assert torch.allclose(got["psnr_bound"], bound(agreement(recons["model"], x_r, bound.data_range), want))
    results_tv, _ = evaluate_methods(methods, y, x, phys, keep=4)  # against tv instead: another score
    add_trust_scores(methods, y, phys, results_tv, recons, x=x)
    assert not torch.allclose(results_tv["model"].scores["trust"], got["trust"])


def test_safe_is_rebuilt_with_its_record_and_its_promise_is_returned_not_set(exp):
    net, tv = _Net(exp.physics), var.build("tv", lam=0.05, iters=20)
    safe = SafeReconstructor(net, tv)
    cgls = var.build("cgls", iters=5)
    records = calibrate({"model": net, "safe": safe}, exp, n=12, reference=cgls, reference_name="cgls")
    assert records["safe"].promise is not None and records["model"].promise is None
    assert safe.promise is None and safe.calibration is None  # the original is left as it was
    built = with_records({"model": net, "safe": safe}, Calibrations("cgls", cgls, records))
    mine = built["safe"]
    assert built["model"] is net and mine is not safe
    assert mine.promise == records["safe"].promise and mine.trust_reference is cgls and mine.baseline is tv
    assert mine.reuses == {} or mine.reuses.get("reference") == "cgls"
    y, x, phys = exp.val_pairs(4)
    x_s = mine(y, phys)
    assert x_s.shape == x.shape and mine.promise is records["safe"].promise


def test_an_older_stored_record_stays_readable_and_a_tampered_one_is_one_line(exp, tmp_path):
    """Records written before the reference was recorded carry neither ``reference`` nor ``physics``:
    read back, their key (which names the tuned TV) fills both in; a record whose reference is not a
    name is refused in one line, exit 2 through the CLI."""
    net, tv = _Net(exp.physics), var.build("tv", lam=0.05, iters=20)
    fresh = calibrate({"model": net}, exp, n=12, reference=tv, reference_name="tv")["model"]
    old = {k: v for k, v in fresh.to_dict().items() if k not in ("reference", "physics")}
    key = calibration_key(calibration_parts(exp, tmp_path, tv, False, 12))
    (tmp_path / "trust_calibration.json").write_text(json.dumps({"records": {key: {"for": {}, "fitted": old}}}))
    how, records = calibrate_stored({"model": net}, exp, tmp_path, reference=tv, n=12)
    assert how == "stored" and records["model"].reference == "tv"
    assert records["model"].physics == exp.physics.spec() == fresh.physics and records["model"].score == fresh.score
    for bad in (5, "", ["tv"]):
        doc = {"records": {key: {"for": {}, "fitted": {**old, "reference": bad}}}}
        (tmp_path / "trust_calibration.json").write_text(json.dumps(doc))
        with pytest.raises(ValueError, match="not a calibration record") as e:
            CalibrationStore(tmp_path).get(key)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("argv, message", [
    (["config", "--check", "", "--set", "operator.name=blur", "--set", "model.input=adjoint", "--set",
      "evaluation.trust_reference=fbp"],
     "cannot run on the task's operator 'blur'"),
    (["config", "--check", "", "--set", "evaluation.trust_reference=model"], "is the run's own model"),
    (["run", "--set", "operator.name=blur", "--set", "model.input=adjoint", "--set", "evaluation.methods=[tv,model]",
      "--set", "evaluation.trust_reference=fbp", "--set", "data.size=32"],
     "cannot run on the task's operator 'blur'"),
])
def test_a_bad_reference_stops_the_command_before_anything_is_written(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if argv[0] == "config":
        (tmp_path / "task.yaml").write_text("name: t\n")
        argv = [a or "task.yaml" for a in argv]
    else:
        argv = argv + ["--out", str(tmp_path / "runs")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err and message in err, err
    assert not (tmp_path / "runs").exists()


def test_the_stress_study_scores_trust_against_the_reference_and_says_which(exp, tmp_path):
    from invmap.evaluation.stress import stress_study
    from invmap.evaluation.task import condition_from_config

    net, cgls = _Net(exp.physics), var.build("cgls", iters=5)
    records = calibrate({"model": net}, exp, n=12, reference=cgls, reference_name="cgls")
    ref = condition_from_config(exp.config, n=2)
    _rows, meta = stress_study({"model": net, "tv": var.build("tv", lam=0.05, iters=20)}, ref, tmp_path,
                               kinds=["noise"], calibration=Calibrations("cgls", cgls, records))
    assert meta["trust"]["reference"] == "cgls" and meta["trust"]["bound"] is not None
    assert json.loads((tmp_path / "stress.json").read_text())["trust"]["reference"] == "cgls"
