"""The experiment config: the one place an experiment y = K x + e → x̂ is described.

An experiment is a task (image source, forward operator K, noise e), a method (a model
and its input strategy), training settings and a seed. It is written as YAML, validated
here with pydantic (unknown keys and bad values fail with one line naming the key path
and what is allowed), and saved next to every run. Its parts: `safe_yaml` (the hardened loader),
`schema` (the sections), `registries` (open sections checked against their registries), `overrides`
(``--set`` and merging), `load` (default + file + overrides → `Config`), `differences`.

Sections::

    name, seed
    data:       source, size, train, val, test, simulation, test_simulation, params{...}
    operator:   name + the operator's own parameters (checked against `invmap.operators`)
    noise:      name + the noise model's parameters (checked against `invmap.noise`)
    model:      name, input + the architecture's parameters (checked against `invmap.models`)
    training:   optimizer, lr, schedule, loss, batch_size, epochs, max_minutes, device, amp, ...
    evaluation: methods, tune, tune_grid, params, batch_size, data_range

>>> cfg = load_config(None, ["training.lr=3e-4"])
>>> cfg.training.lr
0.0003
"""

from __future__ import annotations

from .differences import check_model_matches, first_difference
from .load import default_text, DEFAULT_PATH, load_config, presets, PRESETS_DIR, read_yaml
from .overrides import apply_overrides, merge, parse_override
from .safe_yaml import load_yaml, MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, YAMLBoundsError
from .schema import (AugmentConfig, Config, DataConfig, EvaluationConfig, MixConfig, ModelConfig, NoiseConfig,
                     OperatorConfig, TrainingConfig, validate_config)

__all__ = ["load_yaml", "YAMLBoundsError", "MAX_YAML_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "first_difference",
           "check_model_matches", "Config", "DataConfig", "OperatorConfig", "NoiseConfig", "ModelConfig",
           "TrainingConfig", "EvaluationConfig", "MixConfig", "AugmentConfig", "load_config", "validate_config",
           "apply_overrides", "parse_override", "merge", "read_yaml", "default_text", "presets", "DEFAULT_PATH",
           "PRESETS_DIR"]
