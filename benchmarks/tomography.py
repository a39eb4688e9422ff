"""Speed and memory of invmap's parallel-beam CT operator against its peers, in one run.

Same work for every library: a batch of B random N×N float32 images, A views uniform over
[0°, 180°), ceil(N√2)+1 detector cells of width 1 (scikit-image picks its own count
ceil(N√2)); forward = the sinograms, adjoint = back-projection of one sinogram per image
(scikit-image: ``iradon(filter_name=None)``, an unfiltered back-projection). Reported:
images/s (median of `--reps` rounds after one warm-up; each round times every library once,
so all see the same background load) and invmap's ratio to each peer.

Peers, each where installed: deepinv ``Tomography`` (torch, CPU) — and invmap's operator
handed to deepinv through the bridge (``invmap.interop.to_deepinv``), a deepinv user's
speed-up in one call — ASTRA CPU projectors
``linear`` (Joseph, what invmap implements) and ``strip``, scikit-image ``radon``/``iradon``.
At 256² and 512² slow peers see fewer images (`--peer-images`) — throughput is per image.

Memory: ``--memory`` builds a 512², 720-view operator in a fresh subprocess (cold disk
cache) and applies it to 4 images, reporting build time and peak RSS.

Run with the peer venv (see ../shared/anchors/setup.sh), invmap installed into it:

    /tmp/anchors-venv/bin/python benchmarks/tomography.py --memory
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

# On a shared, oversubscribed CPU, OpenMP threads that spin while waiting (the default)
# slow every 2-thread torch/MKL kernel by up to 30× and make the numbers meaningless;
# passive waiting is set before torch is imported (for every library alike). Override
# with OMP_WAIT_POLICY=ACTIVE to measure the default behaviour.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

warnings.filterwarnings("ignore")


def interleaved(cases: list[dict], reps: int) -> list[tuple]:
    """Time every case's forward and adjoint once per round, `reps` rounds (after a warm-up).

    Interleaving makes all libraries see the same background load on a shared CPU; the
    median over rounds is reported.
    """
    for c in cases:
        c["fwd"](), c["adj"]()
    times = {id(c): ([], []) for c in cases}
    for _ in range(reps):
        for c in cases:
            for k, fn in enumerate((c["fwd"], c["adj"])):
                t = time.perf_counter()
                fn()
                times[id(c)][k].append(time.perf_counter() - t)
    return [(c["name"], c["n"] / statistics.median(times[id(c)][0]), c["n"] / statistics.median(times[id(c)][1]),
             c["note"]) for c in cases]


def bench(N: int, A: int, B: int, reps: int, peer_images: int, threads: int) -> list[tuple]:
    import torch

    torch.set_num_threads(threads)
    import invmap.operators as ops
    from invmap.variational import fbp

    rng = np.random.default_rng(0)
    X = rng.random((B, N, N)).astype(np.float32)
    theta = np.linspace(0, 180, A, endpoint=False)
    det = int(math.ceil(N * math.sqrt(2))) + 1
    cases, skipped = [], []
    torch.set_grad_enabled(False)

    t = time.perf_counter()
    K = ops.build("tomography", image_shape=(N, N), angles=A, detectors=det)
    build = time.perf_counter() - t
    xt = torch.from_numpy(X)[:, None]
    y = K(xt)
    t = time.perf_counter()
    fbp(y, K)
    fbp_first = time.perf_counter() - t
    t = time.perf_counter()
    fbp(y, K)
    fbp_s = time.perf_counter() - t
    cases.append(dict(name="invmap tomography", n=B, fwd=lambda: K(xt), adj=lambda: K.adjoint(y),
                      note=f"build {build:.2f} s (cold), {K.nnz() / 1e6:.1f}M stored entries; "
                           f"FBP {B / fbp_s:.0f} img/s (first call {fbp_first:.2f} s)"))

    try:
        import deepinv as dinv

        nb = B if N <= 128 else min(B, peer_images)
        p = dinv.physics.Tomography(angles=torch.tensor(theta, dtype=torch.float32), img_width=N, circle=False,
                                    normalize=False)
        xd = xt[:nb]
        yd = p.A(xd)
        cases.append(dict(name="deepinv.Tomography", n=nb, fwd=lambda: p.A(xd), adj=lambda: p.A_adjoint(yd),
                          note=f"batch of {nb}"))
        from invmap.interop import to_deepinv

        bridged = to_deepinv(K)  # what a deepinv user gets in one call: invmap's projector as LinearPhysics
        yb = bridged.A(xt)
        cases.append(dict(name="invmap via deepinv bridge (to_deepinv)", n=B, fwd=lambda: bridged.A(xt),
                          adj=lambda: bridged.A_adjoint(yb), note=f"batch of {B}; a deepinv LinearPhysics"))
    except Exception as e:  # noqa: BLE001 - a missing/broken peer is reported, not fatal
        skipped.append(("deepinv.Tomography", None, None, f"skipped: {str(e)[:50]}"))

    try:
        import astra

        nb = B if N <= 128 else min(B, peer_images)
        vol = astra.create_vol_geom(N, N)
        proj = astra.create_proj_geom("parallel", 1.0, det, np.deg2rad(theta))
        for kind in ("linear", "strip"):
            pid = astra.create_projector(kind, proj, vol)
            _, S = astra.create_sino(X[0], pid)

            def fwd(pid=pid, nb=nb):
                for x in X[:nb]:
                    i, _ = astra.create_sino(x, pid)
                    astra.data2d.delete(i)

            def bwd(pid=pid, nb=nb, S=S):
                for _ in range(nb):
                    i, _ = astra.create_backprojection(S, pid)
                    astra.data2d.delete(i)

            cases.append(dict(name=f"ASTRA CPU {kind}", n=nb, fwd=fwd, adj=bwd, note=f"{nb} images, one call each"))
    except Exception as e:  # noqa: BLE001
        skipped.append(("ASTRA CPU", None, None, f"skipped: {str(e)[:50]}"))

    try:
        from skimage.transform import iradon, radon

        nb = 2 if N <= 128 else 1
        sino = [radon(x, theta, circle=False) for x in X[:nb]]
        cases.append(dict(name="scikit-image radon/iradon", n=nb,
                          fwd=lambda: [radon(x, theta, circle=False) for x in X[:nb]],
                          adj=lambda: [iradon(s, theta, filter_name=None, circle=False) for s in sino],
                          note=f"{nb} image(s), one call each"))
    except Exception as e:  # noqa: BLE001
        skipped.append(("scikit-image", None, None, f"skipped: {str(e)[:50]}"))
    return interleaved(cases, reps) + skipped


def print_table(N: int, A: int, B: int, rows: list[tuple]) -> None:
    print(f"\n### {N}×{N}, {A} views, batch {B} (images/s; ratio = invmap ÷ peer)\n")
    print("| method | forward img/s | adjoint img/s | invmap fwd ratio | invmap adj ratio | note |")
    print("|---|---:|---:|---:|---:|---|")
    f0, a0 = rows[0][1], rows[0][2]
    for name, f, a, note in rows:
        fs = f"{f:.1f}" if f else "—"
        as_ = f"{a:.1f}" if a else "—"
        rf = f"{f0 / f:.1f}×" if f else "—"
        ra = f"{a0 / a:.1f}×" if a else "—"
        print(f"| {name} | {fs} | {as_} | {rf} | {ra} | {note} |")
    sys.stdout.flush()


MEMORY_CHILD = r"""
import json, os, resource, sys, time


