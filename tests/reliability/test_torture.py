"""A real writer process (``writer.py``) abuses a log while trainwatch reads it.

The writer reports what it wrote; once it is done, the reader's final
``iter``, ``logged_iters`` and ``train_time_logged_s`` must equal that ground
truth exactly (nothing lost, nothing counted twice), and no figure may go
backwards between two reads while the writer is at work.

What the tool can and cannot see, and so how the ground truth is defined:

* Rewritten documents: every complete version is seen or superseded; a half
  written one is never used (the last good parse stays). Ground truth: the
  final document.
* Rotation (rename, or delete, then re-create) and copytruncate: trainwatch
  follows the *path*. Lines that reach the old file after the last read
  before the rotation are in ``log.1`` only (or nowhere, after a delete or
  a copytruncate that races the writer): a path-follower cannot see them.
  The writer therefore waits at each rotation until the reader has caught up
  (the ``sync`` handshake), which is what a watcher with inotify does in
  practice; after the rotation it writes on at full speed, without waiting.
  Ground truth: every line written. The race *after* the rotation (the new
  file growing past the old read offset before the next read) is not
  synchronised and is the point of the copytruncate cases.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.ingest.source import LogSource, SourceError

from .helpers import scale

WRITER = Path(__file__).with_name("writer.py")
TIMEOUT = 60.0
#: Readings that must never go backwards while the writer works.
MONOTONE = ("iter", "logged_iters", "train_time_logged_s")


class Writer:
    """The writer process and its event stream."""

    def __init__(self, mode: str, path: Path, count: int, seed: int = 1) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), mode, str(path), str(count), str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put({"event": "exit"})

    def next(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the writer said nothing for {timeout}s") from None

    def poll(self) -> dict[str, Any] | None:
        try:
            return self.events.get_nowait()
        except queue.Empty:
            return None

    def ack(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        assert self.proc.wait(timeout=TIMEOUT) == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def writers() -> Iterator[Callable[..., Writer]]:
    started: list[Writer] = []

    def start(*args: Any, **kwargs: Any) -> Writer:
        started.append(Writer(*args, **kwargs))
        return started[-1]

    yield start
    for writer in started:
        writer.kill()


def figures(stats: Any) -> dict[str, Any]:
    return {name: getattr(stats, name) for name in MONOTONE}


def assert_not_backwards(history: list[dict[str, Any]]) -> None:
    for before, after in itertools.pairwise(history):
        for name in MONOTONE:
            if before[name] is not None:
                assert after[name] is not None and after[name] >= before[name], (name, before, after)


def eventually(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.002)


# ------------------------------------------------------------ LogSource loop


#: What a source may say while the writer works: before its first good read
#: (the file may be empty or cut short then), and after ("deleted": between
#: an unlink and the new file).
EARLY_PROBLEMS = ("incomplete document (being written?)", "empty", "unrecognised format", "deleted", None)
LATER_PROBLEMS = ("deleted", None)


def read_while_writing(path: Path, writer: Writer) -> tuple[LogSource, list[dict[str, Any]], dict[str, Any]]:
    """Refresh ``path`` in a loop until the writer is done; every reading, and the truth."""
    assert writer.next()["event"] == "ready"
    source = LogSource(path)
    history: list[dict[str, Any]] = []

    def read() -> None:
        source.refresh()
        assert source.problem in (LATER_PROBLEMS if source.ready else EARLY_PROBLEMS), source.problem
        if source.ready:
            history.append(figures(source.agg.stats()))

    truth: dict[str, Any] | None = None
    while truth is None:
        read()
        event = writer.poll()
        if event is None:
            time.sleep(0.0005)  # the writer needs the CPU too (2 cores)
        elif event["event"] == "sync":

            def caught_up(step: int = event["iter"]) -> bool:
                read()
                return bool(history) and history[-1]["iter"] == step

            eventually(caught_up, f"reading up to iteration {event['iter']}")
            writer.ack()
            assert writer.next()["event"] == "rotated"  # not reading until the new file has grown
        elif event["event"] == "done":
            truth = event["truth"]
        else:
            raise AssertionError(f"writer: {event}")
    writer.finish()
    read()
    source.flush()
    return source, history, truth


def assert_truth(stats: Any, truth: dict[str, Any]) -> None:
    assert figures(stats) == truth


def test_document_rewritten_non_atomically(tmp_path: Path, writers: Callable[..., Writer]) -> None:
    path = tmp_path / "run_torture.json"
    writer = writers("rewrite", path, scale(100, 1000))
    source, history, truth = read_while_writing(path, writer)
    assert len(history) > 10
    assert_not_backwards(history)
    stats = source.agg.stats()
    assert_truth(stats, truth)
    assert stats.status == "finished" and stats.segments == 1


@pytest.mark.parametrize("mode", ["append", "rotate", "delete", "copytruncate", "copytruncate-noappend"])
def test_line_log(mode: str, tmp_path: Path, writers: Callable[..., Writer]) -> None:
    path = tmp_path / "train.log"
    writer = writers(mode, path, scale(400, 4000))
    source, history, truth = read_while_writing(path, writer)
    assert_not_backwards(history)
    stats = source.agg.stats()
    assert_truth(stats, truth)
    assert stats.segments == 1  # nothing was read twice (a re-read would look like a restart)


# --------------------------------------------------------------- Watcher


class Recorder:
    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.cond = threading.Condition()

    def __call__(self, snapshot: Snapshot) -> None:
        with self.cond:
            self.snapshots.append(snapshot)
            self.cond.notify_all()

    def row(self, path: Path, snapshot: Snapshot) -> RunRow | None:
        return next((r for r in snapshot.rows if r.key == str(path)), None)

    def wait_for(self, path: Path, predicate: Callable[[RunRow], bool], what: str) -> RunRow:
        def found() -> RunRow | None:
            for snapshot in reversed(self.snapshots):
                row = self.row(path, snapshot)
                if row is not None:
                    return row if predicate(row) else None
            return None

        with self.cond:
            assert self.cond.wait_for(lambda: found() is not None, TIMEOUT), f"timed out: {what}"
            row = found()
            assert row is not None
            return row

    def history(self, path: Path) -> list[dict[str, Any]]:
        with self.cond:
            return [figures(r.stats) for s in self.snapshots if (r := self.row(path, s)) is not None]


@pytest.mark.parametrize("mode", ["rewrite", "append", "rotate", "copytruncate"])
def test_through_the_watcher(mode: str, tmp_path: Path, writers: Callable[..., Writer]) -> None:
    """The same, through ``Watcher`` (inotify): every published snapshot, then the last."""
    from trainwatch.ingest.watcher import Watcher

    path = tmp_path / ("run_torture.json" if mode == "rewrite" else "train.log")
    count = scale(100, 1000) if mode == "rewrite" else scale(400, 4000)
    recorder = Recorder()
    watcher = Watcher([tmp_path], RunOptions(), Names(), recorder)
    watcher.start()
    try:
        writer = writers(mode, path, count)
        truth: dict[str, Any] | None = None
        while truth is None:
            event = writer.next()
            if event["event"] == "sync":
                recorder.wait_for(path, lambda r, s=event["iter"]: r.stats.iter == s, f"iteration {event['iter']}")
                writer.ack()
            elif event["event"] == "done":
                truth = event["truth"]
        writer.finish()
        row = recorder.wait_for(path, lambda r: figures(r.stats) == truth, f"the final figures {truth}")
        assert_truth(row.stats, truth)
        assert_not_backwards(recorder.history(path))
    finally:
        watcher.stop()


# ------------------------------------------- unreadable, replaced, deleted


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's own tmp folders are root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="trainwatch-rel-", dir="/tmp"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_unreadable_then_readable_again_as_an_unprivileged_reader(shared_dir: Path) -> None:
    """``chmod 000`` for real: the reader runs in a forked child that dropped to
    ``nobody`` (the tests run as root, which reads through permission bits).

    The child reads, is refused (one-line ``SourceError``), reads again once
    the mode is back, and ends with every line counted once.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    path = shared_dir / "train.log"
    lines = [f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n" for i in range(1, 201)]
    path.write_text("".join(lines[:100]))
    os.chmod(path, 0o644)
    LogSource(path).refresh()  # imports done before the fork (an import lock held by another thread would hang it)
    child_reads, parent_writes = os.pipe()
    parent_reads, child_writes = os.pipe()
    pid = os.fork()
    if pid == 0:  # the reader, as nobody
        code = 1
        try:
            signal.alarm(60)  # never outlive a failed test
            os.close(parent_writes)
            os.close(parent_reads)
            os.setgid(65534)
            os.setuid(65534)
            source = LogSource(path)
            while os.read(child_reads, 1):  # one read per byte from the parent
                try:
                    source.refresh()
                    source.flush()
                    stats = source.agg.stats()
                    reply: Any = [stats.iter, stats.logged_iters, stats.segments]
                except SourceError as exc:
                    reply = str(exc)
                os.write(child_writes, json.dumps(reply).encode() + b"\n")
            code = 0
        finally:
            os._exit(code)
    os.close(child_reads)
    os.close(child_writes)
    replies = os.fdopen(parent_reads)

    def step() -> Any:
        os.write(parent_writes, b"x")
        ready, _, _ = select.select([replies], [], [], TIMEOUT)
        assert ready, "the unprivileged reader did not answer"
        line = replies.readline()
        assert line, "the unprivileged reader died"
        return json.loads(line)

    try:
        assert step() == [100, 100, 1]
        os.chmod(path, 0o000)
        with open(path, "a") as handle:
            handle.write("".join(lines[100:]))
        assert step() == f"cannot read {path}: Permission denied"
        os.chmod(path, 0o644)
        assert step() == [200, 200, 1]
    finally:
        os.close(parent_writes)
        _, status = os.waitpid(pid, 0)
    assert status == 0


def test_replaced_by_a_directory_then_a_file_again(tmp_path: Path) -> None:
    path = tmp_path / "train.log"
    path.write_text("".join(f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n" for i in range(1, 51)))
    source = LogSource(path)
    source.refresh()
    path.unlink()
    assert source.refresh() is False and source.problem == "deleted"
    path.mkdir()
    with pytest.raises(SourceError, match="is not a regular file"):
        source.refresh()
    path.rmdir()
    path.write_text("".join(f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n" for i in range(51, 101)))
    source.refresh()
    stats = source.agg.stats()
    assert (stats.iter, stats.logged_iters, stats.segments) == (100, 100, 1)


def test_watcher_reports_a_directory_in_place_of_a_log(tmp_path: Path) -> None:
    from trainwatch.ingest.watcher import Watcher

    path = tmp_path / "train.log"
    path.write_text("".join(f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n" for i in range(1, 51)))
    recorder = Recorder()
    watcher = Watcher([tmp_path], RunOptions(), Names(), recorder)
    watcher.start()
    try:
        recorder.wait_for(path, lambda r: r.stats.iter == 50, "the first read")
        path.unlink()
        path.mkdir()
        row = recorder.wait_for(path, lambda r: any("cannot be read" in w for w in r.stats.warnings), "the warning")
        assert row.stats.iter == 50  # the last figures stay
        assert any("not a regular file" in p for p in watcher.problems)
        path.rmdir()
        path.write_text("".join(f"iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n" for i in range(51, 61)))
        row = recorder.wait_for(path, lambda r: r.stats.iter == 60, "reading the new file")
        assert (row.stats.logged_iters, row.stats.segments) == (60, 1)
    finally:
        watcher.stop()
