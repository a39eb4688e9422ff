"""Pair data sets (y, x): ground truth x from an image source, y = K x + e simulated.

``PairDataset(images, physics, seed)`` yields ``(y, x)`` with x ``[1, H, W]`` and
y ``[1, *out_shape]``:

    y_i = noise(K x_i; generator g_i),   g_i = torch.Generator seeded by (seed, split, i[, epoch]).

Every sample owns its noise generator, so sample i is the same in every run, on every
machine, in any order and in any DataLoader worker (workers never share a random stream).
With ``fresh_noise=True`` (training only) the seed also mixes the epoch set by
`set_epoch(e)`: new noise each epoch on the same images; val/test noise never changes.
The epoch lives in shared memory, so persistent DataLoader workers see it too (call
`set_epoch` before iterating the loader).

Drawn physics: given a `invmap.distributions.PhysicsDistribution` with something to draw,
sample i has its own measurement process ω_i (operator, noise level, simulation grid),
drawn once from a generator seeded by (seed, physics stream, split, i) — reproducible per
index like the noise. ``physics`` is then the nominal one, measurements may differ in
shape from sample to sample (drawn views), and `simulate_each` / `inputs_each` give them
per sample, grouped by operator so that every distinct K is built once and applied batched.

``simulation="fine"`` (default for the test split) simulates y from a finer ground truth
(see `invmap.data.crime`); ``"crime"`` (default for train/val) uses K on x's own grid.

Fast path: ``simulate(indices)`` renders the batch at once and applies K to the stacked
images in one call (tomography is much faster batched), then adds each sample's own noise.
`torch.utils.data.DataLoader` uses it automatically: the data set defines
``__getitems__``, which the loader calls with a whole batch of indices. Batched and
one-by-one samples agree to float rounding of K (the images and the noise are identical).

>>> from invmap.data import PairDataset, build_source
>>> from invmap.physics import Physics
>>> import invmap.operators as ops, invmap.noise as nz
>>> src = build_source("ellipses", size=32, count=8)
>>> ds = PairDataset(src, Physics(ops.build("identity", image_shape=(32, 32)), nz.build("gaussian", sigma=0.05)))
>>> y, x = ds[0]
>>> y.shape, x.shape
(torch.Size([1, 32, 32]), torch.Size([1, 32, 32]))
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Callable, Sequence

import torch

from .. import __version__
from .. import noise as noise_mod
from ..distributions import Draw, PhysicsDistribution
from ..operators import LinearOperator, from_spec
from ..physics import Physics, as_physics, build_physics
from .crime import Refined, check_mode, fine_operator
from .sources import NOISE_STREAM, PHYSICS_STREAM, ImageSource, mix_seed, split_code

#: fine-grid operators of drawn physics kept at once (pairs are simulated sorted by operator)
FINE_CACHE = 2

#: manifest format tag of materialised pair data sets
FORMAT = "invmap-pairs/1"


def _as_physics(p) -> Physics:
    if isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], LinearOperator):
        return Physics(p[0], p[1] if p[1] is not None else noise_mod.build("none"))
    try:
        return as_physics(p)
    except TypeError:
        raise TypeError("PairDataset: physics must be a Physics, a LinearOperator or an (operator, noise) pair") from None


class PairDataset(torch.utils.data.Dataset):
    """(y, x) pairs: x from `images`, y = noise(K x) with per-sample seeded noise.

    Parameters
    ----------
    images: an `ImageSource` (one split).
    physics: `Physics` (K + noise), or ``(operator, noise)``, or an operator (no noise), or a
        `PhysicsDistribution` (each sample draws its own; see the module docstring).
    seed: seeds the noise; sample i's noise depends only on (seed, split, i[, epoch]).
    fresh_noise: draw new noise every epoch (`set_epoch`); training split only.
    simulation: ``"crime"`` or ``"fine"``; default ``"fine"`` for the test split, else ``"crime"``.
    refine: the fine grid's factor (2: images rendered at 2H × 2W).
    """

    def __init__(self, images: ImageSource, physics, seed: int = 0, fresh_noise: bool = False,
                 simulation: str | None = None, refine: int = 2):
        self.images = images
        self.drawn: PhysicsDistribution | None = None
        if isinstance(physics, PhysicsDistribution):
            self.drawn = physics if physics.random else None
            if simulation is None and physics.simulation is None:
                simulation = physics.nominal_simulation
            physics = build_physics(physics.nominal_spec(), (images.size, images.size))
        self.physics = _as_physics(physics)
        op = self.physics.operator
        if tuple(op.in_shape) != (images.size, images.size):
            raise ValueError(f"PairDataset: operator takes images {list(op.in_shape)} but the source gives "
                             f"{[images.size, images.size]}")
        self.seed = int(seed)
        self.fresh_noise = bool(fresh_noise)
        if self.fresh_noise and images.split != "train":
            raise ValueError(f"PairDataset: fresh_noise is for training only; the {images.split} split keeps fixed "
                             "noise so its scores are reproducible")
        self.simulation = check_mode(simulation if simulation is not None else
                                     ("fine" if images.split == "test" else "crime"))
        self.refine = int(refine)
        self._refined: Refined | None = fine_operator(op, self.refine) if self.simulation == "fine" else None
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._split = split_code(images.split)
        self._ops: dict[str, LinearOperator] = {}  # drawn operators, each built once
        self._fine: OrderedDict[str, Refined] = OrderedDict()
        self._draws: dict[int, Draw] = {}
        self._noises: dict[str, noise_mod.NoiseModel] = {}

    # ----------------------------------------------------------------- epochs
    def set_epoch(self, epoch: int) -> None:
        """Select the noise of epoch `epoch` (only with ``fresh_noise=True``; else a no-op) and the
        images' draws of that epoch when they change with it (`invmap.data.augment`)."""
        self._epoch.fill_(int(epoch))
        if hasattr(self.images, "set_epoch"):
            self.images.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def generator(self, i: int) -> torch.Generator:
        """The CPU generator of sample i's noise (depends on the epoch only with fresh_noise)."""
        e = int(self._epoch) if self.fresh_noise else 0
        return torch.Generator().manual_seed(mix_seed(self.seed, NOISE_STREAM, self._split, int(i), e))

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.images)

    def clean(self, indices: Sequence[int], device: str | torch.device | None = None,
              dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """(K x, x) without noise for `indices`: ``K`` on x's grid, or s·R·K_f x_f in fine mode
        (one fixed physics; drawn physics: `clean_each`)."""
        if self.drawn is not None:
            raise ValueError("PairDataset.clean: each sample has its own drawn physics; use clean_each")
        x = self.images.batch(indices).to(device=device, dtype=dtype)
        if self._refined is None:
            return self.physics.operator(x), x
        xf = self.images.fine(indices, self.refine).to(device=device, dtype=dtype)
        return self._refined.operator(xf), x

    def simulate(self, indices: Sequence[int], device: str | torch.device | None = None,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """The batched path: ``(y [B, 1, *out_shape], x [B, 1, H, W])`` for `indices`, one K call.

        Noise is drawn per sample from its own generator (on the CPU, then moved), so the
        result does not depend on how indices are grouped into batches.
        """
        idx = [self.images._check_index(i) for i in indices]
        if not idx:
            raise ValueError("PairDataset.simulate: no indices given")
        if self.drawn is not None:
            ys, x = self.simulate_each(idx, device, dtype)
            if len({tuple(y.shape) for y in ys}) > 1:
                raise ValueError("PairDataset.simulate: these samples have measurements of different shapes (drawn "
                                 "geometry); use simulate_each")
            return torch.cat(ys), x
        yc, x = self.clean(idx, device, dtype)
        if not bool(torch.isfinite(yc).all()):
            raise ValueError("PairDataset: clean measurement K x contains NaN or Inf values")
        noise = self.physics.noise  # one finiteness check per batch, then each sample's own stream
        mask = self.physics.operator.measured()  # noise on the measured entries only
        y = torch.cat([noise.apply(yc[k:k + 1], self.generator(i), mask) for k, i in enumerate(idx)])
        return y, x

    # ----------------------------------------------------------- drawn physics
    def draw(self, i: int) -> Draw:
        """ω_i of sample i (drawn physics only), from its own generator (fixed across epochs)."""
        if self.drawn is None:
            raise ValueError("PairDataset.draw: this data set has one fixed physics")
        hit = self._draws.get(int(i))
        if hit is None:
            g = torch.Generator().manual_seed(mix_seed(self.seed, PHYSICS_STREAM, self._split, int(i)))
            hit = self._draws[int(i)] = self.drawn.draw(g)
        return hit

    def operator(self, key: str) -> LinearOperator:
        """The operator of a drawn spec (JSON), built once per distinct spec and kept."""
        op = self._ops.get(key)
        if op is None:
            op = self._ops[key] = from_spec(json.loads(key), (self.images.size, self.images.size))
        return op

    def _fine_operator(self, key: str) -> Refined:
        """s·R·K_f of a drawn simulation operator; its scale and check are the nominal one's."""
        hit = self._fine.get(key)
        if hit is None:
            if self._refined is None:
                self._refined = fine_operator(self.physics.operator, self.refine)
            hit = self._fine[key] = fine_operator(from_spec(json.loads(key), (self.images.size, self.images.size)),
                                                  self.refine, like=self._refined)
            while len(self._fine) > FINE_CACHE:
                self._fine.popitem(last=False)
        self._fine.move_to_end(key)
        return hit

    def physics_of(self, draw: Draw) -> Physics:
        """The physics methods reconstruct sample `draw` with: its operator (drawn calibration
        errors left out) and its noise model."""
        nm = self._noises.get(draw.noise)
        if nm is None:
            n = json.loads(draw.noise)
            nm = self._noises[draw.noise] = noise_mod.build(n["name"], **n["params"])
        return Physics(self.operator(draw.operator), nm)

    def clean_each(self, indices: Sequence[int], device: str | torch.device | None = None,
                   dtype: torch.dtype = torch.float32) -> tuple[list[torch.Tensor], torch.Tensor]:
        """([K_{ω_i} x_i for each i], x) of drawn physics, K applied batched per distinct
        (simulation operator, grid); each y keeps its own shape ``[1, *out_shape]``."""
        idx = [self.images._check_index(i) for i in indices]
        if self.drawn is None:
            yc, x = self.clean(idx, device, dtype)
            return list(yc.split(1)), x
        groups: dict[tuple[str, str], list[int]] = {}
        for k, i in enumerate(idx):
            d = self.draw(i)
            groups.setdefault((check_mode(d.simulation), d.sim_operator), []).append(k)
        ys: list[torch.Tensor | None] = [None] * len(idx)
        x = torch.empty(len(idx), 1, self.images.size, self.images.size, device=device, dtype=dtype)
        for (mode, key), pos in sorted(groups.items()):
            part = [idx[k] for k in pos]
            xg = self.images.batch(part).to(device=device, dtype=dtype)
            if mode == "crime":
                yg = self.operator(key)(xg)
            else:
                yg = self._fine_operator(key).operator(self.images.fine(part, self.refine).to(device=device, dtype=dtype))
            x[pos] = xg
            for k, y in zip(pos, yg.split(1)):
                ys[k] = y
        return ys, x

    def inputs_each(self, indices: Sequence[int], clean: Sequence[torch.Tensor],
                    preprocess: Callable[[torch.Tensor, Physics], torch.Tensor],
                    by_noise: bool = False) -> torch.Tensor:
        """z_i = P(y_i, K_{ω_i}) for `indices` (e.g. FBP with each sample's own views), y_i =
        clean[i] + e_i with sample i's noise model and generator; batched per distinct K (per
        distinct (K, noise model) with `by_noise`: a P that reads the noise level, such as a
        noise-conditional denoiser's)."""
        groups: dict[tuple, list[int]] = {}
        draws = {i: self.draw(i) for i in indices}
        for k, i in enumerate(indices):
            groups.setdefault((draws[i].operator, draws[i].noise if by_noise else ""), []).append(k)
        z: torch.Tensor | None = None
        for pos in groups.values():
            physics = self.physics_of(draws[indices[pos[0]]])
            mask = physics.operator.measured()
            y = torch.cat([self.physics_of(draws[indices[k]]).noise.apply(clean[indices[k]], self.generator(indices[k]), mask)
                           for k in pos])
            zg = preprocess(y, physics)
            if z is None:
                z = torch.empty((len(indices), *zg.shape[1:]), dtype=zg.dtype, device=zg.device)
            z[pos] = zg
        return z

    def simulate_each(self, indices: Sequence[int], device: str | torch.device | None = None,
                      dtype: torch.dtype = torch.float32) -> tuple[list[torch.Tensor], torch.Tensor]:
        """([y_i], x): every sample with its own drawn physics (`clean_each` plus its noise)."""
        yc, x = self.clean_each(indices, device, dtype)
        ys = []
        for k, i in enumerate(indices):
            phys = self.physics_of(self.draw(i)) if self.drawn is not None else self.physics
            ys.append(phys.noise.apply(yc[k], self.generator(i), phys.operator.measured()))
        return ys, x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        y, x = self.simulate([i])
        return y[0], x[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Used by DataLoader for a whole batch: the batched `simulate`, split back into samples."""
        y, x = self.simulate(list(indices))
        return list(zip(y.unbind(0), x.unbind(0)))

    # ------------------------------------------------------------ description
    def manifest(self) -> dict:
        """What determines the pairs: source, physics spec (operator + noise), seed, simulation
        (+ version, shapes)."""
        op = self.physics.operator
        m = {"format": FORMAT, "source": self.images.spec(), "physics": self.physics.spec(), "seed": self.seed, "simulation": self.simulation,
             "fresh_noise": self.fresh_noise, "epoch": int(self._epoch) if self.fresh_noise else 0,
             "count": len(self), "x_shape": [1, self.images.size, self.images.size],
             "y_shape": [1, *op.out_shape], "complex": bool(op.complex_output), "dtype": "float32",
             "invmap_version": __version__}
        if self._refined is not None:
            m["refine"] = self._refined.info()
        if self.drawn is not None:
            m["distributions"] = self.drawn.spec()
        return m

    def __repr__(self) -> str:
        return (f"PairDataset({self.images!r}, op={self.physics.operator.name or type(self.physics.operator).__name__}, "
                f"noise={self.physics.noise.name}, simulation={self.simulation!r}, n={len(self)})")
