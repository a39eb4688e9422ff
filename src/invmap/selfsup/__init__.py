"""Learning without ground truth: self-supervised losses for x̂ = f_Θ(y, K) from y = K x + e alone.

`invmap.selfsup.losses` holds the losses (measurement consistency, equivariant imaging, SURE,
measurement splitting) and `SelfSupervised`, the loss of a run with ``training.supervision``
other than ``x``; `invmap.selfsup.transforms` the transform groups of equivariant imaging.
What an operator offers them is asked of it: ``K.transform_groups()``, ``K.split_units()``,
``K.restricted(keep)``.
"""

from .losses import SUPERVISIONS, SelfSupervised, measurement_consistency, noise_weights, sure, sure_available
from .transforms import GROUPS

__all__ = ["SUPERVISIONS", "GROUPS", "SelfSupervised", "measurement_consistency", "noise_weights", "sure",
           "sure_available"]
