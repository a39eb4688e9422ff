"""The hostile-file campaign of issue #36: the files invmap reads and writes.

Grouped by class — 1a clean-up that deleted a user's lookalike files, 1c outputs that collide,
2 writes through a link out of the run, 3 run files and configs that are devices (unbounded
reads), 4 FIFOs (blocking reads), 5 tampered JSON whose checksums still hold, 7 an earlier
stress study that cannot be read. The hostile inputs are built here around one tiny trained
CT run (~5 s). As in tests/test_hardening_campaign.py every case runs in one child process,
which records after each case its exit status, stderr, peak RSS, seconds and a digest of the
whole tree (a case that blocks is stopped by an alarm and fails):

- a hostile case ends in one line ``invmap: error: …`` (the last line on stderr, no
  traceback) naming what is wrong, exit 2, within `SECONDS`, with a peak memory at most
  `MEMORY_FACTOR` times that of the normal commands, and with every file that existed before
  unchanged and none added (a write through a link out of the run would show as a change:
  the links point inside the watched tree);
- a recovering case (classes 1a and 7) exits 0, and the test checks what it must have kept
  (the user's lookalike files, whole) or replaced (the unreadable earlier study).
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
import yaml

from invmap import budget

from test_hardening_campaign import MEMORY_FACTOR, RUNS, SECONDS, TINY, _sets

ZOO = Path(__file__).resolve().parents[1] / "src" / "invmap" / "zoo"

#: the hostile cases per class, in the order `_build` makes them (one test each)
HOSTILE = {
    "1c": ["same-residual-and-output", "residual-spelled-another-way", "residual-link-to-the-output",
           "residual-is-the-lower-interval", "output-type-unsupported-beside-a-residual", "report-out-over-a-run-file"],
    "2": ["evaluate-figures-link-out", "stress-figures-link-out", "report-figures-link-out",
          "evaluate-out-figures-link-out", "evaluate-figures-dangling-link-out", "report-stress-json-link-out",
          "compare-metrics-link-out", "train-tensorboard-link-out", "train-snapshots-link-out"],
    "3": ["config-check-dev-zero", "train-dev-zero", "train-dev-urandom", "evaluate-config-dev-zero",
          "evaluate-baselines-dev-zero", "evaluate-metrics-dev-urandom", "compare-stress-json-dev-zero",
          "compare-stress-csv-dev-urandom", "compare-metrics-dev-zero", "compare-baselines-dev-urandom",
          "reconstruct-model-json-dev-zero", "reconstruct-input-dev-zero", "reconstruct-baselines-dev-zero",
          "report-train-log-dev-zero", "compare-stress-json-is-a-directory", "train-config-is-a-directory"],
    "4": ["config-check-fifo", "train-fifo", "compare-stress-json-fifo", "compare-metrics-fifo",
          "evaluate-baselines-fifo", "reconstruct-model-json-fifo", "reconstruct-input-fifo", "report-metrics-fifo",
          "stress-checkpoint-fifo"],
    "5": ["stress-json-size-infinity", "stress-json-skipped-number", "stress-json-60000-levels",
          "stress-json-reference-list", "stress-json-level-nan", "stress-json-shift-name-number",
          "stress-json-shift-name-a-path",
          "stress-json-data-range-negative", "stress-json-verdict-text-missing", "stress-json-n-huge",
          "model-json-image-shape-infinity", "model-json-image-shape-negative", "model-json-channels-1e9",
          "model-json-channels-1e300", "zoo-card-task-text", "zoo-card-parameters-text", "zoo-show-card-kind-list",
          "reconstruct-zoo-card-name-number"],
}
#: cases that must end well (exit 0) and keep or replace what they say
RECOVER = {
    "1a": ["evaluate-beside-lookalikes", "stress-beside-lookalikes", "compare-beside-lookalikes",
           "train-beside-lookalikes", "report-beside-lookalikes"],
    "7": ["stress-earlier-deeply-nested", "stress-earlier-reference-list", "stress-earlier-fifo",
          "stress-earlier-60000-levels", "stress-earlier-shift-name-a-path"],
}

_CHILD = r"""
import contextlib, hashlib, io, json, os, resource, signal, sys, time
from pathlib import Path
from invmap import zoo
from invmap.cli import main

