"""Saving and loading trained models: ``model.safetensors`` (tensors) + ``model.json`` (recipe).

Loading never unpickles: the weights are read with ``safetensors.torch.load_file`` and the
network is rebuilt from the JSON through the model registry, so opening a stranger's model
cannot run code.

The two files are committed as a pair: the weights file carries the whole JSON document in
its safetensors header (key ``invmap_model``) and is written first, atomically; model.json,
the readable copy, is written last. Both hold the same random ``commit`` token. If a crash
falls between the two writes, the weights' own document is the true one: `load_model` uses
it (model.json is stale) and `repair_model_json` rewrites model.json from it (a training
run does so when it starts or resumes).

``model.json`` holds the caller's ``meta`` (e.g. ``physics: Physics.spec()``, image size,
training settings) plus the keys invmap adds:

- ``kind``: ``{name, params}`` of the reconstructor kind (`Reconstructor.spec`): for
  ``post-processing`` the network is described by the next two keys, for the model-based
  kinds (lgd, lpd, unrolled, pnp) ``params`` rebuild it (`KINDS`). Files without ``kind``
  (older invmap) are post-processing;
- ``architecture``: ``{name, params}`` — `invmap.models.build(name, **params)` (null for
  the model-based kinds);
- ``input``: the input strategy of `LearnedReconstructor` (null for a bare network);
- ``network``: ``{fixed_input_shape, output_shape, same_size}`` for compatibility checks;
- ``versions``, ``parameter_count``, ``tensors`` (name → shape), ``weights`` (file name,
  inside the model's directory), ``weights_sha256`` (`weights_digest` of the tensors:
  checked on load, so flipped bytes in the weights are an error, not a silently other model),
  ``commit`` (the token shared with the weights file).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

import torch
from torch import nn

import invmap
from .. import budget
from ..atomic import atomic_write
from ..files import check_regular, read_json
from ..operators.base import operator_of
from ..paths import inside
from ..physics import NO_NOISE, Physics
from ..schemas import ModelShapes, validated
from .reconstructor import LearnedReconstructor, Reconstructor
from .registry import build, KINDS

MODEL_JSON = "model.json"
MODEL_WEIGHTS = "model.safetensors"
FORMAT = "invmap-model"
FORMAT_VERSION = 1
#: the most bytes a model.json may hold (a description, never weights)
MAX_MODEL_JSON_BYTES = 16 << 20
HEADER_KEY = "invmap_model"  # the safetensors metadata key holding the model document
RESERVED = ("format", "format_version", "kind", "architecture", "input", "network", "versions",
            "parameter_count", "tensors", "weights", "weights_sha256", "commit")


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


def describe_network(recon: nn.Module) -> dict:
    """``{architecture, input}`` of a post-processing model (or a bare network), as model.json holds them."""
    net = _net(recon)
    if getattr(net, "model_name", None) is None:  # any nn.Module may be handed in
        raise ValueError("save_model: the network was not built by invmap.models.build (no 'model_name'), "
                         "so it cannot be rebuilt from model.json")
    return {"architecture": {"name": net.model_name, "params": net.model_params},
            "input": recon.input_params() if isinstance(recon, LearnedReconstructor) else None}


def network_from_description(doc: dict) -> nn.Module:
    """The (untrained) model described by `describe_network`'s ``{architecture, input}``."""
    arch = doc["architecture"]
    net = build(arch["name"], **arch.get("params", {}))
    return net if doc.get("input") is None else LearnedReconstructor(net, **doc["input"])


def _model_based(recon: nn.Module) -> bool:
    return isinstance(recon, Reconstructor) and not isinstance(recon, LearnedReconstructor)


def _kind(doc: dict) -> str:
    """The reconstructor kind a model document describes (files without one: post-processing)."""
    return (doc.get("kind") or {}).get("name", "post-processing")


def _shape(t: Any) -> list[int] | None:
    return None if t is None else [int(s) for s in t]


