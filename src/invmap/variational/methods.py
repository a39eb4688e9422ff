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
import math
from typing import Any, Callable, Literal

import torch

from ..operators.base import LinearOperator
from ..physics import Physics
from ..registry import Registry
from .cgls import CGLS
from .fbp import FILTERS, fbp
from .fista import FISTA
from .functionals import L1, TV, Box, Huber
from .gd import GradientDescent
from .pdhg import ChambollePockTV
from .tikhonov import Tikhonov

METHODS = Registry("variational method")

def names() -> list[str]:
    """Names of every registered variational method."""
    return METHODS.names()


def build(name: str, **params: Any) -> "Method":
    """Build method `name` with validated `params` (see ``METHODS.describe(name)``)."""
    m = METHODS.build(name, **params)
    m.name = name
    return m


def as_physics(physics: Physics | LinearOperator) -> Physics:
    """Accept a `Physics` or a bare operator K (noise: none)."""
    if isinstance(physics, Physics):
        return physics
    if isinstance(physics, LinearOperator):
        return Physics(physics)
    raise TypeError(f"expected an invmap Physics or LinearOperator, got {type(physics).__name__}")


def noise_norm(y: torch.Tensor, physics: Physics) -> torch.Tensor | None:
    """Per-sample noise norm δ = σ·√m from the noise model (y stands in for K x), or None.

    m counts the entries K measures (`LinearOperator.measured`): noise lives there only.
    """
    from ..noise import measured_count

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


def check_iters(who: str, iters: int, name: str = "iters", low: int = 0) -> None:
    """Refuse an iteration count outside [low, MAX_ITERS] with one line naming `who`."""
    if not low <= iters <= MAX_ITERS:
        raise ValueError(f"{who}: {name} must lie in [{low}, {MAX_ITERS}], got {iters}")


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

    def __init__(self) -> None:
        self.history: list[dict] = []
        self.tuning: dict | None = None

    def params(self) -> dict:
        """The method's settings (its constructor arguments), JSON-able."""
        sig = inspect.signature(type(self))
        return {k: getattr(self, k) for k in sig.parameters}

    def record(self) -> dict:
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

    def _run(self, y, physics, x0, callback) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _solve(self, solver, callback) -> torch.Tensor:
        x = solver.solve(callback)
        self.history = solver.history
        return x

    def default_grid(self, physics: Physics, y: torch.Tensor) -> dict[str, list]:
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


@METHODS.register("adjoint")
class Adjoint(Method):
    """Back-projection x̂ = Kᵀy (optionally scaled by 1/‖K‖²)."""

    def __init__(self, normalize: bool = False):
        super().__init__()
        self.normalize = normalize

    def _run(self, y, physics, x0, callback):
        op = physics.operator
        x = op.adjoint(y)
        return x / op.norm() ** 2 if self.normalize else x


@METHODS.register("fbp")
class FBP(Method):
    """Filtered back-projection (operators with a CT geometry: ``K.has_fbp``)."""

    def __init__(self, filter: str = "ramp", cutoff: float = 1.0):
        super().__init__()
        if filter not in FILTERS:
            raise ValueError(f"fbp: unknown filter '{filter}'; available: {', '.join(FILTERS)}")
        if not 0 < cutoff <= 1:
            raise ValueError(f"fbp: cutoff must be in (0, 1], got {cutoff}")
        self.filter, self.cutoff = filter, float(cutoff)

    def _run(self, y, physics, x0, callback):
        op = physics.operator
        if not op.has_fbp:
            raise ValueError(f"fbp: needs an operator with a filtered back-projection (a CT geometry: tomography, "
                             f"fanbeam), got '{op.name or type(op).__name__}'")
        return fbp(y, op, filter=self.filter, cutoff=self.cutoff)

    def default_grid(self, physics, y):
        return {"filter": ["ramp", "hann"], "cutoff": [0.4, 0.6, 0.8, 1.0]}


@METHODS.register("gd")
class GD(Method):
    """Landweber gradient descent on ½‖Kx − y‖², regularised by the iteration count."""

    iters_param = "iters"

    def __init__(self, iters: int = 100, nonneg: bool = False, lower: float | None = None,
                 upper: float | None = None):
        super().__init__()
        check_iters("gd", iters)
        self.iters, self.nonneg, self.lower, self.upper = iters, nonneg, lower, upper

    def _run(self, y, physics, x0, callback):
        s = GradientDescent(physics.operator, y, x0=x0, max_iter=self.iters,
                            box=_box(self.lower, self.upper, self.nonneg))
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"iters": [1, 2, 5, 10, 20, 50, 100, 200]}


@METHODS.register("cgls")
class CGLSMethod(Method):
    """CGLS on ½‖Kx − y‖² + (damp/2)‖x‖², stopped by iterations or the discrepancy principle."""

    iters_param = "iters"
    tune_param = None

    def __init__(self, iters: int = 30, damp: float = 0.0, tau: float | None = None,
                 delta: float | None = None, tol: float = 1e-10):
        super().__init__()
        check_iters("cgls", iters)
        if tau is not None and tau <= 0:
            raise ValueError(f"cgls: tau must be > 0, got {tau}")
        self.iters, self.damp, self.tau, self.delta, self.tol = iters, damp, tau, delta, tol

    def _run(self, y, physics, x0, callback):
        delta = None
        if self.tau is not None:
            delta = self.delta if self.delta is not None else noise_norm(y, physics)
            if delta is None:
                raise ValueError("cgls: the discrepancy principle (tau) needs a noise level: "
                                 "give delta or a gaussian noise model with a fixed sigma")
        s = CGLS(physics.operator, y, x0=x0, max_iter=self.iters, damp=self.damp, tol=self.tol,
                 delta=delta, tau=self.tau or 1.0)
        x = self._solve(s, callback)
        self.stopped_at = s.iter
        return x

    def default_grid(self, physics, y):
        return {"iters": [1, 2, 3, 5, 8, 12, 20, 30, 50]}


