"""The package's import graph has no cycles: each module's top-level imports of invmap modules
(function-level imports, made lazily, aside) form a DAG, so any module imports on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import invmap

ROOT = Path(invmap.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """The invmap modules `name` imports at its top level."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    deps: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x, from ..a import b
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if node.module and base in mods:
                deps.add(base)
            deps.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods)
        elif isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name in mods)
    return deps - {name}


def test_the_import_graph_has_no_cycles():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}
    assert "invmap.experiment" in graph["invmap.pipeline"]  # relative imports are read
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " → ".join(path[path.index(d):] + [m, d]))
            if d not in state:
                visit(d, path + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert len(graph) > 100 and sum(map(len, graph.values())) > 100  # the graph was read, not empty
