"""Changes laid over a config before it is validated: ``--set KEY=VALUE`` overrides (the value read
as YAML) and a config file merged over the default."""

from __future__ import annotations

from typing import Any, Iterable

import yaml

from .safe_yaml import load_yaml


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"training.lr=3e-4"`` → (["training", "lr"], 0.0003); the value is read as YAML."""
    shown = text if len(text) <= 80 else text[:79] + "…"  # a long value never hides the reason
    if "=" not in text:
        raise ValueError(f"config: --set '{shown}': expected KEY=VALUE, e.g. training.lr=3e-4")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ValueError(f"config: --set '{shown}': bad key '{key[:80]}' (use dotted names like training.lr)")
    try:
        value = load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ValueError(f"config: --set '{shown}': value is not valid YAML ({str(e).splitlines()[0]})") from None
    return key.split("."), value


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Set each ``a.b.c=value`` in the nested dict `data` (in place; returned)."""
    for ov in overrides:
        path, value = parse_override(ov)
        node = data
        for i, part in enumerate(path[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ValueError(f"config: --set '{ov}': '{'.'.join(path[: i + 1])}' is a value, not a section")
            node = nxt
        node[path[-1]] = value
    return data


_OPEN = {"operator": "name", "noise": "name", "model": "name"}



def merge(base: dict, user: dict) -> dict:
    """`user` laid over `base` (nested dicts merged key by key).

    When `user` names a different operator / noise / model (or data source) than `base`,
    that section's registry parameters start empty instead of inheriting `base`'s.
    """
    out = dict(base)
    for k, v in user.items():
        b = out.get(k)
        if isinstance(b, dict) and isinstance(v, dict):
            if k in _OPEN and "name" in v and v["name"] != b.get("name"):
                b = {kk: vv for kk, vv in b.items() if kk in ("name", "input")}
            if k == "data" and "source" in v and v["source"] != b.get("source"):
                b = {kk: vv for kk, vv in b.items() if kk != "params"}
            out[k] = merge(b, v) if k != "params" else dict(v)
        else:
            out[k] = v
    return out


__all__ = ["parse_override", "apply_overrides", "merge"]
