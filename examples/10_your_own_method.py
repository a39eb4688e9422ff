"""Your own method in invmap's evaluation: a reconstructor written outside the package, scored
beside FBP and tuned TV on the test set and under a stress shift, with no change to invmap.

Every reconstructor is called the same way, x̂ = method(y, physics). A method you write —
here projected Landweber (examples/_landweber.py),

    x_{k+1} = max(0, x_k + τ Kᵀ(y − K x_k)),   τ = 1/‖K‖²,

a classical iteration whose step count is its regularisation — runs in ``invmap evaluate``,
``invmap stress``, ``invmap compare`` and the report when its name is ``module:attr``
(importable from the working directory or an installed package; a class is built with no
arguments), or when a package declares it under the entry-point group ``invmap.methods``:

    invmap evaluate CONFIG --methods fbp,tv,_landweber:Landweber
    invmap stress RUN --methods fbp,tv,_landweber:Landweber --shifts noise

Sparse-view CT (16 views) of ellipses, 1% noise: Landweber stopped at 30 steps sits between
FBP and TV; under stronger noise its early stopping keeps it stable.

    python examples/10_your_own_method.py OUTDIR [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from invmap.cli import main as invmap  # noqa: E402
from invmap.evaluation.evaluate import read_metrics  # noqa: E402
from invmap.evaluation.stress import read_stress_csv  # noqa: E402

METHOD = "_landweber:Landweber"


def main(out_dir: str | Path, quick: bool = False) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:  # _landweber must be importable, as your module would be
        sys.path.insert(0, here)
    size, n = (32, 4) if quick else (64, 16)
    cfg = out / "task.yaml"
    cfg.write_text(f"name: landweber-demo\ndata: {{size: {size}, val: 8, test: {n}}}\n"
                   f"operator: {{name: tomography, angles: 16}}\nnoise: {{name: gaussian, relative: 0.01}}\n"
                   f"evaluation: {{methods: [fbp, tv, '{METHOD}']}}\n")
    run = out / "eval"
    if (run / "stress.json").exists():  # a rerun starts afresh (invmap never overwrites a study's files silently)
        for f in ("stress.json", "stress.csv"):
            (run / f).unlink()
    assert invmap(["evaluate", str(cfg), "--out", str(run), "--tune-seconds", "5" if quick else "20",
                   "--no-figure"]) == 0
    (run / "config.yaml").write_text(cfg.read_text())  # the evaluation directory as a run of this task
    assert invmap(["stress", str(run), "--shifts", "noise", "--n", str(n), "--no-report"]) == 0
    psnr = {r["method"]: r["psnr_mean"] for r in read_metrics(run / "metrics.csv")}
    noise = {(r["level"], r["method"]): r["mean"] for r in read_stress_csv(run / "stress.csv")
             if r["metric"] == "psnr" and r["shift"] == "noise"}
    levels = list(dict.fromkeys(lv for lv, _ in noise))

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.bar(list(psnr), list(psnr.values()), color=["0.6", "0.35", "tab:orange"][:len(psnr)])
    a.set_ylabel("test PSNR (dB)")
    a.set_title(f"{size}² CT, 16 views, 1% noise")
    for m in psnr:
        b.plot(levels, [noise[(lv, m)] for lv in levels], marker="o", label=m)
    b.set_xlabel("noise level (× training)")
    b.set_ylabel("PSNR (dB)")
    b.legend()
    fig.tight_layout()
    fig.savefig(out / "your_method_beside_the_baselines.png", dpi=110)
    plt.close(fig)
    print("mean test PSNR: " + ", ".join(f"{m} {v:.2f} dB" for m, v in psnr.items()))
    return {"psnr": psnr, "noise": {f"{lv} {m}": v for (lv, m), v in noise.items()}, "method": METHOD}


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
