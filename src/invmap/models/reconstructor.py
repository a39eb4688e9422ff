"""Learned reconstructors: `Reconstructor`, the base of every kind, and post-processing.

Every learned reconstructor is an ``nn.Module`` called ``x̂ = recon(y, physics)``. The
kinds (``invmap models`` lists them) differ in where K enters:

- ``post-processing`` (`LearnedReconstructor`, below): x̂ = f_θ(P(y, K)), K only in the
  parameter-free input P;
- model-based kinds (`invmap.models.unrolled`, ``lgd``, ``lpd``, ``unrolled``, ``pnp``):
  K and Kᵀ inside every iteration, read from `physics` at call time.

Training splits the call in two, ``recon(y, physics) = recon.from_input(recon.preprocess(y,
physics), physics)``: `preprocess` has no parameters and runs once per fixed pair (the
z-cache of post-processing; the identity z = y for the other kinds), `from_input` is
trained end to end.

Post-processing: network input z = P(y, K) from the measurement, then x̂ = f_θ(z).

The input strategy P is part of the model (and of the saved file):

- ``measurement``: z = y (complex y → real channels [Re, Im] via ``torch.view_as_real``);
  for dense models and cross-domain learning, where f_θ must learn the whole inverse;
- ``adjoint``:     z = Kᵀ y (back-projection);
- ``fbp``:         z = FBP(y) (`invmap.solvers.fbp`, tomography);
- ``pinv``:        z = x_k, ``pinv_iters`` CGLS iterations on ½‖K x − y‖² from x₀ = 0
  (a truncated, hence regularised, pseudo-inverse K⁺y).

P does not depend on θ and runs without gradients, so training can compute
``z = recon.preprocess(y, physics)`` once per fixed pair and call ``recon.from_input(z)``.

Input scaling: a scalar s (buffer ``input_scale``, 1 by default; set it from training
inputs with `fit_input_scale`) feeds the network s·z. For image-domain inputs the output is
divided by s again, x̂ = f_θ(s z) / s, so a residual network stays x̂ = z + correction; for
``measurement`` input x̂ = f_θ(s z).

Every reconstructor is called the same way: ``x_hat = recon(y, physics)``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Literal, Mapping, get_args

import torch
from torch import nn

from ..operators.base import operator_of
from ..solvers.cgls import CGLS
from ..solvers.fbp import fbp, fbp_geometry
from .registry import build_kind, count_parameters, describe

InputStrategy = Literal["measurement", "adjoint", "fbp", "pinv"]
INPUTS: tuple[str, ...] = get_args(InputStrategy)


def _sqnorm(t: torch.Tensor) -> torch.Tensor:
    """Σ|t|² over all entries (complex-safe)."""
    a = torch.view_as_real(t) if t.is_complex() else t
    return (a * a).sum()


@torch.no_grad()
def cgls(y: torch.Tensor, op, iters: int = 10) -> torch.Tensor:
    """x_k: ``iters`` CGLS iterations for min_x ½‖K x − y‖² from x₀ = 0 (per-sample steps).

    After k steps x_k minimises the residual over the Krylov space span{(KᵀK)^j Kᵀy}_{j<k};
    stopping early regularises. Uses `invmap.solvers.cgls.CGLS`.
    """
    return CGLS(op, y, max_iter=int(iters), record_every=0).solve()


class Reconstructor(nn.Module):
    """Base of every learned reconstructor kind: ``x̂ = recon(y, physics)`` (module docstring).

    A kind sets `kind` and implements ``forward(y, physics)``; kinds registered in
    `invmap.models.KINDS` record ``kind_params`` (JSON-able, `spec`) so that a saved model
    is rebuilt by ``from_spec(spec)``.
    """

    kind: str = ""
    #: the kind's parameters, set whole by `invmap.models.build_kind` (read-only until then)
    kind_params: Mapping[str, Any] = MappingProxyType({})
    #: the physics it was trained for (`invmap.models.io.load_model` sets it from model.json; None:
    #: unknown) — trust diagnoses a reconstruction against it (`invmap.capabilities`)
    training_physics: Any = None
    #: learned from data (never a classical baseline in the verdicts; `evaluation.verdicts.is_learned`)
    learned: bool = True
    #: K and Kᵀ act inside `from_input` (read from `physics` at call time), so one call takes
    #: one K: training over drawn geometry makes every minibatch share it (`training.setup.Pairs`)
    operator_inside: bool = True
    #: `preprocess` reads each sample's noise level from its physics (a noise-conditional
    #: denoiser): samples of drawn noise are then never batched across noise models
    noise_conditional: bool = False

    @torch.no_grad()
    def preprocess(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """The parameter-free part z of the map (cached by training); z = y here."""
        return y.detach()

    def from_input(self, z: torch.Tensor, physics: Any = None) -> torch.Tensor:
        """x̂ from z = `preprocess(y, physics)`; here ``recon(z, physics)``."""
        return self(z, physics)

    def input_shape(self, physics: Any) -> tuple[int, ...]:
        """Shape ``[C, ...]`` of z = y for one measurement (complex y: one complex channel)."""
        return (1, *operator_of(physics).out_shape)

    def trained_blocks(self, physics: Any) -> list[tuple[nn.Module, tuple[int, ...]]]:
        """(block, per-sample input shape) for every block call whose activations one
        training step keeps for backpropagation (the memory estimate of `invmap train`);
        with gradient checkpointing, one iteration's. None here."""
        return []

    def prepare(self, train: Any, val: Any, data_range: Any = 1.0) -> None:
        """Fit what is not learned by gradient steps, before the first one (nothing here).

        `train` and `val` are `invmap.training.setup.Pairs` (``z``, ``x``, ``physics``, ``inputs``);
        PSNRs use the data range convention `data_range` (``evaluation.data_range``).
        """

    def spec(self) -> dict:
        """``{name, params}``: the kind and its parameters, as `from_spec` reads them."""
        return {"name": self.kind, "params": dict(self.kind_params)}

    @classmethod
    def from_spec(cls, spec: dict) -> "Reconstructor":
        """The reconstructor (untrained weights) described by `spec`."""
        return build_kind(spec["name"], **spec.get("params", {}))

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kind_params.items())
        return f"{self.kind}({args}): {count_parameters(self):,} parameters"


