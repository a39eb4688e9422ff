"""One-sentence verdicts computed from the stress numbers.

For one shift (e.g. the noise level moved ×0 … ×8 away from training) we have, per level
ℓ and method m, the mean test PSNR p(m, ℓ). Methods are learned (a trained network, an
unrolled or plug-and-play scheme, the safe mode wrapping one) or classical baselines b —
each method says which (`is_learned`), and the stress study records the learned names per
shift (``learned``). For every learned method m, its verdict answers *where m stops being
the best choice*:

- ordered levels (noise ×f, number of views, PSF width …): walk outward from the
  training level in each direction and report the first level ℓ* where
  p(m, ℓ*) < max_b p(b, ℓ*) − margin (the *crossing*), naming the baseline;
- categorical levels (object class, noise family …): list the levels where a baseline
  beats the model;
- otherwise: "the model stays above all baselines at every level".

The margin (default 0 dB) lets a caller ignore ties within noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Sequence

from ..capabilities import capabilities
from .resolve import MODEL, RUN_METHODS

#: the learned methods of files and callables that do not say what they are (stress.json
#: written before shifts recorded ``learned``; a plain function passed as a method): the run's
LEARNED = tuple(RUN_METHODS)


def is_learned(name: str, method: Any) -> bool:
    """Whether `method` is learned (never a classical baseline), asked of the method itself:
    its ``learned`` attribute (True for every `invmap.models.Reconstructor` and the safe
    mode, False for the variational methods); a callable without one falls back to its
    name being in `LEARNED`."""
    declared = capabilities(method).learned
    return name in LEARNED if declared is None else bool(declared)


def learned_names(methods: Mapping[str, Any]) -> list[str]:
    """The names of the learned methods among ``{name: method}`` (`is_learned`)."""
    return [n for n, m in methods.items() if is_learned(n, m)]


def learned_of(meta: Mapping) -> list[str]:
    """The learned method names recorded in a stress shift's (or study's) meta; older files
    without ``learned``: the `LEARNED` names among its ``methods``."""
    if "learned" in meta:
        return list(meta["learned"])
    return [m for m in LEARNED if m in (meta.get("methods") or LEARNED)]


@dataclass
class Verdict:
    """The verdict for one shift: a sentence plus the numbers it was read from."""

    shift: str
    text: str
    crossings: list[dict] = field(default_factory=list)  # [{level, direction, baseline, model, best}]
    below_at_training: bool = False
    model_always_best: bool | None = None  # None when there is no model or no baseline
    method: str = MODEL  # the learned method this verdict is about

    def to_dict(self) -> dict:
        return {"shift": self.shift, "method": self.method, "text": self.text, "crossings": self.crossings,
                "below_at_training": self.below_at_training, "model_always_best": self.model_always_best}


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.1f} dB"


def _best_baseline(row: Mapping[str, float], learned: Collection[str]) -> tuple[str | None, float]:
    """The best classical method of one level's {method: PSNR} and its PSNR."""
    best, best_v = None, -math.inf
    for m, v in row.items():
        if m in learned or v is None or not math.isfinite(v):
            continue
        if v > best_v:
            best, best_v = m, v
    return best, best_v


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def shift_verdict(shift: str, levels: Sequence[str], table: Mapping[str, Mapping[str, float]],
                  training_level: str | None = None, ordered: bool = True, margin: float = 0.0,
                  model: str = MODEL, label: str | None = None, learned: Collection[str] = LEARNED) -> Verdict:
    """Verdict for the learned method `model` in one shift from ``table[level][method] = mean PSNR`` (dB).

    `levels` gives the order (for ordered shifts: along the axis); `training_level` is
    the level matching the training conditions (None when no level does); `learned` names
    the methods that are not baselines (`model` is always one). A level where the model has
    no number (e.g. the architecture cannot take that image size) is skipped.
    """
    name = label or shift
    learned = set(learned) | {model}
    it = "the model" if model == MODEL else model  # how the sentences name the method
    early = _nothing_to_compare(shift, name, it, levels, table, model, learned)
    if early is not None:
        return early

    def below(lv: str) -> tuple[bool, str | None, float, float]:
        row = table.get(lv, {})
        mv = row.get(model)
        b, bv = _best_baseline(row, learned)
        if not _finite(mv) or b is None:
            return False, b, mv if mv is not None else math.nan, bv
        return mv < bv - margin, b, mv, bv

    valid = [lv for lv in levels if _finite(table.get(lv, {}).get(model))]
    skipped = [lv for lv in levels if lv not in valid]
    below_train = False
    if training_level is not None and training_level in valid:
        below_train = below(training_level)[0]
    crossings = _crossings(levels, valid, training_level, ordered, below_train, below)

    all_below = [lv for lv in valid if below(lv)[0]]
    always_best = not all_below
    if below_train:
        b, bv = below(training_level)[1], below(training_level)[3]
        mv = table[training_level][model]
        text = (f"{name}: {it} is already below {b} at the training level {training_level} "
                f"({_fmt(mv)} vs {_fmt(bv)})")
        others = [lv for lv in valid if lv != training_level and not below(lv)[0]]
        text += f"; it beats every baseline only at {', '.join(others)}." if others else \
            " and at every other level."
    elif always_best:
        text = f"{name}: {it} stays above all baselines at every level"
        if valid:
            worst = min(valid, key=lambda lv: table[lv][model] - _best_baseline(table[lv], learned)[1])
            gap = table[worst][model] - _best_baseline(table[worst], learned)[1]
            text += f" (smallest lead {gap:.1f} dB, at {worst})."
        else:
            text += "."
    elif ordered and training_level is not None:
        parts = [f"{it} falls below {c['baseline']} at {c['level']} ({_fmt(c['model'])} vs {_fmt(c['best'])})"
                 for c in crossings]
        text = f"{name}: " + "; ".join(parts) + "."
    else:
        parts = [f"{c['level']} ({c['baseline']} {_fmt(c['best'])} vs {model} {_fmt(c['model'])})" for c in crossings]
        text = f"{name}: a baseline beats {it} at " + ", ".join(parts) + "."
        winners = [lv for lv in valid if lv not in all_below]
        if winners:
            text = text[:-1] + f"; {it} is best at {', '.join(winners)}."
    if skipped:
        text += f" ({model} not applicable at: {', '.join(skipped)})"
    return Verdict(shift, text, crossings, below_train, always_best, method=model)


