"""Methods and operators from outside invmap: a user's code runs like a built-in one.

A **method** is anything called as ``x̂ = method(y, physics)`` (the one call every reconstructor
shares). Wherever invmap takes a method name — ``invmap evaluate --methods``, ``invmap stress
--methods``, ``evaluation.methods`` — it also takes

- ``module:attr``: `attr` of the importable Python module `module` (on ``sys.path``, e.g. the
  working directory or an installed package): a callable, or a class built with no arguments;
- a name a package declares under the entry-point group ``invmap.methods``
  (``[project.entry-points."invmap.methods"] landweber = "mypkg.methods:Landweber"``).

A method says whether it is learned (``learned = True``: a trained map, never counted as a
baseline, given a verdict and a trust score) or a classical baseline (the default); invmap does
not tune an outside method's parameters. Its scores then stand in metrics.csv, stress.csv,
compare and the report under the name it was given.

invmap watches what it did not write (`OutsideMethod`): importing the module, building the class
and every call run under a time budget (`invmap.timelimit.Budget`: per call, and in all for one
command); whatever a call returns is checked in one place (`invmap.method_output.check_output`: a
real image batch [B, 1, H, W] with finite values, integers converted to float32); a call that
raises, runs out of time or returns anything else is the method's failure (`MethodFailure`), named
as such. Callables of Python's standard library or builtins (``os:system``, ``builtins:exec``) are
refused: a method is the user's own code.

Operators from outside: a package declaring modules under the entry-point group ``invmap.operators``
has them imported when invmap's operator registry loads (`invmap.operators.registry.load_operator_plugins`).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
import sysconfig
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

import torch

from .method_output import MethodFailure, check_output
from .timelimit import Budget, BudgetExceeded

#: entry-point groups invmap reads
METHODS_GROUP = "invmap.methods"


def _entry_points(group: str) -> dict[str, Any]:
    """{name: entry point} of `group` among the installed distributions."""
    return {ep.name: ep for ep in entry_points(group=group)}


def method_names() -> list[str]:
    """The methods installed packages declare (``invmap.methods``)."""
    return sorted(_entry_points(METHODS_GROUP))


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"


_STDLIB = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib")}


def standard_library(obj: Any) -> str | None:
    """The module of Python's standard library (builtins included) `obj` comes from, or None for
    code of its own: a module built into the interpreter, or one whose file lies in the standard
    library's directory (outside site-packages)."""
    while isinstance(obj, functools.partial):
        obj = obj.func
    own = isinstance(obj, type) or hasattr(obj, "__name__")  # a function or class, not an instance
    module = (getattr(obj, "__module__", None) if own else type(obj).__module__) or ""
    if module.split(".")[0] in sys.builtin_module_names:
        return module
    return module if _in_stdlib(getattr(sys.modules.get(module), "__file__", None)) else None


def _in_stdlib(file: str | None) -> bool:
    if not file:
        return False
    path = Path(file).resolve()
    if any(part in ("site-packages", "dist-packages") for part in path.parts):
        return False
    return any(root in path.parents for root in _STDLIB)


def _stdlib_module(module: str) -> bool:
    """Whether top-level `module` is of the standard library, asked before importing it (``antigravity``
    opens a browser on import)."""
    top = module.split(".")[0]
    if top in sys.builtin_module_names:
        return True
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    return spec is not None and (spec.origin == "frozen" or _in_stdlib(spec.origin))


def _as_method(obj: Any, name: str, budget: Budget) -> Callable:
    if not callable(obj):
        raise ValueError(f"method '{name}' is a {type(obj).__name__}, not a reconstructor called as method(y, physics)")
    where = standard_library(obj)
    if where is not None:
        raise ValueError(f"method '{name}' is {where}.{getattr(obj, '__name__', type(obj).__name__)} of Python's "
                         "standard library, not a reconstructor; a method from outside is your own module:attr")
    if isinstance(obj, type):
        cls = obj
        try:
            with budget.limit(name, f"{cls.__name__}()"):
                obj = cls()
        except BudgetExceeded as e:
            raise MethodFailure(str(e)) from None
        except Exception as e:  # noqa: BLE001 - a user's constructor: its failure is one line
            raise ValueError(f"method '{name}': {cls.__name__}() failed ({_first_line(e)})") from None
        if not callable(obj):
            raise ValueError(f"method '{name}': {cls.__name__}() is not callable as method(y, physics)")
    return OutsideMethod(name, obj, budget)


