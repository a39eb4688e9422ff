"""mkdocs hooks: the pages made at build time (see mkdocs.yml).

- ``index.md``, ``benchmarks.md``, ``contributing.md``: README.md, BENCHMARKS.md and
  CONTRIBUTING.md of the repository, their links to other pages rewritten to the site's;
- ``tutorials/NN_*.md``: every ``tutorials/NN_*.py`` (a jupytext percent script) executed in a
  Jupyter kernel in its quick mode and rendered with its outputs and figures (docs/notebooks.py);
- ``api/*.md``: the API reference, one page per part of the package (mkdocstrings renders
  the docstrings);
- ``gallery.md``: every ``examples/NN_*.py`` with its docstring, its source and the figures
  it writes when run with ``--quick``.

``INVMAP_DOCS_RUN_EXAMPLES=0`` runs neither the examples nor the tutorials (the pages then show
their sources without outputs), e.g. for a quick check of the site.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import notebooks  # noqa: E402  (docs/notebooks.py: read, execute and render the tutorials)

ROOT = Path(__file__).resolve().parents[1]

#: repository files shown as pages, and the page names they get
COPIED = {"README.md": "index.md", "BENCHMARKS.md": "benchmarks.md", "CONTRIBUTING.md": "contributing.md"}
#: link targets in those files → the site's pages (and any ``docs/PATH`` → ``PATH``)
LINKS = {**COPIED}

#: API pages: title → modules rendered on it
API = {
    "study": ("Notebook API: a study you hold", ["invmap.study"]),
    "operators": ("Operators", ["invmap.operators", "invmap.operators.base", "invmap.operators.axes",
                                "invmap.operators.tomography", "invmap.operators.blur", "invmap.operators.mri",
                                "invmap.operators.downsample", "invmap.operators.inpainting"]),
    "physics-and-noise": ("Physics, noise and metrics", ["invmap.physics", "invmap.noise", "invmap.metrics",
                                                         "invmap.distributions"]),
    "data": ("Data", ["invmap.data", "invmap.data.pairs", "invmap.data.sources", "invmap.data.crime"]),
    "variational": ("Variational methods", ["invmap.variational", "invmap.variational.methods",
                                            "invmap.variational.tune", "invmap.variational.pdhg",
                                            "invmap.variational.cgls", "invmap.variational.fbp"]),
    "prior": ("The learned prior: denoiser, plug-and-play, posterior sampling",
              ["invmap.models.denoiser", "invmap.variational.prior", "invmap.variational.pnp",
               "invmap.variational.posterior", "invmap.trust.spread"]),
    "models": ("Models and reconstructor kinds", ["invmap.capabilities", "invmap.models", "invmap.models.reconstructor",
                                                  "invmap.models.lpd", "invmap.models.lgd", "invmap.models.pnp",
                                                  "invmap.models.io"]),
    "training": ("Training", ["invmap.training.loop", "invmap.training.losses", "invmap.training.optim"]),
    "evaluation": ("Evaluation and the stress study", ["invmap.evaluation.evaluate", "invmap.evaluation.stress",
                                                       "invmap.evaluation.compare", "invmap.evaluation.verdicts",
                                                       "invmap.pipeline", "invmap.evaluation.experiment",
                                                       "invmap.evaluation.resolve"]),
    "trust": ("Trust at inference", ["invmap.trust.diagnostics", "invmap.trust.safe", "invmap.trust.conformal",
                                     "invmap.trust.intervals", "invmap.evaluation.trust"]),
    "zoo-and-plugins": ("The zoo and methods from outside", ["invmap.zoo", "invmap.evaluation.zoo_build", "invmap.plugins"]),
}

_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def _relink(text: str) -> str:
    """Links to files the site has become its pages; links to other repository files become plain text."""
    def sub(m: re.Match) -> str:
        target, anchor = m.group(1), m.group(2) or ""
        if target.startswith(("http://", "https://", "mailto:")):
            return m.group(0)
        if target in LINKS:
            return f"]({LINKS[target]}{anchor})"
        if target.startswith("docs/"):
            return f"]({target.removeprefix('docs/')}{anchor})"
        return f"]({'#' if not anchor else anchor})"
    return _LINK.sub(sub, text)


def _api_page(title: str, modules: list[str]) -> str:
    return f"# {title}\n\n" + "\n\n".join(f"::: {m}" for m in modules) + "\n"


def _run_example(path: Path, out: Path) -> list[Path]:
    """Run ``main(out, quick=True)`` of an example (one thread, as the tests do); its PNGs."""
    import torch

    spec = importlib.util.spec_from_file_location(f"invmap_docs_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        spec.loader.exec_module(mod)
        mod.main(out, quick=True)
    finally:
        torch.set_num_threads(threads)
        sys.path.remove(str(path.parent))
    return sorted(out.glob("*.png"))


def _gallery(config, files: Files) -> str:
    run = os.environ.get("INVMAP_DOCS_RUN_EXAMPLES", "1") != "0"
    parts = ["# Examples\n",
             "Each example runs as `python examples/NAME.py OUT_DIR [--quick]`; the figures below are "
             "those of `--quick` (smaller sizes), made when this site was built."
             + ("" if run else " **This build skipped running them** (`INVMAP_DOCS_RUN_EXAMPLES=0`).") + "\n"]
    tmp = Path(tempfile.mkdtemp(prefix="invmap-docs-"))
    for path in sorted((ROOT / "examples").glob("[0-9]*.py")):
        doc = (path.read_text(encoding="utf-8").split('"""')[1] if '"""' in path.read_text(encoding="utf-8")
               else path.stem).strip()
        title, _, body = doc.partition("\n")
        parts.append(f"## {path.stem}: {title}\n\n<pre>{html.escape(body.strip())}</pre>\n")
        if run:
            for png in _run_example(path, tmp / path.stem):
                uri = f"gallery/{path.stem}/{png.name}"
                files.append(File.generated(config, uri, content=png.read_bytes()))
                parts.append(f"![{path.stem}: {png.stem}]({uri})\n")
        parts.append(f"??? note \"source: examples/{path.name}\"\n\n" + "\n".join(
            "    " + line for line in ["```python", *path.read_text(encoding="utf-8").splitlines(), "```"]) + "\n")
    return "\n".join(parts)


def _tutorials(config, files: Files) -> None:
    """Each tutorial as a page ``tutorials/NN_name.md``: executed (quick mode) unless
    ``INVMAP_DOCS_RUN_EXAMPLES=0``, its figures as files beside it."""
    run = os.environ.get("INVMAP_DOCS_RUN_EXAMPLES", "1") != "0"
    tmp = Path(tempfile.mkdtemp(prefix="invmap-tutorials-"))
    for path in notebooks.tutorials():
        nb = notebooks.execute(path, tmp / path.stem) if run else notebooks.read(path)
        text, images = notebooks.to_markdown(nb, path.stem)
        note = ("" if run else "\n\n!!! note \"Not executed\"\n    This build of the site skipped running the "
                "tutorials (`INVMAP_DOCS_RUN_EXAMPLES=0`): the code is shown without its outputs.\n")
        head, _, rest = text.partition("\n")
        source = (f"\n\n*Source: `tutorials/{path.name}` — open it as a notebook with jupytext, or run it as a "
                  "script; `INVMAP_QUICK=1` runs its small sizes" + (", as this page did" if run else "") + ".*\n")
        files.append(File.generated(config, f"tutorials/{path.stem}.md", content=head + source + note + rest))
        for name, png in images.items():
            files.append(File.generated(config, f"tutorials/{name}", content=png))


def on_files(files: Files, config) -> Files:
    for src, page in COPIED.items():
        files.append(File.generated(config, page, content=_relink((ROOT / src).read_text(encoding="utf-8"))))
    for name, (title, modules) in API.items():
        files.append(File.generated(config, f"api/{name}.md", content=_api_page(title, modules)))
    files.append(File.generated(config, "gallery.md", content=_gallery(config, files)))
    _tutorials(config, files)
    return files
