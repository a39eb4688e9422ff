"""The generalization stress study: move one factor away from the training conditions.

The learned map and the classical baselines are re-scored — with the same call
``x̂ = method(y, physics)`` — while ONE factor of the test condition (`task.Condition`) is
moved at a time. Each shift is *data*: a list of levels, each a dict of changes to the
reference condition (the training conditions). The tables below say which levels each
shift has, per forward operator where it matters:

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

A level whose parameter the operator does not offer is left out and listed in
``skipped`` with the reason, so the study never silently pretends.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from .evaluate import Reconstructor, atomic_write_json, evaluate_methods
from .task import Condition, build_noise, build_operator, images

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

    @property
    def training_level(self) -> str | None:
        return next((lv.label for lv in self.levels if lv.training), None)

    def meta(self) -> dict:
        return {"name": self.name, "label": self.label, "axis": self.axis, "ordered": self.ordered,
                "levels": [lv.label for lv in self.levels], "training_level": self.training_level,
                "description": self.description, "skipped": dict(self.skipped)}


# ---------------------------------------------------------------------------------------
# The shift tables (data)
# ---------------------------------------------------------------------------------------

NOISE_FACTORS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)

#: operator → (candidate parameter names, multipliers of the nominal value, integer?, axis label)
GEOMETRY: dict[str, dict] = {
    "tomography": {"params": ("angles", "views", "n_angles"), "factors": (0.25, 0.5, 1.0, 2.0), "int": True,
                   "axis": "number of views", "fmt": "{v} views"},
    "fanbeam": {"params": ("angles", "views", "n_angles"), "factors": (0.25, 0.5, 1.0, 2.0), "int": True,
                "axis": "number of views", "fmt": "{v} views"},
    "blur": {"params": ("sigma",), "factors": (0.5, 0.75, 1.0, 1.5, 2.0), "int": False,
             "axis": "PSF width σ (pixels)", "fmt": "σ={v:g}",
             "motion": {"params": ("length",), "axis": "motion blur length (pixels)", "fmt": "length={v:g}"},
             "disk": {"params": ("radius",), "axis": "defocus disk radius (pixels)", "fmt": "r={v:g}"}},
    "downsample": {"params": ("factor",), "factors": (0.5, 1.0, 2.0), "int": True,
                   "axis": "decimation factor", "fmt": "×{v}"},
    "mri": {"params": ("acceleration",), "factors": (0.5, 1.0, 1.5, 2.0), "int": False,
            "axis": "acceleration (k-space undersampling)", "fmt": "R={v:g}"},
    "inpainting": {"params": ("missing",), "values": (0.3, 0.5, 0.7, 0.85), "int": False,
                   "axis": "missing pixel fraction", "fmt": "{v:.0%} missing"},
}

#: limited angle (CT): the arc of views as a fraction of the nominal arc
LIMITED_ANGLE: dict[str, dict] = {
    op: {"params": ("arc", "angle_range", "span", "max_angle"), "factors": (1.0, 5 / 6, 2 / 3, 1 / 2),
         "axis": "arc of views (degrees)", "fmt": "{v:g}°"}
    for op in ("tomography", "fanbeam")
}

#: calibration mismatch: K_sim differs from the nominal K by an offset (or a factor)
CALIBRATION: dict[str, list[dict]] = {
    "tomography": [
        {"name": "calibration-angle", "label": "Calibration: angle offset", "params": ("angle_offset", "theta_offset"),
         "list_param": "angles", "offsets": (0.0, 0.5, 1.0, 2.0), "axis": "angle offset of the simulated views (degrees)", "fmt": "{v:+g}°"},
        {"name": "calibration-detector", "label": "Calibration: detector shift / centre of rotation",
         "params": ("detector_offset", "center_offset", "centre_offset", "cor_offset", "offset"),
         "offsets": (0.0, 0.25, 0.5, 1.0), "axis": "detector shift (pixels)", "fmt": "{v:+g} px"},
    ],
    "blur": [
        {"name": "calibration-psf", "label": "Calibration: PSF width error", "params": ("sigma",),
         "factors": (1.0, 1.1, 1.25, 1.5), "axis": "true σ / assumed σ", "fmt": "×{f:g}",
         "motion": {"params": ("length",), "axis": "true length / assumed length"},
         "disk": {"params": ("radius",), "axis": "true radius / assumed radius"}},
    ],
}
CALIBRATION["fanbeam"] = CALIBRATION["tomography"]
CALIBRATION["mri"] = [  # a gradient delay: k-space sampled off its nominal grid along the readout
    {"name": "calibration-kspace", "label": "Calibration: k-space shift (gradient delay)", "params": ("kspace_shift",),
     "offsets": (0.0, 0.25, 0.5, 1.0), "axis": "readout shift of the k-space samples (samples)", "fmt": "{v:+g}"},
]
CALIBRATION["inpainting"] = [  # dead pixels that the nominal mask does not know of (same seed: a superset)
    {"name": "calibration-mask", "label": "Calibration: unflagged dead pixels", "params": ("missing",),
     "offsets": (0.0, 0.01, 0.03, 0.1), "axis": "extra missing fraction, not in the nominal mask", "fmt": "+{v:.0%}"},
]
CALIBRATION["downsample"] = [  # super-resolution: the true anti-alias kernel is wider than assumed
    {"name": "calibration-psf", "label": "Calibration: anti-alias kernel width error", "params": ("sigma",),
     "factors": (1.0, 1.1, 1.25, 1.5), "axis": "true σ / assumed σ", "fmt": "×{f:g}"},
]

RESOLUTION_FACTORS = (0.5, 1.0, 2.0)
OBJECT_SOURCES = ("ellipses", "shepp-logan", "samples")

KINDS = ("noise", "noise-family", "geometry", "kernel", "limited-angle", "calibration", "discretisation", "resolution",
         "object")


def _accepted(op: str) -> dict[str, Any]:
    """{parameter: default} the operator `op` accepts."""
    from ..operators import OPERATORS

    return {p.name: p.default for p in OPERATORS.params(op)}


def _pick(op: str, candidates: Sequence[str]) -> str | None:
    acc = _accepted(op)
    return next((c for c in candidates if c in acc), None)


def _nominal(ref: Condition, param: str) -> Any:
    v = ref.op_params().get(param, _accepted(ref.operator).get(param))
    if v is None:  # a default resolved by the operator itself (e.g. inpainting's missing=None → 0.5)
        v = getattr(build_operator(ref), "_params", {}).get(param)
    return v


def _for_kernel(ref: Condition, table: Mapping) -> Mapping | None:
    """Blur tables vary σ of a Gaussian PSF, the length of a motion PSF, the radius of a disk;
    a given `psf`: nothing (None)."""
    p = ref.op_params() if ref.operator == "blur" else {}
    if p.get("psf") is not None:
        return None
    kernel = p.get("kernel")
    return {**table, **table[kernel]} if kernel in ("motion", "disk") and kernel in table else table


def _fmt(fmt: str, **kw: Any) -> str:
    return fmt.format(**kw)


def noise_shift(ref: Condition) -> Shift | None:
    if ref.noise == "none":
        return None
    levels = [Level(f"×{f:g}", {"noise_scale": ref.noise_scale * f}, training=(f == 1.0)) for f in NOISE_FACTORS]
    return Shift("noise", "Noise level", "noise level (× training level)", True, levels,
                 "y = K x + s·e with the training noise model scaled by s.")


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


def noise_family_shift(ref: Condition) -> Shift | None:
    if ref.noise == "none":
        return None
    train = Level(f"{ref.noise} (training)", {}, training=True)
    if ref.noise == "gaussian":
        p = comparable_photons(ref)
        if p is None:
            return Shift("noise-family", "Noise family", "noise family", False, [train],
                         skipped={"poisson": "not applicable (complex or signed measurements, or a σ range)"})
        other = Level("poisson (matched)", {"noise": "poisson", "noise_params": {"photons": p, "seed": 0},
                                            "noise_scale": 1.0})
    elif ref.noise in ("poisson", "poisson-gaussian"):
        x, _ = images(ref)
        with torch.no_grad():
            y = build_operator(ref)(x)
        photons = json.loads(ref.noise_params).get("photons", 1e4)
        sigma = math.sqrt(max(float(y.double().mean()), 0.0) / float(photons)) * math.sqrt(ref.noise_scale)
        other = Level("gaussian (matched)", {"noise": "gaussian", "noise_params": {"sigma": sigma, "seed": 0},
                                             "noise_scale": 1.0})
    else:
        return None
    return Shift("noise-family", "Noise family", "noise family", False, [train, other],
                 "The other noise family at a comparable per-pixel variance.")


def _scaled_levels(ref: Condition, table: Mapping, sim_only: bool = False) -> tuple[list[Level], dict, str | None]:
    param = _pick(ref.operator, table["params"])
    if param is None:
        return [], {}, None
    nominal = _nominal(ref, param)
    levels, skipped = [], {}
    if "values" in table:
        vals = sorted(set(table["values"]) | {nominal}) if isinstance(nominal, (int, float)) else list(table["values"])
        pairs = [(v, v == nominal) for v in vals]
    else:
        if not isinstance(nominal, (int, float)) or isinstance(nominal, bool):
            return [], {"*": f"nominal '{param}' = {nominal!r} is not a number"}, param
        pairs = []
        for f in table["factors"]:
            v = nominal * f
            v = int(round(v)) if table.get("int") else float(v)
            pairs.append((v, f == 1.0))
    seen = set()
    for v, is_train in pairs:
        if v in seen:
            continue
        seen.add(v)
        label = _fmt(table["fmt"], v=v)
        if table.get("int") and v < 1:
            skipped[label] = "below 1"
            continue
        params = {**ref.op_params(), param: v}
        levels.append(Level(label, {"operator_params": params}, training=is_train))
    return levels, skipped, param


def geometry_shift(ref: Condition) -> Shift | None:
    table = GEOMETRY.get(ref.operator)
    if table is None:
        return None
    table = _for_kernel(ref, table)
    if table is None:
        return Shift("geometry", "Acquisition geometry", "PSF", True, [],
                     skipped={"*": "a user-given psf has no width to vary"})
    levels, skipped, param = _scaled_levels(ref, table)
    if param is None:
        return Shift("geometry", "Acquisition geometry", table["axis"], True, [],
                     skipped={"*": f"operator '{ref.operator}' has none of the parameters {', '.join(table['params'])}"})
    return Shift("geometry", "Acquisition geometry", table["axis"], True, levels,
                 f"'{param}' of K changed for simulation AND reconstruction (methods see the new geometry).", skipped)


def kernel_shift(ref: Condition) -> Shift | None:
    """Deblurring: the other PSF families at a comparable width (see the module docstring)."""
    if ref.operator != "blur":
        return None
    p = {**_accepted("blur"), **ref.op_params()}
    if p.get("psf") is not None:
        return Shift("kernel", "Blur kernel family", "PSF", False, [],
                     skipped={"*": "a user-given psf has no family to change"})
    kernel = p.get("kernel", "gaussian")
    sigma = {"gaussian": float(p["sigma"]), "motion": float(p["length"]) / math.sqrt(12.0),
             "disk": float(p["radius"]) / 2.0}[kernel]  # std of the PSF along its widest axis
    keep = {k: v for k, v in ref.op_params().items() if k not in ("kernel", "sigma", "size", "length", "angle", "radius")}
    length, radius = max(1.0, math.sqrt(12.0) * sigma), max(0.5, 2.0 * sigma)  # the operators' minima
    fams = {"gaussian": ({"sigma": sigma}, f"gaussian σ={sigma:.3g}"),
            "motion": ({"length": length, "angle": float(p.get("angle", 0.0))}, f"motion L={length:.3g}"),
            "disk": ({"radius": radius}, f"disk r={radius:.3g}")}
    order = [kernel] + [k for k in fams if k != kernel]
    levels = [Level(fams[k][1] + (" (training)" if k == kernel else ""),
                    {} if k == kernel else {"operator_params": {**keep, "kernel": k, **fams[k][0]}}, training=(k == kernel))
              for k in order]
    return Shift("kernel", "Blur kernel family", "PSF family", False, levels,
                 "Another PSF family of comparable width, for simulation AND reconstruction.")


def limited_angle_shift(ref: Condition) -> Shift | None:
    table = LIMITED_ANGLE.get(ref.operator)
    if table is None:
        return None
    param = _pick(ref.operator, table["params"])
    if param is None:
        return Shift("limited-angle", "Limited angle", table["axis"], True, [],
                     skipped={"*": f"operator '{ref.operator}' has no arc parameter ({', '.join(table['params'])})"})
    nominal = _nominal(ref, param)
    if not isinstance(nominal, (int, float)):
        return None
    levels = [Level(_fmt(table["fmt"], v=nominal * f), {"operator_params": {**ref.op_params(), param: float(nominal * f)}},
                    training=(f == 1.0)) for f in reversed(table["factors"])]
    return Shift("limited-angle", "Limited angle", table["axis"], True, levels,
                 f"Views spread over a shorter arc ('{param}'), simulation and reconstruction.")


def calibration_shifts(ref: Condition) -> list[Shift]:
    out = []
    for table in CALIBRATION.get(ref.operator, []):
        if _for_kernel(ref, table) is None:
            out.append(Shift(table["name"], table["label"], table["axis"], True, [],
                             skipped={"*": "a user-given psf has no width to vary"}))
            continue
        table = _for_kernel(ref, table)
        param = _pick(ref.operator, table["params"])
        if param is None and table.get("list_param") in _accepted(ref.operator):
            out.append(_list_offset_shift(ref, table))
            continue
        if param is None:
            out.append(Shift(table["name"], table["label"], table["axis"], True, [],
                             skipped={"*": f"operator '{ref.operator}' has no parameter for this "
                                           f"({', '.join(table['params'])})"}))
            continue
        nominal = _nominal(ref, param)
        levels = []
        if "offsets" in table:
            base = float(nominal or 0.0)
            for o in table["offsets"]:
                sim = {**ref.op_params(), param: base + o}
                levels.append(Level(_fmt(table["fmt"], v=o), {} if o == 0 else {"sim_params": sim}, training=(o == 0)))
        else:
            if not isinstance(nominal, (int, float)) or isinstance(nominal, bool):
                out.append(Shift(table["name"], table["label"], table["axis"], True, [],
                                 skipped={"*": f"'{param}' is not set for this operator ({ref.operator} "
                                               f"{Condition.dumps(ref.op_params())})"}))
                continue
            for f in table["factors"]:
                sim = {**ref.op_params(), param: float(nominal) * f}
                levels.append(Level(_fmt(table["fmt"], f=f, v=nominal * f), {} if f == 1.0 else {"sim_params": sim},
                                    training=(f == 1.0)))
        out.append(Shift(table["name"], table["label"], table["axis"], True, levels,
                         f"y simulated with '{param}' off by the given amount; every method reconstructs with the "
                         f"nominal K."))
    return out


def _list_offset_shift(ref: Condition, table: Mapping) -> Shift:
    """An offset applied to every entry of a list parameter (e.g. the view angles) of K_sim only."""
    lp = table["list_param"]
    nominal = [float(a) for a in getattr(build_operator(ref), lp)]
    levels = []
    for o in table["offsets"]:
        sim = {**ref.op_params(), lp: [a + o for a in nominal]}
        levels.append(Level(_fmt(table["fmt"], v=o), {} if o == 0 else {"sim_params": sim}, training=(o == 0)))
    return Shift(table["name"], table["label"], table["axis"], True, levels,
                 f"y simulated with every entry of '{lp}' shifted by the offset; every method reconstructs with "
                 f"the nominal K.")


def discretisation_shift(ref: Condition) -> Shift:
    train = ref.simulation
    levels = [Level("crime" + (" (training)" if train == "crime" else ""), {"simulation": "crime"}, train == "crime"),
              Level("fine grid" + (" (training)" if train == "fine" else ""), {"simulation": "fine"}, train == "fine")]
    return Shift("discretisation", "Discretisation (inverse crime)", "simulation grid", False, levels,
                 "'crime': y simulated on the reconstruction grid; 'fine grid': y simulated on a finer grid.")


def resolution_shift(ref: Condition) -> Shift:
    levels = []
    for f in RESOLUTION_FACTORS:
        s = int(round(ref.size * f))
        if s >= 8:
            levels.append(Level(f"{s}×{s}", {"size": s}, training=(f == 1.0)))
    return Shift("resolution", "Image resolution", "test image size", True, levels,
                 "Test images (and K) at other sizes; models that cannot take the size are skipped.")


def object_shift(ref: Condition, folder: str | None = None) -> Shift:
    sources = [ref.source] + [s for s in OBJECT_SOURCES if s != ref.source]
    if folder:
        sources.append(folder if folder.startswith("folder:") else f"folder:{folder}")
    levels = [Level(s + (" (training)" if s == ref.source else ""), {} if s == ref.source
                    else {"source": s, "source_params": {}}, training=(s == ref.source)) for s in sources]
    return Shift("object", "Object class", "image source", False, levels,
                 "The model trained on one image source, tested on others.")


def build_shifts(ref: Condition, kinds: Sequence[str] = KINDS, folder: str | None = None) -> list[Shift]:
    """The shifts of `kinds` applicable to the reference condition (the training conditions)."""
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown shift(s) {', '.join(bad)}; available: {', '.join(KINDS)}")
    out: list[Shift] = []
    for k in kinds:
        if k == "noise":
            s = noise_shift(ref)
        elif k == "noise-family":
            s = noise_family_shift(ref)
        elif k == "geometry":
            s = geometry_shift(ref)
        elif k == "kernel":
            s = kernel_shift(ref)
        elif k == "limited-angle":
            s = limited_angle_shift(ref)
        elif k == "calibration":
            for c in calibration_shifts(ref):
                c.kind = k
                out.append(c)
            continue
        elif k == "discretisation":
            s = discretisation_shift(ref)
        elif k == "resolution":
            s = resolution_shift(ref)
        else:
            s = object_shift(ref, folder)
        if s is not None:
            s.kind = k
            out.append(s)
    return out


# ---------------------------------------------------------------------------------------
# Running the study
# ---------------------------------------------------------------------------------------

def run_shifts(methods: Mapping[str, Reconstructor], ref: Condition, shifts: Sequence[Shift],
               batch_size: int = 16, progress: Callable[[str], None] | None = None) -> list[dict]:
    """Score every method at every level of every shift; tidy rows (`STRESS_COLUMNS`).

    Levels that produce the same condition (e.g. the training point of several shifts)
    are computed once. A level that cannot be simulated, or a method that cannot run on
    it, is recorded in the shift's ``skipped``.
    """
    from .task import make_pairs

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
                    cache[key] = evaluate_methods(methods, y, x, phys, batch_size)[0]
                except Exception as e:  # noqa: BLE001 - a level that cannot be simulated is reported
                    cache[key] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                if progress:
                    progress(f"stress [{done}/{total}] {sh.name} {lv.label} ({time.perf_counter() - t0:.1f} s)")
            res = cache[key]
            if isinstance(res, str):
                sh.skipped[lv.label] = f"could not simulate: {res}"
                continue
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


def write_stress_csv(rows: Sequence[Mapping], path: str | Path) -> Path:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=STRESS_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in STRESS_COLUMNS})
    tmp.replace(p)
    return p


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


def read_stress_csv(path: str | Path) -> list[dict]:
    """The tidy rows of a ``stress.csv`` (mean and std as floats)."""
    with Path(path).open(newline="") as f:
        return [{**r, "mean": float(r["mean"]), "std": float(r["std"])} for r in csv.DictReader(f)]


def merge_previous(rows: list[dict], meta: dict, out_dir: Path,
                   progress: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Keep the shifts of an earlier study in `out_dir` that this one did not recompute.

    ``invmap stress RUN --shifts noise --n 64`` then refreshes the noise shift without
    losing the others. Each shift records its own images per level and methods (verdicts
    compare methods within a shift), so shifts of different invocations may be combined;
    earlier results are dropped (and said so) only when the reference condition — the
    training conditions — differs.
    """
    old_json, old_csv = out_dir / "stress.json", out_dir / "stress.csv"
    if not (old_json.exists() and old_csv.exists()):
        return rows, meta
    try:
        old = json.loads(old_json.read_text())
        old_rows = read_stress_csv(old_csv)
    except (OSError, ValueError, KeyError) as e:
        if progress:
            progress(f"stress: earlier results unreadable ({e}); replacing them")
        return rows, meta
    new_names = {m["name"] for m in meta["shifts"]}
    kept = [m for m in old.get("shifts", []) if m["name"] not in new_names]
    if not kept:
        return rows, meta

    def reference(m: Mapping) -> dict:
        return {k: v for k, v in (m.get("reference") or {}).items() if k != "n"}

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


