# %% [markdown]
# # 4. Your own method in the stress study
#
# Every reconstructor in invmap is called the same way, x̂ = method(y, physics), where
# `physics.operator` is K (with `K(x)`, `K.adjoint(y)`, `K.norm()`) and `physics.noise` is
# the noise model of e. So a method you write needs nothing from invmap but that call: put it
# in a module, name it `module:attr`, and it is scored beside FBP and tuned TV in the test
# table, in every level of the stress study, in the report and in `invmap compare`.
#
# Here: the **projected Landweber iteration** for y = K x + e,
#
#     x_{k+1} = max(0, x_k + τ Kᵀ(y − K x_k)),   τ = 1/‖K‖²,   x_0 = 0,
#
# stopped after 30 steps — the step count is its regularisation. `learned = False` tells invmap
# it is a classical baseline (a trained map says `learned = True` and gets its own verdicts).

# %%
import os
import sys
from pathlib import Path

Path("my_methods.py").write_text('''
import torch


class Landweber:
    """Projected Landweber: 30 steps of size 1/||K||^2 from x = 0."""

    learned = False

    def __init__(self, iters: int = 30):
        self.iters = iters

    @torch.no_grad()
    def __call__(self, y, physics):
        K = physics.operator
        tau = 1.0 / float(K.norm()) ** 2
        x = torch.zeros((y.shape[0], 1) + tuple(K.in_shape), device=y.device)
        for _ in range(self.iters):
            x = (x + tau * K.adjoint(y - K(x))).clamp_min(0)
        return x
''')
sys.path.insert(0, os.getcwd())  # importable, as a module next to your notebook is

# %% [markdown]
# **Score it.** A study of a config with no trained model evaluates the methods it names:
# here sparse-view CT with 16 views, FBP, TV (its λ tuned on validation pairs) and yours. The
# evaluation is `invmap evaluate CONFIG --methods fbp,tv,my_methods:Landweber`; the stress
# study `invmap stress RUN --shifts noise`.

# %%
from invmap.study import Study

QUICK = os.environ.get("INVMAP_QUICK") == "1"  # the docs build and the tests run every tutorial small
study = Study(name="landweber",
              data={"size": 32 if QUICK else 64, "val": 8, "test": 4 if QUICK else 16},
              operator={"name": "tomography", "angles": 16},
              evaluation={"methods": ["fbp", "tv", "my_methods:Landweber"]})
study.evaluate(tune_seconds=20 if QUICK else 120)

# %% [markdown]
# invmap watches a method from outside: its import, construction and every call run under a
# time budget (`evaluation.outside_call_seconds`, `evaluation.outside_seconds`), and what it
# returns must be a finite image batch `[B, 1, H, W]` — otherwise the evaluation stops with one
# line naming it (or, with `keep_going=True`, scores the others and records the failure).
#
# **Under stress.** The noise shift scores every method at 0 to 8 times the noise of the task,
# on the same images: the table shows how each method's PSNR falls as the noise grows (with
# its iteration count fixed, Landweber's early stopping is its only defence; TV keeps the λ
# tuned at the nominal noise).

# %%
rows = study.stress(shifts="noise", n=4 if QUICK else 16)
rows[rows.metric == "psnr"].pivot_table(index="method", columns="level", values="mean", sort=False)

# %%
study.show("stress_noise")

# %% [markdown]
# A method can also be handed to everyone who installs your package: declare it under the
# entry-point group `invmap.methods`, and the entry point's name works as `my_methods:Landweber`
# does here.
#
# Next: [loss design](05_loss_design.md).
