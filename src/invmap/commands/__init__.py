"""CLI commands: one module each, discovered by `invmap.cli` (HELP, add_arguments, run)."""

import argparse

from ..evaluation.runs import TUNE_SECONDS

#: ``--tune-seconds``: the tuning's fixed plan decides the parameters; the cap only stops a search
#: that runs far longer than planned (then labelled as cut wherever the baseline's numbers appear)
TUNE_HELP = (f"cap on the seconds tuning the baselines may take when the run has none (default {TUNE_SECONDS:g}; "
             "a fixed plan of evaluations decides the parameters, a search the cap cuts is labelled as cut)")


def add_failure_options(p: argparse.ArgumentParser, records_in: str) -> None:
    """``--keep-going`` (a failing method is recorded in `records_in` instead of exit 2) and
    ``--outside-seconds`` (the time budget of each method from outside): evaluate and stress."""
    p.add_argument("--keep-going", action="store_true",
                   help="when a method fails (raises, runs out of time, returns no finite image batch), score the "
                        f"others and record the failure in {records_in} instead of stopping with exit 2")
    p.add_argument("--outside-seconds", type=float, metavar="S",
                   help="time budget of each method from outside (module:attr) for all its calls in this command "
                        "(default evaluation.outside_seconds, 600; one call: evaluation.outside_call_seconds, 300)")


def outside_budget(args: argparse.Namespace) -> list[str]:
    """``--outside-seconds S`` as the config override it stands for (checked by the config: S > 0)."""
    return [] if args.outside_seconds is None else [f"evaluation.outside_seconds={args.outside_seconds!r}"]
