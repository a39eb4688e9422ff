"""The teaching examples in examples/: each runs (``--quick``), writes valid PNGs and shows its point.

Every ``examples/*.py`` is imported from its path and its ``main(out_dir, quick=True)`` run
once per session (cached); the "runs and writes PNGs" test is parametrized over the files
found in examples/, so a new example is covered automatically.  The per-example tests check
the numbers each script exists to show (least squares = gradient descent, the 0.4218 MSE of
the affine fit of sin, the collapse of stacked affine maps, autograd = chain rule, ...).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(p for p in EXAMPLES_DIR.glob("*.py") if not p.name.startswith("_"))
_RESULTS: dict[str, tuple[dict, Path]] = {}


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"invmap_example_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def run_example(tmp_path_factory):
    """run_example(stem) -> (main's dict, output folder); each example runs once per session."""

    def run(stem: str) -> tuple[dict, Path]:
        if stem not in _RESULTS:
            path = EXAMPLES_DIR / f"{stem}.py"
            out = tmp_path_factory.mktemp(stem)
            # The examples train tiny networks; on a loaded shared CPU, OpenMP threads in such
            # small matmul loops can be 10-50x slower than one thread, so run them on one.
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                res = _load(path).main(out, quick=True)
            finally:
                torch.set_num_threads(threads)
            _RESULTS[stem] = (res, out)
        return _RESULTS[stem]

    return run


def _png_ok(path: Path) -> bool:
    import matplotlib.image as mpimg

    if path.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    img = mpimg.imread(path)
    return img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50 and float(img[..., :3].std()) > 0


def test_examples_found():
    assert len(EXAMPLES) >= 9, [p.name for p in EXAMPLES]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_writes_pngs(path, run_example):
    res, out = run_example(path.stem)
    assert isinstance(res, dict) and res
    pngs = sorted(out.glob("*.png"))
    assert pngs, f"{path.name} wrote no PNG into {out}"
    for png in pngs:
        assert _png_ok(png), f"{png.name} is not a valid, non-blank PNG"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_listed_in_readme(path):
    readme = (EXAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    assert f"`{path.name}`" in readme, f"examples/README.md has no line for {path.name}"


@pytest.mark.processes
@pytest.mark.parametrize("form", ["positional", "option"])
def test_example_command_line(tmp_path, form):
    out = tmp_path / "o"
    args = [str(out)] if form == "positional" else ["--out", str(out)]
    r = subprocess.run([sys.executable, str(EXAMPLES_DIR / "03_limit_of_linearity.py"), *args, "--quick"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "0.4218" in r.stdout
    assert (out / "limit_of_linearity.png").is_file()


# ---------------------------------------------------------------- what each example shows

def test_01_least_squares_recovers_theta(run_example):
    res, _ = run_example("01_linear_model")
    err = np.abs(np.array(res["theta_hat"]) - np.array(res["theta_true"]))
    assert np.all(err < 4 * np.array(res["theta_stderr"])), (res["theta_hat"], res["theta_stderr"])
    assert res["mse_fit"] <= res["mse_true"] + 1e-12  # least squares is optimal on the data
    assert res["mse_wrong"] > 3 * res["mse_true"]


def test_02_least_squares_equals_gradient_descent(run_example):
    res, _ = run_example("02_multivariate_regression")
    assert res["n_params"] == res["s"] * (res["d"] + 1)
    assert np.allclose(res["W_gd"], res["W_ls"], rtol=1e-6, atol=1e-8)
    assert np.allclose(res["b_gd"], res["b_ls"], rtol=1e-6, atol=1e-8)
    assert res["max_rel_diff_units"] < 1e-6
    assert res["mse_gd"] == pytest.approx(res["mse_ls"], rel=1e-9)
    assert res["gd_loss_last"] < res["gd_loss_first"]


def test_03_affine_fit_of_sin_is_stuck_at_0_4218(run_example):
    res, _ = run_example("03_limit_of_linearity")
    assert round(res["mse_sin"], 4) == 0.4218
    assert res["mse_linear"] < 2 * res["noise_variance"]
    assert res["mse_sin"] > 10 * res["mse_linear"]


def test_04_stacked_affine_maps_collapse_until_relu(run_example):
    res, _ = run_example("04_stacking_affine_maps")
    assert res["max_abs_diff_linear"] < 1e-12
    assert res["max_abs_diff_relu"] > 1e-3
    assert res["relu_best_affine_relative_residual"] > 1e-3


def test_05_activations_match_their_formulas(run_example):
    from invmap.models import activations

    res, _ = run_example("05_activation_gallery")
    assert res["activations"] == activations.names()
    assert {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu"} <= set(res["activations"])
    for name, d in res["formula_max_abs_diff"].items():
        assert d < 1e-12, (name, d)
    assert 1e-6 < res["gelu_exact_vs_tanh_max_abs_diff"] < 1e-2
    assert res["max_derivative"]["sigmoid"] == pytest.approx(0.25, abs=1e-3)
    assert res["softmax_sum"] == pytest.approx(1.0, abs=1e-12)
    assert res["softmax_torch_max_abs_diff"] < 1e-12
    assert res["softmax_shift_invariance_max_abs_diff"] < 1e-12


def test_06_mlp_beats_the_affine_fit(run_example):
    res, _ = run_example("06_universal_approximation")
    assert round(res["affine_mse"], 4) == 0.4218
    assert res["mse"][64] < 1e-3
    assert res["heldout_mse"][64] < 1e-3
    assert all(m < res["affine_mse"] for m in res["mse"].values())


def test_07_sgd_beats_full_batch_per_epoch(run_example):
    res, _ = run_example("07_gd_vs_sgd")
    assert res["sgd_loss"] < res["gd_loss"] < res["initial_loss"]
    assert res["sgd_steps"] > res["gd_steps"]


def test_08_hand_gradient_equals_autograd(run_example):
    res, _ = run_example("08_backprop_by_hand")
    assert res["max_abs_diff_single"] < 1e-12
    assert res["max_abs_diff_batch"] < 1e-12
    assert np.allclose(res["batch"]["hand"], res["batch"]["autograd"], rtol=1e-12, atol=1e-12)
    assert res["gd_loss_end"] < res["gd_loss_start"]


def test_09_learned_linear_and_tikhonov_beat_the_blurred_input(run_example):
    res, _ = run_example("09_regression_to_reconstruction")
    assert res["psnr_linear"] > res["psnr_blurred"] + 1.0
    assert res["psnr_tikhonov"] > res["psnr_blurred"] + 1.0
    assert res["psnr_linear_closed_form"] > res["psnr_blurred"] + 1.0
    assert res["tikhonov_closed_form_vs_cg_max_abs_diff"] < 1e-4
    assert res["psnr_mlp"] > res["psnr_blurred"]


def test_10_your_method_runs_beside_the_baselines(run_example):
    """The outside method has its row in the test metrics and its line in the stress study; early
    stopped Landweber lands between FBP and tuned TV on this task."""
    res, _ = run_example("10_your_own_method")
    p = res["psnr"]
    assert set(p) == {"fbp", "tv", res["method"]}
    assert p["fbp"] < p[res["method"]] < p["tv"]
    assert sum(k.endswith(res["method"]) for k in res["noise"]) == 6  # ×0 … ×8


def test_11_one_learned_prior_deblurs_and_its_spread_follows_the_error(run_example):
    """The zoo denoiser, untrained for deblurring, lifts PnP and DiffPIR well above the blurred
    data, PnP to at least tuned TV; DiffPIR's std map is non-negative and ranks the error."""
    res, _ = run_example("11_learned_prior")
    p = res["psnr"]
    assert min(p["tv"], p["pnp"], p["diffpir mean"]) > p["blurred (Kᵀy)"] + 2.0
    assert p["pnp"] >= p["tv"] - 0.25
    assert res["std_min"] >= 0 and res["spearman"] > 0.2


def test_12_equivariance_learns_the_null_space_that_measurement_consistency_cannot(run_example):
    """Trained on y alone, MC leaves the missing pixels where Kᵀy has them (its error lies in the
    null space of K); EI and splitting learn them, EI close to the supervised network."""
    res, _ = run_example("12_learning_without_x")
    p, null = res["psnr"], res["null_share"]
    assert p["mc"] < p["Kᵀy"] + 0.5 and null["mc"] > 0.9
    assert p["ei"] > p["mc"] + 3.0 and null["ei"] < null["mc"]
    assert p["split"] > p["mc"] + 1.0
    assert p["supervised"] > p["ei"] - 2.0
