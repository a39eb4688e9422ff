"""Stacking affine maps gives an affine map — until a nonlinearity is inserted.

Three affine layers A_k(z) = W_k z + b_k (float64, seeded, sizes 4 → 8 → 6 → 3) compose to

    A₃(A₂(A₁(x))) = W x + b,   W = W₃ W₂ W₁,   b = W₃ W₂ b₁ + W₃ b₂ + b₃,

so a "deep" linear network has exactly the expressive power of one layer.  The script
checks the identity numerically on a batch of inputs (max difference at float64 round-off,
< 1e-12) and then inserts a ReLU σ(z) = max(z, 0) after the first layer: A₃(A₂(σ(A₁ x)))
no longer equals W x + b — and no other affine map fits it either (the best least-squares
affine fit leaves a clear residual).  The figure follows one output along a line in the
input space: a straight line for the linear stack, a piecewise-linear curve with kinks
for the ReLU stack.

    python examples/04_stacking_affine_maps.py OUTDIR [--quick]
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SIZES = (4, 8, 6, 3)


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0.0)


def main(out_dir: str | Path, quick: bool = False, seed: int = 0) -> dict:
    """Compose three affine layers, collapse them to one, then break it with a ReLU."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Ws = [rng.standard_normal((m, n)) / np.sqrt(n) for n, m in zip(SIZES[:-1], SIZES[1:])]
    bs = [rng.standard_normal(m) for m in SIZES[1:]]
    (W1, W2, W3), (b1, b2, b3) = Ws, bs

    W = W3 @ W2 @ W1
    b = W3 @ W2 @ b1 + W3 @ b2 + b3

    def stack(x: np.ndarray, act=lambda z: z) -> np.ndarray:
        """Rows of x through A₁, act, A₂, A₃ (x: [N, 4])."""
        z = act(x @ W1.T + b1)
        z = z @ W2.T + b2
        return z @ W3.T + b3

    n = 200 if quick else 2000
    X = rng.standard_normal((n, SIZES[0]))
    single = X @ W.T + b
    diff_linear = float(np.abs(stack(X) - single).max())
    y_relu = stack(X, relu)
    diff_relu = float(np.abs(y_relu - single).max())

    # best affine fit of the ReLU network (least squares over the same inputs)
    A = np.hstack([X, np.ones((n, 1))])
    theta, *_ = np.linalg.lstsq(A, y_relu, rcond=None)
    rel_resid = float(np.linalg.norm(A @ theta - y_relu) / np.linalg.norm(y_relu - y_relu.mean(0)))

    res = {
        "n_inputs": n,
        "max_abs_diff_linear": diff_linear,
        "max_abs_diff_relu": diff_relu,
        "relu_best_affine_relative_residual": rel_resid,
        "n_params_stack": int(sum(w.size + v.size for w, v in zip(Ws, bs))),
        "n_params_single": int(W.size + b.size),
    }

    tt = np.linspace(-4, 4, 401)
    x0, v = rng.standard_normal(SIZES[0]), rng.standard_normal(SIZES[0])
    line = x0 + tt[:, None] * v
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(tt, stack(line)[:, 0], lw=3, label="A₃∘A₂∘A₁")
    axes[0].plot(tt, (line @ W.T + b)[:, 0], "--", lw=2, label="W x + b (one layer)")
    axes[0].set_title(f"linear stack = one affine map (max diff {diff_linear:.1e})")
    axes[1].plot(tt, stack(line, relu)[:, 0], lw=3, label="A₃∘A₂∘ReLU∘A₁")
    axes[1].plot(tt, (line @ W.T + b)[:, 0], "--", lw=2, label="W x + b")
    axes[1].set_title(f"with a ReLU: max diff {diff_relu:.2f}")
    for ax in axes:
        ax.set_xlabel("t  (input x = x₀ + t v)")
        ax.set_ylabel("first output")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "stacking_affine_maps.png", dpi=100)
    plt.close(fig)

    print(f"layers {SIZES}: {res['n_params_stack']} parameters collapse to one affine map "
          f"with {res['n_params_single']}")
    print(f"max |A₃A₂A₁x − (Wx + b)| over {n} inputs = {diff_linear:.2e}")
    print(f"with a ReLU: max |network − (Wx + b)| = {diff_relu:.3f}; "
          f"best affine fit leaves relative residual {rel_resid:.3f}")
    return res


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
