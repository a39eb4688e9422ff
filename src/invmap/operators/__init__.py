"""Forward operators K of y = K x + e, with exact adjoints (see `base.LinearOperator`).

>>> import invmap.operators as ops
>>> K = ops.build("identity", image_shape=(8, 8))
"""

from .base import LinearOperator, inner
from .registry import OPERATORS, build, from_spec, names, spec

# Importing a module registers its operators.
from . import identity  # noqa: F401,E402

__all__ = ["LinearOperator", "inner", "OPERATORS", "build", "names", "spec", "from_spec"]
