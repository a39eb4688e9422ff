"""The experiment config: defaults, YAML round trip, overrides and one-line errors."""

from __future__ import annotations

import pytest

from invmap.cli import main
from invmap.config import Config, load_config, parse_override, validate_config


def test_default_loads_and_builds_physics():
    cfg = load_config(None)
    assert isinstance(cfg, Config)
    assert cfg.operator.name == "tomography" and cfg.operator.params()["angles"] == 60
    assert cfg.noise.name == "gaussian" and cfg.noise.params()["relative"] == pytest.approx(0.01)
    assert cfg.model.name == "unet" and cfg.model.input == "fbp"
    phys = cfg.physics()
    assert tuple(phys.operator.in_shape) == (cfg.data.size, cfg.data.size)
    assert phys.operator.out_shape[0] == 60


def test_yaml_round_trip(tmp_path):
    cfg = load_config(None, ["training.lr=3e-4", "model.base_channels=8"])
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    again = load_config(p)
    assert again.to_dict() == cfg.to_dict()
    assert again.training.lr == pytest.approx(3e-4)


def test_file_with_exponent_floats_and_partial_sections(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  lr: 1e-4\n  epochs: 3\n")
    cfg = load_config(p)
    assert isinstance(cfg.training.lr, float) and cfg.training.lr == pytest.approx(1e-4)
    assert cfg.training.epochs == 3
    assert cfg.operator.name == "tomography"  # the rest comes from the default


def test_naming_another_operator_drops_default_params(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("operator:\n  name: blur\n  sigma: 2.0\n")
    cfg = load_config(p)
    assert cfg.operator.name == "blur" and cfg.operator.params() == {"sigma": 2.0}
    cfg2 = load_config(None, ["operator.sigma=1.5", "operator.name=blur"])  # order does not matter
    assert cfg2.operator.params() == {"sigma": 1.5}


def test_override_values_are_yaml():
    assert parse_override("training.lr=3e-4") == (["training", "lr"], 3e-4)
    assert parse_override("evaluation.methods=[fbp, model]") == (["evaluation", "methods"], ["fbp", "model"])
    assert parse_override("training.fresh_noise=false")[1] is False
    cfg = load_config(None, ["training.optimizer=sgd", "training.momentum=0.5", "data.size=64"])
    assert (cfg.training.optimizer, cfg.training.momentum, cfg.data.size) == ("sgd", 0.5, 64)
    # YAML reads a bare on/off as a boolean; amp takes them as the words
    assert [load_config(None, [f"training.amp={v}"]).training.amp for v in ("on", "off", "auto")] == ["on", "off", "auto"]


@pytest.mark.parametrize("overrides, expected", [
    (["training.lrr=1"], "training.lrr: unknown key 'lrr'; allowed: optimizer, lr"),
    (["foo=1"], "foo: unknown key 'foo'; allowed: name, seed, data"),
    (["training.optimizer=adamm"], "training.optimizer: 'adamm' is not one of sgd, adam, adamw"),
    (["training.schedule=linear"], "'linear' is not one of constant, step, cosine"),
    (["training.loss=huber"], "'huber' is not one of mse, l1, psnr, ssim-mix"),
    (["training.lr=-1"], "training.lr: Input should be greater than 0"),
    (["training.lr=fast"], "training.lr:"),
    (["data.size=2"], "data.size:"),
    (["model.input=sinogram"], "model.input: 'sinogram' is not one of measurement, adjoint, fbp, pinv"),
    (["operator.anglez=30"], "operator 'tomography': unknown parameter(s) 'anglez'; allowed: angles"),
    (["operator.name=radon"], "unknown operator 'radon'"),
    (["model.base_channels=1.5"], "model 'unet': invalid value 1.5 for 'base_channels'"),
    (["model.widht=3"], "model 'unet': unknown parameter(s) 'widht'"),
    (["noise.name=poison"], "unknown noise 'poison'"),
    (["noise.sigma=0.1"], "give exactly one of sigma, relative"),
    (["data.source=mnist"], "unknown image source 'mnist'"),
    (["data.params={count: 3}"], "'count' is set by the data section"),
    (["evaluation.data_range=max"], "evaluation.data_range: must be a number > 0 or max-min, got 'max'"),
    (["evaluation.data_range=0"], "evaluation.data_range: must be a number > 0 or max-min"),
    (["evaluation.data_range=.inf"], "evaluation.data_range: must be a number > 0 or max-min"),
    (["operator.rotation_center=[1, 2, 3]"], "invalid value [1, 2, 3] for 'rotation_center'"),
    (["training.snapshots=[1, -3]"], "training.snapshots: each snapshot is a number of minutes in (0, 100000], got -3.0"),
    (["training.snapshots=[.nan]"], "training.snapshots.0: Input should be a finite number"),
    (["training.snapshots=[1e9]"], "each snapshot is a number of minutes in (0, 100000]"),
    ([f"training.snapshots=[{', '.join(['1'] * 33)}]"], "training.snapshots: List should have at most 32 items"),
    (["evaluation.zoo=[" + ", ".join(["a"] * 17) + "]"], "must be true, false or a list of at most 16 zoo entry names"),
    (["evaluation.zoo=maybe"], "evaluation.zoo:"),
])
def test_errors_name_the_key_and_allowed_values(overrides, expected):
    with pytest.raises(ValueError) as e:
        load_config(None, overrides)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("config:")
    assert expected in msg


@pytest.mark.parametrize("bad, expected", [
    ("training.lr", "expected KEY=VALUE"),
    ("=3", "bad key"),
    ("training..lr=3", "bad key"),
    ("training.lr.x=1", "'training.lr' is a value, not a section"),
    ("training.lr=[1,", "not valid YAML"),
])
def test_bad_overrides(bad, expected):
    with pytest.raises(ValueError, match="config: --set") as e:
        load_config(None, [bad])
    assert expected in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping of sections"):
        load_config(p)
    p.write_text("training: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ValueError, match="mapping"):
        validate_config(["x"])


def test_cli_show_default_and_check(tmp_path, capsys):
    assert main(["config", "--show-default"]) == 0
    out = capsys.readouterr().out
    assert "tomography" in out and "angles: 60" in out
    p = tmp_path / "c.yaml"
    p.write_text("training:\n  epochs: 2\n")
    assert main(["config", "--check", str(p), "--set", "training.lr=0.01"]) == 0
    out = capsys.readouterr().out
    cfg = validate_config(__import__("yaml").safe_load(out))
    assert cfg.training.epochs == 2 and cfg.training.lr == pytest.approx(0.01)
    p.write_text("training:\n  optimizer: adamm\n")
    assert main(["config", "--check", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "invmap: error: config: training.optimizer: 'adamm' is not one of sgd, adam, adamw"
