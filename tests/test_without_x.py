"""A test set of measurements without x (``data.test_measurements``): `invmap evaluate` scores what y
alone says — the noise-weighted misfit χ²/m and projected SURE of the MSE in the range of Kᵀ — and
never prints or writes a PSNR it cannot compute; SURE is absent (and says why) where it is not
valid; a bad measurement file is one line naming it, before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from invmap.cli import main
from invmap.config import load_config
from invmap.data import build_source
from invmap.evaluation import without_x
from invmap.selfsup.projected import pseudo_inverse

SIZE, N = 32, 8
TASK = ["operator.name=inpainting", "noise.relative=null", "noise.sigma=0.05", "data.size=32", "data.val=4",
        "data.test=8", "data.simulation=crime", "data.test_simulation=crime", "evaluation.zoo=false",
        "evaluation.bound=0", "evaluation.pixel_risk=0", "evaluation.tune_grid={tv: {lam: [0.02, 0.05]}}",
        "evaluation.params={tv: {iters: 60}}", "evaluation.batch_size=4"]


def _scans(folder, noise: list[str] | None = None, n: int = N, ops: list[str] | None = None):
    """n measurements y of ellipses simulated with the task's own K and noise, as .npy files; returns x."""
    cfg = load_config(None, _task(noise, ops))
    phys = cfg.physics()
    x = build_source("ellipses", size=SIZE, count=n, seed=11).batch(list(range(n)))
    y = phys.noisy(phys.operator(x), torch.Generator().manual_seed(3))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        np.save(folder / f"scan_{i:02d}.npy", y[i, 0].numpy())
    return x, phys


def _task(noise: list[str] | None = None, ops: list[str] | None = None) -> list[str]:
    """TASK, with `noise` settings in place of its Gaussian noise (and `ops` of its operator)."""
    drop = ("noise.",) * (noise is not None) + ("operator.",) * (ops is not None)
    return [s for s in TASK if not (drop and s.startswith(drop))] + (noise or []) + (ops or [])


def _sets(tmp_path, *more: str, noise: list[str] | None = None, ops: list[str] | None = None) -> list[str]:
    """A task file and the task's settings: the arguments after ``invmap evaluate``."""
    cfg = tmp_path / "task.yaml"
    cfg.write_text("name: without-x\n")
    return [str(cfg)] + [a for s in _task(noise, ops) + list(more) for a in ("--set", s)]


def test_evaluate_scores_consistency_and_sure_and_never_a_psnr(tmp_path, capsys):
    x, phys = _scans(tmp_path / "scans")
    out = tmp_path / "ev"
    out.mkdir()
    (out / "metrics.csv").write_text("method,n,psnr_mean\nfbp,4,30.0\n")  # scored against x earlier: kept
    assert main(["evaluate", "--methods", "adjoint,tv", "--out", str(out), "--no-figure",
                 *_sets(tmp_path, f"data.test_measurements={tmp_path / 'scans'}")]) == 0
    said = capsys.readouterr().out
    table = said[said.index("\nmethod"):].lower().replace("no psnr or ssim", "").replace("no psnr", "")
    assert "psnr" not in table and "ssim" not in table and "db" not in table, said  # (TV was tuned on simulated x)
    assert "no x" in said and "SURE estimates the MSE in the range of Kᵀ" in said
    assert (out / "metrics.csv").read_text() == "method,n,psnr_mean\nfbp,4,30.0\n"
    rows = {r["method"]: r for r in without_x.read(out / without_x.CSV)}
    md = (out / without_x.MD).read_text()
    assert "PSNR (dB" not in md and "no ground truth" in md
    assert set(rows) == {"adjoint", "tv"} and all(r["x"] == "no x" and r["n"] == N for r in rows.values())
    # χ²/m: Kᵀy reproduces y exactly on the kept pixels (misfit 0); TV smooths: near the noise level
    assert rows["adjoint"]["chi2_mean"] < 1e-6 and 0.3 < rows["tv"]["chi2_mean"] < 3
    # SURE against the truth the test knows: P = K⁺K keeps the observed pixels
    y = torch.stack([torch.from_numpy(np.load(tmp_path / "scans" / f"scan_{i:02d}.npy")) for i in range(N)])[:, None]
    x_hat = phys.operator.adjoint(y)
    true = (pseudo_inverse(phys.operator, phys.operator(x_hat - x)) ** 2).flatten(1).mean(1)
    se = float(rows["adjoint"]["sure_mse_std"]) / N ** 0.5
    assert abs(rows["adjoint"]["sure_mse_mean"] - float(true.mean())) < 4 * se + 1e-4
    # the report shows the table without a PSNR column; the stress study says where its x come from
    (out / "metrics.csv").unlink()
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Test measurements without x" in page and "χ²/m" in page
    assert main(["stress", str(out), "--shifts", "noise", "--n", "2", "--no-report", "--methods", "adjoint"]) == 0
    said = capsys.readouterr()
    assert "simulates its levels from ellipses images (with x)" in said.out + said.err


