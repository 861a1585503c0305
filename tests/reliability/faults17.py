"""Shared pieces of the issue-17 fault tests (``test_faults_17_*.py``):
sample logs, the CLI as a real process, a metrics scrape over loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINE = "iter {i}: loss {loss:.4f}, time 100.00ms, mfu 10.00%\n"
PREAMBLE = "tokens per iteration will be: 8,192\nmax_iters = 1000\n"


def lines(first: int, last: int) -> str:
    """nanoGPT iteration lines ``first`` .. ``last``."""
    return "".join(LINE.format(i=i, loss=3.0 - i / 1000) for i in range(first, last + 1))


def write_log(path: Path, first: int = 0, last: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PREAMBLE + lines(first, last))
    return path


def append(path: Path, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


def env(**extra: str) -> dict[str, str]:
    """The environment of a trainwatch child process: this checkout first on the path."""
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def run_cli(*args: str, timeout: float = 60, **extra_env: str) -> subprocess.CompletedProcess[bytes]:
    """``python -m trainwatch ARGS`` as a real process; bytes out, as a terminal gets them."""
    return subprocess.run(
        [sys.executable, "-m", "trainwatch", *args], capture_output=True, timeout=timeout, env=env(**extra_env)
    )


def start_cli(*args: str, **extra_env: str) -> subprocess.Popen[bytes]:
    """A long-running trainwatch (``serve-metrics``) in its own session, stopped by its id."""
    return subprocess.Popen(
        [sys.executable, "-m", "trainwatch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(**extra_env),
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def scrape(port: int, timeout: float = 5.0) -> tuple[int, str]:
    """``GET /metrics`` on loopback: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def wait_for(condition: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> float:
    """Seconds it took ``condition`` to hold; fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"timed out after {timeout}s: {what}"
        time.sleep(step)
    return time.monotonic() - start


def alive(pid: int) -> bool:
    """Is ``pid`` a process that has not ended (a zombie has)?"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (children, their children...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
