"""Physics = forward operator K + noise model: the measurement y = K x + e.

Every reconstructor — FBP, CGLS, TV, a trained network — is called as
``x_hat = method(y, physics)``.

A task's physics is described one way everywhere — the experiment config, the stress
study's test conditions, saved models and dataset manifests — by a *physics spec*

    {"operator": {"name": ..., "params": {...}[, "image_shape": [H, W]]},
     "noise":    {"name": ..., "params": {...}}}

(the operator part is `LinearOperator.spec()`, composites of the operator algebra
included), and built by one function, `build_physics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from . import noise as noise_mod
from .operators import LinearOperator, from_spec, resized_spec
from .operators.base import operator_of

NO_NOISE = {"name": "none", "params": {}}


@dataclass
class Physics:
    """A measurement process: ``operator`` K and ``noise`` (default: none)."""

    operator: LinearOperator
    noise: noise_mod.NoiseModel = field(default_factory=lambda: noise_mod.build("none"))

    def clean(self, x: torch.Tensor) -> torch.Tensor:
        """K x."""
        return self.operator(x)

    def measure(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """y = K x + e."""
        return self.noisy(self.operator(x), generator)

    def noisy(self, y_clean: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """y = y_clean + e, e on the entries K measures (`LinearOperator.measured`) only."""
        return self.noise(y_clean, generator, mask=self.operator.measured())

    def spec(self) -> dict[str, Any]:
        """The physics spec (see the module docstring) that `build_physics` turns back into this."""
        return {"operator": self.operator.spec(), "noise": self.noise.spec()}

    @staticmethod
    def from_spec(d: Mapping[str, Any], image_shape: Sequence[int] | None = None) -> "Physics":
        """`build_physics`."""
        return build_physics(d, image_shape)


def physics_spec(operator: Mapping[str, Any], noise: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A physics spec from an operator spec and a noise spec (default: no noise), checked for shape."""
    if not isinstance(operator, Mapping) or not isinstance(operator.get("name"), str):
        raise ValueError(f"physics spec: 'operator' must be a mapping with a 'name', got {operator!r}"[:200])
    n: dict[str, Any] = dict(noise) if noise else dict(NO_NOISE)
    if not isinstance(n.get("name"), str) or not isinstance(n.get("params", {}), Mapping):
        raise ValueError(f"physics spec: 'noise' must be a mapping with a 'name' and 'params', got {noise!r}"[:200])
    return {"operator": dict(operator), "noise": {"name": n["name"], "params": dict(n.get("params") or {})}}


def build_physics(spec: Mapping[str, Any], image_shape: Sequence[int] | None = None) -> Physics:
    """The `Physics` of a physics spec; `image_shape` (H, W) replaces the one the spec records.

    A malformed spec is a one-line ``ValueError`` (saved models of earlier versions use the
    same layout and load unchanged).
    """
    if not isinstance(spec, Mapping) or "operator" not in spec:
        raise ValueError(f"not a physics spec (expected {{'operator': {{name, params}}, 'noise': {{name, params}}}}), "
                         f"got {spec!r}"[:240])
    s = physics_spec(spec["operator"], spec.get("noise"))
    return Physics(from_spec(s["operator"], image_shape), noise_mod.build(s["noise"]["name"], **s["noise"]["params"]))


def resized_physics(spec: Mapping[str, Any], image_shape: Sequence[int]) -> Physics:
    """The `Physics` of the same acquisition for images of `image_shape` (H, W): K's parameters
    that follow the image size (a CT detector covering the image diagonal, …) rescaled by
    `invmap.operators.resized_spec`, the rest and the noise kept. For a stored physics (a
    saved model's) rebuilt at another size — ``reconstruct --size``, the stress study's
    resolution shift — where `build_physics` would keep, say, a 128² image's 183 detectors."""
    if not isinstance(spec, Mapping) or "operator" not in spec:
        raise ValueError(f"not a physics spec (expected {{'operator': {{name, params}}, 'noise': {{name, params}}}}), "
                         f"got {spec!r}"[:240])
    return build_physics({**spec, "operator": resized_spec(spec["operator"], image_shape)}, image_shape)


def as_physics(physics: Physics | LinearOperator) -> Physics:
    """The `Physics` of y = K x + e given a `Physics` or a bare operator K (noise: none); its K
    alone is `operator_of` (`invmap.operators.base`)."""
    if isinstance(physics, Physics):
        return physics
    if isinstance(physics, LinearOperator):
        return Physics(physics)
    raise TypeError(f"expected an invmap Physics or LinearOperator, got {type(physics).__name__}")


__all__ = ["Physics", "physics_spec", "build_physics", "resized_physics", "as_physics", "operator_of"]