@METHODS.register("tikhonov")
class TikhonovMethod(Method):
    """Tikhonov: argmin ½‖Kx − y‖² + (lam/2)‖Lx‖², L = I or ∇, by CG on the normal equations."""

    tune_param = "lam"

    def __init__(self, lam: float = 1e-2, reg: Literal["identity", "gradient"] = "identity",
                 iters: int = 100, tol: float = 1e-6):
        super().__init__()
        if not lam >= 0:  # also rejects NaN
            raise ValueError(f"tikhonov: lam must be >= 0, got {lam}")
        check_iters("tikhonov", iters)
        self.lam, self.reg, self.iters, self.tol = float(lam), reg, iters, tol

    def _run(self, y, physics, x0, callback):
        s = Tikhonov(physics.operator, y, lam=self.lam, reg=self.reg, x0=x0, max_iter=self.iters, tol=self.tol)
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"lam": _lam_grid(physics, 6, -5.0, 0.0, power=2)}


@METHODS.register("tv")
class TVMethod(Method):
    """Total variation: argmin ½‖Kx − y‖² + lam·TV(x) (+ box) by Chambolle–Pock."""

    tune_param = "lam"

    def __init__(self, lam: float = 1e-2, iters: int = 200, nonneg: bool = False,
                 lower: float | None = None, upper: float | None = None, tol: float = 0.0,
                 ratio: float = 1.0):
        super().__init__()
        if not lam >= 0:  # also rejects NaN
            raise ValueError(f"tv: lam must be >= 0, got {lam}")
        check_iters("tv", iters)
        if not 0 < ratio < math.inf:
            raise ValueError(f"tv: ratio must be a finite number > 0, got {ratio}")
        self.lam, self.iters, self.nonneg, self.lower, self.upper = float(lam), iters, nonneg, lower, upper
        self.tol, self.ratio = tol, ratio

    def _run(self, y, physics, x0, callback):
        s = ChambollePockTV(physics.operator, y, lam=self.lam, box=_box(self.lower, self.upper, self.nonneg),
                            x0=x0, max_iter=self.iters, tol=self.tol, ratio=self.ratio)
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"lam": _lam_grid(physics, 6, -4.0, 0.0, power=1)}


@METHODS.register("fista-l1")
class FistaL1(Method):
    """Sparsity: argmin ½‖Kx − y‖² + lam‖x‖₁ (+ box) by FISTA."""

    tune_param = "lam"

    def __init__(self, lam: float = 1e-2, iters: int = 100, nonneg: bool = False,
                 lower: float | None = None, upper: float | None = None):
        super().__init__()
        if not lam >= 0:  # also rejects NaN
            raise ValueError(f"fista-l1: lam must be >= 0, got {lam}")
        check_iters("fista-l1", iters)
        self.lam, self.iters, self.nonneg, self.lower, self.upper = float(lam), iters, nonneg, lower, upper

    def _run(self, y, physics, x0, callback):
        box = _box(self.lower, self.upper, self.nonneg)
        l1 = L1(self.lam)
        g = l1 if not box.active else _BoxedL1(l1, box)
        s = FISTA(physics.operator, y, g=g, x0=x0, max_iter=self.iters)
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"lam": _lam_grid(physics, 6, -4.0, 0.0, power=1)}


class _BoxedL1(L1):
    """λ‖x‖₁ + ι_Box: the prox is the clamp of the soft-threshold (separable, 1-D convex)."""

    def __init__(self, l1: L1, box: Box):
        super().__init__(l1.weight)
        self.box = box

    def __call__(self, x):
        return super().__call__(x) + self.box(x)

    def prox(self, v, t=1.0):
        return self.box.prox(super().prox(v, t))


@METHODS.register("fista-tv")
class FistaTV(Method):
    """argmin ½‖Kx − y‖² + lam·TV(x) by FISTA: inner TV prox (huber = 0) or Huber-TV (huber > 0)."""

    tune_param = "lam"

    def __init__(self, lam: float = 1e-2, iters: int = 100, huber: float = 0.0, inner_iters: int = 10,
                 nonneg: bool = False, lower: float | None = None, upper: float | None = None):
        super().__init__()
        if not lam >= 0:  # also rejects NaN
            raise ValueError(f"fista-tv: lam must be >= 0, got {lam}")
        check_iters("fista-tv", iters)
        if huber < 0:
            raise ValueError(f"fista-tv: huber must be >= 0, got {huber}")
        check_iters("fista-tv", inner_iters, "inner_iters", low=1)
        self.lam, self.iters, self.huber, self.inner_iters = float(lam), iters, float(huber), inner_iters
        self.nonneg, self.lower, self.upper = nonneg, lower, upper

    def _run(self, y, physics, x0, callback):
        box = _box(self.lower, self.upper, self.nonneg)
        if self.huber > 0:
            s = FISTA(physics.operator, y, g=box, h_grad=Huber(self.lam, self.huber), x0=x0, max_iter=self.iters)
        else:
            g = TV(self.lam, iters=self.inner_iters, box=box)
            s = FISTA(physics.operator, y, g=g, x0=x0, max_iter=self.iters)
        return self._solve(s, callback)

    def default_grid(self, physics, y):
        return {"lam": _lam_grid(physics, 6, -4.0, 0.0, power=1)}
