"""The package's import graph is layered and has no cycle, counting every import.

Every ``import`` / ``from … import`` of invmap's own modules counts, wherever it stands — at the
top of a module, inside a function, under ``if TYPE_CHECKING`` — and so does what the statement
implies: importing ``invmap.a.b`` from outside ``invmap.a`` runs ``invmap/a/__init__.py`` first,
a name taken from a package is a dependency on its ``__init__``, and a package whose
``__init__`` calls ``import_submodules(__name__)`` (a registry discovering its entries) imports
every public module in it. The graph is read from the source with an AST walk (nothing is
imported), so a module that dodges a cycle by importing inside a function is caught.

Cycles are counted twice: between modules, and between the package's parts (`rooms`: a
subpackage with all its modules is one part, a top-level module another), as a reader of the
tree sees them — ``evaluation/zoo_build.py`` importing ``experiment.py`` while ``experiment.py``
imports ``evaluation/task.py`` is no module cycle but makes ``evaluation`` and ``experiment``
lean on each other, so neither can be read first.

The layers, bottom to top, are `LAYERS` (written out in CONTRIBUTING.md): a module may import
its own layer and the ones below, never one above. An import of invmap's own modules inside a
function is allowed for start-up cost alone, listed in `LAZY` with its reason (none today: the
command line loads the package anyway); optional third-party packages are the other lazy imports,
and are no edge here.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(importlib.util.find_spec("invmap").origin).parent  # read, not imported

#: bottom → top; a module stands on the layer of the longest entry that is its name or a package above it
#: (``invmap`` itself: the root package alone)
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", ("invmap", "invmap.registry", "invmap.atomic", "invmap.budget", "invmap.paths", "invmap.metrics",
                "invmap.files", "invmap.schemas", "invmap.byteorder", "invmap.timelimit", "invmap.capabilities",
                "invmap.progress")),
    ("physics", ("invmap.operators", "invmap.noise", "invmap.physics", "invmap.distributions", "invmap.interop",
                 "invmap.method_output")),
    ("solvers", ("invmap.solvers",)),
    ("data", ("invmap.data",)),
    ("methods", ("invmap.variational", "invmap.models", "invmap.plugins", "invmap.zoo")),
    ("config", ("invmap.config",)),
    ("training", ("invmap.training", "invmap.selfsup")),
    ("trust", ("invmap.trust",)),
    ("evaluation", ("invmap.evaluation",)),
    ("pipeline", ("invmap.pipeline",)),
    ("commands", ("invmap.commands", "invmap.cli", "invmap.__main__", "invmap.study")),
]

#: (module, imported module) pairs imported inside a function on purpose: start-up cost alone
LAZY: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    in_function: bool
    implied: bool = False  # not written: a parent package's __init__, run on the way


def modules(root: Path = ROOT) -> dict[str, Path]:
    """{dotted name: file} of every module of the package at `root`."""
    out = {}
    for p in root.rglob("*.py"):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def edges(name: str, path: Path, mods: dict[str, Path]) -> list[Edge]:
    """The invmap modules `name` imports, anywhere in its file, with what each import implies."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    up = package.split(".")[:len(package.split(".")) - child.level + 1]
                    base = ".".join(up + ([child.module] if child.module else []))
                else:
                    base = child.module or ""
                for a in child.names:  # a submodule, else a name of the package's __init__
                    found.append((f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base, child.lineno, in_function))
            elif isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names)
            elif (isinstance(child, ast.Call) and getattr(child.func, "id", None) == "import_submodules"
                  and path.name == "__init__.py"):  # a registry importing each module of its package
                found.extend((m, child.lineno, in_function) for m in mods
                             if m.rpartition(".")[0] == name and not m.rpartition(".")[2].startswith("_"))
            visit(child, inside)

    visit(tree, False)
    out = []
    for target, line, in_function in found:
        if target not in mods:
            continue  # a third-party or standard module
        implied = [p for p in _parents(target) if p in mods and not (name == p or name.startswith(p + "."))]
        out += [Edge(name, t, line, in_function, t != target) for t in [target, *implied] if t != name]
    return out


def graph(root: Path = ROOT) -> dict[str, list[Edge]]:
    mods = modules(root)
    return {m: edges(m, p, mods) for m, p in mods.items()}


def layer(name: str, layers=LAYERS) -> int:
    """The index in `layers` of the longest prefix of `name` (a module's own entry wins over its package's)."""
    best, where = -1, None
    for i, (_, prefixes) in enumerate(layers):
        for p in prefixes:
            if (name == p or ("." in p and name.startswith(p + "."))) and len(p) > best:
                best, where = len(p), i
    if where is None:
        raise AssertionError(f"module {name} is on no layer: add it to LAYERS and to CONTRIBUTING.md")
    return where


