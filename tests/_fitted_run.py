"""A run directory made in seconds for the tests: a post-processing network fitted to the config's own
simulated pairs, saved with the config and the tuned TV (tests/test_one_scan.py, tests/test_adapt.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from invmap.data import build_source
from invmap.evaluation.experiment import Experiment
from invmap.evaluation.runs import tune_baselines
from invmap.models import LearnedReconstructor, save_model


def fitted_run(d: Path, cfg, network: torch.nn.Module, steps: int = 20, tune_seconds: float | None = None) -> Path:
    """`network` (after FBP) fitted by `steps` Adam steps on ``data.size``² ellipse pairs (as many as
    pixels per side) simulated by the config's physics, saved in `d` with the config and a tuned TV."""
    phys, size = cfg.physics(), int(cfg.data.size)
    x = build_source("ellipses", size, split="train", count=size, seed=0).batch(list(range(size)))
    y = phys.measure(x, torch.Generator().manual_seed(0))
    recon = LearnedReconstructor(network, input="fbp")
    z = recon.preprocess(y, phys)
    recon.fit_input_scale(z)
    opt = torch.optim.Adam(recon.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(recon.from_input(z), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    d.mkdir()
    (d / "config.yaml").write_text(cfg.to_yaml())
    save_model(d, recon.eval(), {}, physics=phys)
    budget = {} if tune_seconds is None else {"time_budget": tune_seconds}
    tune_baselines(Experiment(cfg), ["tv"], d, n_val=4, **budget)
    return d
