"""One-sentence verdicts computed from the stress numbers.

For one shift (e.g. the noise level moved ×0 … ×8 away from training) we have, per level
ℓ and method m, the mean test PSNR p(m, ℓ). With the learned map called ``model`` and
every other method a classical baseline, the verdict answers *where the model stops
being the best choice*:

- ordered levels (noise ×f, number of views, PSF width …): walk outward from the
  training level in each direction and report the first level ℓ* where
  p(model, ℓ*) < max_b p(b, ℓ*) − margin (the *crossing*), naming the baseline;
- categorical levels (object class, noise family …): list the levels where a baseline
  beats the model;
- otherwise: "the model stays above all baselines at every level".

The margin (default 0 dB) lets a caller ignore ties within noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

MODEL = "model"
#: learned methods: never counted as a classical baseline (``safe`` wraps the model)
LEARNED = (MODEL, "safe")


@dataclass
class Verdict:
    """The verdict for one shift: a sentence plus the numbers it was read from."""

    shift: str
    text: str
    crossings: list[dict] = field(default_factory=list)  # [{level, direction, baseline, model, best}]
    below_at_training: bool = False
    model_always_best: bool | None = None  # None when there is no model or no baseline

    def to_dict(self) -> dict:
        return {"shift": self.shift, "text": self.text, "crossings": self.crossings,
                "below_at_training": self.below_at_training, "model_always_best": self.model_always_best}


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.1f} dB"


def _best_baseline(row: Mapping[str, float], model: str) -> tuple[str | None, float]:
    best, best_v = None, -math.inf
    for m, v in row.items():
        if m == model or m in LEARNED or v is None or not math.isfinite(v):
            continue
        if v > best_v:
            best, best_v = m, v
    return best, best_v


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def shift_verdict(shift: str, levels: Sequence[str], table: Mapping[str, Mapping[str, float]],
                  training_level: str | None = None, ordered: bool = True, margin: float = 0.0,
                  model: str = MODEL, label: str | None = None) -> Verdict:
    """Verdict for one shift from ``table[level][method] = mean PSNR`` (dB).

    `levels` gives the order (for ordered shifts: along the axis); `training_level` is
    the level matching the training conditions (None when no level does). A level where
    the model has no number (e.g. the architecture cannot take that image size) is skipped.
    """
    name = label or shift
    methods = {m for lv in levels for m in table.get(lv, {})}
    if model not in methods:
        best_overall = {}
        for lv in levels:
            b, v = _best_baseline(table.get(lv, {}), model)
            if b is not None:
                best_overall[lv] = b
        winners = sorted(set(best_overall.values()))
        text = (f"{name}: no trained model evaluated; best baseline: "
                + (", ".join(f"{b} ({', '.join(lv for lv, w in best_overall.items() if w == b)})" for b in winners)
                   or "none"))
        return Verdict(shift, text, model_always_best=None)
    if len(methods) == 1:
        return Verdict(shift, f"{name}: only the model was evaluated; no baseline to compare with.",
                       model_always_best=None)

    def below(lv: str) -> tuple[bool, str | None, float, float]:
        row = table.get(lv, {})
        mv = row.get(model)
        b, bv = _best_baseline(row, model)
        if not _finite(mv) or b is None:
            return False, b, mv if mv is not None else math.nan, bv
        return mv < bv - margin, b, mv, bv

    valid = [lv for lv in levels if _finite(table.get(lv, {}).get(model))]
    skipped = [lv for lv in levels if lv not in valid]
    crossings: list[dict] = []
    below_train = False
    if training_level is not None and training_level in valid:
        below_train = below(training_level)[0]

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

    all_below = [lv for lv in valid if below(lv)[0]]
    always_best = not all_below
    if below_train:
        b, bv = below(training_level)[1], below(training_level)[3]
        mv = table[training_level][model]
        text = (f"{name}: the model is already below {b} at the training level {training_level} "
                f"({_fmt(mv)} vs {_fmt(bv)})")
        others = [lv for lv in valid if lv != training_level and not below(lv)[0]]
        text += f"; it beats every baseline only at {', '.join(others)}." if others else \
            " and at every other level."
    elif always_best:
        text = f"{name}: the model stays above all baselines at every level"
        if valid:
            worst = min(valid, key=lambda lv: table[lv][model] - _best_baseline(table[lv], model)[1])
            gap = table[worst][model] - _best_baseline(table[worst], model)[1]
            text += f" (smallest lead {gap:.1f} dB, at {worst})."
        else:
            text += "."
    elif ordered and training_level is not None:
        parts = [f"the model falls below {c['baseline']} at {c['level']} ({_fmt(c['model'])} vs {_fmt(c['best'])})"
                 for c in crossings]
        text = f"{name}: " + "; ".join(parts) + "."
    else:
        parts = [f"{c['level']} ({c['baseline']} {_fmt(c['best'])} vs model {_fmt(c['model'])})" for c in crossings]
        text = f"{name}: a baseline beats the model at " + ", ".join(parts) + "."
        winners = [lv for lv in valid if lv not in all_below]
        if winners:
            text = text[:-1] + f"; the model is best at {', '.join(winners)}."
    if skipped:
        text += f" (model not applicable at: {', '.join(skipped)})"
    return Verdict(shift, text, crossings, below_train, always_best)


def verdicts_from_rows(rows: Sequence[Mapping], shifts: Sequence[Mapping], metric: str = "psnr",
                       margin: float = 0.0) -> list[Verdict]:
    """Verdicts for every shift from tidy stress rows (shift, level, method, metric, mean, std).

    `shifts` describes each shift: {name, label, levels (ordered), training_level, ordered}.
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
        out.append(shift_verdict(sh["name"], levels, table, sh.get("training_level"),
                                 ordered=sh.get("ordered", True), margin=margin, label=sh.get("label")))
    return out


__all__ = ["Verdict", "shift_verdict", "verdicts_from_rows", "MODEL", "LEARNED"]
