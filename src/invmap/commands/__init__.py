"""CLI commands: one module each, discovered by `invmap.cli` (HELP, add_arguments, run)."""

from ..evaluation.runs import TUNE_SECONDS

#: ``--tune-seconds``: the tuning's fixed plan decides the parameters; the cap only stops a search
#: that runs far longer than planned (then labelled as cut wherever the baseline's numbers appear)
TUNE_HELP = (f"cap on the seconds tuning the baselines may take when the run has none (default {TUNE_SECONDS:g}; "
             "a fixed plan of evaluations decides the parameters, a search the cap cuts is labelled as cut)")
