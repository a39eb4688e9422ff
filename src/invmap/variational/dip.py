"""``dip``: the deep image prior — an untrained network fitted to one measurement, stopped early.

Ulyanov, Vedaldi & Lempitsky, "Deep image prior", CVPR 2018. No training set: for each
measurement y of y = K x + e, x̂ = f_Θ̂(z) with f an untrained U-Net (`invmap.models.unet`, no
global skip), z a fixed random input (``width`` channels, uniform in [0, 0.1)) and Θ fitted by
Adam (rate ``lr``) to the data term alone, weighted by the noise model:

    L(Θ) = ½ Σ_i w_i |(K f_Θ(z) − y)_i|²,   w_i = 1 / max(Var(e_i), 10⁻³·mean Var(e))

over the measured entries (`LinearOperator.measured`), Var(e_i) the noise model's variance with
y standing in for K x (`invmap.noise`; w = 1 where it has none). The architecture is the prior:
a convolutional network fits the image's structure long before it fits the noise, so the fit is
stopped — by a rule that reads y and the noise model only, never x (``stop``):

- ``discrepancy`` (Morozov): the first step k with ‖K x_k − y‖² ≤ τ·E‖e‖², E‖e‖² = Σ_i Var(e_i)
  (= τ·m·σ² for white Gaussian noise of std σ on m measured entries; ``tau`` = τ). It assumes
  the noise model is the data's: a σ too large stops early (too smooth), too small late (noise
  fitted), and with E‖e‖² = 0 (no noise) it never stops.
- ``variance`` (ES-WMV, Wang et al., "Early stopping for deep image prior", TMLR 2023): the
  windowed moving variance of the iterates VAR_k = (1/W) Σ_{j<W} ‖x_{k−j} − x̄_k‖², x̄_k their
  mean over the window of W = ``window`` steps, falls while the network fits structure and rises
  once it fits noise; stop ``patience`` steps after its lowest value (a new low counts when it is
  1% below the last, so a plateau — noise-free data, where the iterates settle — stops too) and
  return the iterate there. It needs no σ; it assumes that U-shaped curve (a fit that keeps
  changing at a steady rate — a too-high ``lr`` — never shows a minimum and runs to ``steps``).
- ``auto`` (default): ``discrepancy`` where the noise model gives E‖e‖² > 0, else ``variance``.
- ``steps``: no rule, all ``steps``.

The rules are `invmap.variational.stopping` (shared with a trained map adapted to one scan,
`invmap.training.adapt`). Every rule is bounded by ``steps`` and by ``seconds`` per image, and ends where the data are
fitted to float32 precision, ‖K x − y‖² ≤ 10⁻⁶‖y‖² (``history`` records per image which one
ended the fit, the step, the misfit and its target, the seconds: a cut fit is said to be one).
Deterministic: z and Θ₀ come from ``seed`` alone, the same for every image of a batch, so an
image's x̂ does not depend on the batch it arrives in — except where ``seconds`` ends a fit, which
depends on the machine's speed. The images are fitted one after another, each its own network
(not batched: the per-image stop and the time budget are per image). The network: `network`. A fit that runs for more than `PROGRESS_SECONDS` reports its progress
through ``progress`` (stderr by default; None: silent).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Annotated, Callable, Literal

import torch
from pydantic import Field

from .. import budget, models
from .methods import METHODS, Method
from .stopping import EarlyStopping, expected_misfit, rule_for, squared_residual

#: the most Adam steps one image may take (one step of the default network on a 128² CT image took
#: 0.16 s on one thread of the loaded 2-core CPU: the bound is hours, not days)
MAX_STEPS = 100_000
#: the widest network (channels at the finest scale): width 128 at depth 6 is ~100 M parameters
MAX_WIDTH = 128
#: the most U-Net scales (each halves H and W)
MAX_DEPTH = 6
#: the longest fit of one image, in seconds (a day)
MAX_SECONDS = 86_400.0
#: the window W and the patience of the variance rule, in steps
MAX_WINDOW = 10_000
#: a fit that has run this long (seconds) reports its progress, then every `PROGRESS_EVERY` seconds
PROGRESS_SECONDS = 5.0
PROGRESS_EVERY = 10.0
#: full-size maps of ``width`` channels one fit holds, about (activations and gradients of a U-Net block
#: pair, encoder and decoder, all scales): what `invmap.budget.check` is asked for before a fit
ACTIVATIONS = 24
#: the last layer's initial weights are scaled by this: the normalised features make f_Θ₀(z) a random
#: image of unit size otherwise, mostly in the null space of a smoothing K (blur), where the data term
#: cannot see it (measured on 16² deblurring: the discrepancy held after ~30 steps at 5 dB; at 0.01,
#: after ~20 steps at 22 dB)
OUTPUT_SCALE = 0.01
Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]
Rate = Annotated[float, Field(gt=0, le=1)]
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]
Depth = Annotated[int, Field(ge=1, le=MAX_DEPTH)]
Tau = Annotated[float, Field(gt=0, le=100)]
Window = Annotated[int, Field(ge=2, le=MAX_WINDOW)]
Patience = Annotated[int, Field(ge=1, le=MAX_WINDOW)]
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
Seed = Annotated[int, Field(ge=0, le=2 ** 63 - 1)]


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@METHODS.register("dip")
class DeepImagePrior(Method):
    """Deep image prior: an untrained U-Net f_Θ(z) fitted to each y by Adam, stopped by the discrepancy or variance rule."""

    learned = False  # nothing is learned from a training set: Θ is fitted to the one y it reconstructs

    def __init__(self, steps: Steps = 3000, lr: Rate = 0.01, width: Width = 16, depth: Depth = 4,
                 stop: Literal["auto", "discrepancy", "variance", "steps"] = "auto", tau: Tau = 1.0,
                 window: Window = 50, patience: Patience = 200, seconds: Seconds = 60.0, seed: Seed = 0):
        super().__init__()
        for name, v, lo, hi in (("steps", steps, 1, MAX_STEPS), ("width", width, 1, MAX_WIDTH),
                                ("depth", depth, 1, MAX_DEPTH), ("window", window, 2, MAX_WINDOW),
                                ("patience", patience, 1, MAX_WINDOW)):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"dip: {name} must be an integer in [{lo}, {hi}], got {v!r}")
        for name, v, hi in (("lr", lr, 1.0), ("tau", tau, 100.0), ("seconds", seconds, MAX_SECONDS)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= hi:  # NaN fails too
                raise ValueError(f"dip: {name} must be a number in (0, {hi:g}], got {v!r}")
        if stop not in ("auto", "discrepancy", "variance", "steps"):
            raise ValueError(f"dip: stop must be one of auto, discrepancy, variance, steps, got {stop!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"dip: seed must be an integer >= 0, got {seed!r}")
        self.steps, self.lr, self.width, self.depth = steps, float(lr), width, depth
        self.stop, self.tau, self.window, self.patience = stop, float(tau), window, patience
        self.seconds, self.seed = float(seconds), seed
        #: where progress goes (a fit longer than `PROGRESS_SECONDS`); None: nowhere
        self.progress: Callable[[str], None] | None = _to_stderr

    # ------------------------------------------------------------------ the pieces
    def network(self) -> torch.nn.Module:
        """f_Θ₀: a U-Net of ``depth`` scales, ``width`` → 1 channels, batch norm and leaky ReLU as
        Ulyanov et al.'s, Θ₀ drawn from ``seed`` alone (the global random state is left as it was).
        Batch norm over one image normalises each channel over its pixels; without it the fit of
        sparse-view CT stalled (measured on a validation image of the default task: 19.6 dB after
        200 Adam steps at rate 10⁻³, misfit 700× its target, against 22.0 dB and 600× after 400 steps
        at 10⁻² with it)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = models.build("unet", depth=self.depth, base_channels=self.width, in_channels=self.width,
                               out_channels=1, activation="leaky_relu", norm="batch", residual=False)
        with torch.no_grad():  # start near x = 0, not at a unit-size random image (see `OUTPUT_SCALE`)
            net.out.weight.mul_(OUTPUT_SCALE)
        return net

    def input(self, shape: tuple[int, int]) -> torch.Tensor:
        """z ``[1, width, H, W]``, uniform in [0, 0.1), drawn from ``seed`` alone."""
        g = torch.Generator().manual_seed(self.seed)
        return 0.1 * torch.rand((1, self.width) + tuple(shape), generator=g)

    def expected_misfit(self, y: torch.Tensor, physics) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(E‖e‖² per image or None where the noise model has no variance, the weights w of the data term):
        `invmap.variational.stopping.expected_misfit`."""
        return expected_misfit(y, physics)

    def rule(self, expected: float | None) -> str:
        """The stopping rule this image gets (``auto``: discrepancy when E‖e‖² > 0, else variance)."""
        return rule_for(self.stop, expected)

    # ------------------------------------------------------------------ the fit
    def _run(self, y, physics, x0, callback):
        op = physics.operator
        if len(op.in_shape) != 2:
            raise ValueError(f"dip reconstructs 2-D images, but operator '{op.name}' has images "
                             f"[{', '.join(map(str, op.in_shape))}]")
        h, w = op.in_shape
        # what one fit holds: the U-Net's activations and their gradients (about ACTIVATIONS maps of
        # ``width`` channels at full size, summed over the scales) and the variance rule's window
        budget.check(4 * h * w * (ACTIVATIONS * self.width + self.window), f"dip: a fit of a {h}×{w} image at width "
                     f"{self.width} with a window of {self.window} iterates")
        expected, weights = self.expected_misfit(y, physics)
        mask = op.measured()
        if self.stop == "discrepancy" and (expected is None or not bool((expected > 0).all())):
            raise ValueError("dip: stop=discrepancy needs a noise level: the noise model gives "
                             f"{'no variance' if expected is None else 'E‖e‖² = 0'}; use stop=variance")
        self.history = []
        out = []
        for i in range(y.shape[0]):
            e_i = None if expected is None else float(expected[i])
            x_i, record = self.fit(y[i:i + 1], physics, weights[i:i + 1], e_i, mask, f"image {i + 1} of {y.shape[0]}",
                                   callback if y.shape[0] == 1 else None)
            out.append(x_i)
            self.history.append({"image": i, **record})
        return torch.cat(out)

    def fit(self, y: torch.Tensor, physics, weights: torch.Tensor, expected: float | None,
            mask: torch.Tensor | None, what: str = "image",
            callback: Callable[[int, torch.Tensor], object] | None = None) -> tuple[torch.Tensor, dict]:
        """Fit Θ to one measurement y ``[1, ...]``; returns (x̂ ``[1, 1, H, W]``, what happened)."""
        op = physics.operator
        h, w = op.in_shape
        net = self.network().to(y.device).train()
        z = self.input((h, w)).to(y.device)
        wt = weights.to(y.device, torch.float32)
        keep = None if mask is None else mask.to(y.device)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        energy = float((y.abs() ** 2 if keep is None else torch.where(keep, y.abs() ** 2, torch.zeros_like(y.real)))
                       .double().sum())  # ‖y‖² over the measured entries
        stop = EarlyStopping(self.stop, expected, energy, self.tau, self.window, self.patience, self.seconds)
        last_said = stop.t0
        misfit, x = math.nan, None
        k = 0
        with torch.enable_grad():
            for k in range(1, self.steps + 1):
                opt.zero_grad(set_to_none=True)
                x = net(z)
                sq = squared_residual(x, y, op, keep)
                misfit = float(sq.detach().double().sum())  # ‖K x_k − y‖² of the iterate x_k = f_Θk(z)
                x = x.detach()
                if callback is not None:
                    callback(k, x)
                if stop.should_stop(k, x, misfit):
                    break
                (0.5 * (wt * sq).sum()).backward()
                opt.step()
                if stop.out_of_time():
                    break
                now = time.perf_counter()
                if self.progress is not None and stop.elapsed() > PROGRESS_SECONDS and now - last_said > PROGRESS_EVERY:
                    last_said = now
                    target = f" (target ≤ {stop.target:.4g})" if stop.rule == "discrepancy" else ""
                    self.progress(f"dip: {what}, step {k} of at most {self.steps}, ‖Kx − y‖² = {misfit:.4g}{target}, "
                                  f"{stop.elapsed():.0f} s")
        x, returned = stop.returned(x, k)
        if returned != k:  # the variance rule's iterate, where VAR_k was lowest
            misfit = float(squared_residual(x, y, op, keep).double().sum())
        record = {"rule": stop.rule, "stopped_by": stop.stopped_by, "steps": k, "returned_step": returned,
                  "misfit": misfit, "expected_misfit": expected, "seconds": round(stop.elapsed(), 3)}
        return x.float(), record

    def record(self) -> dict:
        """What ran: settings, and per image of the last call how its fit ended."""
        out = super().record()
        if self.history:
            out["fits"] = list(self.history)
        return out


__all__ = ["DeepImagePrior", "MAX_STEPS", "MAX_WIDTH", "MAX_DEPTH"]
