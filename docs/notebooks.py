"""The tutorials as notebooks: read (jupytext percent scripts), executed (a Jupyter kernel), rendered
(Markdown with the outputs and figures). Used by docs/hooks.py (the site's tutorial pages) and by
tests/test_tutorials.py (every tutorial runs).

A tutorial is ``tutorials/NN_name.py``: ``# %% [markdown]`` cells of prose and ``# %%`` cells of
code, runnable as a script, opened as a notebook by Jupyter with jupytext. `execute` runs it in a
fresh kernel in a working directory of its own with ``INVMAP_QUICK=1`` (each tutorial's small
sizes: the whole set in minutes on a 2-core CPU); a cell that fails raises `TutorialFailed`
naming the tutorial, the cell and the error.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
#: the environment variable a tutorial reads to run its small sizes
QUICK = "INVMAP_QUICK"
#: outputs that only a live notebook can show (a widget's state); the page keeps their text
WIDGET = "application/vnd.jupyter.widget-view+json"


class TutorialFailed(AssertionError):
    """A cell of a tutorial raised: the message names the tutorial, the cell and the error."""


def tutorials() -> list[Path]:
    """Every ``tutorials/NN_*.py``, in order."""
    return sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))


def read(path: Path) -> nbformat.NotebookNode:
    """The notebook of a jupytext percent script."""
    return jupytext.read(path, fmt="py:percent")


def title(path: Path) -> str:
    """The first Markdown heading of a tutorial."""
    for cell in read(path).cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return path.stem


def _failed_cell(nb: nbformat.NotebookNode) -> tuple[int, nbformat.NotebookNode] | None:
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return i, cell
    return None


def execute(path: Path, cwd: Path, timeout: int = 600, quick: bool = True) -> nbformat.NotebookNode:
    """Run every cell of the tutorial `path` in a new kernel whose working directory is `cwd`;
    returns the executed notebook. One thread per kernel (the tutorials train tiny networks)."""
    nb = read(path)
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    if quick:
        env[QUICK] = "1"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute(env=env, cwd=str(cwd))
    except CellExecutionError as e:
        where = _failed_cell(nb)
        if where is None:
            raise TutorialFailed(f"{path.name}: {str(e).strip().splitlines()[-1]}") from None
        i, cell = where
        err = next(o for o in cell.outputs if o.get("output_type") == "error")
        first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
        raise TutorialFailed(f"{path.name}: cell {i + 1} ({first.strip()[:60]}): {err.ename}: {err.evalue}") from None
    return nb


def _clean_stream(text: str) -> str:
    """A progress bar's carriage-return updates as the line it ended on."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def to_markdown(nb: nbformat.NotebookNode, stem: str) -> tuple[str, dict[str, bytes]]:
    """(Markdown of the notebook, {file name: PNG bytes}) — prose, code, text outputs, tables
    (HTML) and figures (``stem_N.png``, linked from the page)."""
    parts: list[str] = []
    images: dict[str, bytes] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        parts.append(f"```python\n{cell.source}\n```")
        stream = ""  # consecutive printed output is one block (a progress bar's updates: its last state)

        def flush() -> None:
            text = _clean_stream(stream).strip("\n")
            if text.strip():
                parts.append(f"```text\n{text}\n```")

        for out in cell.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                stream += out.get("text", "")
                continue
            flush()
            stream = ""
            if kind in ("execute_result", "display_data"):
                data = out.get("data", {})
                if WIDGET in data:
                    continue
                if "image/png" in data:
                    name = f"{stem}_{len(images) + 1}.png"
                    images[name] = base64.b64decode(data["image/png"])
                    parts.append(f"![{stem} figure {len(images)}]({name})")
                elif "text/html" in data:
                    parts.append('<div class="invmap-output">\n' + "".join(data["text/html"]) + "\n</div>")
                elif "text/plain" in data:
                    parts.append(f"```text\n{data['text/plain']}\n```")
            elif kind == "error":
                parts.append(f"```text\n{out.get('ename')}: {out.get('evalue')}\n```")
        flush()
    return "\n\n".join(parts) + "\n", images
