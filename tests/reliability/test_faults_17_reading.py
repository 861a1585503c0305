"""Issue 17, reading logs the suite never pictured: a progress bar that never
ends its line, holes of zeros, a log that starts with a hole, a log that
grows faster than it is read, a quit in the middle of a big first read.

Real files (sparse ones: a 256 MiB hole costs no disk), real processes and
signals; sizes grow under ``pytest --full``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_OK, main
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import Snapshot
from trainwatch.ingest.lines import MAX_LINE
from trainwatch.ingest.source import LogSource
from trainwatch.ingest.watcher import PASS_BYTES, Watcher

from . import helpers
from .faults17 import PREAMBLE, append, free_port, lines, start_cli, stop, wait_for, write_log

BAR = "\r 45%|████▌     | 450/1000 [00:10<00:12, 44.1it/s]"


def read(path: Path) -> LogSource:
    source = LogSource(path)
    source.refresh()
    source.flush()
    return source


# ----------------------------------------------------------- finding 5


@pytest.mark.parametrize("shape", ["bar", "no-cr"])
def test_an_unfinished_line_is_bounded(tmp_path: Path, shape: str) -> None:
    """Finding 5: the unfinished last line was copied and rescanned on every
    256 KiB read: an 80 MB tqdm line (``\\r`` only) took 7 s and 490 MB.

    Class: the held partial line grows without bound and is re-read per
    chunk. Other instances found and fixed: the same buffer behind a remote
    log (``feed_bytes``: the frames of an ssh tail) and behind the rotated
    copies read at startup, a line without any ``\\r`` (its first
    ``MAX_LINE`` bytes are kept, the rest dropped up to the next ``\\r`` or
    newline), and the line after it, which is never lost. A long bar line is
    handed on at its last ``\\r`` (``\\r`` ends a line for progress: no frame
    lost, below). Memory is measured (tracemalloc): bounded whatever the
    line's length.
    """
    size = helpers.scale(24 << 20, 160 << 20)
    unit = BAR if shape == "bar" else "x" * 61
    path = tmp_path / "train.log"
    with open(path, "w") as handle:
        handle.write(PREAMBLE + lines(0, 10))
        block = unit * ((1 << 20) // len(unit) + 1)
        for _ in range(size // len(block.encode()) + 1):
            handle.write(block)
        handle.write("\n" + lines(11, 20))
    tracemalloc.start()
    try:
        with helpers.deadline(helpers.budget_s(size) / 4, "a long unfinished line"):
            source = read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert source.agg.stats(helpers.NOW).iter == 20  # the line after it is read
    # (a megabyte of frames handed on at a time, decoded and split by the parser, is most of it)
    assert peak < 16 * MAX_LINE, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB line"

    remote = LogSource(path)  # the bytes as an ssh tail brings them, in frames of 4 MiB
    data = path.read_bytes()
    tracemalloc.start()
    try:
        for offset in range(0, len(data), 4 << 20):
            remote.feed_bytes(data[offset : offset + (4 << 20)], "1:1", offset)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert remote.agg.stats(helpers.NOW).iter == 20
    assert peak < 16 * MAX_LINE + 3 * (4 << 20)  # (and a frame, the copy sniffed of the first one)


def test_every_frame_of_a_long_bar_line_is_a_step(tmp_path: Path) -> None:
    """Finding 5: ``\\r`` is a line end for progress purposes. A Trainer that
    logs rarely draws its bar for thousands of steps before a newline (one
    frame a step, each read by ``hf_trainer_stdout``); the line is handed on
    at its last ``\\r`` as it grows, and the steps read from the file are
    those of the whole text parsed at once: none lost, none doubled."""
    from formats.hf_console_sim import Console, trainer_run  # (tests/ is on the path, as for livelogs)

    from trainwatch.parsers import hf_console

    steps = helpers.scale(45_000, 300_000)
    console = Console(line_buffered=True)
    trainer_run(console, [0.5] * steps, logging_steps=steps)
    text = (
        "***** Running training *****\n  Num examples = 1,280\n  Num Epochs = 1\n"
        f"  Total optimization steps = {steps:,}\n" + console.text()
    )
    assert max(len(line) for line in text.split("\n")) > 2 * MAX_LINE  # frames between newlines
    path = tmp_path / "train.out"
    path.write_text(text)
    whole = hf_console.HFConsoleParser()
    expected = [r for line in text.split("\n") for r in whole.feed(line.removesuffix("\r"))] + list(whole.flush())
    source = read(path)
    assert source.format == "hf_trainer_stdout"
    stats = source.agg.stats(helpers.NOW)
    assert stats.iter == steps
    assert stats.logged_iters == helpers.stats_of(expected).logged_iters == steps


def test_a_hole_of_zeros_is_skipped_not_scanned(tmp_path: Path) -> None:
    """Finding 5: a 256 MiB hole of zero bytes (a sparse file) took 84 s and
    810 MB, and the line after it was lost (its NULs glued to it). Holes are
    now skipped with ``SEEK_DATA``; NULs that are really written (a file
    system without holes) are dropped from the stream, so the next line
    parses. With ``--full``: a 10 GiB hole."""
    hole = helpers.scale(256 << 20, 10 << 30)
    for before in (10, 500):  # the hole within the first sniffed bytes, and after them
        sparse = tmp_path / f"sparse{before}.log"
        with open(sparse, "w") as handle:
            handle.write(PREAMBLE + lines(0, before))
            handle.seek(handle.tell() + hole)
            handle.write(lines(before + 1, before + 10))
        with helpers.deadline(10, "a sparse hole"):
            source = read(sparse)
        assert source.agg.stats(helpers.NOW).logged_iters == before + 11  # the line just after the hole too

    written = tmp_path / "zeros.log"
    with open(written, "wb") as handle:
        handle.write((PREAMBLE + lines(0, 10)).encode() + b"\0" * (4 << 20) + lines(11, 20).encode())
    with helpers.deadline(10, "written zeros"):
        source = read(written)
    assert source.agg.stats(helpers.NOW).logged_iters == 21  # iteration 11 kept its line


# ----------------------------------------------------------- finding 6


def test_a_log_that_starts_with_a_hole_is_a_run(tmp_path: Path) -> None:
    """Finding 6: ``python train.py > train.log`` and logrotate's
    copytruncate leave a log that starts with as many zeros as the old log
    had bytes; with 16 KiB or more (the sniffed head) it was "no training
    runs found". Other instances: zeros really written (no holes on that file
    system), and a remote log whose first frames are all zeros (they were
    kept to sniff until 256 KiB, then the file was given up)."""
    sparse = tmp_path / "sparse" / "train.log"
    sparse.parent.mkdir()
    with open(sparse, "w") as handle:
        handle.seek(1 << 20)
        handle.write(PREAMBLE + lines(0, 20))
    zeros = tmp_path / "zeros" / "train.log"
    zeros.parent.mkdir()
    zeros.write_bytes(b"\0" * (300 << 10) + (PREAMBLE + lines(0, 20)).encode())
    for path in (sparse, zeros):
        assert main(["snapshot", str(path.parent), "-f", "json"]) == EXIT_OK
        assert read(path).agg.stats(helpers.NOW).iter == 20

    remote = LogSource(Path("host:/runs/train.log"))
    data = zeros.read_bytes()
    for offset in range(0, len(data), 64 << 10):
        remote.feed_bytes(data[offset : offset + (64 << 10)], "1:1", offset)
    assert remote.format == "nanogpt_stdout" and remote.agg.stats(helpers.NOW).iter == 20


# ------------------------------------------------------- findings 7, 13


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nanoGPT log of 3 reading passes and more (``PASS_BYTES`` each)."""
    path = tmp_path_factory.mktemp("big") / "big.log"
    size = helpers.scale(3 * PASS_BYTES, 20 * PASS_BYTES)
    with open(path, "w") as handle:
        handle.write(PREAMBLE)
        step, written = 0, 0
        while written < size:
            block = "".join(f"iter {i}: loss 2.5000, time 100.00ms, mfu 10.00%\n" for i in range(step, step + 100_000))
            handle.write(block)
            step, written = step + 100_000, written + len(block)
    return path


