"""From a run directory or a config to reconstructors and test pairs.

- `resolve(target)`: a run directory (holding ``config.yaml``) or a config file → (config, run_dir);
- `build_methods(names, config, run_dir)`: name → ``method(y, physics)``; ``model`` is the
  run's trained network (`invmap.models.load_model`), any other name a variational method
  (`invmap.variational.build`) with the parameters the run tuned (``baselines.json``);
  ``safe`` the model wrapped by `invmap.trust.SafeReconstructor` around the tuned ``tv``;
  ``pretrained:NAME`` a zoo entry of the run's task (`load_pretrained`); ``module:attr`` or an
  installed package's method an outside method (`invmap.plugins`, never tuned);
- `tune_baselines`: tune each classical method's parameter on the validation pairs
  (`invmap.variational.tune`) and record the result in ``baselines.json``;
- `ensure_baselines`: the run's recorded baselines, tuning (and recording) those missing, so
  a run made by ``invmap train`` is never scored against untuned defaults labelled "tuned";
- `baselines_note`: one honest sentence on how the baselines' parameters were chosen.

The pairs they tune and score on come from the run's `invmap.evaluation.experiment.Experiment`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


from .. import variational, zoo
from ..atomic import clean_orphans
from ..capabilities import Method
from ..config import check_model_matches, load_config
from ..files import check_regular, read_json
from ..models import load_model
from ..plugins import load_method
from ..timelimit import Budget
from .evaluate import atomic_write_json
from .resolve import MODEL, RUN_METHODS, classical, parse
from .zoo_task import task_difference

def resolve(target: str | Path | None, overrides: Sequence[str] = ()) -> tuple[Any, Path | None]:
    """(config, run_dir or None) for a run directory or a config path (None: the default config).

    Opening a run directory removes the temporary files of writes a kill interrupted there
    and in its figures/ folder (`invmap.atomic.clean_orphans`).
    """
    if target is None:
        return load_config(None, overrides), None
    if zoo.is_pretrained(target):  # commands that write into a run work on a copy of the entry
        name = str(target)[len(zoo.PREFIX):]
        p = zoo.materialise(name, Path("runs") / f"pretrained-{name}")
        print(f"invmap: {target} is run directory {p} (a copy of the zoo entry; results are written there)",
              file=sys.stderr)
        return load_config(p / "config.yaml", overrides), p
    p = Path(target)
    if p.is_dir():
        if not ((p / "config.yaml").exists() or (p / "config.yaml").is_symlink()):
            raise FileNotFoundError(f"{p} is not a run directory (no config.yaml in it)")
        check_regular(p / "config.yaml", "config", within=p)  # a run's own file, not a link out of it
        clean_orphans(p)
        clean_orphans(p / "figures")
        return load_config(p / "config.yaml", overrides), p
    if not p.exists():
        raise FileNotFoundError(f"no run directory or config file at {p}")
    return load_config(p, overrides), None


BASELINES = "baselines.json"
#: the default cap on tuning (seconds): the plan decides, this only cuts a search far beyond it
TUNE_SECONDS = 600.0


def read_baselines(run_dir: str | Path | None) -> dict[str, dict]:
    """The entries of the run's ``baselines.json`` ({method: {"params", "how", ...}}); empty when absent."""
    path = None if run_dir is None else Path(run_dir) / BASELINES
    if path is None or not (path.exists() or path.is_symlink()):
        return {}
    data = read_json(path, "baselines", within=run_dir)
    if not isinstance(data, dict) or not all(isinstance(v, dict) and isinstance(v.get("params", {}), dict)
                                             for v in data.values()):
        raise ValueError(f"{path}: expected {{method: {{\"params\": {{...}}}}}}")
    return data


def load_baselines(run_dir: str | Path | None) -> dict[str, dict]:
    """{method: params} recorded by the run (``baselines.json``); empty when absent."""
    return {k: dict(v.get("params", {})) for k, v in read_baselines(run_dir).items()}


def is_tuned(entry: Mapping) -> bool:
    """Whether a ``baselines.json`` entry was tuned on validation pairs (it records their PSNR)."""
    return "val_psnr" in entry


def baselines_note(entries: Mapping[str, Mapping]) -> str:
    """How the baselines' parameters were chosen, in one sentence that says what happened (a
    search the time budget cut short is named: its method was tuned less than planned)."""
    if entries and all(is_tuned(e) and not e.get("budget_cut") for e in entries.values()):
        return "parameters tuned on validation pairs at the training conditions, kept fixed"
    parts = [f"{n}: {e.get('how') or ('tuned on validation pairs' if is_tuned(e) else 'default parameters, not tuned')}"
             for n, e in entries.items()]
    return "; ".join(parts) or "none"