def digest(root):
    h = hashlib.sha1()
    for p in sorted(Path(root).rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(hashlib.sha1(p.read_bytes()).digest())
    return h.hexdigest()

class Blocked(BaseException):
    pass

def alarm(signum, frame):
    raise Blocked()

signal.signal(signal.SIGALRM, alarm)
root, cases, limit = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
real_root, out = zoo.ROOT, []
for name, argv in cases:
    zoo.ROOT = Path(argv.pop(0)[len("@zoo="):]) if argv and argv[0].startswith("@zoo=") else real_root
    err, said = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    signal.alarm(limit)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(said):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
        except Blocked:
            rc = "blocked"
        except BaseException as e:
            import traceback
            err.write("Traceback (uncaught)\n" + traceback.format_exc())
            rc = "raised"
    signal.alarm(0)
    out.append({"name": name, "rc": rc, "stderr": err.getvalue(), "stdout": said.getvalue()[-4000:],
                "seconds": time.perf_counter() - t0,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "tree": digest(root)})
print(json.dumps(out))
"""

#: a user's own files with names like invmap's temporary ones, each with content to keep
LOOKALIKES = {".album.2026_dec.tmp/photo.jpg": b"\xff\xd8 a photo", ".notes.20261207.tmp.txt": b"my notes",
              ".metrics.csv.ab12cd34.tmp.csv": b"my table", ".invmap-tmp-mine-abcdefgh/letter.txt": b"a letter",
              ".invmap-tmp-plain-12345678": b"a file with invmap's prefix"}


def _plant(folder: Path) -> None:
    """The `LOOKALIKES` in `folder`, aged a day (older than any clean-up's minimum age)."""
    for rel, data in LOOKALIKES.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for p in [folder / r for r in LOOKALIKES] + [folder / r.split("/")[0] for r in LOOKALIKES]:
        os.utime(p, (1, 1))


def _kept(folder: Path) -> bool:
    return all((folder / rel).read_bytes() == data for rel, data in LOOKALIKES.items())


def _copy(run: Path, name: str) -> Path:
    d = run.parent / name
    shutil.copytree(run, d, ignore=shutil.ignore_patterns("tensorboard"))
    return d


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _replace(path: Path, by) -> Path:
    """`path` (a file of a copied run) replaced by `by`: a link target, ``"fifo"`` or ``"dir"``."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if by == "fifo":
        os.mkfifo(path)
    elif by == "dir":
        path.mkdir()
    else:
        os.symlink(by, path)
    return path


def _build(base: Path) -> tuple[list, list, dict, dict]:
    """(normal cases, all cases as (name, argv), expected message per hostile case, recovering
    cases' folders to check)."""
    from invmap.cli import main

    runs = base / "runs"
    ct = runs / "ct"
    assert main(["train", "--out", str(ct), "--quiet", *_sets(TINY + RUNS["ct"])]) == 0
    assert main(["evaluate", str(ct), "--tune-seconds", "2", "--no-figure"]) == 0
    assert main(["stress", str(ct), "--shifts", "noise", "--n", "2", "--no-report"]) == 0
    scratch = base.parent / f"{base.name}-scratch"  # the normal and recovering cases write here, unwatched
    scratch.mkdir()
    elsewhere = base / "elsewhere"  # where a link out of a run points: inside the watched tree
    elsewhere.mkdir()
    x = scratch / "image.npy"
    np.save(x, np.full((32, 32), 0.5, np.float32))
    cases, expect, recover = [], {}, {}

    def case(name: str, argv: list[str], message: str) -> None:
        cases.append((name, argv))
        expect[name] = message

    def reconstruct(name: str, run: Path, message: str, *more: str, inp: Path = x) -> None:
        case(name, ["reconstruct", "--model", str(run), "--simulate", "--input", str(inp), *more], message)

    # -- 1c: outputs of one command that are the same file ---------------------------------
    outs = base / "outs"
    (outs / "d").mkdir(parents=True)
    same = str(outs / "same.png")
    reconstruct("same-residual-and-output", ct, "same file", "--output", same, "--residual-map", same)
    reconstruct("residual-spelled-another-way", ct, "same file", "--output", same, "--residual-map",
                str(outs / "d" / ".." / "same.png"))
    os.symlink(outs / "target.png", outs / "link.png")  # dangling: names the output-to-be
    reconstruct("residual-link-to-the-output", ct, "same file", "--output", str(outs / "target.png"),
                "--residual-map", str(outs / "link.png"))
    reconstruct("residual-is-the-lower-interval", ct, "same file", "--output", str(outs / "x.npy"), "--intervals",
                "--residual-map", str(outs / "x.lower.npy"))
    reconstruct("output-type-unsupported-beside-a-residual", ct, "unsupported output type", "--output",
                str(outs / "x.txt"), "--residual-map", str(outs / "r.png"))
    case("report-out-over-a-run-file", ["report", str(ct), "--out", str(ct / "metrics.csv")], ".html")

    # -- 2: a run's folder that is a link out of the run ----------------------------------
    linked = _copy(ct, "ct-figures-link")
    _replace(linked / "figures", elsewhere)
    case("evaluate-figures-link-out", ["evaluate", str(linked), "--methods", "fbp,tv"], "leaves")
    case("stress-figures-link-out", ["stress", str(linked), "--shifts", "noise", "--n", "2"], "leaves")
    case("report-figures-link-out", ["report", str(linked)], "leaves")
    out_dir = base / "eval-out"
    out_dir.mkdir()
    os.symlink(elsewhere, out_dir / "figures")
    case("evaluate-out-figures-link-out", ["evaluate", str(ct), "--methods", "fbp", "--out", str(out_dir)], "leaves")
    dangling = _copy(ct, "ct-figures-dangling")
    _replace(dangling / "figures", elsewhere / "not-yet")
    case("evaluate-figures-dangling-link-out", ["evaluate", str(dangling), "--methods", "fbp"], "leaves")
    foreign = elsewhere / "stress.json"
    shutil.copy(ct / "stress.json", foreign)
    out_json = _copy(ct, "ct-stress-json-link")
    _replace(out_json / "stress.json", foreign)
    case("report-stress-json-link-out", ["report", str(out_json)], "leaves")
    foreign_metrics = elsewhere / "metrics.csv"
    shutil.copy(ct / "metrics.csv", foreign_metrics)
    out_metrics = _copy(ct, "ct-metrics-link")
    _replace(out_metrics / "metrics.csv", foreign_metrics)
    case("compare-metrics-link-out", ["compare", str(ct), str(out_metrics), "--out", str(base / "cmp")], "leaves")
    for folder in ("tensorboard", "snapshots"):
        fresh = base / f"fresh-{folder}"
        fresh.mkdir()
        os.symlink(elsewhere, fresh / folder)
        case(f"train-{folder}-link-out", ["train", "--out", str(fresh), "--quiet", *_sets(TINY + RUNS["ct"])],
             "leaves")

    # -- 3 and 4: devices, directories and FIFOs where files belong -----------------------
    cmp_out = str(base / "cmp")
    fifo = base / "fifo.yaml"
    os.mkfifo(fifo)
    case("config-check-dev-zero", ["config", "--check", "/dev/zero"], "character device")
    case("config-check-fifo", ["config", "--check", str(fifo)], "FIFO")
    case("train-dev-zero", ["train", "/dev/zero", "--out", str(base / "never"), "--quiet"], "character device")
    case("train-dev-urandom", ["train", "/dev/urandom", "--out", str(base / "never"), "--quiet"], "character device")
    case("train-fifo", ["train", str(fifo), "--out", str(base / "never"), "--quiet"], "FIFO")
    (base / "a-config-folder.yaml").mkdir()
    case("train-config-is-a-directory", ["train", str(base / "a-config-folder.yaml"), "--out", str(base / "never")],
         "directory")

    def run_with(file: str, by, tag: str) -> Path:
        d = _copy(ct, f"ct-{file.replace('.', '-')}-{tag}")
        _replace(d / file, by)
        return d

    # within a run a device is reached through a link; a link out of the run is refused before
    # anything is opened ("leaves"); the run itself may also sit on a device-named link target
    zero = elsewhere / "zero"
    os.symlink("/dev/zero", zero)
    case("evaluate-config-dev-zero", ["evaluate", str(run_with("config.yaml", "/dev/zero", "zero")), "--methods", "fbp"],
         "leaves")
    case("evaluate-baselines-dev-zero", ["evaluate", str(run_with("baselines.json", "/dev/zero", "zero")),
                                         "--methods", "fbp"], "leaves")
    case("evaluate-metrics-dev-urandom", ["evaluate", str(run_with("metrics.csv", "/dev/urandom", "urandom")),
                                          "--methods", "fbp"], "leaves")
    case("evaluate-baselines-fifo", ["evaluate", str(run_with("baselines.json", "fifo", "fifo")), "--methods", "fbp"],
         "FIFO")
    case("compare-stress-json-dev-zero", ["compare", str(ct), str(run_with("stress.json", "/dev/zero", "zero")),
                                          "--out", cmp_out], "leaves")
    case("compare-stress-csv-dev-urandom", ["compare", str(ct), str(run_with("stress.csv", "/dev/urandom", "u")),
                                            "--out", cmp_out], "leaves")
    case("compare-metrics-dev-zero", ["compare", str(ct), str(run_with("metrics.csv", "/dev/zero", "zero")),
                                      "--out", cmp_out], "leaves")
    case("compare-baselines-dev-urandom", ["compare", str(ct), str(run_with("baselines.json", "/dev/urandom", "u")),
                                           "--out", cmp_out], "leaves")
    case("compare-stress-json-is-a-directory", ["compare", str(ct), str(run_with("stress.json", "dir", "dir")),
                                                "--out", cmp_out], "directory")
    case("compare-stress-json-fifo", ["compare", str(ct), str(run_with("stress.json", "fifo", "fifo")), "--out",
                                      cmp_out], "FIFO")
    case("compare-metrics-fifo", ["compare", str(ct), str(run_with("metrics.csv", "fifo", "fifo")), "--out", cmp_out],
         "FIFO")
    recon_out = str(base / "recon.npy")
    reconstruct("reconstruct-model-json-dev-zero", run_with("model.json", "/dev/zero", "zero"), "character device",
                "--output", recon_out)
    reconstruct("reconstruct-model-json-fifo", run_with("model.json", "fifo", "fifo"), "FIFO", "--output", recon_out)
    reconstruct("reconstruct-baselines-dev-zero", run_with("baselines.json", zero, "zero-inside"), "leaves",
                "--output", recon_out)
    dev_input = base / "input-zero.npy"
    os.symlink("/dev/zero", dev_input)
    reconstruct("reconstruct-input-dev-zero", ct, "character device", "--output", recon_out, inp=dev_input)
    fifo_input = base / "input-fifo.npy"
    os.mkfifo(fifo_input)
    reconstruct("reconstruct-input-fifo", ct, "FIFO", "--output", recon_out, inp=fifo_input)
    log_zero = run_with("train_log.csv", "/dev/zero", "zero")
    shutil.rmtree(log_zero / "figures", ignore_errors=True)  # so report draws the curves from the log
    case("report-train-log-dev-zero", ["report", str(log_zero)], "leaves")
    case("report-metrics-fifo", ["report", str(run_with("metrics.csv", "fifo", "fifo-r"))], "FIFO")
    case("stress-checkpoint-fifo", ["train", "--out", str(run_with("checkpoint.safetensors", "fifo", "fifo")),
                                    "--resume", "--quiet"], "FIFO")

    # -- 5: tampered JSON (stress.json has no checksum of its own; model.json's weights digest holds) --

    def stress_json(name: str, edit, message: str) -> None:
        d = _copy(ct, f"ct-{name}")
        _edit_json(d / "stress.json", edit)
        case(name, ["compare", str(ct), str(d), "--out", cmp_out], message)

    def shift0(key, value):
        return lambda m: m["shifts"][0].__setitem__(key, value)

    stress_json("stress-json-size-infinity", lambda m: m["reference"].__setitem__("size", float("inf")),
                "reference.size")
    stress_json("stress-json-skipped-number", shift0("skipped", 5), "shifts.0.skipped")
    stress_json("stress-json-60000-levels", shift0("levels", [f"×{i}" for i in range(60_000)]), "shifts.0.levels")
    stress_json("stress-json-reference-list", lambda m: m.__setitem__("reference", [1]), "field reference")
    stress_json("stress-json-level-nan", shift0("levels", [float("nan"), "×1"]), "shifts.0.levels")
    stress_json("stress-json-shift-name-number", shift0("name", 7), "shifts.0.name")
    stress_json("stress-json-shift-name-a-path", shift0("name", "../../escaped"), "shifts.0.name")
    stress_json("stress-json-data-range-negative", lambda m: m.__setitem__("data_range", -1.0), "data_range")
    stress_json("stress-json-verdict-text-missing", lambda m: m["verdicts"][0].pop("text"), "verdicts.0.text")
    stress_json("stress-json-n-huge", lambda m: m["reference"].__setitem__("n", 10 ** 30), "reference.n")

    def model_json(name: str, edit, message: str) -> None:
        d = _copy(ct, f"ct-{name}")
        _edit_json(d / "model.json", edit)
        reconstruct(name, d, message, "--output", recon_out)

    def channels(v):
        return lambda m: m["architecture"]["params"].__setitem__("channels", v)

    model_json("model-json-image-shape-infinity", lambda m: m.__setitem__("image_shape", [float("inf"), 32]),
               "image_shape")
    model_json("model-json-image-shape-negative", lambda m: m.__setitem__("image_shape", [-32, 32]), "image_shape")
    model_json("model-json-channels-1e9", channels(1e9), "model.json")
    model_json("model-json-channels-1e300", channels(1e300), "channels")

    def zoo_root(name: str, edit) -> str:
        root = base / "zoo" / name
        shutil.copytree(ZOO / "lpd-ct", root / "lpd-ct")
        _edit_json(root / "lpd-ct" / "card.json", edit)
        return f"@zoo={root}"

    case("zoo-card-task-text", [zoo_root("task", lambda c: c.__setitem__("task", "ct")), "zoo"], "task")
    case("zoo-card-parameters-text", [zoo_root("params", lambda c: c.__setitem__("parameters", "many")), "zoo"],
         "parameters")
    case("zoo-show-card-kind-list", [zoo_root("kind", lambda c: c.__setitem__("kind", ["lpd"])), "zoo", "show",
                                     "lpd-ct"], "kind")
    case("reconstruct-zoo-card-name-number", [zoo_root("name", lambda c: c.__setitem__("name", 3)), "reconstruct",
                                              "--model", "pretrained:lpd-ct", "--simulate", "--input", str(x),
                                              "--output", recon_out], "name")

    # -- 1a and 7: commands that must succeed, keeping or replacing what they say (unwatched) --
    keep = scratch / "keep"
    k_run = _copy(ct, "ct-lookalikes")
    k_run = Path(shutil.move(str(k_run), keep / "run"))
    for folder in (k_run, k_run / "figures"):
        _plant(folder)
    cases.append(("evaluate-beside-lookalikes", ["evaluate", str(k_run), "--methods", "fbp"]))
    cases.append(("stress-beside-lookalikes", ["stress", str(k_run), "--shifts", "noise", "--n", "2"]))
    cases.append(("report-beside-lookalikes", ["report", str(k_run)]))
    parent = keep / "work" / "parent"
    parent.mkdir(parents=True)
    _plant(parent)
    cases.append(("compare-beside-lookalikes", ["compare", str(ct), str(k_run), "--out", str(parent / "out")]))
    new_run = keep / "new-run"
    new_run.mkdir()
    _plant(new_run)
    cases.append(("train-beside-lookalikes", ["train", "--out", str(new_run), "--quiet",
                                              *_sets(TINY + RUNS["ct"])]))
    recover.update({"evaluate-beside-lookalikes": k_run, "stress-beside-lookalikes": k_run,
                    "report-beside-lookalikes": k_run / "figures", "compare-beside-lookalikes": parent,
                    "train-beside-lookalikes": new_run})

    def earlier(name: str, damage) -> None:
        d = Path(shutil.move(str(_copy(ct, f"ct-{name}")), scratch / name))
        damage(d / "stress.json")
        cases.append((name, ["stress", str(d), "--shifts", "noise", "--n", "2", "--no-report"]))
        recover[name] = d

    earlier("stress-earlier-deeply-nested", lambda p: p.write_text("[" * 200_000 + "]" * 200_000))
    earlier("stress-earlier-reference-list", lambda p: _edit_json(p, lambda m: m.__setitem__("reference", [1])))
    earlier("stress-earlier-fifo", lambda p: _replace(p, "fifo"))
    earlier("stress-earlier-60000-levels",
            lambda p: _edit_json(p, lambda m: m["shifts"][0].__setitem__("levels", [str(i) for i in range(60_000)])))
    earlier("stress-earlier-shift-name-a-path",  # kept, it would name a figure out of the run
            lambda p: _edit_json(p, lambda m: m["shifts"].append({**m["shifts"][0], "name": "../../escaped"})))

    normal = [("normal-reconstruct", ["reconstruct", "--model", str(ct), "--simulate", "--input", str(x), "--output",
                                      str(scratch / "x.npy"), "--residual-map", str(scratch / "r.png")]),
              ("normal-compare", ["compare", str(ct), str(_copy(ct, "ct-copy")), "--out", str(scratch / "cmp")]),
              ("normal-stress", ["stress", str(shutil.move(str(_copy(ct, "ct-stressed")), scratch / "stressed")),
                                 "--shifts", "noise", "--n", "2"])]
    return normal, cases, expect, recover


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("files")
    normal, cases, expect, recover = _build(base)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop(budget.PIXELS_ENV, None)
    p = subprocess.run([sys.executable, "-c", _CHILD, str(base), json.dumps(normal + cases), str(int(SECONDS) + 15)],
                       env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    done = {r["name"]: r for r in json.loads(p.stdout.strip().splitlines()[-1])}
    for name, _ in normal:
        assert done[name]["rc"] == 0, (name, done[name]["stderr"][-2000:])
    return {"normal": [done[n] for n, _ in normal], "cases": done, "expect": expect, "recover": recover,
            "tree": done[normal[-1][0]]["tree"], "names": [n for n, _ in cases]}


@pytest.mark.processes
def test_the_case_lists_are_complete(campaign):
    hostile = [n for n in campaign["names"] if n in campaign["expect"]]
    assert sorted(hostile) == sorted(n for names in HOSTILE.values() for n in names)
    assert sorted(campaign["recover"]) == sorted(n for names in RECOVER.values() for n in names)


@pytest.mark.processes
@pytest.mark.parametrize("name", [n for names in HOSTILE.values() for n in names])
def test_hostile_file_is_one_line_exit_2_bounded_and_writes_nothing(campaign, name):
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


@pytest.mark.processes
@pytest.mark.parametrize("name", RECOVER["1a"])
def test_a_users_lookalike_files_survive_every_clean_up(campaign, name):
    r = campaign["cases"][name]
    assert r["rc"] == 0, r["stderr"][-2000:]
    assert r["seconds"] < SECONDS
    assert _kept(campaign["recover"][name])


@pytest.mark.processes
@pytest.mark.parametrize("name", RECOVER["7"])
def test_an_unreadable_earlier_study_is_replaced_not_the_new_one_lost(campaign, name):
    from invmap.evaluation.stress import read_previous

    r = campaign["cases"][name]
    assert r["rc"] == 0, r["stderr"][-2000:]
    assert "earlier results unreadable" in r["stdout"] + r["stderr"] and "replacing them" in r["stdout"] + r["stderr"]
    assert r["seconds"] < SECONDS
    rows, meta = read_previous(campaign["recover"][name])  # the new study, whole and readable
    assert [s["name"] for s in meta["shifts"]] == ["noise"] and {row["shift"] for row in rows} == {"noise"}


def test_the_user_config_check_still_reads_a_regular_file(tmp_path, capsys):
    """The reader refuses what is not a regular file, not the files it is meant for."""
    from invmap.cli import main

    p = tmp_path / "task.yaml"
    p.write_text(yaml.safe_dump({"operator": {"name": "tomography", "angles": 8}, "data": {"size": 32}}))
    link = tmp_path / "link.yaml"
    os.symlink(p, link)
    assert main(["config", "--check", str(link)]) == 0


# -- the reader itself ------------------------------------------------------------------------

def test_the_reader_counts_the_bytes_it_reads_not_what_stat_says(tmp_path):
    from invmap.files import read_bytes

    p = tmp_path / "t.json"
    p.write_bytes(b"x" * 100)
    assert read_bytes(p, limit=100) == b"x" * 100
    with pytest.raises(ValueError, match="larger than 99 bytes"):
        read_bytes(p, limit=99)
    os.symlink("/dev/zero", tmp_path / "zero.json")  # stat says 0 bytes, reading never ends
    with pytest.raises(ValueError, match="character device"):
        read_bytes(tmp_path / "zero.json", limit=100)
    os.mkfifo(tmp_path / "pipe.json")  # opening it for reading would block
    with pytest.raises(ValueError, match="FIFO"):
        read_bytes(tmp_path / "pipe.json")
    with pytest.raises(ValueError, match="leaves"):
        read_bytes(tmp_path / "t.json", within=tmp_path / "sub")