def save_model(run_dir: str | os.PathLike, recon: nn.Module, meta: dict | None = None,
               physics: Any = None) -> Path:
    """Write ``run_dir/model.safetensors`` and ``run_dir/model.json``; returns the JSON path.

    `recon` is a `Reconstructor` of any kind (or a bare network from `invmap.models.build`).
    `meta` must be JSON-serialisable and may not use the reserved keys above. With
    `physics` (a `Physics` or an operator), ``physics`` (its spec), ``image_shape`` and
    ``measurement_shape`` are recorded too, unless `meta` already gives them.
    """
    import safetensors.torch

    net = recon if _model_based(recon) else _net(recon)
    described = {"architecture": None, "input": None} if _model_based(recon) else describe_network(recon)
    meta = dict(meta or {})
    clash = [k for k in meta if k in RESERVED]
    if clash:
        raise ValueError(f"save_model: meta key(s) {', '.join(map(repr, clash))} are reserved; "
                         f"reserved: {', '.join(RESERVED)}")
    if physics is not None:
        op = operator_of(physics)
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
        "kind": recon.spec() if isinstance(recon, Reconstructor) else None,
        **described,
        "network": {"fixed_input_shape": _shape(fixed),
                    "output_shape": _shape(net.output_shape(tuple(fixed))) if fixed else None,  # type: ignore[operator]
                    "same_size": bool(getattr(net, "same_size", True)),
                    "any_size": bool(getattr(net, "any_size", fixed is None))},
        "versions": {"invmap": invmap.__version__, "torch": torch.__version__.split("+")[0]},
        "parameter_count": sum(p.numel() for p in net.parameters()),
        "weights": MODEL_WEIGHTS,
        "tensors": {k: list(v.shape) for k, v in state.items()},
        "commit": secrets.token_hex(8),
        "weights_sha256": weights_digest(state),
    }
    try:
        text = json.dumps(doc, indent=2, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"save_model: meta is not JSON-serialisable: {e}") from None
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / MODEL_WEIGHTS, safetensors.torch.save(state, metadata={HEADER_KEY: text}))  # the commit
    atomic_write(out / MODEL_JSON, text + "\n")
    return out / MODEL_JSON


def _header_doc(wpath: Path) -> dict | None:
    """The model document stored in the header of the weights file (None for older files)."""
    from safetensors import safe_open

    try:
        with safe_open(str(wpath), framework="pt") as f:
            text = (f.metadata() or {}).get(HEADER_KEY)
        doc = json.loads(text) if text else None
    except Exception:  # noqa: BLE001 - a corrupt file is reported by the loader with its own message
        return None
    return doc if isinstance(doc, dict) else None


def repair_model_json(run_dir: str | os.PathLike) -> bool:
    """Rewrite ``run_dir/model.json`` from the weights file when a crash fell between the two
    writes of `save_model` (their ``commit`` tokens differ); returns whether it did."""
    run = Path(run_dir)
    wpath, jpath = run / MODEL_WEIGHTS, run / MODEL_JSON
    if not wpath.is_file():
        return False
    header = _header_doc(wpath)
    if header is None:
        return False
    try:
        doc = read_json(jpath, "model file", limit=MAX_MODEL_JSON_BYTES) if jpath.exists() else None
    except (OSError, ValueError):
        doc = None
    if isinstance(doc, dict) and doc.get("commit") == header.get("commit"):
        return False
    atomic_write(jpath, json.dumps(header, indent=2) + "\n")
    return True


def _json_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_JSON
    elif p.suffix == ".safetensors":
        p = p.with_name(MODEL_JSON)
    if not (p.exists() or p.is_symlink()):
        raise FileNotFoundError(f"model file not found: {p}")
    return check_regular(p, "model file")  # a FIFO or a device under the name: refused unopened


#: keys of model.json that loading and its callers read, with the JSON type each must have
_DOC_TYPES = {"architecture": (dict, type(None)), "input": (dict, type(None)), "network": (dict,), "physics": (dict,),
              "tensors": (dict,), "weights": (str,), "image_shape": (list,), "measurement_shape": (list,)}


def _json_type(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(v), type(v).__name__)


