"""Trained runs side by side: what a change of dataset design (or of architecture) buys, and
what it costs, on the same task y = K x + e.

`compare_runs([R_1, …, R_k], out)` reads what each run directory holds — ``metrics.csv``
(the nominal test set: every method, the tuned baselines included) and ``stress.csv`` /
``stress.json`` (the stress study) — and writes into the compare directory ``out`` (never
inside a run, never over existing files):

- ``compare.csv``: tidy rows ``run, shift, level, method, metric, mean, std`` of every run
  (shift ``test``, level ``nominal``: the test set), then the differences
  d_j(s, ℓ) = p_model(R_j; s, ℓ) − p_model(R_1; s, ℓ) of each further run against the first
  (run ``R_j − R_1``, method ``model``, metric ``psnr-difference``);
- ``compare.json``: the runs, the same numbers by shift and level, and the verdicts;
- ``figures/``: each run's stress heatmap (its model's PSNR minus the best baseline's, per
  shift and level) and, per further run, the heatmap of d_j;
- ``compare.html``: one self-contained page with the tables, the heatmaps side by side and
  the verdicts.

The runs must be of one task — image source, size, nominal physics (K and noise), test
simulation — scored with one PSNR data range (`check_same_task`), and each run's files must
be whole: a stress.csv / stress.json pair that does not match (a study killed between the
two, or being written) or a metrics table without rows is a one-line error. The directory
is built under a temporary name and renamed at the end (`invmap.atomic.atomic_dir`).

Verdicts are computed from those numbers only. Per further run j and shift s: the largest
gain max_ℓ d_j, the largest loss min_ℓ d_j, and d_j at the training (nominal) level, e.g.
"ct-robust vs ct-default, Acquisition geometry: +6.1 dB at 15 views, −0.3 dB at the
nominal 60 views"; on the test set, whether the loss against the reference stays within
``margin`` dB and, if not, by how much it exceeds it; per run: the levels where its model falls
more than ``margin`` dB below the best tuned baseline, and by how much.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import zoo
from ..atomic import atomic_dir, atomic_write, clean_orphans
from ..config import first_difference, load_config
from ..files import MAX_BYTES, read_json
from .evaluate import atomic_write_json, read_metrics
from .figures import delta_heatmap, stress_overview
from .report import _CSS, _e, _num, data_uri, html_table, read_stress
from .runs import baselines_note, read_baselines
from .stress import csv_digest, stress_mismatch
from .task import canonical_physics, condition_from_config, config_task, TASK_FIELDS
from .verdicts import MODEL, learned_of

#: files larger than this are refused, counting the bytes read (a run's tables are kilobytes)
MAX_FILE_BYTES = MAX_BYTES
COLUMNS = ("run", "shift", "level", "method", "metric", "mean", "std")
TEST = "test"
NOMINAL = "nominal"


@dataclass
class Run:
    """One run directory as the comparison reads it."""

    label: str
    path: Path
    metrics: list[dict] = field(default_factory=list)
    stress_rows: list[dict] = field(default_factory=list)
    stress_meta: dict = field(default_factory=dict)
    baselines: dict = field(default_factory=dict)
    task: dict | None = None
    supervision: str = ""  # how its model was trained: from pairs (y, x), or from y alone (`supervision_of`)

    def psnr(self, shift: str, level: str, method: str = MODEL) -> float:
        """Mean PSNR of `method` at (shift, level); the test set is shift ``test``, level ``nominal``."""
        if shift == TEST:
            return next((float(r["psnr_mean"]) for r in self.metrics if r["method"] == method), math.nan)
        return next((float(r["mean"]) for r in self.stress_rows if r["shift"] == shift and r["metric"] == "psnr"
                     and str(r["level"]) == level and r["method"] == method), math.nan)

    def methods(self) -> list[str]:
        return list(dict.fromkeys([r["method"] for r in self.metrics]
                                  + [r["method"] for r in self.stress_rows if r["metric"] == "psnr"]))


def read_run(path: str | Path, label: str) -> Run:
    """The comparable contents of a run directory (a one-line error when it has none or they are broken)."""
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"run directory not found: {d}")
    files = [d / f for f in ("metrics.csv", "stress.csv", "stress.json", "baselines.json")]
    if not files[0].exists() and not files[1].exists():
        raise ValueError(f"{d} has neither metrics.csv nor stress.csv: run `invmap evaluate {d}` and/or "
                         f"`invmap stress {d}` first")
    if files[1].exists() != files[2].exists():
        have, lack = ("stress.csv", "stress.json") if files[1].exists() else ("stress.json", "stress.csv")
        raise ValueError(f"{d} has {have} but no {lack}: a stress study that was interrupted or is being written; "
                         f"rerun `invmap stress {d}`")
    run = Run(label, d)
    if files[0].exists():
        run.metrics = read_metrics(files[0], within=d)
        if not run.metrics:
            raise ValueError(f"{files[0]}: no rows (interrupted or being written); rerun `invmap evaluate {d}`")
    run.stress_rows, run.stress_meta = read_stress(d)  # each checked as read: one line naming file and field
    run.baselines = read_baselines(d)
    if run.stress_meta:
        check_stress_pair(run)
    run.task = task_of(run)
    run.supervision = supervision_of(d)
    return run


def describe_supervision(sup: Mapping[str, Any] | None) -> str:
    """A model.json ``supervision`` record in words (absent: a model trained before it was recorded,
    always from pairs (y, x))."""
    loss = str((sup or {}).get("loss", "x"))[:20]
    if loss == "x":
        return "supervised: pairs (y, x)"
    extra = {"ei": lambda s: f", group {str(s.get('group'))[:20]}, weight {s.get('weight')}"}.get(loss, lambda s: "")
    return f"self-supervised from y alone ({loss}{extra(sup or {})}; x never read)"


def supervision_of(d: Path) -> str:
    """How the model of run directory `d` was trained (its model.json; "" when it holds none)."""
    if not (d / "model.json").exists():
        return ""
    meta = read_json(d / "model.json", "model description", within=d)
    return describe_supervision(meta.get("supervision") if isinstance(meta, dict) else None)


def task_of(run: Run) -> dict | None:
    """The task a run's numbers are about (`TASK_FIELDS`): its stress study's reference
    condition, else the test condition of its config.yaml (None when it has neither), and the
    PSNR data range its tables use."""
    ref = run.stress_meta.get("reference")
    if ref is None and (run.path / "config.yaml").exists():
        ref = condition_from_config(load_config(run.path / "config.yaml")).describe()
    if ref is None:
        return None
    task = {k: ref.get(k) for k in TASK_FIELDS}
    task["physics"] = canonical_physics(task["physics"], task["size"])
    ranges = {str(r.get("data_range", 1.0)) for r in run.metrics}
    if run.stress_meta:
        ranges.add(str(run.stress_meta.get("data_range", 1.0)))
    if len(ranges) > 1:
        raise ValueError(f"{run.path}: its tables use different PSNR data ranges ({', '.join(sorted(ranges))}); "
                         f"evaluate and stress it again with one evaluation.data_range")
    task["PSNR data range"] = ranges.pop() if ranges else None  # dB of different conventions do not compare
    return task


def check_stress_pair(run: Run) -> None:
    """stress.csv and stress.json written by one study (`stress_mismatch`: the digest stress.json
    recorded, the shifts and levels); a study interrupted between the two files, or being
    written, fails in one line."""
    odd = stress_mismatch(run.stress_rows, run.stress_meta, csv_digest(run.path / "stress.csv"))
    if odd:
        raise ValueError(f"{run.path}: stress.csv and stress.json disagree ({', '.join(odd[:3])}"
                         f"{' …' if len(odd) > 3 else ''}): a study interrupted or being written; "
                         f"rerun `invmap stress {run.path}`")


def check_same_task(runs: Sequence[Run]) -> None:
    """All runs on one task (`TASK_FIELDS`) with one PSNR convention, else a one-line error naming
    the first difference."""
    ref = runs[0]
    for r in runs[1:]:
        if ref.task is None or r.task is None:
            continue
        diff = first_difference(ref.task, r.task)
        if diff:
            key, was, now = diff
            raise ValueError(f"{r.label} and {ref.label} cannot be compared ({key}: {_short(now)} against "
                             f"{_short(was)}): compare runs of one task, scored with one PSNR convention")


def _short(v: object, n: int = 60) -> str:
    t = json.dumps(v, sort_keys=True, default=str)
    return t if len(t) <= n else t[:n] + "…"


def _labels(paths: Sequence[Path]) -> list[str]:
    """Run labels: the directory name; parent/name where names repeat; then a number."""
    names = [p.resolve().name or str(p) for p in paths]
    names = [n if names.count(n) == 1 else f"{p.resolve().parent.name}/{n}" for p, n in zip(paths, names)]
    return [n if names.count(n) == 1 else f"{n} #{i + 1}" for i, n in enumerate(names)]


def check_out(out: Path, runs: Sequence[Path]) -> None:
    """The compare directory: not a run, not inside one, and empty or new (nothing is overwritten)."""
    o = out.resolve()
    for r in runs:
        rr = r.resolve()
        if o == rr or o.is_relative_to(rr):
            raise ValueError(f"--out {out} is inside the run {r}; a comparison is written beside the runs, never into "
                             "them (e.g. --out compare/NAME)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"--out {out} exists and is not an empty directory; invmap never overwrites it: "
                              "choose a new one")


def shift_levels(ref: Run, *others: Run) -> list[tuple[dict, list[str]]]:
    """(shift of the reference, the levels every run has) for each shift all runs studied."""
    theirs = [{s["name"]: {str(lv) for lv in s["levels"]} for s in o.stress_meta.get("shifts", [])} for o in others]
    out = []
    for sh in ref.stress_meta.get("shifts", []):
        if all(sh["name"] in t for t in theirs):
            levels = [str(lv) for lv in sh["levels"] if all(str(lv) in t[sh["name"]] for t in theirs)]
            if levels:
                out.append((sh, levels))
    return out


def differences(ref: Run, other: Run) -> list[dict]:
    """d(s, ℓ) = p_model(other) − p_model(ref) on the test set and at every common stress level."""
    rows = [{"shift": TEST, "level": NOMINAL, "difference": other.psnr(TEST, NOMINAL) - ref.psnr(TEST, NOMINAL),
             "training": True}]
    for sh, levels in shift_levels(ref, other):
        for lv in levels:
            rows.append({"shift": sh["name"], "level": lv, "difference": other.psnr(sh["name"], lv) - ref.psnr(sh["name"], lv),
                         "training": lv == str(sh.get("training_level"))})
    return rows


def _db(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    return "±0.0 dB" if abs(v) < 0.05 else f"{v:+.1f} dB".replace("-", "−")


def pair_verdicts(ref: Run, other: Run, diffs: Sequence[dict], margin: float | None = None) -> list[str]:
    """One sentence per shift (and the test set): the largest gain, the largest loss, and the
    difference at the nominal level, of `other`'s model against `ref`'s; with `margin`, whether
    the test-set loss stays within it and, if not, by how much it exceeds it."""
    out = []
    test = next(d for d in diffs if d["shift"] == TEST)
    if math.isfinite(test["difference"]):
        cost = ""
        if margin is not None and test["difference"] < 0:
            over = -test["difference"] - margin
            cost = (f"; it loses more than the {margin:g} dB margin, by {over:.1f} dB" if over > 0 else
                    f"; a loss within the {margin:g} dB margin")
        out.append(f"{other.label} vs {ref.label}, test set (nominal conditions): {_db(test['difference'])} "
                   f"({_num(other.psnr(TEST, NOMINAL))} against {_num(ref.psnr(TEST, NOMINAL))} dB){cost}")
    for sh, _ in shift_levels(ref, other):
        ds = [d for d in diffs if d["shift"] == sh["name"] and math.isfinite(d["difference"])]
        if not ds:
            continue
        best = max(ds, key=lambda d: d["difference"])
        worst = min(ds, key=lambda d: d["difference"])
        nominal = next((d for d in ds if d["training"]), None)
        parts = [f"{_db(best['difference'])} at {best['level']}"]
        if worst is not best and worst is not nominal:
            parts.append(f"{_db(worst['difference'])} at {worst['level']}")
        if nominal is not None and nominal is not best:
            parts.append(f"{_db(nominal['difference'])} at the nominal {nominal['level']}")
        out.append(f"{other.label} vs {ref.label}, {sh.get('label') or sh['name']}: {', '.join(parts)}")
    return out


def baseline_gaps(run: Run) -> list[dict]:
    """Per shift and level of `run`'s stress study: its model's PSNR minus the best classical
    baseline's (the tuned ones), and which baseline that is."""
    rows = []
    for sh in run.stress_meta.get("shifts", []):
        for lv in map(str, sh["levels"]):
            vals = {m: run.psnr(sh["name"], lv, m) for m in run.methods()}
            base = {m: v for m, v in vals.items() if m not in learned_of(sh) and math.isfinite(v)}
            if base and math.isfinite(vals.get(MODEL, math.nan)):
                b = max(base, key=base.get)
                rows.append({"shift": sh["name"], "label": sh.get("label") or sh["name"], "level": lv, "baseline": b,
                             "gap": vals[MODEL] - base[b]})
    return rows


