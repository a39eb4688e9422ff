# %% [markdown]
# # 1. Your first study: `invmap run`, the report and the heatmap
#
# An imaging inverse problem is y = K x + e: an unknown image x, a forward operator K (here
# sparse-view CT: 60 parallel-beam projections), noise e (1 % Gaussian). `invmap run` answers
# two questions about it in one command:
#
# 1. **how well** a learned map x̂ = f_Θ(y) reconstructs x, beside the classical answers
#    (filtered back-projection, FBP; total variation, TV, with its λ tuned);
# 2. **how far it can be trusted** when the measurement moves away from its training
#    conditions (more noise, fewer views, a calibration error, another kind of object).
#
# In a terminal the whole study is
#
# ```bash
# invmap run            # the embedded default: ~15 minutes on a 2-core laptop CPU
# ```
#
# It simulates pairs (y, x), tunes the baselines, trains, evaluates on a held-out test set,
# runs the stress study and writes `report.html`. Here the same pipeline runs from Python
# (`invmap.study.Study.run` is `invmap run`) on a smaller task, so it finishes in a couple of
# minutes — in seconds when the docs build runs it with `INVMAP_QUICK=1`.

# %%
import os

from invmap.study import Study

QUICK = os.environ.get("INVMAP_QUICK") == "1"  # the docs build and the tests run every tutorial small
size, n_train, n_test = (32, 64, 8) if QUICK else (64, 1000, 32)
study = Study(name="first-study",
              data={"size": size, "train": n_train, "val": 16, "test": n_test},
              model={"base_channels": 8},
              training={"epochs": 3 if QUICK else 20, "max_minutes": 0 if QUICK else 2},
              evaluation={"zoo": False})  # the zoo's pretrained model is for the default 128² task
study

# %% [markdown]
# The keyword sections are the config's sections (`invmap config --show-default` prints them
# all, commented). On the command line the same study is
#
# ```bash
# invmap run --set name=first-study --set data.size=64 --set data.train=1000 --set data.val=16 \
#            --set data.test=32 --set model.base_channels=8 --set training.epochs=20 \
#            --set training.max_minutes=2 --set evaluation.zoo=false --stress-n 16 --shifts noise,geometry
# ```

# %%
report = study.run(stress_n=4 if QUICK else 16, shifts="noise,geometry")
print(report)

# %% [markdown]
# ## Reading the report
#
# `report.html` is one self-contained page: open it in a browser. Its parts, and where the
# same numbers are in Python:
#
# **The test table** (`metrics.csv`): one row per method on the held-out test images,
# simulated on a 2× finer grid than the methods' K (no method profits from the *inverse
# crime*). `psnr_mean` and `ssim_mean` are the scores against the true x; `rho_mean` is the
# data consistency ρ = ‖K x̂ − y‖ / √E‖e‖² (≈ 1: x̂ explains y as well as the truth would);
# for the learned `model`, `trust_mean` is its trust score T ∈ (0, 1] and `psnr_bound_mean`
# the per-image lower bound "PSNR ≥ b with probability 0.9" (when there are enough validation
# pairs to calibrate it).

# %%
study.metrics()[["method", "psnr_mean", "ssim_mean", "rho_mean"]]

# %% [markdown]
# **The reconstructions**: three test images, each method's x̂ on the top rows and the error
# |x̂ − x| on one colour scale below — where the numbers come from.

# %%
study.figure("reconstructions")

# %% [markdown]
# **The heatmap** (`figures/stress_overview.png`) is the whole stress study in one picture:
# one row per shift and learned method, one cell per level, the colour the learned method's
# PSNR minus the best baseline's at that level (blue: the model wins, red: a classical method
# is better, on a symmetric scale). The training conditions are framed; a hatched cell is a
# level (y, K) cannot reveal (e.g. an angle offset of every view: the data of a rotated
# object). Moving along a row shows how fast the advantage goes as the measurement moves away
# from training.

# %%
study.figure("stress_overview")

# %% [markdown]
# **The verdicts** say in one line per shift what the heatmap shows, computed from the same
# numbers (never written by hand): where the model stays above the baselines and at which
# level it falls below one.

# %%
for verdict in study.verdicts:
    print("•", verdict)

# %% [markdown]
# A tiny network trained for seconds is not expected to beat tuned TV: the point here is where
# to look. The default `invmap run` (128² images, 10 minutes of training) reaches FBP 30.6 dB,
# tuned TV 34.3 dB and the UNet about 35.5 dB on its test set — see the Benchmarks page.
# Next: [the course's homework workflow](02_homework.md).
