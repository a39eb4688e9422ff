"""Bounded memory and time on hostile inputs: every case ends in one line, exit 2, with the
peak memory of the process that ran it measured in that process (`resource.getrusage`).

The hostile files are built here, small: an alias bomb of ten lines, a 10000×10000 PNG of
~100 KB, a model.json that asks for 10⁷ views. All the CLI cases run in one child process
(to pay Python's and torch's start-up once); after each case the child records its peak RSS.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from invmap import budget, models
from invmap.config import load_config
from invmap.data.io import read_image
from invmap.models.io import MODEL_JSON
from invmap.physics import Physics
from invmap.training.setup import check_memory

LIMIT = "2G"        # INVMAP_MAX_MEMORY in the child: the estimates are checked against a known limit
RSS_BOUND_MB = 1200  # what one hostile case may add to the child's peak RSS (torch alone is ~300 MB)

_CHILD = r"""
import contextlib, io, json, resource, sys
from invmap.cli import main
out = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    out.append({"rc": rc, "stderr": err.getvalue(), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
print(json.dumps(out))
"""


def _run_cli_cases(cases: list[list[str]], cwd: Path) -> list[dict]:
    env = {**os.environ, budget.MEMORY_ENV: LIMIT}
    env.pop(budget.PIXELS_ENV, None)
    warm = [["config", "--check", str(cwd / "tiny.yaml")]]  # imports torch and friends: the baseline
    p = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(warm + cases)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res[0]["rc"] == 0, res[0]["stderr"]
    return res


def _png_header_bomb(path: Path, side: int = 10000) -> None:
    """A valid 8-bit gray PNG of side×side zeros, compressed row by row (~100 KB, no big buffer)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp, row, parts = zlib.compressobj(9), b"\x00" * (side + 1), []
    for _ in range(side):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def _alias_bomb(path: Path) -> None:
    lines = ["evaluation:", "  tune_grid:", "    tv:", "      a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"      a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path.write_text("\n".join(lines + ["      lam: *a9"]) + "\n")  # 10¹⁰ values once expanded


def _model_dir(path: Path, edit=None) -> Path:
    phys = Physics.from_spec({"operator": {"name": "tomography", "image_shape": [32, 32], "params": {"angles": 16}},
                              "noise": {"name": "gaussian", "params": {"sigma": 0.01}}})
    recon = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="fbp")
    models.save_model(path, recon, physics=phys)
    if edit is not None:
        doc = json.loads((path / MODEL_JSON).read_text())
        edit(doc)
        (path / MODEL_JSON).write_text(json.dumps(doc))
    return path


def _set_angles(doc, n):
    doc["physics"]["operator"]["params"]["angles"] = n


def _set_shape(doc, s):
    doc["physics"]["operator"]["image_shape"] = [s, s]


def _set_channels(doc, c):
    doc["architecture"]["params"]["channels"] = c


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    (d / "tiny.yaml").write_text(yaml.safe_dump({"data": {"size": 32, "train": 4, "val": 2, "test": 2},
                                                 "operator": {"name": "tomography", "angles": 16},
                                                 "model": {"name": "cnn", "depth": 2, "channels": 4},
                                                 "training": {"epochs": 1, "device": "cpu", "amp": "off"}}))
    _alias_bomb(d / "bomb.yaml")
    (d / "imgs").mkdir()
    _png_header_bomb(d / "imgs" / "huge.png")
    np.save(d / "y.npy", np.zeros((1, 1, 16, 47), np.float32))
    tiny = str(d / "tiny.yaml")
    cases = {
        "yaml-alias-bomb": (["config", "--check", "bomb.yaml"], "aliases are expanded"),
        "base_channels-100000": (["train", tiny, "--out", "r1", "--set", "model.name=unet",
                                  "--set", "model.base_channels=100000"], "memory limit"),
        "base_channels-3000": (["train", tiny, "--out", "r2", "--set", "model.name=unet",
                                "--set", "model.base_channels=3000"], "memory limit"),
        "data.size-4096": (["train", tiny, "--out", "r3", "--set", "data.size=4096", "--set", "data.train=2000"],
                           "memory limit"),
        "data.size-4096-identity": (["train", tiny, "--out", "r4", "--set", "data.size=4096", "--set", "data.train=2000",
                                     "--set", "operator.name=identity", "--set", "model.input=adjoint"], "memory limit"),
        "blur-sigma-1e6": (["train", tiny, "--out", "r5", "--set", "operator.name=blur", "--set", "operator.sigma=1e6"],
                           "PSF would need"),
        "png-10000x10000": (["reconstruct", "--method", "fbp", "--task", tiny, "--simulate", "--input", "imgs/huge.png",
                             "--output", "x.npy"], "above the limit"),
        "png-in-image-folder": (["train", tiny, "--out", "r6", "--set", "data.source=folder:imgs"], "above the limit"),
        "model.json-angles-1e7": (["reconstruct", "--model", "m_angles", "--input", "y.npy", "--output", "x1.npy"],
                                  "memory limit"),
        "model.json-image_shape-1e52": (["reconstruct", "--model", "m_shape", "--input", "y.npy", "--output", "x2.npy"],
                                        "memory limit"),
        "model.json-channels-100000": (["reconstruct", "--model", "m_wide", "--input", "y.npy", "--output", "x3.npy"],
                                       "memory limit"),
        "model.json-channels-3000": (["reconstruct", "--model", "m_3000", "--input", "y.npy", "--output", "x4.npy"],
                                     "does not match architecture"),
    }
    _model_dir(d / "m_angles", lambda doc: _set_angles(doc, 10**7))
    _model_dir(d / "m_shape", lambda doc: _set_shape(doc, 10**52))
    _model_dir(d / "m_wide", lambda doc: (_set_channels(doc, 100000), doc["architecture"]["params"].update(depth=6)))
    _model_dir(d / "m_3000", lambda doc: _set_channels(doc, 3000))
    res = _run_cli_cases([argv for argv, _ in cases.values()], d)
    return d, {name: (r, res[i]["peak_mb"], cases[name][1]) for i, (name, r) in enumerate(zip(cases, res[1:]))}, \
        res[0]["peak_mb"]


CASES = ["yaml-alias-bomb", "base_channels-100000", "base_channels-3000", "data.size-4096", "data.size-4096-identity",
         "blur-sigma-1e6", "png-10000x10000", "png-in-image-folder", "model.json-angles-1e7",
         "model.json-image_shape-1e52", "model.json-channels-100000", "model.json-channels-3000"]


@pytest.mark.processes
@pytest.mark.parametrize("case", CASES)
def test_hostile_input_is_one_line_bounded_and_writes_nothing(cli_results, case):
    d, results, base_mb = cli_results
    r, peak_mb, expect = results[case]
    lines = r["stderr"].strip().splitlines()
    assert r["rc"] == 2 and len(lines) == 1 and lines[0].startswith("invmap: error: "), r["stderr"]
    assert expect in lines[0]
    assert peak_mb - base_mb < RSS_BOUND_MB, f"{case}: peak RSS {peak_mb:.0f} MB (baseline {base_mb:.0f} MB)"
    assert not any((d / f"r{i}").exists() for i in range(1, 7))  # no run directory left behind
    assert not any((d / f"x{i}.npy").exists() for i in range(1, 5)) and not (d / "x.npy").exists()


def test_memory_limit_is_the_users_to_raise(monkeypatch):
    cfg = load_config(None, ["data.size=32", "operator.angles=16", "model.name=cnn", "model.depth=2",
                             "model.channels=4", "data.train=8", "data.val=2"])
    phys = cfg.physics()
    need = check_memory(cfg, phys)
    monkeypatch.setenv(budget.MEMORY_ENV, str(need - 1))
    with pytest.raises(budget.MemoryBudgetError, match=budget.MEMORY_ENV):
        check_memory(cfg, phys)
    monkeypatch.setenv(budget.MEMORY_ENV, str(need))
    assert check_memory(cfg, phys) == need
    monkeypatch.setenv(budget.MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match="INVMAP_MAX_MEMORY: not a size"):
        budget.memory_limit()


def test_the_estimate_counts_what_training_holds():
    """Parameters ×4 (weights, gradients, Adam moments) + a batch's activations + the pairs."""
    cfg = load_config(None, ["data.size=32", "operator.name=identity", "model.name=cnn", "model.depth=2",
                             "model.channels=4", "data.train=10", "data.val=2", "training.batch_size=1",
                             "model.input=adjoint"])
    net = models.build("cnn", depth=2, channels=4)
    params = sum(p.numel() for p in net.parameters()) * 4
    pairs = 12 * 3 * 32 * 32 * 4  # x, K x and z of 12 images
    need = check_memory(cfg, cfg.physics())
    assert need > 4 * params + pairs  # activations come on top
    assert need - (4 * params + pairs) <= 4 * 32 * 32 * 4 * (2 * 4 + 2)  # a few feature maps of one image


@pytest.mark.parametrize("name", models.names())
def test_every_model_is_described_on_the_meta_device(name):
    """What the memory estimate and `load_model` rely on: building allocates nothing real."""
    net = budget.on_meta(lambda: models.build_for(name, (32, 32), (32, 32)))
    assert all(t.is_meta for t in list(net.parameters()) + list(net.buffers()))
    assert budget.tensor_bytes(net) >= 4 * models.count_parameters(net) > 0


def test_png_header_is_checked_before_decoding(tmp_path, monkeypatch):
    _png_header_bomb(tmp_path / "huge.png", side=3000)
    monkeypatch.setenv(budget.PIXELS_ENV, str(3000 * 3000 - 1))
    with pytest.raises(budget.MemoryBudgetError, match="3000×3000×1"):
        read_image(tmp_path / "huge.png")
    monkeypatch.setenv(budget.PIXELS_ENV, str(3000 * 3000))
    a, _ = read_image(tmp_path / "huge.png")  # at the limit it decodes, as it should
    assert a.shape == (3000, 3000) and not a.any()


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".tif"])
def test_array_headers_are_checked_before_decoding(tmp_path, monkeypatch, suffix):
    a = np.zeros((40, 50), np.float32)
    p = tmp_path / f"a{suffix}"
    if suffix == ".npy":
        np.save(p, a)
    elif suffix == ".npz":
        np.savez_compressed(p, img=a)
    else:
        import tifffile
        tifffile.imwrite(p, a)
    monkeypatch.setenv(budget.PIXELS_ENV, "1999")
    with pytest.raises(budget.MemoryBudgetError, match="40×50"):
        read_image(p)
    monkeypatch.setenv(budget.PIXELS_ENV, "2000")
    assert read_image(p)[0].shape == (40, 50)


