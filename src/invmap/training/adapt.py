"""Test-time adaptation: a trained map fine-tuned to the measurements at hand, x never seen.

A reconstructor f_Θ trained for one acquisition fails outside it (fewer views, a shorter arc, a
shifted detector): the stress study's red cells. Given measurements y = K x + e of the scan at
hand and that scan's own physics (K, e), a *copy* f_Θ' of the trained map, Θ' ← Θ, is fitted by
Adam to a loss that reads y alone (`invmap.selfsup`; Darestani, Liu & Heckel 2022, test-time
training for accelerated MRI; Gilton, Ongie & Willett 2021, model adaptation under a changed
forward model):

- ``mc``: ‖K f_Θ'(y) − y‖²_W / ‖K‖_F² — measurement consistency, blind to the null space of K;
- ``ei``: mc + ‖T_g x̂ − f_Θ'(K T_g x̂ + e')‖²/n, g from a transform group K declares
  (``K.transform_groups()``): the rotated data show K's null space from other directions;
- ``sure``: Stein's unbiased risk estimate of ‖K(x̂ − x)‖²/‖K‖_F², for Gaussian noise of known σ;
- ``auto`` (default): ``ei`` with the first group K declares, ``mc`` where it declares none.

Θ starts at the trained weights, so the fit starts at the unadapted x̂ and is stopped by the deep
image prior's rules (`invmap.variational.stopping`, read from y and the noise model only): by
default the discrepancy principle ‖K x̂ − y‖² ≤ τ·s·(E‖e‖² + f²‖y‖²) summed over the batch, f the
relative misfit the map leaves at its training conditions and s the spread of its fits there (its trust
calibration, `home_fit`; f = 0, s = 1 without one) — at the training conditions a good map is there already, and is returned unchanged after its
first look — else the variance rule; bounded by ``steps`` and ``seconds``. Adam's rate warms up over
`WARMUP` steps. The whole batch adapts one copy (one adaptation
per set of measurements of one scan, amortised over its images); batch norm keeps its running
statistics (the copy stays in eval mode). The saved model is never touched.

Divergence is not returned as an image: a non-finite loss or x̂, a loss above `RISE` times its
first value, or an adapted x̂ whose misfit ‖K x̂ − y‖² ended above the unadapted one's leaves
the unadapted x̂, with a note saying why (`Adaptation.note`).

`adapt(recon, y, physics, settings)` → `Adaptation` (x̂, the adapted copy, what happened);
`Adapted(model, settings, images)` is the method of an evaluation or a stress study (``adapted`` in
`invmap.evaluation.resolve.RUN_METHODS`): one adaptation per test condition, on its first ``images``
measurements, the adapted copy then reconstructing all of them.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable, Mapping

import torch

from .. import budget
from ..selfsup import SelfSupervised, sure_available
from ..variational.stopping import RULES, EarlyStopping, expected_misfit, squared_residual
from .checks import _activation_bytes

#: the most Adam steps one adaptation may take
MAX_STEPS = 10_000
#: the learning rates allowed: Adam on trained weights; above 0.1 it throws them away in a step
MIN_LR, MAX_LR = 1e-7, 0.1
#: the longest adaptation, in seconds (a day)
MAX_SECONDS = 86_400.0
#: the losses `adapt` offers (module docstring)
LOSSES = ("auto", "mc", "ei", "sure")
#: the variance rule's window and patience, in steps (`invmap.variational.stopping`; adaptation starts from a
#: trained map, so it needs fewer steps than the deep image prior's fit from scratch: 50 and 200 there)
WINDOW, PATIENCE = 10, 20
#: Adam's rate rises linearly to ``lr`` over this many steps: its first step moves every weight by about lr
#: whatever the gradient, which threw a trained map off its minimum at once (the loss ×27–45 after one step)
WARMUP = 5
#: the discrepancy target allows the model's data fit at home up to this many spreads above its median
HOME_Z = 2.0
#: a loss above this many times its first value has diverged (the unadapted x̂ is returned)
RISE = 10.0
#: an adaptation that has run this long (seconds) reports its progress, then every `PROGRESS_EVERY` s
PROGRESS_SECONDS = 5.0
PROGRESS_EVERY = 10.0


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Settings:
    """How to adapt: at most ``steps`` Adam steps at rate ``lr`` on ``loss``, stopped by ``stop``
    (`invmap.variational.stopping`: discrepancy target τ = ``tau``), within ``seconds``; the loss's
    random draws (EI's g and fresh noise, SURE's probe) from ``seed``. Out-of-range values are a
    one-line ValueError naming the allowed range. The rate: on ``pretrained:unet-ct`` at 15 views
    (2 images, ei) 10⁻³ diverged at the first step (the loss ×27), 3·10⁻⁴ gained 1.3 dB in 20 steps
    (`benchmarks/adapt.py`, BENCHMARKS.md)."""

    steps: int = 100
    lr: float = 3e-4
    loss: str = "auto"
    stop: str = "auto"
    tau: float = 1.0
    seconds: float = 600.0
    seed: int = 0

    def __post_init__(self) -> None:
        s = self.steps
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_STEPS:
            raise ValueError(f"adaptation steps must be an integer in [1, {MAX_STEPS}], got {s!r}")
        for name, v, lo, hi in (("learning rate", self.lr, MIN_LR, MAX_LR), ("tau", self.tau, 1e-3, 100.0),
                                ("seconds", self.seconds, 1e-3, MAX_SECONDS)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:  # NaN fails too
                raise ValueError(f"adaptation {name} must be a number in [{lo:g}, {hi:g}], got {v!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"adaptation loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.stop not in RULES:
            raise ValueError(f"adaptation stop must be one of {', '.join(RULES)}, got {self.stop!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"adaptation seed must be an integer >= 0, got {self.seed!r}")


@dataclass
class Adaptation:
    """What `adapt` did: ``x`` the x̂ returned ``[B, 1, H, W]`` (the unadapted one where ``adapted`` is
    False), ``model`` the map that made it (the adapted copy, or the given map), and the record."""

    x: torch.Tensor
    model: Any
    adapted: bool
    loss: str
    steps: int
    stopped_by: str
    misfit_before: float
    misfit: float
    expected_misfit: float | None
    target: float | None
    seconds: float
    images: int
    floor: float = 0.0
    note: str | None = None
    losses: list[float] = field(default_factory=list)

    def record(self) -> dict:
        """JSON-able: everything but the images and the model."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("x", "model", "losses")} | {
            "loss_first": self.losses[0] if self.losses else None, "loss_last": self.losses[-1] if self.losses else None}

    def describe(self) -> str:
        """One line: what was adapted, for how many steps, and why it stopped."""
        what = f"{self.images} measurement{'s' if self.images != 1 else ''}"
        target = f" ≤ target {self.target:.4g}" if self.target is not None and self.stopped_by == "discrepancy" else ""
        misfit = f"‖Kx − y‖² {self.misfit_before:.4g} → {self.misfit:.4g}{target}"
        if self.note is not None:
            return (f"adapt: the unadapted x̂ kept after {self.steps} step{'s' if self.steps != 1 else ''} on {what} "
                    f"(loss {self.loss}): {self.note}")
        if not self.adapted:
            return (f"adapt: nothing to adapt on {what}: the trained map's x̂ already meets the {self.stopped_by} "
                    f"rule ({misfit}); the unadapted x̂ kept")
        return (f"adapt: a copy of the trained map fine-tuned on {what} for {self.steps} Adam "
                f"step{'s' if self.steps != 1 else ''} (loss {self.loss}), stopped by {self.stopped_by}; {misfit}; "
                f"{self.seconds:.1f} s")


