"""Multivariate linear regression f(x) = W x + b, fitted by least squares and by gradient descent.

A synthetic, seeded "house" table has d = 5 features per house (living area in m², number
of rooms, age in years, distance to the centre in km, floor) and s = 2 targets (sale price
in k€, monthly rent in €).  The model

    f(x) = W x + b,   W ∈ R^{s×d},  b ∈ R^s     — s(d + 1) = 12 parameters

is fitted to the N houses by minimising the mean squared error

    L(W, b) = (1/N) Σ_i ‖W x_i + b − t_i‖²

(i) in closed form — least squares on the design matrix A = [X, 1], Θ = [W, b]ᵀ solving
AᵀA Θ = Aᵀ T — and (ii) by plain gradient descent Θ ← Θ − η ∇L with ∇L = (2/N) Aᵀ(AΘ − T)
and step η = 1/λ_max((2/N) AᵀA).  The features are standardised first (zero mean, unit
variance), which is what makes gradient descent converge quickly: its rate is set by the
condition number of AᵀA.  Both answers agree to many digits; the script reports the
largest parameter difference and the parameters back in the table's own units.

    python examples/02_multivariate_regression.py OUTDIR [--quick]
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

FEATURES = ["area [m²]", "rooms", "age [y]", "distance [km]", "floor"]
TARGETS = ["price [k€]", "rent [€/month]"]


def house_table(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded synthetic table: features X [n, 5], targets T [n, 2], and the true (W, b)."""
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 200, n)
    rooms = np.clip(np.round(area / 30 + rng.normal(0, 0.7, n)), 1, 8)
    age = rng.uniform(0, 80, n)
    dist = rng.gamma(2.0, 3.0, n)
    floor = rng.integers(0, 10, n).astype(float)
    X = np.stack([area, rooms, age, dist, floor], axis=1)
    W = np.array([[3.2, 12.0, -1.1, -6.0, 2.5],      # price (k€) per unit of each feature
                  [9.0, 40.0, -2.5, -18.0, 6.0]])    # rent (€/month)
    b = np.array([60.0, 150.0])
    T = X @ W.T + b + rng.normal(0, 1, (n, 2)) * np.array([25.0, 60.0])
    return X, T, W, b


def main(out_dir: str | Path, quick: bool = False, seed: int = 0) -> dict:
    """Fit W, b by least squares and by gradient descent; compare them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 200 if quick else 1000
    X, T, W_true, b_true = house_table(n, seed)
    N, d = X.shape
    s = T.shape[1]

    mu, sd = X.mean(0), X.std(0)
    Z = (X - mu) / sd                          # standardised features
    A = np.hstack([Z, np.ones((N, 1))])        # design matrix [Z, 1]; Θ = [W, b]ᵀ of shape [d+1, s]

    t0 = time.perf_counter()
    theta_ls, *_ = np.linalg.lstsq(A, T, rcond=None)
    t_ls = time.perf_counter() - t0

    H = (2.0 / N) * A.T @ A                    # Hessian of L
    eig = np.linalg.eigvalsh(H)
    eta = 1.0 / eig[-1]
    theta = np.zeros((d + 1, s))
    losses, errors = [], []
    tol = 1e-13
    t0 = time.perf_counter()
    for it in range(100_000):  # noqa: B007 (its last value counts the iterations, after the loop)
        r = A @ theta - T
        losses.append(float(np.mean(np.sum(r ** 2, axis=1))))
        errors.append(float(np.abs(theta - theta_ls).max()))
        g = (2.0 / N) * A.T @ r
        theta -= eta * g
        if np.abs(eta * g).max() < tol * max(1.0, np.abs(theta).max()):
            break
    t_gd = time.perf_counter() - t0
    iters = it + 1

    def to_units(th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Undo the standardisation: W x + b with x in the table's units."""
        Wz, bz = th[:d].T, th[d]
        W = Wz / sd
        return W, bz - W @ mu

    W_ls, b_ls = to_units(theta_ls)
    W_gd, b_gd = to_units(theta)
    mse_ls = float(np.mean(np.sum((A @ theta_ls - T) ** 2, axis=1)))
    mse_gd = float(np.mean(np.sum((A @ theta - T) ** 2, axis=1)))
    res = {
        "n": N, "d": d, "s": s,
        "n_params": s * (d + 1),
        "W_ls": W_ls.tolist(), "b_ls": b_ls.tolist(),
        "W_gd": W_gd.tolist(), "b_gd": b_gd.tolist(),
        "W_true": W_true.tolist(), "b_true": b_true.tolist(),
        "max_abs_diff_standardised": float(np.abs(theta - theta_ls).max()),
        "max_rel_diff_units": float(max(np.abs(W_gd - W_ls).max() / np.abs(W_ls).max(),
                                        np.abs(b_gd - b_ls).max() / np.abs(b_ls).max())),
        "mse_ls": mse_ls, "mse_gd": mse_gd, "gd_loss_first": losses[0], "gd_loss_last": losses[-1],
        "gd_iterations": iters, "gd_step": float(eta),
        "condition_number": float(eig[-1] / eig[0]),
        "seconds_ls": t_ls, "seconds_gd": t_gd,
    }

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].semilogy(errors)
    axes[0].set_xlabel("gradient-descent iteration k")
    axes[0].set_ylabel("max |Θ_k − Θ_LS|  (standardised features)")
    axes[0].set_title(f"GD converges (κ(AᵀA) = {res['condition_number']:.1f})")
    idx = np.arange(d)
    for k, ax in enumerate(axes[1:]):
        ax.bar(idx - 0.2, W_ls[k], 0.4, label="least squares")
        ax.bar(idx + 0.2, W_gd[k], 0.4, label="gradient descent")
        ax.plot(idx, W_true[k], "k_", ms=18, mew=2, label="true W")
        ax.set_xticks(idx, FEATURES, rotation=20, fontsize=8)
        ax.set_title(f"W row for {TARGETS[k]} (b: LS {b_ls[k]:.1f}, GD {b_gd[k]:.1f})", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "multivariate_regression.png", dpi=100)
    plt.close(fig)

    print(f"N = {N} houses, d = {d} features, s = {s} targets: s(d+1) = {res['n_params']} parameters")
    for k in range(s):
        print(f"{TARGETS[k]:>15}: W_LS = {np.array2string(W_ls[k], precision=3)}, b_LS = {b_ls[k]:.3f}")
        print(f"{'':>15}  W_GD = {np.array2string(W_gd[k], precision=3)}, b_GD = {b_gd[k]:.3f}")
    print(f"least squares vs gradient descent ({iters} iterations, η = {eta:.4f}): "
          f"max |ΔΘ| = {res['max_abs_diff_standardised']:.2e} (standardised), "
          f"max relative difference in units = {res['max_rel_diff_units']:.2e}")
    print(f"MSE: least squares {mse_ls:.4f}, gradient descent {mse_gd:.4f}")
    return res


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