def stress_study(methods: Mapping[str, Reconstructor], ref: Condition, out_dir: str | Path,
                 kinds: Sequence[str] = KINDS, folder: str | None = None, batch_size: int = 16,
                 settings: Mapping | None = None, progress: Callable[[str], None] | None = None
                 ) -> tuple[list[dict], dict]:
    """Run the study and write ``stress.csv``, ``stress.json`` (shifts + verdicts) and
    ``figures/stress_<shift>.png`` into `out_dir`; returns (rows, meta)."""
    from .figures import stress_overview, stress_plot
    from .verdicts import verdicts_from_rows

    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    shifts = applicable_shifts(ref, kinds, folder)
    missing = [k for k in kinds if not any(s.kind == k for s in shifts)]
    if missing and len(kinds) < len(KINDS) and progress:  # a subset the user asked for
        progress(f"stress: not applicable to operator '{ref.operator}' / noise '{ref.noise}': {', '.join(missing)}")
    t0 = time.perf_counter()
    rows = run_shifts(methods, ref, shifts, batch_size, progress)
    metas = [{**s.meta(), "images per level": ref.n, "methods": sorted(methods)} for s in shifts]
    meta = {"settings": {"images per level": ref.n, **dict(settings or {}),
                         "seconds": round(time.perf_counter() - t0, 1)},
            "reference": json.loads(ref.key()), "methods": sorted(methods), "shifts": metas}
    rows, meta = merge_previous(rows, meta, out, progress)
    meta["verdicts"] = [v.to_dict() for v in verdicts_from_rows(rows, meta["shifts"])]
    write_stress_csv(rows, out / "stress.csv")
    atomic_write_json(out / "stress.json", meta)
    for m in meta["shifts"]:
        stress_plot(m, rows, out / "figures" / f"stress_{m['name']}.png")
    stress_overview(meta["shifts"], rows, out / "figures" / "stress_overview.png")
    return rows, meta


__all__ = ["Level", "Shift", "KINDS", "STRESS_COLUMNS", "NOISE_FACTORS", "GEOMETRY", "LIMITED_ANGLE", "CALIBRATION",
           "build_shifts", "parse_kinds", "applicable_shifts", "run_shifts", "stress_study", "write_stress_csv", "read_stress_csv", "merge_previous", "comparable_photons"]
