"""The trust check of a trained model's reconstructions of new measurements (``invmap reconstruct --model``).

For y = K x + e with x unknown, the model's x̂ = f_Θ(y, K) is diagnosed without ground truth
(`invmap.trust.diagnose`) against the trust reference x̂_r = R(y, K) of its run
(``evaluation.trust_reference``, `invmap.evaluation.resolve.trust_reference`; R with the run's tuned
parameters from baselines.json), with the calibration record of the run
(`invmap.evaluation.trust.calibrate_model`: computed once per run and task, then read). From the
record and the trust T per image:

- a verdict line per image (``consistent: …`` / ``suspect: …``);
- the per-image bound "PSNR(x̂) ≥ b with probability 1 − α", b = a(x̂, x̂_r) + c − q·σ(T)
  (`invmap.trust.conformal`), printed only where it applies (`no_bound_because`);
- with ``safe``, x̂_safe = argmin ½‖Kx − y‖² + λ TV(x) + (μ(S)/2)‖x − x̂‖² (`invmap.trust.SafeReconstructor`,
  falling back to the run's tuned TV) and what it promises per image;
- with ``intervals``, per-pixel intervals x̂ ± λ u(x̂, x̂_r) (`invmap.trust.intervals`).

`check_reconstruction` does all of it and returns what the command writes (`Checked`); the
command keeps the arguments, the files and nothing else.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..capabilities import capabilities
from ..config import first_difference
from .experiment import Experiment
from ..models import check_compatible, load_model
from ..trust import diagnose, reference_physics, SafeReconstructor
from ..trust.conformal import agreement
from ..trust.fitted import Calibrations
from ..trust.safe import TOLERANCE_DB
from .resolve import BASELINE, MODEL, SAFE, TRUST_REFERENCE, check_trust_reference, parse, trust_reference
from .runs import build_methods, load_baselines, resolve
from .trust import calibrate_model

#: seconds between two progress lines of a long step (the trust check's tv at 512² runs for a while)
TICK_SECONDS = 5.0

#: the PSNR a constant mid-range image reaches on any image with values in a range of length L:
#: its error is at most L/2 everywhere, so PSNR ≥ 20 log10(L / (L/2)); a bound below says nothing
VACUOUS_DB = 20.0 * float(np.log10(2.0))


@dataclass
class Checked:
    """What the trust check of a batch gives the command to write."""

    x: torch.Tensor  # the x̂ to write: the model's, or safe's with ``safe``
    doc: dict  # the sidecar document (OUTPUT.trust.json), less the command's own paths
    bands: tuple[torch.Tensor, torch.Tensor] | None = None  # the pixel intervals (lower, upper), with ``intervals``
    pixels: Any = None  # the `invmap.trust.intervals.PixelIntervals` that made them


def run_reference(run_dir: str | Path, config: Any, physics: Any) -> tuple[str, Any, Any]:
    """(the trust reference's name, the reference built with the run's tuned parameters or None when
    baselines.json lacks them, the tuned TV safe falls back to or None) of a run; a reference that
    cannot run on `physics`' operator is a one-line ValueError."""
    tuned = load_baselines(run_dir)
    baseline = build_methods([BASELINE], run_dir)[BASELINE] if BASELINE in tuned else None
    name = TRUST_REFERENCE if config is None else trust_reference(config)
    check_trust_reference(name, physics.operator)
    if name == BASELINE:
        return name, baseline, baseline
    ready = name in tuned or parse(name).scheme == "pretrained"
    return name, (build_methods([name], run_dir, config=config)[name] if ready else None), baseline


def check_same_operator(model: Any, other: Any, model_dir: str, other_dir: str) -> None:
    """An ``--ensemble`` member must have been trained for the model's operator K (its nominal
    one; the image size may differ): the disagreement of maps of other tasks says nothing."""
    a, b = (capabilities(m).training_physics for m in (model, other))
    if a is None or b is None:
        return
    ka, kb = ({k: v for k, v in p.spec()["operator"].items() if k != "image_shape"} for p in (a, b))
    diff = first_difference(ka, kb)
    if diff:
        key, was, now = diff
        raise ValueError(f"--ensemble {other_dir} was trained for another operator than {model_dir} (operator.{key}: "
                         f"{str(now)[:40]} against {str(was)[:40]}); an ensemble is of runs of one task")


