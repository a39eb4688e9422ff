"""Hardening: honest progress (issue 'Hardening', item 10). With a time budget
(``training.max_minutes``) the training bar's total and ETA count the budget — or the
epochs, when they are predicted to end first — never the epoch count alone."""

from __future__ import annotations

import io
import re

import pytest

from invmap.config import load_config
from invmap.training import train
from invmap.progress import Progress
from invmap.training.log import TrainProgress


def test_budget_bar_counts_the_budget_when_it_ends_training():
    """5000 steps at 1 s each would take 83 min; a 10-minute budget stops it: the bar says 600 s."""
    p = TrainProgress(5000, 0, enabled=True, budget_s=600.0)
    for step in range(1, 4):
        p.step(step, elapsed_s=float(step))
    assert p.bar.total == 600.0 and p.bar.n == 3.0
    shown = str(p.bar)
    assert "10 min budget" in shown and "3/600 s" in shown and "5000" not in shown
    p.close()


def test_budget_bar_counts_the_epochs_when_they_end_first():
    """100 steps at 0.1 s each end after 10 s, well inside a 10-minute budget: ETA from the epochs."""
    p = TrainProgress(100, 0, enabled=True, budget_s=600.0)
    for step in range(1, 11):
        p.step(step, elapsed_s=0.1 * step)
    assert p.bar.total == pytest.approx(10.0)
    assert "10 min budget" in str(p.bar)
    p.close()


def test_budget_bar_resumes_from_the_elapsed_seconds():
    p = TrainProgress(5000, 1000, enabled=True, budget_s=600.0, elapsed_s=200.0)
    p.step(1001, elapsed_s=201.0)
    assert p.bar.total == 600.0 and p.bar.n == 201.0
    p.close()


def test_without_budget_the_bar_counts_steps():
    p = TrainProgress(50, 0, enabled=True)
    p.step(1, elapsed_s=123.0)
    assert p.bar.total == 50 and p.bar.n == 1 and p.bar.unit == "step"
    p.close()


def test_training_with_a_budget_shows_it(tmp_path, capsys):
    cfg = load_config(None, ["data.size=32", "data.train=8", "data.val=2", "data.test=2", "operator.angles=8",
                             "model.name=cnn", "model.depth=1", "model.channels=2", "training.epochs=3",
                             "training.batch_size=4", "training.max_minutes=30"])
    train(cfg, tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    assert "30 min budget" in err
    assert not re.search(r"\b\d+/6 \[", err)  # not the epoch count's 3 × 2 steps


def _tiny(epochs: int, *more: str):
    return load_config(None, ["data.size=32", "data.train=8", "data.val=2", "data.test=2", "operator.angles=8",
                              "model.name=cnn", "model.depth=1", "model.channels=2", f"training.epochs={epochs}",
                              "training.batch_size=4", "training.amp=off", *more])


@pytest.mark.parametrize("budget", [[], ["training.max_minutes=30"]], ids=["epochs", "budget"])
def test_a_log_gets_one_plain_line_per_epoch_and_no_carriage_returns(tmp_path, capsys, budget):
    """stderr a file or a pipe (here pytest's capture, not a terminal): no tqdm redraws, one line per
    epoch with its loss, validation PSNR and the time against the budget."""
    res = train(_tiny(3, *budget), tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("epoch ")]
    assert [ln.split(":")[0] for ln in lines] == [f"epoch {k}/3" for k in range(1, res.epochs + 1)]
    assert all(re.search(r"loss [\d.e+-]+, val PSNR [\d.]+ dB, step \d+/6, \d+ s", ln) for ln in lines), lines
    assert all(("of the ≤ 30 min budget" in ln) == bool(budget) for ln in lines)


def test_a_terminal_gets_the_bar_and_no_epoch_lines():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, log = Terminal(), io.StringIO()
    for stream in (tty, log):
        p = Progress(6, unit="step", stream=stream)
        p.update(3)
        p.stage("epoch 1/2: loss 1")
        p.close()
    assert "\r" in tty.getvalue() and "3/6" in tty.getvalue() and "epoch 1/2" not in tty.getvalue()
    assert log.getvalue() == "epoch 1/2: loss 1\n"
    quiet = io.StringIO()
    p = Progress(6, enabled=False, stream=quiet)  # a rank other than 0: nothing at all
    p.update(6)
    p.stage("epoch 1/1")
    p.close()
    assert quiet.getvalue() == "" and "6/6" in str(p)