def trainable(recon: Any) -> list[torch.nn.Parameter]:
    """The parameters a map can be adapted through (none: not adaptable)."""
    params = getattr(recon, "parameters", None)
    if not callable(params):
        return []
    return [p for p in params() if p.requires_grad]


def check_adaptable(recon: Any, what: str = "the method") -> None:
    """A one-line ValueError when `recon` has no weights to adapt (a variational method, a callable)."""
    if not trainable(recon):
        raise ValueError(f"cannot adapt {what}: it has no trained weights to fine-tune (adaptation fits a trained "
                         "network's parameters; a variational method or an outside callable has none)")


def weights_copy(recon: torch.nn.Module) -> torch.nn.Module:
    """A copy of `recon` with parameters and buffers of its own; what it merely refers to (its training
    physics, its trust calibration: plain attributes that are neither tensors nor modules) is shared,
    not copied (an operator's sparse matrix cannot be deep-copied, and is not adapted)."""
    memo: dict[int, Any] = {}
    for m in recon.modules():
        for k, v in vars(m).items():
            if not k.startswith("_") and not isinstance(v, (torch.Tensor, torch.nn.Module, int, float, str, bool)) \
                    and v is not None:
                memo[id(v)] = v
    return copy.deepcopy(recon, memo)


def loss_for(settings: Settings, physics: Any, recon: Any) -> tuple[SelfSupervised, str]:
    """(the self-supervised loss, its name as printed) for `settings.loss` on this physics; one-line
    ValueErrors where the task cannot serve it (`SelfSupervised.check`)."""
    kind, groups = settings.loss, physics.operator.transform_groups()
    if kind == "auto":
        kind = "ei" if groups else "mc"
    if kind == "sure" and not sure_available(physics):
        raise ValueError(f"adaptation loss sure needs Gaussian noise of a known σ; noise '{physics.noise.name}' is "
                         "not: use mc or ei")
    if kind == "ei" and not groups:
        name = physics.operator.name or type(physics.operator).__name__
        raise ValueError(f"adaptation loss ei: operator '{name}' declares no transform group its images stay "
                         "images under; use mc")
    loss = SelfSupervised(kind, group=groups[0] if groups else "rotations", seed=settings.seed)
    loss.check(physics, recon)
    return loss, f"{kind} ({groups[0]})" if kind == "ei" else kind


