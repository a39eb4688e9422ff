"""Exact kernels for the blur y = K x = h ∗ x with a boundary condition, and their adjoints.

K = C E: E extends x (``[..., H, W]``) by the boundary condition (zero / reflect / circular) by
the PSF's half-widths, and C is the valid correlation with the flipped PSF; the exact
adjoint is Kᵀ = Eᵀ Cᵀ (Cᵀ: the "full" correlation with h; Eᵀ: every extended sample
added back onto the pixel it was copied from). `Convolution` computes the same K and Kᵀ
by one of three paths, each exact up to float rounding:

- ``conv``: torch's convolution of E x; a separable PSF h = u vᵀ (SVD rank one, σ₂ ≤ 1e-13 σ₁)
  is two 1-D passes, each with its own 1-D extension (E = E_H ⊗ E_W, C = C_u ⊗ C_v).
- ``fft``: the circular boundary only: K x = F⁻¹(ĝ · F x) with g the PSF wrapped onto the
  H×W grid (a periodic convolution, any PSF size), Kᵀ y = F⁻¹(conj(ĝ) · F y).
- ``fft-padded``: zero / reflect: the linear convolution of E x with h on an FFT grid of at
  least (H + kh − 1) × (W + kw − 1) (sizes 2^a 3^b), so nothing wraps, and its valid part;
  Kᵀ places y there, multiplies by conj(ĥ), keeps the full support and applies Eᵀ.

Unless a path is forced, each call takes the path of lowest estimated cost (`costs`) for
its number of images. E and Eᵀ are slices (``d c b a | a b c d`` for reflect) when the
extension is no wider than the image, a gather / scatter-add of pixel indices otherwise
(a PSF larger than the image). Everything is plain differentiable torch (no in-place
writes to inputs), so autograd, ``torch.vmap`` and ``torch.func`` through K give Kᵀ.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

#: the paths `Convolution` can take (see the module docstring)
PATHS = ("conv", "fft", "fft-padded")

# Cost model (ns per image pixel), measured with torch 2.13 on this project's Xeon CPU,
# float32, 128² images, one thread (the choice it makes is printed by benchmarks/blur.py):
#: one pass of the ``conv`` path outside the convolution (extension, padding, Eᵀ)
PASS_NS = 1.2
#: one tap of a single-image convolution (oneDNN's direct kernel; zero taps are not skipped)
CONV_TAP_NS = 0.35
#: a depthwise convolution over `DEPTHWISE_MIN` or more images: per pass, and per tap
DEPTHWISE_PASS_NS, DEPTHWISE_TAP_NS = 1.0, 0.03
#: rfft2 + product + irfft2 per pixel of the FFT grid and log2 of its size (2^a 3^b sizes)
FFT_NS = 0.22
#: the ``fft-padded`` path outside the FFTs (extension, zero padding, crop, Eᵀ)
FFT_PADDED_NS = 2.4
#: an FFT size with a prime factor above 5 (pocketFFT's Bluestein path) costs about this much more
SLOW_FFT_FACTOR = 3.0
#: from this many images on, `correlate` runs one grouped convolution with the images as channels
DEPTHWISE_MIN = 8
#: larger batches are computed this many images at a time, so that their arrays stay in cache
#: (64 images, 1×7 PSF, ``conv``: 205 µs per image in chunks of 16, 239 µs at once)
CHUNK = 16

#: a PSF whose second singular value is below this fraction of the first is rank one
SEPARABLE_RTOL = 1e-13


def extension_index(n: int, before: int, after: int, boundary: str) -> torch.Tensor:
    """Source index in ``[0, n]`` of each of the ``before + n + after`` extended samples.

    Index ``n`` points to an extra zero sample (``zero`` boundary).
    """
    i = torch.arange(-before, n + after)
    if boundary == "circular":
        return i % n
    if boundary == "reflect":
        m = i % (2 * n)
        return torch.where(m >= n, 2 * n - 1 - m, m)
    if boundary == "zero":
        return torch.where((i >= 0) & (i < n), i, torch.full_like(i, n))
    raise ValueError(f"blur: unknown boundary '{boundary}'; choose zero, reflect or circular")


def smooth(n: int, primes: tuple[int, ...] = (2, 3)) -> bool:
    """True when n's prime factors are all in `primes`."""
    for p in primes:
        while n % p == 0:
            n //= p
    return n == 1


