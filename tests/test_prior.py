"""One learned prior for every operator: the noise-conditional denoiser D(v, σ), plug-and-play at
decreasing σ, the DiffPIR / DPS posterior samplers and their std maps (tiny sizes, a denoiser
trained here for a few steps; the zoo entry's quality is measured in BENCHMARKS.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import invmap.models as models
import invmap.noise as noise_mod
import invmap.operators as ops
import invmap.variational as var
from invmap.cli import main
from invmap.physics import Physics

SIZE = 32
PRIOR_METHODS = [n for n in var.names() if var.METHODS.get(n).learned]


def operator(name: str):
    return ops.build(name, image_shape=(SIZE, SIZE), **({"angles": 12} if name in ("tomography", "fanbeam") else {}))


def tiny_task(**extra) -> list[str]:
    sets = {"data.size": SIZE, "data.train": 16, "data.val": 4, "data.test": 4, "data.source": "ellipses",
            "data.simulation": "crime", "data.test_simulation": "crime", "operator.name": "identity",
            "noise.name": "gaussian", "noise.relative": "null", "noise.sigma": "{uniform: [0.0, 0.3], nominal: 0.1}",
            "model.name": "denoiser", "model.depth": 2, "model.base_channels": 4, "training.epochs": 1,
            "training.batch_size": 4, "training.amp": "off", "training.device": "cpu", "evaluation.zoo": "false",
            "evaluation.bound": 0, "evaluation.pixel_risk": 0, "evaluation.methods": "[model]", **extra}
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def prior(tmp_path_factory) -> str:
    """A noise-conditional denoiser trained by `invmap train` on drawn σ (one epoch)."""
    out = tmp_path_factory.mktemp("prior") / "run"
    assert main(["train", "--quiet", "--out", str(out)] + tiny_task()) == 0
    return str(out)


def test_the_kind_reads_each_samples_own_sigma(prior):
    """Drawn noise: z_i = [y_i, σ_i·1] with each pair's own σ_i, and y_i − x_i has that spread."""
    from invmap.config import load_config
    from invmap.training.setup import Pairs

    cfg = load_config(None, [s for s in tiny_task(**{"data.size": 64, "data.train": 8}) if s != "--set"])
    recon = models.build_kind("denoiser", depth=2, base_channels=4)
    pairs = Pairs(cfg, cfg.physics(), "train", recon, torch.device("cpu"), fresh_noise=True)
    z, x, _ = pairs.batch(torch.arange(8), epoch=0)
    sig = torch.tensor([json.loads(pairs.ds.draw(i).noise)["params"]["sigma"] for i in range(8)])
    assert sig.std() > 0.02  # the pairs really differ in σ
    torch.testing.assert_close(z[:, 1].flatten(1).mean(1), sig.float(), atol=1e-6, rtol=0)
    assert torch.allclose(z[:, 1].flatten(1).std(1), torch.zeros(8), atol=1e-6)  # a constant map per image
    spread = (z[:, 0] - x[:, 0]).flatten(1).std(1)
    assert torch.allclose(spread, sig.float(), rtol=0.1, atol=0.005)