def baseline_verdict(run: Run, margin: float) -> str | None:
    """Whether `run`'s model stays at or above the best tuned baseline − `margin` everywhere,
    and where it does not, by how much (below that line)."""
    gaps = baseline_gaps(run)
    if not gaps:
        return None
    below = [g for g in gaps if g["gap"] < -margin]
    if not below:
        worst = min(gaps, key=lambda g: g["gap"])
        return (f"{run.label}: the model stays at or above the best tuned baseline − {margin:g} dB at every stress level "
                f"(closest: {_db(worst['gap'])} against {worst['baseline']} at {worst['label']} {worst['level']})")
    missed = "; ".join(f"{g['label']} {g['level']}: {_db(g['gap'])} against {g['baseline']} "
                       f"(misses by {-g['gap'] - margin:.1f} dB)" for g in below)
    return f"{run.label}: below the best tuned baseline − {margin:g} dB at {len(below)} of {len(gaps)} levels — {missed}"


def _tidy(runs: Sequence[Run], diffs: Mapping[str, list[dict]]) -> list[dict]:
    rows = []
    for run in runs:
        for r in run.metrics:
            for metric in ("psnr", "ssim"):
                rows.append({"run": run.label, "shift": TEST, "level": NOMINAL, "method": r["method"], "metric": metric,
                             "mean": r.get(f"{metric}_mean"), "std": r.get(f"{metric}_std")})
        for r in run.stress_rows:
            if r["metric"] in ("psnr", "ssim"):
                rows.append({"run": run.label, **{k: r[k] for k in ("shift", "level", "method", "metric", "mean", "std")}})
    for name, ds in diffs.items():
        rows += [{"run": name, "shift": d["shift"], "level": d["level"], "method": MODEL, "metric": "psnr-difference",
                  "mean": d["difference"], "std": ""} for d in ds]
    return rows


