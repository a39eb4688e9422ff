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


def test_atomic_dir_publishes_whole_or_not_at_all(tmp_path):
    from invmap.atomic import atomic_dir, clean_orphans, is_temp

    out = tmp_path / "cmp"
    with atomic_dir(out) as d:
        assert is_temp(d.name) and d.parent == tmp_path and not out.exists()
        (d / "a.txt").write_text("a")
    assert (out / "a.txt").read_text() == "a" and [p.name for p in tmp_path.iterdir()] == ["cmp"]
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)  # the usual permissions, not mkdtemp's
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(tmp_path / "other") as d:
            (d / "half.txt").write_text("h")
            raise RuntimeError("boom")
    assert [p.name for p in tmp_path.iterdir()] == ["cmp"]  # an error leaves nothing
    with pytest.raises(OSError):
        with atomic_dir(out) as d:  # a non-empty target is never replaced
            (d / "b.txt").write_text("b")
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"] and [p.name for p in tmp_path.iterdir()] == ["cmp"]
    left = tmp_path / ".cmp.abcd1234.tmp"  # what a kill -9 inside the block leaves
    left.mkdir()
    (left / "x.png").write_text("x")
    assert clean_orphans(tmp_path, min_age_s=0) == [left] and not left.exists()