def load_method(name: str, budget: Budget | None = None) -> "OutsideMethod":
    """The outside method `name` (see the module docstring) watched by `OutsideMethod` under
    `budget` (default `Budget()`; importing and building it count too), or a one-line ValueError."""
    budget = Budget() if budget is None else budget
    eps = _entry_points(METHODS_GROUP)
    if name in eps:
        try:
            with budget.limit(name, "loading its entry point"):
                obj = eps[name].load()
        except BudgetExceeded as e:
            raise MethodFailure(str(e)) from None
        except Exception as e:  # noqa: BLE001 - a broken plugin is the user's to fix, in one line
            raise ValueError(f"method '{name}' (entry point {eps[name].value}): cannot load it "
                             f"({_first_line(e)})") from None
        return _as_method(obj, name, budget)
    module, _, attr = name.partition(":")
    if not module or not attr or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
        raise ValueError(f"method '{name}': an outside method is module:attr (e.g. mymethods:Landweber)")
    if _stdlib_module(module):
        raise ValueError(f"method '{name}': module '{module}' is Python's standard library, not a reconstructor; "
                         "a method from outside is your own module:attr")
    try:
        with budget.limit(name, f"the import of module '{module}'"):
            obj: Any = importlib.import_module(module)
    except BudgetExceeded as e:
        raise MethodFailure(str(e)) from None
    except Exception as e:  # noqa: BLE001 - ImportError, or an error inside the user's module
        raise ValueError(f"method '{name}': cannot import module '{module}' ({_first_line(e)}); "
                         "is it on the Python path?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"method '{name}': module '{module}' has no '{attr}'")
        obj = getattr(obj, part)
    return _as_method(obj, name, budget)


class OutsideMethod:
    """A method from outside as invmap runs it: each call x̂ = method(y, physics) within `budget`,
    its output checked (`check_output`); what it declares (``learned``, …) is read through."""

    def __init__(self, name: str, method: Callable, budget: Budget):
        self.name, self.method, self.budget = name, method, budget

    def __getattr__(self, key: str) -> Any:  # the capabilities it declares (`invmap.capabilities`)
        if key in ("name", "method", "budget") or key.startswith("__"):
            raise AttributeError(key)
        return getattr(self.method, key)

    def _run(self, doing: str, call: Callable[[], Any]) -> Any:
        try:
            with self.budget.limit(self.name, doing):
                return call()
        except BudgetExceeded as e:
            raise MethodFailure(str(e)) from None
        except MethodFailure:
            raise
        except Exception as e:  # noqa: BLE001 - whatever the user's code raises is its failure, in one line
            raise MethodFailure(f"method '{self.name}' raised {_first_line(e)}") from None

    def __call__(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        x_hat = self._run(f"a call on {y.shape[0]} measurements", lambda: self.method(y, physics))
        return check_output(x_hat, y, physics, self.name)

    def sample(self, y: torch.Tensor, physics: Any, n: int | None = None) -> Any:
        """A declared posterior sampler's draws, within the budget, its mean and std checked."""
        drawn = self._run(f"drawing samples for {y.shape[0]} measurements",
                          lambda: self.method.sample(y, physics, n))
        for part in ("mean", "std"):
            if not hasattr(drawn, part):
                raise MethodFailure(f"method '{self.name}': sample() returned no '{part}'")
        return drawn._replace(mean=check_output(drawn.mean, y, physics, self.name),
                              std=check_output(drawn.std, y, physics, self.name)) \
            if hasattr(drawn, "_replace") else drawn

    def __repr__(self) -> str:
        return f"OutsideMethod({self.name!r})"


__all__ = ["load_method", "OutsideMethod", "standard_library", "method_names", "METHODS_GROUP"]