def _nothing_to_compare(shift: str, name: str, it: str, levels: Sequence[str],
                        table: Mapping[str, Mapping[str, float]], model: str, learned: set[str]) -> Verdict | None:
    """The verdict when there is nothing to compare — no number of `model` (the best baseline per
    level instead), or no baseline beside the learned methods — else None."""
    methods = {m for lv in levels for m in table.get(lv, {})}
    if model not in methods:
        best_overall = {}
        for lv in levels:
            b, v = _best_baseline(table.get(lv, {}), learned)
            if b is not None:
                best_overall[lv] = b
        winners = sorted(set(best_overall.values()))
        text = (f"{name}: no trained model evaluated; best baseline: "
                + (", ".join(f"{b} ({', '.join(lv for lv, w in best_overall.items() if w == b)})" for b in winners)
                   or "none"))
        return Verdict(shift, text, model_always_best=None, method=model)
    if not methods - learned:
        return Verdict(shift, f"{name}: only learned methods were evaluated; no baseline to compare {it} with.",
                       model_always_best=None, method=model)
    return None


def _crossings(levels: Sequence[str], valid: list[str], training_level: str | None, ordered: bool,
               below_train: bool, below: Callable[[str], tuple[bool, str | None, float, float]]) -> list[dict]:
    """Where the model falls below the best baseline: along an ordered axis, the first such level on
    each side of the training level (none when it is below there already); else every such level."""
    crossings: list[dict] = []
    if ordered and training_level is not None and training_level in levels:
        t = levels.index(training_level)
        for direction, path in (("up", levels[t + 1:]), ("down", list(reversed(levels[:t])))):
            if below_train:
                # already below at training: look for where it recovers is not the question;
                # report the first level in this direction where it is *still* below.
                continue
            for lv in path:
                if lv not in valid:
                    continue
                is_below, b, mv, bv = below(lv)
                if is_below:
                    crossings.append({"level": lv, "direction": direction, "baseline": b,
                                      "model": mv, "best": bv})
                    break
    else:
        for lv in valid:
            is_below, b, mv, bv = below(lv)
            if is_below:
                crossings.append({"level": lv, "direction": None, "baseline": b, "model": mv, "best": bv})
    return crossings


def verdicts_from_rows(rows: Sequence[Mapping], shifts: Sequence[Mapping], metric: str = "psnr",
                       margin: float = 0.0) -> list[Verdict]:
    """Verdicts for every shift and every learned method in it, from tidy stress rows
    (shift, level, method, metric, mean, std).

    `shifts` describes each shift: {name, label, levels (ordered), training_level, ordered,
    learned (the learned method names; see `learned_of`)}. A shift without any learned
    method evaluated gets one verdict naming the best baselines.
    """
    out = []
    for sh in shifts:
        table: dict[str, dict[str, float]] = {}
        for r in rows:
            if r["shift"] == sh["name"] and r["metric"] == metric:
                table.setdefault(str(r["level"]), {})[r["method"]] = float(r["mean"])
        levels = [str(lv) for lv in sh["levels"] if str(lv) in table]
        if not levels:
            continue
        learned = learned_of(sh)
        present = [m for m in learned if any(m in row for row in table.values())]
        for m in present or [MODEL]:
            out.append(shift_verdict(sh["name"], levels, table, sh.get("training_level"),
                                     ordered=sh.get("ordered", True), margin=margin, label=sh.get("label"),
                                     model=m, learned=learned))
    return out


__all__ = ["Verdict", "shift_verdict", "verdicts_from_rows", "is_learned", "learned_names", "learned_of", "MODEL", "LEARNED"]
