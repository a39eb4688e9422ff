"""The one hardened YAML loader every YAML text invmap parses goes through (config files, ``--set``,
``reconstruct --param``): a safe loader that also reads 1e-3 as a float (YAML 1.1 wants "1.0e-3"),
refuses duplicate keys, and bounds what a text may ask for."""

from __future__ import annotations

import re
from typing import Any

import yaml

#: bounds on what a YAML text may ask for: its size, its nesting, and its node count after
#: expanding aliases (an "alias bomb" of a few lines expands to billions of values)
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000


class YAMLBoundsError(yaml.YAMLError):
    """A YAML text beyond `MAX_YAML_BYTES`, `MAX_YAML_DEPTH` or `MAX_YAML_NODES`."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with bounded nesting and alias expansion (checked on the node graph,
    before any Python object is built)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise YAMLBoundsError(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _expanded_size(node, {}, set())
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """A mapping that states a key twice is an error (YAML would silently keep the last)."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` keys are overridden on purpose
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first on line {first})", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """Number of nodes of `node` with every alias expanded (an error above `MAX_YAML_NODES`)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise YAMLBoundsError("an alias refers to a node that contains it (recursive)")
    open_.add(key)
    n = 1
    if isinstance(node, yaml.SequenceNode):
        n += sum(_expanded_size(c, sizes, open_) for c in node.value)
    elif isinstance(node, yaml.MappingNode):
        n += sum(_expanded_size(k, sizes, open_) + _expanded_size(v, sizes, open_) for k, v in node.value)
    open_.discard(key)
    if n > MAX_YAML_NODES:
        raise YAMLBoundsError(f"more than {MAX_YAML_NODES} values once its aliases are expanded")
    sizes[key] = n
    return n


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """`text` read as YAML by the one hardened loader every YAML invmap parses goes through (config
    files, ``--set``, ``reconstruct --param``): safe tags only, no duplicate keys, at most
    `MAX_YAML_BYTES` characters, `MAX_YAML_DEPTH` levels and `MAX_YAML_NODES` values with aliases
    expanded (a `YAMLBoundsError` beyond them)."""
    if len(text) > MAX_YAML_BYTES:
        raise YAMLBoundsError(f"longer than {MAX_YAML_BYTES} characters")
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass


__all__ = ["load_yaml", "YAMLBoundsError", "MAX_YAML_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES"]
