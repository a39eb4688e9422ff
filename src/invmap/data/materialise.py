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

Data larger than memory: ``materialise(ds, "pairs/", shard_size=1024)`` writes the pairs
as many shards ``pairs/shard-00000.npz`` … (each simulated, written and freed in turn, so
memory stays that of one shard) and ``pairs/manifest.json`` — the task's manifest plus,
per shard, its file, pair count, size in bytes and SHA-256 (written last: a directory
without it is not a finished data set). `PairShards("pairs/", expect=ds)` streams them:
an iterable data set whose DataLoader workers (and data-parallel ranks) each read their
own shards, one shard in memory per worker, every shard checked against its size when
opened and its checksum when read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..atomic import atomic_write
from ..byteorder import native_order
from ..files import check_regular, read_json
from .pairs import FORMAT, PairDataset
from .sources import mix_seed

#: manifest fields recorded but not part of the task
NOT_COMPARED = ("invmap_version", "sha256", "created_by")
#: fields compared first, so the reported mismatch is the most telling one
ORDER = ("format", "name", "source", "operator", "noise", "seed", "simulation", "fresh_noise", "epoch",
         "count", "x_shape", "y_shape")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with check_regular(path, "pair shard").open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


#: the manifest of a sharded pair data set, inside its directory
SHARDS_MANIFEST = "manifest.json"


def _write_npz(ds: PairDataset, indices: range, path: Path, batch_size: int) -> None:
    """Simulate pairs `indices` of `ds` (batched) into one .npz, atomically."""
    ys, xs = [], []
    with torch.no_grad():
        for s in range(indices.start, indices.stop, int(batch_size)):
            y, x = ds.simulate(range(s, min(indices.stop, s + int(batch_size))))
            ys.append(y.cpu())
            xs.append(x.cpu())
    y = torch.cat(ys).numpy() if ys else np.zeros((0, *ds.manifest()["y_shape"]), np.float32)
    x = torch.cat(xs).numpy() if xs else np.zeros((0, *ds.manifest()["x_shape"]), np.float32)
    atomic_write(path, lambda tmp: np.savez(tmp, y=y, x=x))


def materialise(ds: PairDataset, path: str | os.PathLike, batch_size: int = 64,
                shard_size: int | None = None) -> Path:
    """Simulate every pair of `ds` (batched) and write ``path`` (.npz) + its JSON manifest;
    with `shard_size`, write the directory `path` of shards of that many pairs + manifest.json."""
    path, n = Path(path), len(ds)
    if shard_size is None:
        path = path if path.suffix == ".npz" else path.with_suffix(".npz")
        _write_npz(ds, range(n), path, batch_size)
        man = ds.manifest()
        man["sha256"] = _sha256(path)
        atomic_write(manifest_path(path), json.dumps(man, indent=2, sort_keys=True))
        return path
    if int(shard_size) < 1:
        raise ValueError(f"materialise: shard_size must be >= 1, got {shard_size}")
    if (path / SHARDS_MANIFEST).exists():
        raise FileExistsError(f"{path} already holds a pair data set ({SHARDS_MANIFEST}); choose a new directory")
    path.mkdir(parents=True, exist_ok=True)
    shards = []
    for k, s in enumerate(range(0, n, int(shard_size))):
        f = path / f"shard-{k:05d}.npz"
        _write_npz(ds, range(s, min(n, s + int(shard_size))), f, batch_size)
        shards.append({"file": f.name, "count": min(n, s + int(shard_size)) - s, "bytes": f.stat().st_size,
                       "sha256": _sha256(f)})
    man = {**ds.manifest(), "shards": shards}
    atomic_write(path / SHARDS_MANIFEST, json.dumps(man, indent=2, sort_keys=True))
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


def _read_manifest(mpath: Path) -> dict:
    try:
        man = read_json(mpath, "manifest")
    except FileNotFoundError:
        raise
    except ValueError as e:
        raise ValueError(f"manifest {mpath} is not valid JSON: {e}") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT:
        raise ValueError(f"manifest {mpath}: unknown format {man.get('format') if isinstance(man, dict) else man!r} "
                         f"(expected {FORMAT})")
    return man