def fast_fft_size(n: int) -> int:
    """The smallest m ≥ n of the form 2^a 3^b (torch's CPU FFTs are slower on odd sizes and 5s)."""
    m = max(int(n), 1)
    while not smooth(m):
        m += 1
    return m


class Extension:
    """E along one axis: ``n`` samples → ``before + n + after`` by the boundary condition, and Eᵀ."""

    def __init__(self, n: int, before: int, after: int, boundary: str):
        self.n, self.before, self.after, self.boundary = n, before, after, boundary
        self.sliced = boundary == "zero" or (before <= n and after <= n)
        self.index = None if self.sliced else extension_index(n, before, after, boundary)

    def apply(self, z: torch.Tensor, dim: int) -> torch.Tensor:
        """E z along `dim` (a negative axis)."""
        n, b, a = self.n, self.before, self.after
        if b == 0 and a == 0:
            return z
        if self.boundary == "zero":
            return F.pad(z, _pad_spec(dim, b, a))
        if not self.sliced:
            zz = F.pad(z, _pad_spec(dim, 0, 1))  # the extra zero sample at index n
            return zz.index_select(dim, self.index.to(z.device))
        if self.boundary == "reflect":
            parts = [z.narrow(dim, 0, b).flip(dim), z, z.narrow(dim, n - a, a).flip(dim)]
        else:  # circular
            parts = [z.narrow(dim, n - b, b), z, z.narrow(dim, 0, a)]
        return torch.cat(parts, dim)

    def adjoint(self, z: torch.Tensor, dim: int) -> torch.Tensor:
        """Eᵀ z along `dim`: each extended sample added back onto its source pixel."""
        n, b, a = self.n, self.before, self.after
        if b == 0 and a == 0:
            return z
        if self.boundary == "zero":
            return z.narrow(dim, b, n)
        if not self.sliced:
            shape = list(z.shape)
            shape[dim] = n + 1
            out = z.new_zeros(shape).index_add(dim, self.index.to(z.device), z)
            return out.narrow(dim, 0, n)
        out = z.narrow(dim, b, n).clone()
        left, right = z.narrow(dim, 0, b), z.narrow(dim, b + n, a)
        if self.boundary == "reflect":
            out.narrow(dim, 0, b).add_(left.flip(dim))
            out.narrow(dim, n - a, a).add_(right.flip(dim))
        else:  # circular
            out.narrow(dim, n - b, b).add_(left)
            out.narrow(dim, 0, a).add_(right)
        return out


def _pad_spec(dim: int, before: int, after: int) -> tuple[int, ...]:
    """`F.pad` widths that pad the negative axis `dim` only."""
    return (0, 0) * (-dim - 1) + (before, after)