class Latest:
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.cond = threading.Condition()

    def __call__(self, snapshot: Snapshot) -> None:
        with self.cond:
            self.snapshots.append(snapshot)
            self.cond.notify_all()

    def row(self, snapshot: Snapshot, name: str) -> int | None:
        return next((r.stats.iter for r in snapshot.rows if r.path.endswith(name)), None)


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    made: list[Watcher] = []
    yield made
    for watcher in made:
        watcher.stop()


def test_one_fast_log_does_not_starve_the_others(tmp_path: Path, big_log: Path, watchers: list[Watcher]) -> None:
    """Finding 7: a log growing fast kept the read loop busy until its end:
    nothing was published meanwhile, another run's new line was not shown.

    Class: a read with no bound per pass. Other instances found and fixed:
    the first read, which chased a growing log (it reads up to the size each
    log had when found, then takes turns), and ``snapshot``, which read a
    growing log until it stopped growing (it reads up to the size at its
    start). Here: ``fast.log`` gets a backlog of several passes at once; the
    slow run's next line must be shown while the fast one is still behind.
    """
    fast = write_log(tmp_path / "fast" / "train.log")
    slow = write_log(tmp_path / "slow" / "train.log")
    latest = Latest()
    watcher = Watcher([tmp_path], RunOptions(), Names(), latest)
    watchers.append(watcher)
    watcher.start()
    wait_for(lambda: bool(latest.snapshots) and len(latest.snapshots[-1].rows) == 2, 20, "both runs")
    backlog = big_log.read_bytes()
    final = int(backlog.rsplit(b"\niter ", 1)[1].split(b":")[0])
    with open(fast, "ab") as handle:
        handle.write(backlog[backlog.index(b"\niter ") + 1 :])
    append(slow, lines(21, 21))

    def slow_seen() -> Snapshot | None:
        return next((s for s in latest.snapshots if latest.row(s, "slow/train.log") == 21), None)

    wait_for(lambda: slow_seen() is not None, 60, "the slow run's new line")
    seen = slow_seen()
    assert seen is not None and latest.row(seen, "fast/train.log") != final, "shown only after the whole backlog"
    wait_for(lambda: latest.row(latest.snapshots[-1], "fast/train.log") == final, 120, "the fast run catching up")