def _csv_text(rows: Sequence[Mapping]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _metrics_table(runs: Sequence[Run]) -> str:
    ref = runs[0]
    body, classes = [], []
    for run in runs:
        for r in run.metrics:
            d = float(r["psnr_mean"]) - ref.psnr(TEST, NOMINAL, r["method"])
            body.append([run.label, r["method"], f"{_num(r['psnr_mean'])} ± {_num(r['psnr_std'])}",
                         f"{_num(r['ssim_mean'], 3)} ± {_num(r['ssim_std'], 3)}", _db(d) if run is not ref else "",
                         r["n"]])
            classes.append("model" if r["method"] == MODEL else "")
    return html_table(["run", "method", "PSNR (dB)", "SSIM", f"PSNR − {ref.label}", "n"], body, classes)


def _stress_table(runs: Sequence[Run], sh: Mapping, levels: Sequence[str]) -> str:
    cols = [(run, m) for run in runs for m in run.methods()
            if any(r["shift"] == sh["name"] for r in run.stress_rows if r["method"] == m)]
    header = [sh.get("axis") or "level"] + [f"{run.label}: {m}" for run, m in cols]
    header += [f"model {run.label} − {runs[0].label}" for run in runs[1:]]
    body = []
    for lv in levels:
        train = " (training)" if lv == str(sh.get("training_level")) and "(training)" not in lv else ""
        row: list[object] = [lv + train] + [_num(run.psnr(sh["name"], lv, m)) for run, m in cols]
        row += [_db(run.psnr(sh["name"], lv) - runs[0].psnr(sh["name"], lv)) for run in runs[1:]]
        body.append(row)
    return html_table(header, body)


def _figure_row(figs: Sequence[tuple[str, Path | None]]) -> str:
    cells = [f"<figure style=\"flex:1 1 45%;min-width:320px\"><img alt=\"{_e(cap)}\" src=\"{data_uri(p)}\">"
             f"<figcaption>{_e(cap)}</figcaption></figure>" for cap, p in figs if p is not None and p.exists()]
    return f"<div style=\"display:flex;flex-wrap:wrap;gap:1em\">{''.join(cells)}</div>" if cells else ""


def render_compare(runs: Sequence[Run], verdicts: Sequence[str], heatmaps: Sequence[tuple[str, Path | None]],
                   diff_maps: Sequence[tuple[str, Path | None]], margin: float) -> str:
    """The HTML text of compare.html (images embedded)."""
    ref = runs[0]
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
             f"content=\"width=device-width, initial-scale=1\"><title>invmap compare</title><style>{_CSS}</style>"
             f"</head><body>", f"<h1>invmap compare: {_e(' · '.join(r.label for r in runs))}</h1>",
             "<p class=\"muted\">Runs: " + "; ".join(f"{_e(r.label)} = {_e(r.path)}"
                                                    + (f" (model {_e(r.supervision)})" if r.supervision else "")
                                                    for r in runs)
             + f". Differences are each run's model against the first ({_e(ref.label)}).</p>",
             "<h2>Verdicts</h2>"]
    parts += [f"<p class=\"verdict\">{_e(v)}</p>" for v in verdicts] or ["<p>No common numbers to compare.</p>"]
    parts.append(f"<p class=\"muted\">Baseline line: the best tuned classical baseline − {margin:g} dB.</p>")
    parts.append("<h2>Test metrics (nominal conditions)</h2>")
    parts.append(_metrics_table(runs))
    for run in runs:
        if run.baselines:
            parts.append(f"<p class=\"muted\">{_e(run.label)} baselines ({_e(baselines_note(run.baselines))}): "
                         + _e("; ".join(f"{k}: {json.dumps(v.get('params', v))}" for k, v in run.baselines.items()))
                         + "</p>")
    if any(p is not None for _, p in heatmaps):
        parts.append("<h2>Stress heatmaps side by side: model − best baseline (dB)</h2>")
        parts.append(_figure_row(heatmaps))
    if any(p is not None for _, p in diff_maps):
        parts.append("<h2>Difference of the models per shift and level (dB)</h2>")
        parts.append(_figure_row(diff_maps))
    shifts = shift_levels(ref, *runs[1:])
    if shifts:
        parts.append("<h2>Stress study side by side (mean PSNR, dB)</h2>")
    for sh, levels in shifts:
        parts.append(f"<h3>{_e(sh.get('label') or sh['name'])}</h3>")
        parts.append(_stress_table(runs, sh, levels))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def compare_runs(paths: Sequence[str | Path], out: str | Path, margin: float = 0.5) -> dict:
    """Compare two or more runs (the first is the reference) into the directory `out`; returns
    compare.json's content (see the module docstring)."""
    ps = [zoo.run_dir(p) for p in paths]  # pretrained:NAME: the zoo entry (its test metrics; only read)
    if len(ps) < 2:
        raise ValueError(f"compare needs two or more runs, got {len(ps)}")
    if not (margin >= 0 and math.isfinite(margin)):
        raise ValueError(f"--margin must be a finite number of dB >= 0, got {margin}")
    resolved = [p.resolve() for p in ps]
    dup = next((p for i, p in enumerate(ps) if resolved[i] in resolved[:i]), None)
    if dup is not None:
        raise ValueError(f"run {dup} is given twice")
    out_dir = Path(out)
    check_out(out_dir, ps)
    runs = [read_run(p, label) for p, label in zip(ps, _labels(ps))]
    check_same_task(runs)
    clean_orphans(out_dir.parent)  # what a killed comparison left beside it
    with atomic_dir(out_dir) as building:  # a kill leaves --out as it was: the comparison can simply be rerun
        return _write_compare(runs, building, margin)


