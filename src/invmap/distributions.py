"""Distributions of physics parameters: train over a family of measurement processes

    y_i = K_{ω_i} x_i + e_i,   ω_i ~ p(ω),   e_i ~ noise model with parameters ω_i,

instead of one fixed K. Any parameter of the operator or of the noise (and
``data.simulation``, the grid y is simulated on) may be written as a mapping with one
distribution key instead of a value:

    {choice: [v1, v2, ...]}           each listed value with equal probability, or with
                                      ``weights: [w1, w2, ...]`` in proportion to w_k ≥ 0
    {uniform: [lo, hi]}               uniform on [lo, hi] (whole numbers if lo and hi are)
    {log_uniform: [lo, hi]}           log ω uniform on [log lo, log hi], 0 < lo ≤ hi
    {normal: σ} or {normal: [μ, σ]}   N(μ, σ²) truncated to μ ± 2σ; μ = the parameter's
                                      default value when only σ is given

and two optional keys: ``nominal: v`` — the value evaluation, tuning and the stress
study's reference use — and ``grid: n`` (operator parameters only).

**Nominal rule** when ``nominal`` is not stated: the median of a numeric ``choice`` (the
lower of the two middle values for an even count; the first listed value for words such
as ``crime``/``fine``), the midpoint of ``uniform`` (rounded for whole numbers), the
geometric mean of ``log_uniform``, μ of ``normal``.

**Seeding.** Sample i draws its ω_i from its own generator seeded by (seed, stream,
split, i), like its noise (`invmap.data.pairs`), so pair i is the same in every run, in
any order, in any worker. ω_i is drawn once per sample (not per epoch): the clean
K_{ω_i} x_i is simulated once, and only the noise is drawn afresh each epoch.

**Efficiency.** A continuous (or whole-number ``uniform``) *operator* parameter is snapped
to the nearest of ``grid`` equally spaced points of its support (default `DEFAULT_GRID`;
rounded for whole numbers; ``log_uniform``: equally spaced in log), so a training set needs
a small, finite set of operators, each built (and its sparse matrices cached) once.
Noise parameters are drawn exactly (a noise model costs nothing to build).

**What the reconstruction sees.** A drawn parameter the operator declares among its
``geometry_params`` changes K for simulation AND reconstruction: z = P(y, K_{ω_i}) (FBP
with the sample's own views); a model-based kind, with K inside its map, is trained on
minibatches whose samples drew the same K (`invmap.training.pairs.Pairs.minibatches`), each
called with that K. One it declares only among its ``calibration_params``
(e.g. ``detector_offset``, ``angle_offset``) is an error the scanner does not know about:
y is simulated with it, every method reconstructs with the nominal value — as in the
stress study's calibration shifts.

>>> d = parse({"choice": [30, 45, 60, 90, 120]})
>>> d.nominal, d.support()
(60, (30, 120))
>>> parse({"uniform": [120, 180], "nominal": 180}).nominal
180
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from . import noise as noise_mod
from .operators import OPERATORS
from .physics import physics_spec

#: points of the grid a continuous operator parameter is snapped to (``grid: n`` changes it)
DEFAULT_GRID = 5
#: a truncated normal keeps μ ± TRUNCATE·σ
TRUNCATE = 2.0
#: the keys of a distribution mapping besides its kind
OPTIONS = ("nominal", "grid", "weights")
#: the longest ``choice`` list (a config lists a few values; a generated one of 10⁵ is a mistake)
MAX_CHOICES = 1000
#: the most distinct operators K_ω drawn operator parameters may give (each is built and its
#: matrices cached; the product of the parameters' distinct values / grid points)
MAX_OPERATORS = 256


def is_distribution(value: Any) -> bool:
    """Whether a config value is a distribution (a mapping) rather than a plain value."""
    return isinstance(value, Mapping)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _pair(kind: str, v: Any) -> tuple[float, float]:
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(_number(t) for t in v)):
        raise ValueError(f"{kind} needs [low, high] (two finite numbers), got {v!r}")
    lo, hi = v
    if lo > hi:
        raise ValueError(f"{kind} [{lo}, {hi}]: low is above high")
    return lo, hi


class Distribution:
    """p(ω) of one parameter: `draw` a value from a generator, its `nominal`, its `support`."""

    kind = ""

    def __init__(self, nominal: Any = None, grid: int | None = None):
        self.grid = grid
        self.nominal = self.centre() if nominal is None else nominal

    def centre(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def support(self) -> tuple[Any, Any]:
        """(lowest, highest) value a draw can take."""
        raise NotImplementedError  # pragma: no cover - abstract

    def extremes(self) -> list[Any]:
        """The values a config check builds the operator / noise with: the bounds and the nominal."""
        lo, hi = self.support()
        return [lo, hi, self.nominal]

    def sample(self, g: torch.Generator) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def draw(self, g: torch.Generator, snap: bool = False) -> Any:
        """One value; with `snap`, a continuous one is moved to the nearest grid point."""
        v = self.sample(g)
        return self.snap(v) if snap else v

    def grid_points(self) -> list[float]:
        lo, hi = self.support()
        n = self.grid or DEFAULT_GRID
        return [lo] if n == 1 or lo == hi else [lo + (hi - lo) * k / (n - 1) for k in range(n)]

    def snap(self, v: Any) -> Any:
        return v

    def points(self) -> int:
        """How many distinct values a snapped draw can take (its grid, rounded for whole numbers)."""
        return len({self.snap(v) for v in self.grid_points()})

    def spec(self) -> dict:
        raise NotImplementedError  # pragma: no cover - abstract

    def _options(self) -> dict:
        return {"nominal": self.nominal, **({"grid": self.grid} if self.grid else {})}


def _u(g: torch.Generator) -> float:
    return float(torch.rand((), generator=g, dtype=torch.float64))


class Choice(Distribution):
    """Each listed value with probability 1/n, or w_k / Σw with ``weights``."""

    kind = "choice"

    def __init__(self, values: Any, nominal: Any = None, grid: int | None = None, weights: Any = None):
        if not isinstance(values, (list, tuple)) or len(values) == 0:
            raise ValueError(f"choice needs a non-empty list of values, got {values!r}")
        if len(values) > MAX_CHOICES:
            raise ValueError(f"choice lists {len(values)} values; at most {MAX_CHOICES} are allowed")
        self.values = list(values)
        self.weights = None
        if weights is not None:
            if not (isinstance(weights, (list, tuple)) and len(weights) == len(self.values)
                    and all(_number(w) and w >= 0 for w in weights) and 0 < sum(weights) < math.inf):
                raise ValueError(f"choice weights must be {len(self.values)} finite numbers >= 0 (one per "
                                 f"value, not all 0, with a finite sum), got {weights!r}")
            self.weights = [float(w) for w in weights]
            total = math.fsum(self.weights)  # probabilities w_k / Σw, exact even for subnormal weights
            self._cum = [math.fsum(self.weights[:k + 1]) / total for k in range(len(self.weights))]
        super().__init__(nominal, grid)

    def centre(self) -> Any:
        if all(_number(v) for v in self.values):
            s = sorted(self.values)
            return s[(len(s) - 1) // 2]
        return self.values[0]

    def support(self) -> tuple[Any, Any]:
        if all(_number(v) for v in self.values):
            return min(self.values), max(self.values)
        return self.values[0], self.values[-1]

    def extremes(self) -> list[Any]:
        return self.values + [self.nominal]

    def points(self) -> int:
        return len({json.dumps(v, sort_keys=True, default=str) for v, w in zip(self.values, self.weights or
                                                                            [1] * len(self.values)) if w > 0})

    def sample(self, g):
        if self.weights is None:
            return self.values[min(int(_u(g) * len(self.values)), len(self.values) - 1)]
        u = _u(g)
        for v, w, c in zip(self.values, self.weights, self._cum):
            if w > 0 and u < c:  # a value of weight 0 is never drawn
                return v
        return next(v for v, w in zip(reversed(self.values), reversed(self.weights)) if w > 0)

    def spec(self) -> dict:
        return {"choice": self.values, **({"weights": self.weights} if self.weights else {}), **self._options()}


class Uniform(Distribution):
    """Uniform on [lo, hi]; whole numbers when lo and hi are whole numbers."""

    kind = "uniform"

    def __init__(self, bounds: Any, nominal: Any = None, grid: int | None = None):
        self.lo, self.hi = _pair(self.kind, bounds)
        self.integer = _whole(self.lo) and _whole(self.hi)
        super().__init__(nominal, grid)

    def _cast(self, v: float) -> Any:
        return int(round(v)) if self.integer else float(v)

    def centre(self) -> Any:
        return self._cast((self.lo + self.hi) / 2)

    def support(self):
        return self.lo, self.hi

    def sample(self, g):
        if self.integer:
            return self.lo + min(int(_u(g) * (self.hi - self.lo + 1)), self.hi - self.lo)
        return self.lo + (self.hi - self.lo) * _u(g)

    def snap(self, v):
        return self._cast(min(self.grid_points(), key=lambda p: abs(p - v)))

    def spec(self) -> dict:
        return {self.kind: [self.lo, self.hi], **self._options()}


class LogUniform(Uniform):
    """log ω uniform on [log lo, log hi] (noise levels, photon counts), 0 < lo."""

    kind = "log_uniform"

    def __init__(self, bounds: Any, nominal: Any = None, grid: int | None = None):
        lo, _ = _pair(self.kind, bounds)
        if not lo > 0:
            raise ValueError(f"log_uniform needs 0 < low, got {bounds!r}")
        super().__init__(bounds, nominal, grid)
        self.integer = False

    def centre(self):
        lo, hi = _pair(self.kind, [self.lo, self.hi])
        return math.sqrt(lo * hi)

    def sample(self, g):
        return math.exp(math.log(self.lo) + (math.log(self.hi) - math.log(self.lo)) * _u(g))

    def grid_points(self):
        n = self.grid or DEFAULT_GRID
        if n == 1 or self.lo == self.hi:
            return [self.lo]
        r = math.log(self.hi / self.lo)
        return [self.lo * math.exp(r * k / (n - 1)) for k in range(n)]


class Normal(Distribution):
    """N(μ, σ²) truncated to μ ± 2σ (a draw never leaves that interval)."""

    kind = "normal"

    def __init__(self, params: Any, default: Any = None, nominal: Any = None, grid: int | None = None):
        if _number(params):
            mu, sigma = default, params
            if not _number(mu):
                raise ValueError(f"normal: σ alone needs a numeric default for μ; give [μ, σ], got {params!r}")
        elif isinstance(params, (list, tuple)) and len(params) == 2 and all(_number(t) for t in params):
            mu, sigma = params
        else:
            raise ValueError(f"normal needs σ or [μ, σ] (finite numbers), got {params!r}")
        if not sigma >= 0:
            raise ValueError(f"normal needs σ >= 0, got {sigma}")
        self.mu, self.sigma = float(mu), float(sigma)
        super().__init__(nominal, grid)

    def centre(self):
        return self.mu

    def support(self):
        return self.mu - TRUNCATE * self.sigma, self.mu + TRUNCATE * self.sigma

    def sample(self, g):
        while True:  # rejection: P(|N(0,1)| > 2) ≈ 4.6%
            z = float(torch.randn((), generator=g, dtype=torch.float64))
            if abs(z) <= TRUNCATE:
                return self.mu + self.sigma * z

    def snap(self, v):
        return float(min(self.grid_points(), key=lambda p: abs(p - v)))

    def spec(self) -> dict:
        return {"normal": [self.mu, self.sigma], **self._options()}


KINDS: dict[str, type[Distribution]] = {c.kind: c for c in (Choice, Uniform, LogUniform, Normal)}


def parse(value: Mapping[str, Any], default: Any = None) -> Distribution:
    """The `Distribution` a config mapping describes (see the module docstring); a one-line
    ValueError for anything else. `default` is the parameter's default (μ of ``{normal: σ}``)."""
    kinds = [k for k in value if k in KINDS]
    other = [k for k in value if k not in KINDS and k not in OPTIONS]
    if len(kinds) != 1 or other:
        bad = other[0] if other else (", ".join(kinds) or "none")
        raise ValueError(f"a distribution is one of {{{', '.join(KINDS)}: ...}} plus optional "
                         f"{', '.join(OPTIONS)}; got {bad!r}")
    kind = kinds[0]
    grid = value.get("grid")
    if grid is not None and (not _whole(grid) or grid < 1 or grid > 1000):
        raise ValueError(f"grid must be a whole number of points in [1, 1000], got {grid!r}")
    if "weights" in value and kind != "choice":
        raise ValueError(f"weights apply to choice only, not to {kind}")
    extra = {"default": default} if kind == "normal" else {"weights": value["weights"]} if "weights" in value else {}
    d = KINDS[kind](value[kind], nominal=value.get("nominal"), grid=grid, **extra)
    if "nominal" in value and _number(d.nominal) and all(_number(b) for b in d.support()):
        lo, hi = d.support()
        if not lo <= d.nominal <= hi:
            raise ValueError(f"nominal {d.nominal} lies outside the distribution's support [{lo}, {hi}]")
    if kind == "choice" and "nominal" in value and d.nominal not in d.values:
        raise ValueError(f"nominal {d.nominal!r} is not one of the choices {d.values}")
    return d


