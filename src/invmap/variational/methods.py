"""Variational reconstructors behind one call: ``x_hat = method(y, physics)``.

Each entry of the registry `METHODS` is a class whose typed ``__init__`` parameters are
the method's settings; ``build(name, **params)`` validates them (unknown or ill-typed
parameters fail with one line naming the allowed ones). A method object remembers its
settings (``.params()``), the history of its last solve (``.history``) and, after
`tune`, the tuning table (``.tuning``), so a report can say exactly what ran.

Names: ``adjoint`` (Kᵀy), ``fbp`` (tomography only), ``gd`` (Landweber), ``cgls``
(early-stopped or damped, discrepancy principle), ``tikhonov`` (L = I or ∇), ``tv``
(Chambolle–Pock), ``fista-l1`` (λ‖x‖₁), ``fista-tv`` (λTV by inner prox, or Huber-TV).

>>> import torch, invmap.operators as ops
>>> from invmap.physics import Physics
>>> x_hat = build("tikhonov", lam=0.1)(torch.ones(1, 1, 8, 8), Physics(ops.build("identity", image_shape=(8, 8))))
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import torch

from ..noise import measured_count
from ..operators.base import LinearOperator
from ..physics import Physics, as_physics
from ..registry import Registry
from .functionals import Box

METHODS = Registry("variational method")

def names() -> list[str]:
    """Names of every registered variational method."""
    return METHODS.names()


def build(name: str, **params: Any) -> "Method":
    """Build method `name` with validated `params` (see ``METHODS.describe(name)``)."""
    m: Method = METHODS.build(name, **params)
    m.name = name
    return m


def noise_norm(y: torch.Tensor, physics: Physics) -> torch.Tensor | None:
    """Per-sample noise norm δ = σ·√m from the noise model (y stands in for K x), or None.

    m counts the entries K measures (`LinearOperator.measured`): noise lives there only.
    """
    mask = physics.operator.measured()
    sigma = physics.noise.sigma(y, mask)
    if sigma is None:
        return None
    return sigma.double().reshape(-1) * measured_count(y, mask).sqrt()


def _box(lower: float | None, upper: float | None, nonneg: bool) -> Box:
    if nonneg:
        lower = 0.0 if lower is None else max(lower, 0.0)
    return Box(lower, upper)


#: the most iterations a solver may be asked for: a tampered baselines.json or a typo
#: (``iters=10**12``) ends in one line instead of running for days
MAX_ITERS = 100_000


def check_iters(who: str, iters: int, name: str = "iters", low: int = 0, high: int = MAX_ITERS) -> None:
    """Refuse an iteration count outside [low, high] (default `MAX_ITERS`) with one line naming `who`."""
    if not low <= iters <= high:
        raise ValueError(f"{who}: {name} must lie in [{low}, {high}], got {iters}")


class Method:
    """Base: ``method(y, physics) -> x_hat`` shaped ``[B, C, H, W]``."""

    name = "method"
    #: a classical baseline, not learned from data (`evaluation.verdicts.is_learned`)
    learned = False
    #: the continuous parameter `tune` refines on a log scale (None: no such parameter)
    tune_param: str | None = None
    #: the iteration-count parameter `tune` can choose from one run's history (None: none)
    iters_param: str | None = None
    #: ``sample(y, physics, n)`` draws x | y: mean, per-pixel std and samples (the posterior samplers)
    posterior = False
    #: the method a run uses instead where `cannot_run` says this one cannot (None: none)
    fallback: str | None = None

    @classmethod
    def cannot_run(cls, operator: LinearOperator) -> str | None:
        """None when the method reconstructs with K = `operator`; else why not (what it needs)."""
        return None

    def __init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.tuning: dict[str, Any] | None = None

    def params(self) -> dict[str, Any]:
        """The method's settings (its constructor arguments), JSON-able."""
        sig = inspect.signature(type(self))
        return {k: getattr(self, k) for k in sig.parameters}

    def record(self) -> dict[str, Any]:
        """What ran: name, settings, and the tuning summary when tuned."""
        out: dict[str, Any] = {"method": self.name, "params": self.params()}
        if self.tuning is not None:
            out["tuning"] = {k: v for k, v in self.tuning.items() if k != "table"}
        return out

    def __call__(self, y: torch.Tensor, physics: Physics | LinearOperator) -> torch.Tensor:
        return self.run(y, physics)

    def run(self, y: torch.Tensor, physics: Physics | LinearOperator, x0: torch.Tensor | None = None,
            callback: Callable[[int, torch.Tensor], Any] | None = None) -> torch.Tensor:
        """Reconstruct from y; `x0` warm-starts iterative methods; `callback(k, x)` per step."""
        physics = as_physics(physics)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{self.name}: y must be a torch.Tensor, got {type(y).__name__}")
        op = physics.operator
        y = op._check(y, op.out_shape, "measurement", op.complex_output)
        return self._run(y, physics, x0, callback)

    def _run(self, y: torch.Tensor, physics: Physics, x0: torch.Tensor | None,
             callback: Callable[[int, torch.Tensor], Any] | None) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _solve(self, solver: Any, callback: Callable[[int, torch.Tensor], Any] | None) -> torch.Tensor:
        x: torch.Tensor = solver.solve(callback)
        self.history = solver.history
        return x

    def default_grid(self, physics: Physics, y: torch.Tensor) -> dict[str, list[Any]]:
        """A starting grid for `tune` (empty: nothing to tune)."""
        return {}

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


def _lam_grid(physics: Physics, n: int = 6, lo: float = -5.0, hi: float = 0.0, power: int = 2) -> list[float]:
    """λ candidates ‖K‖^power·10^k, k log-spaced in [lo, hi].

    A quadratic penalty competes with KᵀK (scale ‖K‖²); a 1-homogeneous one (TV, ℓ1) with
    the data gradient Kᵀ(Kx − y) (scale ‖K‖·‖Kx − y‖), hence ``power`` 2 or 1.
    """
    scale = physics.operator.norm() ** power
    return [float(scale * 10 ** (lo + (hi - lo) * i / (n - 1))) for i in range(n)]
