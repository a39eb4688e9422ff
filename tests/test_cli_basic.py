"""The `invmap` command line: help, the operator listing, one-line user errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from invmap import cli
from invmap.operators import OPERATORS


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps long help lines
    for mod in cli._command_modules():
        name = getattr(mod, "NAME", mod.__name__.rsplit(".", 1)[-1].replace("_", "-"))
        assert name in out and " ".join(mod.HELP.split()) in out


def test_operators_lists_every_operator_with_parameters(capsys):
    assert cli.main(["operators"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in OPERATORS.names():
        line = next((ln for ln in lines if ln.startswith(name + "(")), None)
        assert line is not None, f"operator {name!r} missing from `invmap operators`"
        for p in OPERATORS.params(name):
            assert f"{p.name}: " in line
    assert cli.main(["operators", "blur"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("blur(") and "boundary" in out and len(out.splitlines()) == 1


def test_unknown_operator_is_a_one_line_error(capsys):
    assert cli.main(["operators", "no-such-op"]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error: unknown operator 'no-such-op'")
    assert "Traceback" not in cap.err


@pytest.mark.processes
def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "invmap.cli", "operators", "no-such-op"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "unknown operator" in r.stderr


@pytest.mark.parametrize("command, registries", [("operators", ["invmap.operators:OPERATORS"]),
                                                 ("models", ["invmap.models:KINDS", "invmap.models:MODELS"]),
                                                 ("methods", ["invmap.variational:METHODS",
                                                              "invmap.evaluation.resolve:RUN_METHODS"])])
def test_listing_commands_cover_their_registry(command, registries, capsys):
    """`invmap operators|models|methods` print one line per registered entry, with its parameters
    (`invmap models`: the reconstructor kinds, then the architectures, each under a heading;
    `invmap methods`: the variational methods, then those of a trained run)."""
    import importlib

    from invmap.cli import main

    names = []
    for registry in registries:
        mod, attr = registry.split(":")
        reg = getattr(importlib.import_module(mod), attr)
        names += reg.names() if callable(getattr(reg, "names", None)) else list(reg)
    assert main([command]) == 0
    lines = [ln for ln in capsys.readouterr().out.strip().splitlines() if ln and not ln.endswith(":")]
    assert [ln.split("(")[0] for ln in lines] == names
    assert main([command, "no-such-entry"]) == 2
    assert "no-such-entry" in capsys.readouterr().err


def test_input_nested_too_deeply_is_one_line(monkeypatch, capsys):
    """A RecursionError (a RuntimeError subclass) anywhere below a command is one line, exit 2."""
    from invmap.commands import config as config_cmd

    def deep(args):
        import json
        return json.loads("[" * 200_000 + "]" * 200_000)

    monkeypatch.setattr(config_cmd, "run", deep)
    assert cli.main(["config"]) == 2
    assert capsys.readouterr().err.strip() == "invmap: error: input nested too deeply"
