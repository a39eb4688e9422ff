"""Evaluation, stress study, verdicts, figures, report and the `invmap run` pipeline (tiny sizes)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch

from invmap.cli import main
from invmap.evaluation import evaluate as ev
from invmap.evaluation import report, stress
from invmap.evaluation.task import Condition, make_pairs
from invmap.evaluation.experiment import Experiment
from invmap.evaluation.verdicts import shift_verdict

TINY = ["data.size=32", "data.train=8", "data.val=4", "data.test=4", "training.epochs=1", "training.batch_size=4",
        "training.max_minutes=0", "evaluation.batch_size=4"]


def _condition(op: str, params: dict, noise: str = "gaussian", noise_params: dict | None = None, **kw) -> Condition:
    noise_params = {"relative": 0.05} if noise_params is None and noise == "gaussian" else (noise_params or {})
    return Condition.of("ellipses", 32, {"operator": {"name": op, "params": params},
                                         "noise": {"name": noise, "params": noise_params}}, **kw)


def _blur_condition(n: int = 3) -> Condition:
    return _condition("blur", {"sigma": 1.0}, n=n)


def _methods(iters: int = 20):
    from invmap import variational

    return {"adjoint": variational.build("adjoint"), "tv": variational.build("tv", lam=0.02, iters=iters)}


# ---------------------------------------------------------------------------------------- evaluate
def test_evaluate_table_columns_and_values():
    y, x, phys = make_pairs(_blur_condition(4))
    methods = {**_methods(), "oracle": lambda yy, p: x.clone()}
    res, recons = ev.evaluate_methods(methods, y, x, phys, batch_size=4, keep=2)
    rows = ev.summarize(res)
    assert [r["method"] for r in rows] == list(methods)
    by = {r["method"]: r for r in rows}
    for r in rows:
        assert set(ev.COLUMNS) <= set(r)
        assert r["n"] == 4 and r["seconds_per_image"] >= 0
        assert 0 <= r["relative_error_mean"] and -1 <= r["ssim_mean"] <= 1 + 1e-6
    assert math.isinf(by["oracle"]["psnr_mean"]) or by["oracle"]["psnr_mean"] > 80
    assert by["oracle"]["relative_error_mean"] < 1e-6
    assert by["tv"]["psnr_mean"] > by["adjoint"]["psnr_mean"] - 1.0  # TV is not worse than blurred data
    assert recons["tv"].shape == (2, 1, 32, 32)


def test_evaluate_records_failing_method_and_writes_tables(tmp_path):
    y, x, phys = make_pairs(_blur_condition(2))

    def broken(yy, p):
        raise ValueError("cannot take this shape")

    res, _ = ev.evaluate_methods({"adjoint": _methods()["adjoint"], "broken": broken}, y, x, phys)
    assert res["broken"].error and "cannot take" in res["broken"].error
    rows = ev.summarize(res)
    assert [r["method"] for r in rows] == ["adjoint"]
    c, m = ev.write_metrics(rows, tmp_path)
    back = ev.read_metrics(c)
    assert back[0]["method"] == "adjoint" and back[0]["psnr_mean"] == pytest.approx(rows[0]["psnr_mean"], rel=1e-6)
    assert list(csv.DictReader(c.open()))[0].keys() == set(ev.COLUMNS)
    assert m.read_text().count("|") > 6 and "adjoint" in m.read_text()


# ---------------------------------------------------------------------------------------- verdicts
def _table(model, tv, levels):
    return {lv: {"model": m, "tv": t} for lv, m, t in zip(levels, model, tv)}


def test_verdict_crossing_detected_at_first_level_below():
    levels = ["×0", "×0.5", "×1", "×2", "×4", "×8"]
    t = _table([40, 38, 35, 32, 26, 20], [33, 32, 31, 29, 27, 24], levels)
    v = shift_verdict("noise", levels, t, "×1", ordered=True)
    assert [c["level"] for c in v.crossings] == ["×4"] and v.crossings[0]["baseline"] == "tv"
    assert "falls below tv at ×4" in v.text and not v.model_always_best


def test_verdict_crossing_in_both_directions_and_margin():
    levels = ["15 views", "30 views", "60 views", "120 views"]
    t = _table([20, 29, 33, 33.2], [24, 28, 30, 33.5], levels)
    v = shift_verdict("geometry", levels, t, "60 views")
    assert {c["level"] for c in v.crossings} == {"120 views", "15 views"}
    v2 = shift_verdict("geometry", levels, t, "60 views", margin=0.5)  # 33.2 vs 33.5 is within the margin
    assert [c["level"] for c in v2.crossings] == ["15 views"]


def test_verdict_always_above_below_at_training_and_categorical():
    levels = ["a", "b", "c"]
    v = shift_verdict("s", levels, _table([30, 29, 28], [20, 21, 22], levels), "a")
    assert v.model_always_best and "stays above all baselines at every level" in v.text and "at c" in v.text
    v = shift_verdict("s", levels, _table([19, 25, 28], [20, 21, 22], levels), "a")
    assert v.below_at_training and "already below tv" in v.text
    v = shift_verdict("obj", levels, _table([30, 18, 25], [20, 21, 22], levels), "a", ordered=False)
    assert [c["level"] for c in v.crossings] == ["b"] and "best at a, c" in v.text
    v = shift_verdict("s", levels, {lv: {"tv": 1.0, "fbp": 2.0} for lv in levels}, "a")
    assert v.model_always_best is None and "no trained model" in v.text


# ---------------------------------------------------------------------------------------- stress
def test_shift_tables_cover_each_applicable_kind():
    ref = _blur_condition()
    names = {s.name for s in stress.build_shifts(ref)}
    assert {"noise", "noise-family", "geometry", "calibration-psf", "discretisation", "resolution", "object"} <= names
    for s in stress.build_shifts(ref):
        assert sum(lv.training for lv in s.levels) == 1, s.name  # exactly one training point
        assert len({lv.label for lv in s.levels}) == len(s.levels)
    noiseless = _condition("identity", {}, noise="none", n=2)
    assert "noise" not in {s.name for s in stress.build_shifts(noiseless)}
    with pytest.raises(ValueError, match="unknown shift"):
        stress.build_shifts(ref, ["weather"])


@pytest.mark.parametrize("op,params,want", [("mri", {}, "R=4"), ("inpainting", {}, "50% missing"),
                                             ("inpainting", {"missing": 0.3}, "30% missing"),
                                             ("tomography", {"angles": 30}, "30 views"),
                                             ("blur", {"kernel": "motion", "length": 5.0}, "length=5")])
def test_geometry_shift_marks_the_training_point_for_other_operators(op, params, want):
    """MRI / inpainting geometry shifts too, with the training point marked even when the
    config leaves the parameter to the operator's own default (inpainting missing=None)."""
    ref = _condition(op, params, n=2)
    geo = next(s for s in stress.build_shifts(ref, ["geometry"]))
    assert geo.training_level == want and len(geo.levels) >= 3
    assert len({json.dumps(lv.changes, sort_keys=True) for lv in geo.levels}) == len(geo.levels)  # really different
    if op == "blur":
        cal = next(s for s in stress.build_shifts(ref, ["calibration"]))  # motion: the length is miscalibrated
        sim = cal.levels[-1].changes["sim_operator"]
        assert cal.training_level == "×1" and sim["name"] == "blur" and sim["params"]["length"] == 7.5
        psf = ref.with_changes(operator={"name": "blur", "params": {"psf": [[0.5, 0.5]]}})
        assert all(not s.levels and s.skipped for s in stress.build_shifts(psf, ["geometry", "calibration"]))


