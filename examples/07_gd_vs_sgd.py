"""Full-batch gradient descent vs. minibatch SGD on the same MLP regression problem.

Data: N points x_i uniform in [−2π, 2π] (seeded), targets t_i = sin(x_i); model: the
package's ``mlp`` with one hidden layer of 64 tanh units on the standardised input; loss

    L(θ) = (1/N) Σ_i (f_θ(x_i) − t_i)².

Both runs use the same optimiser (SGD with learning rate η and momentum 0.9) from the same
initial θ; they differ only in how much data each step sees:

- full-batch gradient descent: one step per epoch with the exact gradient ∇L(θ);
- minibatch SGD: N/B steps per epoch, each with the gradient of the loss on B = 32 points
  (an unbiased but noisy estimate of ∇L).

The full-data loss L is recorded after every epoch, against the epoch and against the wall
time spent in training steps.  Per epoch SGD wins by far: it takes N/B times more steps for
the same number of gradient evaluations per point.  Per second the picture can change, even
flip: one big batch uses the hardware far better than N/B small ones, so full-batch gradient
descent is also run with SGD's wall-time budget (many more epochs) to compare at equal
cost.  Which wins per second depends on N, B, the model and the machine; the script prints it.

    python examples/07_gd_vs_sgd.py OUTDIR [--quick]
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import invmap.models as models  # noqa: E402

WIDTH = 64
LR = 0.05
MOMENTUM = 0.9
BATCH = 32


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised inputs z = x / std and targets sin(x), x ~ U[−2π, 2π] (seeded)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, generator=g) * 2 - 1) * 2 * math.pi
    return x / (2 * math.pi / math.sqrt(3)), torch.sin(x)


def train(z: torch.Tensor, t: torch.Tensor, batch: int, epochs: int, seed: int,
          time_budget: float | None = None) -> tuple[list[float], list[float]]:
    """SGD (η, momentum) with minibatches of `batch` points; full-data loss and wall time per epoch.

    With `time_budget` (seconds) training continues past `epochs` until that much time
    has been spent in training steps.
    """
    torch.manual_seed(seed)
    net = models.build("mlp", in_features=1, out_features=1, depth=1, width=WIDTH, activation="tanh")
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    g = torch.Generator().manual_seed(seed + 1)
    n = z.shape[0]
    with torch.no_grad():
        losses, times = [float(torch.mean((net(z) - t) ** 2))], [0.0]
    spent, epoch = 0.0, 0
    while epoch < epochs or (time_budget is not None and spent < time_budget):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = torch.mean((net(z[idx]) - t[idx]) ** 2)
            loss.backward()
            opt.step()
        spent += time.perf_counter() - t0
        epoch += 1
        with torch.no_grad():  # evaluation is not counted in the wall time
            losses.append(float(torch.mean((net(z) - t) ** 2)))
        times.append(spent)
        if epoch >= 100 * max(epochs, 1):  # safety cap for the time-budget run
            break
    return losses, times


def main(out_dir: str | Path, quick: bool = False, seed: int = 0) -> dict:
    """Train the same MLP with full-batch GD and minibatch SGD; compare per epoch and per second."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n, epochs = (512, 15) if quick else (2048, 40)
    z, t = make_data(n, seed)
    train(z[:BATCH], t[:BATCH], BATCH, 1, seed)  # warm-up, so the first timed run is not penalised

    sgd_loss, sgd_time = train(z, t, BATCH, epochs, seed)
    gd_loss, gd_time = train(z, t, n, epochs, seed)
    gd_budget_loss, gd_budget_time = train(z, t, n, epochs, seed, time_budget=sgd_time[-1])

    res = {
        "n": n, "epochs": epochs, "batch": BATCH, "lr": LR, "momentum": MOMENTUM,
        "initial_loss": sgd_loss[0],
        "gd_loss": gd_loss[-1], "sgd_loss": sgd_loss[-1],
        "gd_seconds": gd_time[-1], "sgd_seconds": sgd_time[-1],
        "gd_steps": epochs, "sgd_steps": epochs * math.ceil(n / BATCH),
        "gd_equal_time_epochs": len(gd_budget_loss) - 1, "gd_equal_time_loss": gd_budget_loss[-1],
    }

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ep = np.arange(epochs + 1)
    axes[0].semilogy(ep, gd_loss, "o-", ms=3, label=f"full-batch GD ({epochs} steps)")
    axes[0].semilogy(ep, sgd_loss, "o-", ms=3, label=f"minibatch SGD, B = {BATCH} ({res['sgd_steps']} steps)")
    axes[0].set_xlabel("epoch (passes over the N points)")
    axes[0].set_title(f"per epoch (N = {n})")
    axes[1].semilogy(gd_budget_time, gd_budget_loss, label=f"full-batch GD ({res['gd_equal_time_epochs']} epochs)")
    axes[1].semilogy(sgd_time, sgd_loss, label=f"minibatch SGD ({epochs} epochs)")
    axes[1].set_xlabel("wall time in training steps [s]")
    axes[1].set_title("per second (same time budget)")
    for ax in axes:
        ax.set_ylabel("full-data MSE")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "gd_vs_sgd.png", dpi=100)
    plt.close(fig)

    print(f"N = {n} points, mlp(depth=1, width={WIDTH}, tanh), SGD η = {LR}, momentum {MOMENTUM}; "
          f"initial MSE {sgd_loss[0]:.4f}")
    print(f"after {epochs} epochs: full-batch GD MSE {gd_loss[-1]:.2e} ({epochs} steps, {gd_time[-1]:.2f} s), "
          f"minibatch SGD MSE {sgd_loss[-1]:.2e} ({res['sgd_steps']} steps, {sgd_time[-1]:.2f} s)")
    print(f"full-batch GD with SGD's time budget: {res['gd_equal_time_epochs']} epochs, MSE {gd_budget_loss[-1]:.2e}")
    return res


if __name__ == "__main__":
    from _cli import run_example  # examples/_cli.py: [OUT_DIR] [--quick]

    run_example(main, __doc__, __file__)
