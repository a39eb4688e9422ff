"""An explicit dense matrix K ∈ R^{m × HW} acting on the flattened image (small problems).

    y = K vec(x),   Kᵀ y = reshape(Kᵀ y, (H, W)),

with vec the row-major (C-order) flattening of the ``H × W`` image; y has shape ``(m,)``.
Without a `matrix`, K has i.i.d. N(0, 1/m) entries (seeded), so E‖K x‖² = ‖x‖².
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .base import LinearOperator
from .registry import OPERATORS


@OPERATORS.register("matrix")
class Matrix(LinearOperator):
    """Explicit dense y = K x on the flattened image: a given `matrix` (m × H·W) or a seeded Gaussian one with `m` rows (default H·W/2)."""

    def __init__(self, image_shape: tuple[int, int],
                 matrix: list[list[float]] | np.ndarray | torch.Tensor | None = None,
                 m: int | None = None, seed: int = 0):
        H, W = (int(s) for s in image_shape)
        n = H * W
        if matrix is not None:
            K = torch.as_tensor(np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix,
                                           dtype=np.float64))
            if K.dim() != 2 or K.shape[1] != n or K.shape[0] < 1:
                raise ValueError(f"matrix: expected a matrix of shape (m, {n}) for a {H}x{W} image, "
                                 f"got shape {list(K.shape)}")
            if m is not None and m != K.shape[0]:
                raise ValueError(f"matrix: m={m} disagrees with the given matrix's {K.shape[0]} rows")
            if not bool(torch.isfinite(K).all()):
                raise ValueError("matrix: the given matrix contains NaN or Inf values")
            self._params = {"matrix": K.tolist()}
        else:
            m = max(1, n // 2) if m is None else int(m)
            if m < 1:
                raise ValueError(f"matrix: m must be >= 1, got {m}")
            g = torch.Generator().manual_seed(int(seed))
            K = torch.randn(m, n, generator=g, dtype=torch.float64) / m ** 0.5
            self._params = {"m": m, "seed": int(seed)}
        super().__init__((H, W), (K.shape[0],))
        self.matrix = K.contiguous()

    @classmethod
    def resized_params(cls, params: dict, old_shape: Sequence[int], new_shape: Sequence[int]) -> dict:
        """A seeded Gaussian K keeps its row fraction m / (H·W) (the default H·W/2 stays the default);
        a given matrix holds one image size and cannot be resized."""
        if "matrix" in params:
            raise ValueError(f"a given matrix K is defined for {old_shape[0]}x{old_shape[1]} images only; it cannot "
                             f"be rebuilt for {new_shape[0]}x{new_shape[1]}")
        p = dict(params)
        if p.get("m") is not None:
            n0, n1 = old_shape[0] * old_shape[1], new_shape[0] * new_shape[1]
            p["m"] = max(1, n1 // 2) if int(p["m"]) == max(1, n0 // 2) else max(1, round(int(p["m"]) * n1 / n0))
        return p

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(*x.shape[:-2], -1) @ self.buffer("matrix", x).T

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return (y @ self.buffer("matrix", y)).reshape(*y.shape[:-1], *self.in_shape)

    def norm(self, *args, **kwargs) -> float:
        """‖K‖₂ = sqrt(λ_max(K Kᵀ or KᵀK)): exact when min(m, n) ≤ 1024, else Lanczos (`top_eigenvalue`)."""
        if self._norm is None and min(self.matrix.shape) <= 1024:
            K = self.matrix
            gram = K @ K.T if K.shape[0] <= K.shape[1] else K.T @ K
            self._norm = float(torch.linalg.eigvalsh(gram)[-1].clamp_min(0).sqrt())
        return super().norm(*args, **kwargs)
