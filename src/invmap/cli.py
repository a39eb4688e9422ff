"""The `invmap` command line.

Each command lives in its own module under `invmap.commands` and defines
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; modules are
discovered automatically, so adding a command never touches this file. A command that
runs as one rank of a torchrun job says so with ``DISTRIBUTED = True`` (the others refuse
to run under torchrun with several processes).

Errors a user can cause (bad config, wrong shapes, missing files, NaN input) are
printed as one line ``invmap: error: ...`` with exit status 2; so are the machine's
refusals — out of memory, a read-only or full disk — since every write is atomic and
leaves the files already written as they were.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import NoReturn

from . import __version__, commands


class UserError(Exception):
    """An error caused by the user's input; printed as one line, exit 2."""


#: the longest error line printed: a value quoted in a message (a YAML bomb, a huge list) is cut
MAX_ERROR_CHARS = 400


def error_line(msg: str) -> str:
    """``invmap: error: MSG`` on one line, at most `MAX_ERROR_CHARS` characters of MSG."""
    msg = " ".join(str(msg).split()) or "error"
    if len(msg) > MAX_ERROR_CHARS:
        msg = msg[:MAX_ERROR_CHARS - 1] + "…"
    return f"invmap: error: {msg}"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: a bad option or value of any command is ``invmap: error: …``
    (naming the command) and exit 2, never the usage block."""

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("invmap").strip()
        self.exit(2, error_line(f"{where}: {message}" if where else message) + "\n")


def _command_modules():
    mods = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"{commands.__name__}.{info.name}"))
    return mods


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="invmap",
        description="Learn and evaluate inverse maps for imaging inverse problems y = K x + e.",
    )
    p.add_argument("--version", action="version", version=f"invmap {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for mod in _command_modules():
        name = getattr(mod, "NAME", mod.__name__.rsplit(".", 1)[-1].replace("_", "-"))
        sp = sub.add_parser(name, help=mod.HELP, description=(mod.__doc__ or mod.HELP).strip())
        mod.add_arguments(sp)
        sp.set_defaults(_run=mod.run, _name=name, _distributed=getattr(mod, "DISTRIBUTED", False))
    return p


def _out_of_memory(e: BaseException) -> bool:
    name, text = type(e).__name__, str(e)
    return name == "OutOfMemoryError" or "not enough memory" in text or "can't allocate memory" in text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0
    try:
        if not args._distributed and os.environ.get("WORLD_SIZE", "1").strip() not in ("", "1"):
            if os.environ.get("RANK", "0") != "0":
                return 2  # rank 0 says why
            raise UserError(f"invmap {args._name} runs in one process; under torchrun only 'invmap train' runs "
                            "data-parallel")
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("invmap: interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, PermissionError, KeyError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, KeyError):
            msg = f"missing key {msg}"
        print(error_line(msg), file=sys.stderr)
        return 2
    except TimeoutError as e:  # a method from outside ran past its time budget (`invmap.plugins`)
        print(error_line(str(e) or "a time budget ran out"), file=sys.stderr)
        return 2
    except RecursionError:  # before RuntimeError, of which it is a subclass (e.g. json.loads of "[[[[…")
        print("invmap: error: input nested too deeply", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # torch reports a failed allocation as a RuntimeError
        if not isinstance(e, MemoryError) and not _out_of_memory(e):
            raise
        print("invmap: error: out of memory; use smaller settings (data.size, counts, batch_size, the model)",
              file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused: read-only, full, quota, I/O error
        if e.errno is None:
            raise
        where = f": {e.filename}" if e.filename else ""
        print(f"invmap: error: {e.strerror or os.strerror(e.errno)}{where}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
