"""Build a zoo entry (`invmap.zoo`) from a trained and evaluated run directory.

`make_entry(RUN, NAME, …)` writes ``ROOT/NAME/``: the run's model (floating tensors stored in
float16 when that moves the PSNR on the card's check set — `CHECK_N` test images of its own
task — by less than 0.05 dB, else float32), its config.yaml, baselines.json and metrics.csv,
and card.json. The card records what the run itself recorded (steps, seconds, precision,
seeds, test metrics), the checkout's commit and the CPU; only the summary, task line and
command are given by hand. A run trained with ``training.snapshots`` gets its test-PSNR
learning curve first (`learning_curve`, ``scripts/learning_curve.py RUN``); the card carries it.
"""

from __future__ import annotations

import json
import platform
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import safetensors.torch
import torch

from ..atomic import atomic_dir, atomic_write, atomic_write_csv
from ..config import load_config
from .experiment import Experiment
from ..files import read_csv, read_json
from ..models import load_model
from ..models.io import HEADER_KEY, MODEL_JSON, MODEL_WEIGHTS, weights_digest
from ..training.log import read_log
from ..zoo import CARD, FILES, OPTIONAL, sha256
from .evaluate import evaluate_methods, read_metrics
from .resolve import BASELINE, MODEL
from .runs import build_methods, load_baselines
from .task import condition_from_config, make_pairs
from .trust import calibrate_model
from .zoo_task import CHECK_N, check_psnr


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_weights(run: Path, out: Path, dtype: torch.dtype) -> None:
    """RUN's model with its floating tensors stored as `dtype` (model.json updated to match)."""
    doc = read_json(run / MODEL_JSON, "model file", within=run)
    state = safetensors.torch.load_file(str(run / MODEL_WEIGHTS))
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    doc.update(weights_sha256=weights_digest(state), commit=secrets.token_hex(8), storage=str(dtype).split(".")[-1])
    text = json.dumps(doc, indent=2, allow_nan=False)
    (out / MODEL_WEIGHTS).write_bytes(safetensors.torch.save(state, metadata={HEADER_KEY: text}))
    (out / MODEL_JSON).write_text(text + "\n")


def metrics(run: Path) -> dict:
    """The test metrics of `run`'s metrics.csv (`read_metrics`) as the card records them."""
    rows = read_metrics(run / "metrics.csv")
    pick = lambda col: {r["method"]: round(r[col], 4) for r in rows if r.get(col) is not None}  # noqa: E731
    return {"n": rows[0]["n"], "data_range": str(rows[0]["data_range"]), "psnr": pick("psnr_mean"),
            "psnr_std": pick("psnr_std"), "ssim": pick("ssim_mean")}


def kind_of(doc: dict) -> str:
    """``lpd``, or ``unet on fbp`` for a post-processing network (its architecture and input)."""
    kind = (doc.get("kind") or {}).get("name") or "post-processing"
    if kind != "post-processing":
        return kind
    arch = (doc.get("architecture") or {}).get("name", "?")
    inp = doc.get("input") or {}
    return f"{arch} on {inp.get('input', '?') if isinstance(inp, dict) else inp}"


def curve(run: Path) -> list[list[float]]:
    """[minutes of training, validation PSNR] after each epoch (train_log.csv): the learning curve
    (none for a run trained from y alone: it never computed a validation PSNR)."""
    rows = read_log(run / "train_log.csv")
    if rows and "val_psnr" not in rows[0]:
        return []
    return [[round(float(r["seconds"]) / 60, 2), round(float(r["val_psnr"]), 3)] for r in rows]


#: the test-PSNR learning curve of a run trained with ``training.snapshots`` (`learning_curve`)
CURVE_CSV = "learning_curve.csv"
CURVE_COLUMNS = ("minutes", "seconds", "step", "n", "data_range", "psnr_mean", "psnr_std", "ssim_mean")


def learning_curve(run: str | Path, n: int | None = None) -> list[dict]:
    """Test PSNR against training minutes: each snapshot in ``run/snapshots/`` (the weights at
    ``training.snapshots`` minutes of the training clock) evaluated in float32 on the first `n`
    test pairs of the run's task (default: ``data.test``); written to ``run/learning_curve.csv``
    and returned, earliest first."""
    run = Path(run)
    config = load_config(run / "config.yaml")
    snaps = sorted((p for p in (run / "snapshots").glob("*min") if (p / MODEL_WEIGHTS).is_file()),
                   key=lambda p: float(p.name[:-3]))
    if not snaps:
        raise FileNotFoundError(f"{run} has no snapshots (train with training.snapshots: [1, 3, 10, …])")
    y, x, physics = make_pairs(condition_from_config(config, n=n))
    rows = []
    for p in snaps:
        model, doc = load_model(p)
        res, _ = evaluate_methods({MODEL: model}, y, x, physics, data_range=config.evaluation.data_range,
                                  strict=True)
        sc = res[MODEL].scores
        rows.append({"minutes": float(p.name[:-3]), "seconds": round(float(doc["seconds"]), 1), "step": doc["step"],
                     "n": int(x.shape[0]), "data_range": config.evaluation.data_range,
                     "psnr_mean": round(float(sc["psnr"].mean()), 4), "psnr_std": round(float(sc["psnr"].std()), 4),
                     "ssim_mean": round(float(sc["ssim"].mean()), 4)})
    atomic_write_csv(run / CURVE_CSV, CURVE_COLUMNS, rows)
    return rows


