"""A study in a notebook: the objects `invmap run` hands from stage to stage, held by hand.

A task is y = K x + e (the config's operator K and noise e, images x of its source); a study
learns x̂ = f_Θ(y) on it and scores f_Θ beside the classical answers:

    from invmap.study import Study

    study = Study("task.yaml", training={"epochs": 5})   # = invmap train task.yaml --set training.epochs=5
    study.train()                    # a tqdm.auto progress bar: a widget in Jupyter, text in a terminal
    study.evaluate()                 # the metrics table (pandas.DataFrame where pandas is installed)
    study.stress(shifts="noise")     # the stress study's rows; study.verdicts says what they show
    study.show()                     # the run's figures, inline in a notebook
    study.report()                   # report.html

Each call is the command line's stage, not a copy of it: the config comes from
`invmap.config.load_config` (keyword sections become ``--set`` overrides), the experiment is
`invmap.evaluation.experiment.Experiment`, training is `invmap.training.train`, evaluation and the stress
study are `invmap.pipeline.evaluate_run` / `stress_run`, the report `invmap.evaluation.report`,
the comparison `invmap.evaluation.compare.compare_runs` — so a study and the commands give the
same files and numbers for the same config. What the command line prints as
``invmap: error: MESSAGE`` (exit 2) is raised here as an exception whose text is MESSAGE
(`ValueError`, `FileNotFoundError`, …); nothing in this module exits the interpreter.

Tables are `pandas.DataFrame` where pandas is installed and lists of dicts (one per row)
otherwise (`table`). Figures are `Figure` objects: a notebook shows one inline as the value of
a cell (`_repr_png_`), `show` displays several.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from .atomic import atomic_write
from .config import MAX_YAML_DEPTH, Config, load_config
from .evaluation import report as run_report
from .evaluation import runs
from .evaluation.compare import compare_runs
from .evaluation.evaluate import read_metrics
from .evaluation.figures import training_curves
from .evaluation.stress import parse_kinds, read_stress_csv
from .evaluation.experiment import Experiment
from .files import read_bytes, read_csv
from .paths import inside
from .pipeline import RunOptions, StressSettings, evaluate_run, new_run_dir, run as run_pipeline, stress_run
from .training import TrainResult, train
from .training.checks import check_config

__all__ = ["Study", "Figure", "Comparison", "compare", "table", "overrides_of"]


def table(rows: Iterable[Mapping[str, Any]]) -> Any:
    """`rows` as a `pandas.DataFrame` where pandas is installed, else as a list of dicts.

        >>> table([{"method": "tv", "psnr_mean": 34.3}])        # doctest: +SKIP
          method  psnr_mean
        0     tv       34.3
    """
    records = [dict(r) for r in rows]
    try:
        import pandas  # optional: a notebook's table
    except ImportError:
        return records
    return pandas.DataFrame.from_records(records)


def _yaml_value(value: Any) -> str:
    """`value` as the YAML text of a ``--set KEY=VALUE`` (read back by `invmap.config.load_yaml`)."""
    text: str = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True).strip()
    return text.removesuffix("\n...").strip()


def overrides_of(sections: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[str]:
    """Keyword sections as ``--set`` overrides: ``{"training": {"lr": 3e-4}}`` → ``["training.lr=0.0003"]``.

    Nested mappings become dotted keys (an empty one is set as ``{}``); every other value is
    written as YAML, so it is read exactly as the same ``--set`` on the command line.

        >>> overrides_of({"model": {"name": "cnn", "depth": 3}, "training": {"lr": 1e-5}})
        ['model.name=cnn', 'model.depth=3', 'training.lr=1.0e-05']
    """
    if depth >= MAX_YAML_DEPTH:  # as deep as a YAML config may nest
        raise ValueError(f"config: {prefix.rstrip('.')[:80]}: nested more than {MAX_YAML_DEPTH} levels")
    out: list[str] = []
    for key, value in sections.items():
        if not isinstance(key, str) or not key or "=" in key or "." in key:
            raise ValueError(f"config: {prefix}{str(key)[:80]!s}: a key is a plain name (no '.' or '=')")
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += overrides_of(value, f"{name}.", depth + 1)
        else:
            out.append(f"{name}={_yaml_value(dict(value) if isinstance(value, Mapping) else value)}")
    return out


@dataclass(frozen=True)
class Figure:
    """A PNG a run wrote (``RUN/figures/NAME.png``); a notebook shows it inline.

        >>> study.figure("stress_overview")      # the last value of a cell: the heatmap   # doctest: +SKIP
    """

    path: Path

    @property
    def name(self) -> str:
        return self.path.stem

    def _repr_png_(self) -> bytes:
        return read_bytes(self.path, "figure")

    def __repr__(self) -> str:
        return f"Figure({str(self.path)!r})"


def _display(figures: Sequence[Figure]) -> None:
    """Show each figure in the notebook that runs this (nothing outside IPython)."""
    try:
        from IPython.display import display  # optional: only a notebook has somewhere to show it
    except ImportError:
        return
    show: Any = display  # untyped
    for f in figures:
        show(f)


class Study:
    """One experiment of y = K x + e: its config, its `Experiment`, its run directory.

    ``Study(config, out="runs", overrides=(), verbose=True, **sections)``: `config` is a YAML path,
    a preset name (``ct-lpd``), None (the embedded default) or a `Config`; `overrides` are
    ``--set`` strings and `sections` keyword sections (``model={"name": "cnn"}``,
    ``name="hw-cnn"``), both laid over the config as the command line's ``--set`` (a key the
    config does not have raises the command line's one-line message). The config is checked
    as `invmap run` checks it (network on the meta device, nothing allocated) before anything
    is written. The run directory ``out/NAME`` (``NAME-2`` … when taken) is made when a stage
    first writes, never replaced.

        >>> cnn = Study(name="hw-cnn", model={"name": "cnn", "depth": 3}, training={"epochs": 2})
        >>> cnn.train(); cnn.evaluate()          # doctest: +SKIP
    """

    def __init__(self, config: str | Path | Config | None = None, *, out: str | Path = "runs",
                 overrides: Sequence[str] = (), verbose: bool = True, **sections: Any) -> None:
        if isinstance(overrides, str):
            raise ValueError("overrides: a list of KEY=VALUE strings, e.g. ['training.lr=3e-4']")
        changes = list(overrides) + overrides_of(sections)
        if not (config is None or isinstance(config, (str, Path, Config))):
            raise ValueError(f"config: a YAML path, a preset name, a Config or None, got {type(config).__name__}")
        if isinstance(config, Config):
            if changes:
                raise ValueError("overrides apply to a config file or preset name; change a Config with "
                                 "config.model_copy(update=…) or pass its file")
            self.config = config
        else:
            self.config = load_config(config, changes)
        self.out = Path(out)
        self.verbose = verbose
        self.experiment = Experiment(self.config, None, check_config(self.config))
        self.result: TrainResult | None = None

    @classmethod
    def open(cls, run: str | Path, *, verbose: bool = True) -> "Study":
        """The study of an existing run directory (its config.yaml), as ``invmap evaluate RUN`` opens it;
        ``pretrained:NAME`` opens a copy of the zoo entry under runs/ as the command line does.

            >>> done = Study.open("runs/ct-ellipses-unet"); done.metrics()     # doctest: +SKIP
        """
        config, run_dir = runs.resolve(run)
        if run_dir is None:
            raise ValueError(f"{run} is not a run directory (runs/NAME); a config file starts a Study(…)")
        study = cls(config, out=run_dir.parent, verbose=verbose)
        study.experiment.run_dir = run_dir
        return study

    # -------------------------------------------------------------------- where it writes

    @property
    def run_dir(self) -> Path | None:
        """The run directory, or None before the first stage wrote one."""
        return self.experiment.run_dir

    def _run_dir(self) -> Path:
        if self.experiment.run_dir is None:
            self.experiment.run_dir = new_run_dir(self.out, self.config.name)
            self._say(f"run directory: {self.experiment.run_dir}")
        return self.experiment.run_dir

    def _say(self, msg: str) -> None:
        if self.verbose:
            print(msg, flush=True)

    def _need_run(self, what: str) -> Path:
        if self.run_dir is None:
            raise ValueError(f"{what} needs a run: train, evaluate or open one first")
        return self.run_dir

    # -------------------------------------------------------------------- the stages

    def train(self, progress: bool = True, resume: bool = False) -> TrainResult:
        """Train the config's model into the run directory (`invmap.training.train`, the physics
        of this study's experiment); `progress`: the tqdm.auto bar. Returns the `TrainResult`.

            >>> Study(training={"max_minutes": 2}).train().best_val_psnr     # doctest: +SKIP
        """
        self.result = train(self.config, self._run_dir(), resume=resume, progress=progress,
                            physics=self.experiment.physics)
        self._say(self.result.summary())
        return self.result

    def evaluate(self, methods: Sequence[str] | None = None, n: int | None = None, figure: bool = True,
                 tune_seconds: float = runs.TUNE_SECONDS, keep_going: bool = False) -> Any:
        """Score `methods` (default ``evaluation.methods``) on the test set, as ``invmap evaluate``:
        writes metrics.csv / metrics.md (and figures/reconstructions.png); returns the rows as a `table`.
        A study without a trained model scores the classical methods (and methods from outside).

            >>> study.evaluate(methods=["fbp", "tv", "model"])[["method", "psnr_mean"]]   # doctest: +SKIP
        """
        if n is not None and n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        out = self._run_dir()
        rows = evaluate_run(self.experiment, out, methods=list(methods) if methods else None, test_n=n,
                            figure=figure, say=self._say, tune_seconds=tune_seconds, keep_going=keep_going)
        if not (out / "config.yaml").exists():  # the evaluation of a config is a run of its methods
            atomic_write(out / "config.yaml", self.config.to_yaml())
        return table(rows)

    def stress(self, shifts: str | Sequence[str] | None = None, n: int = 32, methods: Sequence[str] | None = None,
               folder: str | None = None, tv_iters: int = 0, tune_seconds: float = runs.TUNE_SECONDS,
               keep_going: bool = False) -> Any:
        """The stress study, as ``invmap stress RUN``: one factor at a time away from the training
        conditions, `n` test images per level; writes stress.csv / stress.json / figures (the verdicts:
        `verdicts`); returns the rows (shift, level, method, metric, mean, std) as a `table`.

            >>> study.stress(shifts="noise,geometry", n=8); study.verdicts   # doctest: +SKIP
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self._need_run("the stress study")  # it stresses the methods of a run
        kinds = parse_kinds(shifts if isinstance(shifts, str) or shifts is None else ",".join(shifts))
        settings = StressSettings(n_per_level=n, tv_iters=tv_iters, kinds=kinds, folder=folder, keep_going=keep_going)
        rows, _meta = stress_run(self.experiment, settings, methods=list(methods) if methods else None,
                                 say=self._say, tune_seconds=tune_seconds)
        return table(rows)

    def run(self, stress_n: int = 32, shifts: str | None = None, test_n: int | None = None,
            tune_seconds: float = runs.TUNE_SECONDS, progress: bool = True) -> Path:
        """The whole study of ``invmap run`` (`invmap.pipeline.run`) into a new run directory under
        `out`; this study then holds that run. Returns its report.html.

            >>> Study(name="first", data={"size": 64}).run(stress_n=8, shifts="noise")   # doctest: +SKIP
        """
        if self.run_dir is not None:
            raise ValueError(f"this study already has a run ({self.run_dir}); `invmap run` makes a new one: "
                             "start a new Study")
        options = RunOptions(out=self.out, test_n=test_n, tune_seconds=tune_seconds, progress=progress,
                             stress=StressSettings(n_per_level=stress_n, kinds=parse_kinds(shifts)))
        run_dir = run_pipeline(self.config, options)
        self.experiment = Experiment(self.config, run_dir, self.experiment.physics)
        return run_dir / "report.html"

    def report(self) -> Path:
        """(Re)write report.html of the run (`invmap report RUN`); returns its path.

            >>> study.report()          # runs/NAME/report.html   # doctest: +SKIP
        """
        return run_report.build_report(self._need_run("the report"), curves=True)

    # -------------------------------------------------------------------- what it wrote

    def metrics(self) -> Any:
        """The run's metrics.csv as a `table` (every method evaluated so far)."""
        d = self._need_run("metrics")
        return table(read_metrics(inside(d, "metrics.csv", "the metrics table"), within=d))

    def stress_table(self) -> Any:
        """The run's stress.csv as a `table`."""
        d = self._need_run("the stress table")
        return table(read_stress_csv(inside(d, "stress.csv", "the stress table"), within=d))

    @property
    def verdicts(self) -> list[str]:
        """The stress study's verdicts, as the run's stress.json holds them (none before a stress study).

            >>> for v in study.verdicts: print(v)    # doctest: +SKIP
        """
        if self.run_dir is None:
            return []
        _rows, meta = run_report.read_stress(self.run_dir)
        return [v["text"] for v in (meta or {}).get("verdicts", [])]

    def figures(self) -> dict[str, Figure]:
        """name → `Figure` of every PNG in the run's figures/ folder (the training curves drawn when
        the run has a training log and no figure of it yet)."""
        d = self._need_run("figures")
        figs = inside(d, "figures", "the figures folder")
        log = d / "train_log.csv"
        if log.is_file() and not (figs / "training_curves.png").exists():
            training_curves(log, figs / "training_curves.png")
        return {p.stem: Figure(p) for p in sorted(figs.glob("*.png"))} if figs.is_dir() else {}

    def figure(self, name: str) -> Figure:
        """One figure by name (``reconstructions``, ``stress_overview``, ``training_curves``, ``stress_noise`` …)."""
        figs = self.figures()
        if name not in figs:
            raise FileNotFoundError(f"no figure '{name}' in {self.run_dir}/figures; the run has: "
                                    f"{', '.join(figs) or 'none yet'}")
        return figs[name]

    def show(self, *names: str) -> list[Figure]:
        """Display the named figures (default: all) inline; returns them.

            >>> study.show("reconstructions", "training_curves")   # doctest: +SKIP
        """
        figs = [self.figure(n) for n in names] if names else list(self.figures().values())
        _display(figs)
        return figs

    def __repr__(self) -> str:
        where = self.run_dir if self.run_dir is not None else f"{self.out}/ (no run yet)"
        return f"Study({self.config.name!r}: {self.config.operator.name} + {self.config.noise.name} noise, " \
               f"model {self.config.model.name}; {where})"


