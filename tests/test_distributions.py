"""Physics parameters as distributions (invmap.distributions): drawn per sample, seeded by
index, within their bounds, nominal values for everything but training, one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from invmap import distributions as dist
from invmap.config import load_config
from invmap.data import PairDataset, build_source

#: one value of every distribution kind, with its support
KINDS = {
    "choice": ({"choice": [30, 45, 60, 90, 120]}, (30, 120)),
    "uniform": ({"uniform": [120.0, 180.0]}, (120.0, 180.0)),
    "log_uniform": ({"log_uniform": [0.005, 0.04]}, (0.005, 0.04)),
    "normal": ({"normal": [0.0, 0.25]}, (-0.5, 0.5)),
}


def test_every_kind_is_covered():
    assert set(KINDS) == set(dist.KINDS)


@pytest.mark.parametrize("kind", sorted(dist.KINDS))
def test_draws_respect_bounds_and_are_seeded(kind):
    spec, (lo, hi) = KINDS[kind]
    d = dist.parse(spec)
    draws = [d.draw(torch.Generator().manual_seed(s)) for s in range(400)]
    assert all(lo <= v <= hi for v in draws)
    assert min(draws) < d.nominal < max(draws) or kind == "choice"  # not a constant
    again = [d.draw(torch.Generator().manual_seed(s)) for s in range(400)]
    assert draws == again
    snapped = {d.draw(torch.Generator().manual_seed(s), snap=True) for s in range(400)}
    assert all(lo <= v <= hi for v in snapped)
    points = d.values if kind == "choice" else d.grid_points()
    assert len(points) == (len(d.values) if kind == "choice" else dist.DEFAULT_GRID)
    assert all(any(abs(v - p) < 1e-9 for p in points) for v in snapped)  # a finite set of operators


def test_choice_weights_set_the_proportions():
    d = dist.parse({"choice": [15, 30, 60, 120], "weights": [1, 0, 2, 1], "nominal": 60})
    draws = [d.draw(torch.Generator().manual_seed(s)) for s in range(2000)]
    assert 30 not in draws and set(draws) == {15, 60, 120}
    assert abs(draws.count(60) / 2000 - 0.5) < 0.04 and abs(draws.count(15) / 2000 - 0.25) < 0.04
    assert draws == [d.draw(torch.Generator().manual_seed(s)) for s in range(2000)]
    assert d.spec()["weights"] == [1.0, 0.0, 2.0, 1.0]
    for bad, message in [({"choice": [1, 2], "weights": [1]}, "2 finite numbers >= 0"),
                         ({"choice": [1, 2], "weights": [1, -1]}, "2 finite numbers >= 0"),
                         ({"choice": [1, 2], "weights": [0, 0]}, "not all 0"),
                         ({"choice": [1, 2], "weights": [1e308, 1e308]}, "a finite sum"),
                         ({"choice": [1, 2], "weights": [1, float("nan")]}, "2 finite numbers >= 0"),
                         ({"uniform": [1, 2], "weights": [1, 1]}, "weights apply to choice only")]:
        with pytest.raises(ValueError, match=message):
            dist.parse(bad)


@pytest.mark.parametrize("weights", [[5e-324, 5e-324, 0.0], [1e-310, 1e-310, 0.0], [1e300, 1e300, 0.0]])
def test_extreme_weights_draw_in_proportion_and_zero_never(weights):
    """Subnormal or huge weights are proportions like any others (normalised exactly), and a
    value of weight 0 is never drawn, whatever the uniform draw."""
    d = dist.parse({"choice": [8, 16, 32], "weights": weights, "nominal": 8})
    draws = [d.draw(torch.Generator().manual_seed(s)) for s in range(2000)]
    assert 32 not in draws and abs(draws.count(8) / 2000 - 0.5) < 0.04


def test_a_choice_list_and_the_drawn_operators_are_bounded():
    with pytest.raises(ValueError, match=f"at most {dist.MAX_CHOICES} are allowed"):
        dist.parse({"choice": list(range(dist.MAX_CHOICES + 1))})
    angles = {"choice": list(range(8, 8 + 17))}
    detectors = {"choice": list(range(24, 24 + 16))}  # 17 × 16 = 272 operators
    with pytest.raises(ValueError, match=f"above the {dist.MAX_OPERATORS}"):
        load_config(None, ["operator.name=tomography", f"operator.angles={json.dumps(angles)}",
                           f"operator.detectors={json.dumps(detectors)}"]).physics_distribution()
    assert load_config(None, ["operator.name=tomography", f"operator.angles={json.dumps(angles)}"]
                       ).physics_distribution().random


def test_nominal_rule_and_stated_nominal():
    assert dist.parse({"choice": [30, 45, 60, 90, 120]}).nominal == 60
    assert dist.parse({"choice": [15, 30, 60, 120]}).nominal == 30  # lower middle of an even count
    assert dist.parse({"choice": ["fine", "crime"]}).nominal == "fine"  # words: the first listed
    assert dist.parse({"uniform": [120, 180]}).nominal == 150
    assert dist.parse({"log_uniform": [0.01, 0.04]}).nominal == pytest.approx(0.02)
    assert dist.parse({"normal": 0.25}, default=0.0).nominal == 0.0
    assert dist.parse({"uniform": [120, 180], "nominal": 180}).nominal == 180


def _robust(size=32, n=12, extra=()):
    return load_config("ct-robust", [f"data.size={size}", f"data.train={n}", "data.val=4", "data.test=4", *extra])


def test_config_nominal_physics_is_the_stated_one():
    cfg = load_config("ct-robust")
    p = cfg.physics_spec()
    assert p["operator"]["params"]["angles"] == 60 and p["operator"]["params"]["arc"] == 180
    assert p["noise"]["params"]["relative"] == 0.01
    assert load_config("ct-robust", ["noise.relative={log_uniform: [0.005, 0.02], nominal: 0.01}"]).physics_spec() == p
    built = cfg.physics().operator.spec()["params"]
    default = load_config(None).physics().operator.spec()["params"]
    assert built == default  # evaluation, tuning and the stress reference see the default task


def test_pairs_are_reproducible_per_index_and_vary():
    cfg = _robust(extra=["noise.relative={log_uniform: [0.005, 0.02], nominal: 0.01}"])
    src = build_source("ellipses", 32, split="train", count=12)
    a = PairDataset(src, cfg.physics_distribution(), seed=3)
    b = PairDataset(src, cfg.physics_distribution(), seed=3)
    ya, _ = a.simulate_each([5, 1, 7])
    yb, _ = b.simulate_each([7, 5])
    assert torch.equal(ya[0], yb[1]) and torch.equal(ya[2], yb[0])  # order and batch do not matter
    assert a.draw(5) == b.draw(5)
    draws = {a.draw(i) for i in range(12)}
    assert len({d.operator for d in draws}) > 1 and len({d.noise for d in draws}) > 1
    for d in draws:
        op = json.loads(d.operator)["params"]
        sim = json.loads(d.sim_operator)["params"]
        assert op["angles"] in (15, 30, 60, 120) and op["arc"] in (120, 150, 180)
        assert -1.0 <= sim["angle_offset"] <= 1.0 and -0.5 <= sim["detector_offset"] <= 0.5
        # calibration errors reach the simulation only; the reconstruction K keeps the nominal values
        assert op["angle_offset"] == 0.0 and op["detector_offset"] == 0.0
        assert 0.005 <= json.loads(d.noise)["params"]["relative"] <= 0.02
    other = PairDataset(src, cfg.physics_distribution(), seed=4)
    assert [other.draw(i) for i in range(12)] != [a.draw(i) for i in range(12)]


def test_each_sample_is_simulated_and_reconstructed_with_its_own_operator():
    cfg = _robust(extra=["data.simulation=crime", "noise.relative=0.0"])
    src = build_source("ellipses", 32, split="train", count=12)
    ds = PairDataset(src, cfg.physics_distribution(), seed=0)
    ys, x = ds.clean_each(range(12))
    for i, y in enumerate(ys):
        d = ds.draw(i)
        assert torch.allclose(y, ds.operator(d.sim_operator)(x[i:i + 1]), atol=1e-5)
    from invmap.variational import fbp

    z = ds.inputs_each(list(range(12)), ys, lambda y, physics: fbp(y, physics.operator))
    for i in range(12):
        assert torch.allclose(z[i:i + 1], fbp(ys[i], ds.operator(ds.draw(i).operator)), atol=1e-5)


def test_training_runs_on_drawn_physics(tmp_path):
    from invmap.training import train

    cfg = _robust(n=16, extra=["training.epochs=1", "training.max_minutes=0", "model.base_channels=4",
                               "model.depth=2", "training.batch_size=8"])
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.epochs == 1 and res.steps == 2
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["physics"]["operator"]["params"]["angles"] == 60  # the nominal physics
    assert meta["physics_distributions"]["operator"]["angles"] == {"choice": [15, 30, 60, 120], "nominal": 60,
                                                                   "weights": [1.0, 1.0, 4.0, 1.0]}


@pytest.mark.parametrize("override, expected", [
    ("operator.angles={choice: [60, -30, 90]}", "operator.angles = -30 (a value of its distribution): angles must be "
                                                "a positive number of views"),
    ("operator.angles={choice: [-30, 60]}", "operator (its nominal values): angles must be a positive number"),
    ("operator.angles={choice: []}", "choice needs a non-empty list of values"),
    ("operator.spin={choice: [1, 2]}", "unknown parameter(s) 'spin'"),
    ("operator.arc={uniform: [180, 120]}", "uniform [180, 120]: low is above high"),
    ("operator.arc={gamma: 2}", "a distribution is one of {choice, uniform, log_uniform, normal: ...}"),
    ("operator.arc={uniform: [120, 180], nominal: 200}", "nominal 200 lies outside the distribution's support"),
    ("noise.relative={log_uniform: [0, 0.1]}", "log_uniform needs 0 < low"),
    ("noise.relative={uniform: [-0.1, 0.1]}", "relative must be a finite number >= 0"),
    ("data.simulation={choice: [crime, coarse]}", "unknown simulation mode 'coarse'"),
    ("operator.angles={choice: [15, 60]}", "changes the measurement's shape ([15, 183] vs [60, 183]): model.input "
                                           "'measurement' feeds y itself"),
])
def test_nonsense_is_a_one_line_error(override, expected):
    extra = ["model.name=mlp", "model.input=measurement"] if "model.input" in expected else []
    with pytest.raises(ValueError) as e:
        load_config(None, [override, *extra])
    msg = str(e.value)
    assert expected in msg and "\n" not in msg


@pytest.mark.processes
def test_cli_reports_a_bad_distribution_in_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("operator:\n  angles: {choice: [-15, 60]}\n")
    r = subprocess.run([sys.executable, "-m", "invmap", "config", "--check", str(p)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("invmap: error: ") and "-15" in lines[0]


def _kind_cases():
    from test_unrolled import TINY

    return sorted(TINY)


@pytest.mark.parametrize("case", _kind_cases())
def test_a_kind_trains_over_drawn_geometry_with_one_operator_per_minibatch(case, tmp_path):
    """K inside the map (lgd, lpd, unrolled): every minibatch, training and validation, is made
    of samples that drew the same K, is called with that K, and holds every sample once."""
    from test_unrolled import TINY, kind_of
    from invmap.training import train
    from invmap.training.setup import Pairs, build_reconstructor

    sets = [f"model.{k}={'null' if v is None else v}" for k, v in TINY[case].items()]  # YAML's None is null
    cfg = load_config(None, [f"model.name={kind_of(case)}", *sets, "operator.angles={choice: [8, 12, 16], nominal: 12}",
                             "operator.arc={choice: [150, 180], nominal: 180}", "data.size=24", "data.train=20",
                             "data.val=6", "data.test=4", "training.epochs=1", "training.max_minutes=0",
                             "training.batch_size=4"])
    physics = cfg.physics()
    recon = build_reconstructor(cfg, physics, torch.device("cpu"))
    assert recon.operator_inside
    pairs = Pairs(cfg, physics, "train", recon, torch.device("cpu"), fresh_noise=True)
    perm = torch.randperm(pairs.n, generator=torch.Generator().manual_seed(3))
    batches = pairs.minibatches(perm, 4)
    assert sorted(torch.cat(batches).tolist()) == list(range(pairs.n)) and all(len(b) <= 4 for b in batches)
    assert [b.tolist() for b in batches] == [b.tolist() for b in pairs.minibatches(perm, 4)]  # reproducible
    keys = {pairs.ds.draw(i).operator for i in range(pairs.n)}
    assert len(keys) > 1 and len(batches) == sum(-(-sum(pairs.ds.draw(i).operator == k for i in range(pairs.n)) // 4)
                                                 for k in keys)
    for b, (z, x, phys) in zip(batches, pairs.epoch(batches, 1)):
        drew = {pairs.ds.draw(i).operator for i in b.tolist()}
        assert len(drew) == 1 and phys.operator is pairs.ds.operator(drew.pop())
        assert z.shape == (len(b), 1, *phys.operator.out_shape) and x.shape == (len(b), 1, 24, 24)
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.steps == len(batches) and math.isfinite(res.best_val_psnr)
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["physics"]["operator"]["params"]["angles"] == 12  # saved with the nominal physics


def test_post_processing_batches_mix_operators():
    """A post-processing model takes each sample's own z = FBP(y_i, K_i): no grouping needed."""
    from invmap.training.setup import Pairs, build_reconstructor

    cfg = _robust(n=16, extra=["model.base_channels=4", "model.depth=2"])
    physics = cfg.physics()
    pairs = Pairs(cfg, physics, "train", build_reconstructor(cfg, physics, torch.device("cpu")), torch.device("cpu"))
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    assert not pairs.shared and [b.tolist() for b in pairs.minibatches(perm, 8)] == [perm[:8].tolist(), perm[8:].tolist()]


