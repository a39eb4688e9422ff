"""The command line every example shares: ``python examples/NN_name.py [OUT_DIR] [--quick]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable


def run_example(main: Callable[..., dict], doc: str | None, file: str,
                options: dict[str, dict[str, Any]] | None = None) -> None:
    """Parse ``[OUT_DIR] [--out DIR] [--quick]`` (plus the example's own `options`, flag →
    argparse keywords) and call ``main(out_dir, quick=..., **options)``; the default output
    folder is ``out/<example name>``."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0] if doc else None)
    p.add_argument("out_dir", nargs="?", help="output folder for the figures (default out/<example name>)")
    p.add_argument("--out", dest="out_opt", help="output folder (same as the positional argument)")
    p.add_argument("--quick", action="store_true", help="small sizes (used by the tests)")
    for flag, kw in (options or {}).items():
        p.add_argument(flag, **kw)
    a = vars(p.parse_args())
    out = a.pop("out_opt") or a.pop("out_dir") or Path("out") / Path(file).stem
    a.pop("out_dir", None)
    main(out, **a)
