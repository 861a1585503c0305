"""Issue 17, the watcher against the world: clocks that disagree, an inotify
queue that overflows, a symlinked root that is repointed, runs deleted
under ``serve-metrics``.

Real files, a real stopped process (SIGSTOP) for the overflow, a real
metrics endpoint scraped over loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_OK
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import Snapshot
from trainwatch.ingest.source import LogSource
from trainwatch.ingest.watcher import Watcher
from trainwatch.outputs.prometheus import MetricsServer
from trainwatch.wiring import watcher_factory

from . import helpers
from .faults17 import PREAMBLE, append, free_port, lines, run_cli, scrape, start_cli, stop, wait_for, write_log


class Latest:
    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.lock = threading.Lock()

    def __call__(self, snapshot: Snapshot) -> None:
        with self.lock:
            self.snapshot = snapshot

    def row(self, suffix: str = "") -> object:
        snapshot = self.snapshot
        rows = [r for r in snapshot.rows if r.path.endswith(suffix)] if snapshot else []
        return rows[0] if len(rows) == 1 else None

    def iteration(self, suffix: str = "") -> int | None:
        row = self.row(suffix)
        return row.stats.iter if row is not None else None  # type: ignore[attr-defined]


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    made: list[Watcher] = []
    yield made
    for watcher in made:
        watcher.stop()


def watch(paths: list[Path], watchers: list[Watcher], **kwargs: object) -> Latest:
    latest = Latest()
    watcher = Watcher(paths, RunOptions(), Names(), latest, **kwargs)  # type: ignore[arg-type]
    watchers.append(watcher)
    watcher.start()
    return latest


def snapshot_json(path: Path, now: datetime) -> dict[str, object]:
    result = run_cli("snapshot", str(path), "-f", "json", "--now", now.isoformat())
    assert result.returncode == EXIT_OK and b"Traceback" not in result.stderr, result.stderr
    run: dict[str, object] = json.loads(result.stdout)["runs"][0]
    return run


# ----------------------------------------------------------- finding 8


def test_an_mtime_in_the_future_adds_nothing_to_the_eta(tmp_path: Path) -> None:
    """Finding 8: an mtime 1 h in the future added exactly 1 h to the ETA (a
    year-2100 mtime: 26,688 days), and one past the year 9999 (tmpfs keeps
    them) crashed ``snapshot`` with a traceback.

    Class: a time from another clock taken as "when did this change". The
    ETA's countdown now ignores a file time after ``now`` (``metrics._eta``,
    merged from main meanwhile); the crash is gone with ``files.from_timestamp``.
    Other instances found and fixed: the remote host's mtime in its frames
    (and a NaN or huge one there), a TensorBoard record's wall time, and the
    watcher's live reads (they now note the local clock when a change is
    seen: finding 8's other half, below).
    """
    now = datetime(2030, 6, 1, 12, 0, 0)
    log = write_log(tmp_path / "train.log", 0, 100)
    os.utime(log, (now.timestamp(), now.timestamp()))
    honest = snapshot_json(log, now)["eta_s"]
    assert isinstance(honest, float) and honest > 0
    for ahead in (timedelta(hours=1), datetime(2100, 1, 1) - now):
        moment = (now + ahead).timestamp()
        os.utime(log, (moment, moment))
        assert snapshot_json(log, now)["eta_s"] == pytest.approx(honest, abs=1.0), ahead

    shm = Path("/dev/shm")
    if not os.access(shm, os.W_OK):
        pytest.skip("no tmpfs at /dev/shm for an mtime past the year 9999")
    far = Path(shutil.copy(log, shm / f"trainwatch-test-{os.getpid()}.log"))
    try:
        os.utime(far, ns=(300_000_000_000 * 10**9,) * 2)  # the year 11476
        assert datetime(9999, 12, 31).timestamp() < far.stat().st_mtime
        snapshot_json(far, now)
    finally:
        far.unlink()


def test_a_time_no_datetime_holds_is_no_time() -> None:
    """Finding 8's other instances of "a time past the year 9999 raises": the
    mtime of a remote log in its frame (and a NaN one), and a TensorBoard
    record's wall time (the parser lost every record of its chunk)."""
    from trainwatch.parsers import tfevents

    source = LogSource(Path("host:/runs/train.log"))
    chunks = [(PREAMBLE + lines(0, 3)).encode(), lines(4, 4).encode(), lines(5, 5).encode()]
    for data, mtime in zip(chunks, (3e11, float("nan"), float("inf")), strict=True):
        source.feed_bytes(data, "1:1", source.offset, mtime)
    assert source.agg.stats(helpers.NOW).iter == 5
    assert tfevents._moment(3e11) is None and tfevents._moment(1.7e9) is not None


def test_a_watcher_ahead_of_the_file_server_sees_a_growing_run_running(tmp_path: Path, watchers: list[Watcher]) -> None:
    """Finding 8: a watcher whose clock is 3 h ahead of the file server's
    marked a run that visibly grows every second "stalled" (the mtime is
    3 h old by the watcher's clock). Here the file server's clock is played
    by setting each write's mtime 3 h back: the run must stay running."""
    log = write_log(tmp_path / "train.log", 0, 20)
    skew = 3 * 3600

    def backdate() -> None:
        st = log.stat()
        os.utime(log, (st.st_atime - skew, st.st_mtime - skew))

    backdate()
    latest = watch([tmp_path], watchers)
    wait_for(lambda: latest.iteration() == 20, 20, "the first read")
    for step in range(21, 27):
        append(log, lines(step, step))
        backdate()
        wait_for(lambda step=step: latest.iteration() == step, 10, f"iteration {step}")  # type: ignore[misc]
        time.sleep(0.3)
    row = latest.row()
    assert row is not None and row.stats.status == "running", row.stats.last_update_at  # type: ignore[attr-defined]


