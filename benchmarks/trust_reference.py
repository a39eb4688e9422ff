"""Which trust reference serves the trust score, the per-image PSNR bound and the object-class shift best?

    .venv/bin/python benchmarks/trust_reference.py RUN_OR_ENTRY [--references tv pnp] [--n 8] [--threads 2]
        [--real ../shared/data/ct-slices] [--log FILE]
    .venv/bin/python benchmarks/trust_reference.py --summary FILE

RUN_OR_ENTRY is a trained default run (CT of ellipses, 60 views, 1 % noise) or a zoo entry of that
task (``pretrained:unet-ct``). Its model is calibrated at its training conditions once per reference R
with the code ``invmap reconstruct --model`` uses (`invmap.evaluation.trust.calibrate_stored`: the record
the run or entry keeps for that reference when it has one, else `calibrate`: the score on the first 32 of
2·32 validation pairs, the bound "PSNR ≥ b with probability 0.9" on the other 32). Then, per
reference:

- with ``--real DIR``, the real slices of DIR (every file, resized to the task's size, simulated like
  the test set: the object-class shift) and as many home test images: the AUROC of the suspicion 1 − T
  for "the model more than 1 dB below the best of FBP and TV" over both sets, over the slices alone,
  and the bound's coverage on each;
- every distinct condition of the default stress study (`invmap.evaluation.stress.build_shifts`, `n`
  images per level, simulated as the study does): the AUROC of 1 − T for the same event over the
  identifiable levels (and over every level), and the bound's coverage at the training conditions and
  at its lowest identifiable level, as stress.json's ``trust`` summarises them.

FBP and TV use the run's tuned parameters (baselines.json); PnP the CT task's tuned schedule
(BENCHMARKS.md, the learned-prior table) unless baselines.json has a tuned ``pnp``. Each condition's
per-image records go to ``--log`` (JSON lines) as soon as they are computed; ``--summary`` summarises
such a log, so an interrupted measurement still says what it measured.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from invmap import variational, zoo
from invmap.config import load_config
from invmap.evaluation.runs import load_baselines
from invmap.evaluation.stress import KINDS, build_shifts
from invmap.evaluation.task import Condition, condition_from_config, make_pairs
from invmap.evaluation.trust import calibrate_stored
from invmap.evaluation.experiment import Experiment
from invmap.metrics import psnr
from invmap.models import load_model
from invmap.trust import diagnose
from invmap.trust.conformal import agreement
from invmap.trust.roc import auroc

PNP = {"sigma_start": 0.05, "sigma_end": 0.04, "step": 300.0}  # the CT task's tuned values (BENCHMARKS.md)
LARGE_DB = 1.0


def references(run: Path, names: list[str]) -> dict:
    """{name: the method with the run's tuned parameters} (`load_baselines`: {name: params}); PnP's from
    BENCHMARKS.md when the run has none. A classical method the run never tuned is refused."""
    tuned = load_baselines(run)
    missing = [n for n in names if n not in tuned and n != "pnp"]
    if missing:
        raise SystemExit(f"{run}: no tuned parameters for {', '.join(missing)} in baselines.json")
    return {n: variational.build(n, **(tuned.get(n) or PNP)) for n in names}


def batched(method, y, phys, b: int = 16) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([method(y[i:i + b], phys) for i in range(0, y.shape[0], b)])


def score_set(model, fitted, y, x, phys, rec: dict, ref: str) -> dict:
    """Per image: trust against `ref`, covered by the bound, the > 1 dB failure event."""
    x_m, x_r = rec["model"], rec[ref]
    trust = diagnose(model, y, phys, x_hat=x_m, x_baseline=x_r, draws=0, calibration=fitted.score).trust
    p_m = psnr(x_m, x).double()
    best = torch.maximum(psnr(rec["fbp"], x), psnr(rec["tv"], x)).double()
    out = {"trust": trust.tolist(), "large": (p_m < best - LARGE_DB).tolist(),
           "psnr": {k: [round(float(v), 3) for v in psnr(r, x)] for k, r in rec.items()}}
    if fitted.psnr_bound is not None:
        b = fitted.psnr_bound(agreement(x_m, x_r, fitted.psnr_bound.data_range), trust)
        out["covered"] = (p_m >= b).double().tolist()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?")
    ap.add_argument("--references", nargs="+", default=["tv", "pnp"])
    ap.add_argument("--n", type=int, default=8, help="images per stress level")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--real", type=Path, help="a folder of real slices (the object-class shift)")
    ap.add_argument("--log", type=Path, default=Path("trust_reference.jsonl"))
    ap.add_argument("--summary", type=Path, help="only summarise this log")
    a = ap.parse_args()
    if a.summary is not None:
        print(json.dumps(summary(a.summary), indent=1))
        return
    torch.set_num_threads(a.threads)
    t0, c0 = time.process_time(), time.perf_counter()
    where = zoo.run_dir(a.run) if zoo.is_pretrained(a.run) else Path(a.run)
    cfg = load_config(where / "config.yaml")
    exp = Experiment(cfg, where)
    model, _ = load_model(where)
    model.eval()
    built = references(where, sorted(set(a.references) | {"tv", "fbp"}))
    mine = {r: built[r] for r in a.references}
    fitted = {r: calibrate_stored({"model": model}, exp, where, reference=m, say=print, store=False)[1]["model"]
              for r, m in mine.items()}  # what reconstruct --model uses: the run's (or entry's) stored record, else computed
    log = a.log.open("a")

    def record(kind: str, label: str, cond: Condition, identifiable: bool = True, home: bool = False,
               key: str | None = None) -> None:
        t = time.perf_counter()
        y, x, phys = make_pairs(cond)
        rec = {"model": batched(model, y, phys), "fbp": batched(built["fbp"], y, phys), "tv": batched(built["tv"], y, phys)}
        for n, m in mine.items():
            if n not in rec:
                rec[n] = batched(m, y, phys)
        row = {"part": kind, "label": label, "key": key or cond.key(), "identifiable": identifiable, "home": home,
               "psnr": {k: round(float(psnr(v, x).mean()), 3) for k, v in rec.items()},
               "refs": {r: score_set(model, fitted[r], y, x, phys, rec, r) for r in mine}}
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(f"{kind} {label}: " + " ".join(f"{k} {v:.2f}" for k, v in row["psnr"].items())
              + f" ({time.perf_counter() - t:.0f} s)", flush=True)

    log.write(json.dumps({"part": "setup", "model": str(a.run), "n": a.n, "references": a.references,
                          "calibration": {r: f.to_dict() for r, f in fitted.items()}}) + "\n")
    log.flush()
    if a.real is not None:
        files = len([p for p in a.real.iterdir() if p.is_file()])
        real = Condition.of(f"folder:{a.real.resolve()}", int(cfg.data.size), cfg.physics_spec(),
                            simulation=cfg.data.test_simulation,
                            source_params=Condition.dumps({"splits": [0, 0, files]}), seed=int(cfg.seed), n=files)
        record("real", "home", condition_from_config(cfg, n=files), home=True)
        record("real", "real slices", real)
    ref_cond = condition_from_config(cfg, n=a.n, simulation=cfg.data.nominal_simulation)
    done: set = set()
    for sh in build_shifts(ref_cond, KINDS):
        for lv in sh.levels:
            cond = ref_cond.with_changes(**lv.changes)
            ident, home = lv.label not in (sh.unidentifiable or {}), lv.label == str(sh.training_level)
            if cond.key() in done:  # as the study: one condition scored once; its level listed again
                log.write(json.dumps({"part": "stress-alias", "label": f"{sh.name} {lv.label}", "key": cond.key(),
                                      "identifiable": ident, "home": home}) + "\n")
                continue
            done.add(cond.key())
            try:
                record("stress", f"{sh.name} {lv.label}", cond, ident, home)
            except ValueError as e:  # a level that cannot be simulated is skipped, as in the study
                print(f"stress {sh.name} {lv.label}: skipped ({str(e)[:80]})", flush=True)
    log.close()
    print(json.dumps(summary(a.log), indent=1))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"CPU {(time.process_time() - t0) / 60:.1f} min (user+sys {(ru.ru_utime + ru.ru_stime) / 60:.1f}), "
          f"wall {(time.perf_counter() - c0) / 60:.1f} min, max RSS {ru.ru_maxrss / 1024:.0f} MiB")


def summary(path: Path) -> dict:
    """AUROC and coverage per reference from a log (the latest setup's records)."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    start = max(i for i, r in enumerate(rows) if r["part"] == "setup")
    setup, rows = rows[start], rows[start + 1:]
    by_key = {r["key"]: r for r in rows if "refs" in r}
    out: dict = {"model": setup["model"], "n": setup["n"]}
    for ref in setup["references"]:
        res: dict = {}
        real = [r for r in rows if r["part"] == "real"]
        if len(real) == 2:
            h, s = real[0]["refs"][ref], real[1]["refs"][ref]
            res["real"] = {"auroc_home_and_real": _a(h["trust"] + s["trust"], h["large"] + s["large"]),
                           "auroc_real": _a(s["trust"], s["large"]), "failures_real": int(sum(s["large"])),
                           "failures_home": int(sum(h["large"])), "images": len(s["trust"]),
                           "coverage_real": _mean(s.get("covered")), "coverage_home": _mean(h.get("covered")),
                           "trust_real": _mean(s["trust"]), "psnr_real": real[1]["psnr"]}
        stress = [r for r in rows if r["part"] in ("stress", "stress-alias") and r["key"] in by_key]
        s_id, e_id, s_all, e_all, cov = [], [], [], [], {}
        for r in stress:
            got = by_key[r["key"]]["refs"][ref]
            if r["identifiable"] and "covered" in got:
                cov[r["label"]] = _mean(got["covered"])
            if r["part"] == "stress":
                s_all, e_all = s_all + got["trust"], e_all + got["large"]
                if r["identifiable"]:
                    s_id, e_id = s_id + got["trust"], e_id + got["large"]
        home = [cov[r["label"]] for r in stress if r["home"] and r["label"] in cov]
        low = min(cov, key=cov.get) if cov else None
        res["stress"] = {"conditions": sum(r["part"] == "stress" for r in stress),
                         "auroc_identifiable": _a(s_id, e_id), "images_identifiable": len(s_id),
                         "failures_identifiable": int(sum(e_id)), "auroc_all": _a(s_all, e_all),
                         "coverage_home": home[0] if home else None, "coverage_lowest_identifiable": cov.get(low),
                         "lowest_at": low, "identifiable_levels": len(cov),
                         "levels_below_80": {k: v for k, v in cov.items() if v < 0.8}}
        out[ref] = res
    return out


def _a(trust: list, events: list) -> float | None:
    v = auroc([1 - t for t in trust], [bool(e) for e in events])
    return None if v != v else round(v, 4)


def _mean(v: list | None) -> float | None:
    return None if not v else round(sum(v) / len(v), 4)


if __name__ == "__main__":
    main()
