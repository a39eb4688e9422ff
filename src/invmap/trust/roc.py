"""How well a score separates an event: the ROC curve and its area (AUROC).

For scores s_i and events z_i ∈ {0, 1} (here: "the learned map is worse than the best
classical baseline on image i", the score its suspicion 1 − trust),

    AUROC = P(s_pos > s_neg) + ½ P(s_pos = s_neg)

over a random positive and a random negative: 1 = perfect ranking, ½ = chance. It is the
Mann–Whitney U statistic over n_pos·n_neg (`scipy.stats.mannwhitneyu`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def auroc(scores: Sequence[float], events: Sequence[bool]) -> float:
    """Area under the ROC curve of `scores` for `events` (NaN when one class is empty)."""
    from scipy.stats import mannwhitneyu

    s = np.asarray(scores, dtype=float)
    z = np.asarray(events, dtype=bool)
    if s.shape != z.shape:
        raise ValueError(f"auroc: {s.size} scores but {z.size} events")
    pos, neg = s[z], s[~z]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    return float(mannwhitneyu(pos, neg, alternative="two-sided").statistic) / (pos.size * neg.size)


def roc_curve(scores: Sequence[float], events: Sequence[bool]) -> tuple[list[float], list[float]]:
    """(false-positive rates, true-positive rates) from the strictest threshold to the loosest,
    one point per distinct score, starting at (0, 0) and ending at (1, 1)."""
    s = np.asarray(scores, dtype=float)
    z = np.asarray(events, dtype=bool)
    n_pos, n_neg = int(z.sum()), int((~z).sum())
    if n_pos == 0 or n_neg == 0:
        return [], []
    order = np.argsort(-s, kind="stable")
    s, z = s[order], z[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]  # the last index of each distinct score
    tp, fp = np.cumsum(z)[last], np.cumsum(~z)[last]
    return [0.0] + (fp / n_neg).tolist(), [0.0] + (tp / n_pos).tolist()


__all__ = ["auroc", "roc_curve"]
