"""Evaluation: test metrics, the generalization stress study, figures and the HTML report.

- `evaluate`: per-method PSNR / SSIM / relative error / time per image on test pairs;
- `task`: test conditions as data (`Condition`) and how pairs are simulated from them;
- `stress`: shifts (noise, geometry, calibration, discretisation, object class) as data;
- `verdicts`: one sentence per shift from the numbers (where the model falls below a baseline);
- `figures`: reconstruction grids, training curves, stress curves (PNG);
- `report`: the self-contained ``report.html``;
- `runs`: from a run directory / config to reconstructors, tuned baselines and test pairs.
"""

from .evaluate import METRICS, evaluate_methods, markdown_table, summarize, text_table, write_metrics
from .report import build_report
from .stress import KINDS, build_shifts, run_shifts, stress_study
from .task import Condition, condition_from_config, make_pairs
from .verdicts import Verdict, shift_verdict, verdicts_from_rows

__all__ = ["METRICS", "evaluate_methods", "summarize", "markdown_table", "text_table", "write_metrics",
           "build_report", "KINDS", "build_shifts", "run_shifts", "stress_study", "Condition",
           "condition_from_config", "make_pairs", "Verdict", "shift_verdict", "verdicts_from_rows"]
