"""Per-image PSNR bounds (`invmap.trust.conformal`): split conformal coverage at the calibration
conditions, the minimum calibration set, and the bound in evaluate / reconstruct."""

from __future__ import annotations

import json
import math

import pytest
import torch

from invmap.cli import main
from invmap.trust.conformal import PsnrBound, agreement, fit, min_pairs, scale


def _draw(n: int, g: torch.Generator, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(p, a, T) of n exchangeable images: the truth p = a + 1.5 + noise whose spread grows as trust falls."""
    a = 30 + 3 * torch.randn(n, generator=g, dtype=torch.float64)
    trust = torch.rand(n, generator=g, dtype=torch.float64).clamp(0.05, 1.0)
    p = a + 1.5 - shift + scale(trust) * torch.randn(n, generator=g, dtype=torch.float64)
    return p, a, trust


@pytest.mark.parametrize("level, n", [(0.9, 32), (0.8, 9), (0.95, 64)])
def test_the_bound_covers_at_its_level_where_the_calibration_pairs_came_from(level, n):
    """Over many calibration sets, P(p ≥ b) lies in [1 − α, 1 − α + 1/(n + 1)] (exact for exchangeable
    data), and the bound is lower where trust is lower."""
    g = torch.Generator().manual_seed(0)
    hits, total = 0, 0
    for _ in range(400):
        bound = fit(*_draw(n, g), level=level)
        p, a, t = _draw(50, g)
        hits += int((p >= bound(a, t)).sum())
        total += 50
    cov = hits / total
    assert level - 0.01 <= cov <= level + 1 / (n + 1) + 0.01, cov
    assert float(bound(torch.tensor([30.0]), torch.tensor([0.2]))) < float(bound(torch.tensor([30.0]), torch.tensor([1.0])))


def test_a_bound_needs_enough_pairs_and_round_trips():
    g = torch.Generator().manual_seed(1)
    assert [min_pairs(v) for v in (0.9, 0.95, 0.8, 0.99)] == [9, 19, 4, 99]
    with pytest.raises(ValueError, match="needs at least 9 calibration pairs") as e:
        fit(*_draw(8, g), level=0.9)
    assert "\n" not in str(e.value)
    b = fit(*_draw(9, g), level=0.9)
    assert PsnrBound.from_dict(json.loads(json.dumps(b.to_dict()))) == b
    for bad in ({**b.to_dict(), "level": 1.0}, {**b.to_dict(), "quantile": math.nan}, {**b.to_dict(), "n": 3}):
        with pytest.raises(ValueError, match="not a PSNR bound"):
            PsnrBound.from_dict(bad)
    x = torch.rand(2, 1, 8, 8, generator=g)
    assert torch.allclose(agreement(x, x + 0.1), torch.full((2,), 20.0, dtype=torch.float64), atol=1e-4)


TINY = ["data.size=32", "data.train=16", "data.val=12", "data.test=8", "training.epochs=2", "training.batch_size=8",
        "training.max_minutes=0", "training.threads=1", "training.amp=off", "operator.angles=16",
        "model.name=unet", "model.depth=2", "model.base_channels=4", "evaluation.methods=[fbp,tv,model]"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bound") / "run"
    assert main(["train", "--out", str(out), "--quiet", *[a for o in TINY for a in ("--set", o)]]) == 0
    return out


def test_evaluate_and_reconstruct_state_the_bound_with_its_probability(run, tmp_path, capsys, monkeypatch):
    """data.val = 12: 6 pairs calibrate the trust score, 6 the bound: enough for 0.8 (needs 4),
    not for 0.9 (needs 9): evaluate says so and gives none; reconstruct --bound 0.9 is a one-line error
    naming the minimum; --bound 0.8 prints and records the bound beside its probability."""
    from invmap.evaluation.evaluate import read_metrics

    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(run), "--n", "8", "--no-figure", "--tune-seconds", "2"]) == 0
    out = capsys.readouterr().out
    assert "no PSNR bound: a PSNR bound at probability 0.9 needs at least 9 calibration pairs" in out
    assert main(["evaluate", str(run), "--n", "8", "--no-figure", "--set", "evaluation.bound=0.8"]) == 0
    out = capsys.readouterr().out
    rows = {r["method"]: r for r in read_metrics(run / "metrics.csv")}
    assert rows["model"]["bound_level_mean"] == pytest.approx(0.8) and rows["tv"]["psnr_bound_mean"] is None
    assert 0 <= rows["model"]["covered_mean"] <= 1 and "PSNR ≥ b per image with probability 0.8" in out
    import numpy as np

    np.save(tmp_path / "x.npy", np.full((32, 32), 0.5, np.float32))
    base = ["reconstruct", "--model", str(run), "--simulate", "--input", "x.npy", "--output", "xh.npy"]
    for bound, message in (("0.9", "needs at least 9 calibration pairs (n ≥ 1/α − 1)"), ("1.5", "a probability in (0, 1)")):
        assert main(base + ["--bound", bound]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("invmap: error:") and "\n" not in err and message in err, err
        assert not (tmp_path / "xh.npy").exists()
    assert main(base + ["--bound", "0.8"]) == 0
    assert "dB with probability 0.8" in capsys.readouterr().out
    rec = json.loads((tmp_path / "xh.trust.json").read_text())["images"][0]["psnr_bound"]
    assert rec["probability"] == 0.8 and math.isfinite(rec["db"]) and rec["of"] == "model"
