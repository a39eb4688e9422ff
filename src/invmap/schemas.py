"""What the JSON documents invmap reads back must hold, checked where each is read.

A run's ``stress.json`` and ``baselines.json``, a model's ``model.json`` and a zoo entry's
``card.json`` are written by invmap, but a file may be tampered with while its checksum still
holds (or has none): ``"size": Infinity``, ``"skipped": 5``, ``"image_shape": [1e308, 32]``,
``"task": "ct"``, a study with 60 000 levels. Each document is checked against a pydantic
model with limits (types, finite numbers, ranges, counts) the moment it is read
(`validated`), so a bad one is a one-line ``ValueError`` naming the file and the field
instead of a traceback later — or minutes of work first. Keys the models do not name are
kept as they are (each reader uses the ones it knows).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field

#: limits of a stress study as read back (a study has about ten shifts of about ten levels)
MAX_SHIFTS = 64
MAX_LEVELS = 256
MAX_NAMES = 256
#: the largest image side and measurement dimension a file may name
MAX_SIDE = 1 << 16
#: the longest text a field of these documents holds
MAX_TEXT = 4096

Text = Annotated[str, Field(max_length=MAX_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
#: a shift's name also names its figure (figures/stress_<name>.png): no path separators
ShiftName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE)]
Count = Annotated[int, Field(ge=0, le=1 << 31)]
Level = Annotated[str, Field(max_length=200)] | Finite


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


class Condition(_Doc):
    """A stress study's reference condition (`invmap.evaluation.task.Condition.describe`)."""

    source: Text
    size: Side
    physics: dict[str, Any]
    sim_operator: dict[str, Any] | None = None
    noise_scale: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1.0
    simulation: Text = "crime"
    source_params: dict[str, Any] = {}
    seed: int = 0
    n: Annotated[int, Field(ge=1, le=1 << 20)] = 8


class Shift(_Doc):
    """One shift of a stress study: its levels and what was left out of them."""

    name: ShiftName
    label: Text | None = None
    levels: Annotated[list[Level], Field(max_length=MAX_LEVELS)]
    training_level: Level | None = None
    skipped: dict[Text, Text] = {}
    unidentifiable: dict[Text, Text] = {}
    conditions: dict[Text, Text] = {}
    trust_images: dict[Text, list[list[Finite | None]]] = {}
    images_per_level: Annotated[int, Field(ge=1, le=1 << 20)] | None = Field(None, alias="images per level")
    methods: Annotated[list[Name], Field(max_length=MAX_NAMES)] | None = None
    learned: Annotated[list[Name], Field(max_length=MAX_NAMES)] | None = None


class Verdict(_Doc):
    shift: Name | None = None
    method: Name | None = None
    text: Text


class StressFile(_Doc):
    """``stress.json``: the study's settings, reference condition, shifts and verdicts."""

    settings: dict[str, Any] = {}
    data_range: Annotated[float, Field(gt=0, allow_inf_nan=False)] | Literal["max-min"] = 1.0
    reference: Condition | None = None
    methods: Annotated[list[Name], Field(max_length=MAX_NAMES)] = []
    learned: Annotated[list[Name], Field(max_length=MAX_NAMES)] = []
    shifts: Annotated[list[Shift], Field(max_length=MAX_SHIFTS)] = []
    verdicts: Annotated[list[Verdict], Field(max_length=MAX_SHIFTS * MAX_NAMES)] = []
    trust: dict[str, Any] | None = None
    stress_csv_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


class ModelShapes(_Doc):
    """The sizes a ``model.json`` records (the rest is checked by `invmap.models.io`)."""

    image_shape: Annotated[list[Side], Field(min_length=2, max_length=2)] | None = None
    measurement_shape: Annotated[list[Side], Field(min_length=1, max_length=4)] | None = None


class ZooTask(_Doc):
    summary: Text


class ZooTraining(_Doc):
    minutes: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    steps: Count | None = None


class ZooTest(_Doc):
    psnr: dict[Name, Finite] = {}


class ZooCheck(_Doc):
    n: Annotated[int, Field(ge=1, le=1 << 16)]
    psnr: Finite
    tolerance_db: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ZooCard(_Doc):
    """A zoo entry's ``card.json``: what `invmap zoo` lists and the checks a test repeats."""

    name: Name
    summary: Text = ""
    task: ZooTask
    kind: Name
    parameters: Count
    size_bytes: Count
    training: ZooTraining = ZooTraining()
    test: ZooTest = ZooTest()
    check: ZooCheck | None = None
    files: dict[Name, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]]


D = TypeVar("D", bound=BaseModel)


def _where(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def validated(schema: type[D], data: Any, path: object, what: str = "file") -> D:
    """`data` (parsed JSON) checked against `schema`; a one-line ``ValueError`` naming `what`, the
    file `path` and the first bad field otherwise."""
    try:
        return schema.model_validate(data)
    except pydantic.ValidationError as e:
        err = e.errors()[0]
        got = err.get("input")
        shown = repr(got)[:60] if not isinstance(got, (dict, list)) else type(got).__name__
        if isinstance(got, float) and not math.isfinite(got):
            shown = repr(got)
        raise ValueError(f"{what} {path}: field {_where(err['loc'])}: {err['msg']} (got {shown})") from None


__all__ = ["StressFile", "Condition", "Shift", "Verdict", "ModelShapes", "ZooCard", "validated",
           "MAX_SHIFTS", "MAX_LEVELS", "MAX_SIDE"]
