"""Time budgets for code invmap does not own: a method from outside (`invmap.plugins`) that sleeps
or loops on import, construction or a call x̂ = method(y, physics) is stopped, in one line.

`time_limit(seconds, message)` arms the process's real-time interval timer (``signal.setitimer``
with ``SIGALRM``) around a block and raises `BudgetExceeded` (a ``TimeoutError``) with `message`
when it runs out; an enclosing limit that comes first stays in charge and is re-armed with what
is left of it afterwards. Signals reach only the main thread, so off it (or where the platform
has no ``setitimer``) the block runs unlimited. Python code, ``time.sleep`` and torch between
kernels are interrupted; a single C call holding the interpreter is stopped when it returns.

`Budget` is what one outside method may spend in one command: ``call_seconds`` per call (import
and construction included) and ``total_seconds`` for all its calls together (a whole evaluation
or stress study) — config ``evaluation.outside_call_seconds`` / ``evaluation.outside_seconds``,
``--outside-seconds`` on ``invmap evaluate`` and ``invmap stress``.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

#: the defaults of `Budget` (seconds): one call; everything one method does in one command
CALL_SECONDS = 300.0
TOTAL_SECONDS = 600.0


class BudgetExceeded(TimeoutError):
    """A block ran past its time budget (see `time_limit`)."""


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float | None, message: str) -> Iterator[None]:
    """Run the block for at most `seconds` (None or inf: no limit), else raise `BudgetExceeded(message)`."""
    if seconds is None or not math.isfinite(seconds) or not _can_alarm():
        yield
        return
    if seconds <= 0:
        raise BudgetExceeded(message)
    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    if outer_left and outer_left <= seconds:  # an enclosing limit ends first: it stays in charge
        yield
        return

    def _expired(signum: int, frame: object) -> None:
        raise BudgetExceeded(message)

    outer_handler = signal.signal(signal.SIGALRM, _expired)
    t0 = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_left:  # re-arm the enclosing limit with what is left of it
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - t0), 1e-3))


@dataclass
class Budget:
    """The seconds one outside method may spend: per call, and in all (`spent` so far)."""

    call_seconds: float = CALL_SECONDS
    total_seconds: float = TOTAL_SECONDS
    spent: float = 0.0

    def __post_init__(self) -> None:
        for what, v in (("call_seconds", self.call_seconds), ("total_seconds", self.total_seconds)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or math.isnan(v):
                raise ValueError(f"an outside method's time budget: {what} must be a number of seconds > 0, got {v!r}")

    @classmethod
    def of(cls, config: object | None) -> "Budget":
        """The budget a config sets (``evaluation.outside_call_seconds``, ``evaluation.outside_seconds``)."""
        ev = getattr(config, "evaluation", None)
        return cls(float(getattr(ev, "outside_call_seconds", CALL_SECONDS)),
                   float(getattr(ev, "outside_seconds", TOTAL_SECONDS)))

    def describe(self) -> str:
        return f"{self.call_seconds:g} s per call, {self.total_seconds:g} s in all"

    @contextmanager
    def limit(self, who: str, doing: str = "a call") -> Iterator[None]:
        """Run the block within this budget (what it takes is added to `spent`); past it, a one-line
        `BudgetExceeded` naming `who`, what it was doing and the budget."""
        left = self.total_seconds - self.spent
        if left <= self.call_seconds:
            seconds, which = left, f"{self.total_seconds:g} s in all (evaluation.outside_seconds, --outside-seconds)"
        else:
            seconds, which = self.call_seconds, f"{self.call_seconds:g} s per call (evaluation.outside_call_seconds)"
        t0 = time.monotonic()
        try:
            with time_limit(seconds, f"method '{who}' ran past its time budget of {which} during {doing}; "
                                     "it was stopped"):
                yield
        finally:
            self.spent += time.monotonic() - t0


__all__ = ["BudgetExceeded", "time_limit", "Budget", "CALL_SECONDS", "TOTAL_SECONDS"]
