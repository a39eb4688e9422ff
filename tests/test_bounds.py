"""Calibrated uncertainty of a learned reconstruction: per-image PSNR bounds (`invmap.trust.conformal`,
split conformal) and per-pixel intervals with risk control (`invmap.trust.intervals`): their
guarantees where the calibration pairs came from, the minimum calibration sets, and both in
evaluate / reconstruct."""

from __future__ import annotations

import json
import math

import pytest
import torch

from invmap.cli import main
from invmap.trust import intervals
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


def test_hoeffding_bentkus_p_value_and_the_smallest_calibration_set():
    assert intervals.min_pairs(0.1, 0.1) == 22 and intervals.min_pairs(0.2, 0.05) == 14
    assert intervals.hb_p_value(0.0, 22, 0.1) == pytest.approx(0.9 ** 22) and 0.9 ** 22 < 0.1 < 0.9 ** 21
    assert intervals.hb_p_value(0.1, 1000, 0.1) == 1.0 and intervals.hb_p_value(0.05, 1000, 0.1) < 1e-6
    with pytest.raises(ValueError, match="need at least 22 calibration pairs") as e:
        intervals.fit(torch.rand(21, 1, 8, 8), torch.rand(21, 1, 8, 8), torch.rand(21, 1, 8, 8))
    assert "\n" not in str(e.value)


def test_pixel_intervals_control_the_risk_where_the_calibration_pairs_came_from():
    """Errors proportional to the width map: over many calibration sets of 30 images, the fitted
    λ̂ gives a true risk (on 400 fresh images) above α in at most a fraction δ of them (plus the
    Monte-Carlo slack), and the risk is not wasted: the intervals are not trivially wide."""
    g = torch.Generator().manual_seed(0)

    def draw(n):
        x_b = torch.rand(n, 1, 16, 16, generator=g)
        x_hat = x_b + 0.05 * torch.randn(n, 1, 16, 16, generator=g)
        u = intervals.width_map(x_hat, x_b)
        return x_hat + u * torch.randn(n, 1, 16, 16, generator=g), x_hat, x_b

    fresh = draw(400)
    over, risks = 0, []
    for _ in range(60):
        p = intervals.fit(*draw(30), alpha=0.1, delta=0.1)
        risk = float(intervals.outside(fresh[0], fresh[1], intervals.width_map(fresh[1], fresh[2]), p.lam).mean())
        over += risk > 0.1
        risks.append(risk)
    assert over / 60 <= 0.1 + 0.08, over
    assert 0.005 < sum(risks) / len(risks) < 0.1
    lo, hi = p(fresh[1], fresh[2])
    assert bool((lo <= fresh[1]).all() and (fresh[1] <= hi).all())
    assert intervals.PixelIntervals.from_dict(p.to_dict()) == p


TINY = ["data.size=32", "data.train=16", "data.val=12", "data.test=8", "training.epochs=2", "training.batch_size=8",
        "training.max_minutes=0", "training.threads=1", "training.amp=off", "operator.angles=16",
        "model.name=unet", "model.depth=2", "model.base_channels=4", "evaluation.methods=[fbp,tv,model]"]


def _train(out, *more):
    assert main(["train", "--out", str(out), "--quiet", *[a for o in TINY + list(more) for a in ("--set", o)]]) == 0
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("bound") / "run")


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """data.val = 48: 24 pairs for the trust score, 24 for the bound and the intervals (need 22)."""
    return _train(tmp_path_factory.mktemp("bound") / "big", "data.val=48")


def test_evaluate_and_reconstruct_state_the_bound_with_its_probability(run, tmp_path, capsys, monkeypatch):
    """data.val = 12: 6 pairs calibrate the trust score, 6 the bound: enough for 0.8 (needs 4),
    not for 0.9 (needs 9): evaluate says so and gives none; reconstruct --bound 0.9 is a one-line error
    naming the minimum; --bound 0.8 prints and records the bound beside its probability."""
    from invmap.evaluation.evaluate import read_metrics

    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(run), "--n", "8", "--no-figure"]) == 0
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
    out = capsys.readouterr().out  # a flat image: the check calls it suspect, so the bound is not printed
    assert "suspect: " in out and "no PSNR bound for the model's x̂: the trust check finds this image unlike" in out
    rec = json.loads((tmp_path / "xh.trust.json").read_text())["images"][0]["psnr_bound"]
    assert rec["db"] is None and "unlike the training conditions" in rec["why"]
    monkeypatch.setattr("invmap.evaluation.trust_check.no_bound_because", lambda *a: None)  # were it printed:
    assert main(base + ["--bound", "0.8", "--overwrite"]) == 0
    assert "dB with probability 0.8" in capsys.readouterr().out
    rec = json.loads((tmp_path / "xh.trust.json").read_text())["images"][0]["psnr_bound"]
    assert rec["probability"] == 0.8 and math.isfinite(rec["db"]) and rec["of"] == "model"


