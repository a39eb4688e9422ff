# %% [markdown]
# # 6. Learning from measurements alone
#
# Every tutorial so far trained on pairs (y, x). A scanner gives only y = K x + e and the
# operator K. Training can still learn f_Θ(y) ≈ x by moving what x taught into the loss
# (`training.supervision`; the how-to page "Learn from measurements alone" has the details):
#
# | `training.supervision` | loss on y alone | what it cannot see |
# |---|---|---|
# | `x` | ‖f(y) − x‖² (pairs: the tutorials so far) | — |
# | `mc` | ‖K f(y) − y‖², weighted by the noise model | anything in the null space of K: f can add it freely |
# | `ei` | mc + ‖T_g f(y) − f(K T_g f(y))‖², g a rotation or flip K declares | less: K T_g sees what K misses |
# | `split` | one half of what K measures in, consistency with all of y | the half it never sees at once |
# | `sure` | Stein's unbiased risk estimate (Gaussian noise of known σ) | as mc, for a non-invertible K |
#
# The task: inpainting with half of the pixels missing — the null space of K is every missing
# pixel, so the difference between the losses is stark. The test set keeps x, to measure.

# %%
import os

import pandas as pd
from invmap.study import Study, compare

QUICK = os.environ.get("INVMAP_QUICK") == "1"  # the docs build and the tests run every tutorial small
task = {"data": {"size": 32 if QUICK else 64, "train": 96 if QUICK else 512, "val": 8, "test": 8 if QUICK else 32,
                 "simulation": "crime", "test_simulation": "crime"},
        "operator": {"name": "inpainting"}, "noise": {"relative": None, "sigma": 0.02},
        "model": {"input": "adjoint", "base_channels": 8, "depth": 2},
        "training": {"epochs": 10 if QUICK else 20, "max_minutes": 0, "batch_size": 8, "lr": 3e-3, "amp": "off"},
        "evaluation": {"methods": ["model"], "bound": 0, "pixel_risk": 0}}
studies, rows = {}, []
for way in ("x", "mc", "ei", "split"):
    study = Study(name=f"no-x-{way}", **{**task, "training": {**task["training"], "supervision": way}}, verbose=False)
    study.train(progress=not QUICK)
    metrics = study.evaluate()  # the test set has x: we can measure what y alone taught
    studies[way] = study
    rows.append({"trained with": way, "test PSNR": metrics.psnr_mean.iloc[0]})
baselines = studies["x"].evaluate(methods=["adjoint", "tv"])  # Kᵀy, and TV tuned on validation pairs (with x)
baselines = baselines[baselines.method.isin(["adjoint", "tv"])]
rows += [{"trained with": f"({m})", "test PSNR": p} for m, p in zip(baselines.method, baselines.psnr_mean)]
pd.DataFrame(rows).set_index("trained with")

# %% [markdown]
# Read the table from the numbers it holds: measurement consistency alone (`mc`) can only
# match what K measures, so on the missing pixels it learns nothing beyond Kᵀy; equivariance
# (`ei`) and splitting (`split`) bring back part of what the pairs taught; TV, whose λ was
# tuned on validation pairs with x, is the yardstick a self-supervised model has to reach. The example
# `examples/12_learning_without_x.py` draws the part of each error that lies in the null
# space of K, (I − K⁺K)(x̂ − x).
#
# `compare` puts two runs side by side and says how each was supervised:

# %%
import json

both = compare(studies["x"], studies["ei"], out="runs/supervised-vs-ei")
for run in json.loads((both.out / "compare.json").read_text())["runs"]:
    print(f"{run['label']}: {run['supervision']}")
both.rows.head(6)

# %% [markdown]
# A run trained without x also knows what it lacks: it fits no PSNR bound (that needs x on
# validation pairs), and `invmap train` with `data.measurements` — a folder of `.npy`
# measurements or HDF5 observation files — never reads an x at all.
