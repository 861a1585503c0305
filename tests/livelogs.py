"""Helpers for tests that write a nanoGPT-style log and wait for the snapshot
that shows it (the remote, Prometheus and integration tests)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from trainwatch.core.rows import Snapshot

PREAMBLE = "tokens per iteration will be: 8,192\nmax_iters = 1000\neval_interval = 1000\n"


def line(step: int) -> str:
    """One logged iteration in nanoGPT's console format."""
    return f"iter {step}: loss {10 - step / 100:.4f}, time 100.00ms, mfu 10.00%\n"


def write_log(path: Path, last: int, every: int = 10) -> Path:
    """A log of iterations 0, ``every`` … ``last``, its folder created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PREAMBLE + "".join(line(s) for s in range(0, last + 1, every)))
    return path


def append(path: Path, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


class Latest:
    """A watcher's ``publish`` callback; ``wait`` blocks until a snapshot matches."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.snapshot: Snapshot | None = None
        self.timeout = timeout
        self.cond = threading.Condition()

    def __call__(self, snapshot: Snapshot) -> None:
        with self.cond:
            self.snapshot = snapshot
            self.cond.notify_all()

    def wait(self, predicate: Callable[[Snapshot], bool], what: str = "a matching snapshot") -> Snapshot:
        with self.cond:
            ok = self.cond.wait_for(lambda: self.snapshot is not None and predicate(self.snapshot), self.timeout)
            assert ok, f"no snapshot with {what} in {self.timeout}s; last: {self.snapshot}"
            assert self.snapshot is not None
            return self.snapshot
