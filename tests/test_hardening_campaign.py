"""The hostile-input campaign over the newer surfaces: physics distributions, ``compare``, HDF5
sources, the trust sidecar and baselines of ``reconstruct --model``, model-based kinds on
operators they cannot use. Every case must end in one line ``invmap: error: …`` (the last
line on stderr, no traceback), exit 2, in bounded time, with a peak memory at most twice that
of a normal command, and with every file that existed before unchanged and none added.

The hostile inputs are built here from three tiny trained runs (a CT CNN, a blur CNN, an LPD;
~15 s together). All cases run in one child process, which records after each case its exit
status, stderr, peak RSS (`resource.getrusage`), seconds and a digest of the whole tree, so
one test per case reads its own record. (The torchrun cases live in test_distributed.py, the
resume-across-precision case in test_training.py.)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from invmap import budget

#: a hostile case may use at most this multiple of a normal command's peak memory
MEMORY_FACTOR = 2.0
#: and this many seconds (a normal one here takes 1–3 s)
SECONDS = 60.0
#: the hostile cases `_build` makes, in its order (one test each)
CASES = [
    "dist-huge-choice", "dist-too-many-operators", "dist-nan-bound", "dist-inf-bound", "dist-log-zero",
    "dist-normal-nan", "dist-grid-huge", "dist-grid-inf", "dist-zero-weights", "dist-overflow-weights",
    "dist-nan-weight", "dist-nested-weight", "dist-nested-distribution", "dist-weights-count", "dist-unknown-kind",
    "dist-nominal-outside", "dist-recursive-weights", "dist-alias-bomb-weights",
    "compare-stress-json-deeply-nested", "compare-stress-json-reference-text",
    "compare-stress-json-levels-not-a-list", "compare-stress-json-not-an-object", "compare-stress-json-binary",
    "compare-huge-metrics", "compare-a-run-being-trained", "compare-other-psnr-convention",
    "compare-mixed-psnr-conventions", "compare-different-tasks", "compare-different-geometry",
    "compare-no-stress-json", "compare-no-stress-csv", "compare-header-only-metrics", "compare-truncated-metrics",
    "compare-half-written-stress", "hdf5-no-frames", "hdf5-huge-declared", "hdf5-complex", "hdf5-bool",
    "hdf5-compound", "hdf5-strings", "hdf5-group", "hdf5-one-dimensional", "hdf5-five-dimensional",
    "baselines-lam-nan", "baselines-lam-negative", "baselines-lam-text", "baselines-iters-huge",
    "baselines-params-list", "baselines-unknown-param", "baselines-binary", "model-json-huge-views",
    "sidecar-is-a-directory", "sidecar-is-a-dangling-symlink", "residual-map-is-a-directory",
    "ensemble-of-another-task", "bound-probability-one", "bound-too-few-calibration-pairs",
    "intervals-too-few-calibration-pairs", "interval-image-is-a-directory", "outside-method-that-is-not-one",
    "outside-method-of-a-missing-module",
    "lpd-of-real-data-on-complex-data", "lpd-paper-on-vector-measurements", "pnp-with-a-denoiser-that-is-not-one",
    "lpd-with-zero-iterations", "lpd-with-huge-iterations",
    "trust-reference-that-cannot-run-on-k", "trust-reference-is-the-model", "trust-reference-unknown",
    "calibration-record-with-a-tampered-reference",
]

TINY = ["data.size=32", "data.train=8", "data.val=4", "data.test=4", "training.epochs=1", "training.batch_size=4",
        "training.max_minutes=0", "training.threads=1", "training.amp=off", "evaluation.methods=[model,fbp,tv]"]
RUNS = {
    "ct": ["operator.name=tomography", "operator.angles=16", "model.name=cnn", "model.channels=4", "model.depth=2"],
    "blur": ["operator.name=blur", "operator.sigma=1.5", "model.name=cnn", "model.input=adjoint",
             "model.channels=4", "model.depth=2", "evaluation.methods=[model,cgls,tv]"],
    "lpd": ["operator.name=tomography", "operator.angles=16", "model.name=lpd", "model.iterations=2",
            "model.channels=4", "model.depth=2", "model.variant=light"],
}

#: the child process that runs the cases (shared by test_hardening_campaign.py and test_hardening_methods.py)
_CHILD = Path(__file__).with_name("_campaign_child.py")


def _sets(options: list[str]) -> list[str]:
    return [a for o in options for a in ("--set", o)]


def _make_runs(base: Path) -> dict[str, Path]:
    """The three tiny runs (trained 1 epoch, evaluated, the CT one also stressed for noise)."""
    from invmap.cli import main

    runs = {}
    for name, opts in RUNS.items():
        d = base / "runs" / name
        assert main(["train", "--out", str(d), "--quiet", *_sets(TINY + opts)]) == 0
        assert main(["evaluate", str(d), "--no-figure"]) == 0
        if name != "blur":
            assert main(["stress", str(d), "--shifts", "noise", "--n", "2", "--no-report"]) == 0
        runs[name] = d
    return runs


def _copy(run: Path, name: str) -> Path:
    d = run.parent / name
    shutil.copytree(run, d, ignore=shutil.ignore_patterns("tensorboard"))
    return d


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _hdf5_layout(d: Path, train) -> str:
    """ground_truth_{train,validation,test}_000.h5 under `d`: valid val/test files, and a train file
    written by `train(h5py.File)`; returns the ``hdf5:`` source."""
    import h5py

    d.mkdir(parents=True)
    for split in ("validation", "test"):
        with h5py.File(d / f"ground_truth_{split}_000.h5", "w") as f:
            f.create_dataset("data", data=np.full((4, 40, 40), 0.5, np.float32))
    with h5py.File(d / "ground_truth_train_000.h5", "w") as f:
        train(f)
    return f"hdf5:{d}/ground_truth_*.h5"


def _hdf5_cases(base: Path) -> list[tuple[str, str, str]]:
    """(case, the data.source, what the one line must say)."""
    import h5py

    h5 = base / "h5"
    cases = [
        ("no-frames", lambda f: f.create_dataset("data", shape=(0, 40, 40), dtype="f4"), "holds no images"),
        # 10⁵ × 10⁵ per image declared, nothing stored (chunked, unwritten): refused before any read
        ("huge-declared", lambda f: f.create_dataset("data", shape=(2, 100_000, 100_000), dtype="f4",
                                                     chunks=(1, 64, 64)), "pixels"),
        ("complex", lambda f: f.create_dataset("data", data=np.ones((4, 40, 40), np.complex64)), "complex64"),
        ("bool", lambda f: f.create_dataset("data", data=np.ones((4, 40, 40), bool)), "bool"),
        ("compound", lambda f: f.create_dataset("data", shape=(4, 40, 40), dtype=np.dtype([("a", "f4"), ("b", "i4")])),
         "expected images [N, H, W]"),
        ("strings", lambda f: f.create_dataset("data", data=np.array([b"x"] * 4, dtype=h5py.string_dtype())),
         "expected images [N, H, W]"),
        ("group", lambda f: f.create_group("data").create_dataset("x", data=np.ones((2, 40, 40))), "is a group"),
        ("one-dimensional", lambda f: f.create_dataset("data", data=np.ones(1600, np.float32)),
         "expected images [N, H, W]"),
        ("five-dimensional", lambda f: f.create_dataset("data", data=np.ones((1, 1, 4, 40, 40), np.float32)),
         "expected images [N, H, W]"),
    ]
    return [(name, _hdf5_layout(h5 / name, make), msg) for name, make, msg in cases]


def _yaml(base: Path, name: str, text: str) -> str:
    p = base / "yaml" / f"{name}.yaml"
    p.parent.mkdir(exist_ok=True)
    p.write_text(text)
    return str(p)


def _build(base: Path) -> tuple[list, list, dict]:
    """(normal cases, hostile cases as (name, argv), expected message per hostile case)."""
    runs = _make_runs(base)
    ct, blur, lpd = runs["ct"], runs["blur"], runs["lpd"]
    scratch = base.parent / f"{base.name}-scratch"  # the normal cases write here, outside the watched tree
    scratch.mkdir()
    train_out = str(base / "new-run")
    tiny_ct = TINY + RUNS["ct"]
    cases, expect = [], {}

    def case(name: str, argv: list[str], message: str) -> None:
        cases.append((name, argv))
        expect[name] = message

    def train(name: str, extra: list[str], message: str, base_opts: list[str] = tiny_ct) -> None:
        case(name, ["train", "--out", train_out, "--quiet", *_sets(base_opts + extra)], message)

    # -- physics distributions ------------------------------------------------------------------
    train("dist-huge-choice", ["operator.angles={choice: [" + ", ".join(map(str, range(1, 5002))) + "]}"],
          "at most 1000 are allowed")
    train("dist-too-many-operators", ["operator.angles={choice: [" + ", ".join(map(str, range(8, 48))) + "]}",
                                      "operator.detectors={choice: [" + ", ".join(map(str, range(24, 64))) + "]}"],
          "256")
    train("dist-nan-bound", ["noise.sigma={uniform: [.nan, 0.1]}"], "two finite numbers")
    train("dist-inf-bound", ["operator.angles={uniform: [8, .inf]}"], "two finite numbers")
    train("dist-log-zero", ["noise.sigma={log_uniform: [0, 0.1]}"], "0 < low")
    train("dist-normal-nan", ["noise.sigma={normal: [0.01, .nan]}"], "finite numbers")
    train("dist-grid-huge", ["operator.angles={uniform: [8, 32], grid: 1000000000}"], "grid must be a whole number")
    train("dist-grid-inf", ["operator.angles={uniform: [8, 32], grid: .inf}"], "grid must be a whole number")
    train("dist-zero-weights", ["operator.angles={choice: [8, 16], weights: [0, 0]}"], "weights")
    train("dist-overflow-weights", ["operator.angles={choice: [8, 16], weights: [1e308, 1e308]}"], "weights")
    train("dist-nan-weight", ["operator.angles={choice: [8, 16], weights: [.nan, 1]}"], "weights")
    train("dist-nested-weight", ["operator.angles={choice: [8, 16], weights: [{uniform: [0, 1]}, 1]}"], "weights")
    train("dist-nested-distribution", ["operator.angles={choice: [{uniform: [8, 16]}, 16]}"], "invalid value")
    train("dist-weights-count", ["operator.angles={choice: [8, 16], weights: [1]}"], "weights")
    train("dist-unknown-kind", ["operator.angles={poisson: 3}"], "a distribution is one of")
    train("dist-nominal-outside", ["operator.angles={uniform: [8, 16], nominal: 60}"], "outside")
    recursive = _yaml(base, "recursive-weights", "operator:\n  name: tomography\n  angles:\n"
                                                 "    choice: [8, 16]\n    weights: &w [1, *w]\n")
    case("dist-recursive-weights", ["train", recursive, "--out", train_out, "--quiet", *_sets(TINY)], "")
    bomb = ["operator:", "  name: tomography", "  angles:", "    choice: [8, 16]", "    weights:",
            "      a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    bomb += [f"      a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    case("dist-alias-bomb-weights", ["train", _yaml(base, "bomb", "\n".join(bomb) + "\n"), "--out", train_out,
                                     "--quiet", *_sets(TINY)], "")

    # -- compare ------------------------------------------------------------------------------
    cmp_out = str(base / "cmp")
    no_json = _copy(ct, "ct-no-stress-json")
    (no_json / "stress.json").unlink()
    no_csv = _copy(ct, "ct-no-stress-csv")
    (no_csv / "stress.csv").unlink()
    header_only = _copy(ct, "ct-header-only")
    (header_only / "metrics.csv").write_text((ct / "metrics.csv").read_text().splitlines()[0] + "\n")
    truncated = _copy(ct, "ct-truncated-row")
    lines = (ct / "metrics.csv").read_text().splitlines()
    (truncated / "metrics.csv").write_text("\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 2]]) + "\n")
    half = _copy(ct, "ct-half-written-stress")  # stress.csv of a new study, stress.json of the old one
    rows = (half / "stress.csv").read_text().splitlines()
    extra = [r.replace("noise,", "calibration-offset,", 1) for r in rows[1:]]
    (half / "stress.csv").write_text("\n".join(rows + extra) + "\n")
    other_task = _copy(ct, "ct-other-views")  # the same files, another geometry
    cfg = yaml.safe_load((other_task / "config.yaml").read_text())
    cfg["operator"]["angles"] = 32
    (other_task / "config.yaml").write_text(yaml.safe_dump(cfg))
    _edit_json(other_task / "stress.json",
               lambda m: m["reference"]["physics"]["operator"]["params"].__setitem__("angles", 32))
    def stress_json(name: str, text: str) -> Path:
        d = _copy(ct, f"ct-stress-json-{name}")
        (d / "stress.json").write_text(text)
        return d

    meta = json.loads((ct / "stress.json").read_text())
    for name, text, message in [
        ("deeply-nested", "[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ("reference-text", json.dumps({**meta, "reference": "tomography"}), "field reference"),
        ("levels-not-a-list", json.dumps({**meta, "shifts": [{**meta["shifts"][0], "levels": 7}]}), "shifts"),
        ("not-an-object", "[1, 2, 3]", "stress study"),
        ("binary", "\x00\xff" * 64, "stress study"),
    ]:
        case(f"compare-stress-json-{name}", ["compare", str(ct), str(stress_json(name, text)), "--out", cmp_out],
             message)
    huge = _copy(ct, "ct-huge-metrics")
    with (huge / "metrics.csv").open("r+b") as f:  # sparse: 65 MiB declared, nothing written
        f.truncate(65 << 20)
    case("compare-huge-metrics", ["compare", str(ct), str(huge), "--out", cmp_out], "larger than 16 MiB")
    being_written = base / "runs" / "being-written"  # a training start: config.yaml only, so far
    being_written.mkdir()
    shutil.copy(ct / "config.yaml", being_written / "config.yaml")
    case("compare-a-run-being-trained", ["compare", str(ct), str(being_written), "--out", cmp_out],
         "neither metrics.csv nor stress.csv")
    max_min = _copy(ct, "ct-max-min")  # the same task scored with L = max − min instead of L = 1
    (max_min / "metrics.csv").write_text((ct / "metrics.csv").read_text().replace(",1.0,", ",max-min,"))
    _edit_json(max_min / "stress.json", lambda m: m.__setitem__("data_range", "max-min"))
    case("compare-other-psnr-convention", ["compare", str(ct), str(max_min), "--out", cmp_out], "PSNR data range")
    mixed = _copy(ct, "ct-mixed-ranges")
    _edit_json(mixed / "stress.json", lambda m: m.__setitem__("data_range", "max-min"))
    case("compare-mixed-psnr-conventions", ["compare", str(ct), str(mixed), "--out", cmp_out], "different PSNR")
    case("compare-different-tasks", ["compare", str(ct), str(blur), "--out", cmp_out], "cannot be compared")
    case("compare-different-geometry", ["compare", str(ct), str(other_task), "--out", cmp_out], "cannot be compared")
    case("compare-no-stress-json", ["compare", str(ct), str(no_json), "--out", cmp_out], "no stress.json")
    case("compare-no-stress-csv", ["compare", str(ct), str(no_csv), "--out", cmp_out], "no stress.csv")
    case("compare-header-only-metrics", ["compare", str(ct), str(header_only), "--out", cmp_out], "no rows")
    case("compare-truncated-metrics", ["compare", str(ct), str(truncated), "--out", cmp_out], "metrics")
    case("compare-half-written-stress", ["compare", str(ct), str(half), "--out", cmp_out], "disagree")

    # -- HDF5 sources -------------------------------------------------------------------------
    for name, source, message in _hdf5_cases(base):
        train(f"hdf5-{name}", [f"data.source={source}"], message)

    # -- the trust sidecar and the baselines of reconstruct --model --------------------------
    (base / "recon").mkdir()
    x = scratch / "image.npy"  # an image the model's task simulates y from (--simulate)
    np.save(x, np.full((32, 32), 0.5, np.float32))
    recon_out = str(base / "recon" / "x.npy")

    def reconstruct(name: str, run: Path, message: str, *more: str) -> None:
        case(name, ["reconstruct", "--model", str(run), "--simulate", "--input", str(x), "--output", recon_out,
                    *more], message)

    def tampered(name: str, edit) -> Path:
        d = _copy(ct, f"ct-{name}")
        _edit_json(d / "baselines.json", edit)
        return d

    def tv_params(b: dict) -> dict:
        return b["tv"].setdefault("params", b["tv"])

    for name, edit, message in [
        ("lam-nan", lambda b: tv_params(b).__setitem__("lam", math.nan), "lam"),
        ("lam-negative", lambda b: tv_params(b).__setitem__("lam", -1.0), "lam"),
        ("lam-text", lambda b: tv_params(b).__setitem__("lam", "a lot"), "lam"),
        ("iters-huge", lambda b: tv_params(b).__setitem__("iters", 10 ** 12), "iters"),
        ("params-list", lambda b: b["tv"].__setitem__("params", [1, 2]), "baselines"),
        ("unknown-param", lambda b: tv_params(b).__setitem__("warp", 9), "warp"),
    ]:
        reconstruct(f"baselines-{name}", tampered(name, edit), message)
    garbage = _copy(ct, "ct-baselines-binary")
    (garbage / "baselines.json").write_bytes(os.urandom(256))
    reconstruct("baselines-binary", garbage, "baselines")
    views = _copy(ct, "ct-model-json-views")
    _edit_json(views / "model.json", lambda m: m["physics"]["operator"]["params"].__setitem__("angles", 10 ** 7))
    reconstruct("model-json-huge-views", views, "")
    (base / "a-directory.trust.json").mkdir()
    case("sidecar-is-a-directory", ["reconstruct", "--model", str(ct), "--simulate", "--input", str(x), "--output",
                                    str(base / "a-directory.npy")], "is a directory")
    os.symlink(scratch / "elsewhere.trust.json", base / "dangling.trust.json")  # points outside, at nothing yet
    case("sidecar-is-a-dangling-symlink", ["reconstruct", "--model", str(ct), "--simulate", "--input", str(x),
                                           "--output", str(base / "dangling.npy")], "output exists")
    (base / "residual-dir.png").mkdir()
    reconstruct("residual-map-is-a-directory", ct, "is a directory", "--residual-map", str(base / "residual-dir.png"))
    reconstruct("ensemble-of-another-task", ct, "trained for another operator", "--ensemble", str(blur))
    reconstruct("bound-probability-one", ct, "a probability in (0, 1)", "--bound", "1")
    reconstruct("bound-too-few-calibration-pairs", ct, "needs at least 99 calibration pairs", "--bound", "0.99")
    reconstruct("intervals-too-few-calibration-pairs", ct, "need at least 22 calibration pairs", "--intervals")
    (base / "x.lower.npy").mkdir()
    case("interval-image-is-a-directory", ["reconstruct", "--model", str(ct), "--simulate", "--input", str(x),
                                           "--output", str(base / "x.npy"), "--intervals"], "is a directory")
    case("outside-method-that-is-not-one", ["evaluate", str(ct), "--out", str(scratch / "never"), "--methods",
                                            "fbp,json:dumps.__doc__"], "not a reconstructor")
    case("outside-method-of-a-missing-module", ["evaluate", str(ct), "--out", str(scratch / "never"), "--methods",
                                                "fbp,no_such_module_here:X"], "cannot import module")

    # -- model-based kinds on operators they cannot use ----------------------------------------
    mri = _yaml(base, "mri-task", "operator: {name: mri}\ndata: {size: 32}\n")
    case("lpd-of-real-data-on-complex-data", ["reconstruct", "--model", str(lpd), "--task", mri, "--simulate",
                                              "--input", str(x), "--output", recon_out], "built for real measurements")
    train("lpd-paper-on-vector-measurements", ["model.name=lpd", "operator.name=matrix", "operator.m=300"],
          "use variant 'light'", TINY)
    train("pnp-with-a-denoiser-that-is-not-one", ["model.name=pnp", f"model.denoiser={ct}"], "denoiser",
          TINY + RUNS["ct"][:2])
    train("lpd-with-zero-iterations", ["model.name=lpd", "model.iterations=0"], "iterations")
    train("lpd-with-huge-iterations", ["model.name=lpd", f"model.iterations={10 ** 9}"], "iterations")

    # -- the trust reference (evaluation.trust_reference) and the calibration records ---------------------
    def with_reference(run: Path, name: str, reference: object) -> Path:
        d = _copy(run, name)
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        cfg["evaluation"]["trust_reference"] = reference
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        return d

    case("trust-reference-that-cannot-run-on-k", ["evaluate", str(with_reference(blur, "blur-fbp-reference", "fbp")),
                                                  "--out", str(scratch / "never"), "--no-figure"],
         "cannot run on the task's operator 'blur'")
    reconstruct("trust-reference-is-the-model", with_reference(ct, "ct-model-reference", "model"),
                "is the run's own model")
    reconstruct("trust-reference-unknown", with_reference(ct, "ct-unknown-reference", "no-such-method"),
                "unknown method")
    stored = _copy(ct, "ct-tampered-record")
    from invmap.cli import main

    assert main(["reconstruct", "--model", str(stored), "--simulate", "--input", str(x), "--output",
                 str(scratch / "calibrated.npy")]) == 0  # writes the run's calibration record
    _edit_json(stored / "trust_calibration.json",
               lambda d: [r["fitted"].__setitem__("reference", 5) for r in d["records"].values()])
    reconstruct("calibration-record-with-a-tampered-reference", stored, "not a calibration record")

    normal = [("normal-reconstruct", ["reconstruct", "--model", str(ct), "--simulate", "--input", str(x), "--output",
                                      str(scratch / "x.npy")]),
              ("normal-compare", ["compare", str(ct), str(_copy(ct, "ct-copy")), "--out", str(scratch / "cmp")]),
              ("normal-evaluate", ["evaluate", str(lpd), "--out", str(scratch / "eval"), "--no-figure"])]
    return normal, cases, expect


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("campaign")
    normal, cases, expect = _build(base)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(budget.PIXELS_ENV, None)
    p = subprocess.run([sys.executable, str(_CHILD), str(base), json.dumps(normal + cases)], env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    done = {r["name"]: r for r in res}
    assert not (base.parent / f"{base.name}-scratch" / "elsewhere.trust.json").exists()  # no write through a link
    for name, _ in normal:
        assert done[name]["rc"] == 0, (name, done[name]["stderr"][-2000:])
    return {"normal": [done[n] for n, _ in normal], "cases": done, "expect": expect,
            "tree": done[normal[-1][0]]["tree"], "names": [n for n, _ in cases]}


@pytest.mark.processes
def test_the_case_list_is_complete(campaign):
    assert campaign["names"] == CASES


@pytest.mark.processes
@pytest.mark.parametrize("name", CASES)
def test_hostile_input_is_one_line_exit_2_bounded_and_writes_nothing(campaign, name):
    r = campaign["cases"][name]
    lines = r["stderr"].strip().splitlines()
    assert r["rc"] == 2, (r["rc"], r["stderr"][-2000:])
    assert "Traceback" not in r["stderr"] and lines, r["stderr"][-2000:]
    assert [line for line in lines if "invmap: error:" in line] == [lines[-1]], r["stderr"]
    assert lines[-1].startswith("invmap: error: ") and campaign["expect"][name] in lines[-1], lines[-1]
    assert len(lines[-1]) < 600
    assert r["seconds"] < SECONDS
    normal_peak = max(n["peak_mb"] for n in campaign["normal"])
    assert r["peak_mb"] <= MEMORY_FACTOR * normal_peak, (r["peak_mb"], normal_peak)
    assert r["tree"] == campaign["tree"], "a file was written, changed or removed"
