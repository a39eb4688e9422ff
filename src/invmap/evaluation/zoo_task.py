"""Which zoo entries are of a config's task, and the check each card records.

- `task_difference(NAME, config)`: None when entry NAME was trained and scored on the task of
  `config`, else the first difference; `matching(config)` the entries of its task;
  `beside(config)` the ``pretrained:NAME`` methods `invmap run` scores beside its own model;
- `check_psnr(run)`: the mean test PSNR a card records and the zoo tests repeat.

The entries themselves (names, cards, verified files): `invmap.zoo`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config import first_difference, load_config
from ..models import load_model
from ..zoo import PREFIX, card, is_pretrained, names, verify
from .evaluate import evaluate_methods
from .resolve import MODEL
from .task import condition_from_config, config_task, make_pairs


def task_difference(name: str, config: Any) -> str | None:
    """None when entry `name` was trained and scored on the task of `config` (source, size,
    physics as built, test simulation, PSNR data range: `invmap.evaluation.task.config_task`;
    an entry trained over drawn physics is scored at its nominal one); else the first
    difference, as ``key: theirs against ours``."""
    theirs = config_task(load_config(verify(name) / "config.yaml"))
    diff = first_difference(config_task(config), theirs)
    return None if diff is None else f"{diff[0]}: {str(diff[2])[:60]} against {str(diff[1])[:60]}"


def kind_of_config(config: Any) -> str:
    """The kind a config trains, as a card names it (``lpd``; ``unet on fbp``)."""
    m = config.model
    return m.name if m.is_kind else f"{m.name} on {m.input}"


def matching(config: Any) -> list[str]:
    """The entries of the task of `config` (`task_difference`), the ones of the configured kind
    first, then by their card's test PSNR, best first."""
    found = [n for n in names() if task_difference(n, config) is None]
    kind = kind_of_config(config)

    def rank(n: str) -> tuple[bool, float]:
        c = card(n)
        return c.get("kind") != kind, -float((c.get("test") or {}).get("psnr", {}).get("model", float("-inf")))
    return sorted(found, key=rank)


def lacks_x(config: Any) -> str | None:
    """Why a run cannot make a choice by PSNR on its own data (None when it can): it learned from
    measurements without x (``data.measurements``), or its test set holds none (``data.test_measurements``)."""
    d = config.data
    if d.test_measurements:
        return "its test set holds measurements without x (data.test_measurements): no PSNR can be computed on it"
    if d.measurements:
        return ("it learned from measurements without x (data.measurements): a PSNR on data.source's simulated "
                "images does not measure it on its own data")
    return None


def beside(config: Any) -> list[str]:
    """``pretrained:NAME`` methods `invmap run` evaluates and stresses beside the freshly trained model
    (``evaluation.zoo``): ``true`` the first of `matching` (the entry of the configured kind, else the
    best scoring one, if any) — none for a run without x of its own (`lacks_x`: a choice by PSNR it
    cannot make), ``false`` none, a list those entries (each must be of this task)."""
    want = config.evaluation.zoo
    if want is False or (want is True and lacks_x(config)):
        return []
    if want is True:
        return [PREFIX + n for n in matching(config)[:1]]
    out = []
    for target in want:
        name = str(target)[len(PREFIX):] if is_pretrained(target) else str(target)
        why = task_difference(name, config)  # an unknown name lists the entries
        if why is not None:
            raise ValueError(f"evaluation.zoo: entry '{name}' is of another task ({why})")
        out.append(PREFIX + name)
    return out


#: the check a card records and the test repeats: PSNR on the first CHECK_N test images of the task
CHECK_N = 16


def check_psnr(run: str | os.PathLike, n: int = CHECK_N) -> float:
    """Mean test PSNR (dB, float32, the run's evaluation.data_range) of the model of `run` (a run
    or entry directory) on the first `n` test pairs of its own task (config.yaml)."""
    d = Path(run)
    config = load_config(d / "config.yaml")
    why = lacks_x(config)
    if why is not None:
        raise ValueError(f"{d}: no test PSNR for a zoo card: {why}")
    model, _ = load_model(d)
    y, x, physics = make_pairs(condition_from_config(config, n=n))
    res, _ = evaluate_methods({MODEL: model}, y, x, physics, data_range=config.evaluation.data_range, strict=True)
    return float(res[MODEL].scores["psnr"].mean())


__all__ = ["task_difference", "kind_of_config", "lacks_x", "matching", "beside", "check_psnr", "CHECK_N"]
