"""The README a newcomer reads: at most 200 lines, and every code block in it runs — or says,
in a ``<!-- not run: why -->`` line just above it, why it is not run here.

Python blocks run with `exec` in a fresh folder; shell blocks are ``invmap …`` command lines, each
run through the CLI's entry point (exit status 0); the README's links to files of the
repository point at files that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from invmap.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
MARK = re.compile(r"<!--\s*(not run|run):?\s*(.*?)-->\s*$")


def blocks() -> list[tuple[int, str, str, str | None]]:
    """(line, language, code, the marker above it or None) of every fenced block."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = MARK.search(before)
        out.append((line, m.group(1), m.group(2), mark.group(1) if mark else None))
    return out


BLOCKS = blocks()


def test_the_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 200, f"README.md has {n} lines (at most 200: the rest belongs on the docs site)"


def test_every_block_is_run_or_says_why_not():
    for line, lang, _code, mark in BLOCKS:
        if mark == "not run":
            continue
        assert lang in ("python", "bash"), f"README.md:{line}: a ```{lang} block must be python or bash, or be " \
                                           "marked <!-- not run: why -->"
    why = [(line, MARK.search(README.read_text(encoding="utf-8").splitlines()[line - 2]))
           for line, _, _, mark in BLOCKS if mark == "not run"]
    for line, m in why:
        assert m and m.group(2).strip(), f"README.md:{line}: say why the block is not run"


RUN = [(line, lang, code) for line, lang, code, mark in BLOCKS if mark != "not run"]


@pytest.mark.parametrize("line, lang, code", RUN, ids=[f"line{line}-{lang}" for line, lang, _ in RUN])
def test_readme_block_runs(line, lang, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if lang == "python":
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
        return
    for cmd in (ln.strip() for ln in code.splitlines()):
        if not cmd or cmd.startswith("#"):
            continue
        argv = shlex.split(cmd)
        assert argv[0] == "invmap", f"README.md:{line}: a shell line that is run must be an invmap command: {cmd}"
        try:
            code_ = main(argv[1:])
        except SystemExit as e:  # --help exits 0 through argparse
            code_ = e.code
        assert code_ in (0, None), f"README.md:{line}: `{cmd}` exited {code_}: {capsys.readouterr().err[-500:]}"


def test_the_readme_links_resolve():
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"