@pytest.mark.parametrize("params,train,others", [
    ({"kernel": "gaussian", "sigma": 1.0}, "gaussian σ=1 (training)", {"motion": ("length", 12 ** 0.5), "disk": ("radius", 2.0)}),
    ({"kernel": "disk", "radius": 3.0}, "disk r=3 (training)", {"gaussian": ("sigma", 1.5), "motion": ("length", 1.5 * 12 ** 0.5)}),
])
def test_kernel_shift_swaps_the_psf_family_at_a_comparable_width(params, train, others):
    ref = _condition("blur", {**params, "boundary": "zero"}, n=2)
    sh = next(s for s in stress.build_shifts(ref, ["kernel"]))
    assert sh.training_level == train and not sh.ordered and len(sh.levels) == 3
    for lv in sh.levels[1:]:
        op = lv.changes["operator"]["params"]
        name, value = others[op["kernel"]]
        assert op[name] == pytest.approx(value) and op["boundary"] == "zero"
        y, x, phys = make_pairs(ref.with_changes(**lv.changes))  # simulation and reconstruction both change
        assert phys.operator.params()["kernel"] == op["kernel"]
    ct = _condition("tomography", {"angles": 8}, n=2)
    assert stress.build_shifts(ct, ["kernel"]) == []
    psf = ref.with_changes(operator={"name": "blur", "params": {"psf": [[0.5, 0.5]]}})
    assert [s.skipped for s in stress.build_shifts(psf, ["kernel"])] == [{"*": "a user-given psf has no family to change"}]


