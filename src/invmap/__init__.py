"""invmap: learn and evaluate inverse maps for imaging inverse problems y = K x + e."""

__version__ = "0.1.0"
