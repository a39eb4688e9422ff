"""What calibration fits for one learned method, as one record that can be saved beside its run.

Calibrating a learned method at its training conditions (`invmap.evaluation.trust.calibrate`)
costs a simulation of 2n validation pairs and the tuned baseline's solve on each — seconds to
a minute on a CPU — and gives the same answer for the same run, task and settings. `Fitted`
holds that answer:

- ``score``: the trust score's calibration (`invmap.trust.calibration`: residual floor f, the
  spreads of log a and log ρ_home);
- ``psnr_bound``: the per-image PSNR lower bound b = a + c − q·σ(T) (`invmap.trust.conformal`);
- ``pixel_intervals``: x̂ ± λ u (`invmap.trust.intervals`);
- ``promise``: safe's margin bound PSNR(safe) − PSNR(baseline) ≥ c − q·σ(T) (`invmap.trust.safe`);
- ``reference``: the name of the trust reference x̂_r the score, bound and intervals were fitted
  against (``evaluation.trust_reference``), and ``physics``: the spec of the physics (K, e) they
  were fitted for. Records of older files carry neither (None): they were fitted against the
  tuned TV, which their key names.

Calibration returns a `Fitted` per method; nothing is written onto a method. The evaluation, the
stress study and ``reconstruct`` hand it to what needs it (`invmap.trust.diagnose`'s
``calibration``, `invmap.trust.SafeReconstructor`'s ``calibration``).

`CalibrationStore` keeps such records in a run's ``trust_calibration.json``, each under the
key of what it was computed from (`calibration_key`: the run's task and validation split, the
seed, n, the bound's and intervals' settings, the baseline's parameters, the model's weights),
so ``invmap reconstruct --model RUN`` computes it once per run and task and reads it after
(the zoo entries ship theirs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..atomic import atomic_write
from ..files import read_json
from .conformal import PsnrBound
from .intervals import PixelIntervals

#: the file of a run that holds its calibration records
FILE = "trust_calibration.json"
#: records kept per run (the newest ones), and the most bytes the file may hold
MAX_RECORDS = 16
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Fitted:
    """One learned method's calibration at its training conditions (see the module docstring)."""

    score: Mapping[str, Any]
    psnr_bound: PsnrBound | None = None
    pixel_intervals: PixelIntervals | None = None
    promise: PsnrBound | None = None
    reference: str | None = None
    physics: Mapping[str, Any] | None = None

    def to_dict(self) -> dict:
        return {"score": dict(self.score), "psnr_bound": None if self.psnr_bound is None else self.psnr_bound.to_dict(),
                "pixel_intervals": None if self.pixel_intervals is None else self.pixel_intervals.to_dict(),
                "promise": None if self.promise is None else self.promise.to_dict(),
                "reference": self.reference, "physics": None if self.physics is None else dict(self.physics)}

    def with_promise(self, promise: PsnrBound | None) -> "Fitted":
        """The same record with safe's margin bound."""
        return replace(self, promise=promise)

    def describe_reference(self) -> str:
        """``against tv`` / ``against pnp``: what the record was fitted against, for messages."""
        return f"against {self.reference or 'tv (an older record)'}"

    @classmethod
    def from_dict(cls, d: Any) -> "Fitted":
        """A record read back; a one-line ValueError when it is not one (tampered, truncated)."""
        if not isinstance(d, Mapping) or not isinstance(d.get("score"), Mapping):
            raise ValueError("not a calibration record (no 'score')")
        score = dict(d["score"])
        floor = score.get("floor")
        if not (isinstance(floor, (int, float)) and math.isfinite(floor) and floor >= 0):
            raise ValueError(f"not a calibration record (score.floor = {str(floor)[:40]})")
        for part in ("misfit", "home"):
            stats = score.get(part)
            if stats is None:
                continue
            if not (isinstance(stats, Mapping) and all(isinstance(stats.get(k), (int, float)) and
                                                       math.isfinite(stats[k]) for k in ("median", "spread"))
                    and stats["spread"] > 0):
                raise ValueError(f"not a calibration record (score.{part})")
        try:
            bound = None if d.get("psnr_bound") is None else PsnrBound.from_dict(d["psnr_bound"])
            promise = None if d.get("promise") is None else PsnrBound.from_dict(d["promise"])
            pixels = None if d.get("pixel_intervals") is None else PixelIntervals.from_dict(d["pixel_intervals"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a calibration record ({type(e).__name__}: {str(e)[:60]})") from None
        ref, physics = d.get("reference"), d.get("physics")
        if not (ref is None or (isinstance(ref, str) and 0 < len(ref) <= 200)):
            raise ValueError(f"not a calibration record (reference = {str(ref)[:40]})")
        if not (physics is None or isinstance(physics, Mapping)):
            raise ValueError("not a calibration record (physics is not a mapping)")
        return cls(score, bound, pixels, promise, ref, None if physics is None else dict(physics))


@dataclass(frozen=True)
class Calibrations:
    """What the trust of a set of methods is measured with: the trust reference (its method name and
    reconstructor x̂_r = reference(y, physics)) and the calibration record of each learned method,
    by name, fitted against it — kept beside the methods (`invmap.pipeline.Built`) and handed to the
    evaluation and the stress study."""

    reference_name: str | None = None
    reference: Any = None
    records: Mapping[str, Fitted] = field(default_factory=dict)

    def of(self, name: str) -> Fitted | None:
        """The record of method `name`, or None (not calibrated)."""
        return self.records.get(name)


def calibration_key(parts: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of what a calibration was computed from."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class CalibrationStore:
    """The calibration records of one run directory (``RUN/trust_calibration.json``), by key."""

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / FILE

    def _read(self) -> dict:
        """{"records": {key: {"for": …, "fitted": …}}}; empty when there is no file. A file that is
        not a regular one inside the run, too large or not a store is a one-line ValueError."""
        if not os.path.lexists(self.path):
            return {"records": {}}
        hint = "; remove it to recompute the calibration"
        try:
            doc = read_json(self.path, "trust calibration", limit=MAX_BYTES, within=self.path.parent)
        except ValueError as e:
            raise ValueError(f"{e}{hint}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("records"), dict):
            raise ValueError(f"{self.path}: not a calibration store{hint}")
        return doc

    def get(self, key: str) -> Fitted | None:
        """The record computed for `key`, or None."""
        rec = self._read()["records"].get(key)
        if rec is None:
            return None
        try:
            return Fitted.from_dict(rec.get("fitted") if isinstance(rec, Mapping) else None)
        except ValueError as e:
            raise ValueError(f"{self.path}: {e}; remove it to recompute the calibration") from None

    def put(self, key: str, fitted: Fitted, about: Mapping[str, Any]) -> Path:
        """Add (or replace) the record of `key`, keeping the newest `MAX_RECORDS`; atomic."""
        records = self._read()["records"]
        records.pop(key, None)
        records[key] = {"for": dict(about), "fitted": fitted.to_dict()}
        kept = dict(list(records.items())[-MAX_RECORDS:])
        text = json.dumps({"records": kept}, indent=1, sort_keys=False) + "\n"
        return atomic_write(self.path, text)

    def writable(self) -> bool:
        """Whether a record can be added here (the directory exists and may be written)."""
        return self.path.parent.is_dir() and os.access(self.path.parent, os.W_OK)


__all__ = ["Fitted", "Calibrations", "CalibrationStore", "calibration_key", "FILE"]
