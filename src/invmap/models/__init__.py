"""Networks for learned inverse maps x̂ = f_θ(z), and the reconstructor that feeds them.

z is the network input computed from the measurement y of y = K x + e: y itself, Kᵀy,
FBP(y) or a few CGLS steps on ½‖Kx − y‖² (see `LearnedReconstructor`). Each module of
this package registers one architecture with ``@MODELS.register("name")``; a new
architecture is one new file and is tested by the registry-parametrized tests.

Reconstructor kinds with K and Kᵀ inside (``lgd``, ``lpd``, ``unrolled``, ``pnp``; see
`reconstructor` and `iterative`) register with ``@KINDS.register("name")`` and are built by
`build_kind`; post-processing (`LearnedReconstructor`) is the kind around the networks.

>>> import invmap.models as models
>>> net = models.build("unet", base_channels=8, depth=2)
>>> models.count_parameters(net) > 0
True
"""

from __future__ import annotations

from ..registry import import_submodules
from .registry import KINDS, MODELS, build, build_for, build_kind, count_parameters, describe, listing, names
from .reconstructor import INPUTS, LearnedReconstructor, Reconstructor
from .io import check_compatible, load_model, save_model

import_submodules(__name__)

__all__ = [
    "MODELS", "KINDS", "names", "build", "build_for", "build_kind", "listing", "count_parameters", "describe",
    "Reconstructor", "LearnedReconstructor", "INPUTS", "save_model", "load_model", "check_compatible",
]
