"""Reading an experiment config: the embedded default, a file or preset laid over it, ``--set``
overrides applied last, then the schema's validation (`load_config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import yaml

from ..files import read_text
from .overrides import apply_overrides, merge, parse_override
from .safe_yaml import load_yaml, MAX_YAML_BYTES
from .schema import Config, validate_config

DEFAULT_PATH = Path(__file__).parent.with_name("default.yaml")
#: experiment presets (`invmap config --preset NAME`); a config path that is not a file may name one
PRESETS_DIR = Path(__file__).parent.with_name("configs")


def presets() -> dict[str, Path]:
    """Preset name → its YAML file (laid over the default like any config file)."""
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.yaml"))}



def read_yaml(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists() and str(path) in presets():
        p = presets()[str(path)]
    if not p.exists():
        raise FileNotFoundError(f"config file not found: {p} (presets: {', '.join(presets())})")
    text = read_text(p, "config:", limit=MAX_YAML_BYTES)  # a regular file, bounded by what is read
    try:
        data = load_yaml(text)
    except yaml.YAMLError as e:
        raise ValueError(f"config: {p}: not valid YAML ({' '.join(str(e).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config: {p}: expected a mapping of sections at the top level")
    return data


def default_text() -> str:
    """The embedded default experiment, as YAML text (with comments)."""
    return DEFAULT_PATH.read_text()



def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read and validate an experiment config.

    `path` None → the embedded default (src/invmap/default.yaml). A file is laid over the
    default, so it need only state what differs (`merge`: naming another operator, noise,
    model or image source drops the default's parameters for it). `overrides` are
    ``"section.key=value"`` strings applied last, e.g. ``"training.lr=3e-4"``.
    """
    data = load_yaml(default_text()) or {}
    if path is not None:
        data = merge(data, read_yaml(path))
    overrides = list(overrides)
    parsed = [parse_override(o) for o in overrides]
    # renaming an entry (operator.name=..., data.source=...) first, then the keys that follow it
    first = [o for (k, _), o in zip(parsed, overrides) if len(k) == 2 and k[1] in ("name", "source")]
    rest = [o for (k, _), o in zip(parsed, overrides) if not (len(k) == 2 and k[1] in ("name", "source"))]
    for o in first:
        data = merge(data, apply_overrides({}, [o]))
    data = apply_overrides(data, rest)
    return validate_config(data)


__all__ = ["load_config", "read_yaml", "default_text", "presets", "DEFAULT_PATH", "PRESETS_DIR"]
