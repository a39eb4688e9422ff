"""The learned prior: the denoiser's PSNR, and PnP / posterior sampling against tuned TV per task.

    .venv/bin/python benchmarks/prior.py [--denoiser pretrained:denoiser] [--n 32] [--val 8]
        [--part denoise,tasks,timing,samples,arcs] [--tasks ct,blur,mri,sr] [--threads 2] [--out prior.json]

1. ``denoise``: D(x + σn, σ) on held-out images (the test splits of the ellipse phantoms, of the
   bundled natural images and, where ../shared is, of the real CT slices; 128², n each) at
   σ = 0.02 / 0.05 / 0.1, beside scikit-image's ``denoise_tv_chambolle`` (its weight chosen per σ
   on the validation split from a grid) and ``denoise_wavelet`` (BayesShrink with the true σ).
2. ``tasks``: y = K x + e of the default data (ellipses, 128², test simulated on the 2× grid): CT
   (the default task), Gaussian deblurring (σ_blur 1.5, noise σ 0.01), MRI 4× (the default 1%
   relative noise), 2× super-resolution (box, noise σ 0.01): the start x₀ (FBP or Kᵀy), TV tuned
   on `--val` validation pairs (`invmap.variational.tune`), ``pnp`` and ``diffpir`` tuned the same
   way (their default grids), each scored on `--n` test images; DiffPIR's std map against the
   true error (Spearman, coverage of ±2·std).
3. ``timing``: one DiffPIR / DPS posterior sample (30 steps) at 128² on the CT task, seconds.
4. ``samples`` (not in the default parts): DiffPIR's mean and std map against the number of chains.
5. ``arcs`` (not in the default parts): PnP's iterations on a 90° and a 180° arc, beside TV.

Nothing else of invmap may run beside it when the timing part matters (2 cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

TASKS = {
    "ct": [],
    "blur": ["operator.name=blur", "noise.relative=null", "noise.sigma=0.01"],
    "mri": ["operator.name=mri", "operator.acceleration=4"],
    "sr": ["operator.name=downsample", "operator.factor=2", "noise.relative=null", "noise.sigma=0.01"],
}
SIGMAS = (0.02, 0.05, 0.1)


def _images(source: str, split: str, n: int, size: int = 128) -> torch.Tensor | None:
    from invmap.data import build_source

    try:
        s = build_source(source, size, count=n, split=split, **({"fit": "resize"} if source.startswith("folder") else {}))
    except (ValueError, FileNotFoundError):
        return None
    return torch.stack([s[i] for i in range(min(n, len(s)))]).float()


def denoise_part(den: str, n: int) -> dict:
    from skimage.restoration import denoise_tv_chambolle, denoise_wavelet

    from invmap.metrics import psnr
    from invmap.variational.prior import load_prior

    d = load_prior(den)
    out: dict = {}
    for label, source in (("ellipses", "ellipses"), ("natural", "samples"), ("ct-slices", "folder:../shared/data/ct-slices")):
        test, val = _images(source, "test", n), _images(source, "val", 8)
        if test is None or val is None:
            out[label] = "not available here"
            continue
        rows = {}
        for s in SIGMAS:
            g = torch.Generator().manual_seed(int(s * 1000))
            noisy, noisy_val = (t + s * torch.randn(t.shape, generator=g) for t in (test, val))
            with torch.no_grad():
                ours = d.denoise(noisy, s)
            weights = [s * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)]  # TV's weight chosen on the validation images

            def tv(imgs, w):
                return torch.stack([torch.from_numpy(denoise_tv_chambolle(im[0].numpy().astype(np.float64), weight=w)
                                                     ).float()[None] for im in imgs])

            w = max(weights, key=lambda w: float(psnr(tv(noisy_val, w), val).mean()))
            try:  # scikit-image's wavelet denoiser needs PyWavelets (pip install PyWavelets)
                wav = torch.stack([torch.from_numpy(denoise_wavelet(im[0].numpy().astype(np.float64), sigma=s,
                                                                    method="BayesShrink", mode="soft",
                                                                    rescale_sigma=True)).float()[None] for im in noisy])
            except ImportError:
                wav = None
            rows[str(s)] = {"noisy": float(psnr(noisy, test).mean()), "denoiser": float(psnr(ours, test).mean()),
                            "skimage_tv": float(psnr(tv(noisy, w), test).mean()), "skimage_tv_weight": w,
                            "skimage_wavelet": None if wav is None else float(psnr(wav, test).mean()), "images": int(test.shape[0])}
            print(label, s, json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[str(s)].items()}),
                  flush=True)
        out[label] = rows
    return out


def task_part(den: str, tasks: list[str], n: int, n_val: int, methods: tuple[str, ...] = ("tv", "pnp", "diffpir")) -> dict:
    import invmap.variational as var
    from invmap.config import load_config
    from invmap.evaluation.task import condition_from_config, make_pairs
    from invmap.metrics import psnr
    from invmap.models.iterative import Normalised
    from invmap.trust.spread import coverage, spearman

    out: dict = {}
    for name in tasks:
        cfg = load_config(None, TASKS[name])
        yv, xv, pv = make_pairs(condition_from_config(cfg, n=n_val, simulation=cfg.data.nominal_simulation), split="val")
        y, x, phys = make_pairs(condition_from_config(cfg, n=n), split="test")
        row: dict = {}
        with torch.no_grad():
            x0 = Normalised(phys, y, "start").start("auto", y.shape[0], y)
        row["start"] = float(psnr(x0, x).mean())
        for method in methods:
            t0 = time.perf_counter()
            sampler = bool(getattr(var.METHODS.get(method), "posterior", False))
            prior = bool(getattr(var.METHODS.get(method), "learned", False))  # a method of the learned prior
            fixed = {"denoiser": den, **({"samples": 1} if sampler else {})} if prior else {}
            m, table = var.tune(method, (yv, xv), physics=pv, fixed=fixed, refine=1 if prior else 2)
            if sampler:  # tuned on one chain per image; scored as the mean of four
                m = var.build(method, **{**m.params(), "samples": 4})
                m.tuning = dict(table=None, chosen=max(table, key=lambda r: r["psnr"])["params"],
                                psnr=max(r["psnr"] for r in table))
            t1 = time.perf_counter()
            rec: dict = {"chosen": {k: v for k, v in m.tuning["chosen"].items()}, "val_psnr": m.tuning["psnr"],
                         "tune_seconds": round(t1 - t0, 1), "evaluations": len(table)}
            if getattr(m, "posterior", False):
                parts = [m.sample(y[i:i + 8], phys) for i in range(0, y.shape[0], 8)]
                mean, std = torch.cat([p.mean for p in parts]), torch.cat([p.std for p in parts])
                err = (mean - x).abs()
                rec["std_spearman"] = float(np.nanmean(spearman(std, err).numpy()))
                rec["std_coverage_2sd"] = float(coverage(err, std).mean())
                xh = mean
            else:
                xh = torch.cat([m(y[i:i + 8], phys) for i in range(0, y.shape[0], 8)])
            rec["test_psnr"] = float(psnr(xh, x).mean())
            rec["test_seconds_per_image"] = round((time.perf_counter() - t1) / y.shape[0], 3)
            row[method] = rec
            print(name, method, json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rec.items()}),
                  flush=True)
        out[name] = row
    return out


def timing_part(den: str) -> dict:
    import invmap.variational as var
    from invmap.config import load_config
    from invmap.evaluation.task import condition_from_config, make_pairs

    cfg = load_config(None, [])
    y, x, phys = make_pairs(condition_from_config(cfg, n=1), split="test")
    out = {}
    for method in ("diffpir", "dps"):
        m = var.build(method, denoiser=den, samples=1)
        m.sample(y, phys)  # warm-up (loads the denoiser, builds K's matrices)
        t = time.perf_counter()
        for seed in range(3):
            m.seed = seed
            m.sample(y, phys)
        out[method] = round((time.perf_counter() - t) / 3, 2)
        print(method, "seconds per sample at 128²:", out[method], flush=True)
    return out


def samples_part(den: str, n: int = 8) -> dict:
    """DiffPIR's posterior mean and std against the number of chains: 16 chains on `n` CT test
    images (tuned values of the CT task), scored on the first 1, 2, 4, 8, 16."""
    import invmap.variational as var
    from invmap.config import load_config
    from invmap.evaluation.task import condition_from_config, make_pairs
    from invmap.metrics import psnr
    from invmap.trust.spread import coverage, spearman

    y, x, phys = make_pairs(condition_from_config(load_config(None, []), n=n), split="test")
    post = var.build("diffpir", denoiser=den, sigma_start=0.1, step=3000.0, samples=16).sample(y, phys)
    out = {}
    for k in (1, 2, 4, 8, 16):
        s = post.samples[:k]
        mean = s.mean(0)
        row = {"psnr": float(psnr(mean, x).mean())}
        if k > 1:
            std, err = s.std(0), (mean - x).abs()
            row.update(spearman=float(np.nanmean(spearman(std, err).numpy())), coverage=float(coverage(err, std).mean()))
        out[str(k)] = row
        print("chains", k, json.dumps({a: round(v, 3) for a, v in row.items()}), flush=True)
    return out


def arcs_part(den: str, n: int = 4) -> dict:
    """PnP (the CT task's tuned σ's and τ) against its number of iterations on a 90° and the full
    180° arc, beside TV with the CT task's tuned λ."""
    import invmap.variational as var
    from invmap.config import load_config
    from invmap.evaluation.task import condition_from_config, make_pairs
    from invmap.metrics import psnr

    out: dict = {}
    for arc in (90.0, 180.0):
        y, x, phys = make_pairs(condition_from_config(load_config(None, [f"operator.arc={arc}"]), n=n), split="test")
        row = {"tv": float(psnr(var.build("tv", lam=0.8611416436105938, iters=200)(y, phys), x).mean())}
        for it in (8, 24, 48, 96):
            m = var.build("pnp", denoiser=den, sigma_start=0.05, sigma_end=0.04, step=300.0, iters=it)
            row[f"pnp_{it}"] = float(psnr(m(y, phys), x).mean())
        out[str(arc)] = row
        print("arc", arc, json.dumps({a: round(v, 2) for a, v in row.items()}), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--denoiser", default="pretrained:denoiser")
    ap.add_argument("--n", type=int, default=32, help="test images per task / image set")
    ap.add_argument("--val", type=int, default=8, help="validation pairs the methods are tuned on")
    ap.add_argument("--part", default="denoise,tasks,timing")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--methods", default="tv,pnp,diffpir", help="of the tasks part: tv, pnp, diffpir, dps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the numbers as JSON")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from invmap.evaluation.zoo_build import cpu_model

    parts = a.part.split(",")
    res: dict = {"cpu": cpu_model(), "threads": a.threads, "precision": "float32",
                 "denoiser": a.denoiser}
    if "denoise" in parts:
        res["denoise"] = denoise_part(a.denoiser, a.n)
    if "tasks" in parts:
        res["tasks"] = task_part(a.denoiser, a.tasks.split(","), a.n, a.val, tuple(a.methods.split(",")))
    if "timing" in parts:
        res["timing"] = timing_part(a.denoiser)
    if "samples" in parts:
        res["samples"] = samples_part(a.denoiser)
    if "arcs" in parts:
        res["arcs"] = arcs_part(a.denoiser)
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