def read_curve(run: Path) -> list[dict] | None:
    """The rows of ``run/learning_curve.csv`` as the card records them, or None without one."""
    path = Path(run) / CURVE_CSV
    if not (path.exists() or path.is_symlink()):
        return None
    return [{"minutes": float(r["minutes"]), "step": int(r["step"]), "n": int(r["n"]),
             "psnr": float(r["psnr_mean"])} for r in read_csv(path, "learning curve", within=run)[1]]


def make_entry(run: str | Path, name: str, root: str | Path, *, config: str, command: str, summary: str,
               task: str, trained_at: str | None = None) -> dict:
    """Write the entry ``root/name/`` from `run` (see the module docstring); returns its card.
    `trained_at`: the commit the training ran at (default: this checkout's)."""
    run, dest = Path(run), Path(root) / name
    if dest.exists():
        raise FileExistsError(f"{dest} exists; remove it first")
    need = [f for f in (*FILES, "checkpoint.json", "train_log.csv") if not (run / f).is_file()]
    if need:
        raise FileNotFoundError(f"{run} lacks {', '.join(need)} (train it, then `invmap evaluate {run}`)")
    ckpt = read_json(run / "checkpoint.json", "checkpoint", within=run)
    model_doc = read_json(run / MODEL_JSON, "model file", within=run)
    cfg = load_config(run / "config.yaml")
    psnr32 = check_psnr(run)
    with atomic_dir(dest) as t:  # a hidden temporary directory: a killed build leaves no entry behind
        for f in ("config.yaml", "baselines.json", "metrics.csv"):
            shutil.copyfile(run / f, t / f)
        write_weights(run, t, torch.float16)
        psnr16 = check_psnr(t)
        storage = torch.float16 if abs(psnr16 - psnr32) < 0.05 else torch.float32
        if storage is torch.float32:
            write_weights(run, t, torch.float32)
        check = psnr16 if storage is torch.float16 else psnr32
        card = {
            "name": name, "summary": summary, "task": {"summary": task},
            "kind": kind_of(model_doc),
            "parameters": model_doc.get("parameter_count"),
            "size_bytes": sum((t / f).stat().st_size for f in FILES), "storage": str(storage).split(".")[-1],
            "training": {"config": config, "command": command, "commit": trained_at or commit(),
                         "entry_made_at": commit(), "cpu": cpu_model(),
                         "threads": cfg.training.threads, "precision": (ckpt.get("info") or {}).get("precision"),
                         "minutes": round(ckpt["seconds"] / 60, 1), "steps": ckpt["step"], "epochs": ckpt["epoch"],
                         "stopped": ckpt.get("stopped"), "best_epoch": model_doc.get("best_epoch"),
                         "val_psnr": model_doc.get("val_psnr"), "seed": int(cfg.seed),
                         "curve": curve(run),
                         **({"test_curve": read_curve(run)} if read_curve(run) else {})},
            "test": metrics(run),
            "check": {"n": CHECK_N, "psnr": round(check, 4), "psnr_float32_weights": round(psnr32, 4),
                      "precision": "float32", "tolerance_db": 0.1},
            "files": {f: sha256(t / f) for f in FILES},
        }
        (t / CARD).write_text(json.dumps(card, indent=2) + "\n")
        write_calibration(t)
    return json.loads((dest / CARD).read_text())


def write_calibration(entry: str | Path, say: Callable[[str], None] | None = print,
                      safe: tuple[bool, ...] = (False, True)) -> dict:
    """Calibrate the entry's model at its training conditions (`invmap.evaluation.trust.calibrate_model`,
    as ``invmap reconstruct --model`` does: without and with safe, or the modes `safe` lists) and
    ship the records in
    ``entry/trust_calibration.json``, its SHA-256 in the card; returns the card. The
    calibration reads the entry's validation data once, here, so that no user needs it."""
    entry = Path(entry)
    config = load_config(entry / "config.yaml")
    model, _ = load_model(entry)
    model.eval()
    baseline = build_methods([BASELINE], entry)[BASELINE] if BASELINE in load_baselines(entry) else None
    exp = Experiment(config, entry)
    for with_safe in safe:
        calibrate_model(model, exp, entry, baseline, safe=with_safe, say=say, store=True)
    card = json.loads((entry / CARD).read_text())
    card["files"].update({f: sha256(entry / f) for f in OPTIONAL if (entry / f).is_file()})
    atomic_write(entry / CARD, json.dumps(card, indent=2) + "\n")
    return card


__all__ = ["make_entry", "write_calibration", "write_weights", "learning_curve", "read_curve", "CURVE_CSV"]
