"""Operators declare what they can do: spec(), FBP geometry, parameters, stress axes; one physics spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import invmap.operators as ops
from invmap import models, variational
from invmap.noise import build as build_noise
from invmap.operators import OPERATORS
from invmap.physics import Physics, build_physics

NAMES = ops.names()
SHAPE = (16, 16)


def _rand(shape, gen, lead=(2, 1)):
    return torch.randn(lead + tuple(shape), generator=gen, dtype=torch.float64)


def _algebra(K):
    """K and composites of it built by the operator algebra."""
    eye = ops.build("identity", image_shape=K.in_shape)
    return {"K": K, "K @ I": K @ eye, "2.5 K": 2.5 * K, "K + K": K + K, "-K": -K, "(K.T).T": K.T.T,
            "K.T @ K": K.T @ K}


@pytest.mark.parametrize("name", NAMES)
def test_spec_round_trip_of_every_operator_and_its_algebra(name, gen):
    """build → spec → JSON → build gives the identical forward, for K and composites of K."""
    for label, op in _algebra(ops.build(name, image_shape=SHAPE)).items():
        again = ops.from_spec(json.loads(json.dumps(op.spec())))
        x = _rand(op.in_shape, gen)
        assert again.in_shape == op.in_shape and again.out_shape == op.out_shape, label
        assert torch.equal(again(x), op(x)), label


@pytest.mark.parametrize("name", NAMES)
def test_a_directly_built_operator_describes_itself(name):
    """The class knows its registry name: ``Cls(shape)`` has the same spec as ``build(name, shape)``."""
    direct = OPERATORS.get(name)(image_shape=SHAPE)
    assert direct.name == name and direct.spec() == ops.build(name, image_shape=SHAPE).spec()


@pytest.mark.parametrize("name", NAMES)
def test_declared_parameters_are_real_parameters(name):
    """Every geometry / calibration / pixel parameter an operator declares is one its builder takes."""
    op = ops.build(name, image_shape=SHAPE)
    takes = {p.name for p in OPERATORS.params(name)}
    caps = op.capabilities()
    for key in ("geometry_params", "calibration_params", "pixel_params"):
        assert set(caps[key]) <= takes, (key, set(caps[key]) - takes)
    assert caps["fbp"] == (op.fbp_geometry() is not None)


@pytest.mark.parametrize("name", NAMES)
def test_every_stress_axis_builds_a_valid_shifted_operator(name, gen):
    """Each level of each axis rebuilds; calibration levels keep K's shapes (y must fit the nominal K);
    exactly one level is K itself; levels differ."""
    op = ops.build(name, image_shape=SHAPE)
    x = _rand(op.in_shape, gen, lead=(1, 1))
    for axis in op.stress_axes():
        assert axis.levels or axis.skipped, axis.name  # nothing is silently dropped
        if not axis.levels:
            continue
        assert sum(lv.params is None for lv in axis.levels) == 1, axis.name
        assert len({lv.label for lv in axis.levels}) == len(axis.levels)
        outs = []
        for lv in axis.levels:
            moved = op if lv.params is None else ops.from_spec({"name": op.name, "params": lv.params}, SHAPE)
            assert moved.in_shape == op.in_shape
            if axis.sim_only:
                assert moved.out_shape == op.out_shape, (axis.name, lv.label)
            y = moved(x)
            assert bool(torch.isfinite(y).all())
            outs.append(y)
        same_shape = [y for y in outs if y.shape == outs[0].shape]
        assert len(same_shape) < 2 or not all(torch.equal(same_shape[0], y) for y in same_shape[1:]), axis.name


@pytest.mark.parametrize("cls", ["tomography", "fanbeam"])
def test_fbp_on_a_directly_built_ct_operator(cls, gen):
    """FBP asks the operator for its geometry: a class built by hand works like one built by name."""
    K = OPERATORS.get(cls)(image_shape=(32, 32), angles=24)
    y = K(torch.rand(1, 1, 32, 32, generator=gen))
    x_hat = variational.build("fbp")(y, Physics(K))
    assert torch.equal(x_hat, variational.build("fbp")(y, ops.build(cls, image_shape=(32, 32), angles=24)))
    assert K.has_fbp and not ops.build("blur", image_shape=SHAPE).has_fbp


def test_a_composite_operator_is_saved_and_reloaded(tmp_path, gen):
    """``K @ I`` (and any algebra) is described in model.json and rebuilt by `Physics.from_spec`."""
    K = ops.build("blur", image_shape=SHAPE, sigma=1.0) @ ops.build("identity", image_shape=SHAPE)
    phys = Physics(0.5 * K, build_noise("gaussian", sigma=0.01))
    recon = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="adjoint")
    models.save_model(tmp_path, recon, physics=phys)
    _, meta = models.load_model(tmp_path)
    again = Physics.from_spec(meta["physics"])
    x = _rand(SHAPE, gen)
    assert torch.equal(again.operator(x), phys.operator(x)) and again.noise.spec() == phys.noise.spec()


def test_old_saved_physics_still_load_and_bad_ones_fail_in_one_line():
    """model.json files written before operators owned their spec (user-level params, e.g. a blur
    with its size) load unchanged; a malformed physics entry is one clear line."""
    old = {"operator": {"name": "blur", "image_shape": [16, 16], "params": {"sigma": 1.0, "size": 7}},
           "noise": {"name": "gaussian", "params": {"relative": 0.01}}}
    p = build_physics(old)
    assert p.operator.params()["size"] == 7 and p.noise.name == "gaussian"
    assert build_physics({"operator": old["operator"]}).noise.name == "none"
    for bad in ({"noise": {}}, {"operator": "blur"}, [], {"operator": {"name": "blur"}}):
        with pytest.raises(ValueError) as e:
            build_physics(bad)
        assert "\n" not in str(e.value)


def test_config_condition_and_saved_model_share_one_physics_spec():
    """The config, the stress study's condition and `Physics.spec()` describe a task the same way."""
    from invmap.config import load_config
    from invmap.evaluation.task import condition_physics
    from invmap.evaluation.task import condition_from_config

    cfg = load_config(None, ["data.size=16", "operator.name=blur", "operator.sigma=1.0", "noise.relative=0.02"])
    spec = cfg.physics_spec()
    cond = condition_from_config(cfg, n=2)
    assert cond.physics_spec() == spec
    built = cfg.physics()
    assert built.spec() == condition_physics(cond).spec() == build_physics(spec, (16, 16)).spec()


