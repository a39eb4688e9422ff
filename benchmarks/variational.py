"""Speed of TV reconstruction: invmap Chambolle–Pock versus deepinv, same data and operator.

    x̂ = argmin_x ½‖K x − y‖² + λ TV(x),  K = invmap 'tomography' (128×128, 60 views), 1% noise

Times 200 iterations per 128×128 image, single image and batch of 16, on CPU with 2 threads:

- invmap ``tv`` (Chambolle–Pock / PDHG on [K; s∇], no gap recording);
- deepinv 0.5 ``optim_builder("PGD", prior=TVPrior(n_it_max=inner), data_fidelity=L2())``:
  proximal gradient with deepinv's iterative TV prox (its standard TV solver), on the same
  invmap operator wrapped as a ``deepinv.physics.LinearPhysics``, step 1/‖K‖², same λ,
  x₀ = 0 for both (deepinv's default x₀ = Kᵀy is ‖K‖² ≈ 7000 times too large for CT).

The objective value each reaches is printed next to its time (same formula for both), so
the speed comparison can be read together with how far each got.

Run (peer venv with deepinv):  /tmp/anchors-venv/bin/pip install --no-deps -e /work/main
                               /tmp/anchors-venv/bin/python benchmarks/variational.py
Without deepinv installed the deepinv rows are skipped.
"""

from __future__ import annotations

import argparse
import time

import torch

import invmap.operators as ops
from invmap.noise import build as build_noise
from invmap.physics import Physics
from invmap.variational import ChambollePockTV
from invmap.variational.functionals import sqnorm, tv
from invmap.variational.pdhg import stacked_norm


def phantoms(n: int, batch: int) -> torch.Tensor:
    from skimage import data, transform

    ph = torch.as_tensor(transform.resize(data.shepp_logan_phantom(), (n, n), anti_aliasing=True), dtype=torch.float32)
    return torch.stack([torch.roll(ph, shifts=(2 * b - batch, b), dims=(0, 1)) for b in range(batch)])[:, None]


def objective(op, x, y, lam) -> float:
    return float((0.5 * sqnorm(op(x) - y) + lam * tv(x)).mean())


def psnr(a, b) -> float:
    from invmap.metrics import psnr as _p

    return float(_p(a.clamp(0, 1), b).mean())


def time_it(fn, repeat: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--angles", type=int, default=60)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lam", type=float, default=0.3)
    ap.add_argument("--inner", type=int, default=20, help="deepinv TV-prox inner iterations per step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    op = ops.build("tomography", image_shape=(args.size, args.size), angles=args.angles)
    phys = Physics(op, build_noise("gaussian", relative=0.01, seed=0))
    xb = phantoms(args.size, args.batch)
    yb = phys.measure(xb)
    knorm = op.norm()
    stacked_norm(op, knorm / 8 ** 0.5)  # set-up (cached), not timed

    print(f"TV on {args.size}x{args.size}, {args.angles} views, 1% noise, lam={args.lam}, {args.iters} iterations, "
          f"CPU {torch.get_num_threads()} threads")
    print("| solver | batch | s / image | objective | PSNR (dB) |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    for b in (1, args.batch):
        y, x = yb[:b], xb[:b]
        t, xh = time_it(lambda: ChambollePockTV(op, y, lam=args.lam, max_iter=args.iters, record_every=0).solve(),
                        args.repeat)
        rows.append(("invmap tv (Chambolle-Pock)", b, t / b, objective(op, xh, y, args.lam), psnr(xh, x)))
        print("| %s | %d | %.3f | %.5g | %.2f |" % rows[-1], flush=True)

    try:
        import deepinv as dinv
    except ImportError:
        print("deepinv not installed: skipped")
        return
    physics = dinv.physics.LinearPhysics(A=lambda v: op.forward(v), A_adjoint=lambda v: op.adjoint(v))
    for b in (1, args.batch):
        y, x = yb[:b], xb[:b]

        def solve():
            model = dinv.optim.optim_builder(
                iteration="PGD", prior=dinv.optim.TVPrior(n_it_max=args.inner), data_fidelity=dinv.optim.L2(),
                params_algo={"stepsize": 1.0 / knorm ** 2, "lambda": args.lam}, max_iter=args.iters,
                early_stop=False)
            with torch.no_grad():
                return model(y, physics, init=torch.zeros_like(x))  # x0 = 0 as in invmap

        t, xh = time_it(solve, args.repeat)
        rows.append((f"deepinv PGD + TVPrior (inner {args.inner})", b, t / b, objective(op, xh, y, args.lam), psnr(xh, x)))
        print("| %s | %d | %.3f | %.5g | %.2f |" % rows[-1], flush=True)
    inv = {r[1]: r[2] for r in rows if r[0].startswith("invmap")}
    for r in rows:
        if r[0].startswith("deepinv"):
            print(f"batch {r[1]}: deepinv / invmap time per image = {r[2] / inv[r[1]]:.2f}x")


if __name__ == "__main__":
    main()
