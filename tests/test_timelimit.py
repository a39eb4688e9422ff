"""`invmap.timelimit`: a block past its budget is stopped with a one-line TimeoutError; limits nest;
a `Budget` counts what one outside method spent over all its calls."""

from __future__ import annotations

import signal
import time

import pytest

from invmap.timelimit import Budget, BudgetExceeded, time_limit


@pytest.mark.processes
def test_a_block_past_its_limit_is_stopped_and_the_timer_is_disarmed():
    with pytest.raises(BudgetExceeded, match="too slow"):
        with time_limit(0.2, "too slow"):
            time.sleep(30)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with time_limit(5, "never"):  # a block within its limit runs as it is
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.processes
def test_an_enclosing_limit_that_ends_first_stays_in_charge_and_is_rearmed_after_an_inner_one():
    with pytest.raises(BudgetExceeded, match="outer"):
        with time_limit(0.3, "outer"):
            with time_limit(100, "inner"):
                time.sleep(30)
    with pytest.raises(BudgetExceeded, match="outer"):
        with time_limit(0.5, "outer"):
            with time_limit(0.1, "inner"):
                pass
            assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 0.5  # re-armed with what is left
            time.sleep(30)


def test_a_budget_counts_every_call_and_names_the_one_it_ran_out_on():
    b = Budget(call_seconds=10, total_seconds=0.4)
    with b.limit("mod:m"):
        time.sleep(0.25)
    with pytest.raises(BudgetExceeded, match=r"'mod:m' ran past its time budget of 0.4 s in all .* during a call"):
        with b.limit("mod:m"):
            time.sleep(30)
    assert b.spent >= 0.4
    with pytest.raises(ValueError, match="call_seconds must be a number of seconds > 0"):
        Budget(call_seconds=0)
