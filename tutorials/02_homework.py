# %% [markdown]
# # 2. The course's homework: CNN against residual CNN on motion-blurred CT slices
#
# The exercise: take a dataset of CT slices, blur them with a motion-blur operator K and add
# 1 % Gaussian noise e (y = K x + e), train a 3-layer CNN and a residual CNN with the MSE loss
# on pairs simulated online, and compare them — with each other, with the classical answers,
# and on slices neither network has seen. With invmap that is one task description, two model
# sections and four calls (the code cell below the folder is the whole workflow: under 30 lines).
#
# **The slices.** The course's 32 CT slices live in `../shared/data/ct-slices` (PNG files, one
# slice per file). Point `slices` at your own folder instead. Where it is absent, and in the
# quick mode the docs build and the tests run (`INVMAP_QUICK=1`), the tutorial makes a tiny
# folder of the package's own phantoms instead, so every line below runs anywhere.

# %%
import os
from pathlib import Path

import imageio.v3 as iio
from invmap.data import build_source

QUICK = os.environ.get("INVMAP_QUICK") == "1"  # the docs build and the tests run every tutorial small
slices = Path("../shared/data/ct-slices")
if QUICK or not slices.is_dir():
    slices = Path("phantom-slices")
    slices.mkdir(exist_ok=True)
    for i, x in enumerate(build_source("ellipses", 128, count=40).batch(range(40))):
        iio.imwrite(slices / f"slice_{i:03d}.png", (x[0].numpy() * 255).round().astype("uint8"))
print(len(list(slices.glob("*.png"))), "slices in", slices)

# %% [markdown]
# **The workflow.** The folder is split *by file*, in name order, into train | validation |
# test (80/10/10 %), so the test slices are never seen in training. `training.stream: true`
# simulates every minibatch when it is needed (y = K x + e drawn afresh each epoch: data
# simulated online, never stored). The 3-layer CNN maps y to x̂ directly; the residual CNN
# learns the correction x̂ = y + g(y) with residual blocks. Both see the blurred y itself
# (`input: measurement`) and train with `loss: mse`.

# %%
from invmap.study import Study, compare

task = {"data": {"source": f"folder:{slices}", "size": 32 if QUICK else 128, "train": 64 if QUICK else 2000,
                 "val": 8, "test": 8},
        "operator": {"name": "blur", "kernel": "motion", "length": 7, "angle": 30},   # motion blur K
        "noise": {"name": "gaussian", "relative": 0.01},                             # 1 % Gaussian noise e
        "training": {"loss": "mse", "stream": True, "epochs": 2 if QUICK else 30,
                     "max_minutes": 0 if QUICK else 5},
        "evaluation": {"methods": ["adjoint", "tv", "model"]}}
cnn = Study(name="hw-cnn", model={"name": "cnn", "depth": 3, "channels": 32, "input": "measurement"}, **task)
rescnn = Study(name="hw-rescnn", model={"name": "rescnn", "blocks": 4, "channels": 32, "input": "measurement"}, **task)
for study in (cnn, rescnn):
    study.train()
    study.evaluate()                               # the unseen test slices
    study.stress(shifts="noise", n=4 if QUICK else 8)   # and more, or less, noise than in training
both = compare(cnn, rescnn, out=f"runs/compare-{cnn.run_dir.name}-{rescnn.run_dir.name}")  # a new folder
rows = both.rows  # every number of both runs: test set and stress levels
rows[(rows["shift"] == "test") & (rows.metric == "psnr")][["run", "method", "mean", "std"]]

# %% [markdown]
# `compare` is `invmap compare RUN_A RUN_B --out DIR`. Its table (`both.rows`, shown above for
# the test set's PSNR) has one row per run, shift, level, method and metric (shift `test` is the
# held-out test set), then the difference of the residual CNN against the CNN per level (metric
# `psnr-difference`). Its verdicts, printed above, say the same in words, and `compare.html` in
# its folder puts the heatmaps side by side:

# %%
both.show()

# %% [markdown]
# **On unseen slices.** Each run's reconstruction figure shows three test slices: the blurred
# y (`adjoint` is Kᵀy), tuned TV and the network, with their error maps below.

# %%
cnn.show("reconstructions")
rescnn.show("reconstructions")

# %% [markdown]
# The same study as two YAML files and the command line (`hw-cnn.yaml` holds the task above
# and the CNN's `model` section):
#
# ```bash
# invmap train hw-cnn.yaml --out runs/hw-cnn && invmap evaluate runs/hw-cnn && invmap stress runs/hw-cnn --shifts noise
# invmap train hw-rescnn.yaml --out runs/hw-rescnn && invmap evaluate runs/hw-rescnn && invmap stress runs/hw-rescnn --shifts noise
# invmap compare runs/hw-cnn runs/hw-rescnn --out runs/hw-compare
# ```
#
# Next: [train on your own folder and read the trust verdict](03_your_folder.md).