def _on_device(m: Any, device: Any) -> Callable:
    return lambda yy, p: m(yy.to(device), p).detach().cpu()


def _calibrated(model: Any, run_dir: str, physics: Any, bound: float | None, intervals: bool, safe: bool,
                store: bool, say: Callable[[str], None]) -> tuple[str, Any, Any, Any, Calibrations]:
    """(reference name, reference, baseline, home physics, calibrations) of the run's model: calibrated
    at its training conditions when the run has its config.yaml (a one-line ValueError for a ``bound``
    or ``intervals`` it cannot give)."""
    has_config = (Path(run_dir) / "config.yaml").exists()
    config = resolve(run_dir)[0] if has_config else None
    name, reference, baseline = run_reference(run_dir, config, physics)
    if bound is not None and not 0 < bound < 1:
        raise ValueError(f"--bound is a probability in (0, 1), got {bound:g}")
    if config is None:
        if bound is not None or intervals:
            raise ValueError(f"--bound and --intervals need the model's run directory with its config.yaml "
                             f"(calibration pairs); {run_dir} has none")
        return name, reference, baseline, None, Calibrations(name, reference)
    if bound is not None:
        config.evaluation.bound = bound
    if intervals and config.evaluation.pixel_risk <= 0:
        config.evaluation.pixel_risk = 0.1  # the run turned them off for its evaluations; asked for here
    strict = (["bound"] if bound is not None else []) + (["intervals"] if intervals else [])
    if strict and reference is None:
        raise ValueError(f"--bound and --intervals need the tuned trust reference {name} in "
                         f"{run_dir}/baselines.json (run `invmap evaluate RUN` first)")
    exp = Experiment(config, run_dir)
    _methods, cal = calibrate_model(model, exp, run_dir, baseline, safe=safe, say=say, strict=strict, store=store,
                                    reference=reference)
    return name, reference, baseline, exp.physics, cal


def check_reconstruction(model: Any, run_dir: str, y: torch.Tensor, physics: Any, x_hat: torch.Tensor, *,
                         device: Any = "cpu", bound: float | None = None, intervals: bool = False,
                         safe: bool = False, ensemble: Sequence[str] = (), store: bool = True,
                         say: Callable[[str], None] = print, progress: Callable[[str], None] | None = None,
                         calibrated_as: Any = None) -> Checked:
    """The trust check of the model's x̂ on y (see the module docstring): verdicts, bounds and safe's
    lines go to `say`, the reference's progress to `progress` (stderr); returns what to write.
    `store`: keep a computed calibration in the run (a zoo entry ships its own). `calibrated_as`: the
    saved model whose calibration at its training conditions applies, when `model` is a copy of it
    adapted to y (`invmap.training.adapt`; the bound then reads as fitted for the saved model)."""
    name, reference, baseline, home, cal = _calibrated(model if calibrated_as is None else calibrated_as, run_dir,
                                                       physics, bound, intervals, safe, store, say)
    others = []
    for run in ensemble:
        other, meta = load_model(run)
        check_compatible(meta, physics)
        check_same_operator(model, other, run_dir, run)
        others.append(_on_device(other.to(device), device))
    ref = reference_physics(model, tuple(x_hat.shape[-2:]))
    x_r = None if reference is None else reference_with_progress(reference, y, physics, progress)
    record = cal.of(MODEL)
    diag = diagnose(_on_device(model, device), y, physics, x_hat=x_hat, x_baseline=x_r, others=others, reference=ref,
                    calibration=None if record is None else record.score)
    if reference is None:
        diag.notes.append(f"no tuned {name} in {run_dir}/baselines.json: misfit against the noise level only")
    fitted_for = None if home is None else (home.spec() if record is None or record.physics is None else record.physics)
    records = _verdicts(diag, x_hat, x_r, None if record is None else record.psnr_bound,
                        away_from_calibration(physics, None if home is None else fitted_for), say,
                        adapted=calibrated_as is not None)
    doc: dict = {"physics": physics.spec(), "trust_reference": name,
                 "baseline": reference.record() if callable(getattr(reference, "record", None)) else None,
                 "calibration": None if record is None else {"reference": record.reference, "physics": record.physics},
                 "ensemble": [str(r) for r in ensemble], "images": records}
    out = x_hat
    if safe:
        if baseline is None:
            raise ValueError(f"--safe needs the tuned tv baseline in {run_dir}/baselines.json "
                             "(run `invmap evaluate RUN` or `invmap run` first)")
        mode = SafeReconstructor(_on_device(model, device), baseline, reference=ref, calibration=cal.of(SAFE),
                                 trust_reference=reference if reference is not None else baseline)
        with torch.no_grad():
            out = mode.from_diagnosis(y, physics, x_hat, diag)
        doc["safe"] = _safe_lines(mode, diag, x_hat.shape[0], say)
    checked = Checked(out, doc)
    pixels = None if record is None else record.pixel_intervals
    if intervals and pixels is not None and x_r is not None:
        checked.bands, checked.pixels = pixels(x_hat, x_r), pixels
    return checked


