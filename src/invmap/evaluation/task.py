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
from typing import Any, Sequence

import torch

from ..data import build_source, PairDataset
from ..physics import Physics, build_physics, physics_spec


@dataclass(frozen=True)
class Condition:
    """One test condition (see the module docstring).

    ``physics`` is the task's physics spec (`invmap.physics`: nominal K + noise e, without
    the image shape, which ``size`` sets) and ``sim_operator`` the operator spec of K_sim
    when it differs from K; both are stored as sorted JSON text so conditions hash.
    """

    source: str
    size: int
    physics: str
    sim_operator: str | None = None
    noise_scale: float = 1.0
    simulation: str = "crime"
    source_params: str = "{}"
    seed: int = 0
    n: int = 8

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def dumps(d: dict | None) -> str:
        return json.dumps(d or {}, sort_keys=True, default=float)

    @classmethod
    def of(cls, source: str, size: int, physics: dict, **fields: Any) -> "Condition":
        """A condition from a physics spec (a dict, see `invmap.physics.physics_spec`)."""
        spec = physics_spec(physics["operator"], physics.get("noise"))
        spec["operator"].pop("image_shape", None)
        return cls(source=source, size=int(size), physics=cls.dumps(spec), **fields)

    def physics_spec(self) -> dict:
        return json.loads(self.physics)

    def operator_spec(self, sim: bool = False) -> dict:
        """The operator spec of K (or of K_sim with ``sim=True``)."""
        return json.loads(self.sim_operator) if sim and self.sim_operator is not None else self.physics_spec()["operator"]

    @property
    def operator(self) -> str:
        """The operator's name."""
        return self.physics_spec()["operator"]["name"]

    @property
    def noise(self) -> str:
        """The noise model's name."""
        return self.physics_spec()["noise"]["name"]

    def with_changes(self, **changes: Any) -> "Condition":
        """A copy with fields changed; ``operator`` / ``noise`` (specs) replace those parts of
        the physics spec, and dict values of ``sim_operator`` / ``source_params`` are serialised."""
        spec = self.physics_spec()
        for part in ("operator", "noise"):
            if part in changes:
                spec[part] = changes.pop(part)
        changes["physics"] = self.dumps(spec)
        for k in ("sim_operator", "source_params"):
            if isinstance(changes.get(k), dict):
                changes[k] = self.dumps(changes[k])
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        return json.dumps(self.describe(), sort_keys=True)

    def describe(self) -> dict:
        """The condition as plain JSON values (specs as dicts)."""
        d = dataclasses.asdict(self)
        d["physics"] = self.physics_spec()
        d["sim_operator"] = json.loads(self.sim_operator) if self.sim_operator is not None else None
        d["source_params"] = json.loads(self.source_params)
        return d


def condition_from_config(config: Any, n: int | None = None, simulation: str | None = None) -> Condition:
    """The test condition of an `invmap.config.Config` (`n` images; default ``data.test``)."""
    return Condition.of(config.data.source, int(config.data.size), config.physics_spec(),
                        simulation=simulation or config.data.test_simulation,
                        source_params=Condition.dumps(config.data.params), seed=int(config.seed),
                        n=int(n if n is not None else config.data.test))


def condition_physics(c: Condition, sim: bool = False):
    """The condition's `Physics`: K (or K_sim) for ``size``² images and the noise, its level
    multiplied by ``noise_scale`` (`invmap.physics.build_physics`)."""
    spec = {**c.physics_spec(), **({"operator": c.operator_spec(sim=True)} if sim else {})}
    p = build_physics(spec, (c.size, c.size))
    if c.noise_scale != 1.0:
        p.noise = p.noise.scaled(c.noise_scale)
    return p


def build_noise(c: Condition):
    """The noise model of the condition, its level multiplied by ``noise_scale``."""
    return condition_physics(c).noise


def build_operator(c: Condition, sim: bool = False):
    """K (or K_sim) of the condition."""
    return condition_physics(c, sim).operator


def images(c: Condition, split: str = "test"):
    """(x ``[n, 1, size, size]``, the `ImageSource`) of the condition (fewer if the source has fewer)."""
    src = build_source(c.source, c.size, split=split, count=c.n, seed=c.seed, **json.loads(c.source_params))
    n = min(c.n, len(src))
    if n == 0:
        raise ValueError(f"image source '{c.source}' has no {split} images")
    return src.batch(list(range(n))), src


def make_pairs(c: Condition, split: str = "test", indices: Sequence[int] | None = None,
               physics: Any = None) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """(y, x, physics for reconstruction) of condition `c`, simulated by `invmap.data.PairDataset`:
    its first ``c.n`` images, or those of `indices`.

    y = K_sim x + e (``crime``) or s·R·K_sim,f x_f + e (``fine``: a finer grid, no inverse
    crime), with sample i's noise seeded by (seed, split, i) — the same draws at every
    level of a shift. The returned physics holds the nominal K and the noise model (`physics`,
    when the caller has built the condition's physics already).
    """
    src = build_source(c.source, c.size, split=split, count=c.n, seed=c.seed, **json.loads(c.source_params))
    n = min(c.n, len(src))
    if n == 0:
        raise ValueError(f"image source '{c.source}' has no {split} images")
    phys = physics if physics is not None else condition_physics(c)
    sim = Physics(build_operator(c, sim=True), phys.noise) if c.sim_operator is not None else phys
    ds = PairDataset(src, sim, seed=c.seed, simulation=c.simulation)
    with torch.no_grad():
        y, x = ds.simulate(list(range(n)) if indices is None else list(indices))
    return y, x, phys


#: what makes two runs the same task (numbers of different tasks cannot be compared)
TASK_FIELDS = ("source", "size", "physics", "simulation", "source_params")


def config_task(config: Any) -> dict:
    """The task of a config (`TASK_FIELDS` of its test condition, the physics as built, and its
    PSNR data range), as `task_of` states a run's: equal dicts mean one task."""
    ref = condition_from_config(config).describe()
    task = {k: ref.get(k) for k in TASK_FIELDS}
    task["physics"] = canonical_physics(task["physics"], task["size"])
    task["PSNR data range"] = str(config.evaluation.data_range)
    return task


def canonical_physics(spec: object, size: object) -> object:
    """The physics spec as the built operator and noise state it (every parameter, defaults
    included), so ``{angles: 60}`` and ``{angles: 60, arc: 180}`` are one task; as written when
    it cannot be built."""
    try:
        return Physics.from_spec(spec, (int(size), int(size))).spec()  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError, AttributeError):
        return spec


__all__ = ["TASK_FIELDS", "config_task", "canonical_physics", "Condition", "condition_from_config", "make_pairs", "images", "condition_physics", "build_operator", "build_noise"]
