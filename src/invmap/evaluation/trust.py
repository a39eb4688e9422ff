"""Trust at inference inside the evaluation and the stress study.

On a set of test pairs (y_i, x_i), after every method has reconstructed x̂_i:

- every method gets its data-consistency ratio ρ_i = ‖K x̂_i − y_i‖ / √(E‖e‖²) (score
  ``rho``; NaN where the noise model has no noise);
- every learned method (one that declares the ``training_physics`` it was trained for) gets
  the ground-truth-free diagnostics of `invmap.trust.diagnose` against the tuned baseline
  (``tv`` when it ran), calibrated at its training conditions (`calibrate`), and its trust
  score T_i (score ``trust``; the noise sensitivity, not part of it, is not redrawn here);
- a method that recalibrates K from y (``safe``) gets the score ``recalibrated``: 1 for each
  image it ran with K set to the calibration read from y, else 0;
- `worse_than_baselines`: the event the score should predict, PSNR(model) < max over the
  classical baselines b of PSNR(b), image by image.

`trust_summary` validates the score on the stress study: the AUROC of the suspicion
1 − T for that event, per shift (over its levels) and overall (over every distinct test
condition), with the ROC curve of the overall set.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import torch

from .. import metrics
from ..capabilities import capabilities
from ..files import sha256
from ..trust import auroc, calibration, conformal, consistency, diagnose, intervals, roc_curve
from ..trust.conformal import agreement, fit
from ..trust.diagnostics import largest_z, reference_physics, SUSPECT_SCORE
from ..trust.fitted import Calibrations, CalibrationStore, Fitted, calibration_key
from ..trust.intervals import fit as fit_intervals, outside, width_map
from ..trust.safe import SafeReconstructor, TOLERANCE_DB
from .evaluate import reconstruct
from .resolve import BASELINE, MODEL, SAFE  # BASELINE: the one whose ρ the learned methods are compared with
from .verdicts import LEARNED


def _finite_or_nan(t: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(t), t, torch.full_like(t, math.nan))


def calibrate(methods: Mapping[str, Any], exp: Any, n: int = 32, reference: Any | None = None,
              say: Any = None, strict: Collection[str] = (), reference_name: str | None = None) -> dict[str, Fitted]:
    """Calibrate each learned method at its training conditions (`invmap.trust.calibration`: the
    residual floor f and the spreads of its score) on `n` validation measurements of the
    experiment `exp` (`invmap.evaluation.experiment.Experiment.val_pairs`: simulated like the training
    pairs) — their ground truth is not used — and return a record per method,
    {name: `invmap.trust.fitted.Fitted`}; nothing is written onto a method. The misfit is measured
    against the trust reference `reference` (``evaluation.trust_reference``, named `reference_name`;
    default: the ``tv`` of `methods`, or the baseline a ``safe`` wraps). A wrapper (e.g. ``safe``) is
    calibrated through the ``model`` it wraps; its record adds what it promises.

    With a reference and ``evaluation.bound`` = 1 − α > 0, the score is calibrated on the first half
    of at most 2n validation pairs (at most n) and the other half (their truth used) fits the
    method's per-image PSNR bound (`invmap.trust.conformal`, record ``psnr_bound``); with too few
    pairs (half of ``data.val`` < ⌈1/α − 1⌉) there is none and `say` is told why (for those named in
    `strict`, ``bound`` / ``intervals``: a one-line ValueError naming the minimum instead). Likewise the
    per-pixel intervals (`invmap.trust.intervals`, ``evaluation.pixel_risk`` > 0, record
    ``pixel_intervals``)."""
    config = exp.config
    caps = {name: capabilities(m) for name, m in methods.items()}
    base = reference if reference is not None else methods.get(BASELINE)
    if base is None:  # a wrapper such as safe carries its own
        base = next((c.baseline for c in caps.values() if c.baseline is not None), None)
    ref_name = reference_name or (None if base is None else getattr(base, "name", None))
    physics = exp.physics.spec()
    records: dict[str, Fitted] = {}
    fitted: dict[int, Fitted] = {}  # by the target's identity: a model and the safe wrapping it share one
    pairs: list = []

    def val() -> tuple:  # the reference run on them once for every learned method
        if not pairs:
            y, x, phys = exp.val_pairs(2 * n)
            pairs.append((y, x, phys, None if base is None else reconstruct(base, y, phys)[0]))
        return pairs[0]

    for name, m in methods.items():
        target = caps[name].wraps or m
        if not capabilities(target).diagnosable:
            continue
        if id(target) not in fitted:
            y, x, phys, x_b = val()
            x_m = reconstruct(target, y, phys)[0]
            k = min(n, y.shape[0] - y.shape[0] // 2)  # the first half (at most n) for the score, the rest for the bound
            bounded, pixels = (x_b is not None and _enough(what, y.shape[0] - k, config, say, what in strict)
                               for what in ("bound", "intervals"))
            k = k if bounded or pixels else min(n, y.shape[0])  # neither: the score keeps every pair it can use
            score = calibration(x_m[:k], y[:k], phys, None if x_b is None else x_b[:k])
            ev = config.evaluation
            fitted[id(target)] = Fitted(
                score, _fit_bound(target, y[k:], x[k:], phys, x_m[k:], x_b[k:], config, score) if bounded else None,
                fit_intervals(x[k:], x_m[k:], x_b[k:], ev.pixel_risk, ev.pixel_delta) if pixels else None,
                reference=ref_name, physics=physics)
        records[name] = fitted[id(target)]
    for name, m in methods.items():  # safe: what it can promise against the baseline it falls back to
        if not caps[name].promises or name not in records or base is None or config.evaluation.bound <= 0:
            continue
        y, x, phys, x_b = val()
        k = min(n, y.shape[0] - y.shape[0] // 2)
        if not _enough("bound", y.shape[0] - k, config, say, "bound" in strict):
            continue
        records[name] = records[name].with_promise(_fit_promise(m, records[name], base, y[k:], x[k:], phys, x_b[k:],
                                                                config))
    return records


def _fit_promise(safe: Any, record: Fitted, reference: Any, y: torch.Tensor, x: torch.Tensor, physics: Any,
                 x_r: torch.Tensor, config: Any) -> Any:
    """Safe's margin bound on held-out pairs (y, x), the trust reference's x̂_r on them given."""
    fallback = capabilities(safe).baseline
    x_fb = x_r if _same(fallback, reference) else reconstruct(fallback, y, physics)[0]
    x_m = reconstruct(capabilities(safe).wraps, y, physics)[0]
    mine = safe.calibrated(record, trust_reference=reference)
    with torch.no_grad():
        x_s = mine.from_reconstructions(y, physics, {"model": x_m, "baseline": x_fb, "reference": x_r})
    return mine.fit_promise(x, x_s, x_fb, mine.last.trust, float(config.evaluation.bound),
                            config.evaluation.data_range)


def _same(a: Any, b: Any) -> bool:
    """Two methods that compute the same x̂: one object, or one variational method with the same parameters."""
    if a is b:
        return True
    named = all(isinstance(getattr(m, "name", None), str) and callable(getattr(m, "params", None)) for m in (a, b))
    return named and a.name == b.name and a.params() == b.params()


def with_records(methods: Mapping[str, Any], cal: Calibrations) -> dict[str, Any]:
    """`methods` with each that takes a calibration record (``calibrated``: safe) rebuilt with its
    own from `cal` and the trust reference; the others as they are."""
    out = {}
    for name, m in methods.items():
        rec = cal.of(name)
        rebuild = getattr(m, "calibrated", None)
        out[name] = m if rec is None or not callable(rebuild) else rebuild(rec, cal.reference, cal.reference_name)
    return out


def calibration_parts(exp: Any, model_dir: str | Path, reference: Any | None, safe: bool, n: int = 32) -> dict:
    """What `calibrate` of a run's model depends on: its task and validation pairs as configured,
    the seed, n, the bound's and intervals' settings, the trust reference's name and parameters (under
    ``baseline``, the key records of older versions used for the tuned TV: those stay valid), the model's
    weights (their SHA-256) and whether safe's promise is fitted too."""
    config, ev, d = exp.config, exp.config.evaluation, exp.config.data
    weights = Path(model_dir) / "model.safetensors"
    val = {"source": d.source, "size": int(d.size), "params": d.params, "val": int(d.val),
           "simulation": d.nominal_simulation}  # what the validation pairs are made of (`Experiment.val_pairs`)
    return {"physics": config.physics_spec(), "data": val, "seed": int(config.seed),
            "n": int(n), "bound": float(ev.bound), "pixel_risk": float(ev.pixel_risk),
            "pixel_delta": float(ev.pixel_delta), "data_range": ev.data_range,
            "baseline": None if reference is None else {"method": reference.name, "params": reference.params()},
            "weights": sha256(weights, "model weights") if weights.is_file() else None, "safe": bool(safe)}


