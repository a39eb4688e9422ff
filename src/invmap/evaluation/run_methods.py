"""The methods that belong to a run rather than to a registry: built from its trained model.

A user names them like any other method (``--methods fbp,tv,model,safe``). Each says what it
needs — the run's trained model, and the baselines it reuses (tuned and recorded with the
run's, `invmap.evaluation.runs.ensure_baselines`) — and builds itself from them:

- ``model``: the run's trained network f_Θ (`invmap.models.load_model`);
- ``safe``: f_Θ anchored to the tuned TV it falls back to (`invmap.trust.SafeReconstructor`:
  argmin ½‖Kx − y‖² + λ TV(x) + (μ/2)‖x − f_Θ(y)‖², μ from the trust score).

Both are learned: never a classical baseline in a verdict (`invmap.evaluation.verdicts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class RunMethod:
    """A method built from a run's trained model: `build(model, baselines)` with ``baselines``
    {name: the built baseline} of the names in `reuses`."""

    name: str
    help: str
    reuses: tuple[str, ...]
    build: Callable[[Any, Mapping[str, Any]], Any]


def _safe(model: Any, baselines: Mapping[str, Any]) -> Any:
    from ..trust import SafeReconstructor

    # an evaluation that also runs "model" and "tv" (the same objects' x̂) lends them to safe
    return SafeReconstructor(model, baselines["tv"], reuses={"model": "model", "baseline": "tv"})


#: name → the run-bound method (`invmap.evaluation.runs.build_methods` builds them; where a run
#: has no model they are left out with a note, `runs.applicable_methods`)
RUN_METHODS: dict[str, RunMethod] = {m.name: m for m in (
    RunMethod("model", "the run's trained network", (), lambda model, _baselines: model),
    RunMethod("safe", "the trained network anchored to the tuned TV, by its trust score", ("tv",), _safe),
)}

__all__ = ["RunMethod", "RUN_METHODS"]