def test_yaml_bounds(tmp_path):
    from invmap.config import MAX_YAML_BYTES, MAX_YAML_DEPTH, read_yaml

    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_YAML_DEPTH}"):
        read_yaml(deep)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_YAML_BYTES + "\n")
    with pytest.raises(ValueError, match="larger than"):
        read_yaml(big)
    loop = tmp_path / "loop.yaml"
    loop.write_text("a: &a [1, *a]\n")
    with pytest.raises(ValueError, match="recursive"):
        read_yaml(loop)
    ok = tmp_path / "ok.yaml"  # aliases within bounds are still fine
    ok.write_text("evaluation:\n  tune_grid:\n    tv: &g {lam: [0.01, 0.1]}\n    fista-tv: *g\n")
    assert read_yaml(ok)["evaluation"]["tune_grid"]["fista-tv"] == {"lam": [0.01, 0.1]}


def test_weights_file_checked_against_model_json_before_building(tmp_path, monkeypatch):
    """A model.json that lies about a huge network is refused from the weights' header,
    without building the network for real."""
    _model_dir(tmp_path, lambda doc: _set_channels(doc, 3000))
    built = []
    real = models.build
    monkeypatch.setattr(models.io, "build", lambda *a, **k: (built.append(torch.empty(0).device.type), real(*a, **k))[1])
    with pytest.raises(ValueError, match="does not match architecture"):
        models.load_model(tmp_path)
    assert built == ["meta"]  # only the shape-only description was built
