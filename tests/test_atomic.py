"""invmap.atomic: all-or-nothing writes used by models, checkpoints, data sets and reports."""

from __future__ import annotations

import os

import numpy as np
import pytest

from invmap.atomic import atomic_write


@pytest.mark.parametrize("content", [b"\x00bytes", "text ✓", "writer"])
def test_atomic_write_replaces_and_leaves_no_temp(tmp_path, content):
    p = tmp_path / "sub" / "out.npz"
    if content == "writer":
        atomic_write(p, lambda tmp: np.savez(tmp, a=np.arange(3)))
        with np.load(p) as z:
            assert z["a"].tolist() == [0, 1, 2]
    else:
        atomic_write(p, content)
        got = p.read_bytes()
        assert got == (content.encode() if isinstance(content, str) else content)
    assert sorted(os.listdir(p.parent)) == ["out.npz"]
    mask = os.umask(0)
    os.umask(mask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_failed_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "model.json"
    p.write_text("old")

    def boom(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.json"]
