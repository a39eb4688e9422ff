"""Learning without ground truth: training the same network from measurements y alone.

Inpainting, y = M ⊙ x + e with half the pixels missing (2% noise). The network
x̂ = Kᵀy + UNet(Kᵀy) is trained four ways — from pairs (y, x) (supervised), and from y alone
(x never read, `training.supervision`):

    mc      min ‖K x̂ − y‖²: measurement consistency. Any u with K u = 0 (an image on the missing
            pixels) costs nothing, so MC cannot teach the network what lies in the null space of K;
    ei      MC + ‖T_g x̂ − f(K T_g x̂)‖², T_g a rotation by 90°: images stay images when rotated,
            the mask does not rotate with them, so the rotated data show the missing pixels from
            elsewhere (equivariant imaging, Chen, Tachella & Davies 2021);
    split   input one half of the observed pixels, be consistent with all of y (after
            Noise2Inverse): the held-out half must be predicted. The network is trained on inputs
            with half the observed pixels and applied to all of them — a mismatch that costs.

beside tuned TV. The figure shows, per method, the reconstruction, its error e = x̂ − x and the
part of the error K cannot see, (I − K⁺K) e, with K⁺ by CGLS: what measurement consistency alone
leaves free.

    python examples/12_learning_without_x.py OUTDIR [--quick]
    invmap train --set training.supervision=ei --out runs/ei     # the same from the command line
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import invmap.variational as var  # noqa: E402
from invmap.config import load_config  # noqa: E402
from invmap.evaluation.task import condition_from_config, make_pairs  # noqa: E402
from invmap.metrics import psnr  # noqa: E402
from invmap.models import load_model  # noqa: E402
from invmap.models.reconstructor import cgls  # noqa: E402
from invmap.training import train  # noqa: E402

WAYS = ("supervised", "mc", "ei", "split")


def null_space_part(e: torch.Tensor, op, iters: int = 100) -> torch.Tensor:
    """(I − K⁺K) e: the component of e that K maps to 0 (K⁺K e by CGLS on K e)."""
    return e - cgls(op(e), op, iters)


def main(out_dir: str | Path, quick: bool = False) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size, n_train, epochs, n_test = (32, 96, 10, 8) if quick else (64, 512, 20, 32)
    task = ["operator.name=inpainting", "noise.relative=null", "noise.sigma=0.02", "model.input=adjoint",
            f"data.size={size}", f"data.train={n_train}", "data.val=8", f"data.test={n_test}", "data.simulation=crime",
            "data.test_simulation=crime", "model.base_channels=8", "model.depth=2", f"training.epochs={epochs}",
            "training.max_minutes=0", "training.batch_size=8", "training.amp=off", "training.lr=3e-3", "seed=0"]
    cfg = load_config(None, task)
    y, x, phys = make_pairs(condition_from_config(cfg))
    yv, xv, pv = make_pairs(condition_from_config(cfg, n=8, simulation="crime"), split="val")
    recs: dict[str, torch.Tensor] = {}
    with tempfile.TemporaryDirectory() as runs, torch.no_grad():
        for way in WAYS:
            sup = "x" if way == "supervised" else way
            with torch.enable_grad():
                train(load_config(None, task + [f"training.supervision={sup}"]), Path(runs) / way, progress=False)
            model, _ = load_model(Path(runs) / way)
            recs[way] = model.eval()(y, phys)
        tv, _ = var.tune("tv", (yv, xv), physics=pv)
        recs["tv (tuned)"] = tv(y, phys)
        recs["Kᵀy"] = phys.operator.adjoint(y)
    scores = {name: float(psnr(r, x).mean()) for name, r in recs.items()}
    null = {}
    parts = {}
    for name, r in recs.items():
        e = r - x
        parts[name] = null_space_part(e, phys.operator)
        null[name] = float((parts[name].norm() / e.norm()) ** 2)  # share of the error's energy K cannot see

    order = ["supervised", "mc", "ei", "split", "tv (tuned)", "Kᵀy"]
    fig, axes = plt.subplots(3, len(order), figsize=(2.2 * len(order), 7.0))
    lim = max(float((recs[n] - x)[0].abs().max()) for n in order)
    for j, name in enumerate(order):
        e = (recs[name] - x)[0, 0]
        for i, (img, kw) in enumerate(((recs[name][0, 0], dict(cmap="gray", vmin=0, vmax=1)),
                                       (e, dict(cmap="seismic", vmin=-lim, vmax=lim)),
                                       (parts[name][0, 0], dict(cmap="seismic", vmin=-lim, vmax=lim)))):
            axes[i, j].imshow(img.numpy(), **kw)
            axes[i, j].axis("off")
        axes[0, j].set_title(f"{name}\n{scores[name]:.2f} dB", fontsize=9)
        axes[2, j].set_title(f"null-space share {null[name]:.0%}", fontsize=8)
    axes[1, 0].text(-4, size / 2, "error x̂ − x", rotation=90, va="center", ha="right", fontsize=9)
    axes[2, 0].text(-4, size / 2, "(I − K⁺K)(x̂ − x)", rotation=90, va="center", ha="right", fontsize=9)
    fig.suptitle(f"inpainting {size}², half the pixels missing: trained with x (supervised) and from y alone "
                 "(mc, ei, split)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "learning_without_x.png", dpi=100)
    plt.close(fig)
    print("mean test PSNR: " + ", ".join(f"{m} {scores[m]:.2f} dB" for m in order))
    print("share of the error in the null space of K: " + ", ".join(f"{m} {null[m]:.0%}" for m in order))
    return {"psnr": scores, "null_share": null, "size": size}


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
