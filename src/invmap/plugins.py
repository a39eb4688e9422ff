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

Operators: a package declaring modules under the entry-point group ``invmap.operators`` has
them imported when invmap's operator registry loads, so their ``@OPERATORS.register("name")``
classes build by name in configs like the built-in ones (`load_operator_plugins`).
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any, Callable

#: entry-point groups invmap reads
METHODS_GROUP = "invmap.methods"
OPERATORS_GROUP = "invmap.operators"


def _entry_points(group: str) -> dict[str, Any]:
    """{name: entry point} of `group` among the installed distributions."""
    return {ep.name: ep for ep in entry_points(group=group)}


def method_names() -> list[str]:
    """The methods installed packages declare (``invmap.methods``)."""
    return sorted(_entry_points(METHODS_GROUP))


def is_external(name: str) -> bool:
    """Whether `name` names an outside method: ``module:attr`` (not ``pretrained:NAME``) or a declared one."""
    from .zoo import is_pretrained

    return (":" in name and not is_pretrained(name)) or name in _entry_points(METHODS_GROUP)


def _as_method(obj: Any, name: str) -> Callable:
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as e:  # noqa: BLE001 - a user's constructor: its failure is one line
            raise ValueError(f"method '{name}': {obj.__name__}() failed ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if not callable(obj):
        raise ValueError(f"method '{name}' is a {type(obj).__name__}, not a reconstructor called as method(y, physics)")
    return obj


def load_method(name: str) -> Callable:
    """The outside method `name` (see the module docstring), or a one-line ValueError."""
    eps = _entry_points(METHODS_GROUP)
    if name in eps:
        try:
            obj = eps[name].load()
        except Exception as e:  # noqa: BLE001 - a broken plugin is the user's to fix, in one line
            raise ValueError(f"method '{name}' (entry point {eps[name].value}): cannot load it "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
        return _as_method(obj, name)
    module, _, attr = name.partition(":")
    if not module or not attr or not all(p.isidentifier() for p in module.split(".") + attr.split(".")):
        raise ValueError(f"method '{name}': an outside method is module:attr (e.g. mymethods:Landweber)")
    try:
        obj: Any = importlib.import_module(module)
    except Exception as e:  # noqa: BLE001 - ImportError, or an error inside the user's module
        raise ValueError(f"method '{name}': cannot import module '{module}' ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120] if str(e) else ''}); is it on the Python path?") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"method '{name}': module '{module}' has no '{attr}'")
        obj = getattr(obj, part)
    return _as_method(obj, name)


def load_operator_plugins() -> list[str]:
    """Import the modules installed packages declare under ``invmap.operators`` (their operators
    register themselves); a plugin that fails to import is logged and skipped. Returns the names
    of the ones loaded."""
    loaded = []
    for name, ep in sorted(_entry_points(OPERATORS_GROUP).items()):
        try:
            ep.load()
            loaded.append(name)
        except Exception as e:  # noqa: BLE001 - one broken plugin must not break invmap
            logging.getLogger(__name__).warning(f"invmap: operator plugin '{name}' ({ep.value}) not loaded: "
                                                f"{type(e).__name__}: {e}")
    return loaded


__all__ = ["load_method", "is_external", "method_names", "load_operator_plugins", "METHODS_GROUP", "OPERATORS_GROUP"]
