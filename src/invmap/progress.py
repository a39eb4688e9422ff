"""Progress of long work: a tqdm bar on a terminal, one plain line per stage anywhere else.

A tqdm bar redraws itself with carriage returns. On a terminal that is one line that moves; in a
log file or a pipe (``invmap run … > run.log 2>&1``, a CI job, a scheduler's output file) it is
every redraw one after the other, ``\\r``-joined, thousands of them per epoch. Every bar invmap
shows is therefore made here: `Progress` draws a tqdm bar only where its stream is interactive (a
terminal, or a Jupyter kernel, where tqdm draws a widget), and elsewhere stays silent per update
and writes one plain line per `stage` (the training loop: one per epoch, with the loss, the
validation PSNR and the time elapsed against the budget).

>>> import io
>>> log = io.StringIO()
>>> p = Progress(4, unit="step", stream=log)
>>> p.update(2); p.stage("epoch 1/2: loss 0.5"); p.close()
>>> log.getvalue()
'epoch 1/2: loss 0.5\\n'
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm
from tqdm.auto import tqdm as auto_tqdm


def interactive(stream: Any) -> bool:
    """Whether `stream` shows a redrawn bar as one moving line: a terminal, or a Jupyter kernel's."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
    return _in_kernel() and stream in (sys.stdout, sys.stderr)


def _in_kernel() -> bool:
    """Whether this process is a Jupyter kernel (an IPython shell with a kernel), not merely one that
    imported ipykernel (a test, a tool)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


class Progress:
    """Counts ``n`` of ``total`` (steps, seconds…): a tqdm bar on an interactive `stream`, nothing
    per update elsewhere; `stage(text)` writes one plain line there (a no-op under the bar, whose
    postfix carries the same numbers). Disabled (``enabled=False``: a data-parallel rank other
    than 0, ``progress=False``), it writes nothing at all. ``str(progress)`` is the bar's line."""

    def __init__(self, total: float, initial: float = 0, *, enabled: bool = True, unit: str = "it",
                 desc: str | None = None, bar_format: str | None = None, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.n, self.unit, self.desc, self.bar_format = total, initial, unit, desc, bar_format
        self.enabled, self.postfix, self.t0 = enabled, "", time.perf_counter()
        self.bar = None
        if enabled and interactive(self.stream):
            self.bar = auto_tqdm(total=total, initial=initial, unit=unit, desc=desc, bar_format=bar_format,
                                 file=self.stream, dynamic_ncols=True, leave=True, mininterval=0.5)

    def update(self, k: float = 1) -> None:
        self.n += k
        if self.bar is not None:
            self.bar.update(k)

    def set_total(self, total: float) -> None:
        self.total = total
        if self.bar is not None:
            self.bar.total = total

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix(refresh=refresh, **values)

    def stage(self, text: str) -> None:
        """One plain line where no bar is drawn (a log, a pipe); nothing under a bar or disabled."""
        if self.enabled and self.bar is None:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __str__(self) -> str:
        return tqdm.format_meter(self.n, self.total, time.perf_counter() - self.t0, prefix=self.desc or "",
                                 unit=self.unit, bar_format=self.bar_format, postfix=self.postfix or None)


__all__ = ["Progress", "interactive"]
