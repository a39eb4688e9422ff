"""Run the tests that start processes, threads or timers N times in a row on a loaded CPU.

    .venv/bin/python scripts/stress_tests.py              # 20 runs of `pytest -m "processes and not slow"`
    .venv/bin/python scripts/stress_tests.py --runs 5 --hog 4 -- -k distributed

A race between processes (a rank that leaves while another still talks to it, a thread alive
at interpreter exit, a timeout that is too tight) shows up when the scheduler is slow, so
this script starts a CPU hog — one busy-looping process per core, in its own session — for
the whole session and stops it at the end (also on Ctrl-C). The tests are the ones marked
``@pytest.mark.processes`` (tests/test_process_marker.py checks that every test starting a
process, a thread or a timer has the mark). It stops at the first failing run, prints that
run's pytest output, and ends with a summary: runs, passes, failures, minutes (also when
interrupted: the runs that finished). Exit status: 0 when every run passed, 1 after a failing
run, 2 on a bad argument, 130 / 143 when interrupted by Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SELECTION = "processes and not slow"
SPIN = "while True:\n    pass\n"


def start_hog(n: int) -> list[subprocess.Popen]:
    """`n` busy-looping Python processes, each in a session of its own (so that pytest's and our
    process groups never receive their signals, and we kill exactly them)."""
    return [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True) for _ in range(n)]


def stop_hog(hog: list[subprocess.Popen]) -> None:
    for p in hog:
        if p.poll() is None:
            p.kill()
    for p in hog:
        p.wait()


def run_once(pytest_args: list[str]) -> tuple[int, str, float]:
    """One pytest session over the marked tests: (exit code, its output, seconds)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", SELECTION, *pytest_args]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        output, _ = p.communicate()
    except BaseException:  # interrupted: end the session's processes too (the ranks a test started)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise
    return p.returncode, output, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=20, help="how many times to run the marked tests (default 20)")
    p.add_argument("--hog", type=int, default=os.cpu_count() or 1,
                   help="busy-looping processes loading the CPU meanwhile (default: one per core; 0: none)")
    p.add_argument("pytest_args", nargs="*", help="more pytest arguments, after --, e.g. -- -k distributed")
    args = p.parse_args(argv)
    if args.runs < 1 or args.hog < 0:
        p.error("--runs must be at least 1 and --hog at least 0")
    hog = start_hog(args.hog)
    print(f"stress_tests: {args.runs} runs of pytest -m {SELECTION!r} {' '.join(args.pytest_args)} beside "
          f"{args.hog} busy-looping process(es)", flush=True)
    times: list[float] = []
    failed = interrupted = None
    t0 = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the hog on a plain kill too
    try:
        for i in range(1, args.runs + 1):
            code, output, seconds = run_once(args.pytest_args)
            times.append(seconds)
            last = output.strip().splitlines()[-1] if output.strip() else ""
            print(f"run {i}/{args.runs}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {seconds:.0f} s  "
                  f"{last}", flush=True)
            if code != 0:
                failed = i
                print(f"\n---- output of run {i} ----\n{output}---- end of run {i} ----\n", flush=True)
                break
    except (KeyboardInterrupt, SystemExit) as e:  # the summary of the runs that finished, then stop
        interrupted = 130 if isinstance(e, KeyboardInterrupt) else e.code
    finally:
        stop_hog(hog)
        signal.signal(signal.SIGTERM, previous)
    total = time.perf_counter() - t0
    passes = len(times) - (failed is not None)
    spread = (f" (a run: min {min(times):.0f} s, mean {sum(times) / len(times):.0f} s, max {max(times):.0f} s)"
              if times else "")
    print(f"stress_tests: {len(times)} run(s), {passes} passed, {len(times) - passes} failed, {total / 60:.1f} min in "
          f"all{spread}; hog {args.hog}{'; interrupted' if interrupted is not None else ''}", flush=True)
    return interrupted if interrupted is not None else 0 if failed is None else 1

if __name__ == "__main__":
    sys.exit(main())