def _write_compare(runs: Sequence[Run], out_dir: Path, margin: float) -> dict:
    ref = runs[0]
    diffs = {f"{r.label} − {ref.label}": differences(ref, r) for r in runs[1:]}
    verdicts = [v for r, ds in zip(runs[1:], diffs.values()) for v in pair_verdicts(ref, r, ds, margin)]
    verdicts += [v for v in (baseline_verdict(r, margin) for r in runs) if v]
    figs = out_dir / "figures"
    heatmaps = [(f"{r.label}: model − best baseline", stress_overview(r.stress_meta.get("shifts", []), r.stress_rows,
                                                                       figs / f"heatmap_{i + 1}.png"))
                for i, r in enumerate(runs)]
    diff_maps = []
    for i, (r, ds) in enumerate(zip(runs[1:], diffs.values())):
        labels = {sh["name"]: sh.get("label") or sh["name"] for sh, _ in shift_levels(ref, r)}
        grid = [(labels[s], [(d["level"], d["difference"], d["training"]) for d in ds
                             if d["shift"] == s and math.isfinite(d["difference"])]) for s in labels]
        grid = [(g, cells) for g, cells in grid if cells]
        title = f"model PSNR: {r.label} − {ref.label} (dB) per shift and level; framed: training conditions"
        diff_maps.append((f"{r.label} − {ref.label}", delta_heatmap(grid, figs / f"difference_{i + 2}_minus_1.png", title)))
    result = {"runs": [{"label": r.label, "path": str(r.path), "supervision": r.supervision} for r in runs],
              "reference": ref.label, "margin": margin,
              "differences": diffs, "baseline_gaps": {r.label: baseline_gaps(r) for r in runs}, "verdicts": verdicts,
              "figures": {"heatmaps": [str(p.relative_to(out_dir)) for _, p in heatmaps if p is not None],
                          "differences": [str(p.relative_to(out_dir)) for _, p in diff_maps if p is not None]}}
    atomic_write(out_dir / "compare.csv", _csv_text(_tidy(runs, diffs)))
    atomic_write_json(out_dir / "compare.json", result)
    atomic_write(out_dir / "compare.html", render_compare(runs, verdicts, heatmaps, diff_maps, margin))
    return result


__all__ = ["compare_runs", "read_run", "task_of", "config_task", "check_same_task", "check_stress_pair", "TASK_FIELDS", "differences", "pair_verdicts", "baseline_gaps", "baseline_verdict", "Run",
           "check_out", "MAX_FILE_BYTES"]
