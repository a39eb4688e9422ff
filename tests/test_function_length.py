"""No function of the package is longer than a screen (`MAX_LINES`), so each can be read whole.

Counted from the ``def`` line to the function's last line (docstring and comments included), for
every function and method, nested ones too; read from the source with an AST walk (nothing is
imported). `LONG` lists the ones still longer, each with why it is not split yet.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

ROOT = Path(importlib.util.find_spec("invmap").origin).parent  # read, not imported

MAX_LINES = 80

#: "module.function" → why it is still longer than `MAX_LINES`
LONG: dict[str, str] = {
    "invmap.commands.reconstruct.run": "its trust and safe logic is moving out of the command line (#37 item 3)",
    "invmap.commands.reconstruct.check_trust": "moving out of the command line with the trust logic (#37 item 3)",
}


def long_functions(root: Path = ROOT, limit: int = MAX_LINES) -> dict[str, int]:
    """{"module.function": lines} of every function of the package at `root` longer than `limit` lines."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    out[f"{module}.{node.name}"] = lines
    return out


def test_no_function_is_longer_than_a_screen():
    found = long_functions()
    assert sorted(set(found) - set(LONG)) == [], {k: v for k, v in found.items() if k not in LONG}
    assert all(LONG.values())


def test_a_long_function_is_caught(tmp_path):
    root = tmp_path / "invmap"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_LINES))  # the def line makes it MAX_LINES + 1
    (root / "sub" / "mod.py").write_text(f"def short():\n    return 1\n\n\nclass A:\n    def long(self):\n{body}")
    assert long_functions(root) == {"invmap.sub.mod.long": MAX_LINES + 1}
