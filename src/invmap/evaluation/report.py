"""``report.html``: one self-contained page per run (config, tables, figures, verdicts).

Every image is embedded as a ``data:image/png;base64,…`` URI and the style sheet is
inline, so the page can be mailed or archived alone: it references no other file and no
network address. `build_report(run_dir)` gathers what the run directory holds
(config.yaml, metrics.csv, train_log.csv, stress.csv / stress.json, figures/*.png).
"""

from __future__ import annotations

import base64
import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from ..atomic import atomic_write
from ..files import read_bytes, read_text
from ..paths import inside
from .evaluate import bound_line, psnr_heading, read_metrics
from .figures import training_curves
from .resolve import MODEL
from .runs import baselines_note, read_baselines
from .stress import read_stress_csv, read_stress_json
from .without_x import CSV as CONSISTENCY_CSV, read as read_consistency

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} th,td{border:1px solid #ccc;padding:.25em .6em}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.model td{font-weight:600} pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.85em}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:.85em;color:#555}
.verdict{background:#f4f8ff;border-left:4px solid #3b6fd8;padding:.4em .8em;margin:.5em 0}
.muted{color:#777;font-size:.9em}
tr.unidentifiable td{color:#888;background:repeating-linear-gradient(45deg,#f4f4f4,#f4f4f4 4px,#fff 4px,#fff 8px)}
"""


def data_uri(png_path: str | Path) -> str:
    """The PNG file as a ``data:image/png;base64,`` URI."""
    return "data:image/png;base64," + base64.b64encode(read_bytes(png_path, "figure")).decode("ascii")


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _num(v: object, digits: int = 2) -> str:
    if v is None:  # e.g. an AUROC where every image fell on one side
        return "–"
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _e(v)
    return "–" if not math.isfinite(f) else f"{f:.{digits}f}"


def html_table(header: Sequence[str], rows: Sequence[Sequence[object]], classes: Sequence[str] | None = None) -> str:
    """A plain HTML table; numeric cells are right-aligned."""
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        cls = f' class="{_e(classes[i])}"' if classes and classes[i] else ""
        cells = []
        for c in r:
            is_num = isinstance(c, (int, float)) or (isinstance(c, str) and c.replace(".", "", 1).replace("±", "")
                                                       .replace(" ", "").replace("-", "").isdigit())
            cells.append(f'<td class="num">{_e(c)}</td>' if is_num else f"<td>{_e(c)}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _or_nan(v: object) -> object:
    return math.nan if v is None else v


def metrics_html(rows: Sequence[Mapping]) -> str:
    header = ["method", psnr_heading(rows), "SSIM", "relative error", "time / image (ms)", "n",
              "ρ (data consistency)", "trust"]
    body = [[r["method"], f"{_num(r['psnr_mean'])} ± {_num(r['psnr_std'])}",
             f"{_num(r['ssim_mean'], 3)} ± {_num(r['ssim_std'], 3)}",
             f"{_num(r['relative_error_mean'], 3)} ± {_num(r['relative_error_std'], 3)}",
             _num(1e3 * float(r["seconds_per_image"]), 1), r["n"],
             _num(_or_nan(r.get("rho_mean"))), _num(_or_nan(r.get("trust_mean")))] for r in rows]
    table = html_table(header, body, ["model" if r["method"] == MODEL else "" for r in rows])
    return table + "".join(f"\n<p>{_e(bound_line(r))}.</p>" for r in rows if bound_line(r))


def without_x_html(rows: Sequence[Mapping]) -> str:
    """The methods scored on test measurements without x (`invmap.evaluation.without_x`): no PSNR column."""
    header = ["method", "χ²/m (1 = at the noise level)", "SURE of the MSE", "time / image (ms)", "n"]
    body = [[r["method"], f"{_num(_or_nan(r.get('chi2_mean')), 3)} ± {_num(_or_nan(r.get('chi2_std')), 3)}",
             f"{_num(_or_nan(r.get('sure_mse_mean')), 5)} ± {_num(_or_nan(r.get('sure_mse_std')), 5)}",
             _num(1e3 * float(r["seconds_per_image"]), 1), r["n"]] for r in rows]
    what = next((r["sure_of"] for r in rows if r.get("sure_of")), "")
    return (html_table(header, body, ["model" if r["method"] == MODEL else "" for r in rows])
            + f"\n<p>No ground truth x: no PSNR or SSIM. {('SURE estimates ' + _e(what) + '.') if what else ''}</p>")


def stress_table_html(shift: Mapping, rows: Sequence[Mapping], metric: str = "psnr") -> str:
    """Levels × methods table of mean PSNR for one shift."""
    rs = [r for r in rows if r["shift"] == shift["name"] and r["metric"] == metric]
    levels = [str(lv) for lv in shift["levels"] if any(str(r["level"]) == str(lv) for r in rs)]
    methods = list(dict.fromkeys(r["method"] for r in rs))
    val = {(str(r["level"]), r["method"]): float(r["mean"]) for r in rs}
    train = str(shift.get("training_level")) if shift.get("training_level") is not None else None
    hidden = shift.get("unidentifiable") or {}
    body = [[lv + (" (training)" if lv == train and "(training)" not in lv else "")
             + (" (not identifiable)" if lv in hidden else "")]
            + [_num(val.get((lv, m), math.nan)) for m in methods] for lv in levels]
    table = html_table([shift.get("axis") or "level"] + [f"{m} PSNR (dB)" for m in methods], body,
                       ["unidentifiable" if lv in hidden else "" for lv in levels])
    why = dict.fromkeys(hidden[lv] for lv in levels if lv in hidden)  # one line per reason
    return table + "".join(f"\n<p class=\"muted\">Greyed ({_e(', '.join(lv for lv in levels if hidden.get(lv) == w))}): "
                           f"{_e(w)}. The numbers stand; trust's identifiable AUROC leaves these levels out.</p>"
                           for w in why)


def trust_html(summary: Mapping, rows: Sequence[Mapping], shifts: Sequence[Mapping], roc_png: str | Path | None) -> str:
    """The trust-at-inference section: AUROC per shift and overall, the ROC curve, and per
    shift the model's mean trust score and every method's ρ per level."""
    parts = ["<h2>Trust at inference: does the score see where the model fails?</h2>",
             f"<p>Per stress image, the ground-truth-free suspicion 1 − trust of the model's reconstruction is "
             f"compared with the truth: is the model's PSNR below the best classical baseline's on that image? "
             f"Overall AUROC <b>{_num(summary.get('auroc'), 3)}</b> over {summary.get('images')} images "
             f"({summary.get('worse')} of them worse than a baseline)."
             + (f" For the failures that matter, the model more than {summary['large_failure_db']:g} dB below the "
                f"best baseline ({summary.get('large_failures')} images): AUROC <b>{_num(summary['auroc_large'], 3)}</b>."
                if summary.get("auroc_large") is not None else "") + "</p>"]
    known = summary.get("identifiable")
    if known:
        out = known.get("left_out") or []
        parts.append(f"<p>On the levels whose shift (y, K) can reveal{' (left out: ' + _e(', '.join(out)) + ')' if out else ''}: "
                     f"AUROC <b>{_num(known.get('auroc'), 3)}</b> over {known.get('images')} images"
                     + (f"; for the model more than {summary.get('large_failure_db', 1):g} dB below the best baseline "
                        f"({known.get('large_failures')} images): AUROC <b>{_num(known.get('auroc_large'), 3)}</b>"
                        if known.get("auroc_large") is not None else "") + ".</p>")
    b = summary.get("bound")
    if b:
        low = (f"; lowest over the {b['identifiable_levels']} identifiable levels: <b>{_num(b.get('identifiable_min'), 3)}</b> "
               f"({_e(b.get('identifiable_min_at'))})" if b.get("identifiable_min") is not None else "")
        parts.append(f"<p>Per-image PSNR bound of {_e(b['method'])}: PSNR ≥ b with probability {b['level']:g} at the "
                     f"training conditions (split conformal on held-out validation pairs, scaled by the trust score). "
                     f"Fraction of images where it held: <b>{_num(b.get('training'), 3)}</b> at the training conditions"
                     f"{low}.</p>")
        px = b.get("pixels")
        if px:
            parts.append(f"<p>Its per-pixel intervals x̂ ± λ̂u (risk-controlled: at most {px['alpha']:g} of the pixels "
                         f"outside, with probability {_num(px.get('confidence'), 3)} over the calibration pairs, at the training conditions) missed "
                         f"<b>{_num(px.get('training'), 3)}</b> of the pixels at the training conditions; the most over "
                         f"the identifiable levels: <b>{_num(px.get('identifiable_max'), 3)}</b> "
                         f"({_e(px.get('identifiable_max_at'))}).</p>")
    per = summary.get("per_shift") or {}
    big = any("auroc_large" in v for v in per.values())
    parts.append(html_table(["shift", "AUROC", "images", "model worse"]
                            + ([f"AUROC (worse by > {summary.get('large_failure_db', 1):g} dB)", "of them"] if big else []),
                            [[k, _num(v.get("auroc"), 3), v.get("images"), v.get("worse")]
                             + ([_num(v.get("auroc_large"), 3), v.get("large_failures")] if big else [])
                             for k, v in per.items()]))
    if roc_png is not None and Path(roc_png).exists():
        parts.append(f"<figure><img alt=\"trust ROC\" src=\"{data_uri(roc_png)}\"><figcaption>ROC curve of the trust "
                     f"score over all stress images</figcaption></figure>")
    parts.append(per_level_html(rows, shifts))
    return "\n".join(parts)


def per_level_html(rows: Sequence[Mapping], shifts: Sequence[Mapping]) -> str:
    """Per shift, a table of the `PER_LEVEL` numbers of every method at each level (trust, ρ,
    safe's recalibration and promise, a sampler's std map against its error, …)."""
    parts = []
    for sh in shifts:
        rs = [r for r in rows if r["shift"] == sh["name"] and r["metric"] in PER_LEVEL]
        if not rs:
            continue
        cols = list(dict.fromkeys((r["metric"], r["method"]) for r in rs))
        val = {(str(r["level"]), r["metric"], r["method"]): float(r["mean"]) for r in rs}
        levels = [str(lv) for lv in sh["levels"] if any(str(r["level"]) == str(lv) for r in rs)]
        body = [[lv] + [_num(val.get((lv, m, me), math.nan)) for m, me in cols] for lv in levels]
        parts.append(f"<h3>{_e(sh.get('label') or sh['name'])}: per level</h3>")
        parts.append(html_table([sh.get("axis") or "level"] + [f"{me} {PER_LEVEL[m]}" for m, me in cols], body))
    return "\n".join(parts)


#: the per-level trust columns of the report: stress metric → heading after the method's name
PER_LEVEL = {"trust": "trust", "rho": "ρ", "recalibrated": "K recalibrated (fraction of images)",
             "psnr_bound": "PSNR bound b (dB, mean)", "covered": "PSNR ≥ b (fraction of images)",
             "pixel_risk": "pixels outside their interval (risk)",
             "promised": "promised ≥ tv − 0.5 dB (fraction of images)",
             "promise_kept": "promise kept (fraction of promised images)",
             "std_spearman": "Spearman(posterior std, |error|)", "std_coverage": "|error| ≤ 2·std (fraction of pixels)"}


def read_stress(run_dir: str | Path) -> tuple[list[dict], dict]:
    """(tidy rows of stress.csv, stress.json metadata) of a run; empty when absent."""
    d = Path(run_dir)
    rows = read_stress_csv(d / "stress.csv", within=d) if _present(d / "stress.csv") else []
    meta = read_stress_json(d / "stress.json", within=d) if _present(d / "stress.json") else {}
    return rows, meta


def _present(p: Path) -> bool:
    """Whether something is under the name `p` (a dangling link too: reading it says what is wrong)."""
    return p.exists() or p.is_symlink()


def render_report(title: str, *, config_yaml: str | None = None, metrics: Sequence[Mapping] = (),
                  figures: Sequence[tuple[str, str | Path]] = (), stress_rows: Sequence[Mapping] = (),
                  stress_meta: Mapping | None = None, stress_figures: Mapping[str, str | Path] | None = None,
                  notes: Sequence[str] = (), consistency: Sequence[Mapping] = ()) -> str:
    """The HTML text of a report (images embedded from the given PNG paths)."""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1>",
             f"<p class=\"muted\">invmap report, written {_e(datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}</p>"]
    meta = dict(stress_meta or {})
    verdicts = meta.get("verdicts") or []
    if verdicts:
        parts.append("<h2>Verdicts: where the learned map stops being trustworthy</h2>")
        parts += [f"<p class=\"verdict\">{_e(v['text'])}</p>" for v in verdicts]
        baselines = (meta.get("settings") or {}).get("baselines")
        if baselines:  # the verdicts compare with these: say how their parameters were chosen
            parts.append(f"<p class=\"muted\">Baselines: {_e(baselines)}</p>")
        overview = (stress_figures or {}).get("_overview")
        if overview is not None and Path(overview).exists():
            cap = ("The whole stress study at a glance: each learned method's PSNR minus the best baseline's per "
                   "shift and level (blue: the learned method is better; red: a baseline is; framed: the training "
                   "conditions)")
            parts.append(f"<figure><img alt=\"stress overview\" src=\"{data_uri(overview)}\">"
                         f"<figcaption>{_e(cap)}</figcaption></figure>")
    if metrics:
        parts.append("<h2>Test metrics</h2>")
        parts.append(metrics_html(metrics))
    if consistency:
        parts.append("<h2>Test measurements without x</h2>")
        parts.append(without_x_html(consistency))
    for note in notes:
        parts.append(f"<p class=\"muted\">{_e(note)}</p>")
    for caption, p in figures:
        if p is not None and Path(p).exists():
            parts.append(f"<figure><img alt=\"{_e(caption)}\" src=\"{data_uri(p)}\">"
                         f"<figcaption>{_e(caption)}</figcaption></figure>")
    if stress_rows:
        parts.append("<h2>Stress study</h2>")
        info = meta.get("settings")
        if info:
            parts.append(f"<p class=\"muted\">{_e(', '.join(f'{k}: {v}' for k, v in info.items()))}</p>")
        by_name: dict[str, list[dict]] = {}  # a shift has one verdict per learned method
        for v in verdicts:
            by_name.setdefault(v["shift"], []).append(v)
        for sh in meta.get("shifts", []):
            parts.append(f"<h3>{_e(sh.get('label') or sh['name'])}</h3>")
            if sh.get("description"):
                parts.append(f"<p>{_e(sh['description'])}</p>")
            parts += [f"<p class=\"verdict\">{_e(v['text'])}</p>" for v in by_name.get(sh["name"], [])]
            fig = (stress_figures or {}).get(sh["name"])
            if fig is not None and Path(fig).exists():
                parts.append(f"<figure><img alt=\"stress: {_e(sh['name'])}\" src=\"{data_uri(fig)}\"></figure>")
            parts.append(stress_table_html(sh, stress_rows))
            for lv, why in (sh.get("skipped") or {}).items():
                parts.append(f"<p class=\"muted\">{_e(lv)}: {_e(why)}</p>")
    if meta.get("trust"):
        parts.append(trust_html(meta["trust"], stress_rows, meta.get("shifts", []),
                                (stress_figures or {}).get("_trust_roc")))
    elif any(r["metric"] in PER_LEVEL for r in stress_rows or []):  # no learned model to score: the rest
        parts.append("<h2>Per level: data fit and posterior spread</h2>")
        parts.append(per_level_html(stress_rows, meta.get("shifts", [])))
    if config_yaml:
        parts.append("<h2>Configuration</h2>")
        parts.append(f"<pre>{_e(config_yaml)}</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def build_report(run_dir: str | Path, out: str | Path | None = None, curves: bool = False) -> Path:
    """Write ``report.html`` for a run directory from the files it holds; returns its path.

    Every file is read (and checked) before anything is written; with `curves`, the training
    curves are drawn from ``train_log.csv`` first when the run has no figure of them."""
    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"run directory not found: {d}")
    if out is not None and Path(out).suffix.lower() not in (".html", ".htm"):  # never over a run's own files
        raise ValueError(f"--out {out}: a report is an .html file; give a name ending in .html")
    figs = inside(d, "figures", "the figures folder")  # a link out of the run is neither read nor written
    cfg = read_text(d / "config.yaml", "config", within=d) if _present(d / "config.yaml") else None
    metrics = read_metrics(d / "metrics.csv", within=d) if _present(d / "metrics.csv") else []
    consistency = read_consistency(d / CONSISTENCY_CSV, within=d) if _present(d / CONSISTENCY_CSV) else []
    stress_rows, stress_meta = read_stress(d)
    b = read_baselines(d)
    log = d / "train_log.csv"
    if curves and _present(log) and not (figs / "training_curves.png").exists():
        training_curves(inside(d, "train_log.csv", "the training log"), figs / "training_curves.png")
    figures = [(cap, figs / f) for cap, f in (
        ("Reconstructions (top rows) and error maps |x̂ − x| on a shared colour scale (bottom rows)", "reconstructions.png"),
        ("Posterior samplers: the mean, its true error |x̂ − x| and 2·std (computed without ground truth) on one "
         "scale", "posterior.png"),
        ("Training: loss and validation PSNR per epoch", "training_curves.png"),
    ) if (figs / f).exists()]
    stress_figs = {sh["name"]: figs / f"stress_{sh['name']}.png" for sh in stress_meta.get("shifts", [])}
    stress_figs["_overview"] = figs / "stress_overview.png"
    stress_figs["_trust_roc"] = figs / "trust_roc.png"
    notes = []
    if b:
        notes.append(f"Baseline parameters ({baselines_note(b)}): "
                     + "; ".join(f"{k}: {json.dumps(v.get('params', v))}" for k, v in b.items()))
    text = render_report(f"invmap run: {d.name}", config_yaml=cfg, metrics=metrics, figures=figures,
                         stress_rows=stress_rows, stress_meta=stress_meta, stress_figures=stress_figs, notes=notes,
                         consistency=consistency)
    return atomic_write(Path(out) if out else d / "report.html", text)


__all__ = ["build_report", "render_report", "html_table", "metrics_html", "stress_table_html", "trust_html", "data_uri",
           "read_stress"]
