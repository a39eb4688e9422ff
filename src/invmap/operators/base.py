"""The linear operator K of the forward model y = K x + e.

A `LinearOperator` maps images x shaped ``[B, C, *in_shape]`` to measurements
y shaped ``[B, C, *out_shape]`` (real or complex) and back through its adjoint
Kᵀ, defined for the real inner product

    <K x, y> = <x, Kᵀ y>,   <a, b> = Re Σ conj(a) b.

Subclasses implement `_forward` and `_adjoint` on tensors whose trailing
dimensions already match; the public `forward` / `adjoint` check shapes and
finiteness and raise a `ValueError` that names the expected and given shape
(an empty batch is a `ValueError` too). Inputs are float32/float64 (complex for
complex measurements): float16/bfloat16 inputs are computed in float32 and give a
float32 result (sparse CT products and FFTs have no half-precision CPU path);
integer, boolean or complex images, complex measurements of a real operator and
tensors on the meta device (no data) are a `TypeError`.

Operators whose `_forward` is not plain differentiable torch code (sparse
matrices, custom kernels) set ``grad_via_adjoint = True``: autograd then uses
the explicit adjoint Kᵀ as the backward of K (and K as the backward of Kᵀ).

Algebra: ``A @ B`` (composition, x ↦ A(B x)), ``A + B``, ``A - B``, ``c * A``,
``-A`` and ``A.T`` each build their own adjoint and check shapes when built.

An operator says what it can do instead of being recognised by a name: ``spec()``
(enough to rebuild it, composites of the algebra included; `invmap.operators.from_spec`),
``fbp_geometry()`` (a CT geometry when a filtered back-projection exists),
``geometry_params`` / ``calibration_params`` / ``pixel_params`` (which of its parameters
describe the acquisition, can be miscalibrated, are lengths in pixels),
``estimate_calibration(y)`` (the calibration parameters that measurements alone reveal,
e.g. a CT detector offset; `CalibrationEstimate`) and ``stress_axes()`` (the
operator-specific shifts of the stress study, see `invmap.operators.axes`),
``transform_groups()`` (the groups equivariant imaging may draw from) and ``split_units()`` /
``restricted(keep)`` (what measurement splitting may divide y into; `invmap.selfsup`);
``capabilities()`` sums them up.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .numbers import remembered as remembered_on_disk

Shape = tuple[int, ...]

#: When True (default), `forward`/`adjoint` reject NaN/Inf inputs held on the CPU. Tensors on
#: an accelerator are not checked per call (the check would wait for the device on every
#: iteration of every solver), nor are tensors traced by torch.func transforms (``vmap``
#: cannot branch on data); the data entry points (`invmap.noise`, `PairDataset`) check those.
CHECK_FINITE = True


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real inner product Re Σ conj(a)·b over all entries (a scalar tensor)."""
    if a.is_complex() or b.is_complex():
        return torch.sum((a.conj() * b).real) if a.is_complex() else torch.sum(a * b.real)
    return torch.sum(a * b)


def jsonable(v: Any) -> Any:
    """`v` with tensors / numpy arrays and scalars turned into JSON values (lists, floats)."""
    import numpy as np

    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


#: how `invmap.operators.from_spec` rebuilds the composites of the algebra from their parts
ALGEBRA = {
    "compose": lambda d, parts: parts[0] @ parts[1],
    "sum": lambda d, parts: parts[0] + parts[1],
    "scale": lambda d, parts: float(d["factor"]) * parts[0],
    "adjoint": lambda d, parts: parts[0].T,
}


def operator_of(physics) -> "LinearOperator":
    """K of the measurement y = K x + e: the ``operator`` a `invmap.physics.Physics` holds, or K
    itself when given a bare operator (the one place this is read). None is refused in one line:
    a method is called as x̂ = method(y, physics)."""
    if physics is None:
        raise ValueError("this reconstructor needs the physics: call it as method(y, physics)")
    return getattr(physics, "operator", physics)


