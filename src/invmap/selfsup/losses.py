"""Self-supervised losses: learning x̂ = f_Θ(y, K) from measurements y = K x + e alone (x never read).

Every loss is computed per image (a tensor ``[B]``; training takes the batch mean) and is scaled
to image units: a measurement-space squared error is divided by ‖K‖_F² = n·g (n pixels, g the mean
gain E‖K b‖²/n over white images b, `mean_gain`), so that a white error e costs its MSE ‖e‖²/n
whatever the operator, and the consistency and equivariance terms of EI weigh alike on CT (where
‖K‖² is ~170 g) as on inpainting. (Scaling by ‖K‖² instead let EI's term drown the consistency on
CT: 23.4 dB against MC alone's 27.0 on 32² images, 16 views, 384 steps.)

- ``mc`` (measurement consistency): ‖K x̂ − y‖²_W / ‖K‖_F², W = diag(v̄/v_j) the inverse noise
  variances v_j of the entries (`measurement_consistency`; v̄ their mean over the image, so W = I
  for Gaussian noise of one σ and the weighted least squares of Poisson noise otherwise). Alone
  it cannot see the null space of K: x̂ + u with K u = 0 costs the same.
- ``ei`` (equivariant imaging, Chen, Tachella & Davies 2021): MC + w·‖T_g x̂ − f(K T_g x̂ + e')‖²/n
  with g drawn from a transform group the operator declares (`invmap.selfsup.transforms`; e' a
  fresh noise draw): the images are assumed invariant under {T_g} while K is not equivariant, so
  the rotated data show K's null space from other directions.
- ``sure`` (Stein's unbiased risk estimate, Gaussian noise of known per-entry variance v_j):
  SURE = ‖K x̂ − y‖² − Σ_j v_j + 2 Σ_j v_j ∂(K f)_j/∂y_j, an unbiased estimate of ‖K(x̂ − x)‖²;
  the divergence by one Monte-Carlo probe b ~ N(0, I): Σ_j v_j b_j [K f(y + εb) − K f(y)]_j / ε,
  ε = `sure_eps`·√v̄ (`sure`). For denoising (K = I) it estimates the MSE itself; for a general K
  it estimates ‖K(x̂ − x)‖²/‖K‖_F², the error as K weighs it (the null-space part stays invisible
  to it as to MC).
- ``split`` (measurement splitting, after Noise2Inverse, Hendriksen et al. 2020): the units of y
  the operator offers (`LinearOperator.split_units`: CT views, sampled MRI lines, observed
  pixels) are split in two interleaved halves A, B; each step one half is the input:
  x̂ = f(y_A, K_A), loss = MC of x̂ against all of y. The held-out half y_B (its noise independent
  of the input's) must be predicted; the input half keeps x̂ consistent with what it was given
  (without it, the part of x̂ only K_A sees is never fitted: on inpainting and MRI that part came
  out arbitrary). At reconstruction the network gets all of y — inputs unlike the half-inputs it
  was trained on; the run method ``split-mean`` averages over the two halves instead, as
  Noise2Inverse does (`invmap.selfsup.halves.SplitAverage`).

What a task cannot serve is refused before anything runs (`SelfSupervised.check`): SURE without
Gaussian noise of known σ, a transform group the operator does not declare, splitting an
operator with nothing to split, a model without parameters to learn from y.

Randomness (EI's g and fresh noise, SURE's probe, the split half) comes from generators seeded by
(seed, split, step[, sample index]): a resumed run draws what the uninterrupted one drew, and
data-parallel ranks agree with one process.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Sequence

import torch

from ..data.sources import mix_seed, split_code
from ..physics import Physics
from .transforms import apply as apply_transform, draw as draw_transform
from .halves import interleaved_halves, splittable
from .variance import per_image as _per_image, real as _real, variance as _variance

#: how a run is supervised: ``x`` = pairs (y, x) with `training.loss`; the others learn from y alone
SUPERVISIONS = ("x", "mc", "ei", "sure", "split")
#: seeds the self-supervised draws (a stream of its own beside the images', noise's and physics')
SELFSUP_STREAM = 0x5E1F5
#: restricted operators of measurement splitting kept at once (two halves per distinct K)
SPLIT_CACHE = 16

Call = Callable[[torch.Tensor, Any], torch.Tensor]


def noise_weights(y: torch.Tensor, physics: Physics) -> torch.Tensor:
    """W = v̄/v per real component of y (0 off the measured entries; 1 where there is no noise):
    the inverse noise variances, scaled to mean ≈ 1 per image."""
    v, m = _variance(y, physics)
    count = _per_image(m.float()).clamp_min(1)
    vbar = (_per_image(v) / count).reshape(-1, *([1] * (v.dim() - 1)))
    w = torch.where(vbar > 0, vbar / torch.maximum(v, 1e-3 * vbar).clamp_min(1e-30), torch.ones_like(v))
    return torch.where(m, w, torch.zeros_like(w))


#: white probe images of `mean_gain` (a fixed seed: every run scales its loss alike)
GAIN_PROBES = 4


def mean_gain(op) -> float:
    """g = ‖K‖_F²/n = E‖K b‖²/n over white images b, uniform on the sphere ‖b‖² = n (Hutchinson,
    `GAIN_PROBES` fixed probes; exactly 1 for K = I): the mean squared singular value of K;
    remembered per operator (`remembered`)."""
    def compute() -> float:
        b = torch.randn(GAIN_PROBES, 1, *op.in_shape, generator=torch.Generator().manual_seed(0))
        b = b / b.flatten(1).pow(2).mean(1).sqrt().reshape(-1, 1, 1, 1)
        kb = _real(op(b))
        return float((kb * kb).sum()) / b.numel()

    return op.remembered(("mean-gain", GAIN_PROBES), compute)


def _scale(x_hat: torch.Tensor, physics: Physics) -> float:
    """‖K‖_F² = n·g: a measurement-space squared error divided by it reads in image MSE units."""
    return float(x_hat[0].numel()) * mean_gain(physics.operator)


def measurement_consistency(x_hat: torch.Tensor, y: torch.Tensor, physics: Physics,
                            scale_by: Physics | None = None) -> torch.Tensor:
    """‖K x̂ − y‖²_W / ‖K‖_F² per image ``[B]`` (W = `noise_weights`; module docstring).

    `scale_by`: the physics whose ‖K‖_F² scales the loss (default `physics`). Reusable by any
    method fitting x̂ to y, e.g. a per-image prior's early stopping.
    """
    r = _real(physics.operator(x_hat.float()) - y)
    return _per_image(noise_weights(y, physics) * r * r) / _scale(x_hat, scale_by or physics)


def sure(call: Call, y: torch.Tensor, physics: Physics, x_hat: torch.Tensor, probes: Sequence[torch.Generator],
         eps: float = 0.01) -> torch.Tensor:
    """SURE of ‖K(x̂ − x)‖² / ‖K‖_F² per image ``[B]`` for Gaussian noise of known variance,
    x̂ = call(y, physics) given; one Monte-Carlo probe per image from `probes` (module docstring)."""
    op = physics.operator
    v, m = _variance(y, physics)
    ry = _real(y)
    b = torch.stack([torch.randn(ry.shape[1:], generator=g) for g in probes]).to(ry.device) * m
    shape = (-1, *([1] * (v.dim() - 1)))
    count = _per_image(m.float()).clamp_min(1)
    step = eps * (_per_image(v) / count).sqrt()
    step = torch.where(step > 0, step, torch.ones_like(step)).reshape(shape)
    yb = ry + step * b
    yb = torch.view_as_complex(yb.contiguous()) if y.is_complex() else yb
    kx = _real(op(x_hat.float()))
    kxb = _real(op(call(yb, physics).float()))
    r = kx - ry
    div = _per_image(v * b * (kxb - kx) / step)
    return (_per_image(r * r) - _per_image(v) + 2 * div) / _scale(x_hat, physics)


def sure_available(physics: Physics, probe_shape: Sequence[int] | None = None) -> bool:
    """Whether the noise model is Gaussian of a known σ per image (SURE is unbiased only then):
    asked of the noise model (`sigma` is None where σ is unknown or the noise not Gaussian)."""
    op = physics.operator
    probe = torch.ones(1, 1, *(probe_shape or op.out_shape))
    return physics.noise.sigma(probe, op.measured()) is not None


class SelfSupervised:
    """The loss of a run trained from y alone (``training.supervision``); see the module docstring.

    Called as ``loss(call, y, physics, split, step, ids)`` → per-image values ``[B]``, with
    ``call(y, physics)`` the reconstructor x̂ = f_Θ(y, K) (gradients on), `split` ``train`` or
    ``val``, `step` the optimizer step (0 for validation batches, told apart by `ids`) and `ids`
    the samples' indices (each image's own noise and probe draws).
    """

    def __init__(self, kind: str, group: str = "rotations", ei_weight: float = 1.0, sure_eps: float = 0.01,
                 seed: int = 0):
        if kind not in SUPERVISIONS or kind == "x":
            raise ValueError(f"unknown self-supervised loss {kind!r}; available: {', '.join(SUPERVISIONS[1:])}")
        self.kind, self.group, self.ei_weight, self.sure_eps, self.seed = kind, group, float(ei_weight), \
            float(sure_eps), int(seed)
        self._splits: OrderedDict[int, tuple[Any, list]] = OrderedDict()

    @classmethod
    def from_config(cls, config) -> "SelfSupervised | None":
        """The loss `config.training` asks for; None for supervised training (``supervision: x``)."""
        tc = config.training
        if tc.supervision == "x":
            return None
        return cls(tc.supervision, tc.ei_group, tc.ei_weight, tc.sure_eps, config.seed)

    def describe(self) -> dict:
        """What model.json records (``supervision``)."""
        d: dict[str, Any] = {"loss": self.kind, "reads_x": False}
        if self.kind == "ei":
            d.update(group=self.group, weight=self.ei_weight)
        if self.kind == "sure":
            d.update(eps=self.sure_eps)
        return d

    # ------------------------------------------------------------------ what a task can serve
    def check(self, physics: Physics, recon: torch.nn.Module | None = None) -> None:
        """A one-line ValueError when this loss cannot serve the task (module docstring)."""
        op = physics.operator
        name = op.name or type(op).__name__
        if recon is not None and not any(p.requires_grad for p in recon.parameters()):
            raise ValueError(f"training.supervision {self.kind}: the model has no parameters to learn from y "
                             "(what it fits before training reads x); use a trainable model")
        if self.kind == "sure" and not sure_available(physics):
            raise ValueError(f"training.supervision sure needs Gaussian noise of a known σ (SURE is unbiased only "
                             f"then); noise '{physics.noise.name}' is not: use mc (weighted by its variance), ei or "
                             f"split")
        if self.kind == "ei":
            groups = op.transform_groups()
            if self.group not in groups:
                have = f"only {', '.join(groups)}" if groups else "none"
                raise ValueError(f"training.ei_group {self.group}: operator '{name}' does not declare it (its images "
                                 f"stay images of the task under {have}); choose one it declares")
        if self.kind == "split" and splittable(op) is not None:
            raise ValueError(f"training.supervision split: {splittable(op)}; use mc, ei or sure")

    # ------------------------------------------------------------------ randomness
    def _generator(self, split: str, step: int, *more: int) -> torch.Generator:
        return torch.Generator().manual_seed(mix_seed(self.seed, SELFSUP_STREAM, split_code(split), int(step), *more))

    def _noisy(self, y_clean: torch.Tensor, physics: Physics, gens: Sequence[torch.Generator]) -> torch.Tensor:
        mask = physics.operator.measured()
        return torch.cat([physics.noise.apply(y_clean[k:k + 1], g, mask) for k, g in enumerate(gens)])

    def _halves(self, op) -> list:
        """[(K_A, take_A), (K_B, take_B)]: the units of K split in two interleaved halves (cached per K)."""
        hit = self._splits.get(id(op))
        if hit is not None and hit[0] is op:
            self._splits.move_to_end(id(op))
            return hit[1]
        halves = interleaved_halves(op)
        self._splits[id(op)] = (op, halves)
        while len(self._splits) > SPLIT_CACHE:
            self._splits.popitem(last=False)
        return halves

    # ------------------------------------------------------------------ the loss
    def __call__(self, call: Call, y: torch.Tensor, physics: Physics, split: str, step: int,
                 ids: Sequence[int]) -> torch.Tensor:
        ids = [int(i) for i in ids]
        if self.kind == "split":
            g = self._generator(split, step)
            halves = self._halves(physics.operator)
            first = int(torch.randint(0, 2, (1,), generator=g))
            k_in, take_in = halves[first]
            x_hat = call(take_in(y), Physics(k_in, physics.noise))
            return measurement_consistency(x_hat, y, physics)  # the held-out half and the input half
        x_hat = call(y, physics)
        mc = measurement_consistency(x_hat, y, physics)
        if self.kind == "mc":
            return mc
        if self.kind == "sure":
            return sure(call, y, physics, x_hat, [self._generator(split, step, i) for i in ids], self.sure_eps)
        g = draw_transform(self.group, tuple(x_hat.shape), self._generator(split, step))
        x2 = apply_transform(self.group, g, x_hat.float())
        y2 = self._noisy(physics.operator(x2), physics, [self._generator(split, step, i) for i in ids])
        x3 = call(y2, physics).float()
        return mc + self.ei_weight * _per_image((x3 - x2) ** 2) / float(x2[0].numel())

    def sure_estimate(self, call: Call, y: torch.Tensor, physics: Physics, step: int, ids: Sequence[int],
                      split: str = "val") -> torch.Tensor | None:
        """SURE of ‖K(x̂ − x)‖²/‖K‖_F² per image (the MSE for K = I), or None where SURE is not
        valid for the noise (validation reports it beside the loss)."""
        if not sure_available(physics):
            return None
        x_hat = call(y, physics)
        return sure(call, y, physics, x_hat, [self._generator(split, step, int(i), 1) for i in ids], self.sure_eps)


__all__ = ["SUPERVISIONS", "SelfSupervised", "mean_gain", "measurement_consistency", "noise_weights", "sure",
           "sure_available"]
