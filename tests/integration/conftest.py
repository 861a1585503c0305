"""Fixtures that start real servers (see ``servers``) and stop them after the test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .servers import SSHD, Prometheus, Sshd, binary


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    binary(SSHD, "openssh-server")
    binary("ssh", "openssh-client")
    if os.geteuid() != 0:
        pytest.skip("sshd for the test must run as root (it changes to the logged-in user)")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege-separation directory
    folder = tmp_path / "sshd"
    folder.mkdir()
    server = Sshd(folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[list[str]], Prometheus]]:
    """Start a Prometheus scraping the given targets; stopped after the test."""
    binary("prometheus", "prometheus")
    started: list[Prometheus] = []

    def start(targets: list[str]) -> Prometheus:
        folder = tmp_path / f"prometheus{len(started)}"
        folder.mkdir()
        server = Prometheus(folder, targets)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
