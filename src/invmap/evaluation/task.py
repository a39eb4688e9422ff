"""Test conditions as data: `Condition` says how test pairs (y, x) are made.

A condition is the image source, the image size, the operator K_sim that simulates y,
the operator K that reconstructs (the nominal one; they differ under calibration
mismatch), the noise model e (and a factor on its level), and whether y is simulated on
the reconstruction grid (``crime``) or on a finer grid (``fine``):

    x ~ source(size),   y = K_sim x + s·e,   x̂ = method(y, Physics(K, s·e)).

`condition_from_config` reads the test conditions of an experiment config; a stress
shift is a list of changes to it (`dataclasses.replace`), and `make_pairs` realizes one
condition. Every condition draws the same images and the same noise stream (seeded by
the config seed), so levels of a shift differ only in the factor that was moved.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Condition:
    """One test condition (see the module docstring). Params are stored as sorted JSON text."""

    source: str
    size: int
    operator: str
    operator_params: str = "{}"   # K used for reconstruction (nominal)
    sim_params: str | None = None  # K_sim when it differs from K (calibration mismatch)
    noise: str = "none"
    noise_params: str = "{}"
    noise_scale: float = 1.0
    simulation: str = "crime"
    source_params: str = "{}"
    seed: int = 0
    n: int = 8

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def dumps(d: dict | None) -> str:
        return json.dumps(d or {}, sort_keys=True, default=float)

    def op_params(self) -> dict:
        return json.loads(self.operator_params)

    def sim_op_params(self) -> dict:
        return json.loads(self.sim_params) if self.sim_params is not None else self.op_params()

    def with_changes(self, **changes: Any) -> "Condition":
        """A copy with fields changed; dict values of *params fields are serialised."""
        for k in ("operator_params", "sim_params", "noise_params", "source_params"):
            if k in changes and isinstance(changes[k], dict):
                changes[k] = self.dumps(changes[k])
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def condition_from_config(config: Any, n: int | None = None, simulation: str | None = None) -> Condition:
    """The test condition of an `invmap.config.Config` (`n` images; default ``data.test``)."""
    return Condition(
        source=config.data.source, size=int(config.data.size), operator=config.operator.name,
        operator_params=Condition.dumps(config.operator.params()), noise=config.noise.name,
        noise_params=Condition.dumps(config.noise.params()),
        simulation=simulation or config.data.test_simulation,
        source_params=Condition.dumps(config.data.params), seed=int(config.seed),
        n=int(n if n is not None else config.data.test))


def build_noise(c: Condition):
    """The noise model of the condition, its level multiplied by ``noise_scale``."""
    from .. import noise as noise_mod

    m = noise_mod.build(c.noise, **json.loads(c.noise_params))
    return m.scaled(c.noise_scale) if c.noise_scale != 1.0 else m


def build_operator(c: Condition, sim: bool = False):
    from .. import operators

    return operators.build(c.operator, image_shape=(c.size, c.size), **(c.sim_op_params() if sim else c.op_params()))


def images(c: Condition, split: str = "test"):
    """(x ``[n, 1, size, size]``, the `ImageSource`) of the condition (fewer if the source has fewer)."""
    from ..data import build_source

    src = build_source(c.source, c.size, split=split, count=c.n, seed=c.seed, **json.loads(c.source_params))
    n = min(c.n, len(src))
    if n == 0:
        raise ValueError(f"image source '{c.source}' has no {split} images")
    return src.batch(list(range(n))), src


def make_pairs(c: Condition, split: str = "test") -> tuple[torch.Tensor, torch.Tensor, Any]:
    """(y, x, physics for reconstruction) of condition `c`, simulated by `invmap.data.PairDataset`.

    y = K_sim x + e (``crime``) or s·R·K_sim,f x_f + e (``fine``: a finer grid, no inverse
    crime), with sample i's noise seeded by (seed, split, i) — the same draws at every
    level of a shift. The returned physics holds the nominal K and the noise model.
    """
    from ..data import PairDataset, build_source
    from ..physics import Physics

    src = build_source(c.source, c.size, split=split, count=c.n, seed=c.seed, **json.loads(c.source_params))
    n = min(c.n, len(src))
    if n == 0:
        raise ValueError(f"image source '{c.source}' has no {split} images")
    K = build_operator(c)
    K_sim = build_operator(c, sim=True) if c.sim_params is not None else K
    noise = build_noise(c)
    ds = PairDataset(src, Physics(K_sim, noise), seed=c.seed, simulation=c.simulation)
    with torch.no_grad():
        y, x = ds.simulate(list(range(n)))
    return y, x, Physics(K, noise)


__all__ = ["Condition", "condition_from_config", "make_pairs", "images", "build_operator", "build_noise"]
