"""Where two configs differ, and whether a config describes a trained model (its ``model.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


def first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, a's value, b's value) of the first place two nested dicts differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            d = first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
            if d:
                return d
        return None
    return None if a == b else (path, a, b)


def check_model_matches(config: Any, meta: Mapping, where: str | Path = "the run") -> None:
    """A one-line ``ValueError`` when the config (the run's config.yaml, with any ``--set``)
    describes another network or image size than the trained model (``model.json``) — e.g. a
    config.yaml rewritten after training: scoring the model under it would be wrong silently."""
    m = config.model
    kind = meta.get("kind") or {}
    arch = (meta.get("architecture") or {}) if kind.get("name", "post-processing") == "post-processing" else kind
    stored = arch.get("params") or {}
    pairs = [("model.name", m.name, arch.get("name")),
             ("model.input", m.input, (meta.get("input") or {}).get("input", m.input)),
             ("the image shape (data.size)", list(config.image_shape),
              meta.get("image_shape", list(config.image_shape)))]
    pairs += [(f"model.{k}", v, stored[k]) for k, v in m.params().items() if k in stored]
    for key, want, have in pairs:
        if want != have:
            raise ValueError(f"{where}: the config says {key} = {want!r} but the trained model (model.json) has "
                             f"{have!r}; the config does not describe this model")


__all__ = ["first_difference", "check_model_matches"]
