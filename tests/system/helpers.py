"""Real writer processes for the tests of ``trainwatch.system``: a training
script's console as launchers produce it (``> log``, ``nohup``, ``| tee``,
workers), started and ended by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: A training loop's console in nanoGPT's grammar (``iter N: loss X, time Yms, mfu Z%``).
#: ``--steps 0`` runs until killed; ``--finish`` ends with nanoGPT's "Training completed";
#: ``--workers K`` starts K children that inherit the console (torchrun-like; with
#: ``--quiet-workers`` their output goes elsewhere, as a data loader's);
#: ``--open PATH`` appends to PATH itself, as a logging FileHandler does; ``--linger S``
#: stays alive S seconds after its last line (a hung run).
SCRIPT = r"""
import argparse, os, subprocess, sys, time
p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=0)
p.add_argument("--every", type=float, default=0.05)
p.add_argument("--finish", action="store_true")
p.add_argument("--workers", type=int, default=0)
p.add_argument("--worker", action="store_true")
p.add_argument("--open")
p.add_argument("--linger", type=float, default=0.0)
p.add_argument("--quiet-workers", action="store_true")
a = p.parse_args()
out = open(a.open, "a", buffering=1) if a.open else sys.stdout
quiet = subprocess.DEVNULL if a.quiet_workers else None
kids = [subprocess.Popen([sys.executable, __file__, "--worker"], stdout=quiet) for _ in range(a.workers)]
if a.worker:
    while True:
        time.sleep(0.5)
i = 0
while a.steps == 0 or i < a.steps:
    print(f"iter {i}: loss {4.0 - i * 0.001:.4f}, time 50.00ms, mfu 30.00%", file=out, flush=True)
    i += 1
    time.sleep(a.every)
if a.finish:
    print("Training completed!", file=out, flush=True)
time.sleep(a.linger)
for k in kids:
    k.kill()
"""


def script(folder: Path) -> Path:
    path = folder / "train_loop.py"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def wait_for(condition: Callable[[], object], timeout: float = 10.0, step: float = 0.02) -> object:
    """``condition()`` once it is truthy; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        time.sleep(step)


def lines(log: Path) -> int:
    try:
        return log.read_bytes().count(b"\n")
    except OSError:
        return 0


@contextlib.contextmanager
def launched(command: str, log: Path, *, detached: bool = False) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` through ``sh -c`` (in its own session) until the log
    has a few lines; on the way out end that session's processes, by PID."""
    proc = subprocess.Popen(["sh", "-c", command], start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: lines(log) >= 3)
        yield proc
    finally:
        for pid in session(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def session(sid: int) -> list[int]:
    """The PIDs of session ``sid`` (what ``launched`` started, ``nohup``'s orphans included)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(name)) == sid:
                    found.append(int(name))
    return found


def python() -> str:
    return sys.executable
