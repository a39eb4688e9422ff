"""Speed of invmap's blur K and Kᵀ against scipy.ndimage and deepinv, on the same work in one run.

Work: a batch of B random 128×128 float32 images; y = K x and x' = Kᵀ y for a motion blur of
7 and 15 pixels (horizontal: one row, separable), the same 7 pixels at 30° (a 5×7 PSF, not
separable) and a Gaussian of σ = 1.5 (11×11, separable; invmap's default), with the
``reflect`` (invmap's default, half-sample symmetric) and ``circular`` boundaries.

- invmap ``blur``: ``K(x)`` and ``K.adjoint(y)`` on the ``[B, 1, H, W]`` batch (the path it
  takes for B images is printed).
- scipy.ndimage: ``convolve(X, h[None], mode)`` for K and ``correlate(Y, h[None], mode)`` for
  Kᵀ on the ``[B, H, W]`` array, with the matching mode (``reflect`` / ``wrap``); scipy has no
  threads. For ``reflect`` the correlation is not the exact adjoint (the dot-test column
  shows it): the same amount of work, not the same map.
- deepinv ``Blur(filter, padding)``: ``A`` and ``A_adjoint``; ``circular`` is invmap's
  boundary, deepinv's ``reflect`` is scipy's ``mirror`` (``c b | a b c d``: the same work on a
  boundary one sample different). For ``circular`` also ``BlurFFT`` (FFT, circular only).

Each library's forward is checked against scipy.ndimage in float64 with that library's
boundary (column "K err", relative), and its adjoint by the dot test
|<Kx, y> − <x, K'y>| / (‖Kx‖‖y‖) (column "dot"). Reported: images/s of forward + adjoint,
the best and the median of `--reps` rounds after a warm-up (each round times every library
once, so all see the same background load; on the shared CPU the best round is the cost of
the code, the median adds the neighbours' load), and invmap's ratio to each peer (best).

``--tv`` also times invmap's TV (Chambolle–Pock, 200 iterations) on a 128² deblurring
problem (motion 7 px, ``reflect``, 1% noise) next to TV on 60-view CT of the same size.
``--baseline SRC`` times invmap's own K + Kᵀ (and TV with ``--tv``) from another checkout
(e.g. ``/work/main/src``, before a change) and from this one, in worker processes that
alternate ``--rounds`` times so both see the same load.

Run with the peer venv (deepinv 0.5; ../shared/anchors/setup.sh, or a venv with deepinv
beside a pinned torch) and invmap from this checkout:

    PYTHONPATH=src .peers/bin/python benchmarks/blur.py --threads 1 --tv --baseline /work/main/src

Without deepinv its rows are skipped and the output says so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

# On a shared, oversubscribed CPU, OpenMP threads that spin while waiting slow every
# multi-thread kernel (see benchmarks/tomography.py); passive waiting, set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import scipy.ndimage as ndi  # noqa: E402
import torch  # noqa: E402

from skimage import data, transform  # noqa: E402

import invmap  # noqa: E402
import invmap.operators as ops  # noqa: E402
from invmap.noise import build as build_noise  # noqa: E402
from invmap.physics import Physics  # noqa: E402
from invmap.variational import ChambollePockTV  # noqa: E402

warnings.filterwarnings("ignore")

PSFS = {"motion 7 px": dict(kernel="motion", length=7.0), "motion 15 px": dict(kernel="motion", length=15.0),
        "motion 7 px at 30°": dict(kernel="motion", length=7.0, angle=30.0),
        "gaussian σ=1.5": dict(kernel="gaussian", sigma=1.5)}
SCIPY_MODE = {"reflect": "reflect", "circular": "wrap"}
DEEPINV_PADDING = {"reflect": ("reflect", "mirror"), "circular": ("circular", "wrap")}  # (deepinv, scipy equivalent)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def interleaved(cases: list[dict], reps: int) -> dict[str, tuple[float, float]]:
    """(best, median) seconds of one forward + adjoint per case over `reps` rounds, every case once per round."""
    for c in cases:
        c["adj"](c["fwd"]())
    times: dict[str, list[float]] = {c["name"]: [] for c in cases}
    for _ in range(reps):
        for c in cases:
            t = time.perf_counter()
            c["adj"](c["fwd"]())
            times[c["name"]].append(time.perf_counter() - t)
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def checks(fwd, adj, x: np.ndarray, y: np.ndarray, h: np.ndarray, mode: str) -> tuple[float, float]:
    """(relative error of K x against scipy.ndimage.convolve in float64 with `mode`, relative dot-test gap)."""
    kx, kty = np.asarray(fwd(x), dtype=np.float64), np.asarray(adj(y), dtype=np.float64)
    ref = ndi.convolve(x.astype(np.float64), h[None], mode=mode, cval=0.0)
    err = float(np.linalg.norm(kx - ref) / np.linalg.norm(ref))
    dot = abs(float((kx * y).sum()) - float((x * kty).sum())) / float(np.linalg.norm(kx) * np.linalg.norm(y))
    return err, dot


def cases_for(kind: str, boundary: str, B: int, N: int, dinv) -> tuple[list[dict], str]:
    """The timed cases (invmap, scipy, deepinv where installed) of one PSF, boundary and batch."""
    op = ops.build("blur", image_shape=(N, N), boundary=boundary, **PSFS[kind])
    h = op.psf.astype(np.float32)
    rng = np.random.default_rng(0)
    X = rng.random((B, N, N), dtype=np.float32)
    Y = rng.random((B, N, N), dtype=np.float32)
    xt, yt = torch.from_numpy(X)[:, None], torch.from_numpy(Y)[:, None]
    path = op.path(B) if callable(getattr(op, "path", None)) else "gather + conv2d"
    mode = SCIPY_MODE[boundary]
    cases = [dict(name="invmap", fwd=lambda: op(xt), adj=lambda v: op.adjoint(yt), note=f"path: {path}",
                  check=(lambda a: op(torch.from_numpy(a)[:, None])[:, 0].numpy(),
                         lambda a: op.adjoint(torch.from_numpy(a)[:, None])[:, 0].numpy(), mode)),
             dict(name="scipy.ndimage", fwd=lambda: ndi.convolve(X, h[None], mode=mode),
                  adj=lambda v: ndi.correlate(Y, h[None], mode=mode), note=f"mode '{mode}', 1 thread",
                  check=(lambda a: ndi.convolve(a, h[None], mode=mode), lambda a: ndi.correlate(a, h[None], mode=mode),
                         mode))]
    if dinv is not None:
        padding, equiv = DEEPINV_PADDING[boundary]
        filt = torch.from_numpy(h)[None, None]
        blur = dinv.physics.Blur(filter=filt, padding=padding)
        note = f"padding '{padding}'" + ("" if equiv == mode else f" (= scipy '{equiv}', not invmap's)")
        cases.append(dict(name="deepinv Blur", fwd=lambda: blur.A(xt), adj=lambda v: blur.A_adjoint(yt), note=note,
                          check=(lambda a: blur.A(torch.from_numpy(a)[:, None])[:, 0].numpy(),
                                 lambda a: blur.A_adjoint(torch.from_numpy(a)[:, None])[:, 0].numpy(), equiv)))
        if boundary == "circular":
            bfft = dinv.physics.BlurFFT(img_size=(1, N, N), filter=filt)
            cases.append(dict(name="deepinv BlurFFT", fwd=lambda: bfft.A(xt), adj=lambda v: bfft.A_adjoint(yt),
                              note="FFT, circular only",
                              check=(lambda a: bfft.A(torch.from_numpy(a)[:, None])[:, 0].numpy(),
                                     lambda a: bfft.A_adjoint(torch.from_numpy(a)[:, None])[:, 0].numpy(), mode)))
    xs, ys = X[:2].astype(np.float32), Y[:2].astype(np.float32)
    for c in cases:
        try:
            c["err"], c["dot"] = checks(c["check"][0], c["check"][1], xs, ys, h, c["check"][2])
        except RuntimeError as e:  # a peer that cannot run this case: reported, not timed
            c["failed"] = str(e).splitlines()[0][:90]
    return cases, f"{kind}, {h.shape[0]}×{h.shape[1]} PSF"


def blur_tables(N: int, batches: list[int], reps: int, dinv) -> list[tuple]:
    summary = []
    for boundary in ("reflect", "circular"):
        for kind in PSFS:
            for B in batches:
                cases, title = cases_for(kind, boundary, B, N, dinv)
                with torch.no_grad():
                    t = interleaved([c for c in cases if "failed" not in c], reps)
                inv = t["invmap"][0]
                print(f"\n#### {title}, boundary {boundary}, batch {B}\n")
                print("| library | fwd+adj img/s (best) | (median) | invmap ÷ peer (best) | K err | dot | note |")
                print("|---|---:|---:|---:|---:|---:|---|")
                for c in cases:
                    if "failed" in c:
                        print(f"| {c['name']} | — | — | — | — | — | {c['note']}; failed: {c['failed']} |")
                        continue
                    best, med = t[c["name"]]
                    ratio = "—" if c["name"] == "invmap" else f"{best / inv:.2f}×"
                    print(f"| {c['name']} | {B / best:,.0f} | {B / med:,.0f} | {ratio} | {c['err']:.0e} | "
                          f"{c['dot']:.0e} | {c['note']} |", flush=True)
                summary.append((kind, boundary, B, {c["name"]: B / t[c["name"]][0] for c in cases if c["name"] in t},
                                cases[0]["note"]))
    return summary


def print_summary(summary: list[tuple], peers: list[str]) -> None:
    print("\n### Summary: forward + adjoint, images/s, best round (ratio = invmap ÷ peer)\n")
    print("| PSF | boundary | B | invmap path | invmap | " + " | ".join(f"{p} (ratio)" for p in peers) + " |")
    print("|---|---|---:|---|---:|" + "---:|" * len(peers))
    for kind, boundary, B, rates, note in summary:
        cells = [f"{rates[p]:,.0f} ({rates['invmap'] / rates[p]:.2f}×)" if p in rates else "— (n/a or failed)"
                 for p in peers]
        print(f"| {kind} | {boundary} | {B} | {note.removeprefix('path: ')} | {rates['invmap']:,.0f} | "
              + " | ".join(cells) + " |")


def tv_times(N: int, iters: int, batches: list[int], reps: int) -> dict[str, float]:
    """Best seconds per image of invmap's TV (Chambolle–Pock) on motion-blur deblurring and 60-view CT."""
    ph = torch.as_tensor(transform.resize(data.shepp_logan_phantom(), (N, N), anti_aliasing=True), dtype=torch.float32)
    xb = torch.stack([torch.roll(ph, shifts=(2 * b, b), dims=(0, 1)) for b in range(max(batches))])[:, None]
    problems = [("TV deblurring, motion 7 px, reflect, λ = 0.01", "blur", dict(kernel="motion", length=7.0), 0.01),
                ("TV CT, 60 views, λ = 0.3", "tomography", dict(angles=60), 0.3)]
    out = {}
    for title, name, params, lam in problems:
        op = ops.build(name, image_shape=(N, N), **params)
        y = Physics(op, build_noise("gaussian", relative=0.01, seed=0)).measure(xb)
        for B in batches:
            yb = y[:B]
            ChambollePockTV(op, yb, lam=lam, max_iter=2, record_every=0).solve()  # set-up (norms, cached): not timed
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                ChambollePockTV(op, yb, lam=lam, max_iter=iters, record_every=0).solve()
                ts.append(time.perf_counter() - t0)
            out[f"{title} | {B}"] = min(ts) / B
    return out