def test_the_stress_study_keeps_no_operator_name_tables():
    """Operator-specific shifts come from the operators: the study's source names none of them."""
    import invmap.evaluation.stress as stress

    text = Path(stress.__file__).read_text()
    assert not [n for n in NAMES if f'"{n}"' in text or f"'{n}'" in text]


@pytest.mark.parametrize("name", NAMES)
def test_calibration_read_from_data_recovers_a_shifted_parameter(name):
    """Every parameter an operator can read from its measurements alone (``estimable_params``,
    a subset of its calibration parameters) is found at K's own value on K's data and at the
    moved value on data from K with that parameter moved (within 4 standard errors + 0.02);
    an operator that estimates nothing returns {}, and so do composites of the algebra."""
    op = ops.build(name, image_shape=(32, 32))
    assert set(op.estimable_params) <= set(op.calibration_params)
    r2 = torch.linspace(-1, 1, 32).pow(2)
    x = torch.exp(-((r2[:, None] + 2.0 * r2[None, :]) * 12.0)).expand(2, 1, 32, 32).clone()  # inside the circle
    x[1] = x[1].roll(3, dims=-1)
    est = op.estimate_calibration(op(x))
    assert set(est) == set(op.estimable_params)
    for p, e in est.items():
        assert bool(torch.isfinite(e.stderr).all()) and float(e.z.max()) < 4, (p, e)
        moved_value = e.nominal + 0.6
        spec = op.spec()
        moved = ops.from_spec(dict(spec, params=dict(spec["params"], **{p: moved_value})))
        e2 = op.estimate_calibration(moved(x))[p]
        assert bool(((e2.value - moved_value).abs() < 4 * e2.stderr + 0.02).all()), (p, e2)
        assert float(e2.z.min()) > 4
    assert (op @ ops.build("identity", image_shape=op.in_shape)).estimate_calibration(op(x)) == {}


@pytest.mark.parametrize("name", NAMES)
def test_an_axis_says_whether_y_and_k_can_reveal_its_shift(name):
    """Every axis declares its identifiability (a reason where (y, K) cannot reveal the shift);
    the calibration axes of CT: a detector shift can be read from y, a global angle offset cannot."""
    op = ops.build(name, image_shape=SHAPE)
    for axis in op.stress_axes():
        assert isinstance(axis.unidentifiable, str)
        if name in ("tomography", "fanbeam") and axis.name == "calibration-angle":
            assert "rotated" in axis.unidentifiable
        elif axis.name == "calibration-detector":
            assert axis.unidentifiable == ""


