"""A config section checked against the registry of what it names (`invmap.registry.Registry`):
the operator's, noise model's or network's own parameters, including distribution-valued ones
(`invmap.distributions`: the nominal values and each distribution's extremes)."""

from __future__ import annotations

from typing import Any, Iterable

from pydantic import BaseModel

from .. import distributions
from ..registry import Registry


def validate_params(registry: Registry, name: str, extras: dict[str, Any],
                    reserved: Iterable[str] = ()) -> dict[str, Any]:
    """The parameters `extras` of entry `name` checked and coerced by `registry`; a key in `reserved`
    (set elsewhere in the config) is a one-line error."""
    for k in reserved:
        if k in extras:
            raise ValueError(f"'{k}' is set by the config elsewhere (data.size), not in this section")
    return registry.validate(name, dict(extras))


def validate_drawn(registry: Registry, name: str, extras: dict[str, Any],
                   reserved: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Registry-checked parameter sets of a section whose parameters may be distributions
    (`invmap.distributions`): the nominal values first, then each distribution's extremes.
    Distributions are kept as written in the returned first set."""
    if not any(distributions.is_distribution(v) for v in extras.values()):
        return [validate_params(registry, name, extras, reserved)]
    defaults = {p.name: p.default for p in registry.params(name)} if name in registry.names() else {}
    for k, v in extras.items():
        if distributions.is_distribution(v):
            try:
                distributions.parse(v, defaults.get(k))
            except ValueError as e:
                raise ValueError(f"{k}: {e}") from None
    sets = [validate_params(registry, name, s, reserved) for s in distributions.substituted(extras, defaults)]
    return [{**sets[0], **{k: v for k, v in extras.items() if distributions.is_distribution(v)}}] + sets


def store(section: BaseModel, coerced: dict[str, Any]) -> None:
    """Write the registry-coerced values `coerced` back into the extra keys of an open `section`."""
    extra = section.__pydantic_extra__
    if extra is not None:
        extra.update({k: v for k, v in coerced.items() if k in extra})


__all__ = ["validate_params", "validate_drawn", "store"]