def calibrate_stored(methods: Mapping[str, Any], exp: Any, model_dir: str | Path, reference: Any | None = None,
                     say: Any = None, strict: Collection[str] = (), store: bool = True, n: int = 32
                     ) -> tuple[str, dict[str, Fitted]]:
    """`calibrate` the run's ``model`` (and the ``safe`` wrapping it, if any) once per run and task:
    the record `calibration_parts` keys in ``model_dir``'s `invmap.trust.fitted.CalibrationStore`
    is used when there is one; otherwise it is computed (announced to `say`: it takes a while)
    and, with `store` and a writable run directory, saved for the next call. Returns (how:
    ``"stored"``, ``"computed"`` or ``"computed and stored"``; the records {name: Fitted})."""
    safe = methods.get(SAFE)
    parts = calibration_parts(exp, model_dir, reference, safe is not None, n)
    key, st = calibration_key(parts), CalibrationStore(model_dir)
    fitted = st.get(key)
    name = None if reference is None else reference.name
    need_bound, need_pixels = "bound" in strict, "intervals" in strict
    if fitted is not None and not (need_bound and fitted.psnr_bound is None) \
            and not (need_pixels and fitted.pixel_intervals is None):
        if fitted.reference is None:  # an older record: its key says which reference and physics it was fitted for
            fitted = replace(fitted, reference=name, physics=exp.physics.spec())
        return "stored", {k: fitted for k in methods}
    notes: list[str] = []

    def tell(line: str) -> None:
        notes.append(line)
        if say is not None:
            say(line)

    if say is not None:
        say(f"calibrating the trust score at the model's training conditions on {min(2 * n, exp.val_size())} "
            f"validation pairs of its task, against {name or 'no reference'} "
            f"(once per run and task{'; stored in ' + str(st.path) if store and st.writable() else ''}) …")
    records = calibrate(methods, exp, n=n, reference=reference, say=tell, strict=strict, reference_name=name)
    fitted = records.get(SAFE, records.get(MODEL))
    if fitted is None or not (store and st.writable()):  # None: a model that declares no training physics
        return "computed", records
    st.put(key, fitted, {"task": parts["physics"], "n": n, "safe": parts["safe"], "reference": name, "notes": notes})
    return "computed and stored", records


