"""How a name becomes a method x̂ = method(y, physics): one parser for every scheme (after timm's
``create_model``), and the method names invmap itself relies on, written here alone.

A method name is, tried in this order (`parse`):

- **run**: built from the run's trained model (`RUN_METHODS`): ``model`` (the trained network
  f_Θ, `invmap.models.load_model`), ``safe`` (f_Θ anchored to the tuned TV it falls back to,
  `invmap.trust.SafeReconstructor`: argmin ½‖Kx − y‖² + λ TV(x) + (μ/2)‖x − f_Θ(y)‖², μ from the
  trust score), ``split-mean`` (f_Θ on each half of y, averaged: for a run trained by measurement
  splitting, `invmap.selfsup.halves.SplitAverage`) and ``adapted`` (a copy of f_Θ fine-tuned on each
  batch of one condition's measurements by a loss that reads y alone, `invmap.training.adapt`); all
  learned, never a classical baseline in a verdict;
- **pretrained**: ``pretrained:NAME``, the model of a zoo entry of the run's task (`invmap.zoo`);
- **registry**: a variational method (`invmap.variational.names()`: ``fbp``, ``tv``, …), the only
  ones invmap tunes and records in ``baselines.json``;
- **entry-point**: a method an installed package declares under ``invmap.methods``;
- **module**: ``module:attr``, a method of the user's own module (`invmap.plugins`).

Anything else is refused in one line listing what is available. The evaluation, the stress
study, ``invmap run`` and the commands ask `parse` (or `classical`, `is_outside`, `loaded_first`,
`applicable_methods`) what a name is, never its spelling. Building one from a run directory is
`invmap.evaluation.runs.build_methods`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

from .. import variational, zoo
from ..plugins import method_names
from ..selfsup.halves import SplitAverage
from ..training.adapt import Adapted, Settings
from ..trust import SafeReconstructor

#: the run's trained network
MODEL = "model"
#: the trained network anchored to the tuned baseline (`invmap.trust.SafeReconstructor`)
SAFE = "safe"
#: total-variation regularisation (`invmap.variational.pdhg`), the classical baseline named by invmap
TV = "tv"
#: the trained network fine-tuned on each test condition's measurements (`invmap.training.adapt`)
ADAPTED = "adapted"
#: the adaptation an evaluation or stress study runs, once per test condition on its first
#: `EVALUATION_IMAGES` measurements: few steps, so that the default run's added cost stays small; mc, not
#: ei: on `unet-ct` at 15 views (2 images, 20 steps at 3·10⁻⁴) mc gained what ei did (31.32 against 31.36 dB
#: from 30.08) at half the CPU time (one call per step, not two)
EVALUATION_ADAPTATION = Settings(steps=10, lr=3e-4, loss="mc")
EVALUATION_IMAGES = 2
#: plug-and-play with the shipped denoiser (`invmap.variational.pnp`)
PNP = "pnp"
#: the baseline the safe mode falls back to (and, before ``evaluation.trust_reference``, the trust reference)
BASELINE = TV
#: the trust reference when ``evaluation.trust_reference`` is not set: the method whose x̂_r the
#: learned methods' trust score, PSNR bound, pixel intervals and safe's promise are measured
#: against — the tuned TV, the one reference measured through all of them (BENCHMARKS.md, "Trust at
#: inference"; PnP is not yet measured that way: `benchmarks/trust_reference.py --references tv pnp`)
TRUST_REFERENCE = TV

Scheme = Literal["run", "pretrained", "registry", "entry-point", "module"]


@dataclass(frozen=True)
class RunMethod:
    """A method built from a run's trained model: `build(model, baselines)` with ``baselines``
    {name: the built baseline} of the names in `reuses`."""

    name: str
    help: str
    reuses: tuple[str, ...]
    build: Callable[[Any, Mapping[str, Any]], Any]


def _safe(model: Any, baselines: Mapping[str, Any]) -> Any:
    # an evaluation that also runs the model and the baseline (the same objects' x̂) lends them to safe
    return SafeReconstructor(model, baselines[BASELINE], reuses={"model": MODEL, "baseline": BASELINE})


def _split_mean(model: Any, _baselines: Mapping[str, Any]) -> Any:
    return SplitAverage(model)


#: a network trained by measurement splitting, averaged over the two halves of y (`SplitAverage`)
SPLIT_MEAN = "split-mean"


def _adapted(model: Any, _baselines: Mapping[str, Any]) -> Any:
    return Adapted(model, EVALUATION_ADAPTATION, EVALUATION_IMAGES)


#: name → the run-bound method (`invmap.evaluation.runs.build_methods` builds them; where a run
#: has no model they are left out with a note, `applicable_methods`)
RUN_METHODS: dict[str, RunMethod] = {m.name: m for m in (
    RunMethod(MODEL, "the run's trained network", (), lambda model, _baselines: model),
    RunMethod(SAFE, "the trained network anchored to the tuned TV, by its trust score", (BASELINE,), _safe),
    RunMethod(SPLIT_MEAN, "the trained network on each half of y's views / lines / pixels, averaged "
              "(test-time averaging of a run trained with training.supervision split)", (), _split_mean),
    RunMethod(ADAPTED, "the trained network fine-tuned on each level's measurements (x never seen)", (), _adapted),
)}


@dataclass(frozen=True)
class MethodName:
    """A method name and the scheme it is read by (see the module docstring)."""

    name: str
    scheme: Scheme

    @property
    def tuned(self) -> bool:
        """A classical method whose parameters invmap tunes and records in ``baselines.json``."""
        return self.scheme == "registry"

    @property
    def outside(self) -> bool:
        """Not invmap's to tune: a zoo entry or a method from outside (`invmap.plugins`)."""
        return self.scheme in ("pretrained", "entry-point", "module")


