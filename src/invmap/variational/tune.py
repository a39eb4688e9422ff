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
from typing import Any, Sequence

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

    def _psnr(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return psnr(x_hat, x, data_range=data_range)

    physics = as_physics(physics)
    y, x = val_pairs
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"tune: {y.shape[0]} measurements but {x.shape[0]} images in val_pairs")
    fixed = dict(fixed or {})
    proto = build(method_name, **fixed)
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
    t0 = time.perf_counter()

    it_key = proto.iters_param if proto.iters_param in grid else None
    lam_key = proto.tune_param if proto.tune_param in grid else None
    others = [k for k in grid if k not in (it_key, lam_key)]
    table: list[dict] = []
    solutions: dict[tuple, dict[float, torch.Tensor]] = {}

    def evaluate(params: dict) -> float:
        """Mean PSNR for `params`; with an iteration grid, one row per listed count."""
        lam = params.get(lam_key) if lam_key else None
        okey = tuple(params[k] for k in others)
        x0 = None
        if warm_start and lam_key and solutions.get(okey):
            near = min(solutions[okey], key=lambda v: abs(math.log(v) - math.log(lam)) if v > 0 and lam > 0 else abs(v - lam))
            x0 = solutions[okey][near]
        run_params = dict(fixed, **params)
        if it_key:
            counts = sorted(set(int(c) for c in grid[it_key]))
            run_params[it_key] = counts[-1]
            m = build(method_name, **run_params)
            scores: dict[int, float] = {}

            def cb(k: int, xk: torch.Tensor) -> None:
                if k in counts:
                    scores[k] = float(_psnr(xk, x).mean())

            if 0 in counts:
                scores[0] = float(_psnr(torch.zeros_like(x), x).mean())
            xe = m.run(y, physics, x0=x0, callback=cb)
            for c in counts:  # solver stopped early (e.g. discrepancy): later counts = final iterate
                scores.setdefault(c, float(_psnr(xe, x).mean()))
            for c in counts:
                table.append({"params": {**params, it_key: c}, "psnr": scores[c]})
            best = max(scores.values())
        else:
            if search_iters is not None and "iters" in proto.params():
                run_params["iters"] = int(search_iters)
            m = build(method_name, **run_params)
            xe = m.run(y, physics, x0=x0)
            best = float(_psnr(xe, x).mean())
            table.append({"params": dict(params), "psnr": best})
        if lam_key:
            solutions.setdefault(okey, {})[lam] = xe.detach()
        return best

    # coarse grid: for each setting of the other parameters, λ from large to small (continuation)
    lam_values = sorted(grid[lam_key], reverse=True) if lam_key else [None]

    def spent() -> bool:
        return time_budget is not None and bool(table) and time.perf_counter() - t0 > time_budget

    refining = bool(lam_key and refine > 0 and all(v > 0 for v in grid[lam_key]) and len(grid[lam_key]) > 1)
    n_grid = math.prod(len(grid[k]) for k in others) * len(lam_values)
    planned, done, budget_cut = n_grid + (2 * refine if refining else 0), 0, False
    for combo in itertools.product(*(grid[k] for k in others)):
        base = dict(zip(others, combo))
        for lam in lam_values:
            if spent():
                budget_cut = True
                break
            evaluate({**base, **({lam_key: lam} if lam_key else {})})
            done += 1
        if budget_cut:
            break

    # coarse-to-fine on log λ around the best
    if refining and not budget_cut:
        for _ in range(refine):
            if spent():
                budget_cut = True
                break
            best_row = max(table, key=lambda r: r["psnr"])
            base = {k: best_row["params"][k] for k in others}
            okey = tuple(base[k] for k in others)
            tried = sorted(solutions.get(okey, {}))
            b = best_row["params"][lam_key]
            i = tried.index(b)
            # geometric midpoints with the neighbours; one step outward when the best is at an edge
            cands = [math.sqrt(tried[i - 1] * b) if i > 0 else b * b / tried[1],
                     math.sqrt(tried[i + 1] * b) if i < len(tried) - 1 else b * b / tried[-2]]
            for lam in cands:
                if spent():
                    budget_cut = True
                    break
                evaluate({**base, lam_key: float(lam)})
                done += 1
            if budget_cut:
                break

    best_row = max(table, key=lambda r: r["psnr"])
    method = build(method_name, **{**fixed, **best_row["params"]})
    final = float(_psnr(method.run(y, physics), x).mean()) if final_eval else None
    method.tuning = {"metric": "psnr", "data_range": data_range, "chosen": dict(best_row["params"]), "search_psnr": best_row["psnr"],
                     "psnr": final, "n_val": int(y.shape[0]), "evaluations": done, "planned": planned,
                     "budget_cut": budget_cut, "time_budget": time_budget,
                     "seconds": round(time.perf_counter() - t0, 3), "table": table}
    return method, table
