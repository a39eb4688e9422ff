"""Saving and loading trained models: ``model.safetensors`` (tensors) + ``model.json`` (recipe).

Loading never unpickles: the weights are read with ``safetensors.torch.load_file`` and the
network is rebuilt from the JSON through the model registry, so opening a stranger's model
cannot run code. Files are written atomically (temporary file + ``os.replace``), the JSON
last, so a crash leaves either the old model or the new one.

``model.json`` holds the caller's ``meta`` (e.g. ``physics: Physics.spec()``, image size,
training settings) plus the keys invmap adds:

- ``architecture``: ``{name, params}`` — `invmap.models.build(name, **params)`;
- ``input``: the input strategy of `LearnedReconstructor` (null for a bare network);
- ``network``: ``{fixed_input_shape, output_shape, same_size}`` for compatibility checks;
- ``versions``, ``parameter_count``, ``tensors`` (name → shape), ``weights`` (file name,
  inside the model's directory), ``weights_sha256`` (`weights_digest` of the tensors:
  checked on load, so flipped bytes in the weights are an error, not a silently other model).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_write
from ..paths import inside
from .reconstructor import LearnedReconstructor

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"
FORMAT = "invmap-model"
FORMAT_VERSION = 1
RESERVED = ("format", "format_version", "architecture", "input", "network", "versions",
            "parameter_count", "tensors", "weights", "weights_sha256")


def weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (in name order), so the
    digest does not depend on how the safetensors file lays out its header."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{list(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _net(model: nn.Module) -> nn.Module:
    return model.net if isinstance(model, LearnedReconstructor) else model


def _shape(t: Any) -> list[int] | None:
    return None if t is None else [int(s) for s in t]


def save_model(run_dir: str | os.PathLike, recon: nn.Module, meta: dict | None = None,
               physics: Any = None) -> Path:
    """Write ``run_dir/model.safetensors`` and ``run_dir/model.json``; returns the JSON path.

    `recon` is a `LearnedReconstructor` (or a bare network from `invmap.models.build`).
    `meta` must be JSON-serialisable and may not use the reserved keys above. With
    `physics` (a `Physics` or an operator), ``physics`` (its spec), ``image_shape`` and
    ``measurement_shape`` are recorded too, unless `meta` already gives them.
    """
    import safetensors.torch

    import invmap

    net = _net(recon)
    if not hasattr(net, "model_name"):
        raise ValueError("save_model: the network was not built by invmap.models.build (no 'model_name'), "
                         "so it cannot be rebuilt from model.json")
    meta = dict(meta or {})
    clash = [k for k in meta if k in RESERVED]
    if clash:
        raise ValueError(f"save_model: meta key(s) {', '.join(map(repr, clash))} are reserved; "
                         f"reserved: {', '.join(RESERVED)}")
    if physics is not None:
        from ..physics import NO_NOISE

        op = getattr(physics, "operator", physics)
        if "physics" not in meta:  # a Physics, or a bare operator (no noise)
            meta["physics"] = physics.spec() if hasattr(physics, "operator") else {"operator": op.spec(),
                                                                                    "noise": NO_NOISE}
        meta.setdefault("image_shape", list(op.in_shape))
        meta.setdefault("measurement_shape", list(op.out_shape))
        meta.setdefault("complex_measurement", bool(getattr(op, "complex_output", False)))
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in recon.state_dict().items()}
    fixed = getattr(net, "fixed_input_shape", None)
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **meta,
        "architecture": {"name": net.model_name, "params": net.model_params},
        "input": recon.input_params() if isinstance(recon, LearnedReconstructor) else None,
        "network": {"fixed_input_shape": _shape(fixed),
                    "output_shape": _shape(net.output_shape(tuple(fixed))) if fixed else None,
                    "same_size": bool(getattr(net, "same_size", True))},
        "versions": {"invmap": invmap.__version__, "torch": torch.__version__.split("+")[0]},
        "parameter_count": sum(p.numel() for p in net.parameters()),
        "weights": MODEL_WEIGHTS,
        "tensors": {k: list(v.shape) for k, v in state.items()},
        "weights_sha256": weights_digest(state),
    }
    try:
        text = json.dumps(doc, indent=2, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"save_model: meta is not JSON-serialisable: {e}") from None
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / MODEL_WEIGHTS, safetensors.torch.save(state))
    atomic_write(out / MODEL_JSON, text + "\n")
    return out / MODEL_JSON


def _json_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_JSON
    elif p.suffix == ".safetensors":
        p = p.with_name(MODEL_JSON)
    if not p.is_file():
        raise FileNotFoundError(f"model file not found: {p}")
    return p


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load ``(recon, meta)`` from a run directory or its ``model.json``.

    `meta` is the whole ``model.json`` document (the caller's meta plus the keys invmap
    added). Raises ``FileNotFoundError`` naming a missing file and a one-line ``ValueError``
    naming the file for corrupt JSON / safetensors or an architecture that does not match
    the stored tensors (naming the first mismatching tensor). The model is returned in
    eval mode.
    """
    import safetensors.torch

    from . import build

    jpath = _json_path(path)
    try:
        doc = json.loads(jpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{jpath}: not a valid model.json ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{jpath}: not an invmap model file (expected \"format\": \"{FORMAT}\")")
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(f"{jpath}: model format version {doc['format_version']} is newer than this invmap "
                         f"understands ({FORMAT_VERSION}); upgrade invmap")
    try:
        arch = doc["architecture"]
        net = build(arch["name"], **arch.get("params", {}))
        recon: nn.Module = net if doc.get("input") is None else LearnedReconstructor(net, **doc["input"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{jpath}: incomplete model description (missing or bad {e})") from None
    except ValueError as e:
        raise ValueError(f"{jpath}: {e}") from None
    wpath = inside(jpath.parent, doc.get("weights", MODEL_WEIGHTS), f"{jpath}: \"weights\"")
    if not wpath.is_file():
        raise FileNotFoundError(f"model weights not found: {wpath}")
    try:
        tensors = safetensors.torch.load_file(str(wpath), device="cpu")
    except Exception as e:  # safetensors raises its own error type for corrupt headers/data
        raise ValueError(f"{wpath}: corrupt or not a safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    expected = recon.state_dict()
    name = arch["name"]
    for k, v in expected.items():
        if k not in tensors:
            raise ValueError(f"{wpath}: does not match architecture '{name}' in {jpath.name}: tensor '{k}' is missing")
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(
                f"{wpath}: does not match architecture '{name}' in {jpath.name}: tensor '{k}' has shape "
                f"{list(tensors[k].shape)}, expected {list(v.shape)}")
    extra = [k for k in tensors if k not in expected]
    if extra:
        raise ValueError(f"{wpath}: does not match architecture '{name}' in {jpath.name}: unexpected tensor '{extra[0]}'")
    want = doc.get("weights_sha256")  # absent in files of older invmap versions
    if want is not None and weights_digest(tensors) != want:
        raise ValueError(f"{wpath}: the weights do not match the SHA-256 recorded in {jpath.name} "
                         "(the file was changed or damaged); refusing to load them")
    recon.load_state_dict(tensors, strict=True)
    return recon.to(device).eval(), doc


def check_compatible(meta: dict, target: Any) -> None:
    """Raise a one-line ``ValueError`` if a loaded model cannot be applied to `target`.

    `target` is a `Physics`, a `LinearOperator`, a measurement batch ``[B, C, ...]`` or a
    measurement shape (its trailing dimensions, e.g. ``(angles, detectors)``). Checked:
    a fixed-size (dense) network gets an input of its size — the measurement for input
    'measurement', the image Kᵀy for the image-domain inputs — and an image-to-image
    network fed the raw measurement returns an image of the training image size. A
    different operator of compatible shape (fewer views, another noise level) is allowed:
    that is a distribution shift, not an error. With only a measurement shape the
    image-domain inputs cannot be checked.
    """
    inp = (meta.get("input") or {}).get("input", "measurement")
    net = meta.get("network") or {}
    fixed = tuple(net["fixed_input_shape"]) if net.get("fixed_input_shape") else None
    trained = meta.get("physics", {}).get("operator", {}).get("name") if isinstance(meta.get("physics"), dict) else None
    where = f" (trained with operator '{trained}')" if trained else ""
    channels, is_complex, image_shape = 1, bool(meta.get("complex_measurement", False)), None
    if isinstance(target, torch.Tensor):
        if target.dim() < 3:
            raise ValueError(f"check_compatible: expected a measurement batch [B, C, ...], got {list(target.shape)}")
        meas, channels, is_complex = tuple(target.shape[2:]), int(target.shape[1]), target.is_complex()
    elif isinstance(target, (tuple, list)):
        meas = tuple(int(s) for s in target)
    else:
        op = getattr(target, "operator", target)
        if not hasattr(op, "out_shape"):
            raise TypeError(f"check_compatible: expected Physics, LinearOperator, tensor or shape, got {type(target).__name__}")
        meas, image_shape = tuple(op.out_shape), tuple(op.in_shape)
        is_complex = bool(getattr(op, "complex_output", False))

    def fmt(s):
        return "[" + ", ".join(map(str, s)) + "]"

    if inp == "measurement":
        z = (channels * (2 if is_complex else 1),) + meas
        if fixed is not None:
            ok = z == fixed or (len(fixed) == 1 and fixed[0] == int(torch.Size(z).numel()))
            if not ok:
                raise ValueError(f"model expects network input {fmt(fixed)}{where}, but this measurement gives "
                                 f"{fmt(z)}: the operator's measurement shape does not match the model")
        elif meta.get("image_shape") is not None and net.get("same_size", True):
            want = tuple(meta["image_shape"])
            if meas != want:
                raise ValueError(f"model maps the measurement to an image of its own size {fmt(meas)}, but it was "
                                 f"trained for images {fmt(want)}{where}")
        return
    if image_shape is None:
        return  # a bare measurement shape says nothing about Kᵀy's shape
    if fixed is not None:
        z = (1,) + image_shape
        ok = z == fixed or (len(fixed) == 1 and fixed[0] == int(torch.Size(z).numel()))
        if not ok:
            raise ValueError(f"model expects network input {fmt(fixed)}{where}, but input '{inp}' of this operator "
                             f"gives images {fmt(z)}")