def memory_bytes(recon: Any, y: torch.Tensor, physics: Any, calls: int) -> int:
    """What one adaptation step holds, about: the parameters four times (weights, gradients, two Adam
    moments) and the activations of `calls` calls on the batch, counted on the meta device."""
    params = budget.tensor_bytes(recon)
    net = getattr(recon, "net", None)
    if isinstance(net, torch.nn.Module) and hasattr(recon, "input_shape"):
        acts = _activation_bytes(net, (y.shape[0], *recon.input_shape(physics)))
    else:
        blocks = getattr(recon, "trained_blocks", lambda _p: [])(physics)
        acts = sum(_activation_bytes(b, (y.shape[0], *shape)) for b, shape in blocks)
    iterates = WINDOW * y.shape[0] * math.prod(physics.operator.in_shape)  # the variance rule's window
    return 4 * params + calls * acts + 4 * iterates + 8 * y.numel() * (2 if y.is_complex() else 1)


def home_fit(score: Mapping[str, Any] | None) -> tuple[float, float]:
    """(f, s) of a map's trust calibration `score` at its training conditions (the ``score`` of its record,
    `invmap.trust.fitted.Fitted`): f the relative model error it leaves there (``floor``) and s the upper end
    of its data fit there, s = exp(2(m + `HOME_Z`·σ)) with m, σ the median and spread of log ρ_home,
    ρ_home = ‖K x̂ − y‖/√(E‖e‖² + f²‖y‖²) (`invmap.trust.diagnostics`); (0, 1) without a calibration. A fit
    to ‖K x̂ − y‖² ≤ s·(E‖e‖² + f²‖y‖²) is as close as the model's fits at home."""
    f = model_floor(score)
    try:
        m, sd = float(score["home"]["median"]), float(score["home"]["spread"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return f, 1.0
    scale = math.exp(2.0 * (m + HOME_Z * sd))
    return f, scale if math.isfinite(scale) and scale > 0 else 1.0


def model_floor(score: Mapping[str, Any] | None) -> float:
    """f: the relative model error ‖K x̂ − y‖ a map leaves beyond the noise at its training conditions
    (``floor`` of its calibration `score`, `invmap.trust.diagnostics.residual_floor`); 0 without one."""
    try:
        f = float(score["floor"]) if score is not None else 0.0
    except (KeyError, TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) and f > 0 else 0.0


def _checked(recon: Any, y: torch.Tensor, physics: Any, settings: Settings) -> tuple[Any, str]:
    """(the loss, its name) of an adaptation of `recon` on y, after the one-line refusals: a map that
    cannot be adapted, a loss the task cannot serve, an empty batch, a fit over the memory budget."""
    check_adaptable(recon)
    loss_fn, loss_name = loss_for(settings, physics, recon)
    b = int(y.shape[0])
    if b == 0:
        raise ValueError("adaptation needs at least one measurement; got an empty batch")
    calls = 1 if loss_fn.kind == "mc" else 2
    budget.check(memory_bytes(recon, y, physics, calls), f"adapting the map on {b} measurement(s) of "
                 f"{'×'.join(map(str, physics.operator.out_shape))} (loss {loss_name})")
    return loss_fn, loss_name


def _stopping(y: torch.Tensor, physics: Any, settings: Settings, floor: tuple[float, float] | None
              ) -> tuple[EarlyStopping, float | None, torch.Tensor | None, float]:
    """(the stopping rule, E‖e‖² of y's noise or None, the measured entries of K or None, f): the
    discrepancy target τ·s·(E‖e‖² + f²‖y‖²) of `adapt` for (f, s) = `floor` ((0, 1): None)."""
    op = physics.operator
    expected, _ = expected_misfit(y.detach(), physics)
    total = None if expected is None else float(expected.sum())
    keep = None if op.measured() is None else op.measured().to(y.device)
    energy = float(squared_residual(torch.zeros((1, 1, *op.in_shape), device=y.device), y, op, keep).double().sum())
    f, scale = (0.0, 1.0) if floor is None else (float(floor[0]), float(floor[1]))
    allowed = total if not f > 0 else scale * ((total or 0.0) + f * f * energy)  # noise + model error at home
    stop = EarlyStopping(settings.stop, allowed, energy, settings.tau, window=WINDOW, patience=PATIENCE,
                         seconds=settings.seconds)
    return stop, total, keep, f


def _say_progress(progress: Callable[[str], None] | None, stop: EarlyStopping, settings: Settings, k: int,
                  misfit: float, t0: float, last_said: float) -> float:
    """One progress line for a fit running longer than `PROGRESS_SECONDS`, at most every `PROGRESS_EVERY`
    seconds; returns when the last line was said."""
    now = time.perf_counter()
    if progress is None or now - t0 <= PROGRESS_SECONDS or now - last_said <= PROGRESS_EVERY:
        return last_said
    target = f" (target ≤ {stop.target:.4g})" if stop.rule == "discrepancy" else ""
    progress(f"adapt: step {k} of at most {settings.steps}, ‖Kx − y‖² = {misfit:.4g}{target}, {now - t0:.0f} s")
    return now


def adapt(recon: Any, y: torch.Tensor, physics: Any, settings: Settings = Settings(),
          progress: Callable[[str], None] | None = _to_stderr, floor: tuple[float, float] | None = None
          ) -> Adaptation:
    """Fine-tune a copy of `recon` on the measurements y ``[B, ...]`` under `physics` (module docstring);
    `recon` itself is left as it was. Progress of a fit longer than `PROGRESS_SECONDS` goes to
    `progress` (None: silent). The discrepancy target is τ·s·(E‖e‖² + f²‖y‖²), (f, s) = `floor`
    (`home_fit` of the map's calibration record; None: (0, 1)): the misfit the map leaves at its training
    conditions, e.g. a simulation on a finer grid than K's — fitting y closer than the model does at home
    would fit that error, not x: on the default task, with s = 1, the training level's images lost 1.3 dB."""
    loss_fn, loss_name = _checked(recon, y, physics, settings)
    op, b = physics.operator, int(y.shape[0])
    model = weights_copy(recon)
    model.eval()  # batch norm keeps its running statistics; dropout is off
    params = trainable(model)
    opt = torch.optim.Adam(params, lr=settings.lr)
    stop, total, keep, f = _stopping(y, physics, settings, floor)
    t0 = last_said = time.perf_counter()
    seen: list[torch.Tensor] = []

    def call(yy: torch.Tensor, pp: Any) -> torch.Tensor:
        out = model(yy, pp)
        if yy is y:  # the x̂ of the step's own measurements (the loss computes it first)
            seen.append(out)
        return out

    x0, misfit0, x, misfit, losses, note, k = None, math.nan, None, math.nan, [], None, 0
    with torch.enable_grad():
        for k in range(1, settings.steps + 2):  # x_k: the iterate after k − 1 steps; the last one only looked at
            opt.zero_grad(set_to_none=True)
            seen.clear()
            try:
                loss = loss_fn(call, y, physics, "train", k, range(b)).mean()
            except ValueError:  # K refuses a non-finite x̂: the weights have overflowed
                if seen and not bool(torch.isfinite(seen[0]).all()):
                    note = f"the adaptation diverged at step {k - 1} (a non-finite x̂)"
                    break
                raise
            x = (seen[0] if seen else model(y, physics)).detach().float()
            value = float(loss.detach())
            misfit = float(squared_residual(x, y, op, keep).double().sum())
            if x0 is None:
                x0, misfit0 = x, misfit
            if not (math.isfinite(value) and math.isfinite(misfit) and bool(torch.isfinite(x).all())):
                note = f"the adaptation diverged at step {k - 1} (a non-finite loss or x̂)"
                break
            losses.append(value)
            if value > RISE * max(losses[0], 1e-30):
                note = f"the adaptation diverged: its loss rose from {losses[0]:.4g} to {value:.4g} at step {k - 1}"
                break
            if stop.should_stop(k, x, misfit) or k > settings.steps or stop.out_of_time():
                break
            loss.backward()
            for group in opt.param_groups:  # a linear warm-up: Adam's first steps move every weight by ~lr
                group["lr"] = settings.lr * min(1.0, k / WARMUP)
            opt.step()
            if not all(bool(torch.isfinite(p).all()) for p in params):
                note = f"the adaptation diverged at step {k} (non-finite weights)"
                break
            last_said = _say_progress(progress, stop, settings, k, misfit, t0, last_said)
    if note is None:
        x, returned = stop.returned(x, k)
        if returned != k:
            misfit = float(squared_residual(x, y, op, keep).double().sum())
        if misfit > misfit0:
            note = (f"the adapted x̂ fits y worse than the unadapted one (‖Kx − y‖² {misfit:.4g} against "
                    f"{misfit0:.4g}): the loss rose")
    steps_taken = k - 1  # x_k is the iterate after k − 1 steps
    seconds = round(time.perf_counter() - t0, 3)
    common = dict(loss=loss_name, steps=steps_taken, stopped_by=stop.stopped_by if note is None else "diverged",
                  misfit_before=misfit0, expected_misfit=total, target=stop.target, seconds=seconds, images=b,
                  floor=f, losses=losses)
    if note is not None:
        with torch.no_grad():
            x_un = recon(y, physics).detach().float() if x0 is None else x0
        return Adaptation(x_un, recon, False, misfit=misfit0 if math.isfinite(misfit0) else misfit, note=note, **common)
    return Adaptation(x, model, steps_taken > 0, misfit=misfit, **common)


class Adapted:
    """The method "the model adapted to each test condition": on the first call with a physics, a copy
    of the model is adapted (`adapt`) on the first ``images`` measurements of that call (all of them:
    None); every call with the same physics object — the other batches of one stress level or test
    set — reuses that copy, x̂ = f_Θ'(y). One adaptation per condition, x never seen. Learned; its
    trust calibration record (score, PSNR bound, pixel intervals) is the one of the model it wraps, fitted
    at the training conditions, unadapted (`invmap.evaluation.trust.calibrate` reaches the model through
    ``wraps``), so the stress study checks how far it carries; `with_records` rebuilds it with that record
    (`calibrated`), whose floor sets the adaptation's stopping target (`home_fit`)."""

    learned = True
    operator_inside = True

    def __init__(self, model: Any, settings: Settings = Settings(), images: int | None = None,
                 progress: Callable[[str], None] | None = None, floor: tuple[float, float] | None = None):
        check_adaptable(model, "this model")
        if images is not None and (isinstance(images, bool) or not isinstance(images, int) or images < 1):
            raise ValueError(f"adapted: images must be an integer >= 1 or None (all), got {images!r}")
        self.wraps, self.settings, self.images, self.progress, self.floor = model, settings, images, progress, floor
        self.history: list[dict] = []
        self._last: tuple[Any, Any] | None = None  # (the physics, the map adapted to it)

    @property
    def training_physics(self) -> Any:
        return getattr(self.wraps, "training_physics", None)

    def calibrated(self, record: Any, _reference: Any = None, _reference_name: str | None = None) -> "Adapted":
        """The same method with the wrapped model's calibration `record` (`invmap.trust.fitted.Fitted`):
        its floor sets the stopping target of every adaptation."""
        return Adapted(self.wraps, self.settings, self.images, self.progress, floor=home_fit(record.score))

    def __call__(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        if self._last is None or self._last[0] is not physics:
            done = adapt(self.wraps, y if self.images is None else y[:self.images], physics, self.settings,
                         self.progress, floor=self.floor)
            self.history.append(done.record())
            self._last = (physics, done.model)
        with torch.no_grad():
            return self._last[1](y, physics)

    def params(self) -> dict:
        return {**asdict(self.settings), "images": self.images}

    def record(self) -> dict:
        """What ran: the settings, and how each condition's adaptation ended."""
        return {"method": "adapted", "params": self.params(), "adaptations": list(self.history)}


__all__ = ["Adapted", "Adaptation", "Settings", "adapt", "check_adaptable", "loss_for", "trainable", "LOSSES",
           "MAX_STEPS", "MIN_LR", "MAX_LR"]