def calibrate_model(model: Any, exp: Any, model_dir: str | Path, baseline: Any | None, safe: bool = False,
                    say: Any = None, strict: Collection[str] = (), store: bool = True,
                    reference: Any | None = None) -> tuple[dict[str, Any], Calibrations]:
    """A run's trained `model` (and, with `safe` and a baseline, the `SafeReconstructor` around it,
    falling back to `baseline`) calibrated at its training conditions — the experiment `exp` of the
    run's own config — against the trust `reference` (default: `baseline`) through `calibrate_stored`;
    returns ({"model": …[, "safe": … rebuilt with its record]}, the calibrations)."""
    reference = reference if reference is not None else baseline
    methods: dict[str, Any] = {MODEL: model}
    if safe and baseline is not None:  # what safe can promise: fitted on the same held-out pairs
        size = int(exp.config.data.size)
        methods[SAFE] = SafeReconstructor(model, baseline, reference=reference_physics(model, (size, size)),
                                          trust_reference=reference)
    _how, records = calibrate_stored(methods, exp, model_dir, reference=reference, say=say, strict=strict,
                                     store=store)
    cal = Calibrations(None if reference is None else reference.name, reference, records)
    return with_records(methods, cal), cal


def _enough(what: str, m: int, config: Any, say: Any, strict: bool) -> bool:
    """Whether `m` held-out calibration pairs can fit the PSNR ``bound`` (at ``evaluation.bound``) or the
    pixel ``intervals`` (``evaluation.pixel_risk`` α, ``pixel_delta`` δ); False when not asked for (0);
    too few: a note to `say`, or (`strict`) a one-line ValueError naming the minimum."""
    ev = config.evaluation
    if what == "bound":
        asked, need = ev.bound > 0, conformal.min_pairs(ev.bound) if ev.bound > 0 else 0
        msg = f"a PSNR bound at probability {ev.bound:g} needs at least {need} calibration pairs (n ≥ 1/α − 1)"
    else:
        asked = ev.pixel_risk > 0
        need = intervals.min_pairs(ev.pixel_risk, ev.pixel_delta) if asked else 0
        msg = (f"pixel intervals with risk ≤ {ev.pixel_risk:g} at confidence {1 - ev.pixel_delta:g} need at least "
               f"{need} calibration pairs (n ≥ log δ / log(1 − α))")
    if asked and getattr(config.data, "measurements", None):  # trained from y alone: no (y, x) of its own data
        key = "bound" if what == "bound" else "pixel_risk"
        msg = (f"this run learned from measurements without x (data.measurements): "
               f"{'a PSNR bound' if what == 'bound' else 'pixel intervals'} would be calibrated on validation pairs "
               f"(y, x) of its training data, which it lacks; set evaluation.{key}=0")
        if strict:
            raise ValueError(msg)
        if say is not None:
            say(f"note: no {'PSNR bound' if what == 'bound' else 'pixel intervals'}: {msg}")
        return False
    if not asked or m >= need:
        return asked
    msg += f" besides those of the trust score; the run's data.val = {config.data.val} leaves {m}"
    if strict:
        raise ValueError(msg + "; ask for a lower confidence")
    if say is not None:
        say(f"note: no {'PSNR bound' if what == 'bound' else 'pixel intervals'}: {msg}")
    return False