def _check_task(man: dict, expect: PairDataset | dict | None, path: Path) -> None:
    """Refuse pairs made for another task than `expect`, naming the first differing field."""
    if expect is None:
        return
    want = expect.manifest() if isinstance(expect, PairDataset) else expect
    want = json.loads(json.dumps(want))  # tuples → lists, as stored
    d = _diff({k: v for k, v in man.items() if k != "shards"}, want, "")
    if d is not None:
        raise ValueError(f"pair file {path} was made for a different task: field '{d}' is "
                         f"{_lookup(man, d)!r} in the file but {_lookup(want, d)!r} was requested")


def _read_npz(path: Path, man: dict, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Arrays (y, x) of one pair file, checked against the shapes of the manifest."""
    with np.load(path, allow_pickle=False) as z:
        y, x = torch.from_numpy(native_order(z["y"]).copy()), torch.from_numpy(native_order(z["x"]).copy())
    if list(x.shape[1:]) != man["x_shape"] or list(y.shape[1:]) != man["y_shape"] or len(x) != count:
        raise ValueError(f"pair file {path}: arrays {list(y.shape)}, {list(x.shape)} do not match the manifest")
    return y, x


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
    man = _read_manifest(mpath)
    if man.get("sha256") and _sha256(path) != man["sha256"]:
        raise ValueError(f"pair file {path} does not match its manifest's checksum (modified or truncated)")
    _check_task(man, expect, path)
    y, x = _read_npz(path, man, man["count"])
    return y, x, man


class PairShards(torch.utils.data.IterableDataset):
    """Stream the pairs ``(y, x)`` of a sharded data set written by ``materialise(..., shard_size=)``.

    Shard k goes to the DataLoader worker / data-parallel rank ``k mod (workers · world)``,
    so every pair is read exactly once per epoch by exactly one worker. With `shuffle`, the
    shard order and the order within each shard are permuted by (seed, epoch) (`set_epoch`).
    """

    def __init__(self, path: str | os.PathLike, expect: PairDataset | dict | None = None, shuffle: bool = False,
                 seed: int = 0, rank: int = 0, world: int = 1):
        self.path = Path(path)
        mpath = self.path / SHARDS_MANIFEST
        if not mpath.is_file():
            raise FileNotFoundError(f"{self.path} is not a sharded pair data set (no {SHARDS_MANIFEST})")
        self.manifest = _read_manifest(mpath)
        shards = self.manifest.get("shards")
        if not isinstance(shards, list) or sum(int(s["count"]) for s in shards) != self.manifest["count"]:
            raise ValueError(f"manifest {mpath}: its shards do not add up to its {self.manifest.get('count')} pairs")
        for s in shards:
            f = self.path / s["file"]
            if Path(s["file"]).name != s["file"] or not f.is_file():
                raise FileNotFoundError(f"pair shard {f} listed in {mpath} is missing")
            if f.stat().st_size != int(s["bytes"]):
                raise ValueError(f"pair shard {f} has {f.stat().st_size} bytes, its manifest says {s['bytes']} "
                                 "(truncated or replaced)")
        _check_task(self.manifest, expect, self.path)
        self.shards, self.shuffle, self.seed, self.rank, self.world = shards, shuffle, int(seed), rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def read(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Shard k's arrays (y, x), after checking its checksum."""
        s = self.shards[k]
        f = self.path / s["file"]
        if _sha256(f) != s["sha256"]:
            raise ValueError(f"pair shard {f} does not match its manifest's checksum (modified or truncated)")
        return _read_npz(f, self.manifest, int(s["count"]))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        workers, wid = (info.num_workers, info.id) if info is not None else (1, 0)
        def gen(*parts: int) -> torch.Generator:  # its own stream per (seed, epoch[, shard]): any worker agrees
            return torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, *parts))

        n = len(self.shards)
        order = torch.randperm(n, generator=gen(n)).tolist() if self.shuffle else range(n)
        mine = [k for j, k in enumerate(order) if j % (workers * self.world) == self.rank * workers + wid]
        for k in mine:
            y, x = self.read(k)
            within = torch.randperm(len(x), generator=gen(n, k)).tolist() if self.shuffle else range(len(x))
            for i in within:
                yield y[i], x[i]
