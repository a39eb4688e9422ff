"""From regression to reconstruction: learning the inverse of a 16×16 Gaussian blur.

The regression ideas of examples 01–08 applied to an imaging inverse problem

    y = K x + e,   K = Gaussian blur (σ_blur = 1.5 px, reflect boundary) on 16×16 images,
                   e ~ N(0, σ² I), σ = 0.01,

with images x from the package's seeded ``ellipses`` source.  Each image is a vector of
n = 256 pixels, so K is a 256×256 matrix (built densely here by applying the operator to the
256 unit images) and reconstruction is regression from y ∈ R^256 to x ∈ R^256:

- **Tikhonov** (no training data, only K): x̂ = (KᵀK + λI)⁻¹ Kᵀ y — itself a *linear* map
  R y, computed in closed form from the dense K.  λ is picked from a grid on validation
  pairs.  The package's CG solver ``invmap.variational.build("tikhonov", lam=λ)`` is checked
  against the closed form.
- **linear** (package model ``linear``): x̂ = W y + b with W ∈ R^{256×256}, trained by
  full-batch L-BFGS on the mean squared error over the (y, x) training pairs: linear
  least-squares regression.  Its closed form, [W, b] = argmin Σ‖W y_i + b − x_i‖² + α‖W‖²
  (ridge α picked on the validation pairs), is printed beside it.  Unlike Tikhonov it learns
  the mean image (b) and the correlations of the images: it approximates the best *linear*
  estimator for this image class (with 65,792 parameters and a few thousand pairs it also
  fits some noise; stopping L-BFGS early, like the ridge term, limits that).
- **mlp** (package model ``mlp``, one hidden layer of relu units): a nonlinear map, same
  training.

All are evaluated on held-out test images (a separate split of the source) by PSNR, beside
the blurred measurement y itself used as the estimate.

    python examples/09_regression_to_reconstruction.py OUTDIR [--quick]
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import invmap.data as data  # noqa: E402
import invmap.models as models  # noqa: E402
import invmap.noise as noise  # noqa: E402
import invmap.operators as operators  # noqa: E402
import invmap.variational as variational  # noqa: E402
from invmap.metrics import psnr  # noqa: E402
from invmap.physics import Physics  # noqa: E402

SIZE = 16
BLUR_SIGMA = 1.5
NOISE_SIGMA = 0.01


def dense_matrix(op: operators.LinearOperator) -> np.ndarray:
    """The n×n matrix of K (float64): column j is K applied to the j-th unit image."""
    n = int(np.prod(op.in_shape))
    basis = torch.eye(n, dtype=torch.float64).reshape((n, 1) + op.in_shape)
    return op(basis).reshape(n, -1).T.numpy()


def mean_psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    return float(psnr(x_hat.clamp(0, 1), x).mean())


def train(net: torch.nn.Module, y: torch.Tensor, x: torch.Tensor, iters: int) -> list[float]:
    """Full-batch L-BFGS on the mean squared error (1/N) Σ ‖net(y_i) − x_i‖²; the loss per evaluation."""
    opt = torch.optim.LBFGS(net.parameters(), lr=1.0, max_iter=iters, history_size=20,
                            line_search_fn="strong_wolfe")
    losses: list[float] = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.mean((net(y) - x) ** 2)
        loss.backward()
        losses.append(loss.item())
        return loss

    opt.step(closure)
    return losses


def main(out_dir: str | Path, quick: bool = False, seed: int = 0) -> dict:
    """Tikhonov vs. learned linear and MLP inverse maps of a 16×16 blur; PSNR on test images."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_train, n_val, n_test, iters, width = (500, 100, 64, 50, 256) if quick else (2000, 200, 200, 150, 512)
    torch.manual_seed(seed)

    op = operators.build("blur", image_shape=(SIZE, SIZE), kernel="gaussian", sigma=BLUR_SIGMA, boundary="reflect")
    physics = Physics(op, noise.build("gaussian", sigma=NOISE_SIGMA, seed=seed))
    x_tr = data.build_source("ellipses", SIZE, split="train", count=n_train, seed=seed).batch(range(n_train))
    x_va = data.build_source("ellipses", SIZE, split="val", count=n_val, seed=seed).batch(range(n_val))
    x_te = data.build_source("ellipses", SIZE, split="test", count=n_test, seed=seed).batch(range(n_test))
    g = torch.Generator().manual_seed(seed)
    y_tr, y_va, y_te = physics.measure(x_tr, g), physics.measure(x_va, g), physics.measure(x_te, g)
    n = SIZE * SIZE

    def vec(t: torch.Tensor) -> np.ndarray:
        return t.reshape(t.shape[0], n).double().numpy()

    def img(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).float().reshape(a.shape[0], 1, SIZE, SIZE)

    Y, X, Yva, Yte = vec(y_tr), vec(x_tr), vec(y_va), vec(y_te)

    # Tikhonov in closed form: R = (KᵀK + λI)⁻¹Kᵀ, a linear map; λ picked on the validation pairs
    K = dense_matrix(op)
    KtK, eye = K.T @ K, np.eye(n)
    lams = np.logspace(-5, 0, 11)
    val = [mean_psnr(img(Yva @ np.linalg.solve(KtK + lam * eye, K.T).T), x_va) for lam in lams]
    lam = float(lams[int(np.argmax(val))])
    R = np.linalg.solve(KtK + lam * eye, K.T)
    x_tik = img(Yte @ R.T)
    x_tik_cg = variational.build("tikhonov", lam=lam, iters=500, tol=1e-10)(y_te.double(), physics).float()

    # the least-squares linear map [W, b] = argmin Σ‖W y_i + b − x_i‖² + α‖W‖², in closed form
    # (ridge α picked on the validation pairs): the reference for the trained `linear` model
    A = np.hstack([Y, np.ones((n_train, 1))])
    AtA, AtX = A.T @ A, A.T @ X
    reg = np.eye(n + 1)
    reg[n, n] = 0.0  # b is not penalised
    alphas = n_train * np.logspace(-6, 0, 7)
    thetas = [np.linalg.solve(AtA + a * reg, AtX) for a in alphas]
    Ava, Ate = np.hstack([Yva, np.ones((n_val, 1))]), np.hstack([Yte, np.ones((n_test, 1))])
    k = int(np.argmax([mean_psnr(img(Ava @ th), x_va) for th in thetas]))
    x_lin_cf = img(Ate @ thetas[k])

    # the package's models, trained on the same pairs
    t0 = time.perf_counter()
    lin = models.build("linear", in_shape=(SIZE, SIZE), out_shape=(SIZE, SIZE))
    lin_loss = train(lin, y_tr, x_tr, iters)
    t_lin = time.perf_counter() - t0
    t0 = time.perf_counter()
    mlp = models.build("mlp", in_shape=(SIZE, SIZE), out_shape=(SIZE, SIZE), depth=1, width=width,
                       activation="relu")
    mlp_loss = train(mlp, y_tr, x_tr, iters)
    t_mlp = time.perf_counter() - t0
    with torch.no_grad():
        x_lin, x_mlp = lin(y_te), mlp(y_te)

    res = {
        "n_train": n_train, "n_val": n_val, "n_test": n_test, "lbfgs_iters": iters, "mlp_width": width,
        "lambda": lam, "ridge_alpha": float(alphas[k]),
        "psnr_blurred": mean_psnr(y_te, x_te),
        "psnr_tikhonov": mean_psnr(x_tik, x_te),
        "psnr_tikhonov_cg": mean_psnr(x_tik_cg, x_te),
        "tikhonov_closed_form_vs_cg_max_abs_diff": float((x_tik - x_tik_cg).abs().max()),
        "psnr_linear": mean_psnr(x_lin, x_te),
        "psnr_linear_closed_form": mean_psnr(x_lin_cf, x_te),
        "psnr_mlp": mean_psnr(x_mlp, x_te),
        "params_linear": models.count_parameters(lin),
        "params_mlp": models.count_parameters(mlp),
        "seconds_linear": t_lin, "seconds_mlp": t_mlp,
        "final_train_mse_linear": lin_loss[-1], "final_train_mse_mlp": mlp_loss[-1],
    }

    show = min(4, n_test)
    cols = [("truth x", x_te), (f"blurred y\n{res['psnr_blurred']:.1f} dB", y_te),
            (f"Tikhonov λ={lam:.0e}\n{res['psnr_tikhonov']:.1f} dB", x_tik),
            (f"linear (learned)\n{res['psnr_linear']:.1f} dB", x_lin),
            (f"mlp (learned)\n{res['psnr_mlp']:.1f} dB", x_mlp)]
    fig, axes = plt.subplots(show, len(cols), figsize=(2.1 * len(cols), 2.1 * show + 0.4))
    for j, (title, imgs) in enumerate(cols):
        for i in range(show):
            ax = axes[i, j]
            ax.imshow(imgs[i, 0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle("mean test PSNR over the held-out images", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "reconstructions.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(lin_loss, label=f"linear ({res['params_linear']:,} parameters)")
    ax.semilogy(mlp_loss, label=f"mlp ({res['params_mlp']:,} parameters)")
    ax.set_xlabel("L-BFGS function evaluation")
    ax.set_ylabel("training MSE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "training_loss.png", dpi=100)
    plt.close(fig)

    print(f"blur σ = {BLUR_SIGMA} px on {SIZE}×{SIZE} ellipses, Gaussian noise σ = {NOISE_SIGMA}; "
          f"{n_train} training pairs, {n_val} validation pairs (λ, α), {n_test} test images")
    print(f"mean test PSNR: blurred input {res['psnr_blurred']:.2f} dB")
    print(f"  Tikhonov (KᵀK + λI)⁻¹Kᵀy, λ = {lam:.0e}: {res['psnr_tikhonov']:.2f} dB "
          f"(package CG solver: {res['psnr_tikhonov_cg']:.2f} dB, "
          f"max |Δ| {res['tikhonov_closed_form_vs_cg_max_abs_diff']:.1e})")
    print(f"  linear W y + b, L-BFGS {iters} iterations: {res['psnr_linear']:.2f} dB "
          f"(closed-form least squares, ridge α = {alphas[k]:.0e}: {res['psnr_linear_closed_form']:.2f} dB; "
          f"{t_lin:.1f} s)")
    print(f"  mlp (1 hidden layer, {width} relu), L-BFGS {iters} iterations: {res['psnr_mlp']:.2f} dB "
          f"({t_mlp:.1f} s)")
    return res


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