# ---------------------------------------------------------------------------------------
# a physics spec with distributions: ω ~ p(ω), drawn per sample
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Draw:
    """ω_i of one sample: the operator y is simulated with, the one the methods reconstruct
    with (the drawn calibration errors left out), the noise, and the simulation grid."""

    sim_operator: str   # JSON operator spec
    operator: str       # JSON operator spec
    noise: str          # JSON noise spec
    simulation: str


def _key(spec: Mapping[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True)


class PhysicsDistribution:
    """p(ω) over physics specs: an operator and a noise section whose parameters may be
    distributions, and the simulation grid (a mode or a distribution over modes).

    `nominal_spec()` is the physics spec of the nominal values; `draw(g)` gives one `Draw`.
    Which drawn operator parameters reach the reconstruction is asked of the operator class
    (``geometry_params`` vs ``calibration_params``; see the module docstring).
    """

    def __init__(self, operator: Mapping[str, Any], noise: Mapping[str, Any], simulation: Any = "crime"):
        self.operator_name, self.noise_name = operator["name"], noise["name"]
        cls = OPERATORS.get(self.operator_name)
        defaults = {p.name: p.default for p in OPERATORS.params(self.operator_name)}
        ndefaults = {p.name: p.default for p in noise_mod.NOISES.params(self.noise_name)}
        self.op_fixed, self.op_drawn = _split(operator.get("params") or {}, defaults)
        self.noise_fixed, self.noise_drawn = _split(noise.get("params") or {}, ndefaults)
        self.simulation = parse(simulation) if is_distribution(simulation) else None
        self.nominal_simulation = self.simulation.nominal if self.simulation else simulation
        count = math.prod(d.points() for d in self.op_drawn.values())
        if count > MAX_OPERATORS:
            raise ValueError(f"the drawn operator parameters ({', '.join(sorted(self.op_drawn))}) give {count} "
                             f"distinct operators, above the {MAX_OPERATORS} that are built and cached; use fewer "
                             "choices or a coarser grid")
        geometry = set(getattr(cls, "geometry_params", ()))
        self.sim_only = tuple(k for k in self.op_drawn if k in getattr(cls, "calibration_params", ()) and k not in geometry)

    @property
    def random(self) -> bool:
        """Whether anything is drawn (False: one fixed physics, as before distributions)."""
        return bool(self.op_drawn or self.noise_drawn or self.simulation)

    def nominal_params(self) -> tuple[dict, dict]:
        return ({**self.op_fixed, **{k: d.nominal for k, d in self.op_drawn.items()}},
                {**self.noise_fixed, **{k: d.nominal for k, d in self.noise_drawn.items()}})

    def nominal_spec(self) -> dict:
        """The physics spec of the nominal values (evaluation, tuning, stress reference, model.json)."""
        op, nz = self.nominal_params()
        return physics_spec({"name": self.operator_name, "params": op}, {"name": self.noise_name, "params": nz})

    def draw(self, g: torch.Generator) -> Draw:
        """ω ~ p(ω) from `g`: operator parameters (snapped to their grids) in name order, then
        noise parameters, then the simulation grid."""
        op_nom, nz = self.nominal_params()
        op = dict(op_nom)
        for k in sorted(self.op_drawn):
            op[k] = self.op_drawn[k].draw(g, snap=True)
        for k in sorted(self.noise_drawn):
            nz[k] = self.noise_drawn[k].draw(g)
        sim = self.simulation.draw(g) if self.simulation else self.nominal_simulation
        recon = {**op, **{k: op_nom[k] for k in self.sim_only}}
        return Draw(_key({"name": self.operator_name, "params": op}), _key({"name": self.operator_name, "params": recon}),
                    _key({"name": self.noise_name, "params": nz}), str(sim))

    def spec(self) -> dict:
        """The distributions as written back to a config (``{param: {kind: ..., nominal: ...}}``)."""
        return {"operator": {k: d.spec() for k, d in self.op_drawn.items()},
                "noise": {k: d.spec() for k, d in self.noise_drawn.items()},
                **({"simulation": self.simulation.spec()} if self.simulation else {})}


def _split(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[dict, dict[str, Distribution]]:
    fixed = {k: v for k, v in params.items() if not is_distribution(v)}
    drawn = {k: parse(v, defaults.get(k)) for k, v in params.items() if is_distribution(v)}
    return fixed, drawn


def substituted(params: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> list[dict]:
    """Parameter sets a config check validates: every distribution at its nominal value, then
    each distribution at each of its extremes (the others nominal). Raises the distribution's
    own one-line error for a malformed one."""
    defaults = defaults or {}
    drawn = {k: parse(v, defaults.get(k)) for k, v in params.items() if is_distribution(v)}
    nominal = {**params, **{k: d.nominal for k, d in drawn.items()}}
    out = [nominal]
    for k, d in drawn.items():
        out += [{**nominal, k: v} for v in d.extremes()]
    return out


__all__ = ["Distribution", "Choice", "Uniform", "LogUniform", "Normal", "KINDS", "parse", "is_distribution",
           "PhysicsDistribution", "Draw", "substituted", "DEFAULT_GRID", "TRUNCATE", "MAX_CHOICES",
           "MAX_OPERATORS"]
