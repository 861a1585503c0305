"""Files on a network filesystem are polled at ``--poll-network`` seconds.

A real NFS or Lustre mount is out of reach here, so the mount table is
injected: the temp folder is listed as an ``nfs4`` mount, exactly as
``/proc/mounts`` shows one. The watcher must then poll it (no inotify) at the
configured interval, see appends, and only stat files while nothing changes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from trainwatch.cli import build_parser
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import Snapshot
from trainwatch.ingest import mounts
from trainwatch.ingest.source import LogSource
from trainwatch.ingest.watcher import Watcher

PREAMBLE = "tokens per iteration will be: 8,192\nmax_iters = 1000\neval_interval = 1000\n"


def line(step: int) -> str:
    return f"iter {step}: loss {10 - step / 100:.4f}, time 100.00ms, mfu 10.00%\n"


def test_network_mount_is_polled_at_the_configured_interval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    share = tmp_path / "share"
    log = share / "run" / "train.log"
    log.parent.mkdir(parents=True)
    log.write_text(PREAMBLE + line(0) + line(10))
    table = tmp_path / "mounts"
    table.write_text(f"overlay / overlay rw 0 0\nfiler:/export/runs {share} nfs4 rw,relatime 0 0\n")
    monkeypatch.setattr(mounts, "MOUNTS", table)
    refreshes: list[str] = []
    real_refresh = LogSource.refresh

    def counting(self: LogSource) -> bool:
        refreshes.append(str(self.path))
        return real_refresh(self)

    monkeypatch.setattr(LogSource, "refresh", counting)
    latest: list[Snapshot] = []
    seen = threading.Event()

    def publish(snapshot: Snapshot) -> None:
        latest.append(snapshot)
        if any(r.stats.iter == 20 for r in snapshot.rows):
            seen.set()

    watcher = Watcher([share], RunOptions(), Names(), publish, network_poll=0.3)
    watcher.start()
    try:
        assert watcher.network_paths == [share]
        assert watcher.mode == "polling every 0.3s · 1 path on nfs4"
        deadline = time.monotonic() + 10
        while not (latest and latest[-1].rows) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert latest[-1].rows[0].stats.iter == 10
        assert not watcher._watches.native  # inotify cannot see other hosts' writes: nothing relies on it

        refreshes.clear()
        time.sleep(1.0)  # three polls with nothing changed: stat only, no file read
        assert refreshes == []

        appended = time.monotonic()
        with open(log, "a") as handle:
            handle.write(line(20))
        assert seen.wait(10), "the append was never seen"
        assert time.monotonic() - appended < 3  # within a few polls of 0.3 s
        assert refreshes and set(refreshes) == {str(log)}
    finally:
        watcher.stop()


def test_poll_network_option() -> None:
    args = build_parser().parse_args(["serve-metrics", "/data", "--poll-network", "0.5"])
    assert args.poll_network == 0.5
    args = build_parser().parse_args(["watch", "/data"])
    assert args.poll_network is None  # the watcher's default, 2 s
