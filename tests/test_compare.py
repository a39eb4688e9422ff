"""invmap compare: runs side by side, differences and verdicts from their own numbers, and
hostile input (one line, exit 2, nothing written or overwritten)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from invmap.cli import main
from invmap.evaluation.compare import compare_runs

REF = {"operator": {"name": "blur", "params": {"sigma": 1.0}}, "noise": {"name": "gaussian", "params": {"relative": 0.05}}}


def make_run(d: Path, model: str) -> Path:
    """A small run directory: metrics.csv and a noise stress study of three methods, where
    the method called 'model' is the classical solver `model` (so two runs differ)."""
    from invmap import variational
    from invmap.evaluation import evaluate as ev
    from invmap.evaluation import stress
    from invmap.evaluation.task import Condition, make_pairs

    ref = Condition.of("ellipses", 32, REF, n=2)
    stand_in = variational.build(model, **({"lam": 0.02, "iters": 5} if model == "tv" else {}))
    stand_in.learned = True  # it plays the trained model: the verdicts and heatmaps ask the method
    methods = {"adjoint": variational.build("adjoint"), "tv": variational.build("tv", lam=0.02, iters=5),
               "model": stand_in}
    y, x, phys = make_pairs(ref)
    res, _ = ev.evaluate_methods(methods, y, x, phys)
    ev.write_metrics(ev.summarize(res), d)
    stress.stress_study(methods, ref, d, kinds=["noise"])
    (d / "config.yaml").write_text(f"name: {d.name}\n")
    return d


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("runs")
    return make_run(base / "fixed", "adjoint"), make_run(base / "robust", "tv")


def _psnr(run: Path, shift: str, level: str) -> float:
    if shift == "test":
        return next(float(r["psnr_mean"]) for r in csv.DictReader((run / "metrics.csv").open()) if r["method"] == "model")
    return next(float(r["mean"]) for r in csv.DictReader((run / "stress.csv").open())
                if (r["shift"], r["level"], r["method"], r["metric"]) == (shift, level, "model", "psnr"))


def test_differences_and_verdicts_come_from_the_runs_numbers(runs, tmp_path):
    a, b = runs
    result = compare_runs([a, b], tmp_path / "cmp", margin=0.5)
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    diffs = [r for r in rows if r["metric"] == "psnr-difference"]
    levels = json.loads((a / "stress.json").read_text())["shifts"][0]["levels"]
    assert len(diffs) == 1 + len(levels)  # the test set and every noise level
    for r in diffs:
        assert float(r["mean"]) == pytest.approx(_psnr(b, r["shift"], r["level"]) - _psnr(a, r["shift"], r["level"]),
                                                 abs=1e-3)
    assert {r["run"] for r in rows if r["metric"] == "psnr"} == {"fixed", "robust"}
    assert {r["method"] for r in rows if r["run"] == "fixed" and r["shift"] == "test"} == {"adjoint", "tv", "model"}
    d_test = _psnr(b, "test", "nominal") - _psnr(a, "test", "nominal")
    test_verdict = next(v for v in result["verdicts"] if v.startswith("robust vs fixed, test set"))
    assert f"{abs(d_test):.1f} dB" in test_verdict
    # the cost at the nominal conditions against the margin: within it, or over it and by how much
    assert (f"by {-d_test - 0.5:.1f} dB" in test_verdict) if d_test < -0.5 else (
        "within the 0.5 dB margin" in test_verdict if d_test < 0 else "margin" not in test_verdict)
    tight = compare_runs([b, a], tmp_path / "cmp-reverse", margin=0.0)
    back = next(v for v in tight["verdicts"] if v.startswith("fixed vs robust, test set"))
    assert (f"more than the 0 dB margin, by {d_test:.1f} dB" in back) if d_test > 0 else "margin" not in back
    noise = [v for v in result["verdicts"] if v.startswith("robust vs fixed, Noise level")]
    assert len(noise) == 1 and "×1" in noise[0]  # the nominal level is named (as the best or as the nominal)
    # the 'model' of run b is tv itself: it never falls below the best baseline; run a's (the adjoint) does
    verdict_b = next(v for v in result["verdicts"] if v.startswith("robust: "))
    verdict_a = next(v for v in result["verdicts"] if v.startswith("fixed: "))
    assert "stays at or above" in verdict_b and "below the best tuned baseline" in verdict_a
    assert result["figures"]["heatmaps"] == ["figures/heatmap_1.png", "figures/heatmap_2.png"]
    assert (tmp_path / "cmp" / "figures" / "difference_2_minus_1.png").stat().st_size > 1000


def test_three_runs_compare_each_with_the_first(runs, tmp_path):
    a, b = runs
    c = tmp_path / "other" / "robust"
    c.mkdir(parents=True)
    for f in ("metrics.csv", "stress.csv", "stress.json"):
        (c / f).write_bytes((b / f).read_bytes())
    result = compare_runs([a, b, c], tmp_path / "cmp3")
    labels = [r["label"] for r in result["runs"]]
    assert len(set(labels)) == 3 and labels[0] == "fixed"
    assert set(result["differences"]) == {f"{labels[1]} − fixed", f"{labels[2]} − fixed"}
    assert result["differences"][f"{labels[1]} − fixed"] == result["differences"][f"{labels[2]} − fixed"]


def _cli(capsys, *args: str) -> tuple[int, str]:
    """(exit status, stderr) of `invmap compare ARGS`, run by the CLI's own `main` in this process (the
    entry point as a process: test_cli_basic.py::test_module_entry_point_runs)."""
    capsys.readouterr()
    try:
        code = main(["compare", *args])
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    return code, capsys.readouterr().err


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["one-run", "twice", "out-inside-run", "out-not-empty", "missing-run", "no-tables",
                                  "corrupt-stress-json", "corrupt-metrics", "huge-file", "bad-margin"])
def test_hostile_input_is_one_line_and_writes_nothing(runs, tmp_path, case, capsys):
    a, b = runs
    before = {r: _tree(r) for r in (a, b)}
    out = tmp_path / "cmp"
    args = [str(a), str(b), "--out", str(out)]
    if case == "one-run":
        args = [str(a), "--out", str(out)]
    elif case == "twice":
        args = [str(a), str(a) + "/", "--out", str(out)]
    elif case == "out-inside-run":
        out = b / "compare"
        args = [str(a), str(b), "--out", str(out)]
    elif case == "out-not-empty":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "missing-run":
        args = [str(a), str(tmp_path / "nope"), "--out", str(out)]
    elif case in ("no-tables", "corrupt-stress-json", "corrupt-metrics", "huge-file"):
        bad = tmp_path / "bad"
        bad.mkdir()
        if case == "corrupt-stress-json":
            (bad / "stress.csv").write_bytes((b / "stress.csv").read_bytes())
            (bad / "stress.json").write_text('{"shifts": [{"name": 3}]}')
        elif case == "corrupt-metrics":
            (bad / "metrics.csv").write_text("method,n,psnr_mean\nmodel,x,\u0000\n")
        elif case == "huge-file":
            with (bad / "metrics.csv").open("wb") as f:
                f.truncate((64 << 20) + 1)  # sparse: no disk used
        args = [str(a), str(bad), "--out", str(out)]
    elif case == "bad-margin":
        args += ["--margin", "nan"]
    code, err = _cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("invmap: error: "), err
    assert {x: _tree(x) for x in (a, b)} == before  # the runs are only read
    assert not out.exists() or _tree(out) == ({"notes.txt": b"mine"} if case == "out-not-empty" else {})


def test_a_run_over_drawn_physics_and_one_at_the_nominal_physics_are_one_task():
    """ct-robust (K drawn, nominal 60 views, arc and offsets stated) and the default (angles: 60
    alone) describe one nominal task: compare accepts them; another view count it refuses."""
    from invmap.config import load_config, presets
    from invmap.evaluation.compare import Run, check_same_task, task_of
    from invmap.evaluation.task import condition_from_config

    def run(cfg, label):
        r = Run(label, Path("."))
        r.stress_meta = {"reference": condition_from_config(cfg).describe()}
        r.task = task_of(r)
        return r

    default, robust = load_config(None), load_config(presets()["ct-robust"])
    check_same_task([run(default, "default"), run(robust, "robust")])
    with pytest.raises(ValueError, match="physics.operator.params.angles: 30 against 60"):
        check_same_task([run(default, "default"), run(load_config(None, ["operator.angles=30"]), "thirty")])
