"""Backpropagation by hand vs. autograd for one Linear(1, 1) layer.

The layer f(x) = w x + b and the loss ℓ = (f(x) − t)² give, by the chain rule,

    ∂ℓ/∂f = 2 (f(x) − t),   ∂ℓ/∂w = ∂ℓ/∂f · ∂f/∂w = 2 (f(x) − t) x,   ∂ℓ/∂b = 2 (f(x) − t),

and for the mean over a batch, L = (1/N) Σ_i (w x_i + b − t_i)²,

    ∂L/∂w = (2/N) Σ_i (f(x_i) − t_i) x_i,   ∂L/∂b = (2/N) Σ_i (f(x_i) − t_i).

The script computes both by hand and with ``torch.autograd`` on a ``torch.nn.Linear(1, 1)``
(float64) and prints the difference (round-off, < 1e-12).  The figure shows the loss
surface L(w, b) with the negative gradient at the starting point and a few gradient-descent
steps taken with the hand-computed gradient.

    python examples/08_backprop_by_hand.py OUTDIR [--quick]
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def hand_gradient(w: float, b: float, x: np.ndarray, t: np.ndarray) -> tuple[float, float, float]:
    """L = mean (w x + b − t)² and (∂L/∂w, ∂L/∂b) by the chain rule."""
    f = w * x + b
    dl_df = 2.0 * (f - t) / x.size            # ∂L/∂f_i
    return float(np.mean((f - t) ** 2)), float(np.sum(dl_df * x)), float(np.sum(dl_df))


def autograd_gradient(layer: torch.nn.Linear, x: np.ndarray, t: np.ndarray) -> tuple[float, float, float]:
    """The same L and gradient from torch's autograd (backward through the layer)."""
    layer.zero_grad()
    xt = torch.as_tensor(x, dtype=torch.float64).reshape(-1, 1)
    tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1)
    loss = ((layer(xt) - tt) ** 2).mean()
    loss.backward()
    return loss.item(), layer.weight.grad.item(), layer.bias.grad.item()


def main(out_dir: str | Path, quick: bool = False, seed: int = 0) -> dict:
    """Chain-rule gradient of (f(x) − t)² for f = Linear(1, 1), against autograd."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    layer = torch.nn.Linear(1, 1).double()
    w, b = layer.weight.item(), layer.bias.item()

    # one sample: ℓ = (w x + b − t)²
    x1, t1 = np.array([1.7]), np.array([-0.4])
    l_h, gw_h, gb_h = hand_gradient(w, b, x1, t1)
    l_a, gw_a, gb_a = autograd_gradient(layer, x1, t1)
    diff_single = max(abs(gw_h - gw_a), abs(gb_h - gb_a), abs(l_h - l_a))

    # a batch: L = mean over N samples of t = 2x − 1 + noise
    rng = np.random.default_rng(seed)
    n = 32 if quick else 256
    x = rng.uniform(-2, 2, n)
    t = 2.0 * x - 1.0 + 0.2 * rng.standard_normal(n)
    L_h, GW_h, GB_h = hand_gradient(w, b, x, t)
    L_a, GW_a, GB_a = autograd_gradient(layer, x, t)
    diff_batch = max(abs(GW_h - GW_a), abs(GB_h - GB_a), abs(L_h - L_a))

    # a few gradient-descent steps with the hand gradient
    eta, path = 0.1, [(w, b)]
    for _ in range(15 if quick else 30):
        _, gw, gb = hand_gradient(*path[-1], x, t)
        path.append((path[-1][0] - eta * gw, path[-1][1] - eta * gb))
    path = np.array(path)
    loss_end = hand_gradient(*path[-1], x, t)[0]

    res = {
        "w": w, "b": b,
        "single": {"loss": l_h, "hand": [gw_h, gb_h], "autograd": [gw_a, gb_a]},
        "batch": {"loss": L_h, "hand": [GW_h, GB_h], "autograd": [GW_a, GB_a]},
        "max_abs_diff_single": diff_single,
        "max_abs_diff_batch": diff_batch,
        "gd_loss_start": L_h, "gd_loss_end": loss_end,
    }

    wg = np.linspace(-1.0, 3.5, 120)
    bg = np.linspace(-2.5, 1.5, 120)
    WW, BB = np.meshgrid(wg, bg)
    LL = np.mean((WW[..., None] * x + BB[..., None] - t) ** 2, axis=-1)
    fig, ax = plt.subplots(figsize=(6, 5))
    cs = ax.contour(WW, BB, LL, levels=np.geomspace(LL.min() + 1e-3, LL.max(), 15), cmap="viridis")
    ax.clabel(cs, fontsize=6, fmt="%.2f")
    ax.plot(path[:, 0], path[:, 1], "o-", ms=3, color="C3", label="gradient descent (hand gradient)")
    ax.annotate("", xy=(w - 0.3 * GW_h, b - 0.3 * GB_h), xytext=(w, b),
                arrowprops=dict(arrowstyle="->", lw=2, color="k"))
    ax.set_xlabel("w")
    ax.set_ylabel("b")
    ax.set_title(f"L(w, b); −∇L by hand = −({GW_h:.3f}, {GB_h:.3f})\n"
                 f"autograd − hand: {diff_batch:.1e}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "backprop_by_hand.png", dpi=100)
    plt.close(fig)

    print(f"layer: w = {w:.6f}, b = {b:.6f}")
    print(f"one sample (x={x1[0]}, t={t1[0]}): hand (∂w, ∂b) = ({gw_h:.12f}, {gb_h:.12f})")
    print(f"{'':>30}autograd (∂w, ∂b) = ({gw_a:.12f}, {gb_a:.12f}); max diff {diff_single:.1e}")
    print(f"batch of {n}: hand ({GW_h:.12f}, {GB_h:.12f}), autograd ({GW_a:.12f}, {GB_a:.12f}); "
          f"max diff {diff_batch:.1e}")
    print(f"{len(path) - 1} gradient-descent steps (η = {eta}): loss {L_h:.4f} → {loss_end:.4f}")
    return res


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
