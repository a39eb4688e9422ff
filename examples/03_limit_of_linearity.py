"""The limit of linearity: the best affine fit of sin(x) is still far from sin(x).

On N = 80 points x_i = np.linspace(−2π, 2π, 80) the best affine model

    f_Θ(x) = Θ₁ + Θ₂ x,   Θ̂ = argmin_Θ (1/N) Σ_i (Θ₁ + Θ₂ x_i − sin x_i)²

leaves a mean squared error of 0.4218 — almost the variance of sin on the grid (≈ 0.494):
no choice of the two parameters can bend the line.  Beside it, the same fit on genuinely
linear data t = 0.7 x − 0.3 + e (σ = 0.1) leaves only the noise, MSE ≈ σ² = 0.01.  The model
class, not the fitting, is what fails on sin; example 06 shows a one-hidden-layer MLP
getting below 1e-3 on the same 80 points.

    python examples/03_limit_of_linearity.py OUTDIR [--quick]
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

N_POINTS = 80
SIGMA = 0.1


def affine_fit(x: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares Θ̂ = (Θ₁, Θ₂) of t ≈ Θ₁ + Θ₂ x and its mean squared error."""
    A = np.stack([np.ones_like(x), x], axis=1)
    theta, *_ = np.linalg.lstsq(A, t, rcond=None)
    return theta, float(np.mean((A @ theta - t) ** 2))


def main(out_dir: str | Path, quick: bool = False, seed: int = 0) -> dict:
    """Affine least squares on sin(x) (MSE 0.4218) and on linear data (MSE ≈ σ²)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = np.linspace(-2 * np.pi, 2 * np.pi, N_POINTS)   # same grid in quick mode: it is already tiny
    t_sin = np.sin(x)
    th_sin, mse_sin = affine_fit(x, t_sin)

    rng = np.random.default_rng(seed)
    t_lin = 0.7 * x - 0.3 + SIGMA * rng.standard_normal(N_POINTS)
    th_lin, mse_lin = affine_fit(x, t_lin)

    res = {
        "mse_sin": mse_sin, "theta_sin": th_sin.tolist(), "variance_sin": float(np.var(t_sin)),
        "mse_linear": mse_lin, "theta_linear": th_lin.tolist(), "noise_variance": SIGMA ** 2,
    }

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, t, th, mse, title in ((axes[0], t_lin, th_lin, mse_lin, "linear data 0.7x − 0.3 + e"),
                                  (axes[1], t_sin, th_sin, mse_sin, "sin(x)")):
        ax.scatter(x, t, s=10, color="k", label="data")
        ax.plot(x, th[0] + th[1] * x, "r", lw=2, label=f"best affine fit, MSE = {mse:.4f}")
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Affine least squares on {N_POINTS} points in [−2π, 2π]")
    fig.tight_layout()
    fig.savefig(out / "limit_of_linearity.png", dpi=100)
    plt.close(fig)

    print(f"sin(x):      Θ̂ = ({th_sin[0]:.4f}, {th_sin[1]:.4f}), MSE = {mse_sin:.4f} "
          f"(variance of sin on the grid {res['variance_sin']:.4f})")
    print(f"linear data: Θ̂ = ({th_lin[0]:.4f}, {th_lin[1]:.4f}), MSE = {mse_lin:.4f} (σ² = {SIGMA ** 2:.4f})")
    return res


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