def test_augmented_images_under_drawn_physics_use_each_pairs_own_operator():
    """Images augmented per epoch are simulated per minibatch; the input of pair i is still
    P(y_i, K_{ω_i}) with its own drawn K, not the nominal one."""
    from invmap.training.setup import Pairs, build_reconstructor
    from invmap.variational import fbp

    cfg = _robust(n=12, extra=["model.base_channels=4", "model.depth=2", "data.augment.flips=true",
                               "data.simulation=crime", "noise.relative=0.0"])
    physics = cfg.physics()
    pairs = Pairs(cfg, physics, "train", build_reconstructor(cfg, physics, torch.device("cpu")), torch.device("cpu"),
                  fresh_noise=True)
    assert pairs.clean is None  # simulated per minibatch
    batch = torch.arange(12)
    (z, x, _), = list(pairs.epoch([batch], 1))
    views = {json.loads(pairs.ds.draw(i).operator)["params"]["angles"] for i in range(12)}
    assert len(views) > 1  # the batch mixes view counts
    for i in range(12):
        op = pairs.ds.operator(pairs.ds.draw(i).operator)
        sim = pairs.ds.operator(pairs.ds.draw(i).sim_operator)
        assert torch.allclose(z[i:i + 1], fbp(sim(x[i:i + 1]), op), atol=1e-4)
