"""scripts/stress_tests.py: runs the marked tests beside a CPU hog, stops at the first failing
run with its output, and leaves no hog process behind, whether the runs pass or fail."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "stress_tests.py"


@pytest.fixture
def stress(monkeypatch):
    """The script as a module, with the hog processes it starts kept for inspection."""
    spec = importlib.util.spec_from_file_location("stress_tests", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    started = []
    start = module.start_hog
    monkeypatch.setattr(module, "start_hog", lambda n: started.extend(start(n)) or started)
    return module, started


@pytest.mark.processes
@pytest.mark.parametrize("selection, code, summary", [
    # a marked test that starts a timer, not a process: each run is a pytest session beside the hog, no more
    (["tests/test_timelimit.py", "-k", "block_past_its_limit"], 0, "2 run(s), 2 passed, 0 failed"),
    (["tests/test_timelimit.py", "-k", "no_such_test"], 1, "1 run(s), 0 passed, 1 failed"),  # pytest: nothing ran
])
def test_runs_under_a_hog_and_stops_it(stress, capsys, selection, code, summary):
    module, started = stress
    assert module.main(["--runs", "2", "--hog", "2", "--", *selection]) == code
    out = capsys.readouterr().out
    assert summary in out and ("---- output of run 1 ----" in out) == (code != 0)
    assert len(started) == 2 and all(p.poll() is not None for p in started)  # the hog ran, and is gone


def test_bad_arguments_are_refused(stress):
    with pytest.raises(SystemExit) as e:
        stress[0].main(["--runs", "0"])
    assert e.value.code == 2 and not stress[1]
