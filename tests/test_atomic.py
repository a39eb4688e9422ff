"""invmap.atomic: all-or-nothing writes used by models, checkpoints, data sets and reports."""

from __future__ import annotations

import os
import subprocess
import sys

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


@pytest.mark.processes
def test_atomic_dir_publishes_whole_or_not_at_all(tmp_path):
    from invmap.atomic import atomic_dir, clean_orphans, is_temp

    out = tmp_path / "cmp"
    with atomic_dir(out) as d:
        assert is_temp(d.parent.name) and d.parent.parent == tmp_path and not out.exists()
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
    left = _killed_inside(tmp_path / "killed")  # what a kill -9 inside the block leaves
    assert clean_orphans(tmp_path, min_age_s=0) == [left] and not left.exists()


_DIE_INSIDE = """
import os, sys
from pathlib import Path
from invmap.atomic import atomic_dir, atomic_write
if sys.argv[2] == "dir":
    with atomic_dir(sys.argv[1]) as d:
        (Path(d) / "x.png").write_text("x")
        os._exit(9)
atomic_write(sys.argv[1], lambda tmp: (Path(tmp).write_text("half"), os._exit(9)))
"""


def _killed_inside(out, what="dir"):
    """The leftover of an `atomic_dir` (or `atomic_write`) of `out` whose process died mid-way."""
    before = set(out.parent.iterdir()) if out.parent.exists() else set()
    p = subprocess.run([sys.executable, "-c", _DIE_INSIDE, str(out), what])
    assert p.returncode == 9
    (left,) = set(out.parent.iterdir()) - before
    return left


# -- clean-up removes only what invmap made (issue #36, class 1a) --------------------------

def _old(p):
    os.utime(p, (1, 1))
    return p


#: a user's own files and folders, named as invmap's temporary names once were (or close to
#: its present ones), each with content that must survive every clean-up
LOOKALIKES = {
    "folder-old-pattern": (".album.2026_dec.tmp", "dir"),
    "file-old-pattern": (".notes.20261207.tmp.txt", "file"),
    "file-old-pattern-no-suffix": (".metrics.csv.ab12cd34.tmp", "file"),
    "folder-old-pattern-suffix": (".cmp.abcd1234.tmp", "dir"),
    "file-with-the-prefix": (".invmap-tmp-mine-12345678", "file"),
    "folder-with-the-prefix-no-marker": (".invmap-tmp-photos-abcdefgh", "dir"),
    "folder-with-a-foreign-marker": (".invmap-tmp-thesis-abcdefgh", "foreign-marker"),
    "folder-whose-marker-is-a-link": (".invmap-tmp-music-abcdefgh", "linked-marker"),
    "link-to-a-marked-folder": (".invmap-tmp-link-abcdefgh", "link"),
}


@pytest.mark.processes
@pytest.mark.parametrize("case", sorted(LOOKALIKES))
def test_clean_up_never_removes_a_users_lookalike(tmp_path, case):
    from invmap.atomic import MARKER, clean_orphans

    name, kind = LOOKALIKES[case]
    home = tmp_path / "home"
    home.mkdir()
    p = tmp_path / name
    if kind == "file":
        p.write_text("my notes")
    elif kind == "link":  # a link to a folder holding invmap's marker: the link's target is not ours to delete
        killed = _killed_inside(home / "killed")
        os.symlink(killed, p)
    else:
        p.mkdir()
        (p / "photo.jpg").write_bytes(b"\xff\xd8 a photo")
        if kind == "foreign-marker":
            (p / MARKER).write_text("not invmap's words")
        elif kind == "linked-marker":
            os.symlink(_killed_inside(home / "other") / MARKER, p / MARKER)
    before = sorted(str(q) for q in tmp_path.rglob("*"))
    for q in tmp_path.rglob("*"):
        if not q.is_symlink():
            _old(q)
    assert clean_orphans(tmp_path, min_age_s=0) == []
    assert sorted(str(q) for q in tmp_path.rglob("*")) == before


@pytest.mark.processes
def test_clean_up_removes_invmaps_own_leftovers_once_old(tmp_path):
    from invmap.atomic import clean_orphans

    out = tmp_path / "run"
    out.mkdir()
    left_file = _killed_inside(out / "metrics.csv", "file")   # a write killed mid-way
    left_dir = _killed_inside(out / "compare")               # a directory killed while being built
    (out / ".notes.20261207.tmp.txt").write_text("mine")
    assert clean_orphans(out) == []                          # young: another process may be writing
    for q in out.rglob("*"):
        _old(q)
    assert sorted(clean_orphans(out)) == sorted([left_file, left_dir])
    assert [q.name for q in out.iterdir()] == [".notes.20261207.tmp.txt"]


def test_writes_and_clean_up_beside_a_users_lookalikes_in_a_run(tmp_path):
    """A run opened by evaluate/stress (`runs.resolve`) and a compare's --out parent: the user's
    lookalikes there are left whole."""
    from invmap.atomic import atomic_dir, clean_orphans

    album = tmp_path / ".album.2026_dec.tmp"
    album.mkdir()
    (album / "photo.jpg").write_bytes(b"photo")
    notes = tmp_path / ".notes.20261207.tmp.txt"
    notes.write_text("notes")
    for q in (album, album / "photo.jpg", notes):
        _old(q)
    atomic_write(tmp_path / "metrics.csv", "a,b\n")
    with atomic_dir(tmp_path / "out") as d:
        (d / "compare.json").write_text("{}")
    assert clean_orphans(tmp_path, min_age_s=0) == []
    assert sorted(q.name for q in tmp_path.iterdir()) == [".album.2026_dec.tmp", ".notes.20261207.tmp.txt",
                                                          "metrics.csv", "out"]
    assert (album / "photo.jpg").read_bytes() == b"photo" and notes.read_text() == "notes"
