# %% [markdown]
# # 3. Train on your own folder, reconstruct a real slice, read the trust verdict and the bound
#
# A scan in use has no ground truth. What invmap can still say about x̂ comes from y and K:
# does x̂ explain its own data as well as at the training conditions (the **trust verdict**),
# and how low can its PSNR be, with a stated probability (the **bound**)? This tutorial trains
# on a folder of images, then reconstructs one slice the network never saw and reads both.
#
# **Your folder.** Any folder of PNG/JPEG/TIFF/NPY/NPZ files is an image source,
# `folder:<path>`. It is split by file in name order into train | validation | test, so name
# the files so that one scan's slices sort together (`scanA_012.png`). Here: the course's CT
# slices where they are (in the quick mode of the docs build and the tests, and where they are
# absent, a folder of the package's phantoms made on the spot).

# %%
import json
import os
from pathlib import Path

import imageio.v3 as iio
from invmap.data import build_source

QUICK = os.environ.get("INVMAP_QUICK") == "1"  # the docs build and the tests run every tutorial small
folder = Path("../shared/data/ct-slices")
if QUICK or not folder.is_dir():
    folder = Path("phantom-slices")
    folder.mkdir(exist_ok=True)
    for i, x in enumerate(build_source("ellipses", 128, count=48).batch(range(48))):
        iio.imwrite(folder / f"slice_{i:03d}.png", (x[0].numpy() * 255).round().astype("uint8"))
files = sorted(folder.glob("*.png"))
print(len(files), "files in", folder)

# %% [markdown]
# **Training.** The task is the default one (sparse-view CT: 60 views, 1 % noise) on your
# images. A small folder is cycled to `data.train` pairs per epoch, each copy with its own
# noise and augmentation (flips, 90° rotations). The PSNR loss and a learning rate of 3e-3 are
# the settings that worked best on the real slices (Benchmarks: "Learning from real images").
#
# The bound is calibrated on validation pairs the network was not trained on: half of them
# score the trust, the other half fit the bound, and a 90 % bound needs at least 9 pairs in
# that half. So the split gives the validation part 20 files here (`data.params.splits` takes
# counts or fractions); with fewer, invmap prints *why* it gives no bound instead of one. A bound
# costs training data: of the course's 32 slices this leaves 8 to train on — with `n_val = 3`
# the network trains on 25 and the reconstruction below says why there is no bound.

# %%
from invmap.study import Study

n_val, n_test = 20, 4
study = Study(name="my-folder",
              data={"source": f"folder:{folder}", "size": 32 if QUICK else 128, "train": 64 if QUICK else 2000,
                    "val": n_val, "test": n_test,
                    "params": {"splits": [len(files) - n_val - n_test, n_val, n_test]},
                    "augment": {"flips": True, "rot90": True}},
              training={"loss": "psnr", "lr": 3e-3, "epochs": 1 if QUICK else 40, "max_minutes": 0 if QUICK else 10},
              evaluation={"zoo": False})
study.train()
study.evaluate()

# %% [markdown]
# **A real slice.** `invmap reconstruct` is the command for one scan. `--simulate` measures
# the image with the run's own K and noise (with a measured sinogram, give `--input sino.npy`
# instead); `--resize` fits the file to the model's size. The last file of the folder is in
# the test split: never seen in training or validation.

# %%
from invmap.cli import main as invmap

slice_file = files[-1]
code = invmap(["reconstruct", "--model", str(study.run_dir), "--input", str(slice_file), "--simulate",
               "--resize", "--output", "slice_x.png"])
print("exit code", code)

# %% [markdown]
# The line that starts with `consistent` or `suspect` is the **trust verdict**, with the data
# consistency ρ = ‖K x̂ − y‖ / √E‖e‖², the same for the tuned TV on this y (the baseline),
# how x̂'s misfit compares with the one it leaves at its training conditions, and the score S
# they combine into (in spreads of the training conditions; above 3 is suspect) with the
# trust T = 2^(−S/3). The line after it is the **bound**: "PSNR ≥ b dB with probability 0.9" —
# or, where it cannot be given (too few calibration pairs, a suspect image, another physics
# than the one calibrated), the reason. (The notes before them say what was computed once and
# stored in the run, and what could not be.) The numbers are also in the sidecar file, one
# record per image:

# %%
image = json.loads(Path("slice_x.trust.json").read_text())["images"][0]
print("verdict:", image["verdict"], "| trust", round(image["trust"], 3), "| score", round(image["score"], 2),
      "| rho", round(image["rho"], 3), "| rho of the baseline", round(image["rho_baseline"], 3))
print("bound:", image["psnr_bound"] or "none", *image["notes"], sep="\n")

# %%
from IPython.display import Image, display

display(Image("slice_x.png"))

# %% [markdown]
# A verdict is only as good as the shift it is asked about: an error that leaves y and K
# consistent (a rotated object, inverse-crime data) cannot be seen, and the stress study says
# which shifts those are. Run `study.stress()` on your run to see where the trust score
# separates good from bad reconstructions (the report's trust section).
#
# Next: [your own method in the stress study](04_your_method.md).