def _fit_bound(method: Any, y: torch.Tensor, x: torch.Tensor, physics: Any, x_hat: torch.Tensor,
               x_base: torch.Tensor, config: Any, score: Mapping[str, Any]) -> Any:
    """The method's `PsnrBound` (``evaluation.bound``) from held-out calibration pairs (y, x), its x̂ and
    the trust reference's x̂_r on them, its trust score calibrated (`score`) on other pairs."""
    dr = config.evaluation.data_range
    trust = diagnose(method, y, physics, x_hat=x_hat, x_baseline=x_base, draws=0, calibration=score).trust
    return fit(metrics.psnr(x_hat, x, dr), agreement(x_hat, x_base, dr), trust, float(config.evaluation.bound), dr)


def add_trust_scores(methods: Mapping[str, Any], y: torch.Tensor, physics: Any, results: Mapping[str, Any],
                     recons: Mapping[str, torch.Tensor], batch_size: int = 16, draws: int = 0,
                     x: torch.Tensor | None = None, calibration: Calibrations | None = None) -> None:
    """Add the scores ``rho`` (every method) and ``trust`` (learned methods) to `results`
    (`MethodScores`), using the reconstructions `recons` (all images, in order) and the records of
    `calibration` (the trust reference x̂_r: its reconstructions in `recons` when it was evaluated,
    else computed here; without `calibration`: the ``tv`` of `recons`, uncalibrated); for a learned
    method with a PSNR bound also ``psnr_bound``, ``covered``, ``bound_level``, and with pixel
    intervals and the truth `x`, ``pixel_risk`` (the fraction of pixels outside, per image) and
    ``pixel_alpha``, ``pixel_confidence`` (1 − δ)."""
    cal = calibration if calibration is not None else Calibrations(BASELINE)
    base = _reference_images(methods, y, physics, recons, cal, batch_size)
    for name, r in results.items():
        if r.error is not None or name not in recons:
            continue
        x_hat = recons[name]
        r.scores["rho"] = _finite_or_nan(consistency(x_hat, y, physics))
        method = methods[name]
        caps = capabilities(method)
        record = cal.of(name)
        if caps.recalibrate:  # which images safe ran with K recalibrated from y
            r.scores["recalibrated"] = recalibrated_images(y, physics)
        if caps.promises and record is not None and record.promise is not None:  # safe: ≥ baseline − 0.5 dB, kept?
            _add_promise(method, record, y, physics, r, base, results, batch_size)
        if not caps.diagnosable:
            continue
        trust = []
        for i in range(0, y.shape[0], batch_size):
            sl = slice(i, i + batch_size)
            d = diagnose(method, y[sl], physics, x_hat=x_hat[sl], x_baseline=None if base is None else base[sl],
                         draws=draws, calibration=None if record is None else record.score)
            trust.append(d.trust)
        r.scores["trust"] = torch.cat(trust)
        bound = None if record is None else record.psnr_bound
        if bound is not None and base is not None:  # "PSNR ≥ b with probability 1 − α", and was it?
            b = bound(agreement(x_hat, base, bound.data_range), r.scores["trust"])
            r.scores["psnr_bound"] = b
            r.scores["bound_level"] = torch.full_like(b, bound.level)
            if "psnr" in r.scores:
                r.scores["covered"] = (r.scores["psnr"].double().cpu() >= b).double()
        pixels = None if record is None else record.pixel_intervals
        if pixels is not None and base is not None and x is not None:
            r.scores["pixel_risk"] = outside(x, x_hat, width_map(x_hat, base), pixels.lam)
            r.scores["pixel_alpha"] = torch.full_like(r.scores["pixel_risk"], pixels.alpha)
            r.scores["pixel_confidence"] = torch.full_like(r.scores["pixel_risk"], 1 - pixels.delta)


