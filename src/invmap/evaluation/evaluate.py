"""Score reconstructors on test pairs: PSNR, SSIM, relative error and time per image.

Every reconstructor — a variational method or a trained network — is called the same way,
``x̂ = method(y, physics)``, so the evaluator never special-cases one. For test pairs
(y_i, x_i), i = 1…N, and each method it reports the mean ± std over i of

    PSNR(x̂_i, x_i) = 10 log10(L² / mse),   SSIM(x̂_i, x_i),   ‖x̂_i − x_i‖ / ‖x_i‖,

and the wall-clock reconstruction time per image (batched calls, total / N). The data range
L of PSNR and SSIM is a stated convention (``data_range``: a fixed number, default 1, or
``"max-min"`` of each ground truth; `invmap.metrics.DataRange`); each row records it in its
``data_range`` column.

`summarize` turns the per-image numbers into table rows; `write_metrics` writes them as
``metrics.csv`` and ``metrics.md``; `text_table` formats them for the terminal.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .. import metrics
from ..atomic import atomic_write, atomic_write_csv
from ..capabilities import Method, capabilities
from ..files import read_csv
from ..method_output import check_output, MethodFailure
from ..metrics import data_range_label, DataRange
from ..trust.spread import coverage, spearman


#: Metrics scored per image: name → (function name in `invmap.metrics`, higher is better).
METRICS: dict[str, bool] = {"psnr": True, "ssim": True, "relative_error": False}

#: Scores some evaluations add (`evaluation.trust`): data consistency ρ, trust T (ground-truth free),
#: the per-image PSNR bound b and whether it held (``covered``: its mean is the bound's coverage).
#: Safe's promise (`invmap.trust.safe`): its margin bound to the baseline (dB), whether it promised to
#: stay within 0.5 dB of it, and on the promised images whether it did.
#: A posterior sampler's std map s against the true error (`invmap.trust.spread`): Spearman(s, |x̂ − x|)
#: and the fraction of pixels with |x̂ − x| ≤ 2s.
TRUST_SCORES = ("rho", "trust", "psnr_bound", "covered", "bound_level", "pixel_risk", "pixel_alpha",
                "pixel_confidence", "std_spearman", "std_coverage", "margin_bound", "promised", "promise_kept")

COLUMNS = ["method", "n", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std",
           "relative_error_mean", "relative_error_std", "seconds_per_image", "data_range",
           "rho_mean", "rho_std", "trust_mean", "trust_std", "psnr_bound_mean", "psnr_bound_std",
           "covered_mean", "covered_std", "bound_level_mean", "bound_level_std", "pixel_risk_mean", "pixel_risk_std",
           "pixel_alpha_mean", "pixel_alpha_std", "pixel_confidence_mean", "pixel_confidence_std",
           "std_spearman_mean", "std_spearman_std", "std_coverage_mean", "std_coverage_std",
           "margin_bound_mean", "margin_bound_std", "promised_mean", "promised_std", "promise_kept_mean",
           "promise_kept_std"]
#: columns that may be empty (not computed for a method, or a table written before they existed)
OPTIONAL = tuple(f"{m}_{s}" for m in TRUST_SCORES for s in ("mean", "std"))


@dataclass
class MethodScores:
    """Per-image scores of one method (tensors shaped [N]) and its time per image."""

    name: str
    scores: dict[str, torch.Tensor] = field(default_factory=dict)
    seconds_per_image: float = math.nan
    error: str | None = None  # why the method could not run on these pairs

    @property
    def n(self) -> int:
        return int(next(iter(self.scores.values())).numel()) if self.scores else 0


def score(x_hat: torch.Tensor, x: torch.Tensor, data_range: DataRange = 1.0) -> dict[str, torch.Tensor]:
    """Per-image PSNR, SSIM (data range L by the convention `data_range`) and relative error
    of `x_hat` against `x` (both [B, 1, H, W])."""
    x_hat = x_hat.detach().to(torch.float32).cpu()
    x = x.detach().to(torch.float32).cpu()
    ranged = {"psnr", "ssim"}
    return {m: getattr(metrics, m)(x_hat, x, **({"data_range": data_range} if m in ranged else {})).detach().double().cpu()
            for m in METRICS}


def reconstruct(method: Method, y: torch.Tensor, physics: Any, batch_size: int = 16,
                spread: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, float]:
    """x̂ = method(y, physics) in batches; returns (x̂ on CPU, total seconds). A posterior sampler
    (``method.posterior``) gives its mean, and with `spread` a list, its std maps are appended to it."""
    outs, total = [], 0.0
    sampler = capabilities(method).posterior
    with torch.no_grad():
        for i in range(0, y.shape[0], max(1, int(batch_size))):
            yb = y[i:i + batch_size]
            t0 = time.perf_counter()
            if sampler and spread is not None:
                drawn = method.sample(yb, physics)
                xb = drawn.mean
                spread.append(drawn.std.detach().cpu())
            else:
                xb = method(yb, physics)
            if isinstance(xb, torch.Tensor) and xb.is_cuda:
                torch.cuda.synchronize()
            total += time.perf_counter() - t0
            outs.append(xb.detach().cpu())
    return torch.cat(outs), total


def reconstruct_from(method: Any, y: torch.Tensor, physics: Any, parts: Mapping[str, tuple[torch.Tensor, float]],
                     batch_size: int = 16) -> tuple[torch.Tensor, float]:
    """x̂ = method.from_reconstructions(y, physics, {role: x̂_role}) in batches, from the (x̂, seconds)
    of the methods it builds on; returns (x̂ on CPU, its seconds plus theirs)."""
    outs, total = [], sum(secs for _, secs in parts.values())
    with torch.no_grad():
        for i in range(0, y.shape[0], max(1, int(batch_size))):
            sl = slice(i, i + batch_size)
            t0 = time.perf_counter()
            outs.append(method.from_reconstructions(y[sl], physics, {r: x[sl] for r, (x, _) in parts.items()}).cpu())
            total += time.perf_counter() - t0
    return torch.cat(outs), total


def evaluate_methods(methods: Mapping[str, Method], y: torch.Tensor, x: torch.Tensor, physics: Any,
                     batch_size: int = 16, keep: int = 0, strict: bool = False, data_range: DataRange = 1.0,
                     spreads: dict[str, torch.Tensor] | None = None, keep_going: bool = False
                     ) -> tuple[dict[str, MethodScores], dict[str, torch.Tensor]]:
    """Score every method on the pairs (y, x) reconstructed with `physics` (PSNR/SSIM with
    the data range convention `data_range`).

    Returns ({name: MethodScores}, {name: first `keep` reconstructions}). Every x̂ is checked in one
    place (`invmap.method_output.check_output`: real, [B, 1, H, W], finite); a method that fails that
    check, or a method from outside that raises or runs out of time, is a `MethodFailure`, raised
    unless `keep_going`. A built-in method that raises (e.g. a network that cannot take this
    measurement shape) gets ``error`` set and no scores, unless `strict`; with `keep_going` so does
    a failed one. A method that builds on others' reconstructions (its
    ``reuses`` = {role: method name}, e.g. ``safe`` on ``model`` and ``tv``) is given those
    that already ran (``from_reconstructions``, the same x̂ as its own call); its time
    includes theirs. A posterior sampler (``posterior``) is scored on its mean, and its std map
    on the true error (``std_spearman``, ``std_coverage``); `spreads`, when given, receives the
    first `keep` std maps of each.
    """
    results: dict[str, MethodScores] = {}
    recons: dict[str, torch.Tensor] = {}
    reused = {n for m in methods.values() for n in capabilities(m).reuses.values()}
    done: dict[str, tuple[torch.Tensor, float]] = {}
    for name, method in methods.items():
        spread: list[torch.Tensor] = []  # a posterior sampler's std maps
        try:
            parts = capabilities(method).reuses
            if parts and all(n in done for n in parts.values()):
                x_hat, secs = reconstruct_from(method, y, physics, {r: done[n] for r, n in parts.items()}, batch_size)
            else:
                x_hat, secs = reconstruct(method, y, physics, batch_size, spread)
            x_hat = check_output(x_hat, y, physics, name)
        except Exception as e:  # noqa: BLE001 - recorded per method, re-raised when strict or a failure
            if strict or (isinstance(e, MethodFailure) and not keep_going):
                raise
            why = str(e).strip().splitlines()[0] if str(e).strip() else ""
            results[name] = MethodScores(name, error=why if isinstance(e, MethodFailure) else f"{type(e).__name__}: {why}")
            continue
        results[name] = MethodScores(name, score(x_hat, x, data_range), secs / max(1, y.shape[0]))
        if spread:  # a posterior sampler: does its std map point at the true error?
            std, err = torch.cat(spread), (x_hat - x.detach().cpu().float()).abs()
            results[name].scores["std_spearman"] = spearman(std, err)
            results[name].scores["std_coverage"] = coverage(err, std)
            if spreads is not None and keep:
                spreads[name] = std[:keep]
        if name in reused:
            done[name] = (x_hat, secs)
        if keep:
            recons[name] = x_hat[:keep]
    return results, recons


def _mean_std(t: torch.Tensor) -> tuple[float, float]:
    t = t[~torch.isnan(t)]  # +inf PSNR (a perfect reconstruction) is kept
    if t.numel() == 0:
        return math.nan, math.nan
    return float(t.mean()), float(t.std(unbiased=False)) if t.numel() > 1 else 0.0


def summarize(results: Mapping[str, MethodScores], data_range: DataRange = 1.0) -> list[dict]:
    """One row per method with mean/std of each metric, seconds per image and the PSNR/SSIM
    data range convention the scores used (see `COLUMNS`)."""
    rows = []
    for name, r in results.items():
        if r.error is not None:
            continue
        row: dict[str, Any] = {"method": name, "n": r.n}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = _mean_std(r.scores[m])
        row["seconds_per_image"] = r.seconds_per_image
        row["data_range"] = data_range
        for m in TRUST_SCORES:  # None (an empty cell) where not computed, e.g. no trust score for TV
            mu, sd = _mean_std(r.scores[m]) if m in r.scores else (math.nan, math.nan)
            row[f"{m}_mean"], row[f"{m}_std"] = (mu, sd) if math.isfinite(mu) else (None, None)
        rows.append(row)
    return rows


def merge_rows(old: Sequence[Mapping], new: Sequence[Mapping]) -> tuple[list[dict], list[str]]:
    """`new` rows laid over the `old` rows of a metrics table: a method's new row replaces its
    old one in place, other old rows stay, new methods follow. Returns (rows, kept methods)."""
    fresh = {r["method"]: dict(r) for r in new}
    rows = [fresh.pop(r["method"], None) or dict(r) for r in old]
    kept = [r["method"] for r in old if r["method"] not in {n["method"] for n in new}]
    return rows + list(fresh.values()), kept


def psnr_heading(rows: Sequence[Mapping]) -> str:
    """"PSNR (dB, L = …)": the PSNR column heading with the rows' data range convention."""
    ranges = {str(r.get("data_range", 1.0)) for r in rows}
    if len(ranges) != 1:
        return "PSNR (dB)"
    return f"PSNR (dB, {data_range_label(rows[0].get('data_range', 1.0))})"