@dataclass
class Comparison:
    """What `compare` wrote: the directory, the tidy rows of compare.csv, the verdicts."""

    out: Path
    rows: Any
    verdicts: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Figure]:
        return {p.stem: Figure(p) for p in sorted((self.out / "figures").glob("*.png"))}

    def show(self) -> list[Figure]:
        figs = list(self.figures().values())
        _display(figs)
        return figs


def compare(*studies: Study | str | Path, out: str | Path, margin: float = 0.5) -> Comparison:
    """Runs side by side, as ``invmap compare RUN_1 RUN_2 … --out DIR`` (the first is the
    reference): test metrics, stress heatmaps, the difference of the models, verdicts.

        >>> both = compare(cnn, rescnn, out="runs/cnn-vs-rescnn"); both.verdicts   # doctest: +SKIP
    """
    paths = [s._need_run("compare") if isinstance(s, Study) else Path(s) for s in studies]
    result = compare_runs(paths, out, margin=margin)
    _, read = read_csv(Path(out) / "compare.csv", "compare.csv")
    rows = [{**r, "mean": float(r["mean"]), "std": float(r["std"]) if r["std"] else math.nan} for r in read]
    for v in result["verdicts"]:
        print(f"• {v}")
    return Comparison(Path(out), table(rows), list(result["verdicts"]))
