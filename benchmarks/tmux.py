"""A private tmux server that runs a command in a real terminal and reads its screen.

Every session lives on its own socket (``tmux -L``), so the benchmarks never
touch a user's tmux; ``close`` kills only that server.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def available() -> bool:
    return shutil.which("tmux") is not None


class Pane:
    """``command`` running in a detached tmux session of ``width`` × ``height``."""

    def __init__(self, command: list[str], *, width: int = 160, height: int = 48, env: dict[str, str] | None = None):
        self.socket = f"trainwatch-bench-{os.getpid()}-{time.monotonic_ns()}"
        extra = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
        shell = " ".join(["exec", "env", *extra, *map(shlex.quote, command)])
        self.started = time.perf_counter()
        self._tmux("new-session", "-d", "-s", "bench", "-x", str(width), "-y", str(height), shell)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False)
        return done.stdout

    def screen(self) -> str:
        """The visible text of the pane, now."""
        return self._tmux("capture-pane", "-p", "-t", "bench")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "bench", *keys)

    def pid(self) -> int:
        """The pid of the command (tmux ``exec``s it as the pane's process)."""
        return int(self._tmux("display-message", "-p", "-t", "bench", "#{pane_pid}").strip() or 0)

    def wait(self, seen: Callable[[str], bool], timeout: float = 30.0, since: float | None = None) -> float | None:
        """Seconds since ``since`` (default: now) until ``seen(screen)`` holds; ``None`` on timeout.

        The screen is polled as fast as tmux answers (a few ms a round trip).
        """
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if seen(self.screen()):
                return time.perf_counter() - (start if since is None else since)
        return None

    def close(self) -> None:
        socket = self._tmux("display-message", "-p", "#{socket_path}").strip()
        self._tmux("kill-server")
        if socket:
            Path(socket).unlink(missing_ok=True)

    def __enter__(self) -> Pane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its threads, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
