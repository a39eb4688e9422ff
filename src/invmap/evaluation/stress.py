"""The generalization stress study: move one factor away from the training conditions.

The learned map and the classical baselines are re-scored — with the same call
``x̂ = method(y, physics)`` — while ONE factor of the test condition (`task.Condition`) is
moved at a time. Each shift is *data*: a list of levels, each a dict of changes to the
reference condition (the training conditions). A registry (`SHIFTS`) maps each kind to
its builder; the operator-specific kinds (geometry, kernel, limited-angle, calibration)
are asked of the operator itself (``K.stress_axes()``, `invmap.operators.axes`), so no
table of operator names lives here:

- ``noise``: the noise level ×0, ×0.5, ×1, ×2, ×4, ×8 (`NoiseModel.scaled`);
- ``noise-family``: the other noise family at a comparable level (Gaussian ↔ Poisson,
  photons N = mean(Kx) / mean(σ²) so that the per-pixel variances match);
- ``geometry``: fewer / more views (CT), other PSF width (blur), other sampling rate
  (MRI acceleration, inpainting missing fraction), other decimation (downsampling) — the
  reconstruction physics changes too, so the model receives FBP/Kᵀy of the new geometry;
- ``kernel``: another blur kernel family of comparable width (Gaussian σ ↔ motion blur of
  the same standard deviation along its direction, L = √12·σ ↔ defocus disk r = 2σ, the
  same per-axis second moment), simulation and reconstruction (deblurring);
- ``limited-angle``: a shorter arc of views (CT);
- ``calibration-*``: y simulated with a slightly wrong K_sim (angle offset, detector
  shift / centre of rotation, PSF width error, the anti-alias kernel of a downsampling,
  an MRI gradient delay, unflagged dead pixels in inpainting)
  while every method reconstructs with the nominal K;
- ``discretisation``: y simulated on the reconstruction grid (inverse crime) or on a
  finer grid;
- ``resolution``: test images at other sizes (models that cannot take them are skipped);
- ``object``: other image sources (ellipses, shepp-logan, scikit-image samples, a folder).

A level the operator cannot offer is left out and listed in ``skipped`` with the reason,
so the study never silently pretends. A level whose shift (y, K) cannot reveal, or that no
scanner produces, is listed in ``unidentifiable`` with the reason (a global CT angle offset:
the data of the rotated object; inverse-crime data): its numbers are kept and shown, greyed,
and trust's identifiable AUROC leaves it out.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..atomic import atomic_write_csv
from ..capabilities import Method
from ..files import read_bytes, read_csv, read_json
from ..method_output import MethodFailure
from ..metrics import DataRange, data_range_label
from ..operators import resized_spec
from ..operators.axes import KINDS as AXIS_KINDS
from ..paths import inside
from ..registry import Registry
from ..schemas import StressFile, validated
from .evaluate import atomic_write_json, evaluate_methods
from .figures import stress_overview, stress_plot, trust_roc
from .task import build_noise, build_operator, Condition, images, make_pairs
from ..trust.fitted import Calibrations
from .trust import add_trust_scores, bound_summary, level_records, trust_summary
from .verdicts import learned_names, verdicts_from_rows

STRESS_COLUMNS = ["shift", "level", "method", "metric", "mean", "std"]


@dataclass
class Level:
    """One level of a shift: a label and the changes to the reference `Condition`."""

    label: str
    changes: dict = field(default_factory=dict)
    training: bool = False


@dataclass
class Shift:
    """A shift: its levels (in axis order for ordered shifts) and what was left out."""

    name: str
    label: str
    axis: str
    ordered: bool
    levels: list[Level]
    description: str = ""
    skipped: dict[str, str] = field(default_factory=dict)
    kind: str = ""  # the entry of KINDS it came from (set by build_shifts)
    unidentifiable: dict[str, str] = field(default_factory=dict)  # level → why (y, K) cannot reveal it
    trust_images: dict[str, list] = field(default_factory=dict)  # level → [[trust, model worse?, margin dB], …]
    conditions: dict[str, str] = field(default_factory=dict)  # level → short hash of its test condition

    @property
    def training_level(self) -> str | None:
        return next((lv.label for lv in self.levels if lv.training), None)

    def meta(self) -> dict:
        return {"name": self.name, "label": self.label, "axis": self.axis, "ordered": self.ordered,
                "levels": [lv.label for lv in self.levels], "training_level": self.training_level,
                "description": self.description, "skipped": dict(self.skipped),
                **({"unidentifiable": dict(self.unidentifiable)} if self.unidentifiable else {}),
                **({"trust_images": self.trust_images, "conditions": self.conditions} if self.trust_images else {})}


# ---------------------------------------------------------------------------------------
# The shift builders: a registry of kind → builder(ref, folder) -> [Shift]
# ---------------------------------------------------------------------------------------

NOISE_FACTORS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
RESOLUTION_FACTORS = (0.5, 1.0, 2.0)
OBJECT_SOURCES = ("ellipses", "shepp-logan", "samples")

KINDS = ("noise", "noise-family", "geometry", "kernel", "limited-angle", "calibration", "discretisation", "resolution",
         "object")

#: kind → builder(ref, folder) returning that kind's shifts for the reference condition
SHIFTS = Registry("shift")


@SHIFTS.register("noise")
def noise_shift(ref: Condition, folder: str | None = None) -> list[Shift]:
    if ref.noise == "none":
        return []
    levels = [Level(f"×{f:g}", {"noise_scale": ref.noise_scale * f}, training=(f == 1.0)) for f in NOISE_FACTORS]
    return [Shift("noise", "Noise level", "noise level (× training level)", True, levels,
                  "y = K x + s·e with the training noise model scaled by s.")]


def comparable_photons(ref: Condition) -> float | None:
    """Photons N of a Poisson model whose variance Kx/N matches the training Gaussian σ² on average."""
    x, _ = images(ref)
    K = build_operator(ref)
    with torch.no_grad():
        y = K(x)
    if y.is_complex() or float(y.min()) < -1e-6:
        return None
    s = build_noise(ref).sigma(y)
    if s is None:
        return None
    var = float((s.double() ** 2).mean())
    return float(y.double().mean()) / var if var > 0 else None


@SHIFTS.register("noise-family")
def noise_family_shift(ref: Condition, folder: str | None = None) -> list[Shift]:
    if ref.noise == "none":
        return []
    train = Level(f"{ref.noise} (training)", {}, training=True)
    if ref.noise == "gaussian":
        p = comparable_photons(ref)
        if p is None:
            return [Shift("noise-family", "Noise family", "noise family", False, [train],
                          skipped={"poisson": "not applicable (complex or signed measurements, or a σ range)"})]
        other = Level("poisson (matched)", {"noise": {"name": "poisson", "params": {"photons": p, "seed": 0}},
                                            "noise_scale": 1.0})
    elif ref.noise in ("poisson", "poisson-gaussian"):
        x, _ = images(ref)
        with torch.no_grad():
            y = build_operator(ref)(x)
        photons = ref.physics_spec()["noise"]["params"].get("photons", 1e4)
        sigma = math.sqrt(max(float(y.double().mean()), 0.0) / float(photons)) * math.sqrt(ref.noise_scale)
        other = Level("gaussian (matched)", {"noise": {"name": "gaussian", "params": {"sigma": sigma, "seed": 0}},
                                             "noise_scale": 1.0})
    else:
        return []
    return [Shift("noise-family", "Noise family", "noise family", False, [train, other],
                  "The other noise family at a comparable per-pixel variance.")]


def operator_shifts(ref: Condition, folder: str | None = None, *, kind: str) -> list[Shift]:
    """The shifts of `kind` the reference operator K offers (``K.stress_axes()``, see
    `invmap.operators.axes`): a level moves K (simulation and reconstruction) or, for a
    calibration axis, K_sim only."""
    K = build_operator(ref)
    out = []
    for a in K.stress_axes():
        if a.kind != kind:
            continue
        field_ = "sim_operator" if a.sim_only else "operator"
        levels = [Level(lv.label, {} if lv.params is None else {field_: {"name": K.name, "params": lv.params}},
                        training=lv.params is None) for lv in a.levels]
        hidden = {lv.label: a.unidentifiable for lv in levels if not lv.training} if a.unidentifiable else {}
        out.append(Shift(a.name, a.label, a.axis, a.ordered, levels, a.description, dict(a.skipped),
                         unidentifiable=hidden))
    return out


for _kind in AXIS_KINDS:  # the operator-owned kinds: K says which it offers
    SHIFTS.register(_kind)(functools.partial(operator_shifts, kind=_kind))


#: why inverse-crime levels are left out of trust's score: no scanner measures them
CRIME_NOT_DEPLOYED = ("y simulated on the reconstruction grid itself (inverse crime) is a simulation artifact, not "
                      "data a scanner produces: no deployment meets it, so trust is not scored on it")


@SHIFTS.register("discretisation")
def discretisation_shift(ref: Condition, folder: str | None = None) -> list[Shift]:
    train = ref.simulation
    levels = [Level("crime" + (" (training)" if train == "crime" else ""), {"simulation": "crime"}, train == "crime"),
              Level("fine grid" + (" (training)" if train == "fine" else ""), {"simulation": "fine"}, train == "fine")]
    hidden = {} if train == "crime" else {levels[0].label: CRIME_NOT_DEPLOYED}
    return [Shift("discretisation", "Discretisation (inverse crime)", "simulation grid", False, levels,
                  "'crime': y simulated on the reconstruction grid; 'fine grid': y simulated on a finer grid.",
                  unidentifiable=hidden)]



@SHIFTS.register("resolution")
def resolution_shift(ref: Condition, folder: str | None = None) -> list[Shift]:
    levels = []
    for f in RESOLUTION_FACTORS:
        s = int(round(ref.size * f))
        if s >= 8:
            levels.append(Level(f"{s}×{s}", {"size": s, **_resized_operators(ref, s)}, training=(f == 1.0)))
    return [Shift("resolution", "Image resolution", "test image size", True, levels,
                  "Test images (and K) at other sizes, K's size-bound parameters (a CT detector covering the "
                  "image) rebuilt for each; models that cannot take the size are skipped.")]


def _resized_operators(ref: Condition, size: int) -> dict:
    """K (and K_sim) of `ref` for size² images: stated parameters that follow the image size
    rescaled (`invmap.operators.resized_spec`); nothing to change when none is stated."""
    shape = [ref.size, ref.size]
    out = {"operator": resized_spec({**ref.operator_spec(), "image_shape": shape}, (size, size))}
    if ref.sim_operator is not None:
        out["sim_operator"] = resized_spec({**ref.operator_spec(sim=True), "image_shape": shape}, (size, size))
    for v in out.values():
        v.pop("image_shape", None)  # a condition's specs leave the shape to its size
    return {k: v for k, v in out.items() if v != (ref.operator_spec(sim=k == "sim_operator"))}


@SHIFTS.register("object")
def object_shift(ref: Condition, folder: str | None = None) -> list[Shift]:
    sources = [ref.source] + [s for s in OBJECT_SOURCES if s != ref.source]
    if folder:
        sources.append(folder if folder.startswith("folder:") else f"folder:{folder}")
    levels = [Level(s + (" (training)" if s == ref.source else ""), {} if s == ref.source
                    else {"source": s, "source_params": {}}, training=(s == ref.source)) for s in sources]
    return [Shift("object", "Object class", "image source", False, levels,
                  "The model trained on one image source, tested on others.")]


def build_shifts(ref: Condition, kinds: Sequence[str] = KINDS, folder: str | None = None) -> list[Shift]:
    """The shifts of `kinds` applicable to the reference condition (the training conditions)."""
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown shift(s) {', '.join(bad)}; available: {', '.join(KINDS)}")
    out: list[Shift] = []
    for k in kinds:
        for s in SHIFTS.get(k)(ref, folder):
            s.kind = k
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------
# Running the study
# ---------------------------------------------------------------------------------------

def run_shifts(methods: Mapping[str, Method], ref: Condition, shifts: Sequence[Shift],
               batch_size: int = 16, progress: Callable[[str], None] | None = None,
               data_range: DataRange = 1.0, trust: bool = True, keep_going: bool = False,
               calibration: Calibrations | None = None) -> list[dict]:
    """Score every method at every level of every shift; tidy rows (`STRESS_COLUMNS`).

    Levels that produce the same condition (e.g. the training point of several shifts)
    are computed once. A level that cannot be simulated, or a built-in method that cannot run on
    it, is recorded in the shift's ``skipped``; a method that fails (`invmap.method_output.MethodFailure`:
    a bad x̂, or a method from outside that raises or runs out of time) stops the study, naming the
    method and the level, unless `keep_going` (then it is recorded in ``skipped`` too). With `trust`, the scores include ρ and the
    learned methods' trust score (`evaluation.trust`; against the trust reference of `calibration`, with
    its records: see `invmap.evaluation.trust.add_trust_scores`), and each shift keeps the model's
    per-image (trust, worse than the best baseline?) pairs in ``trust_images``.
    """

    learned = learned_names(methods)  # never counted as a baseline
    cache: dict[str, Any] = {}
    rows: list[dict] = []
    total = sum(len(s.levels) for s in shifts)
    done = 0
    for sh in shifts:
        for lv in sh.levels:
            done += 1
            cond = ref.with_changes(**lv.changes)
            key = cond.key()
            if key not in cache:
                t0 = time.perf_counter()
                try:
                    y, x, phys = make_pairs(cond)
                except Exception as e:  # noqa: BLE001 - a level that cannot be simulated is reported
                    cache[key] = f"could not simulate: {_first_line(e)}"
                else:
                    try:
                        res, recons = evaluate_methods(methods, y, x, phys, batch_size,
                                                       keep=y.shape[0] if trust else 0, data_range=data_range,
                                                       keep_going=keep_going)
                        if trust:
                            add_trust_scores(methods, y, phys, res, recons, batch_size, x=x, calibration=calibration)
                        cache[key] = res
                    except MethodFailure as e:  # the method's, not the level's: the study stops, nothing written
                        raise MethodFailure(f"{e} (stress shift {sh.name}, level {lv.label}); nothing was written "
                                            "(--keep-going records the failure and goes on)") from None
                    except Exception as e:  # noqa: BLE001 - a level the trust scores cannot be computed for
                        cache[key] = f"could not score: {_first_line(e)}"
                if progress:
                    progress(f"stress [{done}/{total}] {sh.name} {lv.label} ({time.perf_counter() - t0:.1f} s)")
            res = cache[key]
            if isinstance(res, str):
                sh.skipped[lv.label] = res
                continue
            recs = level_records(res, learned=learned) if trust else None
            if recs is not None:
                sh.trust_images[lv.label] = recs
                sh.conditions[lv.label] = hashlib.sha1(key.encode()).hexdigest()[:12]
            for name, r in res.items():
                if r.error is not None:
                    sh.skipped[f"{lv.label} / {name}"] = r.error
                    continue
                for metric, t in r.scores.items():
                    t = t[~torch.isnan(t)]
                    if t.numel() == 0:
                        continue
                    rows.append({"shift": sh.name, "level": lv.label, "method": name, "metric": metric,
                                 "mean": float(t.mean()), "std": float(t.std(unbiased=False)) if t.numel() > 1 else 0.0})
    return rows


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def write_stress_csv(rows: Sequence[Mapping], path: str | Path) -> Path:
    return atomic_write_csv(path, STRESS_COLUMNS, ({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k])
                                                   for k in STRESS_COLUMNS} for r in rows))


def parse_kinds(text: str | None) -> list[str]:
    """``"noise, geometry"`` → ["noise", "geometry"] (None or empty: all of `KINDS`); an unknown
    name is a one-line ValueError listing the available ones."""
    kinds = [k.strip() for k in text.split(",") if k.strip()] if text else list(KINDS)
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown shift(s) {', '.join(bad)}; available: {', '.join(KINDS)}")
    return kinds


def applicable_shifts(ref: Condition, kinds: Sequence[str] = KINDS, folder: str | None = None) -> list[Shift]:
    """`build_shifts`, and a one-line ValueError when none of `kinds` applies to `ref`."""
    shifts = build_shifts(ref, kinds, folder)
    if not shifts:
        raise ValueError(f"none of the shifts {', '.join(kinds)} applies to operator '{ref.operator}' with noise "
                         f"'{ref.noise}' (e.g. 'kernel' is for blur, 'limited-angle' for CT, 'noise' needs noise)")
    return shifts


def read_stress_csv(path: str | Path, within: str | Path | None = None) -> list[dict]:
    """The tidy rows of a ``stress.csv`` (mean and std as floats)."""
    header, table = read_csv(path, "stress table", within=within)
    missing = [c for c in STRESS_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: no {', '.join(map(repr, missing))} column; not a stress table invmap wrote")
    try:
        return [{**r, "mean": float(r["mean"]), "std": float(r["std"])} for r in table]
    except (TypeError, ValueError) as e:  # a short row (None) or a word where a number belongs
        raise ValueError(f"{path}: not a stress table invmap wrote ({e})") from None


def csv_digest(path: str | Path) -> str:
    """SHA-256 of a stress.csv as written: stress.json records it (``stress_csv_sha256``)."""
    return hashlib.sha256(read_bytes(path, "stress table")).hexdigest()


def stress_mismatch(rows: Sequence[Mapping], meta: Mapping, digest: str | None = None) -> list[str]:
    """What stress.csv (`rows`, its `digest`) and stress.json (`meta`) do not share: a digest
    other than the one stress.json recorded, "shift level" of rows at a level the metadata does
    not list, and shifts listed (not all skipped) without any row. Empty for a study written
    whole; not for one interrupted between the two files (stress.csv is written first)."""
    if digest is not None and meta.get("stress_csv_sha256") not in (None, digest):
        return ["stress.csv is not the table stress.json was written with"]
    shifts = {s["name"]: s for s in meta.get("shifts", [])}
    levels = {name: {str(lv) for lv in s["levels"]} for name, s in shifts.items()}
    have = {(r["shift"], str(r["level"])) for r in rows}
    odd = {f"{s} {lv}" for s, lv in have if lv not in levels.get(s, ())}
    odd |= {name for name, s in shifts.items() if not any(h[0] == name for h in have)
            and len(s.get("skipped") or {}) < len(s["levels"])}
    return sorted(odd)


def read_stress_json(path: str | Path, within: str | Path | None = None) -> dict:
    """The document of a ``stress.json`` (`invmap.files.read_json`), checked against
    `invmap.schemas.StressFile` (a one-line ValueError naming the file and field otherwise)."""
    meta = read_json(path, "stress study", within=within)
    validated(StressFile, meta, path, "stress study")
    return meta


def read_previous(out_dir: str | Path, progress: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """(rows, meta) of the earlier study in `out_dir`, checked before a new study starts, so a
    broken one costs no work: ``([], {})`` when there is none, or when it is unreadable, tampered
    with or half written — it is then replaced by the new study (said to `progress`)."""
    out = Path(out_dir)
    old_json, old_csv = out / "stress.json", out / "stress.csv"
    if not (old_json.exists() or old_json.is_symlink()) or not (old_csv.exists() or old_csv.is_symlink()):
        return [], {}
    try:
        old = read_stress_json(old_json, within=out)
        old_rows = read_stress_csv(old_csv, within=out)
        odd = stress_mismatch(old_rows, old, csv_digest(old_csv))
        if odd:
            raise ValueError(f"stress.csv and stress.json disagree at {', '.join(odd[:3])}")
    except (OSError, ValueError) as e:
        if progress:
            progress(f"stress: earlier results unreadable ({str(e)[:300]}); replacing them")
        return [], {}
    return old_rows, old


def merge_previous(rows: list[dict], meta: dict, previous: tuple[list[dict], dict],
                   progress: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Keep the shifts of the earlier study `previous` (`read_previous`) that this one did not recompute.

    ``invmap stress RUN --shifts noise --n 64`` then refreshes the noise shift without
    losing the others. Each shift records its own images per level and methods (verdicts
    compare methods within a shift), so shifts of different invocations may be combined;
    earlier results are dropped (and said so) only when the reference condition — the
    training conditions — differs.
    """
    old_rows, old = previous
    if not old:
        return rows, meta
    new_names = {m["name"] for m in meta["shifts"]}
    kept = [m for m in old.get("shifts", []) if m["name"] not in new_names]
    if not kept:
        return rows, meta

    def reference(m: Mapping) -> dict:  # the PSNR convention too (files without it used L = 1)
        return {**{k: v for k, v in (m.get("reference") or {}).items() if k != "n"},
                "data_range": m.get("data_range", 1.0)}

    if reference(old) != reference(meta):
        if progress:
            progress(f"stress: earlier results used other reference conditions; replacing them "
                     f"(dropped: {', '.join(m['name'] for m in kept)})")
        return rows, meta
    n_old = old.get("settings", {}).get("images per level")
    kept = [{"images per level": n_old, "methods": old.get("methods"), **m} for m in kept]  # older files: global values
    keep = {m["name"] for m in kept}
    order = [m["name"] for m in old.get("shifts", [])] + [m["name"] for m in meta["shifts"]]
    shifts = sorted(kept + meta["shifts"], key=lambda m: order.index(m["name"]))
    per_n: dict[Any, list[str]] = {}
    for m in shifts:
        per_n.setdefault(m.get("images per level"), []).append(m["name"])
    settings = dict(meta["settings"])
    if len(per_n) > 1:
        settings["images per level"] = "; ".join(f"{n} ({', '.join(names)})" for n, names in per_n.items())
    if progress:
        progress(f"stress: kept earlier results for {', '.join(sorted(keep))}")
    return [r for r in old_rows if r["shift"] in keep] + rows, {**meta, "settings": settings, "shifts": shifts}


