"""Stress axes an operator offers: how K can be moved away from its nominal setting.

The stress study (`invmap.evaluation.stress`) asks each operator for its axes
(``K.stress_axes()``) instead of keeping tables of operator names. An axis is data: a
list of levels, each the full parameters of the moved operator (None at the nominal
level, which is K itself), and whether only the simulating operator moves:

- ``geometry``: K changes for simulation AND reconstruction (fewer views, wider PSF, …);
- ``kernel``: another PSF family (deblurring), simulation and reconstruction;
- ``limited-angle``: a shorter arc of views (CT), simulation and reconstruction;
- ``calibration``: y = K_sim x + e with K_sim slightly off (``sim_only``); every method
  reconstructs with the nominal K.

An axis the operator cannot vary here (a user-given PSF has no width) is returned with
no levels and the reason in ``skipped``, so the study never silently pretends.

An axis whose shift leaves no trace in (y, K) says why in ``unidentifiable`` (e.g. a global
angle offset of every CT view: R_{θ+δ} x = R_θ(rot_δ x), the data of the rotated object), so
trust at inference is scored only on failures a ground-truth-free signal could see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

#: the stress-study kinds an operator's axes may belong to
KINDS = ("geometry", "kernel", "limited-angle", "calibration")


@dataclass(frozen=True)
class AxisLevel:
    """One level: its label and the moved operator's parameters (None: K itself)."""

    label: str
    params: dict | None = None


@dataclass(frozen=True)
class StressAxis:
    """One operator-specific shift (see the module docstring)."""

    kind: str
    name: str
    label: str
    axis: str
    levels: tuple[AxisLevel, ...]
    description: str = ""
    ordered: bool = True
    sim_only: bool = False
    skipped: dict[str, str] = field(default_factory=dict)
    unidentifiable: str = ""  # why its moved levels cannot be told from the nominal ones in (y, K); "": they can

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"stress axis '{self.name}': unknown kind '{self.kind}'; available: {', '.join(KINDS)}")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def scaled(op, param: str, factors: Sequence[float], fmt: str, integer: bool = False,
           nominal: float | None = None) -> tuple[list[AxisLevel], dict[str, str]]:
    """Levels ``param = nominal · f`` for each factor f (``fmt`` gets ``v`` and ``f``); f = 1 is K."""
    params = op.params()
    nominal = params.get(param) if nominal is None else nominal
    if not _number(nominal):
        return [], {"*": f"nominal '{param}' = {nominal!r} is not a number"}
    levels, skipped, seen = [], {}, set()
    for f in factors:
        v = int(round(nominal * f)) if integer else float(nominal * f)
        label = fmt.format(v=v, f=f)
        if v in seen:
            continue
        seen.add(v)
        if integer and v < 1:
            skipped[label] = "below 1"
            continue
        levels.append(AxisLevel(label, None if f == 1.0 else {**params, param: v}))
    return levels, skipped


def shifted(op, param: str, offsets: Sequence[float], fmt: str) -> list[AxisLevel]:
    """Levels ``param = nominal + o`` for each offset o (``fmt`` gets ``v`` = o); o = 0 is K."""
    params = op.params()
    base = float(params.get(param) or 0.0)
    return [AxisLevel(fmt.format(v=o), None if o == 0 else {**params, param: base + o}) for o in offsets]


def values(op, param: str, choices: Sequence[float], fmt: str) -> list[AxisLevel]:
    """Levels ``param = v`` for each value (plus the nominal one, which is K), sorted."""
    params = op.params()
    nominal = params.get(param)
    vals = sorted(set(choices) | ({nominal} if _number(nominal) else set()))
    return [AxisLevel(fmt.format(v=v), None if v == nominal else {**params, param: v}) for v in vals]


__all__ = ["KINDS", "AxisLevel", "StressAxis", "scaled", "shifted", "values"]
