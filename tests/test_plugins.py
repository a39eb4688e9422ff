"""Methods from outside invmap (`invmap.plugins`): ``module:attr`` and the ``invmap.methods`` /
``invmap.operators`` entry points run like built-in ones; a bad one is one line, exit 2, and
nothing is written."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from invmap import plugins
from invmap.operators import registry as operator_registry
from invmap.cli import main
from invmap.evaluation.resolve import parse

MODULE = '''
import torch

class Halved:
    """FBP's image times one half: a bad but honest method."""
    learned = False

    def __call__(self, y, physics):
        from invmap.variational import build
        return 0.5 * build("fbp")(y, physics)

class Learnedish(Halved):
    learned = True

not_callable = 3

def broken(y, physics):
    raise RuntimeError("no")

class Fails:
    def __init__(self):
        raise ValueError("needs a parameter")
'''

TASK = "name: plug\ndata: {size: 32, val: 4, test: 4}\noperator: {name: tomography, angles: 12}\n"


@pytest.fixture
def mod(tmp_path, monkeypatch):
    (tmp_path / "my_methods.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "task.yaml").write_text(TASK)
    return tmp_path


def test_an_outside_method_runs_in_evaluate_stress_and_compare(mod, capsys):
    from invmap.evaluation.evaluate import read_metrics

    assert main(["evaluate", "task.yaml", "--out", "a", "--n", "2", "--no-figure",
                 "--methods", "fbp,my_methods:Halved,my_methods:Learnedish"]) == 0
    rows = {r["method"]: r for r in read_metrics(mod / "a" / "metrics.csv")}
    assert rows["my_methods:Halved"]["psnr_mean"] < rows["fbp"]["psnr_mean"]
    assert json.loads((mod / "a" / "baselines.json").read_text()).keys() == {"fbp"}  # never tuned
    assert (mod / "a" / "config.yaml").is_file()  # the evaluation of a config is a run stress takes on
    assert main(["stress", "a", "--shifts", "noise", "--n", "2", "--methods", "fbp,my_methods:Halved,my_methods:Learnedish"]) == 0
    study = json.loads((mod / "a" / "stress.json").read_text())
    assert study["learned"] == ["my_methods:Learnedish"]  # it says so itself; Halved is a baseline
    assert any(v["method"] == "my_methods:Learnedish" for v in study["verdicts"])
    assert "my_methods:Halved" in (mod / "a" / "report.html").read_text()
    capsys.readouterr()


@pytest.mark.parametrize("name, message", [
    ("nowhere_module:X", "cannot import module 'nowhere_module'"),
    ("my_methods:Nothing", "module 'my_methods' has no 'Nothing'"),
    ("my_methods:not_callable", "is a int, not a reconstructor"),
    ("my_methods:Fails", "Fails() failed (ValueError: needs a parameter)"),
    ("my_methods:", "an outside method is module:attr"),
    ("../x:y", "an outside method is module:attr"),
    ("fancy", "unknown method 'fancy'; available: model, safe, split-mean, adapted, pretrained:NAME (`invmap zoo`), module:attr"),
])
def test_a_bad_outside_method_is_one_line(mod, capsys, name, message):
    assert main(["evaluate", "task.yaml", "--out", "bad", "--n", "2", "--methods", f"fbp,{name}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err and message in err, err
    assert not (mod / "bad").exists()


def test_a_method_that_fails_on_the_data_stops_the_evaluation_unless_asked_to_keep_going(mod, capsys):
    assert main(["evaluate", "task.yaml", "--out", "c", "--n", "2", "--no-figure",
                 "--methods", "fbp,my_methods:broken"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "invmap: error: method 'my_methods:broken' raised RuntimeError: no", err
    assert not (mod / "c" / "metrics.csv").exists()
    assert main(["evaluate", "task.yaml", "--out", "c", "--n", "2", "--no-figure",
                 "--methods", "fbp,my_methods:broken", "--keep-going"]) == 0
    assert "my_methods:broken failed: method 'my_methods:broken' raised RuntimeError: no" in capsys.readouterr().out
    assert "my_methods:broken failed and has no row" in (mod / "c" / "metrics.md").read_text()
    assert "my_methods:broken" not in (mod / "c" / "metrics.csv").read_text()


def test_entry_points_declare_methods_and_operators(mod, monkeypatch, capsys):
    """A package's ``invmap.methods`` entry gives a method by its bare name; ``invmap.operators``
    modules are imported (a broken one is logged and skipped)."""
    import my_methods

    loaded = []
    eps = {"invmap.methods": [SimpleNamespace(name="halved", value="my_methods:Halved", load=lambda: my_methods.Halved)],
           "invmap.operators": [SimpleNamespace(name="good", value="my_ops", load=lambda: loaded.append("good")),
                                SimpleNamespace(name="bad", value="nope", load=lambda: 1 / 0)]}
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps.get(group, []))
    monkeypatch.setattr(operator_registry, "entry_points", lambda group: eps.get(group, []))
    assert plugins.method_names() == ["halved"] and parse("halved").scheme == "entry-point"
    assert operator_registry.load_operator_plugins() == ["good"] and loaded == ["good"]
    assert main(["evaluate", "task.yaml", "--out", "d", "--n", "2", "--no-figure",
                 "--methods", "fbp,halved"]) == 0
    assert "halved" in (mod / "d" / "metrics.csv").read_text()
    capsys.readouterr()
