"""The documentation site builds (``mkdocs build --strict``: every page, link and API reference
resolves) and its pages render in headless Chromium where installed. Skipped without the docs
tools (``pip install -e '.[docs]'``; CI installs them). The examples' figures are left out here
(``INVMAP_DOCS_RUN_EXAMPLES=0``: the examples have their own tests); CI's full build runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("material")
pytest.importorskip("mkdocstrings_handlers.python")

ROOT = Path(__file__).resolve().parents[1]


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
    for page in ("index.html", "readme/index.html", "CONVENTIONS/index.html", "benchmarks/index.html",
                 "contributing/index.html", "gallery/index.html", "api/trust/index.html", "api/operators/index.html"):
        assert (site / page).is_file(), page
    trust = (site / "api" / "trust" / "index.html").read_text()
    assert "PsnrBound" in trust and "PixelIntervals" in trust  # rendered from the docstrings
    gallery = (site / "gallery" / "index.html").read_text()
    assert "10_your_own_method" in gallery and "examples/01_linear_model.py" in gallery


@pytest.mark.processes
def test_the_site_renders_in_a_browser(site, tmp_path):
    from test_report_browser import CHROMIUM, rendered

    if CHROMIUM is None:
        pytest.skip("headless Chromium (/usr/bin/chromium) is not installed")
    got = rendered(site / "readme" / "index.html", tmp_path)
    assert got["tables"] >= 1 and got["rows"] >= 5 and got["table_height"] > 50