def _verdicts(diag: Any, x_hat: torch.Tensor, x_r: torch.Tensor | None, bound: Any, away: str | None,
              say: Callable[[str], None], adapted: bool = False) -> list[dict]:
    """One verdict (and, where it applies, the PSNR bound) per image said; the sidecar's records.
    `adapted`: x̂ is the adapted copy's, the bound the saved model's (said so)."""
    whose = "the adapted model's x̂" if adapted else "the model's x̂"
    lows = None if bound is None or x_r is None else bound(agreement(x_hat, x_r, bound.data_range), diag.trust)
    many = x_hat.shape[0] > 1
    records = [diag.record(i) for i in range(x_hat.shape[0])]
    for i in range(x_hat.shape[0]):
        head = f"image {i}: " if many else ""
        say(f"{head}{diag.verdict(i)}")
        if lows is None:
            continue
        why = no_bound_because(float(lows[i]), away, bool(diag.suspect[i]))
        if why is not None:  # a bound that does not apply, or says nothing, is not printed as one
            say(f"{head}no PSNR bound for {whose}: {why}")
            records[i]["psnr_bound"] = {"db": None, "why": why}
            continue
        say(f"{head}{whose}{' (the bound fitted for the saved model)' if adapted else ''}: PSNR ≥ {float(lows[i]):.2f} dB with probability {bound.level:g} (split "
            "conformal at its training conditions, scaled by trust; valid where the data look like them)")
        records[i]["psnr_bound"] = {"db": round(float(lows[i]), 3), "probability": bound.level,
                                    "of": "adapted model" if adapted else "model",
                                    "how": bound.describe()}
    return records


