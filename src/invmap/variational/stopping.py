"""Early stopping of a per-measurement fit, read from y = K x + e and the noise model alone (never x).

A fit that moves x_k towards y step by step — the deep image prior (`invmap.variational.dip`),
a trained network adapted to the scan at hand (`invmap.training.adapt`) — fits the image's
structure first and the noise e last, so it is stopped by one of these rules (``stop``):

- ``discrepancy`` (Morozov): the first step k with ‖K x_k − y‖² ≤ τ·E‖e‖², E‖e‖² = Σ_i Var(e_i)
  over the measured entries (`expected_misfit`; = m·σ² for white Gaussian noise of std σ on m
  entries). It assumes the noise model is the data's: a σ too large stops early, too small late,
  and with E‖e‖² = 0 it never stops.
- ``variance`` (ES-WMV, Wang et al., "Early stopping for deep image prior", TMLR 2023): the
  windowed moving variance of the iterates VAR_k = (1/W) Σ_{j<W} ‖x_{k−j} − x̄_k‖² falls while the
  fit finds structure and rises once it fits noise; stop ``patience`` steps after its lowest value
  (a new low counts when it is `VARIANCE_DROP` below the last, so a plateau stops too) and return
  the iterate there. It needs no σ.
- ``auto``: ``discrepancy`` where the noise model gives E‖e‖² > 0, else ``variance``.
- ``steps``: no rule, all the steps.

Every rule is bounded by the step count and by a time budget in seconds, and ends where the data
are fitted to float32 precision, ‖K x − y‖² ≤ `FITTED`·‖y‖² (``fitted``). `EarlyStopping` is the
rule as an object the fit asks at every step; ``stopped_by`` says which rule or limit ended it.
"""

from __future__ import annotations

import math
import time
from collections import deque

import torch

from ..noise import measured_count

#: the stopping rules (module docstring)
RULES = ("auto", "discrepancy", "variance", "steps")
#: the variance rule counts a new low of VAR_k only when it is this fraction below the last one: on
#: noise-free data the iterates settle and VAR_k creeps down for ever (measured: 16² MRI without
#: noise ran all 3000 steps of the deep image prior), so a plateau ends the fit as a minimum does
VARIANCE_DROP = 0.01
#: every rule ends a fit whose misfit ‖K x − y‖² is below this fraction of ‖y‖²: the data are fitted to
#: float32 precision, nothing is left to fit (noise-free data; recorded as ``fitted``)
FITTED = 1e-6
#: the weights w_i = 1/Var(e_i) are floored at this fraction of the mean variance (dark Poisson entries)
VARIANCE_FLOOR = 1e-3


def expected_misfit(y: torch.Tensor, physics) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(E‖e‖² = Σ_i Var(e_i) over the measured entries, per image ``[B]``, or None where the noise model
    has no variance; the weights w_i = 1/max(Var(e_i), `VARIANCE_FLOOR`·mean Var(e)) of a weighted data
    term, shaped like y, 1 where the noise model says nothing), Var(e_i) with y standing in for K x."""
    mask = physics.operator.measured()
    try:
        var = physics.noise.variance(y, mask).double()
    except NotImplementedError:
        return None, torch.ones(y.shape, dtype=torch.float64)
    total = var.flatten(1).sum(1)
    m = measured_count(y, mask).to(total.device).clamp_min(1)
    floor = (VARIANCE_FLOOR * total / m).clamp_min(torch.finfo(torch.float64).tiny)
    w = 1.0 / torch.maximum(var, floor.reshape((-1,) + (1,) * (var.dim() - 1)))
    w = torch.where(total.reshape((-1,) + (1,) * (var.dim() - 1)) > 0, w, torch.ones_like(w))
    return total, w


def squared_residual(x: torch.Tensor, y: torch.Tensor, op, keep: torch.Tensor | None) -> torch.Tensor:
    """|K x − y|² per entry of y, 0 off the measured entries `keep` (None: all measured)."""
    r = op.forward(x) - y
    sq = r.real ** 2 + r.imag ** 2 if r.is_complex() else r ** 2
    return sq if keep is None else torch.where(keep, sq, torch.zeros_like(sq))


def rule_for(stop: str, expected: float | None) -> str:
    """The rule a fit gets (``auto``: discrepancy when E‖e‖² > 0, else variance)."""
    if stop not in RULES:
        raise ValueError(f"stop must be one of {', '.join(RULES)}, got {stop!r}")
    if stop != "auto":
        return stop
    return "discrepancy" if expected is not None and expected > 0 else "variance"


class EarlyStopping:
    """One fit's stopping rule (module docstring), asked once per step before the step is taken.

    `expected`: E‖e‖² of the data fitted (None: unknown); `energy`: ‖y‖² over the measured entries;
    ``tau``·`expected` is the discrepancy target. The clock starts when the object is made.
    """

    def __init__(self, stop: str, expected: float | None, energy: float, tau: float = 1.0, window: int = 50,
                 patience: int = 200, seconds: float = math.inf):
        self.rule = rule_for(stop, expected)
        if self.rule == "discrepancy" and not (expected is not None and expected > 0):
            raise ValueError("stop=discrepancy needs a noise level: the noise model gives "
                             f"{'no variance' if expected is None else 'E‖e‖² = 0'}; use stop=variance")
        self.target = None if expected is None else tau * expected
        self.energy, self.window, self.patience, self.seconds = float(energy), int(window), int(patience), float(seconds)
        self.stopped_by = "steps"
        self._recent: deque[torch.Tensor] = deque(maxlen=self.window)
        self._best_var, self._best_x, self._best_step = math.inf, None, 0
        self.t0 = time.perf_counter()

    def should_stop(self, k: int, x: torch.Tensor, misfit: float) -> bool:
        """Whether the fit ends at the iterate x_k (detached) of misfit ‖K x_k − y‖² (sets ``stopped_by``)."""
        if self.rule == "discrepancy" and misfit <= self.target:
            self.stopped_by = "discrepancy"
            return True
        if misfit <= FITTED * self.energy:  # nothing left to fit (noise-free data): any rule ends here
            self.stopped_by = "fitted"
            return True
        if self.rule == "variance":
            self._recent.append(x)
            if len(self._recent) == self.window:
                stack = torch.stack(tuple(self._recent))
                var = float((stack - stack.mean(0)).pow(2).flatten(1).sum(1).mean())
                if var < (1.0 - VARIANCE_DROP) * self._best_var:  # a new low: the iterate at the window's end
                    self._best_var, self._best_x, self._best_step = var, x, k
                elif k - self._best_step >= self.patience:
                    self.stopped_by = "variance"
                    return True
        return False

    def elapsed(self) -> float:
        """Seconds since the fit started."""
        return time.perf_counter() - self.t0

    def out_of_time(self) -> bool:
        """Whether the time budget is spent (sets ``stopped_by``)."""
        if self.elapsed() > self.seconds:
            self.stopped_by = "seconds"
            return True
        return False

    def returned(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, int]:
        """(the iterate the fit returns, its step): x_k itself, or under the variance rule the iterate
        where VAR_k was lowest."""
        if self.rule == "variance" and self.stopped_by != "fitted" and self._best_x is not None:
            return self._best_x, self._best_step
        return x, k


__all__ = ["RULES", "EarlyStopping", "expected_misfit", "rule_for", "squared_residual", "FITTED", "VARIANCE_DROP",
           "VARIANCE_FLOOR"]
