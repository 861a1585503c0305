"""Real servers on loopback for the integration tests, started and stopped by them.

Each test skips with the reason when a binary is missing (``.ci/run``
installs ``prometheus``, ``openssh-server`` and ``openssh-client``). Every
process is started in its own session and stopped by its id.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SSHD = "/usr/sbin/sshd"  # sshd must be run by its absolute path (it re-executes itself)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary(name: str, package: str) -> str:
    """The binary's path, or skip the test saying what to install."""
    path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (apt-get install {package}; .ci/run installs it)")
    return path


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process and the children it started (by their ids), then wait."""
    for pid in [*_descendants(proc.pid), proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Sshd:
    """A real sshd on a free loopback port with a throwaway host key and client key."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        keygen = binary("ssh-keygen", "openssh-client")
        for key in ("host_key", "client_key"):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
        (folder / "authorized_keys").write_bytes((folder / "client_key.pub").read_bytes())
        self.config = folder / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
            "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        )
        self.target = f"{getpass.getuser()}@127.0.0.1"
        self.ssh_options = [
            *("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"),
            *("-i", str(folder / "client_key"), "-p", str(self.port)),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.folder / "sshd.log", "ab")  # noqa: SIM115 - the server's, closed with it
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        wait_for(lambda: listening(self.port) or self.proc is None or self.proc.poll() is not None, 10, "sshd")
        assert self.proc.poll() is None, (self.folder / "sshd.log").read_text()

    def stop(self) -> None:
        """Kill the daemon and its connections: every client sees its session end."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class Prometheus:
    """A real Prometheus server scraping ``targets`` every second, its data in a temp folder."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        self.folder = folder
        self.port = free_port()
        self.config = folder / "prometheus.yml"
        listed = ", ".join(f'"{t}"' for t in targets)
        self.config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"scrape_configs:\n  - job_name: trainwatch\n    static_configs:\n      - targets: [{listed}]\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = binary("prometheus", "prometheus")
        log = open(self.folder / "prometheus.log", "ab")  # noqa: SIM115 - the server's, closed with it
        self.proc = subprocess.Popen(
            [
                exe,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (``[]`` while Prometheus is not up)."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.load(response)
        except OSError:
            return []
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