def test_snapshot_of_a_growing_log_ends(tmp_path: Path, big_log: Path) -> None:
    """Finding 7's instance in ``snapshot`` and the first read: a refresh
    read on until the end of a log that kept growing, so a writer faster
    than the reader held it for ever. It now reads up to the size the log
    had when it started. A real writer thread appends as soon as the read
    is under way (it watches the reader's file position in /proc)."""
    path = tmp_path / "growing.log"
    path.write_bytes(big_log.read_bytes())
    at_start = path.stat().st_size
    appended = threading.Event()

    def writer() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not appended.is_set():
            for fd in os.listdir("/proc/self/fd"):
                try:
                    if os.readlink(f"/proc/self/fd/{fd}") != str(path):
                        continue
                    position = int(Path(f"/proc/self/fdinfo/{fd}").read_text().split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if position > 0:  # the read is under way
                    append(path, lines(10**6, 10**6 + 20_000))
                    appended.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        source = read(path)
    finally:
        thread.join(35)
    assert appended.is_set() and path.stat().st_size > at_start
    assert source.offset == at_start and not source.behind


def test_quit_during_a_big_first_read(big_log: Path) -> None:
    """Finding 13: a quit during a big first read hung 13-15 s (the worker
    read to the end before it looked at the stop); ``serve-metrics`` took
    10 s to stop on SIGTERM (the join's timeout). Reading now checks for
    shutdown between passes of ``PASS_BYTES``. Other instances found and
    fixed: a pass that refreshes many logs (checked between logs), and
    SIGHUP of serve-metrics, which skipped stopping altogether (finding 14).
    The read must be abandoned: no row of the big log is published."""
    latest = Latest()
    watcher = Watcher([big_log.parent], RunOptions(), Names(), latest)
    watcher.start()
    time.sleep(0.2)  # well inside the first read (a second or more of reading)
    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 3.0
    assert not any(s.rows for s in latest.snapshots), "the whole log was read before the stop"

    port = free_port()
    proc = start_cli("serve-metrics", str(big_log.parent), "--metrics-port", str(port))
    try:
        assert b"serving metrics" in proc.stderr.readline()  # type: ignore[union-attr]  # (its signal handlers are set)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        proc.wait(timeout=15)
        assert time.monotonic() - started < 2.5
        assert proc.returncode == 0 and b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        stop(proc)


assert os.SEEK_DATA  # (Linux: the hole tests rely on it)
