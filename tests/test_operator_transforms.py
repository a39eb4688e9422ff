"""Operators under torch.func transforms (vmap, grad, vjp, jacrev) and the accuracy of
`norm()`, parametrized over the operator registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import invmap.operators as ops
from invmap.operators import inner

NAMES = ops.names()
SMALL = (12, 10)  # non-square: catches transposed H/W
JAC = (6, 5)  # jacrev builds the dense Jacobian


def _rand(shape, complex_: bool, g: torch.Generator) -> torch.Tensor:
    t = torch.randn(shape, generator=g, dtype=torch.float64)
    return torch.complex(t, torch.randn(shape, generator=g, dtype=torch.float64)) if complex_ else t


@pytest.mark.parametrize("name", NAMES)
def test_vmap_equals_the_batched_call(name, gen):
    """torch.vmap(K)(x) = K(x) and torch.vmap(Kᵀ)(y) = Kᵀ(y) over a leading batch axis."""
    op = ops.build(name, image_shape=SMALL)
    x = _rand((3, 1) + op.in_shape, False, gen)
    y = _rand((3, 1) + op.out_shape, op.complex_output, gen)
    torch.testing.assert_close(torch.vmap(op.forward)(x), op.forward(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(torch.vmap(op.adjoint)(y), op.adjoint(y), rtol=1e-12, atol=1e-12)
    # a batch axis that is not the first one
    xt = x.movedim(0, -1).contiguous()
    torch.testing.assert_close(torch.vmap(op.forward, in_dims=-1)(xt), op.forward(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_torch_func_grad_and_vjp_give_the_adjoint(name, gen):
    """∇_x Re<Kx, y> = Kᵀy and ∇_y Re<Kᵀy, x> = K x, through torch.func.grad and vjp."""
    op = ops.build(name, image_shape=SMALL)
    x = _rand((2, 1) + op.in_shape, False, gen)
    y = _rand((2, 1) + op.out_shape, op.complex_output, gen)
    gx = torch.func.grad(lambda t: inner(op.forward(t), y))(x)
    torch.testing.assert_close(gx, op.adjoint(y), rtol=1e-10, atol=1e-12)
    _, pull = torch.func.vjp(op.forward, x)
    torch.testing.assert_close(pull(y)[0], op.adjoint(y), rtol=1e-10, atol=1e-12)
    if not op.complex_output:  # Kᵀ takes a real measurement: differentiate through it too
        gy = torch.func.grad(lambda t: inner(op.adjoint(t), x))(y)
        torch.testing.assert_close(gy, op.forward(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_jacrev_is_the_dense_matrix(name):
    """torch.func.jacrev(K) (vmap over vjps) equals K applied to the basis images."""
    op = ops.build(name, image_shape=JAC)
    n = int(np.prod(op.in_shape))
    x = torch.zeros((1, 1) + op.in_shape, dtype=torch.float64)

    def real_forward(t):
        k = op.forward(t)
        return torch.view_as_real(k) if k.is_complex() else k

    J = torch.func.jacrev(real_forward)(x).reshape(-1, n)
    basis = torch.eye(n, dtype=torch.float64).reshape((n, 1) + op.in_shape)
    k = op.forward(basis)
    dense = (torch.view_as_real(k) if k.is_complex() else k).reshape(n, -1).T
    torch.testing.assert_close(J, dense, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("boundary", ["zero", "reflect", "circular"])
@pytest.mark.parametrize("params", [dict(kernel="gaussian", sigma=1.0), dict(kernel="gaussian", sigma=2.5),
                                    dict(kernel="motion", length=5.0, angle=30.0), dict(kernel="disk", radius=2.0)],
                         ids=["gauss1", "gauss2.5", "motion", "disk"])
def test_norm_is_not_below_the_svd_norm_on_blurs(params, boundary):
    """norm() ≥ σ_max(K) (dense SVD), and not above it by more than the stated tolerance."""
    op = ops.build("blur", image_shape=(20, 18), boundary=boundary, **params)
    n = 20 * 18
    K = op.forward(torch.eye(n, dtype=torch.float64).reshape(n, 1, 20, 18)).reshape(n, n).T
    s = float(torch.linalg.svdvals(K)[0])
    est = op.norm()
    assert est >= s * (1 - 1e-14)  # exact norms (circular: max |DFT h|) may sit at the SVD's rounding
    assert est <= s * (1 + 1e-6)


@pytest.mark.parametrize("boundary", ["zero", "reflect"])
def test_solver_steps_stay_inside_the_true_bound(boundary):
    """Gradient descent and FISTA step strictly inside 1/σ_max² of the dense SVD (with a margin),
    PDHG keeps στ‖[K; s∇]‖² < 1 — the steps no longer sit on the edge of divergence."""
    from invmap.variational.fista import FISTA
    from invmap.variational.gd import GradientDescent
    from invmap.variational.pdhg import ChambollePockTV
    from invmap.solvers.iterative import STEP_SAFETY

    n = 20
    op = ops.build("blur", image_shape=(n, n), boundary=boundary, sigma=1.0)
    K = op.forward(torch.eye(n * n, dtype=torch.float64).reshape(-1, 1, n, n)).reshape(n * n, -1).T
    s = float(torch.linalg.svdvals(K)[0])
    y = torch.zeros(1, 1, n, n, dtype=torch.float64)
    assert GradientDescent(op, y).tau * s ** 2 <= STEP_SAFETY < 1
    assert FISTA(op, y).step_size * s ** 2 <= STEP_SAFETY < 1
    pd = ChambollePockTV(op, y, lam=0.01)
    from invmap.variational.functionals import grad

    G = grad(torch.eye(n * n, dtype=torch.float64).reshape(-1, 1, n, n)).reshape(n * n, -1).T
    a = float(torch.linalg.svdvals(torch.cat([K, pd.s * G]))[0])
    assert pd.sigma * pd.tau * a ** 2 <= STEP_SAFETY < 1
