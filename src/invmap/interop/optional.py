"""The optional peers of the bridges, imported only when a bridge is used: a missing one is a
one-line ``ImportError`` naming the package to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import the optional peer `module`, or a one-line ImportError saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{purpose} needs the optional package '{package or module}' "
                          f"(pip install {package or module})") from None


__all__ = ["require"]