def _safe_lines(mode: SafeReconstructor, diag: Any, b: int, say: Callable[[str], None]) -> dict:
    """Safe's part of the sidecar, and its lines said: recalibrations, μ, and per image what it promises."""
    many = b > 1
    mu = mode.mu.tolist()
    doc: dict = {"params": mode.params(), "mu_relative": mu, "recalibrated": mode.corrections,
                 "verdict_after_recalibration": mode.after}
    for i, (fix, after) in enumerate(zip(mode.corrections, mode.after)):
        if fix:
            what = ", ".join(f"{k} = {v:+g}" for k, v in fix.items())
            say(f"{f'image {i}: ' if many else ''}safe: K recalibrated to {what} (read from y); "
                f"the model and TV re-run with it: {after}")
    say(f"safe: TV solve anchored at x̂ with μ/‖K‖² = {', '.join(f'{m:.2g}' for m in mu)} "
        f"({mode.mu0:g} within {mode.free:g} spreads of the training conditions)")
    promise = mode.promise
    if promise is None:
        return doc
    lows, ok = mode.promised(diag.trust)  # never silent about an image it cannot vouch for
    doc["promise"] = {"tolerance_db": TOLERANCE_DB, "probability": promise.level,
                      "margin_bound_db": [round(float(v), 3) for v in lows],
                      "promised": [bool(o) for o in ok], "how": promise.describe("PSNR margin to tv")}
    for i in range(b):
        head = f"{f'image {i}: ' if many else ''}safe: "
        if bool(ok[i]):
            say(f"{head}within {TOLERANCE_DB:g} dB of tv or better with probability {promise.level:g} "
                f"(PSNR margin ≥ {float(lows[i]):+.2f} dB; split conformal at the training conditions, "
                "scaled by trust)")
        else:
            say(f"{head}CANNOT promise to be within {TOLERANCE_DB:g} dB of tv on this image (margin "
                f"bound {float(lows[i]):+.2f} dB at probability {promise.level:g}); tv's own answer: "
                f"invmap reconstruct --method tv with the run's tuned parameters")
    return doc


def reference_with_progress(reference: Any, y: torch.Tensor, physics: Any,
                            say: Callable[[str], None] | None = None) -> torch.Tensor:
    """The trust reference's x̂_r on y (no gradients), its progress told to `say` (stderr): once when it
    starts and every `TICK_SECONDS` of its iterations (‖K‖ and ‖[K; s∇]‖ come first, once per acquisition)."""
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    if not callable(getattr(reference, "run", None)):  # a reference without an iteration to follow (a zoo entry)
        say("trust check: the trust reference on the same y …")
        with torch.no_grad():
            return reference(y, physics)
    iters = reference.params().get("iters")
    kept = physics.operator.numbers_file()  # a CT acquisition's norms: on disk after its first call
    first = ", after ‖K‖ and ‖[K; s∇]‖ by Lanczos: once for this acquisition" if kept and not kept.exists() else ""
    say(f"trust check: the run's tuned {reference.name} on the same y"
        f"{f' ({iters} iterations{first})' if iters else ''} …")
    t0 = time.perf_counter()
    last = [t0]

    def tick(k: int, _x: Any) -> None:
        now = time.perf_counter()
        if now - last[0] >= TICK_SECONDS:
            last[0] = now
            say(f"trust check: {reference.name} {k}{f' of {iters}' if iters else ''} iterations ({now - t0:.0f} s)")

    with torch.no_grad():
        return reference.run(y, physics, callback=tick)


def away_from_calibration(physics: Any, home: Mapping[str, Any] | None) -> str | None:
    """How the input's physics differs from the physics spec `home` the model's record was fitted for
    (`invmap.trust.fitted.Fitted.physics`), as ``key: ours against theirs``; None when they are the same
    (or there is no calibration)."""
    if home is None:
        return None
    diff = first_difference(dict(home), physics.spec())
    return None if diff is None else f"{diff[0]}: {str(diff[2])[:40]} against {str(diff[1])[:40]} calibrated"


def no_bound_because(db: float, away: str | None, suspect: bool) -> str | None:
    """Why a fitted per-image PSNR bound must not be printed for this image, or None: it holds at
    the training conditions only, and one weaker than a constant image's says nothing."""
    if away is not None:
        return f"the input's physics is not the one the bound was calibrated at ({away})"
    if suspect:
        return "the trust check finds this image unlike the training conditions, where the bound was calibrated"
    if not db > VACUOUS_DB:
        return (f"the bound ({db:.2f} dB) is below the {VACUOUS_DB:.2f} dB a constant mid-range image reaches on any "
                "image: it says nothing")
    return None


__all__ = ["Checked", "check_reconstruction", "run_reference", "check_same_operator", "reference_with_progress",
           "away_from_calibration", "no_bound_because", "TICK_SECONDS", "VACUOUS_DB"]