class LearnedReconstructor(Reconstructor):
    """x̂ = f_θ(P(y, K)): a network behind an input strategy (see the module docstring).

    Parameters
    ----------
    net: a network from `invmap.models.build`.
    input: 'measurement', 'adjoint', 'fbp' or 'pinv'.
    pinv_iters: CGLS iterations for 'pinv'.
    fbp_filter, fbp_cutoff: filter of 'fbp' (passed to `invmap.solvers.fbp`).
    """

    def __init__(self, net: nn.Module, input: InputStrategy = "fbp", pinv_iters: int = 10,
                 fbp_filter: str = "ramp", fbp_cutoff: float = 1.0):
        super().__init__()
        if input not in INPUTS:
            raise ValueError(f"unknown input strategy '{input}'; allowed: {', '.join(INPUTS)}")
        if int(pinv_iters) < 1:
            raise ValueError(f"'pinv_iters' must be >= 1, got {pinv_iters}")
        self.net = net
        self.input = input
        self.pinv_iters = int(pinv_iters)
        self.fbp_filter, self.fbp_cutoff = str(fbp_filter), float(fbp_cutoff)
        self.register_buffer("input_scale", torch.tensor(1.0))

    # ----------------------------------------------------------------- description
    def input_params(self) -> dict:
        """The input strategy and its parameters (JSON-able; `LearnedReconstructor(net, **this)`)."""
        return {"input": self.input, "pinv_iters": self.pinv_iters,
                "fbp_filter": self.fbp_filter, "fbp_cutoff": self.fbp_cutoff}

    def describe(self) -> str:
        return f"{describe(self.net)}; input '{self.input}', input_scale {float(self.input_scale):.4g}"

    # ----------------------------------------------------------------- the map
    @torch.no_grad()
    def preprocess(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """Network input z = P(y, K) (no gradients; see the module docstring)."""
        op = operator_of(physics)
        if isinstance(y, torch.Tensor) and y.numel() == 0:
            raise ValueError(f"empty measurement batch {list(y.shape)}: nothing to reconstruct")
        if self.input == "measurement":
            if y.is_complex():
                return torch.view_as_real(y).movedim(-1, 2).flatten(1, 2)
            return y.detach()
        if self.input == "adjoint":
            z = op.adjoint(y)
        elif self.input == "fbp":
            z = fbp(y, op, filter=self.fbp_filter, cutoff=self.fbp_cutoff)
        else:
            z = cgls(y, op, self.pinv_iters)
        return z.real if z.is_complex() else z

    def input_shape(self, physics: Any) -> tuple[int, ...]:
        """Shape ``[C, ...]`` of z = P(y, K) for one measurement, from K's shapes alone (nothing
        is computed, so a network can be sized on the meta device); equals
        ``preprocess(y, physics).shape[1:]`` for y = K x with x ``[1, 1, H, W]``."""
        op = operator_of(physics)
        if self.input == "measurement":
            return (2 if getattr(op, "complex_output", False) else 1, *op.out_shape)
        if self.input == "fbp":
            fbp_geometry(op)
        return (1, *op.in_shape)

    kind = "post-processing"
    operator_inside = False  # K only in the parameter-free P: each sample may bring its own

    def spec(self) -> dict:
        return {"name": self.kind}

    def prepare(self, train: Any, val: Any, data_range: Any = 1.0) -> None:
        """Fit the input scale s from (up to 256) training network inputs."""
        self.fit_input_scale(train.z if train.z is not None else train.inputs(range(min(train.n, 256))))

    def from_input(self, z: torch.Tensor, physics: Any = None) -> torch.Tensor:
        """x̂ from a precomputed network input z (= `preprocess(y, physics)`; physics is not needed)."""
        s = self.input_scale.to(z.dtype)
        out = self.net(z * s)
        return out if self.input == "measurement" else out / s

    def forward(self, y: torch.Tensor, physics: Any) -> torch.Tensor:
        """x̂ = recon(y, physics); images of another size than the training ones need a network
        that takes any size (`invmap.models.base.Network.any_size`), else a one-line ValueError."""
        trained = None if self.training_physics is None else self.training_physics.operator
        if trained is not None and not getattr(self.net, "any_size", True) and trained.in_shape != physics.operator.in_shape:
            raise ValueError(f"{type(self.net).__name__} was trained on {list(trained.in_shape)} images and cannot "
                             f"reconstruct {list(physics.operator.in_shape)} (not fully convolutional)")
        return self.from_input(self.preprocess(y, physics))

    @torch.no_grad()
    def fit_input_scale(self, z: torch.Tensor) -> float:
        """Set s = 1 / RMS(z) from training network inputs z (so s·z has unit RMS); returns s."""
        rms = float(_sqnorm(z) / z.numel()) ** 0.5 if z.numel() else 0.0
        if not rms > 0 or rms != rms:
            raise ValueError("cannot fit the input scale: the network inputs are all zero or not finite")
        self.input_scale.fill_(1.0 / rms)
        return 1.0 / rms