def invmap_times(N: int, batches: list[int], reps: int) -> dict[str, float]:
    """Best seconds per image of invmap's forward + adjoint alone, for every case of the tables."""
    out = {}
    for boundary in ("reflect", "circular"):
        for kind in PSFS:
            op = ops.build("blur", image_shape=(N, N), boundary=boundary, **PSFS[kind])
            for B in batches:
                x = torch.rand(B, 1, N, N)
                with torch.no_grad():
                    op.adjoint(op(x))
                    ts = []
                    for _ in range(reps):
                        t0 = time.perf_counter()
                        op.adjoint(op(x))
                        ts.append(time.perf_counter() - t0)
                out[f"K and Kᵀ, {kind}, {boundary} | {B}"] = min(ts) / B
    return out


def before_after(baseline: str, args) -> None:
    """Alternate worker processes running invmap from `baseline` (another checkout's src) and from
    this one, `--rounds` times, so both see the same load; best seconds per image of each."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(invmap.__file__)))
    worker = [sys.executable, os.path.abspath(__file__), "--worker", "--size", str(args.size), "--batches",
              args.batches, "--reps", str(args.reps), "--threads", str(args.threads), "--tv-iters", str(args.tv_iters)]
    if args.tv:
        worker.append("--tv")
    best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
    for _ in range(args.rounds):
        for side, src in (("before", baseline), ("after", here)):
            env = {**os.environ, "PYTHONPATH": src}
            res = json.loads(subprocess.run(worker, env=env, capture_output=True, text=True, check=True).stdout)
            for k, v in res.items():
                best[side][k] = min(v, best[side].get(k, math.inf))
    print(f"\n### Before / after: invmap from {baseline} (before) and {here} (after), alternating processes, "
          f"best of {args.rounds} rounds × {args.reps} reps, s per image\n")
    print("| work | batch | before | after | speed-up |")
    print("|---|---:|---:|---:|---:|")
    for k, after in best["after"].items():
        work, B = k.split(" | ")
        before = best["before"].get(k, math.nan)
        print(f"| {work} | {B} | {before:.4g} | {after:.4g} | {before / after:.2f}× |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tv", action="store_true", help="also time TV on 128² motion deblurring and 60-view CT")
    ap.add_argument("--tv-iters", type=int, default=200)
    ap.add_argument("--no-blur", action="store_true", help="skip the tables against the peers")
    ap.add_argument("--baseline", metavar="SRC", help="also time invmap from another checkout's src (before/after)")
    ap.add_argument("--rounds", type=int, default=3, help="alternations of --baseline and this checkout")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # JSON of invmap's own times
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    tv_reps = max(1, args.reps // 3)
    if args.worker:
        res = {} if args.no_blur else invmap_times(args.size, batches, args.reps)
        if args.tv:
            res.update(tv_times(args.size, args.tv_iters, [1, 16], tv_reps))
        print(json.dumps(res))
        return
    try:
        import deepinv as dinv
        dinv_note = f"deepinv {dinv.__version__}"
    except ImportError as e:
        dinv, dinv_note = None, f"deepinv not installed ({e}): its rows are skipped"
    print(f"# invmap blur benchmark — CPU {cpu_name()} ({os.cpu_count()} logical CPUs), torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), float32, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
          f"invmap from {os.path.dirname(invmap.__file__)}; scipy.ndimage (1 thread); {dinv_note}; "
          f"load average {os.getloadavg()[0]:.1f}")
    if not args.no_blur:
        summary = blur_tables(args.size, batches, args.reps, dinv)
        peers = ["scipy.ndimage"] + (["deepinv Blur", "deepinv BlurFFT"] if dinv is not None else [])
        print_summary(summary, peers)
    if args.baseline:
        before_after(args.baseline, args)
    elif args.tv:
        print(f"\n### TV on {args.size}×{args.size}: Chambolle–Pock, {args.tv_iters} iterations, 1% noise, "
              "float32\n")
        print(f"| problem | batch | s / image (best of {tv_reps}) |")
        print("|---|---:|---:|")
        for k, v in tv_times(args.size, args.tv_iters, [1, 16], tv_reps).items():
            work, B = k.split(" | ")
            print(f"| {work} | {B} | {v:.3f} |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
