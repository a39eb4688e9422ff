"""A size curriculum: the first training steps on smaller images, with K rebuilt for their size.

``training.curriculum: {size: s, steps: n}``: for the first n optimizer steps each minibatch's
images x (the task's size N) are area-averaged down to x_s (s × s), the minibatch's physics is
rebuilt for s² images (`invmap.physics.resized_physics`: the same acquisition — views, detector
covering the image, noise model — at that size), and

    y_s = K_s x_s + e,   z = P(y_s, K_s),   loss ℓ(f_Θ(z, K_s), x_s)

is simulated per minibatch (on the s² grid itself; new noise every step, seeded by the run's
seed and the step, so a resumed run draws the same). Validation, checkpoints and the saved
model stay at N². A denoiser pass on 64² images costs about a quarter of one on 128², so the
K-inside kinds (`invmap.models.unfolded`, lpd, lgd) take four times the steps per CPU-minute;
the weights of a fully convolutional network and K-inside kind apply at every size. Whether
what is learned at s² transfers depends on the task: the acquisition is kept, not its
difficulty — 60 CT views sample a 64² image nearly fully but a 128² one sparsely, and on the
default task 8 unfolded steps at 64² lowered the 128² validation PSNR (34.77 → 34.21 dB) where
8 steps at 128² raised it (34.91; BENCHMARKS.md).
"""

from __future__ import annotations

import json
from typing import Any

import torch
import torch.nn.functional as F

from ..config import Config
from ..physics import resized_physics


class Curriculum:
    """The first `steps` steps on `size`² images (see the module docstring)."""

    def __init__(self, config: Config, recon: Any):
        c, d, tc = config.training.curriculum, config.data, config.training
        self.size, self.steps, self.seed, self.recon = int(c.size), int(c.steps), int(config.seed), recon
        if not self.size < d.size:
            raise ValueError(f"training.curriculum.size must be below data.size ({d.size}) to make training "
                             f"cheaper, got {self.size}")
        if tc.supervision != "x" or d.measurements:
            raise ValueError("training.curriculum needs the images x (it simulates y at the smaller size); "
                             f"supervision {tc.supervision!r}{' from given measurements' if d.measurements else ''} "
                             "has none")
        net = getattr(recon, "net", None)
        if net is not None and not getattr(net, "any_size", True):
            raise ValueError(f"training.curriculum: the network '{getattr(net, 'model_name', type(net).__name__)}' "
                             f"has a fixed input size; its weights at {self.size}² would not apply at {d.size}²")
        self._physics: dict[str, Any] = {}

    def active(self, step: int) -> bool:
        """Whether optimizer step `step` (0-based) trains at the smaller size."""
        return step < self.steps

    def physics(self, physics: Any) -> Any:
        """`physics` rebuilt for ``size``² images (each distinct one built once)."""
        spec = physics.spec()
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in self._physics:
            self._physics[key] = resized_physics(spec, (self.size, self.size))
        return self._physics[key]

    @torch.no_grad()
    def batch(self, x: torch.Tensor, physics: Any, step: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(z, x_s, K_s) of a minibatch at the smaller size: x_s area-averaged, y_s = K_s x_s + e."""
        xs = F.interpolate(x.float(), size=(self.size, self.size), mode="area")
        ps = self.physics(physics)
        gen = torch.Generator(device=x.device).manual_seed(self.seed * 1_000_003 + step)
        y = ps.noisy(ps.operator(xs), gen)
        return self.recon.preprocess(y, ps), xs, ps


__all__ = ["Curriculum"]
