"""Every learned method of a run — the trained model, the safe mode, a plug-and-play scheme —
gets its own stress verdict and heatmap row; a method says itself whether it is learned
(tiny sizes: 32 px, 2 images per level)."""

from __future__ import annotations

import json

import pytest
import torch

import invmap.models as models
from invmap import variational
from invmap.evaluation import figures, report, stress
from invmap.evaluation.task import Condition
from invmap.evaluation.verdicts import is_learned, learned_of, verdicts_from_rows

SIZE = 32
TINY_KINDS = {"lgd": dict(iterations=2, memory=2, channels=4, depth=2),
              "lpd": dict(iterations=2, primal=2, dual=2, channels=4, depth=2),
              "unrolled": dict(iterations=2, channels=4, depth=2),
              "denoiser": dict(depth=2, base_channels=4),
              "unfolded": dict(prior=None, iterations=2, depth=2, base_channels=4, tune=False)}


def tiny_denoiser() -> models.LearnedReconstructor:
    torch.manual_seed(0)
    return models.LearnedReconstructor(models.build("cnn", depth=2, channels=4, residual=True), input="adjoint")


def tiny_kind(name: str) -> torch.nn.Module:
    if name == "pnp":  # its denoiser is normally a run directory; the reconstructor itself is what is asked
        from invmap.models.pnp import PlugAndPlay

        return PlugAndPlay(tiny_denoiser(), iterations=2, tune=False)
    return models.build_kind(name, **TINY_KINDS[name])


@pytest.mark.parametrize("name", variational.names())
def test_every_method_says_whether_it_is_learned(name):
    """Classical methods are baselines; those with a learned prior (pnp, diffpir, dps) are not."""
    prior = variational.METHODS.get(name).learned  # the class declares it
    assert is_learned(name, variational.build(name)) is prior
    assert is_learned("model", variational.build(name)) is prior  # the object answers, not its name
    assert prior == (name in ("pnp", "diffpir", "dps"))


@pytest.mark.parametrize("name", models.KINDS.names())
def test_every_reconstructor_kind_says_it_is_learned(name):
    assert name == "pnp" or name in TINY_KINDS, f"add a tiny build of kind '{name}' to this test"
    assert is_learned(name, tiny_kind(name)) is True


@pytest.mark.parametrize("arch", models.names())
def test_post_processing_and_safe_are_learned(arch):
    from invmap.trust import SafeReconstructor

    recon = models.LearnedReconstructor(models.build_for(arch, (SIZE, SIZE), (SIZE, SIZE)), input="adjoint")
    assert is_learned("anything", recon)
    assert is_learned("anything", SafeReconstructor(recon, variational.build("tv")))


def test_callables_and_old_files_fall_back_to_the_learned_names():
    assert is_learned("model", lambda y, p: y) and not is_learned("tv", lambda y, p: y)
    assert learned_of({"methods": ["fbp", "model", "tv"]}) == ["model"]  # stress.json before ``learned``
    assert learned_of({"methods": ["fbp", "tv"], "learned": ["pnp"]}) == ["pnp"]


def _rows(table: dict[str, dict[str, float]]) -> list[dict]:
    return [{"shift": "geometry", "level": lv, "method": m, "metric": "psnr", "mean": v, "std": 0.0}
            for lv, row in table.items() for m, v in row.items()]


def test_one_verdict_per_learned_method_and_no_learned_method_is_a_baseline():
    levels = ["15 views", "60 views", "120 views"]
    table = {"15 views": {"model": 20.0, "safe": 24.5, "pnp": 26.0, "tv": 24.0, "fbp": 18.0},
             "60 views": {"model": 33.0, "safe": 33.0, "pnp": 34.0, "tv": 31.0, "fbp": 28.0},
             "120 views": {"model": 35.0, "safe": 35.0, "pnp": 36.0, "tv": 34.0, "fbp": 33.0}}
    shift = {"name": "geometry", "levels": levels, "training_level": "60 views", "ordered": True,
             "learned": ["model", "safe", "pnp"]}
    vs = {v.method: v for v in verdicts_from_rows(_rows(table), [shift])}
    assert set(vs) == {"model", "safe", "pnp"}
    assert "the model falls below tv at 15 views" in vs["model"].text  # tv is the best baseline, not pnp
    assert vs["safe"].model_always_best and vs["safe"].text.startswith("geometry: safe stays above")
    assert vs["pnp"].model_always_best and "smallest lead 2.0 dB, at 15 views" in vs["pnp"].text
    assert all(v.to_dict()["method"] == m for m, v in vs.items())
    only_learned = {lv: {"model": 3.0, "pnp": 2.0} for lv in levels}
    (v,) = [v for v in verdicts_from_rows(_rows(only_learned), [{**shift, "learned": ["pnp"]}])
            if v.method == "pnp"]
    assert not v.model_always_best and "already below model" in v.text  # "model" is not declared learned here


def test_stress_study_report_and_heatmap_cover_every_learned_method(tmp_path, monkeypatch):
    import matplotlib.axes
    import numpy as np

    from invmap.models.pnp import PlugAndPlay

    ref = Condition.of("ellipses", SIZE, {"operator": {"name": "blur", "params": {"sigma": 1.0}},
                                          "noise": {"name": "gaussian", "params": {"relative": 0.05}}}, n=2)
    methods = {"tv": variational.build("tv", lam=0.02, iters=5),
               "model": models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="adjoint").eval(),
               "pnp": PlugAndPlay(tiny_denoiser(), iterations=2, tune=False).eval()}
    shown = {}
    real_imshow = matplotlib.axes.Axes.imshow

    def spy(self, data, *a, **k):
        shown["rows"] = np.ma.filled(data, np.nan).shape[0]
        return real_imshow(self, data, *a, **k)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", spy)
    _rows_, meta = stress.stress_study(methods, ref, tmp_path, kinds=["noise", "object"])
    assert meta["learned"] == ["model", "pnp"] and all(sh["learned"] == ["model", "pnp"] for sh in meta["shifts"])
    assert sorted((v["shift"], v["method"]) for v in meta["verdicts"]) == [
        ("noise", "model"), ("noise", "pnp"), ("object", "model"), ("object", "pnp")]
    assert all("pnp" not in v["text"] or v["method"] == "pnp" for v in meta["verdicts"])  # never a baseline
    assert shown["rows"] == 4  # one heatmap row per shift and learned method
    (tmp_path / "config.yaml").write_text("name: learned\n")
    html = report.build_report(tmp_path).read_text()
    import html as _html

    assert all(_html.escape(v["text"]) in html for v in json.loads((tmp_path / "stress.json").read_text())["verdicts"])
    only_model = [r for r in _rows_ if r["method"] != "pnp"]
    shifts = [{k: v for k, v in sh.items() if k != "learned"} | {"learned": ["model"]} for sh in meta["shifts"]]
    assert figures.stress_overview(shifts, only_model, tmp_path / "one.png") is not None and shown["rows"] == 2