def ensure_baselines(exp: Any, names: Sequence[str], run_dir: str | Path, time_budget: float = TUNE_SECONDS,
                     n_val: int = 8, announce: Callable[[str], None] | None = None,
                     progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """The ``baselines.json`` entries of `names` (the learned ``model`` / ``safe`` excluded; ``safe``
    needs ``tv``), tuning those the run lacks.

    A run made by ``invmap train`` has no ``baselines.json``: its baselines are tuned now on
    the validation pairs (`tune_baselines`, one line to `announce`), and recorded in the run
    directory next to the entries it already held (which are kept as they are). Entries left
    untuned because ``evaluation.tune`` was off are tuned once it is on. `exp`: the
    `invmap.evaluation.experiment.Experiment` whose validation pairs they are tuned on.
    """
    config = exp.config
    check_fixed_params(config)  # a refused setting fails before anything is announced or tuned
    have = read_baselines(run_dir)
    reused = [b for n in names if n in RUN_METHODS for b in RUN_METHODS[n].reuses if b not in names]
    names = classical(names) + list(dict.fromkeys(reused))
    missing = [n for n in names
               if n not in have or (config.evaluation.tune and have[n].get("tune_off"))]
    if missing:
        if announce:
            how = (f"tuning them now on {min(n_val, exp.val_size())} validation pairs (a fixed plan, capped at {time_budget:g} s)"
                   if config.evaluation.tune else "using their default parameters (evaluation.tune is off)")
            announce(f"invmap: {run_dir}: no tuned parameters for {', '.join(missing)} in {BASELINES}; {how}")
        have.update(tune_baselines(exp, missing, None, n_val=n_val, time_budget=time_budget, progress=progress))
        atomic_write_json(Path(run_dir) / BASELINES, have)
    return {n: have[n] for n in names if n in have}


def check_fixed_params(config: Any) -> None:
    """A one-line ValueError for an ``evaluation.params`` entry of a variational method whose
    settings it refuses (unknown name, wrong type, out of range) — before anything is tuned or said."""
    for n, params in config.evaluation.params.items():
        if n in variational.names():
            try:
                variational.build(n, **dict(params))
            except ValueError as e:
                raise ValueError(f"evaluation.params.{n}: {e}") from None


def build_methods(names: Sequence[str], run_dir: str | Path | None = None,
                  baselines: Mapping[str, Mapping] | None = None,
                  overrides: Mapping[str, Mapping] | None = None, device: str | None = None,
                  config: Any = None, model: Method | None = None) -> dict[str, Method]:
    """name → reconstructor. `overrides` replace parameters (e.g. ``{"tv": {"iters": 100}}``).
    With `config`, the trained model must be the one it describes (`check_model_matches`);
    ``safe`` wraps `model` (default: the run's, loaded here)."""
    tuned = dict(load_baselines(run_dir)) if baselines is None else {k: dict(v) for k, v in baselines.items()}
    methods: dict[str, Method] = {}
    for n in names:
        scheme = parse(n).scheme  # an unknown name fails here, in one line
        if scheme == "run":  # built from the run's model and fresh copies of the baselines it reuses
            learned = methods.get(MODEL) or model or _run_model(run_dir, config)
            reused = {b: variational.build(b, **{**tuned.get(b, {}), **dict((overrides or {}).get(b, {}))})
                      for b in RUN_METHODS[n].reuses}
            methods[n] = RUN_METHODS[n].build(learned, reused)
        elif scheme == "pretrained":  # a zoo entry of this task, beside the run's own model
            methods[n] = load_pretrained(n, config)
        elif scheme in ("entry-point", "module"):  # an installed package's, or module:attr
            methods[n] = load_method(n, Budget.of(config))  # watched: time budget, output checked
        else:
            methods[n] = variational.build(n, **{**tuned.get(n, {}), **dict((overrides or {}).get(n, {}))})
    return methods


def _run_model(run_dir: str | Path | None, config: Any = None) -> Method:
    """The run's trained network (`invmap.models.load_model`), checked against `config`."""
    if run_dir is None or not (Path(run_dir) / "model.safetensors").exists():
        raise FileNotFoundError(f"method 'model' needs a trained run directory with model.safetensors"
                                f"{'' if run_dir is None else f' (none in {run_dir})'}")
    recon, meta = load_model(run_dir)
    if config is not None:
        check_model_matches(config, meta, run_dir)
    if hasattr(recon, "eval"):
        recon.eval()
    return recon


def load_pretrained(target: str, config: Any = None) -> Method:
    """The model of zoo entry `target` (``pretrained:NAME``, verified against its card), in eval mode;
    with `config`, only when the entry is of its task (`invmap.evaluation.zoo_task.task_difference`): its scores
    then stand in the same tables as the run's methods."""
    name = target[len(zoo.PREFIX):]
    if config is not None:
        why = task_difference(name, config)
        if why is not None:
            raise ValueError(f"method '{target}' is a zoo entry of another task than this run's ({why}); "
                             f"use `invmap evaluate {target}` for its own task")
    recon, _ = load_model(zoo.run_dir(target))
    if hasattr(recon, "eval"):
        recon.eval()
    return recon


def tune_baselines(exp: Any, names: Sequence[str], out_dir: str | Path | None = None,
                   n_val: int = 8, time_budget: float = TUNE_SECONDS, search_iters: int | None = 50,
                   progress: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Tune the classical methods' parameters on `n_val` validation pairs of the experiment
    `exp` (`invmap.evaluation.experiment.Experiment.val_pairs`); writes ``baselines.json``.

    Each method with a tunable parameter gets an equal share of `time_budget` seconds (the
    budget stops the refinement; the coarse grid always runs), iterative methods search
    with at most `search_iters` iterations (then run with their own count).
    Returns {method: {"params": {...}, "how": how they were chosen, "val_psnr": best mean PSNR
    (tuned methods only), "seconds": ...}}; PSNR uses ``evaluation.data_range``, recorded as
    each tuned entry's ``data_range``.
    """
    config = exp.config
    y, x, phys = exp.val_pairs(n_val)
    out: dict[str, dict] = {}
    names = classical(names)
    fixed = {n: dict(config.evaluation.params.get(n, {})) for n in names}  # settings kept while tuning the rest
    protos = {n: variational.build(n, **fixed[n]) for n in names}  # each built once, with its fixed settings
    defaults = {n: protos[n].default_grid(phys, y) for n in names}
    tunable = [n for n in names if defaults[n] or n in config.evaluation.tune_grid]
    grids = {n: {k: v for k, v in defaults[n].items() if k not in fixed[n]} if config.evaluation.tune_grid.get(n) is None
             else config.evaluation.tune_grid[n] for n in names}
    for n in names:
        t0 = time.perf_counter()
        if n in tunable and config.evaluation.tune:
            grid, params = grids[n], protos[n].params()
            search = {"search_iters": min(int(search_iters), int(params["iters"]))} \
                if search_iters and "iters" in params else {}
            method, table = variational.tune(n, (y, x), grid=grid, physics=phys, fixed=fixed[n],
                                             time_budget=time_budget / max(1, len(tunable)),
                                             data_range=config.evaluation.data_range, **search)
            best = max(table, key=lambda r: r["psnr"]) if table else {"psnr": float("nan")}
            t = method.tuning
            cut = (f" (search cut by the {t['time_budget']:g} s time budget after {t['evaluations']} of "
                   f"{t['planned']} evaluations)") if t.get("budget_cut") else ""
            out[n] = {"params": method.params(), "how": f"tuned on {y.shape[0]} validation pairs{cut}",
                      "val_psnr": float(best["psnr"]), "data_range": config.evaluation.data_range,
                      "tried": len(table), "evaluations": t["evaluations"], "planned": t["planned"],
                      "budget_cut": bool(t.get("budget_cut")), "seconds": round(time.perf_counter() - t0, 2)}
        else:
            why = "nothing to tune" if n not in tunable else "evaluation.tune is off"
            out[n] = {"params": protos[n].params(),
                      "how": f"{'configured' if fixed[n] else 'default'} parameters, not tuned ({why})",
                      "seconds": 0.0, **({"tune_off": True} if n in tunable else {})}  # tuned once tune is on
        if progress:
            extra = f", val PSNR {out[n]['val_psnr']:.2f} dB" if "val_psnr" in out[n] else ""
            progress(f"tuned {n}: {json.dumps(out[n]['params'])}{extra} ({out[n]['seconds']:.1f} s)")
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / BASELINES, out)
    return out


__all__ = ["check_fixed_params", "resolve", "load_baselines", "read_baselines", "ensure_baselines", "baselines_note", "is_tuned",
           "build_methods", "tune_baselines"]
