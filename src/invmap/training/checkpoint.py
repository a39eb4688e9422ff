"""Checkpoints without pickles, written atomically.

A checkpoint is one ``checkpoint.safetensors`` file: every tensor of the training state
(model weights, optimizer moments, RNG states as uint8 tensors) under a flat key, and the
rest (step counts, hyper-parameters, epoch, best score, the structure that puts the
tensors back) as JSON in the file's metadata. ``checkpoint.json`` is a readable copy of
that JSON. Loading a checkpoint therefore never runs code.

Every write goes to a temporary file in the same folder and is moved into place with
``os.replace``, so a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

from ..atomic import atomic_write
from ..files import check_regular

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_JSON = "checkpoint.json"
_META_KEY = "invmap_checkpoint"


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """`safetensors.torch.save_file` written atomically (see `invmap.atomic`)."""
    cpu = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(cpu, tmp, metadata=metadata))


# -- flattening nested state (dicts, lists, tensors, numbers) ---------------------------

def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "s") -> Any:
    """A JSON-able skeleton of `obj`; each tensor is moved to ``tensors[key]`` and
    replaced by ``{"__tensor__": key}``. Dict keys keep their type (optimizer state is
    keyed by int)."""
    if isinstance(obj, torch.Tensor):
        key, n = prefix, 0
        while key in tensors:
            n += 1
            key = f"{prefix}#{n}"
        tensors[key] = obj.detach().cpu().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__map__": [[k, flatten(v, tensors, f"{prefix}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} at {prefix}")


def unflatten(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten`."""
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]]
        if "__map__" in skel:
            return {k: unflatten(v, tensors) for k, v in skel["__map__"]}
        if "__tuple__" in skel:
            return tuple(unflatten(v, tensors) for v in skel["__tuple__"])
    if isinstance(skel, list):
        return [unflatten(v, tensors) for v in skel]
    return skel


def save_checkpoint(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write the nested training `state` (tensors + plain values) to ``run_dir/checkpoint.safetensors``."""
    run_dir = Path(run_dir)
    tensors: dict[str, torch.Tensor] = {}
    skel = flatten(state, tensors)
    text = json.dumps(skel)
    atomic_save_tensors(tensors, run_dir / CHECKPOINT, metadata={_META_KEY: text})
    readable = {k: v for k, v in state.items() if not isinstance(v, (dict, torch.Tensor)) or k == "info"}
    atomic_write(run_dir / CHECKPOINT_JSON, json.dumps(readable, indent=2, default=str) + "\n")
    return run_dir / CHECKPOINT


def load_checkpoint(run_dir: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read the state written by `save_checkpoint` (tensors on `device`)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint to resume from: {path}")
    check_regular(path, "checkpoint", within=run_dir)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if _META_KEY not in meta:
            raise ValueError(f"{path} is not an invmap checkpoint (no '{_META_KEY}' metadata)")
        tensors = load_file(str(path), device=str(device))
        return unflatten(json.loads(meta[_META_KEY]), tensors)
    except ValueError:
        raise
    except Exception as e:  # safetensors' own error type for a corrupt header/data: one line
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: corrupt checkpoint ({msg}); cannot resume") from None


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    """The global torch RNG (+ CUDA's when present) and named generators, as uint8 tensors."""
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state()
    for k, g in generators.items():
        out[f"gen:{k}"] = g.get_state()
    return out


def set_rng_state(state: dict[str, torch.Tensor], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu().to(torch.uint8))
    for k, g in generators.items():
        if f"gen:{k}" in state:
            g.set_state(state[f"gen:{k}"].cpu().to(torch.uint8))