def markdown_table(rows: Sequence[Mapping]) -> str:
    """A GitHub-Markdown table: method | PSNR (dB, L) | SSIM | rel. error | ms / image | n | ρ | trust."""
    head = (f"| method | {psnr_heading(rows)} | SSIM | relative error | time / image (ms) | n | ρ (data consistency) "
            f"| trust |")
    sep = "|---|---:|---:|---:|---:|---:|---:|---:|"
    lines = [head, sep]
    for r in rows:
        lines.append(f"| {r['method']} | {r['psnr_mean']:.2f} ± {r['psnr_std']:.2f} | "
                     f"{r['ssim_mean']:.3f} ± {r['ssim_std']:.3f} | "
                     f"{r['relative_error_mean']:.3f} ± {r['relative_error_std']:.3f} | "
                     f"{1e3 * r['seconds_per_image']:.1f} | {r['n']} | {_pm(r, 'rho')} | {_pm(r, 'trust')} |")
    bounds = [bound_line(r) for r in rows if bound_line(r)]
    return "\n".join(lines + ([""] + bounds if bounds else [])) + "\n"


def bound_line(r: Mapping) -> str:
    """One sentence on a row's per-image PSNR bound (`invmap.trust.conformal`), with its level; "" without one."""
    b, cov, level = r.get("psnr_bound_mean"), r.get("covered_mean"), r.get("bound_level_mean")
    if b is None or level is None or not math.isfinite(b):
        return ""
    held = f"; it held on {100 * cov:.0f}% of these images" if cov is not None and math.isfinite(cov) else ""
    risk, alpha, conf = r.get("pixel_risk_mean"), r.get("pixel_alpha_mean"), r.get("pixel_confidence_mean")
    px = (f"; its pixel intervals (at most {alpha:g} of the pixels outside with probability {conf:g}) missed "
          f"{risk:.3f}" if risk is not None and alpha is not None and conf is not None and math.isfinite(risk) else "")
    return (f"{r['method']}: PSNR ≥ b per image with probability {level:g} (split conformal, trust-scaled), "
            f"mean b = {b:.2f} dB{held}{px}")


