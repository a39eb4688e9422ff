"""One learned prior for every operator: plug-and-play and posterior sampling on deblurring.

A denoiser D(v, σ) trained once on images (the zoo entry ``pretrained:denoiser``, shipped with
invmap) is a prior for any y = K x + e, because K stays outside it:

    pnp       x_k = D(argmin_x ½‖Kx − y‖² + (1/2τ_k)‖x − x_{k−1}‖², σ_k),  σ_1 > … > σ_N   (DPIR)
    diffpir   the same denoise / data-proximal steps with fresh noise between them: each chain
              is a sample of x | y; their mean is the answer, their spread a per-pixel std map

Here: Gaussian deblurring (σ_blur 1.5) of ellipse phantoms with 1% noise. TV's λ and PnP's τ
are tuned on validation pairs; the figure shows the truth, the data, TV, PnP, the posterior
mean of DiffPIR, its std map and its true error — where the std is high, the error tends to be.

    python examples/11_learned_prior.py OUTDIR [--quick]
    invmap reconstruct --method pnp --task task.yaml --input y.npy --output x.png   # the same from the CLI
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import invmap.variational as var  # noqa: E402
from invmap.config import load_config  # noqa: E402
from invmap.evaluation.task import condition_from_config, make_pairs  # noqa: E402
from invmap.metrics import psnr  # noqa: E402
from invmap.trust.spread import spearman  # noqa: E402

TASK = ["operator.name=blur", "noise.relative=null", "noise.sigma=0.01"]


def main(out_dir: str | Path, quick: bool = False) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size, n, n_val, chains = (48, 3, 3, 3) if quick else (96, 8, 6, 4)
    cfg = load_config(None, TASK + [f"data.size={size}", f"data.val={n_val}"])
    yv, xv, pv = make_pairs(condition_from_config(cfg, n=n_val, simulation=cfg.data.nominal_simulation), split="val")
    y, x, phys = make_pairs(condition_from_config(cfg, n=n), split="test")

    tv, _ = var.tune("tv", (yv, xv), physics=pv)
    pnp, _ = var.tune("pnp", (yv, xv), physics=pv, grid={"step": [10.0, 30.0, 100.0, 300.0]})
    diffpir = var.build("diffpir", sigma_start=0.1, step=pnp.step, samples=chains, seed=0)
    with torch.no_grad():
        start = phys.operator.adjoint(y)
        x_tv, x_pnp = tv(y, phys), pnp(y, phys)
        post = diffpir.sample(y, phys)
    scores = {name: float(psnr(img, x).mean()) for name, img in
              (("blurred (Kᵀy)", start), ("tv", x_tv), ("pnp", x_pnp), ("diffpir mean", post.mean))}
    err = (post.mean - x).abs()
    rank = float(np.nanmean(spearman(post.std, err).numpy()))

    cols = [("truth", x), ("blurred (Kᵀy)", start), ("tv", x_tv), ("pnp", x_pnp), ("diffpir mean", post.mean),
            ("posterior std", post.std), ("|mean − truth|", err)]
    fig, axes = plt.subplots(1, len(cols), figsize=(2.2 * len(cols), 2.6))
    for ax, (title, img) in zip(axes, cols):
        spread = title in ("posterior std", "|mean − truth|")
        ax.imshow(img[0, 0].numpy(), cmap="magma" if spread else "gray", vmin=0,
                  vmax=float(err[0].max()) if spread else 1)
        label = scores.get(title)
        ax.set_title(title + (f"\n{label:.2f} dB" if label is not None else ""), fontsize=9)
        ax.axis("off")
    fig.suptitle(f"deblurring {size}², one learned prior; Spearman(std, |error|) = {rank:.2f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "learned_prior_deblurring.png", dpi=110)
    plt.close(fig)
    print("mean test PSNR: " + ", ".join(f"{m} {v:.2f} dB" for m, v in scores.items())
          + f"; Spearman(std, |error|) {rank:.2f}")
    return {"psnr": scores, "spearman": rank, "std_min": float(post.std.min()), "pnp_step": pnp.step,
            "tv_lam": tv.params()["lam"]}


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
