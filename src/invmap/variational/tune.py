"""Choosing the regularisation parameter on a validation set.

`tune(method_name, val_pairs, grid, physics)` picks the settings that maximise the mean
PSNR(x̂, x) over validation pairs (y, x), with the data range convention ``data_range``
(a fixed L, default 1, or ``"max-min"`` of each ground truth; `invmap.metrics.DataRange`):

- a grid over the method's parameters (Cartesian product; default: the method's own
  `default_grid`, λ on a log scale relative to ‖K‖²);
- the iteration count (``iters`` for gd / cgls) is read off one run: PSNR is recorded at
  every listed iteration through the solver callback, so a grid of 8 counts costs 1 solve;
- λ (the method's ``tune_param``) is searched coarse-to-fine on a log scale: after the
  grid, ``refine`` rounds evaluate the geometric midpoints around the current best (or
  one grid step beyond it when the best lies at the edge of the grid);
- iterative solves are warm-started from the solution at the nearest λ already evaluated
  (continuation), and may use fewer iterations while searching (``search_iters``);
- the plan is fixed — every grid point, then ``refine`` rounds of two — so the same task
  gives the same choice on any machine, however busy; ``time_budget`` (seconds) only caps
  it: checked before every evaluation after the first, it ends the search early, and a cut
  search is recorded as such (``tuning["budget_cut"]``, ``"evaluations"`` of ``"planned"``)
  so that everything showing the method's numbers can say so.

The tuned method is then run once with its own settings (cold start) on the validation
set (``final_eval``); its PSNR, the chosen values and the whole table are recorded in
``method.tuning``.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any, Callable, Sequence

import torch

from ..metrics import DataRange, data_range_of, psnr
from ..physics import Physics
from ..physics import as_physics
from .methods import METHODS, Method, build


#: the most grid points a tuning may plan (a grid is a Cartesian product: it grows fast)
MAX_GRID = 1000


def tune(method_name: str, val_pairs: tuple[torch.Tensor, torch.Tensor],
         grid: dict[str, Sequence[Any]] | None = None, physics: Physics | None = None,
         fixed: dict[str, Any] | None = None, refine: int = 2, search_iters: int | None = None,
         warm_start: bool = True, time_budget: float | None = None,
         final_eval: bool = True, data_range: DataRange = 1.0) -> tuple[Method, list[dict]]:
    """Tune `method_name` on ``val_pairs = (y, x)``; returns ``(method, table)``.

    ``table`` rows are ``{"params": {...}, "psnr": mean PSNR}``, in evaluation order.
    ``fixed`` holds settings that are not tuned (e.g. ``{"nonneg": True}``). With
    ``final_eval`` the chosen method is re-run cold on the validation set and its PSNR
    recorded (``tuning["psnr"]``; None otherwise).
    """
    if physics is None:
        raise ValueError("tune: physics (operator + noise) is required")
    data_range_of(val_pairs[1], data_range)  # a bad convention fails before any solve
    physics = as_physics(physics)
    y, x = val_pairs
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"tune: {y.shape[0]} measurements but {x.shape[0]} images in val_pairs")
    fixed = dict(fixed or {})
    proto = build(method_name, **fixed)
    grid = _checked_grid(method_name, proto, physics, y, grid, fixed, time_budget)
    t0 = time.perf_counter()
    s = _Search(method_name, y, x, physics, fixed, grid, proto, search_iters, warm_start, data_range)

    def spent() -> bool:
        return time_budget is not None and bool(s.table) and time.perf_counter() - t0 > time_budget

    refining = bool(s.lam_key and refine > 0 and all(v > 0 for v in grid[s.lam_key]) and len(grid[s.lam_key]) > 1)
    lam_values = sorted(grid[s.lam_key], reverse=True) if s.lam_key else [None]
    planned = math.prod(len(grid[k]) for k in s.others) * len(lam_values) + (2 * refine if refining else 0)
    done, budget_cut = s.coarse(lam_values, spent)
    if refining and not budget_cut:
        more, budget_cut = s.refine(refine, spent)
        done += more

    best_row = max(s.table, key=lambda r: r["psnr"])
    method = build(method_name, **{**fixed, **best_row["params"]})
    final = float(s.psnr(method.run(y, physics), x).mean()) if final_eval else None
    method.tuning = {"metric": "psnr", "data_range": data_range, "chosen": dict(best_row["params"]), "search_psnr": best_row["psnr"],
                     "psnr": final, "n_val": int(y.shape[0]), "evaluations": done, "planned": planned,
                     "budget_cut": budget_cut, "time_budget": time_budget,
                     "seconds": round(time.perf_counter() - t0, 3), "table": s.table}
    return method, s.table


def _checked_grid(method_name: str, proto: Method, physics: Physics, y: torch.Tensor,
                  grid: dict[str, Sequence[Any]] | None, fixed: dict[str, Any],
                  time_budget: float | None) -> dict[str, list[Any]]:
    """The grid to search (the method's `default_grid` when None), each entry a non-empty list,
    its first point and `fixed` valid for the method, at most `MAX_GRID` points; one-line errors."""
    grid = dict(proto.default_grid(physics, y) if grid is None else grid)
    for k, v in grid.items():
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") or len(list(v)) == 0:
            raise ValueError(f"tune: grid['{k}'] must be a non-empty list of values")
        grid[k] = list(v)
    METHODS.validate(method_name, {**fixed, **{k: v[0] for k, v in grid.items()}})
    if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
        raise ValueError(f"tune: the time budget must be a positive number of seconds, got {time_budget}")
    combos = math.prod(len(v) for v in grid.values())
    if combos > MAX_GRID:
        raise ValueError(f"tune: the grid of {method_name} has {combos} points; at most {MAX_GRID} are allowed")
    return grid


class _Search:
    """The evaluations of one tuning: a ``table`` row per setting scored, and the solution at each λ
    tried for each setting of the other parameters (the warm starts of continuation)."""

    def __init__(self, method_name: str, y: torch.Tensor, x: torch.Tensor, physics: Physics,
                 fixed: dict[str, Any], grid: dict[str, list[Any]], proto: Method, search_iters: int | None,
                 warm_start: bool, data_range: DataRange):
        self.method_name, self.y, self.x, self.physics, self.fixed, self.grid = method_name, y, x, physics, fixed, grid
        self.proto, self.search_iters, self.warm_start, self.data_range = proto, search_iters, warm_start, data_range
        self.it_key = proto.iters_param if proto.iters_param in grid else None
        self.lam_key = proto.tune_param if proto.tune_param in grid else None
        self.others = [k for k in grid if k not in (self.it_key, self.lam_key)]
        self.table: list[dict] = []
        self.solutions: dict[tuple, dict[float, torch.Tensor]] = {}

    def psnr(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return psnr(x_hat, x, data_range=self.data_range)

    def evaluate(self, params: dict) -> float:
        """Mean PSNR for `params`; with an iteration grid, one row per listed count."""
        lam_key, it_key, x, y = self.lam_key, self.it_key, self.x, self.y
        lam = params.get(lam_key) if lam_key else None
        okey = tuple(params[k] for k in self.others)
        x0 = None
        if self.warm_start and lam_key and self.solutions.get(okey):
            near = min(self.solutions[okey], key=lambda v: abs(math.log(v) - math.log(lam)) if v > 0 and lam > 0 else abs(v - lam))
            x0 = self.solutions[okey][near]
        run_params = dict(self.fixed, **params)
        if it_key:
            counts = sorted(set(int(c) for c in self.grid[it_key]))
            run_params[it_key] = counts[-1]
            m = build(self.method_name, **run_params)
            scores: dict[int, float] = {}

            def cb(k: int, xk: torch.Tensor) -> None:
                if k in counts:
                    scores[k] = float(self.psnr(xk, x).mean())

            if 0 in counts:
                scores[0] = float(self.psnr(torch.zeros_like(x), x).mean())
            xe = m.run(y, self.physics, x0=x0, callback=cb)
            for c in counts:  # solver stopped early (e.g. discrepancy): later counts = final iterate
                scores.setdefault(c, float(self.psnr(xe, x).mean()))
            for c in counts:
                self.table.append({"params": {**params, it_key: c}, "psnr": scores[c]})
            best = max(scores.values())
        else:
            if self.search_iters is not None and "iters" in self.proto.params():
                run_params["iters"] = int(self.search_iters)
            m = build(self.method_name, **run_params)
            xe = m.run(y, self.physics, x0=x0)
            best = float(self.psnr(xe, x).mean())
            self.table.append({"params": dict(params), "psnr": best})
        if lam_key:
            self.solutions.setdefault(okey, {})[lam] = xe.detach()
        return best

    def coarse(self, lam_values: list[Any], spent: Callable[[], bool]) -> tuple[int, bool]:
        """The grid: for each setting of the other parameters, λ from large to small (continuation);
        returns (evaluations, whether the time budget cut it)."""
        done = 0
        for combo in itertools.product(*(self.grid[k] for k in self.others)):
            base = dict(zip(self.others, combo))
            for lam in lam_values:
                if spent():
                    return done, True
                self.evaluate({**base, **({self.lam_key: lam} if self.lam_key else {})})
                done += 1
        return done, False

    def refine(self, rounds: int, spent: Callable[[], bool]) -> tuple[int, bool]:
        """Coarse-to-fine on log λ around the best: each round the geometric midpoints with its
        neighbours, one step outward when the best is at an edge; returns (evaluations, cut)."""
        done, lam_key = 0, self.lam_key
        for _ in range(rounds):
            if spent():
                return done, True
            best_row = max(self.table, key=lambda r: r["psnr"])
            base = {k: best_row["params"][k] for k in self.others}
            tried = sorted(self.solutions.get(tuple(base[k] for k in self.others), {}))
            b = best_row["params"][lam_key]
            i = tried.index(b)
            cands = [math.sqrt(tried[i - 1] * b) if i > 0 else b * b / tried[1],
                     math.sqrt(tried[i + 1] * b) if i < len(tried) - 1 else b * b / tried[-2]]
            for lam in cands:
                if spent():
                    return done, True
                self.evaluate({**base, lam_key: float(lam)})
                done += 1
        return done, False