def peak_gib():
    # VmHWM (peak RSS of this process image; unlike ru_maxrss it is not inherited from the
    # parent across fork+exec), falling back to ru_maxrss off Linux
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


import torch
torch.set_num_threads(int(sys.argv[1]))
import invmap.operators as ops
t = time.perf_counter()
K = ops.build("tomography", image_shape=(512, 512), angles=720)
build = time.perf_counter() - t
rss_build = peak_gib()
x = torch.rand(4, 1, 512, 512)
t = time.perf_counter(); y = K(x); tf = time.perf_counter() - t
t = time.perf_counter(); z = K.adjoint(y); ta = time.perf_counter() - t
t = time.perf_counter(); K2 = ops.build("tomography", image_shape=(512, 512), angles=720); again = time.perf_counter() - t
print(json.dumps(dict(build_s=build, rss_build_gib=rss_build, fwd_img_s=4 / tf, adj_img_s=4 / ta, nnz=K.nnz(),
                      rebuild_s=again, rss_gib=peak_gib())))
"""


def memory(threads: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, INVMAP_CACHE_DIR=d)
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(threads)], env=env, capture_output=True,
                             text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        t = time.perf_counter()
        out2 = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(threads)], env=env, capture_output=True,
                              text=True, check=True).stdout
        r2 = json.loads(out2.strip().splitlines()[-1])
    print("\n### Memory: 512×512, 720 views (fresh process, cold then warm disk cache)\n")
    print(f"- stored entries (one view of each θ/θ+90° pair, A and Aᵀ): {r['nnz'] / 1e6:.0f}M")
    print(f"- cold build {r['build_s']:.1f} s, peak RSS after build {r['rss_build_gib']:.2f} GiB, "
          f"after forward+adjoint of 4 images {r['rss_gib']:.2f} GiB")
    print(f"- forward {r['fwd_img_s']:.1f} img/s, adjoint {r['adj_img_s']:.1f} img/s (batch 4)")
    print(f"- second build in the same process (memory cache) {r['rebuild_s'] * 1e3:.1f} ms; "
          f"new process with the disk cache: build {r2['build_s']:.1f} s, peak RSS {r2['rss_gib']:.2f} GiB "
          f"(wall {time.perf_counter() - t:.0f} s incl. torch import)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128:180:16,256:360:16,512:360:8", help="N:views:batch,...")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-images", type=int, default=4, help="images per call for slow peers at N > 128")
    ap.add_argument("--memory", action="store_true", help="also measure the 512², 720-view build (peak RSS)")
    args = ap.parse_args()
    if "INVMAP_CACHE_DIR" not in os.environ:  # cold disk cache, removed at the end
        tmp = tempfile.TemporaryDirectory(prefix="invmap-bench-")
        os.environ["INVMAP_CACHE_DIR"] = tmp.name
    import torch

    print(f"# invmap tomography benchmark — torch {torch.__version__}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for spec in filter(None, args.sizes.split(",")):
        N, A, B = (int(v) for v in spec.split(":"))
        print_table(N, A, B, bench(N, A, B, args.reps, args.peer_images, args.threads))
    if args.memory:
        memory(args.threads)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
