"""The linear model f_Θ(x) = Θ₁ + Θ₂·x and its least-squares fit.

Noisy data t_i = f_Θ*(x_i) + e_i, e_i ~ N(0, σ²), are generated (seeded) from one
parameter choice Θ*.  Two candidate parameter vectors are drawn against the data — the
true Θ* and a wrong one — and the least-squares estimate

    Θ̂ = argmin_Θ (1/N) Σ_i (Θ₁ + Θ₂ x_i − t_i)²  =  (AᵀA)⁻¹ Aᵀ t,   A = [1, x]

recovers Θ* up to the noise.  Its covariance is σ² (AᵀA)⁻¹, so the script also prints the
standard error of each parameter: |Θ̂ − Θ*| is a few standard errors at most.

    python examples/01_linear_model.py OUTDIR [--quick]
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

THETA_TRUE = (1.0, 0.5)
THETA_WRONG = (-0.5, 1.2)
SIGMA = 0.3


def f(theta: tuple[float, float] | np.ndarray, x: np.ndarray) -> np.ndarray:
    """f_Θ(x) = Θ₁ + Θ₂ x."""
    return theta[0] + theta[1] * x


def main(out_dir: str | Path, quick: bool = False, seed: int = 0) -> dict:
    """Generate data from Θ*, plot two parameter choices and the least-squares fit."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = 30 if quick else 60
    x = np.sort(rng.uniform(0.0, 5.0, n))
    t = f(THETA_TRUE, x) + SIGMA * rng.standard_normal(n)

    A = np.stack([np.ones_like(x), x], axis=1)          # design matrix [1, x]
    theta_hat, *_ = np.linalg.lstsq(A, t, rcond=None)   # solves the normal equations stably
    stderr = SIGMA * np.sqrt(np.diag(np.linalg.inv(A.T @ A)))

    def mse(theta) -> float:
        return float(np.mean((f(theta, x) - t) ** 2))

    res = {
        "n": n,
        "theta_true": list(THETA_TRUE),
        "theta_hat": theta_hat.tolist(),
        "theta_stderr": stderr.tolist(),
        "mse_true": mse(THETA_TRUE),
        "mse_wrong": mse(THETA_WRONG),
        "mse_fit": mse(theta_hat),
        "noise_variance": SIGMA ** 2,
    }

    xs = np.linspace(0.0, 5.0, 200)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(x, t, s=14, color="k", label=f"data (σ = {SIGMA})")
    ax.plot(xs, f(THETA_TRUE, xs), lw=2, label=f"Θ* = {THETA_TRUE}: MSE {res['mse_true']:.3f}")
    ax.plot(xs, f(THETA_WRONG, xs), lw=2, label=f"Θ = {THETA_WRONG}: MSE {res['mse_wrong']:.3f}")
    ax.plot(xs, f(theta_hat, xs), "--", lw=2,
            label=f"least squares Θ̂ = ({theta_hat[0]:.2f}, {theta_hat[1]:.2f}): MSE {res['mse_fit']:.3f}")
    ax.set_xlabel("x")
    ax.set_ylabel("t")
    ax.set_title("Linear model $f_\\Theta(x) = \\Theta_1 + \\Theta_2 x$")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "linear_model.png", dpi=100)
    plt.close(fig)

    print(f"true Θ* = {THETA_TRUE}, least squares Θ̂ = ({theta_hat[0]:.4f}, {theta_hat[1]:.4f}) "
          f"± ({stderr[0]:.4f}, {stderr[1]:.4f})")
    print(f"MSE: Θ* {res['mse_true']:.4f}, wrong Θ {res['mse_wrong']:.4f}, Θ̂ {res['mse_fit']:.4f} "
          f"(noise variance σ² = {SIGMA ** 2:.4f})")
    return res


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