def _shape_str(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


class _GradViaAdjoint(torch.autograd.Function):
    """y = K x with backward x̄ = Kᵀ ȳ (or the transpose, with ``transpose=True``).

    Written in the ``setup_context`` form with an explicit ``vmap`` rule, so that
    ``torch.func.grad`` / ``vjp`` / ``jacrev`` and ``torch.vmap`` work through operators
    whose ``_forward`` is not differentiable torch code (sparse matrices).
    """

    @staticmethod
    def forward(x: torch.Tensor, op: "LinearOperator", transpose: bool) -> torch.Tensor:  # type: ignore[override]
        with torch.no_grad():
            return op._adjoint(x) if transpose else op._forward(x)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        _, ctx.op, ctx.transpose = inputs

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        op = ctx.op
        gx = op.forward(g) if ctx.transpose else op.adjoint(g)
        return gx, None, None

    @staticmethod
    def vmap(info, in_dims, x: torch.Tensor, op: "LinearOperator", transpose: bool):
        """K acts on the trailing axes only: a vmapped axis is one more leading batch axis."""
        return _GradViaAdjoint.apply(x.movedim(in_dims[0], 0), op, transpose), 0


_is_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None)


def _under_transform(t: torch.Tensor) -> bool:
    """True when `t` is traced by a torch.func transform (vmap, grad, jvp…)."""
    return bool(_is_wrapped(t)) if _is_wrapped is not None else False


def all_finite(t: torch.Tensor) -> bool:
    """True when every entry of `t` is finite. A sum is finite only if every term is, so one
    reduction settles the common case; a non-finite sum (also an overflow of finite values)
    is decided entry by entry. (``isfinite(t).all()`` alone cost more than a blur K x.)"""
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def top_eigenvalue(normal: Callable[[torch.Tensor], torch.Tensor], shape: Sequence[int], tol: float = 1e-8,
                   max_iter: int = 1000, seed: int = 0, dtype: torch.dtype = torch.float64,
                   device: str | torch.device = "cpu") -> float:
    """Largest eigenvalue of a symmetric positive semi-definite map A (e.g. A = KᵀK), from above.

    Lanczos iteration (scipy's ``eigsh``, ARPACK) from a seeded random start runs until the
    Ritz pair (θ, v) has relative residual ‖A v − θ v‖ ≤ tol·θ, or `max_iter` restarts.
    The power method is not used: on blurs, whose top eigenvalues cluster near λ_max, it
    converges like 1/k and stops 1–3% low after 50 steps. θ bounds λ_max from below, and
    the residual bounds its distance to an eigenvalue, so the value returned is θ·(1 + tol).
    Maps on fewer than `_DENSE_SIZE` unknowns are diagonalised densely.
    """
    import numpy as np
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator as ScipyOperator, eigsh

    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)

    def apply(v: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)).to(device=device, dtype=dtype)
        with torch.no_grad():
            out = normal(t.reshape(shape))
        return out.reshape(-1).to("cpu", torch.float64).numpy()

    if n <= _DENSE_SIZE:
        M = np.stack([apply(e) for e in np.eye(n)], 1)
        return float(max(np.linalg.eigvalsh(0.5 * (M + M.T))[-1], 0.0))
    v0 = np.random.default_rng(seed).standard_normal(n)
    op = ScipyOperator((n, n), matvec=apply, dtype=np.float64)
    try:
        theta = float(eigsh(op, k=1, which="LA", v0=v0, tol=tol, maxiter=max_iter, return_eigenvectors=False)[0])
    except ArpackNoConvergence as e:  # keep the best Ritz value found, if any
        if len(e.eigenvalues) == 0:
            raise ValueError(f"norm: Lanczos did not converge in {max_iter} restarts") from e
        theta = float(e.eigenvalues[0])
    return max(theta, 0.0) * (1.0 + tol)


#: numbers `LinearOperator.remembered` computed, by (spec digest, what); the newest kept
_REMEMBERED: OrderedDict[tuple, float] = OrderedDict()
_REMEMBERED_MAX = 512

#: below this many unknowns `top_eigenvalue` uses a dense symmetric eigensolver
_DENSE_SIZE = 64


@dataclass
class CalibrationEstimate:
    """A calibration parameter estimated from measurements alone, per sample: ``value`` and its
    standard error ``stderr`` (tensors ``[B]``, float64, NaN where the data allow no
    estimate) against the operator's ``nominal`` value."""

    value: torch.Tensor
    stderr: torch.Tensor
    nominal: float

    @property
    def z(self) -> torch.Tensor:
        """|value − nominal| / stderr per sample (0 where there is no estimate: no evidence)."""
        z = (self.value - self.nominal).abs() / self.stderr
        return torch.where(torch.isfinite(z), z, torch.zeros_like(z))