def _reference_images(methods: Mapping[str, Any], y: torch.Tensor, physics: Any, recons: Mapping[str, torch.Tensor],
                      cal: Calibrations, batch_size: int) -> torch.Tensor | None:
    """The trust reference's x̂_r on y: the evaluation's own when it ran, else computed (only when a
    method is diagnosed or promises); None without a reference."""
    if cal.reference_name in recons:
        return recons[cal.reference_name]
    needed = any(capabilities(m).diagnosable or capabilities(m).promises for m in methods.values())
    if cal.reference is None or not needed:
        return None
    return reconstruct(cal.reference, y, physics, batch_size)[0]


def _add_promise(safe: Any, record: Fitted, y: torch.Tensor, physics: Any, r: Any, base: torch.Tensor | None,
                 results: Mapping[str, Any], batch_size: int) -> None:
    """Scores ``margin_bound`` (dB), ``promised`` (1: bound ≥ −tolerance) and, with the baseline's
    PSNR, ``promise_kept`` (promised images: 1 when safe stayed within the tolerance; NaN elsewhere)."""
    trust = []
    for i in range(0, y.shape[0], batch_size):
        sl = slice(i, i + batch_size)
        x_m = reconstruct(safe.model, y[sl], physics)[0]
        trust.append(diagnose(safe.model, y[sl], physics, x_hat=x_m, x_baseline=None if base is None else base[sl],
                              draws=0, calibration=record.score).trust)
    b, ok = safe.promised(torch.cat(trust))
    r.scores["margin_bound"], r.scores["promised"] = b, ok.double()
    b_res = results.get(BASELINE)
    if b_res is not None and b_res.error is None and "psnr" in r.scores:
        held = (r.scores["psnr"].double() - b_res.scores["psnr"].double() >= -TOLERANCE_DB).double()
        r.scores["promise_kept"] = torch.where(ok, held, torch.full_like(held, math.nan))


