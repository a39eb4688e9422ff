"""Named registries with typed parameters.

A `Registry` maps a name to a builder (a class or function). `build(name, **params)`
checks the parameter names against the builder's signature and validates their types
with pydantic, so a bad keyword fails with one clear line naming the parameter and the
allowed ones — never a raw ``TypeError``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pydantic


#: the integers a parameter may hold: what torch and numpy store (a seed, a count) in 64 bits
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 63 - 1


def quoted(v: Any, limit: int = 60) -> str:
    """``repr(v)`` cut to `limit` characters: a value quoted in a message never floods it."""
    text = repr(v) if not isinstance(v, (list, dict, tuple, set)) or len(v) < limit else f"<{type(v).__name__} of {len(v)}>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


@dataclass(frozen=True)
class Param:
    """One builder parameter: its name, annotation (as text) and default."""

    name: str
    annotation: str
    default: Any
    required: bool


def _annotation_text(a: Any) -> str:
    import typing

    if a is inspect.Parameter.empty:
        return "any"
    if isinstance(a, str):
        return a
    if typing.get_origin(a) is typing.Annotated:  # e.g. Annotated[int, annotated_types.Ge(1)] → "int >= 1"
        base, *meta = typing.get_args(a)
        meta = [c for m in meta for c in (getattr(m, "metadata", None) or [m])]  # a pydantic Field holds its bounds
        bounds = [f"{sym} {getattr(m, k)}" for m in meta for k, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                  if getattr(m, k, None) is not None]
        return _annotation_text(base) + (" " + ", ".join(bounds) if bounds else "")  # "int >= 1, <= 10000"
    if typing.get_origin(a) is typing.Literal:
        return " | ".join(repr(v) for v in typing.get_args(a))
    return getattr(a, "__name__", None) or str(a).replace("typing.", "")


def _hints(obj: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of a builder (class: its ``__init__``); unresolvable ones stay text."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return inspect.get_annotations(target, eval_str=True)
    except Exception:  # a forward reference that cannot be resolved here
        return inspect.get_annotations(target)


class Registry:
    """A name → builder table, e.g. the forward operators or the models."""

    def __init__(self, kind: str, fixed: Iterable[str] = ()):
        self.kind = kind
        #: parameters supplied by the caller's context rather than by the user (e.g. image_shape)
        self.fixed = tuple(fixed)
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._items:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._items[name] = obj
            return obj

        return deco

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._items:
            raise ValueError(f"unknown {self.kind} '{name}'; available: {', '.join(self.names())}")
        return self._items[name]

    def params(self, name: str) -> list[Param]:
        """User-settable parameters of `name` (those not in `fixed`)."""
        builder = self.get(name)
        sig, hints = inspect.signature(builder), _hints(builder)
        out = []
        for p in sig.parameters.values():
            if p.name in self.fixed or p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            req = p.default is inspect.Parameter.empty
            ann = _annotation_text(hints.get(p.name, p.annotation))
            out.append(Param(p.name, ann, None if req else p.default, req))
        return out

    def describe(self, name: str) -> str:
        """One line: ``name(p: type = default, ...)`` followed by the docstring's first line."""
        parts = []
        for p in self.params(name):
            parts.append(f"{p.name}: {p.annotation}" + ("" if p.required else f" = {p.default!r}"))
        doc = (inspect.getdoc(self.get(name)) or "").strip().splitlines()
        head = doc[0] if doc else ""
        return f"{name}({', '.join(parts)})" + (f"  — {head}" if head else "")

    def listing(self, name: str | None = None) -> str:
        """`describe` of `name` (an unknown name is an error), or of every entry, one per line."""
        return "\n".join(self.describe(n) for n in ([name] if name else self.names()))

    def validate(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Check names and types of `params` for `name`; returns the coerced values."""
        builder = self.get(name)
        allowed = {p.name: p for p in self.params(name)}
        unknown = [k for k in params if k not in allowed and k not in self.fixed]
        if unknown:
            raise ValueError(
                f"{self.kind} '{name}': unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(allowed) or '(none)'}"
            )
        sig = inspect.signature(builder)
        hints = _hints(builder)
        out = dict(params)
        for k, v in params.items():
            if k in self.fixed:
                continue
            ann = hints.get(k, sig.parameters[k].annotation)
            if ann is inspect.Parameter.empty:
                continue
            try:
                out[k] = pydantic.TypeAdapter(ann, config=pydantic.ConfigDict(arbitrary_types_allowed=True)).validate_python(v)
            except pydantic.ValidationError as e:
                msg = e.errors()[0].get("msg", str(e))
                raise ValueError(f"{self.kind} '{name}': invalid value {quoted(v)} for '{k}' ({_annotation_text(ann)}): "
                                 f"{msg}") from None
            except pydantic.PydanticSchemaGenerationError:
                continue
            if isinstance(out[k], int) and not isinstance(out[k], bool) and not INT_MIN <= out[k] <= INT_MAX:
                raise ValueError(f"{self.kind} '{name}': '{k}' must lie in [{INT_MIN}, {INT_MAX}] (a 64-bit "
                                 f"integer), got {quoted(out[k])}")
        missing = [p.name for p in allowed.values() if p.required and p.name not in params]
        if missing:
            raise ValueError(f"{self.kind} '{name}': missing required parameter(s) {', '.join(missing)}")
        return out

    def build(self, name: str, **params: Any) -> Any:
        return self.get(name)(**self.validate(name, params))


def import_submodules(package: str) -> None:
    """Import every module of `package` (not starting with '_'), so their ``@register`` runs.

    A package's ``__init__`` calls this; adding an entry is then adding one file.
    """
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
