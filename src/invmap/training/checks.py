"""What is checked before a run writes anything: the memory it would take (`invmap.budget`), given
measurements without x, and the whole config built as a run builds it (`check_config`)."""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import budget
from ..config import Config
from ..data.measurements import load_split
from ..selfsup import SelfSupervised
from .curriculum import Curriculum
from .factory import build_reconstructor
from .precision import select_device


def _activation_bytes(net: torch.nn.Module, z_shape: tuple[int, ...]) -> int:
    """Bytes of every module output of one forward pass on a meta batch of `z_shape`
    (what backpropagation keeps); 0 if the network cannot run on the meta device."""
    total = [0]

    def hook(_m, _inp, out):
        if isinstance(out, torch.Tensor):
            total[0] += out.numel() * 4

    handles = [mod.register_forward_hook(hook) for mod in net.modules() if not list(mod.children())]
    try:
        net(torch.zeros(z_shape, device="meta"))
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel: parameters and data only
        total[0] = 0
    finally:
        for h in handles:
            h.remove()
    return total[0]


def check_memory(config: Config, physics) -> int:
    """Estimate the bytes a training run of `config` allocates and refuse above the memory
    budget (`invmap.budget`) before allocating any of it; returns the estimate.

    Counted (float32): the network's parameters four times (weights, gradients, two Adam
    moments), the activations of one training batch (a forward pass on the meta device),
    and the training and validation pairs held in memory — x, K x and the network input z
    of every image (with ``training.stream`` the training pairs are read per minibatch
    and not held: only the validation pairs count).
    """
    d, tc = config.data, config.training
    recon = build_reconstructor(config, physics, torch.device("meta"))
    op = physics.operator
    y_shape = (2 if op.complex_output else 1, *op.out_shape)
    z_shape = tuple(recon.input_shape(physics))
    params = budget.tensor_bytes(recon)
    acts = (_activation_bytes(recon.net, (tc.batch_size, *z_shape)) if hasattr(recon, "net")
            else sum(_activation_bytes(block, (tc.batch_size, *shape)) for block, shape in recon.trained_blocks(physics)))
    pair = 4 * (d.size * d.size + math.prod(y_shape) + math.prod(z_shape))
    held = d.val + (0 if tc.stream or d.augment.enabled() else d.train)  # augmented: simulated per minibatch
    data = held * pair
    if d.augment.enabled():  # each minibatch rendered at the largest zoom on the 2× simulation grid
        data += tc.batch_size * 4 * (2 * max(d.augment.zoom) * d.size) ** 2
    total = 4 * params + acts + data
    budget.check(total, f"training '{config.model.name}' on {d.train}+{d.val} pairs of {d.size}×{d.size} images "
                        f"(parameters {budget.human(params)}, one batch's activations {budget.human(acts)}, "
                        f"pairs {budget.human(data)})")
    return total


def check_measurements(config: Config, physics) -> dict[str, torch.Tensor]:
    """Given measurements (``data.measurements``) hold y without x: only a self-supervised run can
    learn from them, with the config's one K; every file is checked (shape, kind, finite values)
    here, before anything is written. One-line ValueErrors. Returns what it read, {split: y}
    (empty without given measurements): the training takes these (`Pairs` ``measured``), so
    each file is read once."""
    d = config.data
    if not d.measurements:
        return {}
    if config.training.supervision == "x":
        raise ValueError("data.measurements holds y without x: supervised training (training.supervision x) cannot "
                         "learn from it; choose mc, ei, sure or split")
    if config.physics_distribution().random:
        raise ValueError("data.measurements: given measurements were taken with one K (the config's); drawn "
                         "operator or noise parameters cannot describe them")
    op = physics.operator
    return {split: load_split(d.measurements, split, d.train, d.val, op.out_shape, bool(op.complex_output))
            for split in ("train", "val")}


def check_config(config: Config, device: torch.device = torch.device("meta")) -> Any:
    """Build what a run builds — physics, network, the image source of every split — so that
    a bad value fails with its own message before anything is written. On the ``meta``
    device (the default) the network takes no memory and the operator's matrices are not
    built (they are made on first use), so a check costs milliseconds whatever the sizes.
    Returns the physics it built (the run's `invmap.evaluation.experiment.Experiment` keeps it)."""
    select_device(config.training.device)  # e.g. cuda on a machine without one
    physics = config.physics()
    check_memory(config, physics)
    recon = build_reconstructor(config, physics, device)
    selfsup = SelfSupervised.from_config(config)
    if selfsup is not None:  # a self-supervised loss the task cannot serve
        selfsup.check(physics, recon)
    check_measurements(config, physics)
    if config.training.curriculum:  # a size the run cannot train at
        Curriculum(config, recon)
    for split in ("train", "val", "test"):
        config.data.images(split, config.seed)
    return physics


__all__ = ["check_memory", "check_measurements", "check_config"]