def test_noise_family_matches_variance():
    ref = _blur_condition(2)
    p = stress.comparable_photons(ref)
    y, x, phys = make_pairs(ref.with_changes(noise={"name": "none", "params": {}}))
    var = 0.05 ** 2 * float(y.double().pow(2).mean(dim=(1, 2, 3)).mean())  # σ_i = 0.05·rms(K x_i)
    assert p == pytest.approx(float(y.double().mean()) / var, rel=1e-4)


@pytest.mark.parametrize("op,params,name,train", [("blur", {"sigma": 1.0}, "calibration-psf", "×1"),
                                                   ("downsample", {"factor": 2, "filter": "gaussian"}, "calibration-psf", "×1"),
                                                   ("mri", {}, "calibration-kspace", "+0"),
                                                   ("inpainting", {}, "calibration-mask", "+0%"),
                                                   ("tomography", {"angles": 8}, "calibration-detector", "+0 px")])
def test_calibration_mismatch_only_changes_simulation(op, params, name, train):
    ref = _condition(op, params, n=2)
    cal = next(s for s in stress.build_shifts(ref, ["calibration"]) if s.name == name)
    assert cal.training_level == train and len(cal.levels) == 4
    lv = cal.levels[-1]
    y0, _, p0 = make_pairs(ref)
    y1, _, p1 = make_pairs(ref.with_changes(**lv.changes))
    assert p1.operator.params() == p0.operator.params()  # reconstruction uses the nominal K
    assert not torch.allclose(y0, y1)


def test_stress_csv_is_tidy_and_figures_exist(tmp_path):
    ref = _blur_condition(2)
    passthrough = lambda y, physics: y.clone()  # noqa: E731 - x̂ = y (blur keeps the image shape)
    rows, meta = stress.stress_study({"model": passthrough, "tv": _methods(5)["tv"]}, ref, tmp_path,
                                     kinds=["noise", "object"])
    with (tmp_path / "stress.csv").open() as f:
        data = list(csv.DictReader(f))
    assert list(data[0].keys()) == stress.STRESS_COLUMNS
    assert {r["metric"] for r in data} == set(ev.METRICS) | {"rho"}  # ρ: every method; trust: learned ones only
    assert {r["shift"] for r in data} == {"noise", "object"}
    for r in data:  # PSNR may be +inf only for a perfect reconstruction
        assert math.isfinite(float(r["mean"])) or (r["metric"] == "psnr" and float(r["mean"]) > 0)
    noise_levels = {r["level"] for r in data if r["shift"] == "noise"}
    assert noise_levels == {"×0", "×0.5", "×1", "×2", "×4", "×8"}
    keys = [(r["shift"], r["level"], r["method"], r["metric"]) for r in data]
    assert len(keys) == len(set(keys))
    # more noise → lower PSNR of x̂ = y
    ps = {r["level"]: float(r["mean"]) for r in data if r["shift"] == "noise" and r["method"] == "model"
          and r["metric"] == "psnr"}
    assert ps["×8"] < ps["×4"] < ps["×2"] < ps["×1"] < ps["×0.5"] < ps["×0"]
    assert json.loads((tmp_path / "stress.json").read_text())["verdicts"]
    for name in ("noise", "object", "overview"):
        assert (tmp_path / "figures" / f"stress_{name}.png").stat().st_size > 1000
    assert len(meta["verdicts"]) == 2



def test_stress_says_which_requested_shifts_do_not_apply(tmp_path):
    ct = _condition("tomography", {"angles": 8}, n=2)
    with pytest.raises(ValueError, match="none of the shifts kernel applies to operator 'tomography'"):
        stress.stress_study(_methods(5), ct, tmp_path, kinds=["kernel"])
    assert not (tmp_path / "stress.csv").exists()
    said: list[str] = []
    stress.stress_study(_methods(5), ct, tmp_path, kinds=["kernel", "discretisation"], progress=said.append)
    assert "stress: not applicable to operator 'tomography' / noise 'gaussian': kernel" in said


