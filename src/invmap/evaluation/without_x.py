"""Scoring reconstructors on measurements without x: what y = K x + e alone can say.

A test set of measurements y_i without ground truth (``data.test_measurements``) allows no PSNR,
SSIM or error against x. For each method x̂_i = method(y_i, K) it scores what y does reveal:

- ``chi2``, the data misfit weighted by the noise model, per measured entry:
  χ²/m = (1/m) Σ_j (K x̂ − y)_j² / v_j (v_j the noise variance of entry j, m the measured entries):
  ≈ 1 when x̂ explains y down to the noise; well below 1, x̂ fits the noise; above, it misses part
  of y (variances floored at 10⁻³ of their mean, as the losses weigh them: Poisson noise at y = 0).
  Noise-free measurements have no such scale: the column is then empty and a note says so.
- ``sure_mse``, projected SURE (`invmap.selfsup.projected`): an unbiased estimate of
  ‖P(x̂ − x)‖²/n, the MSE in the range of Kᵀ (P = K⁺K; for K = I the MSE itself), valid for Gaussian
  noise of known σ only, and where CGLS reaches K⁺ (an ill-conditioned K such as sparse-view CT
  gets no number: K⁺ amplifies the noise past any use); elsewhere the column is empty and a note
  says why. The part of the error
  in the null space of K is invisible from y: the estimate is a lower bound of the MSE.

``consistency.csv`` and ``consistency.md`` hold these columns, plus ``x`` = "no x" on every row;
a ``metrics.csv`` of an earlier evaluation against x stays as it was.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from ..atomic import atomic_write, atomic_write_csv
from ..capabilities import Method
from ..data.sources import mix_seed
from ..files import read_csv
from ..method_output import check_output, MethodFailure
from ..selfsup.losses import sure_available
from ..selfsup.projected import NotConverged, projected_sure
from ..selfsup.variance import per_image, real, variance
from .evaluate import reconstruct

COLUMNS = ["method", "n", "x", "chi2_mean", "chi2_std", "sure_mse_mean", "sure_mse_std", "sure_of",
           "seconds_per_image"]
NO_X = "no x"
#: seeds the probes of projected SURE (image i's probe: (seed, this stream, i))
PROBE_STREAM = 0x5E1F6
CSV, MD = "consistency.csv", "consistency.md"


def chi2(x_hat: torch.Tensor, y: torch.Tensor, physics: Any) -> torch.Tensor | None:
    """χ²/m per image ``[B]`` (module docstring); None for noise-free measurements (no scale)."""
    v, m = variance(y, physics)
    count = per_image(m.float()).clamp_min(1)
    vbar = (per_image(v) / count).reshape(-1, *([1] * (v.dim() - 1)))
    if not bool((vbar > 0).all()):
        return None
    v = torch.maximum(v, 1e-3 * vbar)  # an entry of zero variance (Poisson at y = 0) weighs as a quiet one
    r = real(physics.operator(x_hat.to(torch.float32)) - y)
    w = torch.where(m, 1 / v, torch.zeros_like(v))
    return (per_image(w * r * r) / count).double().cpu()


def sure_of(physics: Any) -> str:
    """What ``sure_mse`` estimates for this K, or why it is absent (the ``sure_of`` column)."""
    if not sure_available(physics):
        return f"not valid: noise '{physics.noise.name}' is not Gaussian of a known σ"
    return "the MSE in the range of Kᵀ (projected SURE; K's null space unseen)"


def score_without_x(methods: Mapping[str, Method], y: torch.Tensor, physics: Any, batch_size: int = 16,
                    seed: int = 0, keep_going: bool = False) -> tuple[list[dict], dict[str, str], list[str]]:
    """Rows (`COLUMNS`) of every method on measurements `y` without x; ({method: why it failed}, notes).

    A method that raises or returns anything but a finite image batch fails in one line (with
    `keep_going` it is listed and the others scored)."""
    rows, failed, notes = [], {}, []
    sure_ok = sure_available(physics)
    what = sure_of(physics)
    if not sure_ok:
        notes.append(f"no SURE estimate: {what}")
    for name, method in methods.items():
        try:
            x_hat, secs = reconstruct(method, y, physics, batch_size)
            x_hat = check_output(x_hat, y, physics, name)
            c = chi2(x_hat, y, physics)
            est = None
            if sure_ok:
                try:
                    parts = []
                    for i in range(0, y.shape[0], max(1, batch_size)):
                        yb = y[i:i + batch_size]
                        gens = [torch.Generator().manual_seed(mix_seed(seed, PROBE_STREAM, i + k))
                                for k in range(len(yb))]
                        with torch.no_grad():
                            parts.append(projected_sure(lambda v, p: method(v, p), yb, physics, gens,
                                                        x_hat=x_hat[i:i + batch_size].to(yb.device)).double().cpu())
                    est = torch.cat(parts)
                except NotConverged as e:  # an ill-conditioned K: no number rather than a wrong one
                    sure_ok, what = False, f"not computed: {e}"
                    notes.append(f"no SURE estimate: {what}")
        except Exception as e:  # noqa: BLE001 - one line per method; re-raised unless keep_going
            if not keep_going:
                if isinstance(e, MethodFailure):
                    raise
                raise MethodFailure(f"method '{name}' failed on the test measurements ({type(e).__name__}: "
                                    f"{_first_line(e)}); nothing was written (--keep-going scores the others)") from None
            failed[name] = f"{type(e).__name__}: {_first_line(e)}"
            continue
        row: dict[str, Any] = {"method": name, "n": int(y.shape[0]), "x": NO_X, "sure_of": what if sure_ok else "",
                               "seconds_per_image": secs / max(1, y.shape[0])}
        for col, t in (("chi2", c), ("sure_mse", est)):
            row[f"{col}_mean"], row[f"{col}_std"] = (float(t.mean()), float(t.std(unbiased=False))) \
                if t is not None else (None, None)
        rows.append(row)
    if rows and rows[0]["chi2_mean"] is None:
        notes.append("no χ²: the measurements are noise-free (no noise scale to weigh the misfit by)")
    return rows, failed, notes


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def _cell(mu: float | None, sd: float | None, digits: str) -> str:
    return "n/a" if mu is None or not math.isfinite(mu) else f"{mu:{digits}} ± {sd:{digits}}"


def markdown_table(rows: Sequence[Mapping], notes: Sequence[str] = ()) -> str:
    """consistency.md: method | χ²/m | SURE MSE | ms / image | n, and what SURE estimates."""
    lines = ["Scored without x (the test measurements have no ground truth: no PSNR or SSIM can be computed).", "",
             "| method | χ²/m (1 = at the noise level) | SURE of the MSE | time / image (ms) | n |",
             "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['method']} | {_cell(r['chi2_mean'], r['chi2_std'], '.3f')} | "
              f"{_cell(r['sure_mse_mean'], r['sure_mse_std'], '.3g')} | {1e3 * r['seconds_per_image']:.1f} | {r['n']} |"
              for r in rows]
    what = next((r["sure_of"] for r in rows if r.get("sure_of")), "")
    tail = ([f"SURE estimates {what}."] if what else []) + list(notes)
    return "\n".join(lines + ([""] + [f"- {t}" for t in tail] if tail else [])) + "\n"


def text_table(rows: Sequence[Mapping]) -> str:
    """A fixed-width table for the terminal; its last line says that no PSNR was computed and why."""
    w = max([14] + [len(str(r["method"])) for r in rows])
    head = f"{'method':<{w}} {'chi2/m':>17} {'SURE MSE':>21} {'ms/image':>10} {'n':>5}"
    lines = [head, "-" * len(head)]
    lines += [f"{r['method']:<{w}} {_cell(r['chi2_mean'], r['chi2_std'], '.3f'):>17} "
              f"{_cell(r['sure_mse_mean'], r['sure_mse_std'], '.3g'):>21} {1e3 * r['seconds_per_image']:>10.1f} "
              f"{r['n']:>5}" for r in rows]
    what = next((r["sure_of"] for r in rows if r.get("sure_of")), "")
    lines.append("no x: no PSNR or SSIM; chi2/m = noise-weighted misfit per entry (1 at the noise level)"
                 + (f"; SURE estimates {what}" if what else ""))
    return "\n".join(lines)


def write(rows: Sequence[Mapping], out_dir: str | Path, failed: Mapping[str, str] | None = None,
          notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write consistency.csv and consistency.md into `out_dir` (atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out / CSV, COLUMNS, ({k: r.get(k) for k in COLUMNS} for r in rows))
    more = list(notes) + [f"{n} failed and has no row: {why}" for n, why in (failed or {}).items()]
    atomic_write(out / MD, markdown_table(rows, more))
    return out / CSV, out / MD


def read(path: str | Path, within: str | Path | None = None) -> list[dict]:
    """Rows of a consistency.csv (numbers parsed; empty cells None); a one-line ValueError otherwise."""
    try:
        header, table = read_csv(path, "consistency table", within=within)
        missing = [c for c in ("method", "n", "chi2_mean") if c not in header]
        if missing:
            raise ValueError(f"no {', '.join(repr(c) for c in missing)} column")
        return [{k: (v if k in ("method", "x", "sure_of") else int(v) if k == "n" else float(v) if v else None)
                 for k, v in r.items()} for r in table]
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a consistency table written by invmap ({e})") from None


def is_without_x(rows: Sequence[Mapping]) -> bool:
    """Whether `rows` were scored without x (`score_without_x`), not against x."""
    return bool(rows) and rows[0].get("x") == NO_X

__all__ = ["COLUMNS", "NO_X", "CSV", "MD", "chi2", "sure_of", "score_without_x", "markdown_table", "text_table",
           "write", "read", "is_without_x"]