def recalibrated_images(y: torch.Tensor, physics: Any) -> torch.Tensor:
    """1.0 per image whose measurements say a calibration parameter of K is off by more than
    `SUSPECT_SCORE` standard errors (what `SafeReconstructor` then recalibrates), else 0.0."""
    z = largest_z(physics.operator.estimate_calibration(y))
    return torch.zeros(y.shape[0], dtype=torch.float64) if z is None else (z > SUSPECT_SCORE).double()


#: a "large failure": the model more than this many dB below the best baseline on the image
LARGE_FAILURE_DB = 1.0


def margin_to_baselines(results: Mapping[str, Any], model: str = MODEL, metric: str = "psnr",
                        learned: Collection[str] = LEARNED) -> torch.Tensor | None:
    """Per image: `model`'s metric minus the best classical baseline's (None without both).
    ``learned``: the names that are not baselines (asked of the methods by the caller)."""
    if model not in results or results[model].error is not None:
        return None
    base = [r.scores[metric] for n, r in results.items() if n not in learned and r.error is None]
    if not base:
        return None
    return results[model].scores[metric] - torch.stack(base).max(dim=0).values


def worse_than_baselines(results: Mapping[str, Any], model: str = MODEL, metric: str = "psnr",
                         learned: Collection[str] = LEARNED) -> torch.Tensor | None:
    """Per image: is `model` worse than the best classical baseline? (None without both.)"""
    m = margin_to_baselines(results, model, metric, learned)
    return None if m is None else m < 0


def level_records(results: Mapping[str, Any], model: str = MODEL, learned: Collection[str] = LEARNED
                  ) -> list[list[float]] | None:
    """[[trust, event, PSNR margin to the best baseline (dB)], …] per image of one test
    condition (None without a trust score); the event is margin < 0."""
    m = margin_to_baselines(results, model, learned=learned)
    if m is None or "trust" not in results[model].scores:
        return None
    return [[float(t), float(d < 0), round(float(d), 4)] for t, d in zip(results[model].scores["trust"].tolist(),
                                                                         m.tolist())]


def trust_summary(shifts: Sequence[Mapping]) -> dict | None:
    """AUROC of the suspicion 1 − trust for "model worse than the best baseline", per shift
    and overall (each distinct test condition once), the same over the identifiable levels only
    (``identifiable``: without the levels a shift lists as ``unidentifiable`` — a failure no
    signal in (y, K) can show, or data no scanner produces — which it names in ``left_out``),
    and the overall ROC curve; None when no shift recorded trust scores. Shift metas carry ``trust_images`` {level: [[trust, event], …]}
    and ``conditions`` {level: condition key}."""
    def large(rec: Sequence[float]) -> bool | None:  # records of older runs carry no margin
        return rec[2] < -LARGE_FAILURE_DB if len(rec) > 2 else None

    per_shift, seen, scores, events, larges, known, left_out = {}, set(), [], [], [], [], []
    for sh in shifts:
        imgs = sh.get("trust_images") or {}
        if not imgs:
            continue
        recs = [r for lv in imgs for r in imgs[lv]]
        s, e, g = [1.0 - r[0] for r in recs], [bool(r[1]) for r in recs], [large(r) for r in recs]
        per_shift[sh["name"]] = {"auroc": _num(auroc(s, e)), "images": len(s), "worse": int(sum(e)),
                                 **_large_failures(s, g)}
        for lv, recs in imgs.items():
            key = (sh.get("conditions") or {}).get(lv) or json.dumps([sh["name"], lv])
            if key in seen:
                continue
            seen.add(key)
            scores += [1.0 - r[0] for r in recs]
            events += [bool(r[1]) for r in recs]
            larges += [large(r) for r in recs]
            if lv in (sh.get("unidentifiable") or {}):
                left_out.append(f"{sh['name']} {lv}")
            else:
                known += range(len(scores) - len(recs), len(scores))
    if not per_shift:
        return None
    fpr, tpr = roc_curve(scores, events)
    pick = lambda v: [v[i] for i in known]  # noqa: E731
    identifiable = {"auroc": _num(auroc(pick(scores), pick(events))), "images": len(known),
                    "worse": int(sum(pick(events))), **_large_failures(pick(scores), pick(larges)),
                    "left_out": left_out}
    return {"event": "model PSNR below the best classical baseline's on the image",
            "score": "suspicion 1 − trust", "auroc": _num(auroc(scores, events)), "images": len(scores),
            "worse": int(sum(events)), **_large_failures(scores, larges), "per_shift": per_shift,
            "identifiable": identifiable, "roc": {"fpr": fpr, "tpr": tpr}}