class LinearOperator:
    """Base class for K: R^{in_shape} → R^{out_shape} (or C^{out_shape}).

    Attributes
    ----------
    in_shape, out_shape:
        Trailing (per-channel) shapes of image and measurement, e.g.
        ``(H, W)`` and ``(angles, detectors)``.
    complex_output:
        True when measurements are complex (MRI k-space).
    grad_via_adjoint:
        Use the explicit adjoint for autograd instead of differentiating `_forward`.
    """

    grad_via_adjoint: bool = False
    complex_output: bool = False
    #: the registry name (set when the class is registered; None for unregistered helpers)
    name: str | None = None
    #: parameters describing the acquisition geometry (a geometry shift moves one of them)
    geometry_params: tuple[str, ...] = ()
    #: parameters a calibration error can move (K_sim ≠ K in the stress study)
    calibration_params: tuple[str, ...] = ()
    #: parameters that are lengths in pixels (× f on an f× finer grid)
    pixel_params: tuple[str, ...] = ()
    #: calibration parameters `estimate_calibration` reads from measurements alone
    estimable_params: tuple[str, ...] = ()
    complex_input: bool = False  # True for Kᵀ of a complex-output K (its "images" are measurements)

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]):
        self.in_shape: Shape = tuple(int(s) for s in in_shape)
        self.out_shape: Shape = tuple(int(s) for s in out_shape)
        self._norm: float | None = None
        self._cache: dict = {}

    # ------------------------------------------------------------------ core
    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y = K x for x shaped ``[..., *in_shape]``."""
        x = self._check(x, self.in_shape, "image", self.complex_input)
        if self.grad_via_adjoint:
            return _GradViaAdjoint.apply(x, self, False)
        return self._forward(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """x = Kᵀ y for y shaped ``[..., *out_shape]``."""
        y = self._check(y, self.out_shape, "measurement", self.complex_output)
        if self.grad_via_adjoint:
            return _GradViaAdjoint.apply(y, self, True)
        return self._adjoint(y)

    __call__ = forward

    def _check(self, t: torch.Tensor, shape: Shape, what: str, complex_ok: bool = False) -> torch.Tensor:
        """`t` checked (type, dtype, device, shape, finite), half precision raised to float32."""
        name = type(self).__name__
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor {what}, got {type(t).__name__}")
        if t.device.type == "meta":
            raise TypeError(f"{name}: the {what} is on the meta device (shapes only, no data)")
        if t.is_complex() and not complex_ok:
            raise TypeError(f"{name}: expected a real {what}, got {t.dtype}")
        if not (t.is_floating_point() or t.is_complex()):
            raise TypeError(f"{name}: expected a floating-point {what} (float32 or float64), got {t.dtype}")
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        n = len(shape)
        if t.dim() < n or tuple(t.shape[-n:]) != shape:
            raise ValueError(
                f"{type(self).__name__}: {what} shape mismatch: expected [..., {_shape_str(shape)[1:-1]}], "
                f"got {_shape_str(t.shape)}"
            )
        if t.dim() > n and t.numel() == 0:
            raise ValueError(f"{name}: empty {what} batch {_shape_str(t.shape)}: nothing to compute")
        if CHECK_FINITE and t.device.type == "cpu" and not _under_transform(t) and not all_finite(t):
            raise ValueError(f"{name}: {what} contains NaN or Inf values")
        return t

    # --------------------------------------------------------------- helpers
    def buffer(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A stored tensor attribute `name`, moved to `like`'s device and (real) dtype, cached."""
        base: torch.Tensor = getattr(self, name)
        dtype = base.dtype
        if base.is_floating_point():
            dtype = like.real.dtype if like.is_complex() else like.dtype
        elif base.is_complex():
            dtype = torch.complex128 if (like.dtype in (torch.float64, torch.complex128)) else torch.complex64
        key = (name, like.device, dtype)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not base:
            hit = (base, base.to(device=like.device, dtype=dtype))
            self._cache[key] = hit
        return hit[1]

    def norm(self, tol: float = 1e-8, max_iter: int = 1000, seed: int = 0,
             dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> float:
        """Spectral norm ‖K‖₂ = sqrt(λ_max(KᵀK)), estimated from above (cached).

        λ_max is found by Lanczos iteration on KᵀK (`top_eigenvalue`) converged to the
        relative eigen-residual `tol`; the returned value sqrt(θ(1 + tol)) is not below ‖K‖
        up to that tolerance, so a step size 1/‖K‖² computed from it is a safe one.
        """
        if self._norm is None:
            self._norm = self.remembered(("norm", tol, max_iter, seed, str(dtype)), lambda: math.sqrt(top_eigenvalue(
                lambda v: self._adjoint(self._forward(v)), (1, 1) + self.in_shape, tol=tol, max_iter=max_iter,
                seed=seed, dtype=dtype, device=device)))
        return self._norm

    def remembered(self, what: tuple, compute: Callable[[], float]) -> float:
        """A number that depends on K alone (‖K‖, a step size), computed once per process for
        every operator with the same spec: the stress study rebuilds one K at many levels (noise,
        object class) and each build would otherwise repeat the same Lanczos iteration. An
        operator without a spec (unregistered) caches on itself only. An operator that names a
        `numbers_file` keeps them there for the next process too (`invmap.operators.numbers`)."""
        key = self._spec_digest()
        if key is None:
            hit = self._cache.get(what)
            if hit is None:
                hit = self._cache[what] = compute()
            return hit
        full = (key, what)
        if full not in _REMEMBERED:
            path = self.numbers_file()
            _REMEMBERED[full] = compute() if path is None else remembered_on_disk(path, (key, *what), compute)
            while len(_REMEMBERED) > _REMEMBERED_MAX:
                _REMEMBERED.popitem(last=False)
        return _REMEMBERED[full]

    def numbers_file(self) -> Path | None:
        """The file that keeps the numbers `remembered` for this K across processes, or None (the
        default: each process computes its own). An operator whose matrix is cached on disk keeps
        them beside it, under the same key."""
        return None

    def _spec_digest(self) -> str | None:
        if "spec_digest" not in self._cache:
            try:
                text = json.dumps(self.spec(), sort_keys=True, default=str)
            except (ValueError, TypeError):
                text = None
            self._cache["spec_digest"] = None if text is None else hashlib.sha256(text.encode()).hexdigest()
        return self._cache["spec_digest"]

    def measured(self) -> torch.Tensor | None:
        """Boolean mask shaped ``out_shape`` of the entries of y that K measures, or None (all).

        Operators whose measurement keeps the shape of a full grid but samples only part of
        it (MRI k-space lines, inpainting pixels) return their mask: noise is drawn on these
        entries only, so y stays exactly 0 elsewhere, and relative noise levels are measured
        over them.
        """
        return None

    def transform_groups(self) -> tuple[str, ...]:
        """The transform groups {T_g} under which the images K is built for stay images of the same
        kind (x ∈ X ⇒ T_g x ∈ X): what equivariant imaging (`invmap.selfsup`) may draw g from.
        Names of `invmap.selfsup.transforms.GROUPS`; none here (a matrix knows nothing of images)."""
        return ()

    def _image_groups(self, shifts: bool = False) -> tuple[str, ...]:
        """Rotations by 90° (square images only) and flips, and circular shifts when K commutes
        with them (K T_g = T_g K): the groups of an operator on a pixel grid."""
        square = len(self.in_shape) == 2 and self.in_shape[0] == self.in_shape[1]
        return ("rotations",) * square + ("flips",) + ("shifts",) * shifts

    def split_units(self) -> torch.Tensor | None:
        """Measurement splitting (`invmap.selfsup`): a long tensor shaped ``out_shape`` giving each
        entry of y the unit it belongs to (a CT view, a sampled MRI line, an observed pixel), −1
        for entries never measured; None when K has nothing to split (every entry of y sees the
        whole image through one kernel: blur, identity, a dense matrix)."""
        return None

    def restricted(self, keep: torch.Tensor) -> tuple["LinearOperator", Callable[[torch.Tensor], torch.Tensor]]:
        """(K_S, take_S) for the units S of `split_units` where `keep` (bool, one per unit) is
        true: y_S = take_S(y) = K_S x + e_S. Here K_S = M_S K, the entries outside S set to 0
        (y keeps its shape); an operator with a cheaper restriction (CT: fewer views) overrides it."""
        units = self.split_units()
        if units is None:
            raise ValueError(f"{self.name or type(self).__name__} has no units to split its measurements into")
        entries = (units >= 0) & keep.to(torch.bool)[units.clamp_min(0)]
        return Masked(self, entries), lambda y: y * entries.to(y.device)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """KᵀK x."""
        return self.adjoint(self.forward(x))

    @property
    def T(self) -> "LinearOperator":
        return _Adjoint(self)

    def params(self) -> dict:
        """The construction parameters (JSON-serialisable), for manifests and saved models:
        ``type(self)(self.in_shape, **self.params())`` rebuilds K."""
        return dict(getattr(self, "_params", {}))

    @classmethod
    def resized_params(cls, params: dict, old_shape: Sequence[int], new_shape: Sequence[int]) -> dict:
        """The parameters of the same acquisition for images of `new_shape` (H, W), given the
        ones K has for `old_shape`: a parameter whose default follows the image size (a CT
        detector covering the image diagonal, fan-beam distances, a box in pixels) and that is
        at its default is set to the default for the new size; one stated otherwise is scaled
        as that default scales; every other parameter is kept. This base: none depends on the
        size (identity, blur, downsampling, MRI). `invmap.operators.resized_spec` applies it."""
        return dict(params)

    def spec(self) -> dict:
        """``{name, image_shape, params}``: enough to rebuild K (`invmap.operators.from_spec`)."""
        if self.name is None:
            raise ValueError(f"{type(self).__name__} is not a registered operator and has no spec")
        return {"name": self.name, "image_shape": list(self.in_shape), "params": jsonable(self.params())}

    # ----------------------------------------------------------- capabilities
    def fbp_geometry(self):
        """The CT geometry (`invmap.operators._geometry.Geometry`) FBP needs, or None: no FBP."""
        return None

    @property
    def has_fbp(self) -> bool:
        """True when a filtered back-projection `invmap.solvers.fbp` applies to K."""
        return self.fbp_geometry() is not None

    def estimate_calibration(self, y: torch.Tensor) -> dict[str, CalibrationEstimate]:
        """{parameter: `CalibrationEstimate`} for the `estimable_params` that the measurements
        y ``[B, C, *out_shape]`` reveal without the image (none by default)."""
        return {}

    def stress_axes(self) -> list:
        """The operator-specific shifts (`invmap.operators.axes.StressAxis`) of the stress study."""
        return []

    def capabilities(self) -> dict:
        """What K offers, by name: FBP, geometry / calibration / pixel-length / estimable parameters, stress axes."""
        return {"fbp": self.has_fbp, "geometry_params": list(self.geometry_params),
                "calibration_params": list(self.calibration_params), "pixel_params": list(self.pixel_params),
                "estimable_params": list(self.estimable_params),
                "stress_axes": [a.name for a in self.stress_axes()],
                "transform_groups": list(self.transform_groups()), "splits": self.split_units() is not None}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_shape_str(self.in_shape)} -> {_shape_str(self.out_shape)})"

    # ---------------------------------------------------------------- algebra
    def __matmul__(self, other: "LinearOperator") -> "LinearOperator":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Composition(self, other)

    def __add__(self, other: "LinearOperator") -> "LinearOperator":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Sum(self, other)

    def __sub__(self, other: "LinearOperator") -> "LinearOperator":
        return self + (-1.0) * other

    def __mul__(self, c: float) -> "LinearOperator":
        if isinstance(c, LinearOperator) or not isinstance(c, (int, float)):
            return NotImplemented
        if not math.isfinite(c):
            raise ValueError(f"cannot scale an operator by {c}: the factor must be a finite number")
        return _Scaled(self, float(c))

    __rmul__ = __mul__

    def __neg__(self) -> "LinearOperator":
        return _Scaled(self, -1.0)


