"""Forward operators K of y = K x + e, with exact adjoints (see `base.LinearOperator`).

Every module in this package is imported on first use, so registering a new operator
is adding one file with an ``@OPERATORS.register("name")`` class.

>>> import invmap.operators as ops
>>> K = ops.build("identity", image_shape=(8, 8))
"""

from ..registry import import_submodules
from .base import CalibrationEstimate, LinearOperator, inner, jsonable
from .registry import OPERATORS, build, from_spec, names, spec

import_submodules(__name__)

__all__ = ["CalibrationEstimate", "LinearOperator", "inner", "jsonable", "OPERATORS", "build", "names", "spec", "from_spec"]
