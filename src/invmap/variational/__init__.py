"""Variational reconstruction: x̂ = argmin_x ½‖K x − y‖² + λ R(x), and FBP.

Every method is called like a trained network, ``x_hat = method(y, physics)``:

>>> import torch, invmap.operators as ops, invmap.variational as var
>>> from invmap.physics import Physics
>>> phys = Physics(ops.build("identity", image_shape=(16, 16)))
>>> x_hat = var.build("tv", lam=0.05, iters=50)(torch.rand(2, 1, 16, 16), phys)
>>> ", ".join(var.names()[:3])
'adjoint, cgls, fbp'

Solvers (readable loops with ``step()``/``solve()``/``history``): `GradientDescent`,
`CGLS`, `CG`, `Tikhonov`, `ChambollePockTV`, `FISTA`; proximable pieces in
`functionals`; `fbp(y, op)` for the tomography operators; `tune` picks λ / the
iteration count on validation pairs.
"""

from ..registry import import_submodules
from ..solvers.cgls import CG, CGLS
from . import functionals
from .fbp import fbp
from .fista import FISTA
from .functionals import Gradient, div, grad, grad_adjoint, tv
from .gd import GradientDescent
from .methods import METHODS, Method, build, names
from .pdhg import ChambollePockTV
from .tikhonov import Tikhonov
from .tune import tune

import_submodules(__name__)  # one module per method registers it (adjoint.py, pdhg.py's tv, pnp.py, …)


__all__ = ["METHODS", "Method", "build", "names", "tune", "fbp", "functionals", "grad", "grad_adjoint",
           "div", "tv", "Gradient", "GradientDescent", "CG", "CGLS", "Tikhonov", "ChambollePockTV", "FISTA"]