class _Adjoint(LinearOperator):
    """Kᵀ as an operator; its adjoint is K."""

    def __init__(self, op: LinearOperator):
        super().__init__(op.out_shape, op.in_shape)
        self.op = op
        self.grad_via_adjoint = op.grad_via_adjoint
        self.complex_input = op.complex_output

    def _forward(self, y):
        return self.op._adjoint(y)

    def _adjoint(self, x):
        return self.op._forward(x)

    @property
    def T(self) -> LinearOperator:
        return self.op

    def norm(self, *args, **kwargs) -> float:
        return self.op.norm(*args, **kwargs)

    def spec(self) -> dict:
        return {"name": "adjoint", "parts": [self.op.spec()]}


class _Composition(LinearOperator):
    """(A @ B) x = A(B x); adjoint Bᵀ(Aᵀ y)."""

    def __init__(self, a: LinearOperator, b: LinearOperator):
        if a.in_shape != b.out_shape:
            raise ValueError(
                f"cannot compose: left operator takes {_shape_str(a.in_shape)}, "
                f"right operator gives {_shape_str(b.out_shape)}"
            )
        super().__init__(b.in_shape, a.out_shape)
        self.a, self.b = a, b
        self.complex_output = a.complex_output
        self.complex_input = b.complex_input
        self.grad_via_adjoint = a.grad_via_adjoint or b.grad_via_adjoint

    def spec(self) -> dict:
        return {"name": "compose", "parts": [self.a.spec(), self.b.spec()]}

    def measured(self) -> torch.Tensor | None:
        return self.a.measured()

    def _forward(self, x):
        return self.a._forward(self.b._forward(x))

    def _adjoint(self, y):
        return self.b._adjoint(self.a._adjoint(y))