def text_table(rows: Sequence[Mapping]) -> str:
    """A fixed-width table for the terminal (its last line states the PSNR/SSIM data range)."""
    w = max([14] + [len(str(r["method"])) for r in rows])
    head = (f"{'method':<{w}} {'PSNR (dB)':>15} {'SSIM':>15} {'rel. error':>15} {'ms/image':>10} {'n':>5} "
            f"{'rho':>13} {'trust':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<{w}} {r['psnr_mean']:>8.2f} ± {r['psnr_std']:<4.2f} "
                     f"{r['ssim_mean']:>8.3f} ± {r['ssim_std']:<4.3f} "
                     f"{r['relative_error_mean']:>8.3f} ± {r['relative_error_std']:<4.3f} "
                     f"{1e3 * r['seconds_per_image']:>10.1f} {r['n']:>5} {_pm(r, 'rho'):>13} {_pm(r, 'trust'):>13}")
    if rows:
        lines.append(psnr_heading(rows))
    lines += [bound_line(r) for r in rows if bound_line(r)]
    return "\n".join(lines)


def _pm(r: Mapping, m: str) -> str:
    """``mean ± std`` of score `m` in a row, or ``n/a`` when it was not computed."""
    mu, sd = r.get(f"{m}_mean"), r.get(f"{m}_std")
    return "n/a" if mu is None or not math.isfinite(mu) else f"{mu:.2f} ± {sd:.2f}"


