"""What a reconstructor is and can do, asked in one place.

Every method — variational, learned kind, plug-and-play, posterior sampler, safe, a zoo
entry, one from outside — is called the same way, ``x̂ = method(y, physics)`` (`Method`,
the protocol). What else it offers it declares as class or instance attributes, and the
evaluation, the stress study, training and the CLI ask `capabilities(method)` rather than
probing attributes or checking names:

========================  ==========================================================  =======
attribute                 meaning                                                     default
========================  ==========================================================  =======
``learned``               learned from data: never a classical baseline in verdicts    None¹
``operator_inside``       K inside its map: one K per call (minibatches share it)     True²
``posterior``             ``sample(y, physics, n)`` draws x | y (mean, std, samples)  False
``reuses``                {role: method name} of others' x̂ it refines (safe)          {}
``recalibrate``           may rebuild K from calibration read in y (safe)             False
``training_physics``      the physics it was trained for: trust can diagnose it       None
``wraps``                 the learned method it refines, calibrated for it (safe)    None
``baseline``              the baseline method it falls back to (safe: the tuned TV)  None
``fit_promise``           states a margin over its baseline, fitted by calibration    —³
========================  ==========================================================  =======

What calibration fits for a method is not written onto it: `invmap.evaluation.trust.calibrate`
returns a record per method (`invmap.trust.fitted.Fitted`), kept beside the methods and handed
to what uses it.

¹ a callable that does not say is learned when its name is ``model`` or ``safe``
(`invmap.evaluation.verdicts.is_learned`); ² a method from outside is called per minibatch
with the physics of the minibatch, the conservative answer; ³ a method, read as ``promises``.

A method from outside declares a capability by setting the attribute on its object; nothing
else is needed (`invmap.plugins`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

#: the one call every reconstructor answers: x̂ = method(y, physics)
Method = Callable[[torch.Tensor, Any], torch.Tensor]


@dataclass(frozen=True)
class Capabilities:
    """The declared capabilities of one method (see the module docstring)."""

    learned: bool | None = None
    operator_inside: bool = True
    posterior: bool = False
    reuses: Mapping[str, str] = field(default_factory=dict)
    recalibrate: bool = False
    training_physics: Any = None
    wraps: Any = None
    baseline: Any = None
    promises: bool = False

    @property
    def diagnosable(self) -> bool:
        """Trust can diagnose it against its training conditions."""
        return self.training_physics is not None


#: declared values taken as they are (the others only when bool or None)
_OBJECTS = ("reuses", "training_physics", "wraps", "baseline")


def capabilities(method: Any) -> Capabilities:
    """What `method` declares (defaults for what it does not)."""
    declared = {k: getattr(method, k) for k in ("learned", "operator_inside", "posterior", "recalibrate") + _OBJECTS
                if hasattr(method, k)}
    if declared.get("reuses") is None:
        declared.pop("reuses", None)
    declared["promises"] = callable(getattr(method, "fit_promise", None))
    return Capabilities(**{k: v for k, v in declared.items() if k in _OBJECTS or isinstance(v, bool) or v is None})


__all__ = ["Method", "Capabilities", "capabilities"]