class _Sum(LinearOperator):
    """(A + B) x = A x + B x; adjoint Aᵀy + Bᵀy."""

    def __init__(self, a: LinearOperator, b: LinearOperator):
        if a.in_shape != b.in_shape or a.out_shape != b.out_shape:
            raise ValueError(
                f"cannot add operators {_shape_str(a.in_shape)}->{_shape_str(a.out_shape)} and "
                f"{_shape_str(b.in_shape)}->{_shape_str(b.out_shape)}"
            )
        super().__init__(a.in_shape, a.out_shape)
        self.a, self.b = a, b
        self.complex_output = a.complex_output or b.complex_output
        self.complex_input = a.complex_input or b.complex_input
        self.grad_via_adjoint = a.grad_via_adjoint or b.grad_via_adjoint

    def spec(self) -> dict:
        return {"name": "sum", "parts": [self.a.spec(), self.b.spec()]}

    def measured(self) -> torch.Tensor | None:
        ma, mb = self.a.measured(), self.b.measured()
        return None if ma is None or mb is None else ma | mb

    def _forward(self, x):
        return self.a._forward(x) + self.b._forward(x)

    def _adjoint(self, y):
        return self.a._adjoint(y) + self.b._adjoint(y)


class _Scaled(LinearOperator):
    """(c·A) x = c·(A x); adjoint c·Aᵀ y (c real)."""

    def __init__(self, a: LinearOperator, c: float):
        super().__init__(a.in_shape, a.out_shape)
        self.a, self.c = a, c
        self.complex_output = a.complex_output
        self.complex_input = a.complex_input
        self.grad_via_adjoint = a.grad_via_adjoint

    def spec(self) -> dict:
        return {"name": "scale", "factor": self.c, "parts": [self.a.spec()]}

    def measured(self) -> torch.Tensor | None:
        return self.a.measured()

    def _forward(self, x):
        return self.c * self.a._forward(x)

    def _adjoint(self, y):
        return self.c * self.a._adjoint(y)

    def norm(self, *args, **kwargs) -> float:
        return abs(self.c) * self.a.norm(*args, **kwargs)


