"""The ``cgls`` method: CGLS on ½‖K x − y‖² + (damp/2)‖x‖², stopped by its iteration count or
the discrepancy principle (the solver and its math: `invmap.solvers.cgls`)."""

from __future__ import annotations

from ..solvers.cgls import CGLS
from .methods import METHODS, Method, check_iters, noise_norm


# ------------------------------------------------------------- the registered method
@METHODS.register("cgls")
class CGLSMethod(Method):
    """CGLS on ½‖Kx − y‖² + (damp/2)‖x‖², stopped by iterations or the discrepancy principle."""

    iters_param = "iters"
    tune_param = None

    def __init__(self, iters: int = 30, damp: float = 0.0, tau: float | None = None,
                 delta: float | None = None, tol: float = 1e-10):
        super().__init__()
        check_iters("cgls", iters)
        if tau is not None and tau <= 0:
            raise ValueError(f"cgls: tau must be > 0, got {tau}")
        self.iters, self.damp, self.tau, self.delta, self.tol = iters, damp, tau, delta, tol

    def _run(self, y, physics, x0, callback):
        delta = None
        if self.tau is not None:
            delta = self.delta if self.delta is not None else noise_norm(y, physics)
            if delta is None:
                raise ValueError("cgls: the discrepancy principle (tau) needs a noise level: "
                                 "give delta or a gaussian noise model with a fixed sigma")
        s = CGLS(physics.operator, y, x0=x0, max_iter=self.iters, damp=self.damp, tol=self.tol,
                 delta=delta, tau=self.tau or 1.0)
        x = self._solve(s, callback)
        self.stopped_at = s.iter
        return x

    def default_grid(self, physics, y):
        return {"iters": [1, 2, 3, 5, 8, 12, 20, 30, 50]}