def correlate(z: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Valid 2-D correlation of every image of ``z [..., Hz, Wz]`` with one kernel ``k [1, 1, kh, kw]``.

    From `DEPTHWISE_MIN` images on, the images are the channels of one grouped (depthwise)
    convolution, which oneDNN vectorises across channels; fewer images are convolved one at
    a time (torch's single-channel convolution of a batch of several images cost 4–5× more
    per image than of one image here).
    """
    lead, (hz, wz) = z.shape[:-2], z.shape[-2:]
    n = math.prod(lead)
    if n >= DEPTHWISE_MIN:
        out = F.conv2d(z.reshape(1, n, hz, wz), k.expand(n, 1, -1, -1), groups=n)
    else:
        zz = z.reshape(n, 1, hz, wz)
        out = torch.cat([F.conv2d(zz[i:i + 1], k) for i in range(n)]) if n > 1 else F.conv2d(zz, k)
    return out.reshape(*lead, *out.shape[-2:])


class _Pass:
    """One pass of the ``conv`` path: a (kh, kw) kernel with its extensions along both axes."""

    def __init__(self, k: np.ndarray, shape: tuple[int, int], boundary: str):
        kh, kw = k.shape
        H, W = shape
        ch, cw = kh // 2, kw // 2
        self.size = (kh, kw)
        self.ext = (Extension(H, kh - 1 - ch, ch, boundary), Extension(W, kw - 1 - cw, cw, boundary))
        # forward: correlation of E x with the flipped kernel; adjoint: of the full-padded y with k
        self.kernel = torch.from_numpy(np.ascontiguousarray(k)).reshape(1, 1, kh, kw)
        self.flipped = torch.from_numpy(np.ascontiguousarray(k[::-1, ::-1])).reshape(1, 1, kh, kw)
        self._cache: dict = {}

    def _on(self, name: str, like: torch.Tensor) -> torch.Tensor:
        key = (name, like.device, like.dtype)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = getattr(self, name).to(device=like.device, dtype=like.dtype)
        return hit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.ext[1].apply(self.ext[0].apply(x, -2), -1)
        return correlate(z, self._on("flipped", x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        kh, kw = self.size
        z = correlate(F.pad(y, (kw - 1, kw - 1, kh - 1, kh - 1)), self._on("kernel", y))
        return self.ext[0].adjoint(self.ext[1].adjoint(z, -1), -2)


def factors(psf: np.ndarray) -> list[np.ndarray]:
    """The passes of the ``conv`` path: ``[psf]``, or ``[u, vᵀ]`` (kh×1, 1×kw) for a rank-one PSF."""
    kh, kw = psf.shape
    if kh == 1 or kw == 1:
        return [psf]
    u, sv, vt = np.linalg.svd(psf)
    if sv[1] <= SEPARABLE_RTOL * sv[0]:  # separable: psf = u vᵀ
        s = np.sqrt(sv[0])
        return [(u[:, 0] * s).reshape(kh, 1), (vt[0] * s).reshape(1, kw)]
    return [psf]


def wrapped(psf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The PSF wrapped onto the periodic H×W grid with its centre at (0, 0):
    g[(a − ch) mod H, (b − cw) mod W] += h[a, b]."""
    H, W = shape
    kh, kw = psf.shape
    g = np.zeros((H, W))
    rows = (np.arange(kh) - kh // 2) % H
    cols = (np.arange(kw) - kw // 2) % W
    np.add.at(g, (rows[:, None], cols[None, :]), psf)
    return g


def _fft_ns(m: int, n: int) -> float:
    """Estimated ns of one FFT convolution on an m×n grid."""
    slow = 1.0 if smooth(m, (2, 3, 5)) and smooth(n, (2, 3, 5)) else SLOW_FFT_FACTOR
    return slow * FFT_NS * m * n * math.log2(max(m * n, 2))


def costs(psf: np.ndarray, shape: tuple[int, int], boundary: str, images: int = 1,
          passes: list[tuple[int, int]] | None = None) -> dict[str, float]:
    """Estimated ns per image of K x by each path open to this PSF and boundary, for a call on
    `images` images (`passes`: the kernel sizes of the ``conv`` path's passes, computed from
    the PSF when not given)."""
    H, W = shape
    kh, kw = psf.shape
    sizes = passes if passes is not None else [f.shape for f in factors(psf)]
    if min(images, CHUNK) >= DEPTHWISE_MIN:
        conv = sum(PASS_NS + DEPTHWISE_PASS_NS + DEPTHWISE_TAP_NS * a * b for a, b in sizes) * H * W
    else:
        conv = sum(PASS_NS + CONV_TAP_NS * a * b for a, b in sizes) * H * W
    if boundary == "circular":
        return {"conv": conv, "fft": _fft_ns(H, W)}
    grid = fast_fft_size(H + kh - 1), fast_fft_size(W + kw - 1)
    return {"conv": conv, "fft-padded": _fft_ns(*grid) + FFT_PADDED_NS * H * W}


def plan(psf: np.ndarray, shape: tuple[int, int], boundary: str, images: int = 1) -> str:
    """The path of lowest estimated cost (`costs`) for this PSF, image size, boundary and batch."""
    c = costs(psf, shape, boundary, images)
    return min(c, key=c.get)


class Convolution:
    """K x = h ∗ x with a boundary condition on ``[..., H, W]`` tensors, and Kᵀ.

    ``path=None`` takes `plan`'s choice for the number of images of each call; a named path
    is always taken. Every path gives the same K up to float rounding.
    """

    def __init__(self, psf: np.ndarray, shape: tuple[int, int], boundary: str, path: str | None = None):
        self.psf = np.asarray(psf, dtype=np.float64)
        self.shape = (int(shape[0]), int(shape[1]))
        self.boundary = boundary
        extension_index(1, 0, 0, boundary)  # validates the boundary name
        self._factors = factors(self.psf)
        self.open_paths = tuple(self._costs(1))
        if path is not None and path not in self.open_paths:
            raise ValueError(f"blur: path '{path}' does not apply to the {boundary} boundary; "
                             f"choose {', '.join(self.open_paths)}")
        self.path = path
        H, W = self.shape
        kh, kw = self.psf.shape
        self._ext = (Extension(H, kh - 1 - kh // 2, kh // 2, boundary),
                     Extension(W, kw - 1 - kw // 2, kw // 2, boundary))
        self._passes: list[_Pass] | None = None
        self._cache: dict = {}
        self._choice: dict[int, str] = {}

    def _costs(self, images: int) -> dict[str, float]:
        return costs(self.psf, self.shape, self.boundary, images, [f.shape for f in self._factors])

    def choose(self, images: int) -> str:
        """The path a call on `images` images takes."""
        if self.path is not None:
            return self.path
        hit = self._choice.get(images)
        if hit is None:
            c = self._costs(images)
            hit = min(c, key=c.get)
            if len(self._choice) < 256:
                self._choice[images] = hit
        return hit

    def _spectrum_like(self, t: torch.Tensor, path: str) -> torch.Tensor:
        """ĝ (``fft``) or ĥ on the padded grid (``fft-padded``) on `t`'s device, complex64 for
        float32 data and complex128 for float64 (cached)."""
        dtype = torch.complex128 if t.dtype == torch.float64 else torch.complex64
        key = (path, t.device, dtype)
        hit = self._cache.get(key)
        if hit is None:
            if path == "fft":
                spec = np.fft.rfft2(wrapped(self.psf, self.shape))
            else:
                spec = np.fft.rfft2(self.psf, s=self._grid(path))
            hit = self._cache[key] = torch.from_numpy(spec).to(device=t.device, dtype=dtype)
        return hit

    def _grid(self, path: str) -> tuple[int, int]:
        if path == "fft":
            return self.shape
        kh, kw = self.psf.shape
        return fast_fft_size(self.shape[0] + kh - 1), fast_fft_size(self.shape[1] + kw - 1)

    def _conv_passes(self) -> list[_Pass]:
        if self._passes is None:
            self._passes = [_Pass(f, self.shape, self.boundary) for f in self._factors]
        return self._passes

    def _chunked(self, apply, t: torch.Tensor) -> torch.Tensor:
        """`apply(chunk, path)` on at most `CHUNK` images at a time, each taking its chosen path."""
        lead = t.shape[:-2]
        n = math.prod(lead)
        if n <= CHUNK:
            return apply(t, self.choose(n))
        flat = t.reshape(n, *t.shape[-2:])
        out = torch.cat([apply(c, self.choose(c.shape[0])) for c in flat.split(CHUNK)])
        return out.reshape(*lead, *out.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = K x."""
        return self._chunked(self._forward, x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """x = Kᵀ y."""
        return self._chunked(self._adjoint, y)

    def _forward(self, x: torch.Tensor, path: str) -> torch.Tensor:
        if path == "conv":
            for p in self._conv_passes():
                x = p.forward(x)
            return x
        s, grid = self._spectrum_like(x, path), self._grid(path)
        if path == "fft":
            return torch.fft.irfft2(torch.fft.rfft2(x) * s, s=grid)
        H, W = self.shape
        kh, kw = self.psf.shape
        z = self._ext[1].apply(self._ext[0].apply(x, -2), -1)
        full = torch.fft.irfft2(torch.fft.rfft2(z, s=grid) * s, s=grid)
        return full[..., kh - 1:kh - 1 + H, kw - 1:kw - 1 + W]

    def _adjoint(self, y: torch.Tensor, path: str) -> torch.Tensor:
        if path == "conv":
            for p in reversed(self._conv_passes()):
                y = p.adjoint(y)
            return y
        s, grid = self._spectrum_like(y, path).conj(), self._grid(path)
        if path == "fft":
            return torch.fft.irfft2(torch.fft.rfft2(y) * s, s=grid)
        H, W = self.shape
        kh, kw = self.psf.shape
        M, N = grid
        z = F.pad(y, (kw - 1, N - W - kw + 1, kh - 1, M - H - kh + 1))
        full = torch.fft.irfft2(torch.fft.rfft2(z) * s, s=grid)[..., :H + kh - 1, :W + kw - 1]
        return self._ext[0].adjoint(self._ext[1].adjoint(full, -1), -2)