def test_reconstruct_writes_risk_controlled_intervals(run, big_run, tmp_path, capsys, monkeypatch):
    """``--intervals``: x̂.lower / x̂.upper around x̂, described with α and the confidence in the
    output and the sidecar; too few calibration pairs is a one-line error naming the minimum,
    and nothing is written."""
    import numpy as np

    monkeypatch.chdir(tmp_path)
    from invmap.data import build_source

    # a validation image of the run: on one the trust check calls suspect no bound is printed
    np.save(tmp_path / "x.npy", build_source("ellipses", 32, split="val", count=12, seed=0).batch([0])[0, 0].numpy())
    base = ["reconstruct", "--simulate", "--input", "x.npy", "--output", "xh.npy", "--intervals"]
    assert main(["evaluate", str(run), "--n", "2", "--no-figure"]) == 0  # its tuned tv
    capsys.readouterr()
    assert main(base + ["--model", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "need at least 22 calibration pairs" in err and "\n" not in err, err
    assert not list(tmp_path.glob("xh*"))
    assert main(["evaluate", str(big_run), "--n", "4", "--no-figure"]) == 0
    rows = {r["method"]: r for r in __import__("invmap.evaluation.evaluate", fromlist=["x"]).read_metrics(
        big_run / "metrics.csv")}
    assert 0 <= rows["model"]["pixel_risk_mean"] <= 1 and rows["model"]["pixel_alpha_mean"] == pytest.approx(0.1)
    capsys.readouterr()
    assert main(base + ["--model", str(big_run)]) == 0
    out = capsys.readouterr().out
    assert "missing at most 0.1 of the pixels with probability 0.9" in out
    xh, lo, hi = (np.load(tmp_path / f) for f in ("xh.npy", "xh.lower.npy", "xh.upper.npy"))
    assert lo.shape == xh.shape == hi.shape and (lo <= xh).all() and (xh <= hi).all() and (hi > lo).any()
    side = json.loads((tmp_path / "xh.trust.json").read_text())["intervals"]
    assert side["alpha"] == 0.1 and side["delta"] == 0.1 and side["n"] == 24 and side["lower"] == "xh.lower.npy"
    assert main(base + ["--model", str(big_run)]) == 2  # the interval images exist now: kept, not overwritten
    assert "output exists" in capsys.readouterr().err


def test_safe_says_where_it_cannot_promise_to_stay_near_tv(big_run, tmp_path, capsys, monkeypatch):
    """#28 item 5: safe's margin bound to tv (split conformal on the held-out pairs, scaled by the
    model's trust) is printed per image with its probability — "within 0.5 dB … or better" or
    "CANNOT promise" — and recorded in the sidecar; the evaluation scores how often safe promised and
    how often a promise held (promise_kept: NaN on the images it did not promise)."""
    import numpy as np

    from invmap.evaluation.evaluate import read_metrics
    from invmap.trust.safe import TOLERANCE_DB

    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", str(big_run), "--methods", "fbp,tv,model,safe", "--n", "6", "--no-figure"]) == 0
    rows = {r["method"]: r for r in read_metrics(big_run / "metrics.csv")}
    assert 0 <= rows["safe"]["promised_mean"] <= 1 and rows["model"]["promised_mean"] is None
    assert rows["safe"]["margin_bound_mean"] is not None
    kept = rows["safe"]["promise_kept_mean"]
    assert kept is None or 0 <= kept <= 1  # None: it promised nothing on these six images
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((2, 1, 32, 32)).astype(np.float32))
    capsys.readouterr()
    assert main(["reconstruct", "--model", str(big_run), "--simulate", "--input", "x.npy", "--output", "xs.npy",
                 "--safe"]) == 0
    out = capsys.readouterr().out
    promise = json.loads((tmp_path / "xs.trust.json").read_text())["safe"]["promise"]
    assert promise["probability"] == 0.9 and promise["tolerance_db"] == TOLERANCE_DB
    assert len(promise["margin_bound_db"]) == 2
    for i, (b, ok) in enumerate(zip(promise["margin_bound_db"], promise["promised"])):
        assert ok == (b >= -TOLERANCE_DB)
        said = f"image {i}: safe: within 0.5 dB of tv or better with probability 0.9" if ok else \
            f"image {i}: safe: CANNOT promise to be within 0.5 dB of tv on this image"
        assert said in out, out