class Masked(LinearOperator):
    """M K: the entries of y outside the boolean mask M (shaped ``out_shape``) set to 0, y = M ⊙ K x;
    adjoint Kᵀ(M ⊙ y), ‖M K‖ ≤ ‖K‖ (the bound `norm` returns). The measured entries are M's
    (and K's own). Built by `LinearOperator.restricted` for measurement splitting; no spec."""

    def __init__(self, a: LinearOperator, mask: torch.Tensor):
        super().__init__(a.in_shape, a.out_shape)
        if tuple(mask.shape) != tuple(a.out_shape):
            raise ValueError(f"mask {_shape_str(mask.shape)} does not match the measurements {_shape_str(a.out_shape)}")
        self.a, self.mask = a, mask.to(torch.bool)
        self.complex_output = a.complex_output
        self.complex_input = a.complex_input
        self.grad_via_adjoint = a.grad_via_adjoint

    def spec(self) -> dict:
        raise ValueError("a masked operator (measurement splitting) has no spec")

    def measured(self) -> torch.Tensor:
        m = self.a.measured()
        return self.mask if m is None else self.mask & m

    def _forward(self, x):
        return self.a._forward(x) * self.mask.to(x.device)

    def _adjoint(self, y):
        return self.a._adjoint(y * self.mask.to(y.device))

    def norm(self, *args, **kwargs) -> float:
        return self.a.norm(*args, **kwargs)