def bound_summary(rows: Sequence[Mapping], shifts: Sequence[Mapping], model: str = MODEL) -> dict | None:
    """The coverage of `model`'s per-image PSNR bound in the stress study: the fraction of images
    with PSNR ≥ b per level (stress metric ``covered``), at the training conditions, and the
    lowest over the identifiable levels (not a shift's ``unidentifiable`` ones); likewise the
    pixel intervals' risk (``pixel_risk``: the highest over those levels); None without bounds."""
    def per_level(metric: str) -> dict:
        return {(r["shift"], str(r["level"])): float(r["mean"]) for r in rows
                if r["method"] == model and r["metric"] == metric}

    def first(metric: str) -> float | None:  # a constant the study records per level (a level, α, 1 − δ)
        return next(iter(per_level(metric).values()), None)

    def home_and_extreme(values: dict, pick: Any) -> tuple[float | None, str | None, float | None, int]:
        """(the value at the training conditions, the identifiable level `pick` (min / max) selects, its value,
        how many identifiable levels)."""
        home = [values[(sh["name"], str(sh.get("training_level")))] for sh in shifts
                if (sh["name"], str(sh.get("training_level"))) in values]
        known = {f"{sh['name']} {lv}": values[(sh["name"], lv)] for sh in shifts for lv in map(str, sh["levels"])
                 if (sh["name"], lv) in values and lv not in (sh.get("unidentifiable") or {})}
        at = pick(known, key=known.get) if known else None
        return (_num(home[0]) if home else None), at, (_num(known[at]) if at else None), len(known)

    cov, level = per_level("covered"), first("bound_level")
    if not cov or level is None:
        return None
    home, low, value, count = home_and_extreme(cov, min)
    out = {"method": model, "level": level, "training": home, "identifiable_min": value, "identifiable_min_at": low,
           "identifiable_levels": count}
    risk, alpha = per_level("pixel_risk"), first("pixel_alpha")
    if risk and alpha is not None:
        home, high, value, _ = home_and_extreme(risk, max)
        out["pixels"] = {"alpha": alpha, "confidence": first("pixel_confidence"), "training": home,
                         "identifiable_max": value, "identifiable_max_at": high}
    return out


def _large_failures(scores: Sequence[float], large: Sequence[bool | None]) -> dict:
    """AUROC for the second event, "more than LARGE_FAILURE_DB below the best baseline" (the
    failures that matter; near-ties within a fraction of a dB are a coin toss for any score)."""
    if not large or any(v is None for v in large):
        return {}
    return {"auroc_large": _num(auroc(scores, [bool(v) for v in large])), "large_failures": int(sum(large)),
            "large_failure_db": LARGE_FAILURE_DB}


def _num(v: float) -> float | None:
    return None if not math.isfinite(v) else round(float(v), 4)


__all__ = ["calibrate", "calibrate_model", "calibrate_stored", "with_records", "Calibrations", "add_trust_scores", "bound_summary", "margin_to_baselines", "worse_than_baselines", "level_records",
           "trust_summary", "BASELINE", "LARGE_FAILURE_DB"]