def test_the_denoiser_refuses_what_it_was_not_trained_for(prior):
    d, _ = models.load_model(prior)
    v = torch.rand(2, 1, SIZE, SIZE)
    assert d.denoise(v, 0.1).shape == v.shape and d.denoise(v, torch.tensor([0.0, 0.3])).shape == v.shape
    for bad, match in ((0.5, "outside the trained range"), (-0.1, "outside the trained range"),
                       (float("nan"), "outside the trained range")):
        with pytest.raises(ValueError, match=match):
            d.denoise(v, bad)
    with pytest.raises(ValueError, match=r"real images \[B, 1, H, W\]"):
        d.denoise(torch.rand(2, 3, SIZE, SIZE), 0.1)
    with pytest.raises(ValueError, match="empty batch"):
        d.denoise(torch.rand(0, 1, SIZE, SIZE), 0.1)
    with pytest.raises(ValueError, match="3 noise levels for 2 images"):
        d.denoise(v, torch.tensor([0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match="denoising tasks"):
        d(torch.rand(2, 1, 12, SIZE), Physics(operator("tomography")))


@pytest.mark.parametrize("method", PRIOR_METHODS)
@pytest.mark.parametrize("opname", ops.names())
def test_every_prior_method_runs_on_every_operator(method, opname, prior):
    """K stays outside the prior: one denoiser serves every operator."""
    op = operator(opname)
    x = torch.rand((2, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(0))
    phys = Physics(op, noise_mod.build("gaussian", sigma=0.01))
    y = phys.measure(x, torch.Generator().manual_seed(0))
    m = var.build(method, denoiser=prior, **({"iters": 3} if method == "pnp" else {"steps": 3, "samples": 2}))
    out = m(y, phys)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("method", [n for n in PRIOR_METHODS if var.METHODS.get(n).posterior])
def test_samplers_draw_reproducible_samples_with_a_spread(method, prior):
    phys = Physics(operator("blur"), noise_mod.build("gaussian", sigma=0.02))
    x = torch.rand((2, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(1))
    y = phys.measure(x, torch.Generator().manual_seed(1))
    m = var.build(method, denoiser=prior, steps=4, samples=3)
    post = m.sample(y, phys)
    assert post.samples.shape == (3, 2, 1, SIZE, SIZE) and post.std.shape == x.shape
    torch.testing.assert_close(post.mean, post.samples.mean(0))
    torch.testing.assert_close(post.std, post.samples.std(0))
    assert float(post.std.mean()) > 0 and bool((post.std >= 0).all())
    torch.testing.assert_close(m.sample(y, phys).samples, post.samples)  # seeded: the same y, the same draws
    assert not torch.allclose(var.build(method, denoiser=prior, steps=4, seed=1).sample(y, phys, 3).samples,
                              post.samples)
    assert float(m.sample(y, phys, 1).std.abs().max()) == 0.0
    torch.testing.assert_close(m(y, phys), post.mean)
    with pytest.raises(ValueError, match="number of samples"):
        m.sample(y, phys, 0)


@pytest.mark.parametrize("bad, match", [
    ({"sigma_start": 0.01, "sigma_end": 0.1}, "sigma_end <= sigma_start"),
    ({"sigma_end": 0.0}, "0 < sigma_end"),
    ({"step": float("nan")}, "step must be"),
    ({"iters": 0}, r"'iters' \(int >= 1, <= 1000\)"),  # the range the method declares
    ({"cg_iters": 10 ** 5}, r"'cg_iters' \(int >= 1, <= 200\)"),
])
def test_bad_schedules_fail_in_one_line(bad, match):
    with pytest.raises(ValueError, match=match):
        var.build("pnp", **bad)


def test_a_model_that_is_not_a_noise_conditional_denoiser_is_refused(tmp_path):
    recon = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="adjoint")
    models.save_model(tmp_path / "run", recon, physics=Physics(operator("identity")))
    y = torch.rand(1, 1, SIZE, SIZE)
    with pytest.raises(ValueError, match="not a noise-conditional denoiser"):
        var.build("pnp", denoiser=str(tmp_path / "run"))(y, Physics(operator("identity")))
    with pytest.raises(FileNotFoundError, match="no trained model"):
        var.build("pnp", denoiser=str(tmp_path / "none"))(y, Physics(operator("identity")))


def test_pnp_is_tuned_on_validation_pairs_like_tv(prior):
    phys = Physics(operator("blur"), noise_mod.build("gaussian", sigma=0.02))
    x = torch.rand((2, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(2))
    y = phys.measure(x, torch.Generator().manual_seed(2))
    grid = {"sigma_start": [0.05, 0.1], "sigma_end": [0.01], "step": [0.3, 3.0]}
    m, table = var.tune("pnp", (y, x), grid=grid, physics=phys, fixed={"denoiser": prior, "iters": 3}, refine=1)
    assert len(table) >= 4 and m.tuning["chosen"] == max(table, key=lambda r: r["psnr"])["params"]
    assert m.params()["denoiser"] == prior


def test_the_evaluation_scores_the_std_map_against_the_error(prior):
    from invmap.evaluation.evaluate import evaluate_methods, summarize
    from invmap.trust.spread import coverage, spearman

    phys = Physics(operator("inpainting"), noise_mod.build("gaussian", sigma=0.02))
    x = torch.rand((3, 1, SIZE, SIZE), generator=torch.Generator().manual_seed(3))
    y = phys.measure(x, torch.Generator().manual_seed(3))
    m = var.build("diffpir", denoiser=prior, steps=3, samples=3)
    res, _ = evaluate_methods({"diffpir": m, "tv": var.build("tv", lam=0.01, iters=20)}, y, x, phys, batch_size=2,
                              strict=True)
    post = torch.cat([m.sample(y[:2], phys).std, m.sample(y[2:], phys).std])  # the same batches
    err = (m(y[:2], phys).cpu() - x[:2]).abs()
    torch.testing.assert_close(res["diffpir"].scores["std_spearman"][:2], spearman(post[:2], err))
    torch.testing.assert_close(res["diffpir"].scores["std_coverage"][:2], coverage(err, post[:2]))
    assert "std_spearman" not in res["tv"].scores
    row = {r["method"]: r for r in summarize(res)}
    assert row["diffpir"]["std_coverage_mean"] is not None and row["tv"]["std_coverage_mean"] is None


def test_spearman_and_coverage_agree_with_scipy():
    from scipy.stats import spearmanr

    from invmap.trust.spread import coverage, spearman

    g = torch.Generator().manual_seed(4)
    a = torch.rand(3, 1, 9, 7, generator=g)
    b = a ** 3 + 0.2 * torch.rand(3, 1, 9, 7, generator=g)
    want = [spearmanr(a[i].flatten(), b[i].flatten())[0] for i in range(3)]
    torch.testing.assert_close(spearman(a, b), torch.tensor(want, dtype=torch.float64))
    assert torch.isnan(spearman(torch.ones(1, 1, 4, 4), a[:1, :, :4, :4])).all()
    e = torch.tensor([[[[0.5, 1.0, 3.0, -2.5]]]])
    assert coverage(e, torch.ones_like(e)).tolist() == [0.5]


def test_reconstruct_with_samples_writes_mean_std_and_samples(prior, tmp_path, capsys):
    img = tmp_path / "x.npy"
    np.save(img, np.random.default_rng(0).random((SIZE, SIZE)))
    out = tmp_path / "x_post.npy"
    task = tiny_task(**{"operator.name": "blur", "noise.sigma": 0.02})
    args = ["reconstruct", "--method", "diffpir", "--param", f"denoiser={prior}", "--param", "steps=3",
            "--simulate", "--input", str(img), "--output", str(out), "--samples", "3"] + task
    assert main(args) == 0
    mean, std, samples = (np.load(tmp_path / f) for f in ("x_post.npy", "x_post.std.npy", "x_post.samples.npy"))
    assert mean.shape == std.shape == (SIZE, SIZE) and samples.shape == (3, 1, SIZE, SIZE)
    np.testing.assert_allclose(mean, samples.mean(0)[0], atol=1e-6)
    np.testing.assert_allclose(std, samples.std(0, ddof=1)[0], atol=1e-6)
    assert "posterior std" in capsys.readouterr().out
    assert main(args) == 2  # nothing is replaced without --overwrite
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize("extra, match", [
    (["--method", "diffpir", "--samples", "0"], "--samples must be >= 1"),
    (["--method", "tv", "--samples", "2"], "draws no samples"),
    (["--method", "pnp", "--param", "sigma_start=0.9"], "outside the trained range"),
    (["--method", "pnp", "--param", "sigma_start=0.1", "--param", "sigma_end=0.2"], "sigma_end <= sigma_start"),
])
def test_bad_prior_requests_fail_in_one_line_and_write_nothing(extra, match, prior, tmp_path, capsys):
    img = tmp_path / "x.npy"
    np.save(img, np.random.default_rng(0).random((SIZE, SIZE)))
    mine = ["--param", f"denoiser={prior}"] if var.METHODS.get(extra[1]).learned else []
    args = ["reconstruct", *extra, *mine, "--simulate", "--input", str(img),
            "--output", str(tmp_path / "o.npy")] + tiny_task(**{"operator.name": "blur", "noise.sigma": 0.02})
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("invmap: error:") and "\n" not in err and match in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_evaluate_scores_a_sampler_and_draws_its_std_maps(prior, tmp_path, capsys):
    """`invmap evaluate` with a posterior sampler among the methods (its denoiser fixed by
    evaluation.params, the rest tuned): std-map columns in metrics.csv, figures/posterior.png,
    and the report shows the figure."""
    from invmap.evaluation.evaluate import read_metrics

    out = tmp_path / "ev"
    sets = tiny_task(**{"operator.name": "blur", "noise.sigma": 0.02, "data.val": 2,
                        "evaluation.params": f"{{diffpir: {{denoiser: {prior}, steps: 2, samples: 2}}}}",
                        "evaluation.tune_grid": "{diffpir: {step: [1.0, 3.0]}, tv: {lam: [0.01]}}"})
    cfg = tmp_path / "task.yaml"
    cfg.write_text("name: prior-eval\n")
    assert main(["evaluate", str(cfg), "--methods", "tv,diffpir", "--out", str(out)] + sets) == 0
    rows = {r["method"]: r for r in read_metrics(out / "metrics.csv")}
    assert 0 <= rows["diffpir"]["std_coverage_mean"] <= 1 and -1 <= rows["diffpir"]["std_spearman_mean"] <= 1
    assert rows["tv"]["std_coverage_mean"] is None
    tuned = json.loads((out / "baselines.json").read_text())["diffpir"]
    assert tuned["params"]["denoiser"] == prior and tuned["params"]["steps"] == 2 and "val_psnr" in tuned
    assert (out / "figures" / "posterior.png").is_file()
    assert main(["report", str(out)]) == 0
    assert "2·std (computed without ground truth)" in (out / "report.html").read_text()  # the figure, embedded


def test_the_transforms_undo_themselves_and_average_an_equivariant_prior_to_itself():
    """g_k⁻¹ D(g_k v) = D(v) for a D that commutes with rotations and flips (here pointwise), for all
    8 k, also on non-square images; for one that does not (a shift), the average differs."""
    from invmap.variational.prior import averaged, transformed

    class Pointwise:
        def denoise(self, v, sigma):
            return v * (1 - sigma) + v ** 2 * sigma

    class Shift:
        def denoise(self, v, sigma):
            return torch.roll(v, 1, dims=3)

    v = torch.rand(2, 1, 6, 9, generator=torch.Generator().manual_seed(5))
    for k in range(8):
        torch.testing.assert_close(transformed(Pointwise(), v, 0.3, k), Pointwise().denoise(v, 0.3))
    torch.testing.assert_close(averaged(Pointwise(), v, 0.3), Pointwise().denoise(v, 0.3))
    assert averaged(Shift(), v, 0.3).shape == v.shape
    assert not torch.allclose(averaged(Shift(), v, 0.3), Shift().denoise(v, 0.3))


def test_the_report_shows_a_samplers_spread_per_stress_level_without_a_model():
    """A run of methods only (no learned model, so no trust section) still shows the std map's
    agreement with the error per level."""
    from invmap.evaluation.report import per_level_html

    shifts = [{"name": "geometry", "label": "Acquisition geometry", "axis": "views", "levels": ["30 views", "60 views"]}]
    rows = [{"shift": "geometry", "level": lv, "method": "diffpir", "metric": m, "mean": v}
            for lv, m, v in (("30 views", "std_spearman", 0.46), ("60 views", "std_spearman", 0.48),
                             ("60 views", "std_coverage", 0.66), ("60 views", "psnr", 34.4))]
    html = per_level_html(rows, shifts)
    assert "Spearman(posterior std, |error|)" in html and "0.46" in html and "0.66" in html
    assert "34.4" not in html  # PSNR lives in the stress tables, not here
    assert per_level_html([r for r in rows if r["metric"] == "psnr"], shifts) == ""
