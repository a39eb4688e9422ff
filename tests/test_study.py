"""The notebook API (`invmap.study`): a study built from a config or keyword sections is the
command line's pipeline held by hand — the same config, the same files and numbers, the same
one-line messages raised as exceptions (never an exit), tables and figures a notebook shows."""

from __future__ import annotations

import builtins
import sys

import pytest

from invmap.cli import error_line, main
from invmap.config import load_config
from invmap.evaluation.evaluate import read_metrics
from invmap.study import Comparison, Figure, Study, compare, overrides_of, table

#: a run in seconds: 32² deblurring, a 2-layer CNN, one epoch (the same as tests/test_experiment.py)
TINY = {"data": {"size": 32, "train": 8, "val": 10, "test": 4},
        "operator": {"name": "blur", "sigma": 1.0},
        "model": {"name": "cnn", "input": "adjoint", "depth": 2, "channels": 4},
        "training": {"epochs": 1, "batch_size": 4, "max_minutes": 0, "amp": "off"},
        "evaluation": {"batch_size": 4, "zoo": False, "methods": ["adjoint", "tv", "model"]}}
TINY_SET = overrides_of(TINY)


@pytest.mark.parametrize("sections, cli", [
    ({"trainig": {"epochs": 2}}, "trainig.epochs=2"),              # an unknown section
    ({"training": {"epoch": 2}}, "training.epoch=2"),              # an unknown key of a section
    ({"training": {"loss": "huber"}}, "training.loss=huber"),      # a value the schema refuses
])
def test_a_bad_key_raises_the_message_the_cli_prints(sections, cli, tmp_path, capsys):
    """The exception's text is the CLI's line after ``invmap: error:``; nothing exits."""
    with pytest.raises(ValueError) as e:
        Study(out=tmp_path, **sections)
    code = main(["train", "--set", cli, "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1] == error_line(str(e.value))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "cli").exists() and not any(tmp_path.iterdir())  # nothing written


def test_keyword_sections_are_the_cli_overrides():
    """Floats (1e-5 is a float to YAML only with a dot), strings with colons, lists, nested
    sections and renamed entries read exactly as the same ``--set`` strings."""
    sections = {"name": "hw", "training": {"lr": 1e-5, "snapshots": [1, 3.5]},
                "data": {"source": "folder:/tmp/x:y", "params": {"splits": [3, 1, 1]}},
                "model": {"name": "cnn", "depth": 3}, "evaluation": {"methods": ["fbp", "tv"], "tune": False}}
    sets = overrides_of(sections)
    assert "training.lr=1.0e-05" in sets and "model.name=cnn" in sets
    ours = load_config(None, sets).to_dict()
    assert ours["training"]["lr"] == 1e-5 and ours["data"]["source"] == "folder:/tmp/x:y"
    assert ours["model"]["name"] == "cnn" and "base_channels" not in ours["model"]  # the UNet's keys dropped
    assert ours == load_config(None, ["name=hw", "training.lr=1e-5", "training.snapshots=[1, 3.5]",
                                      "data.source=folder:/tmp/x:y", "data.params.splits=[3, 1, 1]",
                                      "model.name=cnn", "model.depth=3", "evaluation.methods=[fbp, tv]",
                                      "evaluation.tune=false"]).to_dict()


def test_tables_are_dataframes_with_pandas_and_records_without(monkeypatch):
    rows = [{"method": "tv", "psnr_mean": 30.0}, {"method": "fbp", "psnr_mean": 25.0}]
    pd = pytest.importorskip("pandas")
    df = table(rows)
    assert isinstance(df, pd.DataFrame) and list(df.method) == ["tv", "fbp"]
    real_import = builtins.__import__

    def no_pandas(name, *a, **k):
        if name == "pandas":
            raise ImportError("no pandas here")
        return real_import(name, *a, **k)

    monkeypatch.delitem(sys.modules, "pandas")
    monkeypatch.setattr(builtins, "__import__", no_pandas)
    assert table(rows) == rows and table(rows) is not rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A study trained, evaluated and stressed (noise, 2 images per level) through the API."""
    study = Study(out=tmp_path_factory.mktemp("api"), name="api", verbose=False, **TINY)
    result = study.train(progress=True)  # in Jupyter a tqdm.auto widget (tests/test_tutorials.py checks it)
    metrics = study.evaluate()
    stress = study.stress(shifts="noise", n=2)
    return study, result, metrics, stress


def test_a_study_runs_the_cli_stages_into_one_run(trained):
    study, result, metrics, stress = trained
    run = study.run_dir
    assert run is not None and run.name == "api"
    for f in ("config.yaml", "model.safetensors", "train_log.csv", "metrics.csv", "stress.csv", "stress.json"):
        assert (run / f).is_file(), f
    assert result.epochs == 1
    rows = read_metrics(run / "metrics.csv")
    assert [r["method"] for r in rows] == ["adjoint", "tv", "model"]
    returned = metrics.to_dict("records") if hasattr(metrics, "to_dict") else metrics
    assert [r["method"] for r in returned] == ["adjoint", "tv", "model"]  # the table is metrics.csv's rows
    for r, w in zip(returned, rows):
        assert r["psnr_mean"] == pytest.approx(w["psnr_mean"], abs=1e-4)
    assert {r["shift"] for r in (stress.to_dict("records") if hasattr(stress, "to_dict") else stress)} == {"noise"}
    assert study.verdicts and all(isinstance(v, str) for v in study.verdicts)


def test_the_study_gives_the_numbers_of_the_command_line(trained, tmp_path):
    """`invmap train` + `invmap evaluate` of the same config: the same test PSNR per method."""
    study = trained[0]
    cli_run = tmp_path / "cli"
    assert main(["train", *sum((["--set", s] for s in TINY_SET), []), "--set", "name=api",
                 "--out", str(cli_run), "--quiet"]) == 0
    assert main(["evaluate", str(cli_run), "--no-figure"]) == 0
    ours = {r["method"]: r["psnr_mean"] for r in read_metrics(study.run_dir / "metrics.csv")}
    theirs = {r["method"]: r["psnr_mean"] for r in read_metrics(cli_run / "metrics.csv")}
    assert ours.keys() == theirs.keys()
    for m in ours:
        assert ours[m] == pytest.approx(theirs[m], abs=1e-6), m


def test_figures_show_inline(trained):
    study = trained[0]
    figs = study.figures()
    assert {"reconstructions", "stress_overview", "stress_noise", "training_curves"} <= set(figs)
    png = figs["reconstructions"]._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert study.show("stress_overview") == [figs["stress_overview"]]
    with pytest.raises(FileNotFoundError, match="no figure 'nope'"):
        study.figure("nope")


def test_open_an_existing_run_and_compare(trained, tmp_path):
    study = trained[0]
    again = Study.open(study.run_dir, verbose=False)
    assert again.run_dir == study.run_dir and again.config.to_dict() == study.config.to_dict()
    first = again.metrics()
    assert len(first) == 3
    other = Study(out=tmp_path, name="api-b", verbose=False, **{**TINY, "model": {**TINY["model"], "channels": 6}})
    other.train(progress=False)
    other.evaluate(figure=False)
    other.stress(shifts="noise", n=2)
    both = compare(study, str(other.run_dir), out=tmp_path / "cmp")
    assert isinstance(both, Comparison) and (tmp_path / "cmp" / "compare.html").is_file()
    runs_ = {r["run"] for r in (both.rows.to_dict("records") if hasattr(both.rows, "to_dict") else both.rows)}
    assert runs_ >= {"api", "api-b"}
    assert both.verdicts and all(isinstance(f, Figure) for f in both.figures().values())


def test_no_run_yet_is_a_clear_error(tmp_path):
    study = Study(out=tmp_path, verbose=False, **TINY)
    for call in (study.report, study.metrics, lambda: study.stress(n=2)):
        with pytest.raises(ValueError, match="needs a run"):
            call()
    assert not any(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError):
        Study.open(tmp_path / "nothing")


def test_drawing_the_run_s_figures_keeps_a_notebook_s_inline_backend(trained, monkeypatch):
    """In Jupyter, matplotlib draws inline; invmap's figures must not switch the session to Agg
    (the notebook's own plots would stop showing)."""
    pytest.importorskip("matplotlib_inline")
    import matplotlib

    from invmap.evaluation import figures

    before = matplotlib.get_backend()
    matplotlib.use("module://matplotlib_inline.backend_inline", force=True)
    try:
        figures.training_curves(trained[0].run_dir / "train_log.csv", trained[0].run_dir / "curves-again.png")
        assert "inline" in matplotlib.get_backend()
    finally:
        matplotlib.use(before, force=True)


def _deep(n: int) -> dict:
    d: dict = {"x": 1}
    for _ in range(n):
        d = {"a": d}
    return d


@pytest.mark.parametrize("call, match", [
    (lambda out: Study(out=out, data=_deep(10_000)), "nested more than 64 levels"),   # no RecursionError
    (lambda out: Study(out=out, training={"lr": float("nan")}), "config: training.lr"),
    (lambda out: Study(out=out, training={"lr": -1}), "config: training.lr"),
    (lambda out: Study(out=out, training={"l.r": 1}), "a key is a plain name"),
    (lambda out: Study(out=out, **{"training=x": 1}), "a key is a plain name"),
    (lambda out: Study(123, out=out), "config: a YAML path"),
    (lambda out: Study(out=out, overrides="training.lr=3e-4"), "a list of KEY=VALUE"),
    (lambda out: Study(out=out, overrides=["training.lr"]), "expected KEY=VALUE"),
    (lambda out: Study(out=out, data={"size": 10 ** 30}), "config: data.size"),
    (lambda out: Study(out / "none.yaml", out=out), "config file not found"),
])
def test_hostile_arguments_are_one_line_errors_and_write_nothing(call, match, tmp_path):
    """Bad keyword sections, values and config arguments: an exception with one line naming the
    problem (the CLI's message where the CLI has one), in bounded time; nothing written."""
    out = tmp_path / "runs"
    with pytest.raises((ValueError, FileNotFoundError), match=match) as e:
        call(out)
    assert "\n" not in str(e.value) and len(str(e.value)) < 2000
    assert not out.exists()
