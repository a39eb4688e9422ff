"""Memory budget: refuse, before allocating, what a config or a model file asks for beyond a limit.

A hostile or mistyped value (``base_channels: 100000``, ``angles: 10000000``, ``data.size:
4096`` with 2000 training images, a Gaussian blur of σ = 10⁶, a 10000×10000 PNG) would
otherwise take minutes and all of the machine's memory before failing. Each place that
allocates something large first estimates its size in bytes and calls `check`, which
raises a one-line `MemoryBudgetError` (a ``ValueError``) above the limit.

Limits (environment variables; sizes as bytes or with a K, M, G or T suffix, powers of 1024):

- ``INVMAP_MAX_MEMORY``: the most one estimate may ask for; default the machine's
  physical memory.
- ``INVMAP_MAX_IMAGE_PIXELS``: the most pixels an image file may hold before it is
  decoded (a decompression bomb is a small file with huge dimensions); default 2²⁶
  (an 8192×8192 image).
"""

from __future__ import annotations

import os
import re
from typing import Callable, TypeVar

import torch
from torch.overrides import TorchFunctionMode

T = TypeVar("T")

MEMORY_ENV = "INVMAP_MAX_MEMORY"
PIXELS_ENV = "INVMAP_MAX_IMAGE_PIXELS"
DEFAULT_IMAGE_PIXELS = 1 << 26
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class MemoryBudgetError(ValueError):
    """An estimate is above the memory limit; nothing was allocated."""


def parse_size(text: str) -> int:
    """``"512M"`` → 536870912; plain digits are bytes (or a count, for pixels)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]?)i?B?\s*", str(text), re.I)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 8G, 512M or a number of bytes)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _env_size(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse_size(raw)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def physical_memory() -> int:
    """Bytes of physical memory of this machine (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def memory_limit() -> int:
    """The largest estimate `check` accepts, in bytes (``INVMAP_MAX_MEMORY``)."""
    return _env_size(MEMORY_ENV, physical_memory() or (16 << 30))


def human(nbytes: float) -> str:
    """``3.5 GiB`` style."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.3g} {unit}" if nbytes >= 1000 else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.3g} EiB"  # pragma: no cover


def check(nbytes: float, what: str) -> None:
    """Raise `MemoryBudgetError` if `what` would need more than `memory_limit` bytes."""
    limit = memory_limit()
    if nbytes > limit:
        raise MemoryBudgetError(f"{what} would need about {human(nbytes)}, above the memory limit of {human(limit)}; "
                                f"use smaller settings, or raise the limit with {MEMORY_ENV}=<size> if you mean it")


def check_pixels(count: int, what: str) -> None:
    """Refuse an image file of more than ``INVMAP_MAX_IMAGE_PIXELS`` pixels (values) before
    decoding it; `what` names it with its dimensions."""
    limit = _env_size(PIXELS_ENV, DEFAULT_IMAGE_PIXELS)
    if count > limit:
        raise MemoryBudgetError(f"{what} holds {count} pixels, above the limit of {limit}; "
                                f"raise it with {PIXELS_ENV}=<count> if you mean it")


#: in-place random fills: on a meta tensor (no values) they do nothing, so `on_meta` skips them
#: (torch's first ``normal_`` on the meta device costs about 2 s, a network's whole description)
RANDOM_FILLS = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.bernoulli_,
                          torch.Tensor.random_, torch.Tensor.exponential_, torch.Tensor.log_normal_,
                          torch.Tensor.cauchy_, torch.Tensor.geometric_, torch.Tensor.erfinv_})


class _NoFillOnMeta(TorchFunctionMode):
    """A random fill of a meta tensor returns the tensor unchanged: it has no values to fill."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in RANDOM_FILLS and args and isinstance(args[0], torch.Tensor) and args[0].is_meta:
            return args[0]
        return func(*args, **(kwargs or {}))


def on_meta(build: Callable[[], T]) -> T:
    """Run `build` with torch factories on the meta device: shapes without memory
    (e.g. a network of 10¹¹ parameters is described in microseconds); random initialisation,
    which has nothing to fill there, is skipped (`RANDOM_FILLS`)."""
    with torch.device("meta"), _NoFillOnMeta():
        return build()


def tensor_bytes(module: torch.nn.Module) -> int:
    """Bytes of a module's parameters and buffers (also for a module on the meta device)."""
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


__all__ = ["MemoryBudgetError", "check", "check_pixels", "memory_limit", "physical_memory", "parse_size", "human",
           "on_meta", "tensor_bytes", "MEMORY_ENV", "PIXELS_ENV"]
