"""Forward operators K of y = K x + e, with exact adjoints (see `base.LinearOperator`).

Every module in this package is imported on first use, so registering a new operator
is adding one file with an ``@OPERATORS.register("name")`` class; an installed package adds its
own through the entry-point group ``invmap.operators`` (`registry.load_operator_plugins`).

>>> import invmap.operators as ops
>>> K = ops.build("identity", image_shape=(8, 8))
"""

from ..registry import import_submodules
from .base import CalibrationEstimate, LinearOperator, inner, jsonable, operator_of
from .registry import OPERATORS, build, from_spec, load_operator_plugins, names, resized_spec, spec

import_submodules(__name__)
load_operator_plugins()  # operators of installed packages (entry points `invmap.operators`)

__all__ = ["CalibrationEstimate", "LinearOperator", "inner", "jsonable", "operator_of", "OPERATORS", "build", "names", "spec", "from_spec", "resized_spec"]