def test_a_global_angle_offset_is_the_data_of_the_rotated_object():
    """The reason the CT angle-offset axis gives, checked: K_δ x (every view shifted by δ) equals
    K applied to x rotated by δ (a smooth phantom: the rotation's interpolation stays small), 30×
    closer than K x is, and the other way round it is not."""
    import numpy as np
    from scipy.ndimage import gaussian_filter, rotate

    from invmap.data.phantoms import shepp_logan

    n, delta = 128, 2.0
    x = torch.from_numpy(gaussian_filter(shepp_logan(n).reshape(n, n).numpy().astype(np.float64), 1.5)).float()[None, None]
    K = ops.build("tomography", image_shape=(n, n), angles=60)
    K_delta = ops.build("tomography", image_shape=(n, n), angles=60, angle_offset=delta)
    y_delta = K_delta(x)

    def rotated(deg: float) -> torch.Tensor:
        return torch.from_numpy(rotate(x[0, 0].numpy().astype(np.float64), deg, reshape=False, order=3)).float()[None, None]

    err = {s: float((K(rotated(s * delta)) - y_delta).norm() / y_delta.norm()) for s in (1, -1)}
    plain = float((K(x) - y_delta).norm() / y_delta.norm())
    best = min(err.values())
    assert best < 0.1 * plain and max(err.values()) > 10 * best, (err, plain)  # measured: 0.0009, 0.054, 0.027


@pytest.mark.parametrize("name", variational.names())
def test_every_variational_method_declares_what_it_is(name):
    """Asked through `invmap.capabilities`, never by its name: learned or not, sampler or not."""
    from invmap.capabilities import capabilities

    m = variational.build(name)
    caps = capabilities(m)
    assert caps.learned is bool(type(m).learned) and isinstance(caps.learned, bool)
    assert caps.posterior == hasattr(m, "sample")
    assert caps.learned == (name in ("pnp", "diffpir", "dps"))  # the three that use the learned prior


def test_a_callable_that_declares_nothing_gets_the_conservative_answers():
    from invmap.capabilities import capabilities
    from invmap.evaluation.verdicts import is_learned

    def outside(y, physics):
        return physics.operator.adjoint(y)

    caps = capabilities(outside)
    assert caps.learned is None and caps.operator_inside and not caps.posterior and not caps.diagnosable
    assert not is_learned("mine", outside) and is_learned("model", outside)
    outside.learned = True
    assert capabilities(outside).learned and is_learned("mine", outside)
    assert capabilities(models.Reconstructor).learned is True


def test_what_a_learned_reconstructor_carries_is_declared_on_its_class():
    """kind_params, training_physics and a network's model_name are declared (not attached from
    outside), what calibration fits is not carried at all (a record beside the method), and the class
    default of kind_params cannot be mutated into a shared state."""
    from invmap.capabilities import capabilities

    from invmap.models.base import Network

    R = models.Reconstructor
    assert R.training_physics is None and Network.model_name is None
    assert not any(hasattr(R, k) for k in ("trust_calibration", "psnr_bound", "pixel_intervals"))
    with pytest.raises(TypeError):
        R.kind_params["x"] = 1  # a read-only default, not a dict every instance would share
    assert not capabilities(R).diagnosable


@pytest.mark.parametrize("name", variational.names())
@pytest.mark.parametrize("op", ["tomography", "blur"])
def test_a_run_asks_a_method_whether_it_can_run_with_k(name, op):
    """`cannot_run(K)` is None or the reason; a method that cannot run names a fallback that can,
    and `resolve.applicable_methods` swaps it in with a note (no method names in the run's code)."""
    from invmap.evaluation.resolve import applicable_methods

    K = ops.build(op, image_shape=(32, 32), **({"angles": 8} if op == "tomography" else {}))
    cls = variational.METHODS.get(name)
    why = cls.cannot_run(K)
    used, notes = applicable_methods([name], K)
    if why is None:
        assert used == [name] and notes == []
    else:
        assert cls.fallback and variational.METHODS.get(cls.fallback).cannot_run(K) is None
        assert used == [cls.fallback] and why in notes[0]
    assert (name == "fbp" and op == "blur") == (why is not None)  # the one method with a need among these


def test_safe_declares_what_it_wraps_falls_back_to_and_promises():
    """Calibration and the evaluation ask `capabilities` for safe's model, baseline and promise."""
    from invmap.capabilities import capabilities
    from invmap.evaluation.resolve import RUN_METHODS

    def net(y, physics):
        return physics.operator.adjoint(y)

    tv = variational.build("tv")
    safe = RUN_METHODS["safe"].build(net, {"tv": tv})
    caps = capabilities(safe)
    assert caps.wraps is net and caps.baseline is tv and caps.promises and caps.learned
    assert caps.reuses == {"model": "model", "baseline": "tv"} and safe.promise is None
    assert not capabilities(tv).promises and capabilities(tv).wraps is None
    assert RUN_METHODS["model"].build(net, {}) is net
