"""The figure of BENCHMARKS.md, drawn from the zoo's cards (the numbers the test suite re-checks).

Left: each CT entry's validation PSNR against its training minutes (the card's ``training.curve``);
right: the test PSNR of each entry on its task beside FBP and tuned TV (the card's ``test``).

    .venv/bin/python benchmarks/figures.py [--out docs/images/benchmarks-quality.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from invmap.zoo import card, names  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CT = ("unet-ct", "unet-ct-robust", "lgd-ct", "lpd-ct", "unet-ct-real")
#: what an entry's validation curve is measured on, where it is not the default task's nominal pairs
NOTE = {"unet-ct-robust": " (validation over drawn physics)", "unet-ct-real": " (real slices, from unet-ct)"}


def draw(out: Path) -> Path:
    cards = {n: card(n) for n in CT if n in names()}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for n, c in cards.items():
        minutes, psnr = zip(*c["training"]["curve"])
        left.plot(minutes, psnr, marker=".", label=n + NOTE.get(n, ""))
    left.set_ylim(20, None)
    left.set_xlabel("training minutes (one CPU thread)")
    left.set_ylabel("validation PSNR (dB)")
    left.set_title("zoo entries: validation PSNR while training")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    labels, groups = [], []
    for n, c in cards.items():
        p = c["test"]["psnr"]
        labels.append(n)
        groups.append((p["fbp"], p["tv"], p["model"]))
    width = 0.27
    for k, (what, colour) in enumerate((("FBP", "0.7"), ("tuned TV", "0.4"), ("entry", "tab:blue"))):
        xs = [i + (k - 1) * width for i in range(len(groups))]
        right.bar(xs, [g[k] for g in groups], width, label=what, color=colour)
    right.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    right.set_ylim(25, None)
    right.set_ylabel("test PSNR (dB)")
    right.set_title("each entry on its task's test set")
    right.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "benchmarks-quality.png")
    print(draw(p.parse_args().out))


if __name__ == "__main__":
    main()