def _check_doc(doc: Any, jpath: Path) -> dict:
    """The model document, its keys of the right JSON types (one-line ValueError otherwise)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{jpath}: not an invmap model file (expected \"format\": \"{FORMAT}\")")
    version = doc.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{jpath}: \"format_version\" must be an integer, got {_json_type(version)}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{jpath}: model format version {version} is newer than this invmap "
                         f"understands ({FORMAT_VERSION}); upgrade invmap")
    for key, types in _DOC_TYPES.items():
        if key in doc and not isinstance(doc[key], types):
            want = " or ".join(_json_type(t()) if t is not type(None) else "null" for t in types)
            raise ValueError(f"{jpath}: \"{key}\" must be {want}, got {_json_type(doc[key])}")
    validated(ModelShapes, doc, jpath, "model file")  # image and measurement sizes: whole numbers in range
    kind = doc.get("kind")
    if kind is not None and (not isinstance(kind, dict) or not isinstance(kind.get("name"), str)
                             or not isinstance(kind.get("params", {}), dict)):
        raise ValueError(f"{jpath}: \"kind\" must be {{\"name\": string, \"params\": object}}")
    if _kind(doc) != "post-processing":
        return doc
    arch = doc.get("architecture", {})
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str) or not isinstance(arch.get("params", {}), dict):
        raise ValueError(f"{jpath}: \"architecture\" must be {{\"name\": string, \"params\": object}}")
    return doc


def _stored_shapes(wpath: Path) -> dict[str, list[int]]:
    """Tensor name → shape from the header of a safetensors file, without reading the data."""
    from safetensors import safe_open

    try:
        with safe_open(str(wpath), framework="pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error type for corrupt headers/data
        raise ValueError(f"{wpath}: corrupt or not a safetensors file "
                         f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _build(doc: dict, jpath: Path) -> nn.Module:
    try:
        if _kind(doc) == "post-processing":
            return network_from_description(doc)
        return KINDS.get(_kind(doc)).from_spec(doc["kind"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{jpath}: incomplete model description (missing or bad {e})") from None
    except ValueError as e:
        raise ValueError(f"{jpath}: {e}") from None


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load ``(recon, meta)`` from a run directory or its ``model.json``.

    `meta` is the whole model document (the caller's meta plus the keys invmap added; the
    weights file's own copy when a crash left model.json from an earlier save). Raises
    ``FileNotFoundError`` naming a missing file and a one-line ``ValueError`` naming the
    file for corrupt JSON / safetensors, keys of the wrong type, or an architecture that
    does not match the stored tensors (naming the first mismatching tensor). Before any
    memory is allocated the network is described on the meta device and its tensors are
    checked against the weights file's header and the memory budget (`invmap.budget`).
    The model is returned in eval mode.
    """
    import safetensors.torch

    jpath = _json_path(path)
    try:
        doc = read_json(jpath, "model file", limit=MAX_MODEL_JSON_BYTES)
    except ValueError as e:
        raise ValueError(f"{jpath}: not a valid model.json ({str(e).replace(f'model file {jpath}: ', '')})") from None
    doc = _check_doc(doc, jpath)
    wpath = inside(jpath.parent, doc.get("weights", MODEL_WEIGHTS), f"{jpath}: \"weights\"")
    if not (wpath.exists() or wpath.is_symlink()):
        raise FileNotFoundError(f"model weights not found: {wpath}")
    check_regular(wpath, "model weights")
    header = _header_doc(wpath)
    if header is not None and header.get("commit") != doc.get("commit"):
        doc = _check_doc(header, wpath)  # a crash fell between the two writes: the weights' own document
    stored = _stored_shapes(wpath)
    budget.check(sum(math.prod(s) for s in stored.values()) * 4, f"{wpath}: the stored weights")
    name = doc["architecture"]["name"] if _kind(doc) == "post-processing" else _kind(doc)
    try:  # described on the meta device: absurd sizes fail here, without memory
        expected = {k: list(v.shape) for k, v in budget.on_meta(lambda: _build(doc, jpath)).state_dict().items()}
    except (RuntimeError, OverflowError, ZeroDivisionError) as e:
        if isinstance(e, RecursionError):
            raise
        raise ValueError(f"{jpath}: architecture '{name}' cannot be built from its parameters "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    budget.check(sum(math.prod(s) for s in expected.values()) * 4, f"{jpath}: architecture '{name}'")
    for k, shape in expected.items():
        if k not in stored:
            raise ValueError(f"{wpath}: does not match architecture '{name}' in {jpath.name}: tensor '{k}' is missing")
        if stored[k] != shape:
            raise ValueError(f"{wpath}: does not match architecture '{name}' in {jpath.name}: tensor '{k}' has shape "
                             f"{stored[k]}, expected {shape}")
    extra = [k for k in stored if k not in expected]
    if extra:
        raise ValueError(f"{wpath}: does not match architecture '{name}' in {jpath.name}: unexpected tensor '{extra[0]}'")
    recon = _build(doc, jpath)
    try:
        tensors = safetensors.torch.load_file(str(wpath), device="cpu")
    except Exception as e:  # safetensors raises its own error type for corrupt headers/data
        raise ValueError(f"{wpath}: corrupt or not a safetensors file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    want = doc.get("weights_sha256")  # absent in files of older invmap versions
    if want is not None and weights_digest(tensors) != want:
        raise ValueError(f"{wpath}: the weights do not match the SHA-256 recorded in {jpath.name} "
                         "(the file was changed or damaged); refusing to load them")
    recon.load_state_dict(tensors, strict=True)
    if isinstance(doc.get("physics"), dict):  # the conditions it was trained for (trust diagnostics)
        try:
            recon.training_physics = Physics.from_spec(doc["physics"])
        except (KeyError, TypeError, ValueError):  # an unreadable description: no reference, the model still loads
            recon.training_physics = None
    return recon.to(device).eval(), doc


def any_size(meta: dict) -> bool:
    """Whether the model of `meta` (model.json) applies to images of any size (`Network.any_size`;
    files written before it was recorded: any network without a fixed input size)."""
    net = meta.get("network") or {}
    return bool(net.get("any_size", not net.get("fixed_input_shape")))


def check_compatible(meta: dict, target: Any) -> None:
    """Raise a one-line ``ValueError`` if a loaded model cannot be applied to `target`.

    `target` is a `Physics`, a `LinearOperator`, a measurement batch ``[B, C, ...]`` or a
    measurement shape (its trailing dimensions, e.g. ``(angles, detectors)``). Checked:
    a fixed-size (dense) network gets an input of its size — the measurement for input
    'measurement', the image Kᵀy for the image-domain inputs — and an image-to-image
    network fed the raw measurement returns an image of the training image size. The
    model-based kinds read K at call time and check it themselves. Images of another size than
    the training images need a network that takes any size (`any_size`: fully convolutional;
    not dense models, not a ViT with learned positions). A
    different operator of compatible shape (fewer views, another noise level) is allowed:
    that is a distribution shift, not an error. With only a measurement shape the
    image-domain inputs cannot be checked.
    """
    if _kind(meta) != "post-processing":
        return
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
        op = operator_of(target)
        if not hasattr(op, "out_shape"):
            raise TypeError(f"check_compatible: expected Physics, LinearOperator, tensor or shape, got {type(target).__name__}")
        meas, image_shape = tuple(op.out_shape), tuple(op.in_shape)
        is_complex = bool(getattr(op, "complex_output", False))

    def fmt(s):
        return "[" + ", ".join(map(str, s)) + "]"

    trained_on = tuple(meta.get("image_shape") or ()) or None
    if fixed is None and image_shape is not None and trained_on and image_shape != trained_on and not any_size(meta):
        raise ValueError(f"model was trained on {fmt(trained_on)} images and cannot reconstruct {fmt(image_shape)}: "
                         f"its network ('{(meta.get('architecture') or {}).get('name', '?')}') is not fully "
                         f"convolutional (a dense layer or learned positions fix its size)")
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
