"""Figures of a run (matplotlib Agg, PNG): reconstructions, training curves, stress curves.

- `recon_grid`: per example a row of ground truth x, measurement y, and each method's x̂,
  and below it the error maps |x̂ − x| on ONE colour scale shared by all methods;
- `posterior_grid`: a posterior sampler's mean, its true error and 2·std on one scale;
- `training_curves`: the loss columns and the validation PSNR of ``train_log.csv``;
- `stress_plot`: mean PSNR (± std) against the shift level, one line per method with the
  training level marked; categorical levels (object class, noise family) as grouped bars.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from ..atomic import atomic_write
from ..files import read_csv
from .resolve import MODEL
from .verdicts import learned_of


def _plt():
    import matplotlib

    if "inline" not in matplotlib.get_backend():  # a notebook's inline backend stays (its own plots show)
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format=p.suffix[1:] or "png"))
    _plt().close(fig)
    return p


def _img(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().reshape(t.shape[-2], t.shape[-1]).numpy()


def measurement_image(y: torch.Tensor) -> tuple[np.ndarray, str]:
    """A displayable 2-D view of one measurement y ([C, ...] or [...]) and a caption.

    Complex k-space is shown as log(1 + |y|) (centred); anything else as its last two axes
    (a sinogram is angles × detectors).
    """
    y = y.detach().cpu()
    if y.is_complex():
        a = torch.fft.fftshift(y.abs(), dim=(-2, -1)) if y.dim() >= 2 else y.abs()
        return np.log1p(a.reshape(a.shape[-2], a.shape[-1]).float().numpy()), "measurement log(1+|y|)"
    if y.dim() == 1:
        return y.float().numpy()[None, :], "measurement"
    return y.float().reshape(-1, y.shape[-2], y.shape[-1])[0].numpy(), "measurement y"


def recon_grid(x: torch.Tensor, y: torch.Tensor, recons: Mapping[str, torch.Tensor], path: str | Path,
               n: int = 3, psnr: Mapping[str, Sequence[float]] | None = None) -> Path:
    """Ground truth, measurement and each method's x̂ for `n` examples, with error maps |x̂ − x|.

    All images share the grey scale [0, 1]; all error maps share one scale (the 99th
    percentile of the largest error over every method and example shown).
    """
    plt = _plt()
    names = list(recons)
    n = max(1, min(n, x.shape[0], *(r.shape[0] for r in recons.values())) if names else min(n, x.shape[0]))
    errs = {m: (recons[m][:n].float() - x[:n].float()).abs() for m in names}
    vmax = max([float(torch.quantile(e.flatten(), 0.99)) for e in errs.values()] + [1e-6])
    cols = 2 + len(names)
    # one extra narrow column holds each error row's colour bar (same scale in every row)
    fig, axes = plt.subplots(2 * n, cols + 1, figsize=(2.1 * cols + 0.6, 2.4 * 2 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1.0] * cols + [0.08]})
    for i in range(n):
        top, bot = axes[2 * i][:cols], axes[2 * i + 1][:cols]
        axes[2 * i][cols].axis("off")
        top[0].imshow(_img(x[i]), cmap="gray", vmin=0, vmax=1)
        top[0].set_title("ground truth", fontsize=8)
        m_img, cap = measurement_image(y[i])
        top[1].imshow(m_img, cmap="gray", aspect="auto" if m_img.shape != _img(x[i]).shape else "equal")
        top[1].set_title(cap, fontsize=8)
        err_im = None
        for j, m in enumerate(names):
            top[2 + j].imshow(_img(recons[m][i]), cmap="gray", vmin=0, vmax=1)
            title = m
            if psnr and m in psnr and i < len(psnr[m]):
                title += f"\n{float(psnr[m][i]):.1f} dB"
            top[2 + j].set_title(title, fontsize=8)
            err_im = bot[2 + j].imshow(_img(errs[m][i]), cmap="magma", vmin=0, vmax=vmax)
            bot[2 + j].set_title(f"|{m} − x|", fontsize=8)
        bot[0].axis("off")
        bot[1].axis("off")
        if err_im is not None:
            bot[1].text(0.5, 0.5, f"error maps\nshared scale\n0 … {vmax:.3f}", ha="center", va="center",
                        fontsize=8, transform=bot[1].transAxes)
            fig.colorbar(err_im, cax=axes[2 * i + 1][cols], label="|x̂ − x|")
        else:
            axes[2 * i + 1][cols].axis("off")
        for a in list(top) + list(bot):
            a.set_xticks([])
            a.set_yticks([])
    return _save(fig, path)


def posterior_grid(x: torch.Tensor, means: Mapping[str, torch.Tensor], stds: Mapping[str, torch.Tensor],
                   path: str | Path, n: int = 3) -> Path:
    """For each posterior sampler and example: its mean x̂, the true error |x̂ − x| and 2·std,
    the last two on one shared scale (where 2·std ≥ |x̂ − x| the spread covers the error)."""
    plt = _plt()
    names = list(means)
    n = max(1, min(n, x.shape[0], *(means[m].shape[0] for m in names), *(stds[m].shape[0] for m in names)))
    errs = {m: (means[m][:n].float() - x[:n].float()).abs() for m in names}
    vmax = max([float(torch.quantile(t.flatten().float(), 0.99)) for m in names for t in (errs[m], 2 * stds[m][:n])]
               + [1e-6])
    fig, axes = plt.subplots(n * len(names), 3, figsize=(6.6, 2.3 * n * len(names)), squeeze=False)
    for j, m in enumerate(names):
        for i in range(n):
            row = axes[j * n + i]
            row[0].imshow(_img(means[m][i]), cmap="gray", vmin=0, vmax=1)
            row[0].set_title(f"{m} posterior mean", fontsize=8)
            row[1].imshow(_img(errs[m][i]), cmap="magma", vmin=0, vmax=vmax)
            row[1].set_title("|x̂ − x| (true error)", fontsize=8)
            im = row[2].imshow(_img(2 * stds[m][i]), cmap="magma", vmin=0, vmax=vmax)
            row[2].set_title("2·std (no ground truth)", fontsize=8)
            fig.colorbar(im, ax=list(row[1:]), fraction=0.046)
            for a in row:
                a.set_xticks([])
                a.set_yticks([])
    return _save(fig, path)


def read_curves(path: str | Path) -> dict[str, list[float]]:
    """Columns of a CSV log (e.g. ``train_log.csv``) as float lists (non-numbers → NaN)."""
    cols: dict[str, list[float]] = {}
    for row in read_csv(path, "log")[1]:
        for k, v in row.items():
            try:
                val = float(v)
            except (TypeError, ValueError):
                val = math.nan
            cols.setdefault(k, []).append(val)
    return cols


def training_curves(log_path: str | Path, path: str | Path) -> Path | None:
    """Loss columns (log scale) and validation PSNR against the epoch; None when the log is empty."""
    cols = read_curves(log_path)
    if not cols or not next(iter(cols.values())):
        return None
    plt = _plt()
    xkey = next((k for k in ("epoch", "step", "iteration") if k in cols), None)
    xs = cols[xkey] if xkey else list(range(1, len(next(iter(cols.values()))) + 1))
    loss_keys = [k for k in cols if "loss" in k.lower()]
    psnr_keys = [k for k in cols if "psnr" in k.lower()]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.3))
    for k in loss_keys:
        v = np.asarray(cols[k], dtype=float)
        a1.plot(xs, v, marker="o", ms=3, label=k)
    if loss_keys and all(np.nanmin(np.asarray(cols[k], dtype=float)) > 0 for k in loss_keys
                         if np.isfinite(np.asarray(cols[k], dtype=float)).any()):
        a1.set_yscale("log")
    a1.set_xlabel(xkey or "epoch")
    a1.set_title("loss")
    if loss_keys:
        a1.legend(fontsize=8)
    for k in psnr_keys:
        a2.plot(xs, cols[k], marker="o", ms=3, label=k)
    a2.set_xlabel(xkey or "epoch")
    a2.set_ylabel("PSNR (dB)")
    a2.set_title("validation PSNR")
    if psnr_keys:
        a2.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def stress_plot(shift: Mapping, rows: Sequence[Mapping], path: str | Path, metric: str = "psnr") -> Path | None:
    """PSNR against level for one shift (`shift`: name, label, levels, training_level, ordered)."""
    plt = _plt()
    rs = [r for r in rows if r["shift"] == shift["name"] and r["metric"] == metric]
    if not rs:
        return None
    levels = [str(lv) for lv in shift["levels"] if any(str(r["level"]) == str(lv) for r in rs)]
    methods = list(dict.fromkeys(r["method"] for r in rs))
    val = {(str(r["level"]), r["method"]): (float(r["mean"]), float(r["std"])) for r in rs}
    train = shift.get("training_level")
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(levels) + 2), 3.4))
    xs = np.arange(len(levels))
    if shift.get("ordered", True):
        for m in methods:
            mu = np.array([val.get((lv, m), (math.nan, math.nan))[0] for lv in levels])
            sd = np.array([val.get((lv, m), (math.nan, math.nan))[1] for lv in levels])
            style = dict(lw=2.4, color="black") if m == MODEL else dict(lw=1.4)
            ax.errorbar(xs, mu, yerr=sd, marker="o", ms=4, capsize=2, label=m, **style)
        if train is not None and str(train) in levels:
            t = levels.index(str(train))
            ax.axvline(t, color="grey", ls="--", lw=1)
            ax.annotate("training", (t, 1.0), xycoords=("data", "axes fraction"), ha="center", va="bottom",
                        fontsize=8, color="grey")
    else:
        w = 0.8 / max(1, len(methods))
        for j, m in enumerate(methods):
            mu = [val.get((lv, m), (math.nan, math.nan))[0] for lv in levels]
            sd = [val.get((lv, m), (math.nan, math.nan))[1] for lv in levels]
            ax.bar(xs + (j - (len(methods) - 1) / 2) * w, mu, w, yerr=sd, capsize=2, label=m,
                   color="black" if m == MODEL else None, alpha=0.85)
        finite = [val[k][0] for k in val if math.isfinite(val[k][0])]
        if finite:
            lo, hi = min(finite), max(finite)
            ax.set_ylim(lo - 0.15 * (hi - lo + 1), hi + 0.1 * (hi - lo + 1))
        if train is not None and str(train) in levels:
            t = levels.index(str(train))
            ax.axvspan(t - 0.45, t + 0.45, color="grey", alpha=0.12, lw=0)
    ax.set_xticks(xs)
    ax.set_xticklabels(levels, rotation=20 if max(len(lv) for lv in levels) > 6 else 0, fontsize=8)
    ax.set_xlabel(shift.get("axis") or shift.get("label") or shift["name"])
    ax.set_ylabel("PSNR (dB)" if metric == "psnr" else metric)
    ax.set_title(shift.get("label") or shift["name"], fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def _cell_label(level: str, width: int = 18) -> str:
    """A level name short enough for one cell ("folder:/a/b/ct" → "folder ct", no "(training)")."""
    lv = level.replace(" (training)", "")
    if lv.startswith("folder:"):
        lv = "folder " + (Path(lv[len("folder:"):]).name or lv[len("folder:"):])
    return lv if len(lv) <= width else lv[: width - 1] + "…"


def stress_overview(shifts: Sequence[Mapping], rows: Sequence[Mapping], path: str | Path,
                    metric: str = "psnr") -> Path | None:
    """One picture of the whole study: per shift and learned method (row) and level (cell),
    the method's mean PSNR minus the best classical baseline's (blue: the learned method is
    better, red: a baseline is); the training conditions are framed. The learned methods of
    a shift are those it records (`verdicts.learned_of`): the trained model, the safe mode,
    a plug-and-play scheme … None when no learned method meets a baseline."""
    found: list[tuple[str, str, list[tuple[str, float, bool]]]] = []  # (shift label, method, cells)
    for sh in shifts:
        rs = [r for r in rows if r["shift"] == sh["name"] and r["metric"] == metric]
        learned, hidden = learned_of(sh), sh.get("unidentifiable") or {}
        for model in learned:
            cells = []
            for lv in map(str, sh["levels"]):
                vals = {r["method"]: float(r["mean"]) for r in rs if str(r["level"]) == lv}
                base = [v for m, v in vals.items() if m not in learned and math.isfinite(v)]
                if model in vals and base and math.isfinite(vals[model]):
                    cells.append((lv, vals[model] - max(base), lv == str(sh.get("training_level")), lv in hidden))
            if cells:
                found.append((sh.get("label") or sh["name"], model, cells))
    named = len({m for _, m, _ in found}) > 1  # several learned methods: each row says whose it is
    grid = [(f"{label} · {m}" if named else label, cells) for label, m, cells in found]
    greyed = any(c[3] for _, cells in grid for c in cells)
    return delta_heatmap(grid, path, "learned method's PSNR − best baseline PSNR (dB) per shift and level; "
                                     "framed: training conditions" + ("; hatched: not identifiable from (y, K)"
                                                                      if greyed else ""))


def delta_heatmap(grid: Sequence[tuple[str, Sequence[tuple[str, float, bool]]]], path: str | Path,
                  title: str) -> Path | None:
    """A heatmap of PSNR differences in dB: one row per shift, one cell per level
    ``(level, difference, framed[, hatched])`` (blue: positive, red: negative; symmetric colour
    scale up to ±10 dB; hatched in grey: a level trust is not scored on). None when `grid` is empty."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    if not grid:
        return None
    ncol = max(len(c) for _, c in grid)
    delta = np.full((len(grid), ncol), np.nan)
    for i, (_, cells) in enumerate(grid):
        delta[i, :len(cells)] = [c[1] for c in cells]
    lim = float(min(10.0, max(1.0, np.nanmax(np.abs(delta)))))
    fig, ax = plt.subplots(figsize=(1.25 * ncol + 3.2, 0.52 * len(grid) + 1.3))
    im = ax.imshow(np.ma.masked_invalid(delta), cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    for i, (_, cells) in enumerate(grid):
        for j, (lv, d, train, *hatched) in enumerate(cells):
            ax.text(j, i, f"{_cell_label(lv)}\n{d:+.1f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(d) > 0.6 * lim else "black")
            if train:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="black"))
            if hatched and hatched[0]:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=0, hatch="///", ec="0.55"))
    ax.set_yticks(range(len(grid)))
    ax.set_yticklabels([g for g, _ in grid], fontsize=8)
    ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02, label="dB")
    fig.tight_layout()
    return _save(fig, path)


__all__ = ["recon_grid", "posterior_grid", "training_curves", "stress_plot", "stress_overview", "delta_heatmap", "measurement_image",
           "read_curves", "trust_roc"]


def trust_roc(summary: Mapping, path: str | Path) -> Path | None:
    """The ROC curve of the trust score (suspicion 1 − trust) for the event "the model is worse
    than the best classical baseline on this image", over every stress image; the per-shift
    AUROCs in the legend's title. None when the curve is empty."""
    roc = summary.get("roc") or {}
    if not roc.get("fpr"):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot(roc["fpr"], roc["tpr"], color="black", lw=2,
            label=f"all stress images: AUROC {summary['auroc']:.3f}" if summary.get("auroc") is not None else "all")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance")
    ax.set_xlabel("false-positive rate (model fine, flagged)")
    ax.set_ylabel("true-positive rate (model worse, flagged)")
    ax.set_title(f"Trust score vs. truth ({summary.get('worse', 0)} of {summary.get('images', 0)} images worse)",
                 fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)