def write_metrics(rows: Sequence[Mapping], out_dir: str | Path, failed: Mapping[str, str] | None = None,
                  budgets: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """Write ``metrics.csv`` (columns `COLUMNS`) and ``metrics.md`` into `out_dir` (atomically);
    `failed` ({method: why}, ``--keep-going``) and the time `budgets` of methods from outside
    ({"time budget of NAME": text}) are listed under the table of metrics.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "metrics.csv", out / "metrics.md"
    atomic_write_csv(csv_path, COLUMNS, ({k: r.get(k, 1.0) if k == "data_range" else r.get(k) for k in COLUMNS}
                                         for r in rows))
    notes = "".join(f"\n- {name} failed and has no row: {why}\n" for name, why in (failed or {}).items())
    notes += "".join(f"\n- {what}: {text}\n" for what, text in (budgets or {}).items())
    atomic_write(md_path, markdown_table(rows) + notes)
    return csv_path, md_path


def read_metrics(path: str | Path, within: str | Path | None = None) -> list[dict]:
    """Rows of a ``metrics.csv`` with numbers parsed (a one-line ValueError for anything else);
    ``data_range`` is a number or "max-min" (files written before it was recorded used L = 1)."""
    rows = []
    try:
        header, table = read_csv(path, "metrics table", within=within)
        missing = [c for c in ("method", "n", "psnr_mean") if c not in header]
        if missing:
            raise ValueError(f"no {', '.join(repr(c) for c in missing)} column")
        for r in table:
            row = {k: (v if k == "method" else int(v) if k == "n" else None if k in OPTIONAL and not v
                       else float(v)) for k, v in r.items() if k != "data_range"}
            dr = r.get("data_range") or "1"
            row["data_range"] = dr if dr == "max-min" else float(dr)
            rows.append(row)
    except FileNotFoundError:
        raise
    except (ValueError, TypeError, csv.Error, UnicodeDecodeError) as e:
        why = str(e).replace(f"metrics table {path}: ", "").replace(f"metrics table {path} ", "")
        raise ValueError(f"{path}: not a metrics table written by invmap ({why})") from None
    return rows


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


__all__ = ["METRICS", "COLUMNS", "MethodScores", "score", "reconstruct", "reconstruct_from",
           "evaluate_methods",
           "summarize", "merge_rows", "markdown_table", "text_table", "write_metrics", "read_metrics",
           "atomic_write_json"]