def parse(name: str) -> MethodName:
    """What `name` names (the one place a method name is read), or a one-line ValueError listing
    what is available."""
    if name in RUN_METHODS:
        return MethodName(name, "run")
    if zoo.is_pretrained(name):
        return MethodName(name, "pretrained")
    if name in variational.names():
        return MethodName(name, "registry")
    if name in method_names():
        return MethodName(name, "entry-point")
    if ":" in name:
        return MethodName(name, "module")
    raise ValueError(f"unknown method '{name}'; available: {', '.join(RUN_METHODS)}, pretrained:NAME (`invmap zoo`), "
                     f"module:attr (your own), {', '.join(variational.names() + method_names())}")


def check_names(names: Sequence[str]) -> None:
    """A one-line ValueError for the first name `parse` refuses — before anything is tuned or written."""
    for n in names:
        parse(n)


def classical(names: Sequence[str]) -> list[str]:
    """The names among `names` whose parameters invmap tunes and records in ``baselines.json``."""
    return [n for n in names if parse(n).tuned]


def is_outside(name: str) -> bool:
    """A method invmap does not tune: a zoo entry (``pretrained:NAME``) or an outside method."""
    return parse(name).outside


def loaded_first(names: Sequence[str]) -> list[str]:
    """What is built before any baseline is tuned, so that a run whose config does not describe
    its model (or an outside method that cannot load) fails first: the run's model, when a
    run-bound method is asked, and the methods from outside."""
    parsed = [parse(n) for n in names]
    return ([MODEL] if any(p.scheme == "run" for p in parsed) else []) + [p.name for p in parsed if p.outside]


def applicable_methods(names: Sequence[str], operator: Any, have_model: bool = True) -> tuple[list[str], list[str]]:
    """(names usable for the operator K, notes): a variational method that cannot run with K
    (its ``cannot_run(K)``, e.g. ``fbp`` where K has no filtered back-projection) becomes its
    ``fallback`` (``adjoint``: Kᵀy); the run's methods are dropped when there is no trained model."""
    out, notes = [], []
    for n in names:
        cls = variational.METHODS.get(n) if parse(n).tuned else None
        why = cls.cannot_run(operator) if cls is not None else None
        if why and cls.fallback:
            notes.append(f"{n} {why}; using {cls.fallback} for '{operator.name or type(operator).__name__}'")
            n = cls.fallback
        if n in RUN_METHODS and not have_model:
            notes.append("no trained model in this run; evaluating the classical methods only" if n == MODEL
                         else f"no trained model in this run; '{n}' (which wraps it) left out")
            continue
        if n not in out:
            out.append(n)
    return out, notes


def trust_reference(config: Any) -> str:
    """The name of the trust reference of a run's config (``evaluation.trust_reference``, default
    `TRUST_REFERENCE`)."""
    return getattr(config.evaluation, "trust_reference", None) or TRUST_REFERENCE


def check_trust_reference(name: str, operator: Any) -> None:
    """A one-line ValueError when `name` cannot be the trust reference of a task with operator K: a
    name `parse` refuses, the run's own model or what wraps it (it would check itself), a method from
    outside (invmap neither tunes nor vouches for it), or a variational method that cannot run with K
    (its ``cannot_run(K)``: e.g. ``fbp`` without a CT geometry) — before anything is written."""
    what = f"evaluation.trust_reference '{name[:60]}'"
    try:
        p = parse(name)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None
    usable = f"a variational method ({', '.join(variational.names())}) or pretrained:NAME"
    if p.scheme == "run":
        raise ValueError(f"{what} is the run's own model or wraps it: the trust reference checks the model, so it "
                         f"must not depend on it; use {usable}")
    if p.scheme in ("entry-point", "module"):
        raise ValueError(f"{what} is a method from outside: the trust reference is one invmap tunes or ships; "
                         f"use {usable}")
    cls = variational.METHODS.get(name) if p.tuned else None
    why = None if cls is None else cls.cannot_run(operator)
    if why:
        op = getattr(operator, "name", None) or type(operator).__name__
        raise ValueError(f"{what} cannot run on the task's operator '{op}': it {why}; choose another reference "
                         f"({usable})")


__all__ = ["MODEL", "SAFE", "SPLIT_MEAN", "ADAPTED", "TV", "PNP", "BASELINE", "TRUST_REFERENCE", "trust_reference", "check_trust_reference", "RunMethod", "RUN_METHODS", "MethodName", "parse", "check_names", "classical",
           "is_outside", "loaded_first", "applicable_methods"]
