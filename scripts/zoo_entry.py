"""Make a zoo entry (src/invmap/zoo/NAME/) from a trained and evaluated run directory
(`invmap.evaluation.zoo_build.make_entry`):

    .venv/bin/python scripts/zoo_entry.py RUN NAME --config configs/zoo/NAME.yaml \\
        --command "invmap train configs/zoo/NAME.yaml --out RUN" --summary "…" --task "…"

or ship the trust calibration of existing entries (`invmap.evaluation.zoo_build.write_calibration`; a new
entry gets it when it is made):

    .venv/bin/python scripts/zoo_entry.py --calibrate NAME [NAME ...]

(``--calibrate-plain``: the plain record only, without the one ``--safe`` needs.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from invmap import zoo
from invmap.evaluation.zoo_build import make_entry, write_calibration


def main() -> int:
    if sys.argv[1:2] in (["--calibrate"], ["--calibrate-plain"]):  # -plain: without safe's promise
        modes = (False,) if sys.argv[1] == "--calibrate-plain" else (False, True)
        for name in sys.argv[2:]:
            card = write_calibration(zoo.ROOT / name, safe=modes)
            print(f"{name}: trust_calibration.json {card['files']['trust_calibration.json'][:12]}…")
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--config", required=True, help="the config file the run was trained from (configs/zoo/…)")
    ap.add_argument("--command", required=True, help="the exact training command")
    ap.add_argument("--summary", required=True, help="one line: what the entry is for")
    ap.add_argument("--task", required=True, help="one line: the task (source, size, operator, noise)")
    ap.add_argument("--commit", help="the commit the training ran at (default: this checkout's HEAD)")
    a = ap.parse_args()
    card = make_entry(a.run, a.name, zoo.ROOT, config=a.config, command=a.command, summary=a.summary, task=a.task,
                      trained_at=a.commit)
    print(json.dumps(card, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