# ----------------------------------------------------------- finding 9


def test_an_inotify_overflow_is_followed_by_a_rescan(tmp_path: Path) -> None:
    """Finding 9: when the kernel's inotify queue overflowed (a burst of
    events, or trainwatch stopped a while), watchdog said so on stderr and
    runs created meanwhile stayed missing until their log was written again
    (a finished run: never). Now the loss is a rescan.

    A real ``serve-metrics`` is stopped (SIGSTOP) while more events than
    ``max_queued_events`` happen, then a finished run is created; after
    SIGCONT its series must appear, and nothing may be printed. Other
    instance found and fixed: watchdog's own warnings went to stderr (over
    the app's screen): its logger has a handler of its own now.
    """
    try:
        limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    except OSError:
        pytest.skip("no inotify here")
    root = tmp_path / "runs"
    write_log(root / "a" / "train.log")
    port = free_port()
    proc = start_cli("serve-metrics", str(root), "--metrics-port", str(port))
    try:
        wait_for(lambda: _runs(port) == 1, 30, "run a")
        proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: _state(proc.pid) == "T", 10, "the process to stop")
        noise = [root / "a" / "ckpt-0.bin", root / "a" / "ckpt-1.bin"]
        handles = [open(p, "wb") for p in noise]  # noqa: SIM115
        for i in range(limit + 2000):  # alternating: the kernel merges only identical neighbours
            handles[i % 2].write(b"x")
            handles[i % 2].flush()
        for handle in handles:
            handle.close()
        write_log(root / "b" / "train.log", 0, 1000)  # a finished run (reached its stated target)
        proc.send_signal(signal.SIGCONT)
        wait_for(lambda: _runs(port) == 2, 30, "run b after the overflow")
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        finally:
            stop(proc)
    err = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert "overflow" not in err.lower() and "Traceback" not in err, err


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _runs(port: int) -> int | None:
    try:
        status, body = scrape(port, 2)
    except OSError:
        return None
    line = next((x for x in body.splitlines() if x.startswith("trainwatch_runs ")), None)
    return int(float(line.split()[1])) if status == 200 and line else None


# ---------------------------------------------------------- finding 10


def test_a_repointed_symlinked_root_is_followed(tmp_path: Path, watchers: list[Watcher]) -> None:
    """Finding 10: watching ``latest`` (a symlink) and then ``ln -sfn run2
    latest`` kept watching run1: run2's updates never came and the row mixed
    both runs' figures.

    Class: a root resolved once. Other instances found and fixed: a log
    named on the command line that is a symlink repointed to another run's
    log (its row was read on as the same run: a restart in its figures), and
    any root whose path resolves elsewhere (a link on the way): every pass
    compares the roots' real paths, and the folder of a symlinked root is
    watched so that the repointing wakes the watcher.
    """
    for run, last in (("run1", 30), ("run2", 5), ("run3", 30), ("run4", 5)):
        write_log(tmp_path / run / "train.log", 0, last)
    (tmp_path / "latest").symlink_to("run1")
    (tmp_path / "current.log").symlink_to("run3/train.log")
    latest = watch([tmp_path / "latest", tmp_path / "current.log"], watchers)
    wait_for(lambda: latest.iteration("latest/train.log") == 30, 20, "run1 through the folder link")
    wait_for(lambda: latest.iteration("current.log") == 30, 20, "run3 through the file link")

    for link, target in (("latest", "run2"), ("current.log", "run4/train.log")):
        tmp = tmp_path / f".{link}.new"
        tmp.symlink_to(target)
        os.replace(tmp, tmp_path / link)  # what ln -sfn does
    for run in ("run2", "run4"):
        append(tmp_path / run / "train.log", lines(6, 8))
    for suffix in ("latest/train.log", "current.log"):
        wait_for(lambda suffix=suffix: latest.iteration(suffix) == 8, 20, f"run2's new lines via {suffix}")  # type: ignore[misc]
        row = latest.row(suffix)
        assert row.stats.logged_iters == 9 and row.stats.segments == 1, suffix  # type: ignore[attr-defined]


# ---------------------------------------------------------- finding 11


def test_deleted_runs_leave_prometheus(tmp_path: Path, watchers: list[Watcher]) -> None:
    """Finding 11: deleted runs kept their Prometheus series (README says a
    run that went away has none): after ``rm -rf`` of 1,500 runs,
    ``trainwatch_runs`` stayed 1500. The app keeps showing them, flagged ⚑
    with their last figures; the exporter drops them. Other instance: a
    remote log gone from its host (the same "deleted" state)."""
    count, removed = helpers.scale(30, 1500), helpers.scale(20, 1000)
    for i in range(count):
        write_log(tmp_path / f"run{i:04d}" / "train.log")
    server = MetricsServer(port=0)
    server.start()
    try:
        latest = Latest()
        watcher = watcher_factory([tmp_path], RunOptions(), Names(), also=server.publish)(latest)
        watchers.append(watcher)
        watcher.start()
        wait_for(lambda: _runs(server.port) == count, 60, f"{count} runs")
        for i in range(removed):
            shutil.rmtree(tmp_path / f"run{i:04d}")
        wait_for(lambda: _runs(server.port) == count - removed, 60, "the deleted runs gone from /metrics")
        body = scrape(server.port)[1]
        assert "run0000" not in body and f"run{removed:04d}" in body
        assert latest.snapshot is not None and len(latest.snapshot.rows) == count  # the app still shows them
    finally:
        server.stop()


assert PREAMBLE  # (the logs here are faults17's nanoGPT lines)
