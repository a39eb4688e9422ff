"""The hostile-input campaign over methods, exit codes and messages (issue #36): methods from
outside that return NaN, complex or wrong-shaped images, raise, sleep on import, construction or
call, or are the standard library's; a stress study that must not lose the earlier one; parameter
values that would run for days; argparse's and YAML's own errors. Every case must end in ONE line
``invmap: error: …`` on stderr (nothing else there), exit 2, within `SECONDS`, with a peak memory
at most `MEMORY_FACTOR` times that of the normal commands, and with every file of the watched tree
(a task, its evaluation and stress study) unchanged and none added.

Everything is built here in tmp_path: the task, the evaluated run (fbp, tv, a stress study of the
noise shift), and the module ``hostile`` of outside methods, importable by the child through
PYTHONPATH. All commands run in one child process, which records after each its exit status,
stderr, peak RSS, seconds and a digest of the tree, so one test per case reads its own record.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from invmap import budget

MEMORY_FACTOR = 2.0
SECONDS = 60.0

HOSTILE = '''
import time

import numpy as np
import torch


def _zeros(y, physics, dtype=torch.float32):
    return torch.zeros((y.shape[0], 1, *physics.operator.in_shape), dtype=dtype)


def halved(y, physics):
    from invmap.variational import build
    return 0.5 * build("fbp")(y, physics)

def nan_method(y, physics):
    return _zeros(y, physics) + float("nan")

def inf_method(y, physics):
    return _zeros(y, physics) - float("inf")

def int_method(y, physics):
    return (halved(y, physics) * 100).round().to(torch.int64) // 100

def complex_method(y, physics):
    return _zeros(y, physics, torch.complex64)

def object_array(y, physics):
    return np.array([None] * y.shape[0], dtype=object)

def big_endian(y, physics):
    return halved(y, physics).numpy().astype(">f8")

def raises(y, physics):
    raise RuntimeError("the solver diverged")

def returns_none(y, physics):
    return None

def returns_list(y, physics):
    return [0.0, 1.0]

def wrong_shape(y, physics):
    return torch.zeros(y.shape[0], 3, 3)

def sleeps(y, physics):
    time.sleep(10_000)

class SleepsWhenBuilt:
    def __init__(self):
        time.sleep(10_000)

    def __call__(self, y, physics):
        return halved(y, physics)
'''

SLEEPS_ON_IMPORT = "import time\ntime.sleep(10_000)\n\ndef method(y, physics):\n    return y\n"

TASK = ("name: hostile-methods\ndata: {size: 32, val: 4, test: 4}\noperator: {name: tomography, angles: 12}\n"
        "evaluation: {methods: [fbp, tv]}\n")

#: the hostile cases `_build` makes, in its order, by class of issue #36
CASES = [
    # 1b: a failing method in a stress study: exit 2, named, the earlier study kept
    "stress-nan-method", "stress-raising-method", "stress-sleeping-method",
    # 4: hangs: declared ranges, time budgets of outside methods
    "diffpir-steps-ten-thousand", "diffpir-cg-iters-hundred-thousand", "pnp-iters-huge", "samples-a-thousand",
    "outside-sleeps-on-call", "outside-sleeps-on-import", "outside-sleeps-when-built",
    # 5: outputs checked in one place
    "outside-returns-complex", "outside-returns-inf", "outside-returns-object-array",
    # 6: exit codes
    "outside-raises-only-method", "outside-wrong-shape", "outside-returns-none", "outside-returns-list",
    "evaluate-nan-method", "os-system-as-method", "builtins-exec-as-method", "config-zoo-path",
    "config-zoo-unknown-entry", "config-params-refused",
    # 7: messages
    "argparse-samples-not-int", "argparse-bound-not-float", "argparse-stress-n-not-int", "argparse-unknown-option",
    "argparse-no-command-option", "param-seed-overflow", "param-alias-bomb", "param-alias-bomb-eight-levels",
    "set-alias-bomb", "params-refused-before-announcing",
]

#: the child process that runs the cases (shared by test_hardening_campaign.py and test_hardening_methods.py)
_CHILD = Path(__file__).with_name("_campaign_child.py")


def _bomb(levels: int) -> str:
    """A YAML flow mapping whose aliases expand to 10^levels values (a billion laughs)."""
    parts = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    parts += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "{" + ", ".join(parts) + "}"


def _build(base: Path, scratch: Path) -> tuple[list, list, dict, list]:
    """(normal cases, hostile cases as (name, argv), expected message per case, large-batch cases)."""
    from invmap.cli import main

    (base / "hostile.py").write_text(HOSTILE)
    (base / "sleeps_on_import.py").write_text(SLEEPS_ON_IMPORT)
    task = base / "task.yaml"
    task.write_text(TASK)
    run = base / "run"
    assert main(["evaluate", str(task), "--out", str(run), "--n", "2", "--tune-seconds", "1", "--no-figure"]) == 0
    assert main(["stress", str(run), "--shifts", "noise", "--n", "2", "--no-report"]) == 0
    assert len((run / "stress.csv").read_text().splitlines()) > 1
    copy = scratch / "run-copy"  # the normal commands write here, outside the watched tree
    shutil.copytree(run, copy)
    x = scratch / "image.npy"
    np.save(x, np.full((32, 32), 0.5, np.float32))
    np.save(scratch / "image-big-endian.npy", np.full((32, 32), 0.5, ">f8"))
    from invmap.config import load_config

    physics = load_config(task).physics()
    import torch

    y = physics.operator(torch.rand(1024, 1, 32, 32, generator=torch.Generator().manual_seed(0)))
    np.save(scratch / "y16.npy", y[:16].numpy())
    np.save(scratch / "y1024.npy", y.numpy())
    never = str(scratch / "never")
    cases, expect = [], {}

    def case(name: str, argv: list[str], message: str) -> None:
        cases.append((name, argv))
        expect[name] = message

    def evaluate(name: str, methods: str, message: str, *more: str) -> None:
        case(name, ["evaluate", str(run), "--out", never, "--n", "2", "--no-figure", "--methods", methods, *more],
             message)

    def reconstruct(name: str, message: str, *more: str) -> None:
        case(name, ["reconstruct", "--task", str(task), "--simulate", "--input", str(x), "--output",
                    str(scratch / "never.npy"), *more], message)

    # -- 1b: a stress study whose method fails ------------------------------------------------
    stress = ["stress", str(run), "--shifts", "noise", "--n", "2", "--no-report", "--methods"]
    case("stress-nan-method", stress + ["fbp,hostile:nan_method"], "method 'hostile:nan_method' returned NaN")
    case("stress-raising-method", stress + ["fbp,hostile:raises"],
         "method 'hostile:raises' raised RuntimeError: the solver diverged")
    case("stress-sleeping-method", stress + ["fbp,hostile:sleeps", "--outside-seconds", "2"],
         "ran past its time budget of 2 s")

    # -- 3: memory: a large batch runs in chunks (the large cases, checked below) ---------------

    # -- 4: hangs -----------------------------------------------------------------------------
    reconstruct("diffpir-steps-ten-thousand", "'steps' (int >= 1, <= 1000)", "--method", "diffpir",
                "--param", "steps=10000")
    reconstruct("diffpir-cg-iters-hundred-thousand", "'cg_iters' (int >= 1, <= 200)", "--method", "diffpir",
                "--param", "cg_iters=100000")
    reconstruct("pnp-iters-huge", "'iters' (int >= 1, <= 1000)", "--method", "pnp", "--param", "iters=1000000")
    reconstruct("samples-a-thousand", "must lie in [1, 100]", "--method", "diffpir", "--samples", "1000")
    evaluate("outside-sleeps-on-call", "fbp,hostile:sleeps", "'hostile:sleeps' ran past its time budget of 2 s",
             "--outside-seconds", "2")
    evaluate("outside-sleeps-on-import", "fbp,sleeps_on_import:method",
             "ran past its time budget of 1 s per call (evaluation.outside_call_seconds) during the import",
             "--set", "evaluation.outside_call_seconds=1")
    evaluate("outside-sleeps-when-built", "fbp,hostile:SleepsWhenBuilt", "during SleepsWhenBuilt()",
             "--outside-seconds", "1.5")

    # -- 5: outputs ---------------------------------------------------------------------------
    evaluate("outside-returns-complex", "fbp,hostile:complex_method", "returned complex values")
    evaluate("outside-returns-inf", "fbp,hostile:inf_method", "returned NaN or Inf values (in 2 of 2 images)")
    evaluate("outside-returns-object-array", "fbp,hostile:object_array", "array of dtype object")

    # -- 6: exit codes ------------------------------------------------------------------------
    evaluate("outside-raises-only-method", "hostile:raises", "method 'hostile:raises' raised RuntimeError")
    evaluate("outside-wrong-shape", "fbp,hostile:wrong_shape", "returned shape [2, 3, 3], expected [2, 1, 32, 32]")
    evaluate("outside-returns-none", "fbp,hostile:returns_none", "returned NoneType, not an image tensor")
    evaluate("outside-returns-list", "fbp,hostile:returns_list", "returned list, not an image tensor")
    evaluate("evaluate-nan-method", "fbp,hostile:nan_method", "method 'hostile:nan_method' returned NaN")
    evaluate("os-system-as-method", "fbp,os:system", "Python's standard library")
    evaluate("builtins-exec-as-method", "fbp,builtins:exec", "Python's standard library")
    case("config-zoo-path", ["config", "--check", str(task), "--set", "evaluation.zoo=[../../etc]"],
         "'../../etc' is not a zoo entry name")
    case("config-zoo-unknown-entry", ["config", "--check", str(task), "--set", "evaluation.zoo=[no-such-entry]"],
         "no zoo entry 'no-such-entry'")
    case("config-params-refused", ["config", "--check", str(task), "--set", "evaluation.params={tv: {lam: -1}}"],
         "evaluation.params.tv")

    # -- 7: messages --------------------------------------------------------------------------
    reconstruct("argparse-samples-not-int", "reconstruct: argument --samples: invalid int value: 'x'",
                "--method", "diffpir", "--samples", "x")
    reconstruct("argparse-bound-not-float", "argument --bound: invalid float value: 'high'", "--method", "tv",
                "--bound", "high")
    case("argparse-stress-n-not-int", ["stress", str(run), "--n", "many"], "stress: argument --n: invalid int")
    case("argparse-unknown-option", ["evaluate", str(run), "--methodz", "fbp"], "unrecognized arguments: --methodz")
    case("argparse-no-command-option", ["--frobnicate"], "unrecognized arguments: --frobnicate")
    reconstruct("param-seed-overflow", "'seed' must lie in [-9223372036854775808, 9223372036854775807]",
                "--method", "diffpir", "--param", "seed=99999999999999999999999")
    reconstruct("param-alias-bomb", "--param lam: the value is more than", "--method", "tv",
                "--param", f"lam={_bomb(6)}")
    reconstruct("param-alias-bomb-eight-levels", "once its aliases are expanded", "--method", "tv",
                "--param", f"lam={_bomb(8)}")
    reconstruct("set-alias-bomb", "once its aliases are expanded", "--method", "tv", "--set",
                f"operator.angles={_bomb(8)}")
    case("params-refused-before-announcing",  # a config's evaluation has no baselines yet: tuning would be said
         ["evaluate", str(task), "--out", never, "--n", "2", "--set", "evaluation.params={tv: {iters: -3}}"],
         "evaluation.params.tv")

    normal = [
        ("normal-evaluate", ["evaluate", str(copy), "--n", "2", "--no-figure", "--methods", "fbp,tv,hostile:halved"]),
        ("normal-stress", ["stress", str(copy), "--shifts", "noise", "--n", "2", "--no-report", "--methods",
                           "fbp,tv,hostile:halved"]),
        ("normal-reconstruct-pnp", ["reconstruct", "--method", "pnp", "--param", "iters=1", "--param",
                                    "equivariant=false", "--task", str(task), "--input", str(scratch / "y16.npy"),
                                    "--output", str(scratch / "x16.npy")]),
        ("normal-big-endian-input", ["reconstruct", "--method", "fbp", "--task", str(task), "--simulate", "--input",
                                     str(scratch / "image-big-endian.npy"), "--output", str(scratch / "be.npy")]),
        ("normal-int-and-big-endian-outputs", ["evaluate", str(copy), "--out", str(scratch / "outputs"), "--n", "2",
                                               "--no-figure", "--methods", "fbp,hostile:int_method,hostile:big_endian"]),
        ("normal-keep-going-evaluate", ["evaluate", str(copy), "--out", str(scratch / "kept"), "--n", "2",
                                        "--no-figure", "--methods", "fbp,hostile:raises", "--keep-going"]),
        ("normal-keep-going-stress", ["stress", str(copy), "--shifts", "noise", "--n", "2", "--no-report",
                                      "--methods", "fbp,hostile:nan_method", "--keep-going"]),
    ]
    large = [("large-batch-pnp", ["reconstruct", "--method", "pnp", "--param", "iters=1", "--param", "equivariant=false",
                                  "--task", str(task), "--input", str(scratch / "y1024.npy"), "--output",
                                  str(scratch / "x1024.npy")])]
    return normal, cases, expect, large


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("methods")
    scratch = tmp_path_factory.mktemp("methods-scratch")
    normal, cases, expect, large = _build(base, scratch)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(base)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    env.pop(budget.PIXELS_ENV, None)
    env.pop(budget.MEMORY_ENV, None)
    p = subprocess.run([sys.executable, str(_CHILD), str(base), json.dumps(normal + cases + large)], env=env,
                       capture_output=True, text=True, timeout=900, cwd=scratch)
    assert p.returncode == 0, p.stderr[-3000:]
    done = {r["name"]: r for r in json.loads(p.stdout.strip().splitlines()[-1])}
    for name, _ in normal + large:
        assert done[name]["rc"] == 0, (name, done[name]["stderr"][-2000:])
    return {"normal": [done[n] for n, _ in normal], "cases": done, "expect": expect, "scratch": scratch,
            "tree": done[normal[-1][0]]["tree"], "names": [n for n, _ in cases], "large": [n for n, _ in large]}


@pytest.mark.processes
def test_the_case_list_is_complete(campaign):
    assert campaign["names"] == CASES


@pytest.mark.processes
@pytest.mark.parametrize("name", CASES)
def test_hostile_input_is_one_line_exit_2_bounded_and_writes_nothing(campaign, name):
    r = campaign["cases"][name]
    lines = r["stderr"].strip().splitlines()
    assert r["rc"] == 2, (r["rc"], r["stderr"][-2000:])
    assert len(lines) == 1, r["stderr"][-3000:]  # nothing else on stderr: no usage, no "tuning them now…"
    assert lines[0].startswith("invmap: error: ") and campaign["expect"][name] in lines[0], lines[0]
    assert len(lines[0]) < 600
    assert r["seconds"] < SECONDS
    normal_peak = max(n["peak_mb"] for n in campaign["normal"])
    assert r["peak_mb"] <= MEMORY_FACTOR * normal_peak, (r["peak_mb"], normal_peak)
    assert r["tree"] == campaign["tree"], "a file was written, changed or removed"
    assert not (campaign["scratch"] / "never").exists() and not (campaign["scratch"] / "never.npy").exists()


@pytest.mark.processes
def test_a_large_batch_is_reconstructed_in_chunks_within_twice_the_memory_of_a_small_one(campaign):
    """1024 sinograms through pnp (class 3): the whole batch at once took 3× the memory of 16."""
    normal_peak = max(n["peak_mb"] for n in campaign["normal"])
    for name in campaign["large"]:
        assert campaign["cases"][name]["peak_mb"] <= MEMORY_FACTOR * normal_peak, campaign["cases"][name]
    assert np.load(campaign["scratch"] / "x1024.npy").shape == (1024, 32, 32)


@pytest.mark.processes
def test_integer_and_big_endian_outputs_are_images_and_big_endian_input_is_read(campaign):
    from invmap.evaluation.evaluate import read_metrics

    rows = {r["method"]: r for r in read_metrics(campaign["scratch"] / "outputs" / "metrics.csv")}
    assert set(rows) == {"fbp", "hostile:int_method", "hostile:big_endian"}
    assert np.isfinite(rows["hostile:int_method"]["rho_mean"]) and rows["hostile:big_endian"]["psnr_mean"] > 0
    assert np.load(campaign["scratch"] / "be.npy").shape == (32, 32)


@pytest.mark.processes
def test_keep_going_scores_the_others_and_records_the_failure(campaign):
    scratch = campaign["scratch"]
    assert "hostile:raises failed and has no row: method 'hostile:raises' raised RuntimeError" in \
        (scratch / "kept" / "metrics.md").read_text()
    assert "hostile:raises" not in (scratch / "kept" / "metrics.csv").read_text()
    assert "time budget of hostile:raises: 300 s per call, 600 s in all" in (scratch / "kept" / "metrics.md").read_text()
    study = json.loads((scratch / "run-copy" / "stress.json").read_text())
    skipped = study["shifts"][0]["skipped"]
    assert skipped and all("hostile:nan_method" in k and "returned NaN" in v for k, v in skipped.items())
    assert study["settings"]["keep going"] is True
    assert study["settings"]["time budget of hostile:nan_method"] == "300 s per call, 600 s in all"
    assert any(r.startswith("noise,") and ",fbp," in r for r in (scratch / "run-copy" / "stress.csv").read_text().splitlines())
