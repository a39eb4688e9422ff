"""Image sources, folder loading, pair data sets, materialisation and the inverse-crime guard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import invmap.data as D
import invmap.noise as nz
import invmap.operators as ops
from invmap.data.crime import fine_operator
from invmap.data.phantoms import render_ellipses, render_ellipses_direct
from invmap.physics import Physics

CT = Path("/work/shared/data/ct-slices")


def _write_png(path: Path, a: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, a)


@pytest.fixture
def png_folder(tmp_path: Path, lodopab) -> Path:
    """Ten PNGs in tmp_path (and a tiny LoDoPaB-CT layout in tmp_path/lodopab for ``hdf5``)."""
    rng = np.random.default_rng(0)
    for k in range(10):
        _write_png(tmp_path / f"img_{k:02d}.png", (rng.random((40, 48)) * 255).astype(np.uint8))
    return tmp_path


def _source(name: str, size: int, split: str, folder: Path, **kw):
    if name == "folder":
        return D.build_source(f"folder:{folder}", size, split=split, **kw)
    if name == "hdf5":
        return D.build_source(f"hdf5:{folder}/lodopab/ground_truth_*.hdf5", size, split=split, **kw)
    if name == "shepp-logan":
        kw.setdefault("jitter", 1.0)
        kw.setdefault("count", 4)
    if name == "ellipses":
        kw.setdefault("count", 6)
        kw.setdefault("dots", 3)
    return D.build_source(name, size, split=split, **kw)


# ------------------------------------------------------------------ sources
@pytest.mark.parametrize("name", D.names())
def test_source_deterministic_and_in_range(name, png_folder):
    a, b = _source(name, 32, "train", png_folder), _source(name, 32, "train", png_folder)
    assert len(a) == len(b) > 0
    for i in (0, len(a) - 1):
        x = a[i]
        assert x.shape == (1, 32, 32) and x.dtype == torch.float32
        assert float(x.min()) >= 0 and float(x.max()) <= 1
        assert torch.equal(x, b[i])  # same image i in two data set objects
    idx = list(range(len(a)))[::-1]
    assert torch.equal(a.batch(idx), torch.stack([a[i] for i in idx]))  # order/batch independent
    f = a.fine([0], 2)
    assert f.shape == (1, 1, 64, 64) and float(f.min()) >= 0 and float(f.max()) <= 1
    assert D.from_spec(json.loads(json.dumps(a.spec())))[0].equal(a[0])


@pytest.mark.parametrize("name", D.names())
def test_splits_are_disjoint(name, png_folder):
    parts = {s: _source(name, 32, s, png_folder) for s in D.SPLITS}
    keys = {s: {x.numpy().tobytes() for x in p.batch(range(len(p)))} for s, p in parts.items()}
    for s1, s2 in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not (keys[s1] & keys[s2]), f"{name}: {s1} and {s2} share an image"
    if name == "folder":
        files = [set(p.spec()["stats"]["files"]) for p in parts.values()]
        assert not (files[0] & files[1]) and not (files[0] & files[2]) and not (files[1] & files[2])


def test_ellipses_seed_and_index_matter():
    a = D.build_source("ellipses", 32, count=3, seed=0)
    b = D.build_source("ellipses", 32, count=3, seed=1)
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], b[0])
    with pytest.raises(IndexError):
        a[3]


def test_fast_rasteriser_matches_direct_test_of_every_pixel():
    src = D.build_source("ellipses", 37, count=8, dots=4)
    tab = torch.stack([src.table(i) for i in range(8)])
    assert torch.equal(render_ellipses(tab, 37), render_ellipses_direct(tab, 37))


def test_shepp_logan_matches_skimage():
    skd = pytest.importorskip("skimage.data")
    from skimage.transform import resize

    full = skd.shepp_logan_phantom()  # 400 × 400, the modified (Toft) intensities
    assert np.abs(D.shepp_logan(400)[0].numpy() - full).mean() < 0.01
    ref = resize(full, (128, 128), order=1, anti_aliasing=True)
    ours = D.shepp_logan(128)[0].numpy()
    assert np.abs(ours - ref).mean() < 0.03
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.95
    std = D.build_source("shepp-logan", 64, count=2)
    assert torch.equal(std[0], std[1])  # jitter = 0: the standard phantom


def test_samples_split_by_source_image():
    parts = {s: D.build_source("samples", 64, split=s) for s in D.SPLITS}
    origins = {s: {p.origin(i) for i in range(len(p))} for s, p in parts.items()}
    assert origins["test"] and not (origins["train"] & origins["test"]) and not (origins["val"] & origins["test"])
    crops = D.build_source("samples", 64, split="val", fit="patches", crops=3, seed=5)
    assert len(crops) == 3 * len(origins["val"])
    assert torch.equal(crops[2], D.build_source("samples", 64, split="val", crops=3, seed=5)[2])
    with pytest.raises(ValueError, match="not in the train split"):
        D.build_source("samples", 64, split="train", images=["camera"])


def test_unknown_source_and_parameter_errors():
    with pytest.raises(ValueError, match="unknown image source 'nope'"):
        D.build_source("nope", 32)
    with pytest.raises(ValueError, match="unknown parameter"):
        D.build_source("ellipses", 32, wobble=1)
    with pytest.raises(ValueError, match="needs a path"):
        D.build_source("folder:", 32)
    with pytest.raises(ValueError, match="unknown split"):
        D.build_source("ellipses", 32, split="dev")


# ------------------------------------------------------------------ folders
def test_folder_reads_every_format(tmp_path):
    import tifffile

    rng = np.random.default_rng(1)
    g = rng.random((40, 40))
    _write_png(tmp_path / "a_gray8.png", (g * 255).astype(np.uint8))
    _write_png(tmp_path / "b_gray16.png", (g * 65535).astype(np.uint16))
    _write_png(tmp_path / "c_rgb.png", (np.stack([g, g, g], -1) * 255).astype(np.uint8))
    _write_png(tmp_path / "d_rgba.png", (np.stack([g, g, g, np.ones_like(g)], -1) * 255).astype(np.uint8))
    _write_png(tmp_path / "e.jpg", (np.stack([g, g, g], -1) * 255).astype(np.uint8))
    tifffile.imwrite(tmp_path / "f16.tif", (g * 65535).astype(np.uint16))
    tifffile.imwrite(tmp_path / "f8.tiff", (g * 255).astype(np.uint8))
    np.save(tmp_path / "g.npy", (g * 255).astype(np.uint8))
    np.savez(tmp_path / "h.npz", img=(g * 255).astype(np.uint8))
    src = D.build_source(f"folder:{tmp_path}", 32, splits=(9, 0, 0), fit="crop", normalise="dtype")
    assert src.spec()["stats"]["files"] == sorted(p.name for p in tmp_path.iterdir())
    x = src.batch(range(len(src)))
    ref = torch.from_numpy(g[4:36, 4:36]).float()
    for k in range(9):  # every format gives the same gray image (JPEG: lossy)
        tol = 0.08 if k == 4 else 0.006
        assert float((x[k, 0] - ref).abs().mean()) < tol, src.spec()["stats"]["files"][k]


def test_folder_fit_and_normalisation_modes(tmp_path):
    a = np.linspace(0, 1, 64 * 96).reshape(64, 96)
    np.save(tmp_path / "a.npy", 100 + 50 * a)       # values in [100, 150]
    np.save(tmp_path / "b.npy", 100 + 100 * a)      # values in [100, 200]
    kw = dict(splits=(2, 0, 0))
    img = D.build_source(f"folder:{tmp_path}", 32, normalise="image", **kw)
    assert float(img[0].max()) > 0.95 and float(img[1].max()) > 0.95
    ds = D.build_source(f"folder:{tmp_path}", 32, normalise="dataset", **kw)
    assert ds.spec()["stats"]["range"] == [100.0, 200.0]
    assert float(ds[0].max()) < 0.55 < float(ds[1].max())
    win = D.build_source(f"folder:{tmp_path}", 32, value_range=(100, 125), **kw)
    assert float(win[0].max()) == 1.0  # clipped window
    with pytest.raises(ValueError, match="outside"):
        D.build_source(f"folder:{tmp_path}", 32, normalise="dtype", **kw)
    crop = D.build_source(f"folder:{tmp_path}", 32, fit="crop", normalise="image", **kw)
    res = D.build_source(f"folder:{tmp_path}", 32, fit="resize", normalise="image", **kw)
    assert not torch.equal(crop[0], res[0])
    assert float(res[0].max() - res[0].min()) > float(crop[0].max() - crop[0].min())
    patches = D.build_source(f"folder:{tmp_path}", 32, fit="patches", **kw)
    assert len(patches) == 2 * 2 * 3


def test_folder_split_by_file_fractions_and_counts(png_folder):
    n = {s: len(D.build_source(f"folder:{png_folder}", 16, split=s)) for s in D.SPLITS}
    assert n == {"train": 8, "val": 1, "test": 1}
    c = {s: len(D.build_source(f"folder:{png_folder}", 16, split=s, splits=(5, 3, 2))) for s in D.SPLITS}
    assert c == {"train": 5, "val": 3, "test": 2}


def test_folder_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        D.build_source(f"folder:{tmp_path / 'missing'}", 16)
    with pytest.raises(ValueError, match="holds no images"):
        D.build_source(f"folder:{tmp_path}", 16)
    _write_png(tmp_path / "a.png", np.zeros((20, 20), np.uint8))
    _write_png(tmp_path / "b.png", np.full((20, 20), 200, np.uint8))
    _write_png(tmp_path / "c.png", np.full((20, 20), 100, np.uint8))
    (tmp_path / "d.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ValueError, match="d.png"):
        D.build_source(f"folder:{tmp_path}", 16, splits=(3, 0, 0))
    with pytest.warns(UserWarning, match="d.png"):
        src = D.build_source(f"folder:{tmp_path}", 16, splits=(3, 0, 0), skip_bad=True)
    assert len(src) == 3 and src.spec()["stats"]["skipped"] == ["d.png"]
    (tmp_path / "d.png").unlink()
    with pytest.raises(ValueError, match=r"a\.png is 20×20, smaller than the requested 32×32"):
        D.build_source(f"folder:{tmp_path}", 32, fit="crop", splits=(3, 0, 0))
    np.save(tmp_path / "e.npy", np.array([[0.0, np.nan], [1.0, 0.5]]))
    with pytest.raises(ValueError, match=r"e\.npy: contains NaN"):
        D.build_source(f"folder:{tmp_path}", 8, normalise="image", splits=(4, 0, 0))


@pytest.mark.skipif(not CT.is_dir(), reason="real CT slices not present")
def test_real_ct_slices():
    parts = {s: D.build_source(f"folder:{CT}", 64, split=s) for s in D.SPLITS}
    assert sum(len(p) for p in parts.values()) == len(list(CT.glob("*.png")))
    x = parts["test"][0]
    assert x.shape == (1, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1 and float(x.std()) > 0.05
    fine = parts["test"].fine([0], 2)  # re-read at 128 px from the 512 px file
    pooled = torch.nn.functional.avg_pool2d(fine, 2)
    assert float((pooled[0] - x).abs().mean()) < 0.02


# ------------------------------------------------------------------ pairs
def _pairs(split="train", n=8, size=32, noise=None, **kw):
    src = D.build_source("ellipses", size, count=n, split=split)
    op = ops.build("tomography", image_shape=(size, size), angles=12)
    return D.PairDataset(src, Physics(op, noise or nz.build("gaussian", relative=0.01)), seed=3, **kw)


def test_pairs_shapes_determinism_and_batched_path():
    ds, ds2 = _pairs(), _pairs()
    y, x = ds[2]
    assert x.shape == (1, 32, 32) and y.shape == (1, *ds.physics.operator.out_shape)
    y2, x2 = ds2[2]
    assert torch.equal(y, y2) and torch.equal(x, x2)
    yb, xb = ds.simulate([5, 2, 7])
    assert torch.equal(xb[1], x) and torch.allclose(yb[1], y, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(y, ds.physics.operator(x[None])[0])  # noise was added


@pytest.mark.processes
def test_dataloader_workers_give_identical_samples():
    ds = _pairs(n=8, fresh_noise=True)
    dl2 = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, persistent_workers=True)
    a, b = list(torch.utils.data.DataLoader(ds, batch_size=3, num_workers=0)), list(dl2)
    assert len(a) == len(b) == 3
    for (ya, xa), (yb, xb) in zip(a, b):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)
    ds.set_epoch(1)  # persistent workers see the new epoch (shared memory)
    c = list(dl2)
    assert torch.equal(c[0][1], a[0][1]) and not torch.equal(c[0][0], a[0][0])
    assert torch.allclose(c[0][0][0], ds[0][0], atol=1e-5, rtol=1e-5)


def test_fresh_noise_changes_each_epoch_but_val_and_test_do_not():
    tr = _pairs(fresh_noise=True)
    y0 = tr[0][0]
    tr.set_epoch(1)
    y1 = tr[0][0]
    tr.set_epoch(0)
    assert not torch.equal(y0, y1) and torch.equal(tr[0][0], y0)
    for split in ("val", "test"):
        ev = _pairs(split=split, simulation="crime")
        before = ev[0][0]
        ev.set_epoch(5)
        assert torch.equal(ev[0][0], before)
        with pytest.raises(ValueError, match="fresh_noise is for training only"):
            _pairs(split=split, fresh_noise=True)


def test_noise_level_drawn_per_sample():
    ds = _pairs(n=6, noise=nz.build("gaussian", sigma_range=(0.0, 0.5)), simulation="crime")
    y, x = ds.simulate(range(6))
    res = (y - ds.physics.operator(x)).reshape(6, -1).std(dim=1)
    assert float(res.max() / res.min()) > 1.5


def test_materialise_round_trip_and_refusal(tmp_path):
    ds = _pairs(n=5)
    path = D.materialise(ds, tmp_path / "train.npz", batch_size=2)
    assert path.exists() and (tmp_path / "train.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    y, x, man = D.load_pairs(path, expect=ds)
    yr, xr = (torch.cat(t) for t in zip(*(ds.simulate(range(s, min(5, s + 2))) for s in range(0, 5, 2))))
    assert torch.equal(y, yr) and torch.equal(x, xr)  # exactly what was simulated, in its batches of 2
    assert torch.allclose(y, ds.simulate(range(5))[0], atol=1e-5)  # K's rounding depends on the batch
    assert man["simulation"] == "crime" and man["physics"]["operator"]["name"] == "tomography" and man["seed"] == 3
    other = _pairs(n=5, noise=nz.build("gaussian", relative=0.02))
    with pytest.raises(ValueError, match=r"noise\.params\.relative"):
        D.load_pairs(path, expect=other)
    with pytest.raises(ValueError, match="'simulation'"):
        D.load_pairs(path, expect=_pairs(n=5, simulation="fine"))
    with open(path, "r+b") as f:
        f.seek(-10, 2)
        f.write(b"0123456789")
    with pytest.raises(ValueError, match="checksum"):
        D.load_pairs(path)


@pytest.mark.processes
@pytest.mark.parametrize("workers, world", [(0, 1), (2, 1), (1, 2)])
def test_pair_shards_stream_every_pair_once(tmp_path, workers, world):
    ds = _pairs(n=7)
    root = D.materialise(ds, tmp_path / "pairs", batch_size=2, shard_size=3)
    man = json.loads((root / "manifest.json").read_text())
    assert [s["count"] for s in man["shards"]] == [3, 3, 1] and all(len(s["sha256"]) == 64 for s in man["shards"])
    yr, xr = ds.simulate(range(7))
    got = []
    for rank in range(world):
        shards = D.PairShards(root, expect=ds, shuffle=True, seed=1, rank=rank, world=world)
        loader = torch.utils.data.DataLoader(shards, batch_size=2, num_workers=workers)
        got += [(y, x) for yb, xb in loader for y, x in zip(yb, xb)]
    assert len(got) == 7  # every pair exactly once over the workers and ranks
    for y, x in got:
        i = int(((xr - x).flatten(1).abs().sum(1)).argmin())
        assert torch.equal(x, xr[i]) and torch.allclose(y, yr[i], atol=1e-6)
    assert len({int(((xr - x).flatten(1).abs().sum(1)).argmin()) for _, x in got}) == 7


def test_pair_shards_refuse_bad_data(tmp_path):
    ds = _pairs(n=5)
    root = D.materialise(ds, tmp_path / "pairs", shard_size=2)
    with pytest.raises(FileExistsError, match="already holds"):
        D.materialise(ds, root, shard_size=2)
    with pytest.raises(ValueError, match=r"noise\.params\.relative"):
        D.PairShards(root, expect=_pairs(n=5, noise=nz.build("gaussian", relative=0.02)))
    shard = root / "shard-00001.npz"
    data = bytearray(shard.read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="shard-00001.npz does not match its manifest's checksum"):
        list(D.PairShards(root))
    shard.write_bytes(bytes(data[:100]))
    with pytest.raises(ValueError, match="shard-00001.npz has 100 bytes"):
        D.PairShards(root)
    shard.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        D.PairShards(root)
    with pytest.raises(FileNotFoundError, match="not a sharded pair data set"):
        D.PairShards(tmp_path)


# ------------------------------------------------------------------ inverse crime
def _default_params(name: str) -> dict:
    return {"tomography": {"angles": 16}, "fanbeam": {"angles": 16}, "matrix": {"m": 64},
            "inpainting": {"missing": 0.3}}.get(name, {})


@pytest.mark.parametrize("name", ops.names())
def test_every_operator_refines_or_says_why(name):
    op = ops.build(name, image_shape=(32, 32), **_default_params(name))
    try:
        r = fine_operator(op, 2)
    except ValueError as e:
        assert "simulation='crime'" in str(e)
        return
    assert r.operator.in_shape == (64, 64) and r.operator.out_shape == op.out_shape
    assert r.mismatch < 0.05 and r.info()["method"] in ("refined", "rebuilt", "area")


@pytest.mark.parametrize("kw", [{"kernel": "gaussian", "sigma": 1.5}, {"kernel": "motion", "length": 6.0, "angle": 30.0},
                                {"kernel": "disk", "radius": 3.0}])
def test_refined_blur_keeps_the_physical_psf_width(kw):
    """Every PSF family is rebuilt with its width in fine pixels (σ, L, r ×2): on a sharp
    phantom, s·R·K_f x_f stays within 10% of K x (the discretisation difference only)."""
    from invmap.data.crime import Pool

    xf = D.shepp_logan(64).float().reshape(1, 1, 64, 64)
    xc = Pool((64, 64), (2, 2))(xf)
    op = ops.build("blur", image_shape=(32, 32), **kw)
    r = fine_operator(op, 2)
    width = next(k for k in ("sigma", "length", "radius") if k in kw)
    assert r.info()["fine_operator"]["params"][width] == pytest.approx(2 * kw[width])
    a, b = op(xc), r.operator(xf)
    assert float((a - b).norm() / a.norm()) < 0.10


def test_fine_and_crime_modes_differ_slightly_and_are_recorded():
    crime, fine = _pairs(split="test", simulation="crime"), _pairs(split="test")
    assert fine.simulation == "fine" and _pairs().simulation == "crime"  # defaults by split
    yc, xc = crime.clean(range(8))
    yf, xf = fine.clean(range(8))
    assert torch.equal(xc, xf)  # same ground truth, different data
    rel = float((yf - yc).norm() / yc.norm())
    assert 1e-3 < rel < 0.15
    m = fine.manifest()
    assert m["simulation"] == "fine" and m["refine"]["factor"] == 2 and m["refine"]["scale"] == 0.5
    assert crime.manifest()["simulation"] == "crime" and "refine" not in crime.manifest()
    with pytest.raises(ValueError, match="unknown simulation mode"):
        _pairs(simulation="exact")
