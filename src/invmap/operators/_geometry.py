"""CT geometry and the sparse system matrix of the tomography operators (Joseph's method).

Conventions (shared by `tomography`, `fanbeam` and `invmap.solvers.fbp`)
-----------------------------------------------------------------------------
* Pixels have unit size. Pixel ``(i, j)`` (row ``i`` counted downwards, column ``j``
  rightwards) has its centre at ``x = j - (W-1)/2``, ``y = (H-1)/2 - i``: the origin is the
  image centre, ``x`` points right, ``y`` points up.
* An angle θ (degrees) is measured counter-clockwise from the ``x`` axis. The detector
  axis is ``e(θ) = (cos θ, sin θ)`` and rays travel along ``e⊥(θ) = (-sin θ, cos θ)``;
  at θ = 0 a parallel projection sums each image column.
* Detector cell ``k`` of ``n`` has its centre at ``u_k = (k - (n-1)/2)·spacing + offset``
  along ``e(θ)``: increasing ``k`` is increasing ``u``.
* The scanner rotates about the point ``c = center`` (default the origin, the image
  centre), given in the same pixel coordinates.
* Parallel beam: ray ``k`` is the line ``{c + u_k e + t e⊥}``, i.e. all points with
  ``(p − c)·e(θ) = u_k``. With odd image sizes this is scikit-image's ``radon`` geometry;
  for even sizes scikit-image rotates about pixel ``(N//2, N//2)``, i.e. ``c = (½, −½)``
  (docs/CONVENTIONS.md gives the matching settings of ASTRA, scikit-image and deepinv).
* Fan beam (flat detector): the source sits at ``c − SO·e⊥(θ)``, the detector line at
  ``c + OD·e⊥(θ)`` with cell ``k`` at ``c + OD·e⊥ + u_k e``; ray ``k`` joins source and
  cell. As SO → ∞ it becomes the parallel ray of the same θ.

The system matrix
-----------------
Each ray is discretised by Joseph's method (ASTRA's ``linear`` projector): it is sampled
once per image row (if it is closer to vertical) or per column (otherwise); at each sample
the image is linearly interpolated between the two nearest pixels of that row/column and
weighted by the step length ``1/|d_row|``. The result is a sparse ``A`` with about
``1.8·H·W`` entries per view, built in chunks of rays (vectorised, bounded memory), held as
a CSR matrix (int32 column indices, float32 values) together with the CSR of ``Aᵀ``.
K x = A x and Kᵀ y = Aᵀ y are then *the same matrix*, so the adjoint is exact.

Matrices are cached in memory (keyed by a hash of the geometry) and, when the
environment variable ``INVMAP_CACHE_DIR`` is set or the default ``~/.cache/invmap`` is
writable, on disk as ``.npz`` (loaded with ``allow_pickle=False``) for matrices with at
least `MIN_DISK_NNZ` entries. ``INVMAP_CACHE_DIR=off`` disables the disk cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..files import check_regular

#: bump when the matrix construction changes (invalidates disk caches)
MATRIX_VERSION = 1
#: matrices smaller than this are not written to disk (they build in milliseconds)
MIN_DISK_NNZ = 2_000_000
#: ray samples per build chunk (bounds the temporary memory of the build)
CHUNK_SAMPLES = 2_000_000


@dataclass(frozen=True)
class Geometry:
    """A 2D CT geometry: image size, view angles (degrees), detector, and fan distances.

    ``source_distance`` (SO) is ``None`` for parallel beam.
    """

    height: int
    width: int
    angles: tuple[float, ...]
    detectors: int
    spacing: float
    source_distance: float | None = None
    detector_distance: float = 0.0
    offset: float = 0.0
    center: tuple[float, float] = (0.0, 0.0)

    @property
    def fan(self) -> bool:
        return self.source_distance is not None

    def key(self) -> str:
        d = asdict(self)
        d["angles"] = [float(np.float32(a)) for a in self.angles]
        if not any(self.center):  # keys of centred geometries are those of earlier versions
            del d["center"]
        d["version"] = MATRIX_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:24]

    def detector_positions(self) -> np.ndarray:
        n = self.detectors
        return (np.arange(n, dtype=np.float64) - (n - 1) / 2.0) * self.spacing + self.offset

    def rays(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Points ``p`` [R, 2] and unit directions ``d`` [R, 2] of rays start..stop-1.

        Ray index = view · detectors + cell.
        """
        n = self.detectors
        r = np.arange(start, stop)
        theta = np.deg2rad(np.asarray(self.angles, dtype=np.float64))[r // n]
        u = self.detector_positions()[r % n]
        e = np.stack([np.cos(theta), np.sin(theta)], 1)
        en = np.stack([-np.sin(theta), np.cos(theta)], 1)
        c = np.asarray(self.center, dtype=np.float64)[None, :]
        if not self.fan:
            return c + u[:, None] * e, en
        src = c - self.source_distance * en
        det = c + self.detector_distance * en + u[:, None] * e
        d = det - src
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return src, d


def _joseph_chunk(g: Geometry, start: int, stop: int, count_only: bool = False):
    """Joseph entries of rays start..stop-1: (counts per ray, cols, vals) in ray-major order."""
    H, W = g.height, g.width
    p, d = g.rays(start, stop)
    px, py = p[:, :1], p[:, 1:]
    dx, dy = d[:, :1], d[:, 1:]
    vert = np.abs(dy) >= np.abs(dx)  # step along rows
    L = max(H, W)
    k = np.arange(L, dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        sdy = np.where(vert, dy, 1.0)
        sdx = np.where(vert, 1.0, dx)
        # vertical: row i = k, fractional column c
        yv = (H - 1) / 2.0 - k
        c = px + (yv - py) / sdy * dx + (W - 1) / 2.0
        # horizontal: column j = k, fractional row r
        xh = k - (W - 1) / 2.0
        r = (H - 1) / 2.0 - (py + (xh - px) / sdx * dy)
    f = np.where(vert, c, r)
    np.nan_to_num(f, copy=False, nan=-10.0, posinf=-10.0, neginf=-10.0)
    f0 = np.floor(f)
    w = f - f0
    f0 = f0.astype(np.int64)
    kk = np.broadcast_to(k.astype(np.int64), f0.shape)
    nmax = np.where(vert, W, H)  # range of the interpolated index
    kmax = np.where(vert, H, W)  # range of the stepping index
    ok_k = kk < kmax
    v0 = ok_k & (f0 >= 0) & (f0 < nmax)
    v1 = ok_k & (f0 + 1 >= 0) & (f0 + 1 < nmax)
    valid = np.stack([v0, v1], 2)  # [R, L, 2]
    counts = valid.reshape(len(p), -1).sum(1)
    if count_only:
        return counts, None, None
    i0 = np.where(vert, kk, f0)
    j0 = np.where(vert, f0, kk)
    pix0 = i0 * W + j0
    pix1 = np.where(vert, pix0 + 1, pix0 + W)
    step = 1.0 / np.where(vert, np.abs(dy), np.abs(dx))
    cols = np.stack([pix0, pix1], 2)[valid].astype(np.int32)
    vals = (np.stack([(1.0 - w), w], 2) * step[:, :, None])[valid].astype(np.float32)
    return counts, cols, vals


def build_matrix(g: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays (crow int64, col int32, val float32) of A: rays × pixels, built in chunks."""
    R = len(g.angles) * g.detectors
    chunk = max(64, CHUNK_SAMPLES // max(g.height, g.width))
    counts = np.empty(R, dtype=np.int64)
    parts = []
    for s in range(0, R, chunk):
        e = min(s + chunk, R)
        counts[s:e], c, v = _joseph_chunk(g, s, e)
        parts.append((c, v))
    crow = np.zeros(R + 1, dtype=np.int64)
    np.cumsum(counts, out=crow[1:])
    nnz = int(crow[-1])
    col = np.empty(nnz, dtype=np.int32)
    val = np.empty(nnz, dtype=np.float32)
    pos = 0
    for i in range(len(parts)):  # copy and free chunk by chunk: peak ≈ one copy of A
        c, v = parts[i]
        parts[i] = None
        col[pos:pos + len(c)] = c
        val[pos:pos + len(c)] = v
        pos += len(c)
    return crow, col, val


def transpose_csr(crow: np.ndarray, col: np.ndarray, val: np.ndarray,
                  ncols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR arrays of Aᵀ (scipy's O(nnz) CSR → CSC conversion; rows sorted within each column)."""
    import scipy.sparse as sp

    small = len(col) < 2**31 - 1 and len(crow) < 2**31 - 1
    idx = np.int32 if small else np.int64
    A = sp.csr_matrix((val, col.astype(idx, copy=False), crow.astype(idx)), shape=(len(crow) - 1, ncols))
    T = A.tocsc()
    return T.indptr.astype(np.int64), T.indices.astype(np.int32, copy=False), T.data


# ------------------------------------------------------------------------- caching
_MEMORY: "OrderedDict[str, dict[str, np.ndarray]]" = OrderedDict()
#: the in-memory cache keeps recently used matrices up to this many bytes (the newest always)
MEMORY_CACHE_BYTES = 2 << 30
#: how many times `system_matrix` built a matrix from scratch (for tests)
BUILDS = {"count": 0}


def cache_dir() -> Path | None:
    """The disk cache folder: $INVMAP_CACHE_DIR, else ~/.cache/invmap; None if 'off'."""
    env = os.environ.get("INVMAP_CACHE_DIR")
    if env is not None and env.strip().lower() in ("", "off", "0", "none"):
        return None
    base = Path(env) if env else Path.home() / ".cache" / "invmap"
    return base / "tomography"


def _load(path: Path) -> dict[str, np.ndarray] | None:
    try:
        check_regular(path, "geometry cache")  # a FIFO or device in the cache: not used, recomputed
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError):  # FileNotFoundError is an OSError
        return None


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        atomic_write(path, lambda tmp: np.savez(tmp, **arrays))
    except OSError:  # a read-only home is not an error: the matrix is rebuilt next time
        pass


def system_matrix(g: Geometry, transpose: bool = True) -> dict[str, np.ndarray]:
    """A and Aᵀ as CSR arrays (crow, col, val, tcrow, tcol, tval), from memory, disk or a build.

    ``transpose=False`` leaves Aᵀ out until a later call asks for it (an operator that only
    simulates, e.g. a drawn fine-grid K of `invmap.distributions`, never transposes).
    """
    key = g.key()
    hit = _MEMORY.get(key)
    if hit is not None:
        _MEMORY.move_to_end(key)
        if transpose and "tcrow" not in hit:
            _add_transpose(hit, g)
        return hit
    folder = cache_dir()
    path = folder / f"{key}.npz" if folder is not None else None
    arrays = _load(path) if path is not None and path.exists() else None
    if arrays is None:
        BUILDS["count"] += 1
        crow, col, val = build_matrix(g)
        arrays = {"crow": crow, "col": col, "val": val}
        if transpose:
            _add_transpose(arrays, g)
        if path is not None and len(col) >= MIN_DISK_NNZ:
            _save(path, arrays)
    elif transpose and "tcrow" not in arrays:
        _add_transpose(arrays, g)
    _MEMORY[key] = arrays
    while len(_MEMORY) > 1 and sum(a.nbytes for m in _MEMORY.values() for a in m.values()) > MEMORY_CACHE_BYTES:
        _MEMORY.popitem(last=False)
    return arrays


def _add_transpose(arrays: dict[str, np.ndarray], g: Geometry) -> None:
    tcrow, tcol, tval = transpose_csr(arrays["crow"], arrays["col"], arrays["val"], g.height * g.width)
    arrays.update(tcrow=tcrow, tcol=tcol, tval=tval)


def clear_memory_cache() -> None:
    """Forget the in-memory matrices (the disk cache is kept)."""
    _MEMORY.clear()


def csr_tensor(crow: np.ndarray, col: np.ndarray, val: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR tensor sharing memory with the numpy arrays where possible."""
    idx_dtype = torch.int32 if len(col) < 2**31 - 1 else torch.int64
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(crow).to(idx_dtype), torch.from_numpy(col).to(idx_dtype),
            torch.from_numpy(val), size=shape, check_invariants=False)


def default_detectors(height: int, width: int, spacing: float, magnification: float = 1.0) -> int:
    """Cells covering the image diagonal (times the fan magnification) plus one."""
    return int(math.ceil(math.hypot(height, width) * magnification / spacing)) + 1
