"""``hdf5:<glob>`` image sources (LoDoPaB-CT's layout): lazy reads, splits by file name or by
file, training (in memory and streamed) and evaluation through ``data.source``, and a
one-line error for every bad file."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from invmap.cli import main
from invmap.data import build_source

CT = {"name": "lodopab-tiny", "operator": {"name": "tomography", "angles": 16},
      "noise": {"name": "gaussian", "relative": 0.05},
      "model": {"name": "cnn", "input": "fbp", "channels": 8, "depth": 2, "residual": True},
      "data": {"size": 32, "train": 16, "val": 4, "test": 4, "simulation": "crime", "test_simulation": "fine"},
      "training": {"epochs": 1, "batch_size": 4, "max_minutes": 0, "threads": 1},
      "evaluation": {"methods": ["fbp", "model"], "tune": False}}


def config_file(tmp_path, glob: str, **training) -> str:
    cfg = {**CT, "data": {**CT["data"], "source": f"hdf5:{glob}"}, "training": {**CT["training"], **training}}
    path = tmp_path / "lodopab.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_lodopab_layout_splits_by_name_and_reads_lazily(lodopab):
    parts = {s: build_source(f"hdf5:{lodopab}", 32, split=s) for s in ("train", "val", "test")}
    assert {s: len(p) for s, p in parts.items()} == {"train": 16, "val": 4, "test": 4}
    assert parts["val"].spec()["stats"]["files"] == ["ground_truth_validation_000.hdf5"]
    src = parts["train"]
    assert src._handles == {}  # building read shapes only; nothing is held open
    with h5py.File(src._files[1], "r") as f:  # image 10 = slice 2 of the second training file
        want = torch.from_numpy(f["data"][2]).float()
    assert torch.allclose(src.batch([10])[0, 0], torch.nn.functional.interpolate(
        want[None, None], size=(32, 32), mode="bilinear", antialias=True)[0, 0])
    assert len(build_source(f"hdf5:{lodopab}", 32, split="train", count=5)) == 5
    crop = build_source(f"hdf5:{lodopab}", 32, split="test", fit="crop")
    with h5py.File(crop._files[0], "r") as f:
        assert torch.equal(crop[1][0], torch.from_numpy(f["data"][1][4:36, 4:36]))


def test_other_names_split_by_file(tmp_path):
    for k in range(5):
        with h5py.File(tmp_path / f"scan{k}.h5", "w") as f:
            f.create_dataset("slices", data=np.full((3, 16, 16), k / 10, np.float32))
    parts = [build_source(f"hdf5:{tmp_path}/scan*.h5", 16, split=s, dataset="slices", splits=(3, 1, 1))
             for s in ("train", "val", "test")]
    assert [len(p) for p in parts] == [9, 3, 3]
    assert [float(p[0].max()) for p in parts] == pytest.approx([0.0, 0.3, 0.4])
    scaled = build_source(f"hdf5:{tmp_path}/scan*.h5", 16, split="test", dataset="slices", splits=(3, 1, 1),
                          value_range=(0.0, 0.8))
    assert float(scaled[0].max()) == pytest.approx(0.5)


@pytest.mark.processes
@pytest.mark.parametrize("stream", [False, True])
def test_trains_and_evaluates_through_data_source(lodopab, tmp_path, capsys, stream):
    cfg, out = config_file(tmp_path, lodopab, stream=stream, num_workers=int(stream)), tmp_path / "run"
    assert main(["train", cfg, "--out", str(out), "--quiet"]) == 0
    assert main(["evaluate", str(out), "--no-figure"]) == 0
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} >= {"fbp", "model"}
    assert "hdf5" in (out / "config.yaml").read_text()


def _bad(kind: str, root) -> None:
    """One bad LoDoPaB-style training file of `kind`."""
    path = root / "ground_truth_train_001.hdf5"
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return
    path.unlink()
    with h5py.File(path, "w") as f:
        if kind == "missing dataset":
            f.create_dataset("images", data=np.zeros((4, 40, 40), np.float32))
        elif kind == "wrong shape":
            f.create_dataset("data", data=np.zeros((4, 2, 40, 40), np.float32))
        elif kind == "text":
            f.create_dataset("data", data=np.array([b"not", b"images"]))
        elif kind == "out of range":
            f.create_dataset("data", data=np.full((4, 40, 40), 300.0, np.float32))
        elif kind == "nan":
            f.create_dataset("data", data=np.full((4, 40, 40), np.nan, np.float32))


@pytest.mark.parametrize("kind, message", [
    ("truncated", "cannot be read"), ("missing dataset", "no dataset 'data' (it holds: images)"),
    ("wrong shape", "expected images [N, H, W]"), ("text", "expected images [N, H, W]"),
    ("out of range", "outside [0, 1]"), ("nan", "NaN")])
def test_a_bad_file_is_one_line(lodopab, tmp_path, capsys, kind, message):
    _bad(kind, Path(lodopab).parent)
    out = tmp_path / "run"
    assert main(["train", config_file(tmp_path, lodopab), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err, err
    assert message in err and "ground_truth_train_001.hdf5" in err
    assert not out.exists()  # nothing half-made is left behind
    assert main(["train", config_file(tmp_path, f"{tmp_path}/nothing*.h5"), "--out", str(out), "--quiet"]) == 2
    assert "no files match" in capsys.readouterr().err


@pytest.mark.processes
def test_streaming_trains_like_in_memory(lodopab, tmp_path):
    """training.stream reads each minibatch from the files (through 2 DataLoader workers) and
    holds no pairs; with K = I the pairs are the same bits, so the weights are too."""
    import torch
    from safetensors.torch import load_file

    from invmap.config import load_config
    from invmap.training import train
    from invmap.training.setup import Pairs

    base = [f"data.source=hdf5:{lodopab}", "operator.name=identity", "model.input=adjoint", "training.epochs=2"]
    runs = {}
    for stream in (False, True):
        cfg = load_config(config_file(tmp_path, lodopab), base + [f"training.stream={stream}",
                                                                  f"training.num_workers={2 * stream}"])
        runs[stream] = train(cfg, tmp_path / f"stream-{stream}", progress=False).run_dir
    a, b = (load_file(str(r / "checkpoint.safetensors")) for r in runs.values())
    trained = [k for k in a if k.startswith(("s.model.", "s.optimizer."))]  # (DataLoader draws its seed from torch's RNG)
    assert a.keys() == b.keys() and trained and all(torch.equal(a[k], b[k]) for k in trained)
    held = Pairs(cfg, cfg.physics(), "train", None, torch.device("cpu"), stream=True)
    assert held.clean is None and held.z is None and held.n == 16


def test_the_memory_check_counts_no_streamed_pairs(monkeypatch):
    """A training set far larger than the memory budget is refused in memory, accepted streamed."""
    from invmap.config import load_config
    from invmap.training.setup import check_memory

    monkeypatch.setenv("INVMAP_MAX_MEMORY", "1G")
    big = ["data.train=10000000", "data.size=64", "model.name=cnn", "model.channels=8", "model.depth=2"]
    cfg = load_config(None, big)
    with pytest.raises(ValueError, match="10000000"):
        check_memory(cfg, cfg.physics())
    cfg = load_config(None, big + ["training.stream=true"])
    assert check_memory(cfg, cfg.physics()) < 2 ** 30