def cycle(g: dict[str, list[Edge]]) -> list[str] | None:
    """One import cycle of `g`, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for d in sorted({e.target for e in g[m]}):
            if state.get(d) == 1:
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state and (found := visit(m)):
            return found
    return None


def room(name: str) -> str:
    """The part of the package `name` belongs to: its top-level subpackage or module (``invmap.a.b`` → ``invmap.a``)."""
    return ".".join(name.split(".")[:2])


def rooms(g: dict[str, list[Edge]]) -> dict[str, list[Edge]]:
    """`g` with each module replaced by its `room`, edges inside one room dropped."""
    out: dict[str, list[Edge]] = {}
    for es in g.values():
        for e in es:
            out.setdefault(room(e.source), [])
            out.setdefault(room(e.target), [])
            if room(e.target) != room(e.source):
                out[room(e.source)].append(Edge(room(e.source), room(e.target), e.line, e.in_function, e.implied))
    for m in g:
        out.setdefault(room(m), [])
    return out


def upward(g: dict[str, list[Edge]], layers=LAYERS) -> list[str]:
    """Each import of a module from a higher layer, as text."""
    return [f"{e.source}:{e.line} ({layers[layer(e.source, layers)][0]}) imports {e.target} "
            f"({layers[layer(e.target, layers)][0]}){' inside a function' if e.in_function else ''}"
            for es in g.values() for e in es if layer(e.target, layers) > layer(e.source, layers)]


def lazy(g: dict[str, list[Edge]]) -> list[Edge]:
    """The imports of invmap's own modules made inside functions (implied parent packages aside)."""
    return [e for es in g.values() for e in es if e.in_function and not e.implied]


def test_every_module_is_on_a_layer_and_imports_none_above_its_own():
    g = graph()
    assert len(g) > 100 and sum(map(len, g.values())) > 300  # the graph was read, not empty
    assert any(e.target == "invmap.evaluation.experiment" for e in g["invmap.pipeline"])  # relative imports are read
    assert upward(g) == []


def test_the_import_graph_has_no_cycle_counting_imports_inside_functions():
    assert cycle(graph()) is None


def test_the_parts_of_the_package_import_each_other_in_no_cycle():
    """No cycle between subpackages and top-level modules either (see the module docstring)."""
    r = rooms(graph())
    assert {"invmap.evaluation", "invmap.operators", "invmap.cli"} <= set(r)  # parts, not modules
    assert cycle(r) is None


def test_imports_inside_functions_are_kept_for_start_up_cost_alone():
    """An invmap module imported inside a function is one of `LAZY` (each with its reason), so a
    cycle cannot hide there; at most 20 such imports."""
    found = {(e.source, e.target) for e in lazy(graph())}
    assert sorted(found - set(LAZY)) == []
    assert len(LAZY) <= 20 and all(LAZY.values())


# ------------------------------------------------------------------ the checker catches what it must
def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "invmap"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


TINY_LAYERS = [("ground", ("invmap", "invmap.registry", "invmap.files")), ("methods", ("invmap.models",)),
               ("top", ("invmap.cli",))]


@pytest.mark.parametrize("where", ["top", "function", "package"])
def test_an_injected_upward_import_is_caught(tmp_path, where):
    """A ground module importing a higher layer — at its top, inside a function, or a module of a
    registry package — fails the layer check, and closes a cycle (through the registry's discovery
    of its modules, one of which imports the ground module) that the cycle check names."""
    body = {"top": "from .models import build\n",
            "function": "def f():\n    from .models import build\n    return build\n",
            "package": "def f():\n    from .models.unet import UNet\n    return UNet\n"}[where]
    root = _package(tmp_path, {
        "files.py": body,
        "models/__init__.py": "from ..registry import import_submodules\n\ndef build():\n    pass\n\n"
                              "import_submodules(__name__)\n",  # its modules, found as it runs
        "models/unet.py": "from ..files import read\n",
        "registry.py": "",
        "cli.py": "from .models import build\n",
    })
    g = graph(root)
    up = upward(g, TINY_LAYERS)
    assert up and all("invmap.files" in u for u in up)
    assert (" inside a function" in up[0]) == (where != "top")
    assert cycle(g) is not None and "invmap.files" in cycle(g)
    assert bool(lazy(g)) == (where != "top")


def test_an_injected_cycle_between_parts_is_caught(tmp_path):
    """A module of a subpackage importing a top-level module that imports another module of that
    subpackage: no module cycle, but a cycle of parts (as `invmap.experiment` and `invmap.evaluation`
    were)."""
    root = _package(tmp_path, {"evaluation/__init__.py": "", "evaluation/task.py": "import json\n",
                               "evaluation/zoo_build.py": "from ..experiment import Experiment\n",
                               "experiment.py": "from .evaluation.task import make_pairs\n"})
    g = graph(root)
    assert cycle(g) is None
    assert cycle(rooms(g)) in (["invmap.evaluation", "invmap.experiment", "invmap.evaluation"],
                               ["invmap.experiment", "invmap.evaluation", "invmap.experiment"])


def test_a_clean_tiny_package_passes(tmp_path):
    root = _package(tmp_path, {"files.py": "import json\n", "models/__init__.py": "from .. import files\n",
                               "cli.py": "def main():\n    from . import models\n"})
    g = graph(root)
    assert upward(g, TINY_LAYERS) == [] and cycle(g) is None and cycle(rooms(g)) is None
    assert [(e.source, e.target, e.in_function) for e in lazy(g)] == [("invmap.cli", "invmap.models", True)]
