"""invmap tomography parameters that reproduce a peer library's parallel-beam geometry.

invmap rotates about the image centre ((N−1)/2, (N−1)/2 in pixel indices) and centres its
detector on it. The peers differ (measured in tests/test_conventions.py, written up in
docs/CONVENTIONS.md):

- ``skimage.transform.radon(image, theta, circle=True)`` rotates about pixel ``N//2`` and
  centres its N cells on index ``N//2``; for even N that is half a pixel right and down of
  invmap's centre, i.e. ``rotation_center = (½, −½)`` and ``detector_offset = −½``.
  With ``circle=False`` it first pads the image to D = N + ⌈(√2 − 1)N⌉ pixels
  (``(N + pad)//2 − N//2`` before) and rotates about padded pixel ``D//2``;
- ``deepinv.physics.Tomography(angles, N, circle=False, normalize=False)`` pads the image
  to ``N + ⌈(√2 − 1)N⌉`` pixels (``(N + pad)//2 − N//2`` before) and rotates about the
  padded image's centre; ``circle=True`` keeps N cells about invmap's own centre.

Both take angles in degrees, counter-clockwise, as invmap; their sinograms are invmap's
``y[θ, k]`` transposed. ASTRA needs no special settings (``parallel`` geometry, angles in
radians, same cell count and width).

>>> import invmap.operators as ops
>>> K = ops.build("tomography", image_shape=(64, 64), angles=30, **skimage_radon_settings(64))
"""

from __future__ import annotations

import math


def skimage_radon_settings(n: int, circle: bool = True) -> dict:
    """Parameters of `tomography` on an n × n image matching ``skimage.transform.radon(..., circle)``."""
    pad = 0 if circle else math.ceil(math.sqrt(2) * n - n)
    D = n + pad
    d = D // 2 - ((n + pad) // 2 - n // 2) - (n - 1) / 2  # the rotation centre, relative to invmap's
    return {"detectors": int(D), "detector_offset": (D - 1) / 2 - D // 2, "rotation_center": [d, -d]}


def deepinv_tomography_settings(n: int, circle: bool = False) -> dict:
    """Parameters of `tomography` on an n × n image matching ``deepinv.physics.Tomography(..., circle)``.

    deepinv pads as scikit-image does but rotates about the padded image's true centre."""
    if circle:
        return {"detectors": int(n)}
    pad = math.ceil(math.sqrt(2) * n - n)
    d = pad / 2 - ((n + pad) // 2 - n // 2)
    return {"detectors": int(n + pad), "rotation_center": [d, -d]}


__all__ = ["skimage_radon_settings", "deepinv_tomography_settings"]