def _evaluate_adjoint_on_scans(tmp_path, capsys, **given) -> tuple:
    """`invmap evaluate --methods adjoint` on the measurements of tmp_path/scans (no x): (its output folder,
    the adjoint's consistency row, what it printed)."""
    out = tmp_path / "ev"
    assert main(["evaluate", "--methods", "adjoint", "--out", str(out), "--no-figure",
                 *_sets(tmp_path, f"data.test_measurements={tmp_path / 'scans'}", **given)]) == 0
    said = capsys.readouterr()
    return out, without_x.read(out / without_x.CSV)[0], said.out + said.err


def test_without_gaussian_noise_sure_is_absent_and_says_why(tmp_path, capsys):
    noise = ["noise.name=poisson", "noise.photons=2000"]
    _scans(tmp_path / "scans", noise)
    out, row, said = _evaluate_adjoint_on_scans(tmp_path, capsys, noise=noise)
    assert row["sure_mse_mean"] is None and row["chi2_mean"] is not None
    assert "no SURE estimate: not valid: noise 'poisson' is not Gaussian" in said
    assert "not valid" in (out / without_x.MD).read_text() and not (out / "metrics.csv").exists()


@pytest.mark.parametrize("case", ["NaN values", "another shape", "no such folder"])
def test_a_bad_test_measurement_is_one_line_before_anything_is_written(case, tmp_path, capsys):
    folder = tmp_path / "scans"
    _scans(folder)
    if case == "NaN values":
        a = np.load(folder / "scan_03.npy")
        a[1, 2] = np.nan
        np.save(folder / "scan_03.npy", a)
        want = "scan_03.npy: holds NaN or Inf"
    elif case == "another shape":
        np.save(folder / "scan_05.npy", np.zeros((8, 8), dtype=np.float32))
        want = "scan_05.npy: shape [8, 8], but K measures [32, 32]"
    else:
        folder = tmp_path / "missing"
        want = "data.test_measurements: folder not found"
    out = tmp_path / "ev"
    assert main(["evaluate", "--methods", "adjoint,tv", "--out", str(out), "--no-figure",
                 *_sets(tmp_path, f"data.test_measurements={folder}")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("invmap: error:") and want in err[0], err
    assert not out.exists()


def test_no_sure_number_where_the_pseudo_inverse_is_not_reached(tmp_path, capsys, monkeypatch):
    """Projected SURE holds for the exact K⁺ alone: where CGLS does not reach it (an ill-conditioned K;
    here forced by two iterations on CT) the column is empty and a note says why, not a wrong number."""
    from invmap.selfsup import projected

    monkeypatch.setattr(without_x, "projected_sure", lambda *a, **k: projected.projected_sure(*a, **k, max_iter=2))
    ct = ["operator.name=tomography", "operator.angles=12", "noise.relative=null", "noise.sigma=0.05"]
    _scans(tmp_path / "scans", ops=ct)
    _out, row, said = _evaluate_adjoint_on_scans(tmp_path, capsys, ops=ct)
    assert row["sure_mse_mean"] is None and row["chi2_mean"] is not None
    assert "no SURE estimate: not computed: K⁺ by CGLS did not reach its tolerance" in said
