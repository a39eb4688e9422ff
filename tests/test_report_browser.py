"""report.html renders in a real browser: every <img> decodes (naturalWidth > 0) and the tables show.

Opens a copy of the report with a small checking script appended in headless Chromium
(``--dump-dom``); the script writes what it found into the DOM. Skipped when
/usr/bin/chromium is not installed (CI installs it: Debian packages chromium, chromium-driver).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium (/usr/bin/chromium) is not installed")

CHECK = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var rows = document.querySelectorAll('table tbody tr');
  var out = {images: imgs.length,
             decoded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
             widths: imgs.map(function (i) { return i.naturalWidth; }),
             tables: document.querySelectorAll('table').length, rows: rows.length,
             table_height: Math.max.apply(null, [0].concat(Array.prototype.map.call(
                 document.querySelectorAll('table'), function (t) { return t.getBoundingClientRect().height; })))};
  var pre = document.createElement('pre');
  pre.id = 'invmap-check';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _report(tmp_path: Path) -> Path:
    from invmap import variational
    from invmap.evaluation import evaluate as ev
    from invmap.evaluation import figures, report, stress
    from invmap.evaluation.task import Condition, make_pairs

    ref = Condition.of("ellipses", 32, {"operator": {"name": "blur", "params": {"sigma": 1.0}},
                                        "noise": {"name": "gaussian", "params": {"relative": 0.05}}}, n=2)
    methods = {"adjoint": variational.build("adjoint"), "tv": variational.build("tv", lam=0.02, iters=5)}
    y, x, phys = make_pairs(ref)
    res, recons = ev.evaluate_methods(methods, y, x, phys, keep=2)
    ev.write_metrics(ev.summarize(res), tmp_path)
    figures.recon_grid(x, y, recons, tmp_path / "figures" / "reconstructions.png", n=2)
    stress.stress_study({"model": lambda yy, p: yy.clone(), "tv": methods["tv"]}, ref, tmp_path,
                        kinds=["noise", "object"])
    (tmp_path / "config.yaml").write_text("name: browser-test\n")
    return report.build_report(tmp_path)


def rendered(page: Path, tmp_path: Path) -> dict:
    """What headless Chromium found in `page` (a copy with the CHECK script appended)."""
    checked = tmp_path / "checked.html"
    checked.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    profile = tmp_path / "chromium-profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
           "--dump-dom", checked.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="invmap-check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no check result in the DOM (rc={proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&quot;", '"'))


@pytest.mark.processes
def test_report_renders_images_and_tables_in_chromium(tmp_path):
    page = _report(tmp_path)
    html = page.read_text()
    n_img = html.count("<img")
    assert n_img == 4  # reconstructions, the stress overview, one figure per shift (noise, object)
    out = rendered(page, tmp_path)
    assert out["images"] == n_img
    assert out["decoded"] == n_img, out["widths"]
    assert all(w > 100 for w in out["widths"])
    assert out["tables"] >= 3 and out["rows"] >= 2 + 6 + 3  # metrics, noise and object tables
    assert out["table_height"] > 20


@pytest.mark.processes
def test_compare_report_renders_both_heatmaps_and_the_difference(tmp_path):
    from invmap.evaluation.compare import compare_runs
    from test_compare import make_run

    a, b = make_run(tmp_path / "a", "adjoint"), make_run(tmp_path / "b", "tv")
    compare_runs([a, b], tmp_path / "cmp")
    page = tmp_path / "cmp" / "compare.html"
    assert page.read_text().count("<img") == 3  # a's heatmap, b's heatmap, b − a
    out = rendered(page, tmp_path)
    assert out["images"] == 3 and out["decoded"] == 3, out["widths"]
    assert all(w > 100 for w in out["widths"])
    assert out["tables"] == 2 and out["rows"] >= 6 + 6  # test metrics (2 runs × 3 methods), the noise shift