def test_stress_overview_shows_the_model_minus_the_best_baseline(tmp_path, monkeypatch):
    from invmap.evaluation import figures

    shifts = [{"name": "noise", "label": "Noise", "levels": ["×1", "×2"], "training_level": "×1"},
              {"name": "object", "label": "Object", "levels": ["a", "b", "c"], "training_level": "a"}]
    rows = [{"shift": sh, "level": lv, "method": m, "metric": "psnr", "mean": v, "std": 0.0}
            for sh, lv, m, v in [("noise", "×1", "model", 30.0), ("noise", "×1", "tv", 28.0), ("noise", "×1", "fbp", 25.0),
                                 ("noise", "×2", "model", 26.0), ("noise", "×2", "tv", 27.5),
                                 ("object", "a", "model", 31.0), ("object", "a", "tv", 29.0),
                                 ("object", "c", "model", 20.0), ("object", "c", "tv", 24.0)]]
    import matplotlib.axes
    import numpy as np

    shown = {}

    real_imshow = matplotlib.axes.Axes.imshow

    def spy(self, data, *a, **k):
        shown["data"] = np.ma.filled(data, np.nan)
        return real_imshow(self, data, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", spy)
    assert figures.stress_overview(shifts, rows, tmp_path / "o.png").stat().st_size > 1000
    np.testing.assert_allclose(shown["data"], [[2.0, -1.5], [2.0, -4.0]])  # level b has no model: left out
    only_model = [r for r in rows if r["method"] == "model"]
    assert figures.stress_overview(shifts, only_model, tmp_path / "none.png") is None


def test_stress_on_a_subset_keeps_the_other_shifts(tmp_path):
    """`invmap stress RUN --shifts noise` refreshes one shift and keeps the others (each shift
    records its own images per level and methods); other reference conditions replace them."""
    ref = _blur_condition(2)
    passthrough = lambda y, physics: y.clone()  # noqa: E731
    methods = {"model": passthrough, "tv": _methods(5)["tv"]}
    stress.stress_study(methods, ref, tmp_path, kinds=["noise", "object"])
    before = {(r["shift"], r["level"], r["method"], r["metric"]): r["mean"]
              for r in stress.read_stress_csv(tmp_path / "stress.csv")}
    said: list[str] = []
    stress.stress_study(methods, ref.with_changes(n=3), tmp_path, kinds=["noise"], progress=said.append)
    after = stress.read_stress_csv(tmp_path / "stress.csv")
    assert {r["shift"] for r in after} == {"noise", "object"} and len(after) == len(before)
    assert all(before[(r["shift"], r["level"], r["method"], r["metric"])] == pytest.approx(r["mean"], rel=1e-5)
               for r in after if r["shift"] == "object")
    on_disk = json.loads((tmp_path / "stress.json").read_text())
    assert [s["name"] for s in on_disk["shifts"]] == ["noise", "object"] and len(on_disk["verdicts"]) == 2
    assert [s["images per level"] for s in on_disk["shifts"]] == [3, 2]
    assert on_disk["settings"]["images per level"] == "3 (noise); 2 (object)"
    assert any("kept earlier results for object" in s for s in said)
    # other reference conditions (here another noise level): the earlier shifts are replaced, with a message
    said.clear()
    stress.stress_study(methods, ref.with_changes(noise_scale=2.0), tmp_path, kinds=["noise"], progress=said.append)
    assert {r["shift"] for r in stress.read_stress_csv(tmp_path / "stress.csv")} == {"noise"}
    assert any("replacing them (dropped: object)" in s for s in said)


# ---------------------------------------------------------------------------------------- report
def test_report_is_self_contained(tmp_path):
    ref = _blur_condition(2)
    y, x, phys = make_pairs(ref)
    res, recons = ev.evaluate_methods(_methods(10), y, x, phys, keep=2)
    ev.write_metrics(ev.summarize(res), tmp_path)
    from invmap.evaluation import figures

    figures.recon_grid(x, y, recons, tmp_path / "figures" / "reconstructions.png", n=2)
    (tmp_path / "train_log.csv").write_text("epoch,train_loss,val_loss,val_psnr\n1,0.1,0.09,20\n2,0.05,0.06,22\n")
    assert figures.training_curves(tmp_path / "train_log.csv", tmp_path / "figures" / "training_curves.png")
    learned_stand_in = lambda yy, p: yy.clone()  # noqa: E731 - a callable named "model" counts as learned
    stress.stress_study({"model": learned_stand_in, "tv": _methods(5)["tv"]}, ref, tmp_path, kinds=["noise"])
    (tmp_path / "config.yaml").write_text("name: tiny <test>\n")
    html = report.build_report(tmp_path).read_text()
    assert html.count("<img") == 4 and html.count("data:image/png;base64,") == 4
    assert 'alt="stress overview"' in html  # the whole study at a glance, next to the verdicts
    assert "<table>" in html and "tv" in html and "Noise level" in html and "tiny &lt;test&gt;" in html
    import html as _html
    verdicts = json.loads((tmp_path / "stress.json").read_text())["verdicts"]
    assert verdicts and all(_html.escape(v["text"]) in html for v in verdicts)  # the verdicts are shown
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert refs and all(r.startswith("data:") for r in refs)
    assert not re.search(r"https?://|file:", html)


def test_stress_table_marks_the_training_level_once():
    sh = {"name": "object", "axis": "image source", "levels": ["ellipses (training)", "samples"],
          "training_level": "ellipses (training)"}
    rows = [{"shift": "object", "level": lv, "method": "tv", "metric": "psnr", "mean": "20"} for lv in sh["levels"]]
    html = report.stress_table_html(sh, rows)
    assert "ellipses (training)</td>" in html and "(training) (training)" not in html
    sh = {**sh, "levels": ["×1", "×2"], "training_level": "×1"}
    rows = [{**r, "level": lv} for r, lv in zip(rows, sh["levels"])]
    assert "×1 (training)</td>" in report.stress_table_html(sh, rows)


# ---------------------------------------------------------------------------------------- CLI / pipeline
def _tiny_run_dir(tmp_path: Path) -> Path:
    """A run directory with a tiny (untrained) CNN model saved the way training saves it."""
    from invmap.config import load_config
    from invmap.models import LearnedReconstructor, build, save_model

    cfg = load_config(None, TINY + ["operator.name=blur", "operator.sigma=1.0", "name=tiny", "model.name=cnn",
                                    "model.input=adjoint", "model.depth=2", "model.channels=4",
                                    "evaluation.methods=[adjoint,tv,model]", "noise.relative=0.05"])
    d = tmp_path / "tiny"
    d.mkdir()
    (d / "config.yaml").write_text(cfg.to_yaml())
    torch.manual_seed(0)
    recon = LearnedReconstructor(build("cnn", depth=2, channels=4, residual=True), input="adjoint")
    save_model(d, recon, {}, physics=cfg.physics())
    return d


def test_cli_evaluate_and_stress_on_a_run(tmp_path, capsys):
    d = _tiny_run_dir(tmp_path)
    assert main(["evaluate", str(d), "--methods", "adjoint,tv,model", "--no-figure"]) == 0
    rows = ev.read_metrics(d / "metrics.csv")
    assert [r["method"] for r in rows] == ["adjoint", "tv", "model"]
    assert "PSNR" in capsys.readouterr().out
    assert main(["stress", str(d), "--shifts", "noise,object", "--n", "2", "--tv-iters", "10"]) == 0
    out = capsys.readouterr().out
    assert "•" in out and (d / "report.html").exists()
    assert main(["stress", str(d), "--shifts", "bogus"]) == 2


def test_run_never_overwrites(tmp_path):
    from invmap.pipeline import new_run_dir

    a, b = new_run_dir(tmp_path, "x"), new_run_dir(tmp_path, "x")
    assert a.name == "x" and b.name == "x-2"


def test_invmap_run_end_to_end(tmp_path, capsys):
    args = ["run", "--out", str(tmp_path), "--quiet", "--stress-n", "2",
            "--stress-tv-iters", "10", "--shifts", "noise,discretisation"]
    for s in TINY + ["name=e2e", "operator.name=blur", "operator.sigma=1.0", "model.name=cnn", "model.input=adjoint",
                     "model.depth=2", "model.channels=4", "evaluation.methods=[adjoint,tv,model]"]:
        args += ["--set", s]
    assert main(args) == 0
    d = tmp_path / "e2e"
    for f in ("config.yaml", "baselines.json", "model.safetensors", "metrics.csv", "metrics.md", "stress.csv",
              "report.html"):
        assert (d / f).exists(), f
    assert "report:" in capsys.readouterr().out
    html = (d / "report.html").read_text()
    assert "data:image/png;base64," in html and "model" in html
    assert main(args) == 0 and (tmp_path / "e2e-2" / "report.html").exists()  # a second run never overwrites


@pytest.mark.parametrize("extra,message", [(["--shifts", "limited-angle"], "none of the shifts limited-angle applies"),
                                           (["--folder", "/no/such/dir"], "--folder: no directory"),
                                           (["--stress-n", "0"], "--stress-n must be >= 1")])
def test_invmap_run_refuses_bad_stress_options_before_training(tmp_path, capsys, extra, message):
    """Options the stress stage cannot honour stop the run at once, before any training."""
    args = ["run", "--out", str(tmp_path), "--quiet", "--set", "operator.name=blur", "--set", "model.input=adjoint"] + extra
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing was started


# ---------------------------------------------------------------------------- PSNR convention
def test_psnr_data_range_convention_is_used_and_stated(tmp_path, capsys):
    """``evaluation.data_range=max-min`` (DIVal / LoDoPaB) reaches evaluate, tune and stress, and
    metrics.csv/md, baselines.json, stress.json and the terminal table say which L was used."""
    from invmap.config import load_config
    from invmap.evaluation import runs
    from invmap.metrics import data_range_of
    from invmap.variational import tune

    d = _tiny_run_dir(tmp_path)
    scores = {}
    for dr in ("1", "max-min"):
        out = tmp_path / f"eval-{dr}"
        assert main(["evaluate", str(d), "--methods", "adjoint", "--no-figure", "--n", "3", "--out", str(out),
                     "--set", f"evaluation.data_range={dr}"]) == 0
        rows = ev.read_metrics(out / "metrics.csv")
        assert rows[0]["data_range"] == (1.0 if dr == "1" else "max-min")
        with (out / "metrics.csv").open() as f:
            assert next(csv.DictReader(f))["data_range"] in ("1.0", "max-min")
        label = "L = 1" if dr == "1" else "L = max − min of each ground truth"
        assert label in (out / "metrics.md").read_text() and label in capsys.readouterr().out
        scores[dr] = rows[0]["psnr_mean"]
    # rows scored under another convention are not kept beside new ones in the same table
    assert main(["evaluate", str(d), "--methods", "tikhonov", "--no-figure", "--n", "3", "--out", str(tmp_path / "eval-1"),
                 "--set", "evaluation.data_range=max-min"]) == 0
    assert "dropped the earlier rows of adjoint" in capsys.readouterr().out
    assert [(r["method"], r["data_range"]) for r in ev.read_metrics(tmp_path / "eval-1" / "metrics.csv")] == \
        [("tikhonov", "max-min")]
    cfg = load_config(str(d / "config.yaml"), ["evaluation.data_range=max-min"])
    _, x, _ = Experiment(cfg).test_pairs(3)
    shift = float((20 * torch.log10(data_range_of(x, "max-min"))).mean())  # PSNR_L − PSNR_1 = 20 log10 L
    assert abs(shift) > 0.1  # the conventions differ on these images
    assert scores["max-min"] - scores["1"] == pytest.approx(shift, abs=1e-3)
    # tuning scores with the convention and records it
    y, xv, phys = Experiment(cfg).val_pairs(2)
    m1, t1 = tune("tikhonov", (y, xv), grid={"lam": [1e-2]}, physics=phys)
    m2, t2 = tune("tikhonov", (y, xv), grid={"lam": [1e-2]}, physics=phys, data_range="max-min")
    assert m1.tuning["data_range"] == 1.0 and m2.tuning["data_range"] == "max-min"
    shift_val = float((20 * torch.log10(data_range_of(xv, "max-min"))).mean())
    assert t2[0]["psnr"] - t1[0]["psnr"] == pytest.approx(shift_val, abs=1e-3)
    base = runs.tune_baselines(Experiment(cfg), ["tikhonov"], tmp_path, n_val=2, time_budget=5.0)
    assert base["tikhonov"]["data_range"] == "max-min"
    # the stress study states it, and does not merge results scored with another convention
    ref = _blur_condition(2)
    methods = {"model": _methods()["adjoint"]}
    stress.stress_study(methods, ref, tmp_path / "s", kinds=["noise"])
    said: list[str] = []
    _, meta = stress.stress_study(methods, ref, tmp_path / "s", kinds=["object"], data_range="max-min",
                                  progress=said.append)
    on_disk = json.loads((tmp_path / "s" / "stress.json").read_text())
    assert on_disk["data_range"] == "max-min" and "max − min" in on_disk["settings"]["PSNR data range"]
    assert any("replacing them (dropped: noise)" in s for s in said)
