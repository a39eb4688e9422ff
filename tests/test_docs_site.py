"""The documentation site builds (``mkdocs build --strict``: every page, link and API reference
resolves) and its pages — the home page and the tutorials among them — render in headless
Chromium where installed. Skipped without the docs tools (``pip install -e '.[docs]'``; CI
installs them). The examples and the tutorials are not run here (``INVMAP_DOCS_RUN_EXAMPLES=0``:
they have their own tests, tests/test_examples.py and tests/test_tutorials.py); CI's full build
runs them and renders their outputs and figures."""

from __future__ import annotations

import html as html_lib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parents[1]


def html_text(html: str) -> str:
    """The text of a page: tags (the code's highlighting among them) dropped, entities read."""
    return html_lib.unescape(re.sub(r"<[^>]+>", "", html))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "INVMAP_DOCS_RUN_EXAMPLES": "0", "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.processes
def test_the_site_has_every_page_and_the_api_reference(site):
    for page in ("index.html", "CONVENTIONS/index.html", "benchmarks/index.html", "benchmarks-archive/index.html",
                 "contributing/index.html", "gallery/index.html", "api/trust/index.html", "api/operators/index.html",
                 "api/study/index.html", "tutorials/index.html", "tutorials/02_homework/index.html",
                 "how-to/own-images/index.html", "reference/commands/index.html", "background/trust/index.html"):
        assert (site / page).is_file(), page
    study = (site / "api" / "study" / "index.html").read_text()
    assert "Study" in study and "compare" in study
    trust = (site / "api" / "trust" / "index.html").read_text()
    assert "PsnrBound" in trust and "PixelIntervals" in trust  # rendered from the docstrings
    gallery = (site / "gallery" / "index.html").read_text()
    assert "10_your_own_method" in gallery and "examples/01_linear_model.py" in gallery


@pytest.mark.processes
def test_the_site_renders_in_a_browser(site, tmp_path):
    from test_report_browser import CHROMIUM, rendered

    if CHROMIUM is None:
        pytest.skip("headless Chromium (/usr/bin/chromium) is not installed")
    got = rendered(site / "index.html", site)  # the checked copy beside the page: its images resolve
    assert got["tables"] >= 1 and got["rows"] >= 5 and got["table_height"] > 50
    assert got["images"] >= 1 and got["decoded"] == got["images"], got["widths"]  # the report's picture


@pytest.mark.processes
def test_the_tutorials_page_renders_in_a_browser(site, tmp_path):
    """The tutorials' index lists each tutorial, and a tutorial page shows its prose and code."""
    from test_report_browser import CHROMIUM, rendered

    if CHROMIUM is None:
        pytest.skip("headless Chromium (/usr/bin/chromium) is not installed")
    index = site / "tutorials" / "index.html"
    html = index.read_text()
    for stem in ("01_first_study", "02_homework", "03_your_folder", "04_your_method", "05_loss_design"):
        assert f'href="../{stem}/"' in html or f'href="{stem}/"' in html, stem
    got = rendered(index, index.parent)
    assert got["images"] == got["decoded"]
    page = site / "tutorials" / "02_homework" / "index.html"
    text = html_text(page.read_text())
    assert "The course's homework" in text and "compare(cnn, rescnn" in text  # the prose and the code
    got = rendered(page, page.parent)
    assert got["images"] == got["decoded"]
