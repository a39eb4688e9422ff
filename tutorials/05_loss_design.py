# %% [markdown]
# # 5. Loss design: why the loss changes the estimator
#
# Training solves min_Θ E ℓ(f_Θ(y), x) over pairs y = K x + e. With a rich enough network the
# minimiser is, for each y, the best answer *under the loss* given what y leaves uncertain
# about x — so the loss chooses which estimator is learned:
#
# | `training.loss` | ℓ(x̂, x) | what the ideal f(y) is |
# |---|---|---|
# | `mse` | ‖x̂ − x‖² / n | the posterior mean E[x \| y]: smooth where x is uncertain |
# | `l1` | ‖x̂ − x‖₁ / n | the posterior median, pixel by pixel: keeps edges sharper, less mass on outliers |
# | `psnr` | −(1/B) Σᵢ PSNRᵢ = (10/B) Σᵢ log₁₀ MSEᵢ | like MSE per image, but image i's gradient is divided by its own MSEᵢ: easy and hard images weigh alike |
# | `ssim-mix`, `ssim_weight: 1` | 1 − SSIM(x̂, x) | local means, contrasts and structure match; a uniform brightness error costs little |
#
# (`ssim-mix` with a weight w < 1 mixes 1 − SSIM with L1 or MSE.) The exercise: train one
# network on one task with each loss, then score each on both metrics.

# %%
import os

import pandas as pd
from invmap.study import Study

QUICK = os.environ.get("INVMAP_QUICK") == "1"  # the docs build and the tests run every tutorial small
task = {"data": {"size": 32 if QUICK else 64, "train": 64 if QUICK else 1000, "val": 8, "test": 8 if QUICK else 64},
        "operator": {"name": "blur", "kernel": "gaussian", "sigma": 1.5},  # Gaussian deblurring
        "noise": {"name": "gaussian", "relative": 0.02},
        "model": {"name": "rescnn", "blocks": 3, "channels": 16, "input": "measurement"},
        "training": {"epochs": 4 if QUICK else 15, "max_minutes": 0 if QUICK else 2, "amp": "off"},
        "evaluation": {"methods": ["model"], "bound": 0, "pixel_risk": 0}}
losses = {"mse": {"loss": "mse"}, "l1": {"loss": "l1"}, "psnr": {"loss": "psnr"},
          "ssim": {"loss": "ssim-mix", "ssim_weight": 1.0}}
rows = []
for name, loss in losses.items():
    study = Study(name=f"loss-{name}", **{**task, "training": {**task["training"], **loss}}, verbose=False)
    study.train(progress=not QUICK)
    metrics = study.evaluate()  # one row: the model on the test images
    rows.append({"loss": name, "psnr": metrics.psnr_mean.iloc[0], "ssim": metrics.ssim_mean.iloc[0]})
results = pd.DataFrame(rows).set_index("loss")
results

# %% [markdown]
# Every run trains the same network from the same seed on the same pairs for the same number
# of epochs; only ℓ differs. Which loss wins on which metric is read from the table, not
# assumed — in a short training the ranking can also reflect how fast each loss descends.

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for ax, metric in zip(axes, ("psnr", "ssim")):
    ax.plot(results.index, results[metric], "o", markersize=9)
    ax.set_title(f"test {metric.upper()} by training loss")
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
print(f"highest test PSNR: the {results.psnr.idxmax()} loss; highest test SSIM: the {results.ssim.idxmax()} loss")

# %% [markdown]
# What to look for in your own runs: MSE and the PSNR loss aim at the PSNR the table reports
# (the PSNR loss ranks images alike, which helps when a batch mixes easy and hard
# measurements, as over drawn physics); L1 trades a little PSNR for sharper edges; the SSIM
# loss tends to lift SSIM and may leave a brightness offset that costs PSNR. Look at the
# reconstructions (`study.show("reconstructions")`) beside the numbers: the estimators differ
# most where y leaves x most uncertain — at edges and in fine texture.
#
# Next: [learning from measurements alone](06_learning_without_x.md), when no x exists.
