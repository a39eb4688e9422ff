"""Activation gallery: the nonlinearities σ the package's models accept as ``activation``.

Each name in ``invmap.models.activations.names()`` is built with
``invmap.models.activations.make(name)`` — exactly the module every architecture puts
between its layers — evaluated on t ∈ [−3, 3] and checked against its formula:

    relu(t) = max(t, 0)                 leaky_relu(t) = max(t, 0.01 t)
    sigmoid(t) = 1 / (1 + e^{−t})       tanh(t) = (e^t − e^{−t}) / (e^t + e^{−t})
    gelu(t) = t Φ(t) = ½ t (1 + erf(t/√2))                      (exact)
    gelu_tanh(t) = ½ t (1 + tanh(√(2/π) (t + 0.044715 t³)))     (tanh approximation)
    silu(t) = t · sigmoid(t)

The derivatives σ'(t) come from autograd (sigmoid's never exceeds ¼, the root of vanishing
gradients in deep sigmoid nets; relu's is 0 or 1).  GELU's tanh approximation is shown
beside the exact form with their largest difference.  Softmax, which maps a vector to a
probability vector, softmax(z)_k = e^{z_k} / Σ_j e^{z_j}, is applied to one vector and
shown to be invariant to adding a constant.

    python examples/05_activation_gallery.py OUTDIR [--quick]
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.special import erf  # noqa: E402

from invmap.models import activations  # noqa: E402

#: the formula of each activation, in numpy float64, to check the package's modules against
FORMULAS = {
    "relu": lambda t: np.maximum(t, 0.0),
    "leaky_relu": lambda t: np.maximum(t, 0.01 * t),
    "sigmoid": lambda t: 1.0 / (1.0 + np.exp(-t)),
    "tanh": lambda t: (np.exp(t) - np.exp(-t)) / (np.exp(t) + np.exp(-t)),
    "gelu": lambda t: 0.5 * t * (1.0 + erf(t / math.sqrt(2.0))),
    "silu": lambda t: t / (1.0 + np.exp(-t)),
}


def gelu_tanh(t: np.ndarray) -> np.ndarray:
    """GELU's tanh approximation ½ t (1 + tanh(√(2/π) (t + 0.044715 t³)))."""
    return 0.5 * t * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (t + 0.044715 * t ** 3)))


def softmax(z: np.ndarray) -> np.ndarray:
    """softmax(z)_k = e^{z_k} / Σ_j e^{z_j}, computed as e^{z_k − max z} / Σ_j e^{z_j − max z}."""
    e = np.exp(z - z.max())
    return e / e.sum()


def main(out_dir: str | Path, quick: bool = False, seed: int = 0) -> dict:
    """Evaluate every package activation on [−3, 3], check its formula, plot σ and σ'."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 241 if quick else 1201
    t = torch.linspace(-3.0, 3.0, n, dtype=torch.float64, requires_grad=True)
    tn = t.detach().numpy()

    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    formula_diff: dict[str, float] = {}
    for name in activations.names():
        act = activations.make(name)
        y = act(t)
        (dy,) = torch.autograd.grad(y.sum(), t)
        curves[name] = (y.detach().numpy(), dy.numpy())
        formula_diff[name] = float(np.abs(curves[name][0] - FORMULAS[name](tn)).max())

    g_tanh = torch.nn.GELU(approximate="tanh")(t)
    (dg_tanh,) = torch.autograd.grad(g_tanh.sum(), t)
    curves["gelu (tanh approx.)"] = (g_tanh.detach().numpy(), dg_tanh.numpy())
    formula_diff["gelu (tanh approx.)"] = float(np.abs(curves["gelu (tanh approx.)"][0] - gelu_tanh(tn)).max())
    gelu_gap = float(np.abs(curves["gelu"][0] - curves["gelu (tanh approx.)"][0]).max())

    rng = np.random.default_rng(seed)
    z = np.round(rng.normal(0, 1.5, 6), 2)
    p_torch = torch.softmax(torch.as_tensor(z), dim=0).numpy()
    p = softmax(z)
    shift_diff = float(np.abs(softmax(z + 100.0) - p).max())

    res = {
        "activations": activations.names(),
        "formula_max_abs_diff": formula_diff,
        "gelu_exact_vs_tanh_max_abs_diff": gelu_gap,
        "max_derivative": {k: float(v[1].max()) for k, v in curves.items()},
        "softmax_input": z.tolist(),
        "softmax": p.tolist(),
        "softmax_sum": float(p.sum()),
        "softmax_torch_max_abs_diff": float(np.abs(p - p_torch).max()),
        "softmax_shift_invariance_max_abs_diff": shift_diff,
    }

    names = list(curves)
    cols = 4
    rows = math.ceil((len(names) + 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.8 * rows))
    axes = axes.ravel()
    for ax, name in zip(axes, names):
        y, dy = curves[name]
        ax.plot(tn, y, lw=2, label="σ(t)")
        ax.plot(tn, dy, "--", lw=1.5, label="σ'(t)")
        if name == "gelu":
            ax.plot(tn, curves["gelu (tanh approx.)"][0], ":", color="k", lw=1, label="tanh approx.")
        ax.axhline(0, color="grey", lw=0.5)
        ax.axvline(0, color="grey", lw=0.5)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=7)
    ax = axes[len(names)]
    ax.bar(np.arange(z.size), p, color="C2")
    ax.set_xticks(np.arange(z.size), [f"{v:+.2f}" for v in z], fontsize=7)
    ax.set_title("softmax(z) (z below bars)", fontsize=10)
    for ax in axes[len(names) + 1:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "activation_gallery.png", dpi=100)
    plt.close(fig)

    print("package activations (invmap.models.activations.make(name)) vs their formula, max |Δ|:")
    for name in names:
        print(f"  {name:>20}: {formula_diff[name]:.1e}   max σ' = {res['max_derivative'][name]:.4f}")
    print(f"GELU exact vs tanh approximation on [−3, 3]: max |Δ| = {gelu_gap:.2e}")
    print(f"softmax({z.tolist()}) = {np.round(p, 4).tolist()}, sum = {p.sum():.12f}; "
          f"softmax(z + 100) − softmax(z): {shift_diff:.1e}")
    return res


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