def stress_study(methods: Mapping[str, Method], ref: Condition, out_dir: str | Path,
                 kinds: Sequence[str] = KINDS, folder: str | None = None, batch_size: int = 16,
                 settings: Mapping | None = None, progress: Callable[[str], None] | None = None,
                 data_range: DataRange = 1.0, keep_going: bool = False,
                 previous: tuple[list[dict], dict] | None = None,
                 calibration: Calibrations | None = None) -> tuple[list[dict], dict]:
    """Run the study and write ``stress.csv``, ``stress.json`` (shifts + verdicts) and
    ``figures/stress_<shift>.png`` into `out_dir`; returns (rows, meta).

    Nothing is written unless the study ran through: a failing method (`run_shifts`) leaves the
    earlier study's files as they were; with `keep_going` its failures are listed in ``skipped``.

    PSNR/SSIM use the data range convention `data_range`, recorded in stress.json
    (``data_range`` and the ``PSNR data range`` setting). The earlier study in `out_dir` is
    read first (`read_previous`; or given as `previous`) and its shifts not recomputed kept.
    Every path written is checked to stay inside `out_dir` before the work starts."""
    out = Path(out_dir)
    figures = inside(out, "figures", "the figures folder")  # a link out of the run is never written through
    shifts = applicable_shifts(ref, kinds, folder)
    if previous is None:
        previous = read_previous(out, progress)
    missing = [k for k in kinds if not any(s.kind == k for s in shifts)]
    if missing and len(kinds) < len(KINDS) and progress:  # a subset the user asked for
        progress(f"stress: not applicable to operator '{ref.operator}' / noise '{ref.noise}': {', '.join(missing)}")
    t0 = time.perf_counter()
    rows = run_shifts(methods, ref, shifts, batch_size, progress, data_range, keep_going=keep_going,
                      calibration=calibration)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    learned = learned_names(methods)  # asked of each method: verdicts, heatmap
    metas = [{**s.meta(), "images per level": ref.n, "methods": sorted(methods), "learned": learned} for s in shifts]
    meta = {"settings": {"images per level": ref.n, **dict(settings or {}),
                         "PSNR data range": data_range_label(data_range),
                         "seconds": round(time.perf_counter() - t0, 1)}, "data_range": data_range,
            "reference": ref.describe(), "methods": sorted(methods), "learned": learned, "shifts": metas}
    rows, meta = merge_previous(rows, meta, previous, progress)
    meta["verdicts"] = [v.to_dict() for v in verdicts_from_rows(rows, meta["shifts"])]
    meta["trust"] = trust_summary(meta["shifts"])
    if meta["trust"] is None:
        del meta["trust"]
    else:
        trust_roc(meta["trust"], figures / "trust_roc.png")
        meta["trust"]["bound"] = bound_summary(rows, meta["shifts"])
        meta["trust"]["reference"] = None if calibration is None else calibration.reference_name
    meta["stress_csv_sha256"] = csv_digest(write_stress_csv(rows, out / "stress.csv"))  # the pair, checked on reading
    atomic_write_json(out / "stress.json", meta)
    for m in meta["shifts"]:
        stress_plot(m, rows, inside(figures, f"stress_{m['name']}.png", "a figure"))
    stress_overview(meta["shifts"], rows, figures / "stress_overview.png")
    return rows, meta


__all__ = ["Level", "Shift", "KINDS", "STRESS_COLUMNS", "NOISE_FACTORS",
           "SHIFTS", "operator_shifts", "CRIME_NOT_DEPLOYED", "build_shifts", "parse_kinds", "applicable_shifts", "run_shifts", "stress_study", "write_stress_csv", "read_stress_csv", "read_stress_json", "read_previous", "stress_mismatch", "csv_digest", "merge_previous", "comparable_photons"]
