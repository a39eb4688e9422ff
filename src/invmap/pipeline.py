"""`invmap run`: the whole study in one call.

    simulate → tune the baselines → train → evaluate → stress → report

Each stage is a function of what the one before built: the `invmap.evaluation.experiment.Experiment`
(the task's physics, built once; the validation and test pairs, each simulated once), then
the methods, built, tuned and calibrated once (`Built`, `prepare`).

1. simulate: the test set (``data.test_simulation``: a finer grid by default, so no method
   profits from the inverse crime); the validation pairs when the tuning first asks;
2. tune: each classical method's regularisation weight (e.g. TV's λ in
   argmin ½‖Kx − y‖² + λ TV(x)) on the validation pairs, within a time budget
   (``baselines.json``);
3. train: the learned map f_Θ (`invmap.training.train`: model.safetensors, train_log.csv);
4. evaluate: every method on the test set (metrics.csv, metrics.md, reconstruction figure), and
   beside them the zoo entry of the same task (``evaluation.zoo``: what long training buys);
5. stress: one factor at a time away from the training conditions (stress.csv, stress.json,
   figures/stress_*.png, verdicts);
6. report: report.html, one self-contained page.

Nothing already written is overwritten: the run goes to a new directory ``OUT/NAME`` (or
``NAME-2``, ``NAME-3`` … when that exists).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from . import zoo
from .evaluation import evaluate as ev
from .evaluation import figures, report, runs, stress
from .evaluation.resolve import MODEL, TV, applicable_methods, check_names, classical, loaded_first
from .evaluation.task import condition_from_config
from .evaluation.trust import add_trust_scores, calibrate
from .evaluation.zoo_task import beside
from .evaluation.experiment import Experiment
from .method_output import MethodFailure
from .metrics import data_range_label
from .paths import inside
from .plugins import OutsideMethod
from .training import train
from .training.checks import check_config


@dataclass
class StressSettings:
    """How much the stress study costs: images per level, TV iterations, which shifts."""

    n_per_level: int = 32
    tv_iters: int = 0                  # 0: the tuned iteration count
    kinds: Sequence[str] = stress.KINDS
    folder: str | None = None
    batch_size: int = 16
    keep_going: bool = False           # a failing method is recorded in skipped instead of stopping the study


@dataclass
class RunOptions:
    out: str | Path = "runs"
    test_n: int | None = None          # test images for `evaluate` (default: data.test)
    tune_seconds: float = runs.TUNE_SECONDS
    tune_n: int = 8
    stress: StressSettings = field(default_factory=StressSettings)
    skip_stress: bool = False
    progress: bool = True


def new_run_dir(out: str | Path, name: str) -> Path:
    """``out/name``, or ``out/name-2``, ``-3`` … — the first that does not exist (created)."""
    base = Path(out)
    base.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10_000):
        d = base / (name if k == 1 else f"{name}-{k}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise FileExistsError(f"too many runs named {name} in {base}")


def _say(enabled: bool) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if enabled:
            print(msg, file=sys.stderr, flush=True)
    return say


def _methods(exp: Experiment, names: Sequence[str], tune_dir: Path, tune_seconds: float,
             say: Callable[[str], None], overrides: dict | None = None) -> tuple[dict, dict[str, dict]]:
    """(name → reconstructor in the order of `names`, the baselines' ``baselines.json`` entries).

    The trained model (and any ``pretrained:NAME`` entry) is loaded and checked against `config`
    first, so a run whose config does not describe its model fails before anything is tuned or written; baselines the run
    has not tuned are tuned now (announced on stderr) and recorded in `tune_dir`.
    """
    config, run_dir = exp.config, exp.run_dir
    check_names(names)  # an unknown name fails before anything is tuned or written
    first = loaded_first(names)
    model = runs.build_methods(first, run_dir, config=config)  # zoo entries and outside methods load first too
    baselines = runs.ensure_baselines(exp, names, tune_dir, time_budget=tune_seconds, announce=_say(True),
                                      progress=say)
    rest = runs.build_methods([n for n in names if n not in model],
                              baselines={k: v["params"] for k, v in baselines.items()}, overrides=overrides,
                              model=model.get(MODEL), config=config)
    return {n: model.get(n) or rest[n] for n in names}, baselines


@dataclass
class Built:
    """The methods of a run, built, their baselines tuned and the learned ones calibrated — once
    (`prepare`), then handed to the evaluation and the stress study (`run` does)."""

    methods: dict[str, Any]  # name → reconstructor, in the order they were asked for
    baselines: dict[str, dict]


def prepare(exp: Experiment, names: Sequence[str] | None, tune_dir: Path, tune_seconds: float,
            say: Callable[[str], None], overrides: dict | None = None) -> Built:
    """The applicable methods of `names` (default ``evaluation.methods``; notes said), built
    (`_methods`) and calibrated on the experiment's validation pairs (`calibrate`)."""
    have_model = exp.run_dir is not None and (exp.run_dir / "model.safetensors").exists()
    applicable, notes = applicable_methods(list(names or exp.config.evaluation.methods), exp.operator,
                                                have_model=have_model)
    for n in notes:
        say(f"note: {n}")
    recon, baselines = _methods(exp, applicable, tune_dir, tune_seconds, say, overrides)
    calibrate(recon, exp, say=say)
    return Built(recon, baselines)


def evaluate_run(exp: Experiment, out_dir: Path, methods: Sequence[str] | None = None,
                 test_n: int | None = None, figure: bool = True, say: Callable[[str], None] = lambda s: None,
                 tune_seconds: float = runs.TUNE_SECONDS, built: Built | None = None,
                 keep_going: bool = False) -> list[dict]:
    """Evaluate `methods` (default: ``evaluation.methods``) on the test set; writes
    metrics.csv / metrics.md (and figures/reconstructions.png) into `out_dir`; returns the rows.

    Baselines use the parameters recorded in ``baselines.json`` of the run (of `out_dir` for a
    config), tuned first when missing (`invmap.evaluation.runs.ensure_baselines`). Rows of
    other methods already in ``out_dir/metrics.csv`` are kept (`evaluate.merge_rows`); the
    figure is then left as it is unless it would show every method. `built`: what `run` made
    before; without it the methods are built here. The test pairs are the experiment's.

    A method that fails (raises, runs out of its time budget, returns anything but a finite image
    batch) stops the evaluation in one line naming it, before anything is written; with
    `keep_going` the others are scored and metrics.md lists the failure.
    """
    config = exp.config
    metrics_csv = Path(out_dir) / "metrics.csv"
    figs = inside(out_dir, "figures", "the figures folder")  # a link out of the run: refused before any work
    earlier = (ev.read_metrics(metrics_csv, within=out_dir)  # a damaged table fails before any work
               if metrics_csv.exists() or metrics_csv.is_symlink() else [])
    if built is None:
        built = prepare(exp, methods, exp.run_dir if exp.run_dir is not None else Path(out_dir), tune_seconds, say)
    recon = built.methods
    names = list(recon)
    y, x, phys = exp.test_pairs(test_n)
    say(f"evaluating {', '.join(names)} on {x.shape[0]} test images ({config.data.test_simulation} simulation)")
    dr = config.evaluation.data_range
    spreads: dict = {}
    results, recons = ev.evaluate_methods(recon, y, x, phys, batch_size=config.evaluation.batch_size,
                                          keep=y.shape[0], data_range=dr, spreads=spreads, keep_going=keep_going)
    failed = {name: r.error for name, r in results.items() if r.error}
    if failed and not keep_going:
        name, why = next(iter(failed.items()))
        raise MethodFailure(f"method '{name}' failed on the test set ({why}); nothing was written "
                            "(--keep-going scores the others and records the failure)")
    add_trust_scores(recon, y, phys, results, recons, batch_size=config.evaluation.batch_size, x=x)
    recons = {k: v[:3] for k, v in recons.items()}
    for name, why in failed.items():
        say(f"note: {name} failed: {why}")
    other = sorted({str(r["method"]) for r in earlier if r.get("data_range", 1.0) != dr})
    if other:  # rows scored with another PSNR data range are not comparable: replaced, not kept
        say(f"note: dropped the earlier rows of {', '.join(other)} in {metrics_csv}: scored with another "
            f"PSNR data range than {data_range_label(dr)}")
        earlier = [r for r in earlier if r.get("data_range", 1.0) == dr]
    rows, kept = ev.merge_rows(earlier, ev.summarize(results, data_range=dr))
    if kept:
        say(f"note: kept the earlier rows of {', '.join(kept)} in {metrics_csv}")
    ev.write_metrics(rows, out_dir, failed=failed, budgets=outside_budgets(recon))
    fig = figs / "reconstructions.png"
    if figure and recons and kept and fig.exists():
        say(f"note: left {fig} as it was (it shows {', '.join(kept)} too); evaluate every method to redraw it")
    elif figure and recons:
        psnr = {m: results[m].scores["psnr"][:3].tolist() for m in recons}
        figures.recon_grid(x, y, recons, fig, n=3, psnr=psnr)
    if figure and spreads:
        figures.posterior_grid(x, {m: recons[m] for m in spreads}, spreads, figs / "posterior.png")
    return rows


def stress_run(exp: Experiment, settings: StressSettings, methods: Sequence[str] | None = None,
               say: Callable[[str], None] = lambda s: None, tune_seconds: float = runs.TUNE_SECONDS,
               built: Built | None = None) -> tuple[list[dict], dict]:
    """The stress study of the experiment's run with its baselines (tuned first when the run has
    none); writes stress.csv / stress.json / figures. `built`: the methods `run` prepared for the
    evaluation (not when ``settings.tv_iters`` asks for another TV)."""
    config, run_dir = exp.config, Path(exp.run_dir)
    inside(run_dir, "figures", "the figures folder")  # checked, and the earlier study read, before any work
    previous = stress.read_previous(run_dir, say)
    if built is None or settings.tv_iters:
        overrides = {TV: {"iters": int(settings.tv_iters)}} if settings.tv_iters else {}
        built = prepare(exp, methods, run_dir, tune_seconds, say, overrides)
    recon, baselines = built.methods, built.baselines
    ref = condition_from_config(config, n=settings.n_per_level, simulation=config.data.nominal_simulation)
    return stress.stress_study(recon, ref, run_dir, kinds=settings.kinds, folder=settings.folder,
                               batch_size=settings.batch_size, data_range=config.evaluation.data_range,
                               settings={"TV iterations": settings.tv_iters or (
                                             "as tuned" if runs.is_tuned(baselines.get(TV, {})) else "default"),
                                         "baselines": runs.baselines_note(baselines),
                                         **outside_budgets(recon),
                                         **({"keep going": True} if settings.keep_going else {})},
                               progress=say, keep_going=settings.keep_going, previous=previous)


def outside_budgets(methods: dict[str, Any]) -> dict[str, str]:
    """{"time budget of NAME": "… s per call, … s in all"} for each method from outside (recorded)."""
    return {f"time budget of {n}": m.budget.describe() for n, m in methods.items() if isinstance(m, OutsideMethod)}


def run(config: Any, options: RunOptions | None = None) -> Path:
    """Run the whole pipeline for `config`; returns the run directory (holding report.html)."""
    o = options or RunOptions()
    say = _say(o.progress)
    t_start = time.perf_counter()
    physics = check_config(config)  # a bad value fails here, before the run directory exists
    beside(config)  # and so does an evaluation.zoo entry that is unknown or of another task
    runs.check_fixed_params(config)  # and an evaluation.params setting a method refuses
    run_dir = new_run_dir(o.out, config.name)
    (run_dir / "config.yaml").write_text(config.to_yaml())
    say(f"invmap run: {config.name} → {run_dir}")
    exp = Experiment(config, run_dir, physics)  # the physics, built once for every stage
    baselines = classical(applicable_methods(config.evaluation.methods, exp.operator)[0])

    t0 = time.perf_counter()
    test = exp.test_pairs(o.test_n)  # made once: the evaluation scores every method on them
    say(f"[1/6] simulate: {test[1].shape[0]} test pairs ({config.data.test_simulation} simulation) in "
        f"{time.perf_counter() - t0:.1f} s; the training and validation pairs are drawn as they are used")
    t0 = time.perf_counter()
    say(f"[2/6] tune baselines ({', '.join(baselines) or 'none'}) on {min(o.tune_n, exp.val_size())} validation "
        f"pairs (a fixed plan, capped at {o.tune_seconds:.0f} s)")
    runs.tune_baselines(exp, baselines, run_dir, n_val=o.tune_n, time_budget=o.tune_seconds, progress=say)
    say(f"      done in {time.perf_counter() - t0:.0f} s")

    t0 = time.perf_counter()
    what = config.model.name + ("" if config.model.is_kind else f" (input {config.model.input})")
    say(f"[3/6] train {what} for ≤ {config.training.epochs} epochs"
        + (f" / {config.training.max_minutes:g} min" if config.training.max_minutes else ""))
    res = train(config, run_dir, resume=False, progress=o.progress, physics=exp.physics)
    say(f"      {res.summary()}")
    say(f"      done in {time.perf_counter() - t0:.0f} s")

    t0 = time.perf_counter()
    methods = list(config.evaluation.methods) + beside(config)  # what long training buys, beside the model
    extra = [m for m in methods if zoo.is_pretrained(m)]
    say("[4/6] evaluate on the test set" + (f" (beside the model: {', '.join(extra)}, see `invmap zoo`)"
                                              if extra else ""))
    built = prepare(exp, methods, run_dir, o.tune_seconds, say)  # once, for evaluation and stress
    rows = evaluate_run(exp, run_dir, say=say, built=built, test_n=o.test_n, keep_going=o.stress.keep_going)
    if o.progress:
        print(ev.text_table(rows), file=sys.stderr)
    log = run_dir / "train_log.csv"
    if log.exists():
        figures.training_curves(log, inside(run_dir, "figures", "the figures folder") / "training_curves.png")
    say(f"      done in {time.perf_counter() - t0:.0f} s")

    if not o.skip_stress:
        t0 = time.perf_counter()
        tv_it = f"TV {o.stress.tv_iters} iterations" if o.stress.tv_iters else "TV as tuned"
        say(f"[5/6] stress study ({o.stress.n_per_level} images per level, {tv_it})")
        _rows, meta = stress_run(exp, o.stress, methods=methods, say=say, built=built)
        for v in meta["verdicts"]:
            say(f"  • {v['text']}")
        say(f"      done in {time.perf_counter() - t0:.0f} s")

    say("[6/6] report")
    path = report.build_report(run_dir)
    say(f"finished in {(time.perf_counter() - t_start) / 60:.1f} min")
    return path.parent


__all__ = ["run", "RunOptions", "StressSettings", "Built", "prepare", "new_run_dir", "evaluate_run", "stress_run"]
