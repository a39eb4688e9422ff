"""Every tutorial runs: each ``tutorials/NN_*.py`` (a jupytext percent script) is executed as a
notebook in a fresh Jupyter kernel in its quick mode (``INVMAP_QUICK=1``), as the docs build
renders it; a cell that fails fails the test with the tutorial's name, the cell and the error.
Skipped without the notebook tools (``pip install -e '.[test]'`` installs them)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("jupytext")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("invmap_docs_notebooks", ROOT / "docs" / "notebooks.py")
notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebooks)

TUTORIALS = notebooks.tutorials()


def test_the_tutorials_are_found_and_listed():
    assert [p.stem[:2] for p in TUTORIALS] == ["01", "02", "03", "04", "05", "06"]
    index = (ROOT / "docs" / "tutorials" / "index.md").read_text(encoding="utf-8")
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for p in TUTORIALS:
        assert f"({p.stem}.md)" in index, f"docs/tutorials/index.md does not list {p.name}"
        assert f"tutorials/{p.stem}.md" in nav, f"mkdocs.yml's nav does not list {p.name}"


def test_the_homework_workflow_fits_in_30_lines():
    """Issue #41's goal: the course's whole workflow — task, two models, train, evaluate,
    stress, compare — in at most 30 lines of code and config (the cell after the folder)."""
    cells = [c for c in notebooks.read(ROOT / "tutorials" / "02_homework.py").cells if c.cell_type == "code"]
    workflow = next(c.source for c in cells if "compare(" in c.source)
    lines = [ln for ln in workflow.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert len(lines) <= 30, len(lines)


@pytest.mark.processes
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    nb = notebooks.execute(path, tmp_path)
    if "study.train()" in path.read_text(encoding="utf-8") or ".run(" in path.read_text(encoding="utf-8"):
        widgets = [o for c in nb.cells for o in c.get("outputs", []) if notebooks.WIDGET in o.get("data", {})]
        assert widgets, f"{path.name}: training drew no notebook progress bar (a tqdm.auto widget)"
    text, images = notebooks.to_markdown(nb, path.stem)
    assert text.startswith("# "), "a tutorial opens with its title"
    assert "\r" not in text
    for png in images.values():
        assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.processes
def test_a_failing_cell_names_the_tutorial_and_the_cell(tmp_path):
    bad = tmp_path / "07_broken.py"
    bad.write_text("# %% [markdown]\n# # Broken\n\n# %%\nx = 1\n\n# %%\nraise ValueError('the reason')\n")
    with pytest.raises(notebooks.TutorialFailed) as e:
        notebooks.execute(bad, tmp_path / "run")
    msg = str(e.value)
    assert re.search(r"07_broken\.py: cell 3 \(raise ValueError\('the reason'\)\): ValueError: the reason", msg), msg
