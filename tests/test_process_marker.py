"""Every test that starts processes, threads or timers carries ``@pytest.mark.processes``, so
``scripts/stress_tests.py`` (which runs ``-m processes`` over and over beside a CPU hog) finds
them all. Read from the source: a test starts them when its body, its decorators, a fixture it
takes or a helper of its module it calls (at any depth) names one of `STARTERS`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
#: names (modules, functions, attributes, keywords) of what starts a process, a thread or a timer
STARTERS = {"subprocess", "Popen", "multiprocessing", "threading", "Thread", "Timer", "concurrent", "ProcessPoolExecutor",
            "ThreadPoolExecutor", "signal", "setitimer", "alarm", "kill", "fork", "init_process_group", "num_workers",
            "torchrun"}
#: the same inside strings: a child's command line, a config override
STARTER_TEXT = ("num_workers", "torch.distributed.run")


def starts(node: ast.AST) -> bool:
    """Whether the code under `node` names a starter directly."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id in STARTERS or isinstance(n, ast.Attribute) and n.attr in STARTERS:
            return True
        if isinstance(n, ast.keyword) and n.arg in STARTERS:
            return True
        if isinstance(n, ast.alias) and n.name.split(".")[0] in STARTERS:
            return True
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and any(t in n.value for t in STARTER_TEXT):
            return True
    return False


def names_used(fn: ast.FunctionDef) -> set[str]:
    """The functions a function calls by name, and the fixtures it takes."""
    called = {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    return called | {a.arg for a in fn.args.args + fn.args.kwonlyargs}


def functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    """The module-level functions (helpers, fixtures, tests) and test-class methods of `tree`."""
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.ClassDef):
            out.update({f"{node.name}.{m.name}": m for m in node.body if isinstance(m, ast.FunctionDef)})
    return out


def marked(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Attribute) and n.attr == "processes" for n in ast.walk(node))


def unmarked_starters(source: str, shared: dict[str, ast.FunctionDef]) -> list[str]:
    """The tests of a module's `source` that start processes, threads or timers without the marker
    (`shared`: the fixtures of conftest.py)."""
    tree = ast.parse(source)
    module_marked = any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                          for t in n.targets) and marked(n.value) for n in tree.body)
    fns = {**shared, **functions(tree)}
    spawning = {name for name, fn in fns.items() if starts(fn)}
    grew = True
    while grew:  # a helper that calls a helper that starts a process starts one too
        more = {name for name, fn in fns.items() if name not in spawning and names_used(fn) & spawning}
        spawning |= more
        grew = bool(more)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    out = []
    for name, fn in functions(tree).items():
        test = name.rsplit(".", 1)[-1]
        if not test.startswith("test_") or name not in spawning or module_marked or marked(ast.Module(fn.decorator_list, [])):
            continue
        if "." in name and marked(ast.Module(classes[name.split(".")[0]].decorator_list, [])):
            continue
        out.append(name)
    return out


def test_every_test_that_starts_processes_is_marked():
    shared = functions(ast.parse((TESTS / "conftest.py").read_text()))
    files = [p for p in sorted(TESTS.glob("test_*.py")) if p.name != Path(__file__).name]  # here: examples in strings
    missing = {p.name: bad for p in files if (bad := unmarked_starters(p.read_text(), shared))}
    assert not missing, f"mark these @pytest.mark.processes (scripts/stress_tests.py runs them under load): {missing}"


@pytest.mark.parametrize("source, found", [
    ("import subprocess\ndef test_a():\n    subprocess.run(['true'])\n", ["test_a"]),
    ("import subprocess\ndef run():\n    subprocess.run(['true'])\ndef go():\n    run()\ndef test_a():\n    go()\n",
     ["test_a"]),  # through two helpers
    ("import pytest, threading\n@pytest.fixture\ndef worker():\n    threading.Thread(target=print).start()\n"
     "def test_a(worker):\n    pass\n", ["test_a"]),  # through a fixture
    ("import pytest\n@pytest.mark.parametrize('o', ['training.num_workers=2'])\ndef test_a(o):\n    pass\n", ["test_a"]),
    ("import os, signal\nclass TestK:\n    def test_a(self):\n        os.kill(1, signal.SIGKILL)\n", ["TestK.test_a"]),
    ("import pytest, subprocess\n@pytest.mark.processes\ndef test_a():\n    subprocess.run(['true'])\n", []),
    ("import pytest, subprocess\npytestmark = [pytest.mark.processes]\ndef test_a():\n    subprocess.run(['true'])\n", []),
    ("def test_a():\n    assert 1 + 1 == 2\n", []),
])
def test_the_check_finds_what_starts_processes(source, found):
    assert unmarked_starters(source, {}) == found
