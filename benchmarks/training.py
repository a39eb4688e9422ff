"""Training throughput: the default UNet next to deepinv's UNet of similar size, same batch.

    .venv/bin/python benchmarks/training.py [--size 128] [--batch 16] [--threads 2] [--steps 5]
    # with deepinv in the same run (peer venv, see /work/shared/anchors/setup.sh):
    /tmp/anchors-venv/bin/pip install --no-deps -e .
    /tmp/anchors-venv/bin/python benchmarks/training.py

Rows (images/s = batch / median step time over `steps` timed steps after one warm-up):

1. network steps only (forward + MSE + backward + Adam) on a fixed batch ``[B, 1, N, N]``:
   invmap's default UNet (the `model` section of the embedded default config) in float32
   and in bfloat16 CPU autocast (what ``training.amp: auto`` uses on a CPU with native
   bf16), deepinv's
   UNet with the same channels per scale (16, 32, 64; batch norm, residual), and deepinv's
   smallest stock UNet (scales=2, 64 base channels; 0.44M parameters);
2. the whole invmap training step of the default experiment: fresh noise on cached K x,
   FBP of the minibatch, the network step (`invmap.training.train` for a few steps,
   minus validation), reported from the run's own log.

Quality of a trained run on its held-out test set (FBP, TV with λ tuned on validation
pairs by `invmap.variational.tune`, the model):

    .venv/bin/python -m invmap.cli train --out runs/default          # the embedded default
    .venv/bin/python benchmarks/training.py --quality runs/default [--tune-n 16]

Model-based kinds (``--unrolled``): one training step (forward + MSE + backward + Adam) of
invmap's lgd, lpd (paper and light) and unrolled on the default CT task (60 views), and of
the PnP denoiser network (the ``denoiser`` preset's UNet, a denoising step), each in a
fresh process so that its peak memory (max RSS above the process's RSS before the first
step) is its own. With deepinv importable, its unfolded learned primal-dual with the same
iterations, memory channels and block size — deepinv's ``PDNet_PrimalBlock`` /
``PDNet_DualBlock`` in the LPD loop of its demo — runs on the same invmap operator wrapped
as its physics (`invmap.interop.to_deepinv`) and on its own ``Tomography``:

    PYTHONPATH=src /work/anchors-venv/bin/python benchmarks/training.py --unrolled [--size 128] [--batch 8]

``--unrolled --interleaved``: invmap's LPD (paper) and LGD and both deepinv rows in one
process, one training step of each in turn, so the speed ratios hold on a loaded CPU.

Timings on a shared CPU are noisy: re-run when quiet and compare ratios within one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

import invmap.models as models
from invmap.config import load_config


def step_rate(net: torch.nn.Module, batch: int, size: int, steps: int, bf16: bool = False) -> float:
    """Images/s of forward + MSE + backward + Adam (``bf16``: in bfloat16 CPU autocast)."""
    torch.manual_seed(0)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 1, size, size)
    z = x + 0.1 * torch.randn_like(x)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.mean((net(z).float() - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def nparams(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def quality(run: str, tune_n: int, threads: int) -> None:
    """Mean ± std PSNR / SSIM of FBP, tuned TV and the run's model on the run's test set."""
    from invmap import metrics, variational
    from invmap.data import PairDataset, build_source
    from invmap.models import load_model

    cfg = load_config(f"{run}/config.yaml")
    phys, d = cfg.physics(), cfg.data

    def pairs(split: str, n: int, sim: str):
        src = build_source(d.source, d.size, split=split, count=n, seed=cfg.seed, **d.params)
        return PairDataset(src, phys, seed=cfg.seed, simulation=sim).simulate(list(range(n)))

    yv, xv = pairs("val", min(tune_n, d.val), d.simulation)
    yt, xt = pairs("test", d.test, d.test_simulation)
    t0 = time.perf_counter()
    tv, _ = variational.tune("tv", (yv, xv), physics=phys)
    print(f"TV tuned on {len(xv)} val pairs in {time.perf_counter() - t0:.0f} s: {tv.params()}")
    recon, meta = load_model(run)

    def batched(f):
        with torch.no_grad():
            return torch.cat([f(yt[i:i + 16]) for i in range(0, len(yt), 16)])

    print(f"test set: {len(xt)} {d.source} images {d.size}x{d.size}, {cfg.operator.name} {cfg.operator.params()}, "
          f"{cfg.noise.name} {cfg.noise.params()}, simulation {d.test_simulation}; model best epoch {meta['best_epoch']}")
    print(f"{'method':<8}{'PSNR (dB)':>16}{'SSIM':>18}")
    for name, f in (("fbp", lambda y: variational.fbp(y, phys.operator)), ("tv", lambda y: tv(y, phys)),
                    ("model", lambda y: recon(y, phys))):
        x_hat = batched(f)
        p, s_ = metrics.psnr(x_hat, xt), metrics.ssim(x_hat, xt)
        print(f"{name:<8}{p.mean():>10.2f} ± {p.std():4.2f}{s_.mean():>12.4f} ± {s_.std():.4f}", flush=True)


def _kind_row(row: str, size: int, batch: int, iterations: int):
    """(network, call → x̂, x) of one model-based row: its network and one training batch."""
    torch.manual_seed(0)
    cfg = load_config(None, [f"data.size={size}"])
    phys = cfg.physics()
    x = torch.rand(batch, 1, size, size)
    y = phys.measure(x, torch.Generator().manual_seed(0))
    small = dict(iterations=iterations, channels=32, depth=3)
    if row.startswith("invmap denoiser"):
        net = models.build("unet", **load_config("denoiser").model.params())
        z = x + 0.05 * torch.randn_like(x)
        call = lambda: net(z)  # noqa: E731
    elif row.startswith("invmap"):
        kind, _, variant = row.split()[1].partition("-")
        params = dict(small, **({"variant": variant} if variant else {}),
                      **({"memory": 5} if kind == "lgd" else {"primal": 5, "dual": 5} if kind == "lpd" and variant != "light"
                         else {"primal": 5} if kind == "lpd" else {}))
        net = models.build_kind(kind, **params)
        call = lambda: net(y, phys)  # noqa: E731
    else:
        import deepinv as dinv

        if row.endswith("own Tomography"):
            from invmap.operators.tomography import view_angles

            p = phys.operator.spec()["params"]
            theta = view_angles(p["angles"], p.get("arc", 180.0), p.get("start", 0.0))
            dphys = dinv.physics.Tomography(angles=torch.tensor(theta, dtype=torch.float32), img_width=size,
                                            circle=False, normalize=False, device="cpu")
        else:
            from invmap.interop import to_deepinv

            dphys = to_deepinv(phys)
        net = _DeepinvLPD(iterations, 5, 5, 32, 3)
        yd = dphys.A(x)
        call = lambda: net(yd, dphys)  # noqa: E731
    return net, call, x


def _trainer(net: torch.nn.Module, call, x: torch.Tensor):
    """One timed training step (forward + MSE + backward + Adam) → seconds."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step() -> float:
        t0 = time.perf_counter()
        loss = torch.mean((call() - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return step


def _kind_step(row: str, size: int, batch: int, steps: int, iterations: int, threads: int) -> tuple[float, float, int]:
    """(images/s, peak MiB above the start, parameters) of one training step of `row` (run in a child process)."""
    import resource

    torch.set_num_threads(threads)
    net, call, x = _kind_row(row, size, batch, iterations)
    step = _trainer(net, call, x)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = [step() for _ in range(steps + 1)][1:]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return batch / statistics.median(times), (peak - start) / 1024, nparams(net)


def interleaved_rows(size: int, batch: int, steps: int, iterations: int, threads: int) -> None:
    """invmap's LPD and LGD next to deepinv's LPD in ONE process, their steps taken in turn
    (round robin, one warm-up round), so that a changing load on a shared CPU hits every row
    alike: images/s (median) and the ratio to each deepinv row. Memory: `unrolled_rows`."""
    import deepinv  # noqa: F401 - the peer rows are the point of this table

    torch.set_num_threads(threads)
    rows = ["invmap lpd-paper", "invmap lgd", "deepinv LPD (PDNet blocks) on invmap's operator",
            "deepinv LPD (PDNet blocks) on its own Tomography"]
    steppers = {r: _trainer(*_kind_row(r, size, batch, iterations)) for r in rows}
    times: dict[str, list[float]] = {r: [] for r in rows}
    for i in range(steps + 1):
        for r in rows:
            t = steppers[r]()
            if i:
                times[r].append(t)
    rate = {r: batch / statistics.median(times[r]) for r in rows}
    print(f"{batch}x{size}x{size}, 60 views, {iterations} iterations, 32 channels, 5 memory channels, "
          f"{threads} threads, interleaved, median of {steps} rounds")
    print(f"{'training step':<52}{'images/s':>10}{'÷ deepinv (invmap op)':>24}{'÷ deepinv (own op)':>20}")
    for r in rows:
        print(f"{r:<52}{rate[r]:>10.2f}{rate[r] / rate[rows[2]]:>24.2f}{rate[r] / rate[rows[3]]:>20.2f}", flush=True)


class _DeepinvLPD(torch.nn.Module):
    """deepinv's learned primal-dual: its PDNet blocks in the loop of its LPD demo (zero start,
    dual block on (u, A x⁽²⁾, y), primal block on (x, Aᵀu⁽¹⁾), one block pair per iteration)."""

    def __init__(self, iterations: int, primal: int, dual: int, channels: int, depth: int):
        super().__init__()
        from deepinv.models import PDNet_DualBlock, PDNet_PrimalBlock

        self.primal, self.dual = primal, dual
        self.p = torch.nn.ModuleList(PDNet_PrimalBlock(primal + 1, primal, depth, nf=channels) for _ in range(iterations))
        self.d = torch.nn.ModuleList(PDNet_DualBlock(dual + 2, dual, depth, nf=channels) for _ in range(iterations))

    def forward(self, y: torch.Tensor, physics) -> torch.Tensor:
        b = y.shape[0]
        x = torch.zeros(b, self.primal, *physics.A_adjoint(y).shape[2:])
        u = torch.zeros(b, self.dual, *y.shape[2:])
        for p, d in zip(self.p, self.d):
            u = d(u, physics.A(x[:, 1:2]), y)
            x = p(x, physics.A_adjoint(u[:, :1]))
        return x[:, :1]


def unrolled_rows(size: int, batch: int, steps: int, iterations: int, threads: int) -> None:
    """Print the model-based rows (see the module docstring), each measured in a fresh process."""
    import concurrent.futures
    import multiprocessing

    rows = ["invmap lgd", "invmap lpd-paper", "invmap lpd-light", "invmap unrolled", "invmap denoiser (PnP, unet)"]
    try:
        import deepinv  # noqa: F401

        rows += ["deepinv LPD (PDNet blocks) on invmap's operator", "deepinv LPD (PDNet blocks) on its own Tomography"]
    except ImportError:
        print("(deepinv not importable here: run with /work/anchors-venv/bin/python for its rows)")
    print(f"{batch}x{size}x{size}, 60 views, {iterations} iterations, 32 channels, 5 memory channels, "
          f"{threads} threads, median of {steps} steps")
    print(f"{'training step':<52}{'params':>10}{'images/s':>10}{'peak MiB':>10}")
    ctx = multiprocessing.get_context("spawn")
    for row in rows:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
            rate, mib, n = pool.submit(_kind_step, row, size, batch, steps, iterations, threads).result()
        print(f"{row:<52}{n:>10,}{rate:>10.2f}{mib:>10.0f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=None, help="image size (default: the default config's)")
    ap.add_argument("--batch", type=int, default=None, help="batch (default: the default config's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--no-loop", action="store_true", help="skip the end-to-end training-loop row")
    ap.add_argument("--unrolled", action="store_true", help="instead: the model-based kinds (and deepinv's LPD)")
    ap.add_argument("--iterations", type=int, default=10, help="iterations of the model-based kinds (--unrolled)")
    ap.add_argument("--interleaved", action="store_true",
                    help="with --unrolled: invmap's LPD/LGD and deepinv's LPD in one process, steps in turn")
    ap.add_argument("--quality", metavar="RUN", help="instead: score FBP, tuned TV and RUN's model on its test set")
    ap.add_argument("--tune-n", type=int, default=16, help="validation pairs for tuning TV (--quality)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.quality:
        quality(a.quality, a.tune_n, a.threads)
        return
    cfg = load_config(None)
    if a.unrolled and a.interleaved:
        interleaved_rows(a.size or cfg.data.size, a.batch or load_config("ct-lpd").training.batch_size, a.steps,
                         a.iterations, a.threads)
        return
    if a.unrolled:
        unrolled_rows(a.size or cfg.data.size, a.batch or load_config("ct-lpd").training.batch_size, a.steps,
                      a.iterations, a.threads)
        return
    size, batch = a.size or cfg.data.size, a.batch or cfg.training.batch_size
    print(f"torch {torch.__version__}, {a.threads} threads, batch {batch}, {size}x{size}")
    print(f"{'network':<58}{'params':>10}{'images/s':>10}")

    rows = []
    net = models.build(cfg.model.name, **cfg.model.params())
    mp = net.model_params
    label = f"invmap {cfg.model.name}(depth={mp.get('depth')}, base_channels={mp.get('base_channels')}, norm={mp.get('norm')})"
    rows.append((label, net, False))
    rows.append((label + " bf16", net, True))  # training.amp: the CPU's bfloat16 autocast
    try:
        import deepinv

        ch = [mp.get("base_channels", 16) * 2**k for k in range(mp.get("depth", 3))]
        bn = mp.get("norm") == "batch"
        rows.append((f"deepinv UNet(channels_per_scale={ch}, batch_norm={bn})",
                     deepinv.models.UNet(in_channels=1, out_channels=1, residual=True, batch_norm=bn,
                                         channels_per_scale=ch), False))
        rows.append(("deepinv UNet(scales=2) (smallest stock)",
                     deepinv.models.UNet(in_channels=1, out_channels=1, residual=True, batch_norm=True, scales=2), False))
    except ImportError:
        print("(deepinv not installed here: run with /tmp/anchors-venv/bin/python for the peer rows)")
    for label, m, bf16 in rows:
        print(f"{label:<58}{nparams(m):>10,}{step_rate(m, batch, size, a.steps, bf16):>10.1f}", flush=True)

    if not a.no_loop:
        try:
            from invmap.training import read_log, train
        except ImportError as e:  # e.g. the peer venv without safetensors
            print(f"(training-loop row skipped: {e})")
            return

        n = batch * 30
        c = load_config(None, [f"data.size={size}", f"data.train={n}", "data.val=8", "training.epochs=2",
                               f"training.batch_size={batch}", "training.max_minutes=0", f"training.threads={a.threads}"])
        with tempfile.TemporaryDirectory() as d:
            res = train(c, f"{d}/run", progress=False)
            rows_ = read_log(f"{d}/run/train_log.csv")
            dt = float(rows_[2]["seconds"]) - float(rows_[1]["seconds"])  # epoch 2: no warm-up effects
        print(f"{'invmap training loop (noise + FBP + step + val of 8), default':<58}{'':>10}{n / dt:>10.1f}"
              f"   ({res.device})")


if __name__ == "__main__":
    main()
