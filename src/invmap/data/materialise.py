"""Materialise a pair data set to disk and load it back bit-identical.

``materialise(ds, "pairs.npz")`` writes two files, each atomically (temp file +
``os.replace``, so an interrupted write never leaves a half file under the final name):

- ``pairs.npz``: arrays ``y`` ``[N, 1, *out_shape]`` and ``x`` ``[N, 1, H, W]`` (float32,
  or complex64 y), uncompressed;
- ``pairs.json``: the manifest — source, operator spec, noise spec, seed, simulation mode
  (and the fine-grid derivation), shapes, invmap version — plus the npz's SHA-256.

``load_pairs(path, expect=ds_or_manifest)`` checks the checksum and refuses a file whose
manifest differs from the requested task, naming the first mismatching field
(e.g. ``noise.params.relative``). The invmap version is recorded but not compared.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write
from .pairs import FORMAT, PairDataset

#: manifest fields recorded but not part of the task
NOT_COMPARED = ("invmap_version", "sha256", "created_by")
#: fields compared first, so the reported mismatch is the most telling one
ORDER = ("format", "name", "source", "operator", "noise", "seed", "simulation", "fresh_noise", "epoch",
         "count", "x_shape", "y_shape")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def materialise(ds: PairDataset, path: str | os.PathLike, batch_size: int = 64) -> Path:
    """Simulate every pair of `ds` (batched) and write ``path`` (.npz) + its JSON manifest."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    n = len(ds)
    ys, xs = [], []
    with torch.no_grad():
        for s in range(0, n, int(batch_size)):
            y, x = ds.simulate(range(s, min(n, s + int(batch_size))))
            ys.append(y.cpu())
            xs.append(x.cpu())
    y = torch.cat(ys).numpy() if ys else np.zeros((0, *ds.manifest()["y_shape"]), np.float32)
    x = torch.cat(xs).numpy() if xs else np.zeros((0, *ds.manifest()["x_shape"]), np.float32)
    atomic_write(path, lambda tmp: np.savez(tmp, y=y, x=x))
    man = ds.manifest()
    man["sha256"] = _sha256(path)
    text = json.dumps(man, indent=2, sort_keys=True)
    atomic_write(manifest_path(path), text)
    return path


def _diff(a: Any, b: Any, where: str) -> str | None:
    """The first path where `a` (file) and `b` (requested) differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=lambda k: (k not in ORDER, ORDER.index(k) if k in ORDER else 0, k)):
            if k in NOT_COMPARED and not where:
                continue
            if k not in a or k not in b:
                return f"{where}{k}"
            d = _diff(a[k], b[k], f"{where}{k}.")
            if d is not None:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for j, (u, v) in enumerate(zip(a, b)):
            d = _diff(u, v, f"{where}{j}.")
            if d is not None:
                return d
        return None
    if isinstance(a, float) or isinstance(b, float):
        try:
            if float(a) == float(b):
                return None
        except (TypeError, ValueError):
            pass
    return None if a == b else where.rstrip(".")


def _lookup(d: dict, dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return "(absent)"
    return cur


def load_pairs(path: str | os.PathLike, expect: PairDataset | dict | None = None
               ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Load ``(y, x, manifest)`` written by `materialise`.

    With `expect` (a `PairDataset` or its ``manifest()``), a file made for a different
    task is refused with a ``ValueError`` naming the first mismatching field.
    """
    path = Path(path)
    mpath = manifest_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pair file {path} does not exist")
    if not mpath.is_file():
        raise FileNotFoundError(f"pair file {path} has no manifest {mpath.name}")
    try:
        man = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"manifest {mpath} is not valid JSON: {e}") from None
    if man.get("format") != FORMAT:
        raise ValueError(f"manifest {mpath}: unknown format {man.get('format')!r} (expected {FORMAT})")
    if man.get("sha256") and _sha256(path) != man["sha256"]:
        raise ValueError(f"pair file {path} does not match its manifest's checksum (modified or truncated)")
    if expect is not None:
        want = expect.manifest() if isinstance(expect, PairDataset) else expect
        want = json.loads(json.dumps(want))  # tuples → lists, as stored
        d = _diff(man, want, "")
        if d is not None:
            raise ValueError(f"pair file {path} was made for a different task: field '{d}' is "
                             f"{_lookup(man, d)!r} in the file but {_lookup(want, d)!r} was requested")
    with np.load(path, allow_pickle=False) as z:
        y, x = torch.from_numpy(z["y"].copy()), torch.from_numpy(z["x"].copy())
    if list(x.shape[1:]) != man["x_shape"] or list(y.shape[1:]) != man["y_shape"] or len(x) != man["count"]:
        raise ValueError(f"pair file {path}: arrays {list(y.shape)}, {list(x.shape)} do not match the manifest")
    return y, x, man
