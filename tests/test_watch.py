"""The live watcher on real files, with the real watchdog observers.

Every wait is on a published snapshot (a threading.Condition) with a generous
timeout; nothing sleeps and hopes. Line logs use nanoGPT's console format.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn

import pytest
from watchdog.events import FileModifiedEvent

from trainwatch import parsers
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.ingest import mounts, publish, rotation, statpoll, watches
from trainwatch.ingest import watcher as watch
from trainwatch.ingest.mounts import network_fs, read_mounts
from trainwatch.ingest.source import LogSource, SourceError
from trainwatch.ingest.watcher import Watcher

TIMEOUT = 10.0
pytestmark = [
    pytest.mark.skipif(parsers.by_format("nanogpt_stdout") is None, reason="the nanoGPT console parser is missing"),
]

PREAMBLE = "tokens per iteration will be: 8,192\nmax_iters = {target}\neval_interval = 1000\n"


def iter_line(step: int, loss: float | None = None) -> str:
    loss = 10.0 - step / 100 if loss is None else loss
    return f"iter {step}: loss {loss:.4f}, time 100.00ms, mfu 10.00%\n"


def write_log(path: Path, steps: range, target: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PREAMBLE.format(target=target) + "".join(iter_line(s) for s in steps))
    return path


def append(path: Path, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


class Recorder:
    """The ``publish`` callback: keeps every snapshot and lets a test wait for one."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.cond = threading.Condition()

    def __call__(self, snapshot: Snapshot) -> None:
        with self.cond:
            self.snapshots.append(snapshot)
            self.cond.notify_all()

    @property
    def count(self) -> int:
        with self.cond:
            return len(self.snapshots)

    def wait(self, predicate: Callable[[Snapshot], bool], since: int = 0, timeout: float = TIMEOUT) -> Snapshot:
        def found() -> Snapshot | None:
            return next((s for s in reversed(self.snapshots[since:]) if predicate(s)), None)

        with self.cond:
            assert self.cond.wait_for(lambda: found() is not None, timeout), (
                f"no matching snapshot in {timeout}s; last: {self.snapshots[-1:]}"
            )
            result = found()
            assert result is not None
            return result


def eventually(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """For state that is not in a snapshot: check until true or timed out."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.01)


def row(snapshot: Snapshot, path: Path) -> RunRow | None:
    return next((r for r in snapshot.rows if r.key == str(path)), None)


def at_iter(path: Path, step: int) -> Callable[[Snapshot], bool]:
    return lambda s: (r := row(s, path)) is not None and r.stats.iter == step


@pytest.fixture
def start() -> Iterator[Callable[..., tuple[Watcher, Recorder]]]:
    watchers: list[Watcher] = []

    def _start(paths: list[Path], **kwargs: object) -> tuple[Watcher, Recorder]:
        recorder = Recorder()
        watcher = Watcher(paths, RunOptions(), Names(), recorder, **kwargs)  # type: ignore[arg-type]
        watchers.append(watcher)
        watcher.start()
        recorder.wait(lambda s: True)  # the first snapshot
        return watcher, recorder

    yield _start
    for watcher in watchers:
        watcher.stop()


# --------------------------------------------------------------- tailing


def test_append_is_published(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "run" / "train.log", range(0, 30, 10))
    watcher, rec = start([tmp_path])
    rec.wait(at_iter(log, 20))
    append(log, iter_line(30))
    snapshot = rec.wait(at_iter(log, 30))
    assert [r.key for r in snapshot.rows] == [str(log)]
    assert watcher.mode == "inotify"


def test_partial_line_waits_for_its_newline(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "a.log", range(0, 30, 10))
    other = write_log(tmp_path / "b.log", range(0, 30, 10))
    _, rec = start([tmp_path])
    rec.wait(lambda s: len(s.rows) == 2)
    append(log, iter_line(30).rstrip("\n"))
    # Events arrive in order: once b's append is published, a's was read too.
    append(other, iter_line(30))
    snapshot = rec.wait(at_iter(other, 30))
    assert row(snapshot, log).stats.iter == 20  # type: ignore[union-attr]
    append(log, "\n")
    rec.wait(at_iter(log, 30))


def test_truncate_starts_a_new_segment(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "train.log", range(0, 60, 10))
    _, rec = start([tmp_path])
    rec.wait(at_iter(log, 50))
    write_log(log, range(0, 20, 10))  # "w": truncated and restarted from a checkpoint
    snapshot = rec.wait(at_iter(log, 10))
    assert row(snapshot, log).stats.segments == 2  # type: ignore[union-attr]


def test_rotation_keeps_one_run(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "train.log", range(0, 60, 10))
    _, rec = start([tmp_path])
    rec.wait(at_iter(log, 50))
    log.rename(tmp_path / "train.log.1")
    write_log(log, range(60, 80, 10))
    snapshot = rec.wait(at_iter(log, 70))
    assert [r.key for r in snapshot.rows] == [str(log)]  # train.log.1 is the old part, not a run
    assert row(snapshot, log).stats.logged_iters == 8  # type: ignore[union-attr]


def test_copytruncate_keeps_one_run(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    """logrotate's copytruncate: train.log is copied to train.log.1, then emptied
    and written on. The copy holds lines the run already shows: no second run."""
    log = write_log(tmp_path / "train.log", range(0, 60, 10))
    _, rec = start([tmp_path])
    rec.wait(at_iter(log, 50))
    shutil.copyfile(log, tmp_path / "train.log.1")
    with open(log, "r+") as handle:  # at once, as logrotate does: likely seen in the same pass
        handle.truncate(0)
    append(log, iter_line(60) + iter_line(70))
    snapshot = rec.wait(at_iter(log, 70))  # (the copy's events came first: it was read by now)
    assert [r.key for r in snapshot.rows] == [str(log)]
    assert row(snapshot, log).stats.logged_iters == 8  # type: ignore[union-attr]


def test_a_new_run_named_like_a_rotation_is_shown(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    """A script that finds train.log taken and logs to train.log.1: a new run,
    though it starts with the very same preamble and first line."""
    log = write_log(tmp_path / "train.log", range(0, 60, 10))
    _, rec = start([tmp_path])
    rec.wait(at_iter(log, 50))
    new = tmp_path / "train.log.1"
    new.write_text(PREAMBLE.format(target=1000) + iter_line(0))  # so far, as train.log began
    time.sleep(0.3)  # (a pass sees it: it may yet be a copy being written)
    append(new, "".join(iter_line(s, loss=7.0) for s in range(10, 90, 10)))  # its own losses from here
    snapshot = rec.wait(at_iter(new, 80))
    assert sorted(r.key for r in snapshot.rows) == [str(log), str(new)]


def test_a_copy_written_slowly_is_still_a_copy(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "train.log", range(0, 500, 10))
    _, rec = start([tmp_path])
    rec.wait(at_iter(log, 490))
    data = log.read_bytes()
    copy = tmp_path / "train.log.1"
    copy.write_bytes(data[:100])  # cp caught half-way: a prefix of the log, for a few passes
    time.sleep(0.5)
    with open(copy, "ab") as handle:
        handle.write(data[100:])
    with open(log, "r+") as handle:
        handle.truncate(0)
    append(log, iter_line(500))
    snapshot = rec.wait(at_iter(log, 500))
    time.sleep(0.3)
    assert [r.key for r in rec.snapshots[-1].rows] == [str(log)]
    assert row(snapshot, log).stats.logged_iters == 51  # type: ignore[union-attr]


def test_a_maybe_copy_that_stops_growing_is_a_run_after_a_while(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rotation, "UNDECIDED_S", 0.5)
    log = write_log(tmp_path / "train.log", range(0, 500, 10))
    _, rec = start([tmp_path])
    rec.wait(at_iter(log, 490))
    short = tmp_path / "train.log.1"
    short.write_bytes(log.read_bytes()[:2000])  # like train.log so far, but it never grows past it
    snapshot = rec.wait(lambda s: row(s, short) is not None)
    assert len(snapshot.rows) == 2


def test_a_rotated_name_is_a_run_of_its_own_without_its_base(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    """Only a copy of a run being shown is skipped: a new ``x.log.1`` with no
    ``x.log`` beside it is a run. One there from the start beside its
    ``x.log`` is the log's older part (issue 15): read first, in one run."""
    write_log(tmp_path / "a.log.1", range(0, 30, 10))  # there from the start, beside a.log
    base = write_log(tmp_path / "a.log", range(30, 50, 10))
    _, rec = start([tmp_path])
    rec.wait(at_iter(base, 40))
    lone = write_log(tmp_path / "b.log.1", range(0, 20, 10))
    snapshot = rec.wait(at_iter(lone, 10))
    assert sorted(r.key for r in snapshot.rows) == sorted(str(tmp_path / n) for n in ("a.log", "b.log.1"))
    assert row(snapshot, base).stats.logged_iters == 5  # type: ignore[union-attr]


def test_delete_keeps_figures_and_recreate_resumes(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    log = write_log(tmp_path / "train.log", range(0, 60, 10))
    _, rec = start([tmp_path])
    rec.wait(at_iter(log, 50))
    log.unlink()
    gone = rec.wait(lambda s: (r := row(s, log)) is not None and any("deleted" in w for w in r.stats.warnings))
    assert row(gone, log).stats.iter == 50  # type: ignore[union-attr]
    write_log(log, range(60, 80, 10))
    back = rec.wait(at_iter(log, 70))
    assert not any("deleted" in w for w in row(back, log).stats.warnings)  # type: ignore[union-attr]


def test_document_caught_mid_write(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    doc_path = tmp_path / "run_1.json"
    doc_path.write_text(json.dumps(seed_document(50)))
    other = write_log(tmp_path / "b.log", range(0, 30, 10))
    watcher, rec = start([tmp_path])
    rec.wait(at_iter(doc_path, 50))
    text = json.dumps(seed_document(100), indent=2)
    with open(doc_path, "w") as handle:  # the logger rewrites in place, not atomically
        handle.write(text[: len(text) // 2])
        handle.flush()
        append(other, iter_line(30))
        snapshot = rec.wait(at_iter(other, 30))
        assert row(snapshot, doc_path).stats.iter == 50  # type: ignore[union-attr]
        handle.write(text[len(text) // 2 :])
    rec.wait(at_iter(doc_path, 100))
    seen = [r.stats.iter for s in rec.snapshots if (r := row(s, doc_path)) is not None]
    assert seen == sorted(seen)  # never backwards
    assert watcher.problems == []


def test_new_run_in_a_new_folder(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    _, rec = start([tmp_path])
    hidden = write_log(tmp_path / ".cache" / "x.log", range(0, 30, 10))
    log = write_log(tmp_path / "new-run" / "deep" / "train.log", range(0, 30, 10))
    snapshot = rec.wait(at_iter(log, 20))
    assert row(snapshot, hidden) is None


def test_a_tensorboard_event_file_is_tailed(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    """A real SummaryWriter (tensorboardX, named events.out.tfevents.<time>.<host>)
    writing while the watcher runs: each step is shown once complete, no flush() needed."""
    from tensorboardX import SummaryWriter

    _, rec = start([tmp_path])
    # Its thread writes queued events and flushes every flush_secs (writer.flush() does not drain the queue).
    writer = SummaryWriter(str(tmp_path / "runs" / "Dec07_12-38-05_host"), flush_secs=0.05)  # type: ignore[arg-type]
    try:
        for step in (10, 20):
            writer.add_scalar("train/loss", 3.0 - step / 100, step)
            writer.add_scalar("train/learning_rate", 1e-4, step)
        (log,) = (tmp_path / "runs" / "Dec07_12-38-05_host").glob("events.out.tfevents.*")
        snapshot = rec.wait(at_iter(log, 20))
        assert row(snapshot, log).stats.loss == 2.8  # type: ignore[union-attr]
        since = rec.count
        writer.add_scalar("train/loss", 2.7, 30)
        writer.add_scalar("train/learning_rate", 1e-4, 30)
        assert row(rec.wait(at_iter(log, 30), since), log).format == "tfevents"  # type: ignore[union-attr]
    finally:
        writer.close()


def test_burst_coalesces(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "train.log", range(0, 10, 10))
    _, rec = start([tmp_path])
    rec.wait(at_iter(log, 0))
    before = rec.count
    with open(log, "a") as handle:
        for step in range(1, 201):
            handle.write(iter_line(step))
            handle.flush()  # one write (one inotify event) per line
    rec.wait(at_iter(log, 200))
    publishes = rec.count - before
    print(f"200 appends -> {publishes} publishes")
    assert publishes <= 5


def test_idle_when_every_run_is_over(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    write_log(tmp_path / "done.log", range(0, 110, 10), target=100)
    _, rec = start([tmp_path], tick=0.05)
    snapshot = rec.wait(lambda s: len(s.rows) == 1)
    assert snapshot.rows[0].stats.status == "finished"
    before = rec.count
    time.sleep(2.0)  # the assertion is that nothing happens
    assert rec.count == before


def test_snapshots_of_the_first_read_say_so(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    for k in range(3):
        write_log(tmp_path / f"run{k}" / "train.log", range(0, 30, 10))
    _, rec = start([tmp_path])
    done = rec.wait(lambda s: len(s.rows) == 3 and not s.loading)
    first = rec.snapshots[0]
    assert first.loading and len(first.rows) < 3  # (published after the first file: the rest still unread)
    assert rec.snapshots[-1] is done or not rec.snapshots[-1].loading


def test_running_run_ticks(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    write_log(tmp_path / "live.log", range(0, 30, 10))
    now = [datetime.now()]
    _, rec = start([tmp_path], clock=lambda: now[0], tick=0.05)
    first = rec.wait(lambda s: len(s.rows) == 1)
    eta = first.rows[0].stats.eta_s
    assert eta is not None
    now[0] += timedelta(seconds=0.5)  # no file changes, only the clock: the ETA counts down
    later = rec.wait(lambda s: s.rows[0].stats.eta_s is not None and s.rows[0].stats.eta_s < eta)
    assert later.rows[0].stats.eta_s == pytest.approx(eta - 0.5)


def test_quiet_ticks_publish_nothing_until_a_figure_changes(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = write_log(tmp_path / "live.log", range(0, 30, 10))
    now = [datetime.now()]  # a clock that stands still: every re-derive gives the same figures
    _, rec = start([tmp_path], clock=lambda: now[0], tick=0.02)
    first = rec.wait(at_iter(log, 20))
    count = rec.count
    time.sleep(0.5)  # 25 ticks; the assertion is that none of them published
    assert rec.count == count
    # At most QUIET_REPUBLISH apart all the same (stall ages, finish dates), with
    # the very same RunStats object: the app can skip the unchanged run.
    monkeypatch.setattr(publish, "QUIET_REPUBLISH", 0.1)
    again = rec.wait(lambda s: True, since=count)
    assert again.rows[0].stats is first.rows[0].stats


def test_a_drifting_finish_estimate_alone_publishes_nothing(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    log = write_log(tmp_path / "live.log", range(0, 30, 10))
    now = [datetime.now()]
    _, rec = start([tmp_path], clock=lambda: now[0], tick=0.02)
    first = rec.wait(at_iter(log, 20))
    assert first.rows[0].stats.status == "running"
    # Past the ETA countdown's cap (the next log line is due): the estimate
    # stands still and the finish time moves with the clock, tick by tick.
    now[0] += timedelta(seconds=5)
    moved = rec.wait(lambda s: s.rows[0].stats.finish_at != first.rows[0].stats.finish_at)
    count = rec.count
    for _ in range(10):
        now[0] += timedelta(seconds=0.5)
        time.sleep(0.05)
    assert rec.count == count  # 25 ticks, each moving finish_at: nothing published
    assert moved.rows[0].stats.status == "running"


def test_a_quiet_run_is_not_derived_on_ticks_until_it_can_stall(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainwatch.core import metrics

    derived: list[datetime] = []
    derive = metrics.derive

    def counted(agg: object, now: datetime, facts: object = None) -> object:
        derived.append(now)
        return derive(agg, now, facts)  # type: ignore[arg-type]

    monkeypatch.setattr(metrics, "derive", counted)
    log = write_log(tmp_path / "live.log", range(0, 30, 10))
    now = [datetime.now()]
    _, rec = start([tmp_path], clock=lambda: now[0], tick=0.02)
    first = rec.wait(at_iter(log, 20))
    assert first.rows[0].stats.status == "running"
    now[0] += timedelta(seconds=5)  # past the ETA countdown: only the finish estimate drifts now
    time.sleep(0.2)
    derived.clear()
    time.sleep(0.5)  # 25 ticks
    assert derived == []
    now[0] += timedelta(minutes=5)  # well past the stall threshold (a minute here)
    stalled = rec.wait(lambda s: s.rows[0].stats.status == "stalled")
    assert stalled.rows[0].stats.iter == 20


def test_only_clock_moved() -> None:
    from trainwatch.core.aggregate import RunAggregator
    from trainwatch.core.stats import COUNTDOWN, only_clock_moved
    from trainwatch.parsers import nanogpt_stdout

    agg_log = PREAMBLE.format(target=1000) + "".join(iter_line(s) for s in range(0, 30, 10))
    agg = RunAggregator()
    parser = nanogpt_stdout.SPEC.new_line_parser()
    for line in agg_log.splitlines():
        agg.add_all(parser.feed(line))
    agg.observe(datetime(2025, 1, 1, 12, 0, 0))
    at_noon = agg.stats(datetime(2025, 1, 1, 12, 0, 10))
    later = agg.stats(datetime(2025, 1, 1, 12, 0, 20))
    assert later.finish_at != at_noon.finish_at and only_clock_moved(at_noon, later)
    # Between two log lines the ETA counts down: news for the watcher (it is
    # shown in seconds), only the clock's cells for the app.
    early, less = (agg.stats(datetime(2025, 1, 1, 12, 0, 0, ms * 1000)) for ms in (200, 500))
    assert less.eta_s is not None and early.eta_s is not None and less.eta_s < early.eta_s
    assert not only_clock_moved(early, less) and only_clock_moved(early, less, COUNTDOWN)
    agg.add_all(parser.feed(iter_line(30).rstrip("\n")))
    assert not only_clock_moved(later, agg.stats(datetime(2025, 1, 1, 12, 0, 20)))


def test_an_unchanged_run_keeps_its_stats_object(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    busy = write_log(tmp_path / "a" / "train.log", range(0, 30, 10))
    quiet = write_log(tmp_path / "b" / "train.log", range(0, 30, 10))
    _, rec = start([tmp_path])
    before = rec.wait(lambda s: len(s.rows) == 2 and all(r.stats.iter == 20 for r in s.rows))
    append(busy, iter_line(30))
    after = rec.wait(at_iter(busy, 30))
    quiet_before, quiet_after = row(before, quiet), row(after, quiet)
    assert quiet_before is not None and quiet_after is not None
    assert quiet_after.stats is quiet_before.stats  # not derived again (the tick is 1 s)
    busy_before, busy_after = row(before, busy), row(after, busy)
    assert busy_before is not None and busy_after is not None and busy_after.stats is not busy_before.stats


def test_stall_detected_by_the_tick(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "train.log", range(0, 30, 10))
    now = [datetime.now()]
    _, rec = start([tmp_path], clock=lambda: now[0], tick=0.05)
    assert rec.wait(at_iter(log, 20)).rows[0].stats.status == "running"
    now[0] += timedelta(hours=1)
    rec.wait(lambda s: bool(s.rows) and s.rows[0].stats.status == "stalled")


def test_a_job_requeued_after_a_kill_runs_again(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    # Slurm kills the job right after its step-20 checkpoint and requeues it
    # (--open-mode=append): the new job logs on from step 30, above the last
    # step logged, so no restart clears the kill.
    log = write_log(tmp_path / "slurm-1.out", range(0, 30, 10))
    append(log, "slurmstepd: error: *** JOB 1 ON g1 CANCELLED AT 2026-01-01T00:00:00 DUE TO TIME LIMIT ***\n")
    now = [datetime.now()]
    _, rec = start([tmp_path], clock=lambda: now[0], tick=0.05)
    rec.wait(lambda s: (r := row(s, log)) is not None and r.stats.status == "failed")
    now[0] += timedelta(seconds=1)
    append(log, iter_line(30))  # (the dying job's stdout, flushed: not a new run yet)
    failed = rec.wait(at_iter(log, 30))
    assert row(failed, log).stats.status == "failed"  # type: ignore[union-attr]
    now[0] += timedelta(minutes=3)
    append(log, iter_line(40) + iter_line(50))
    resumed = rec.wait(at_iter(log, 50))
    assert row(resumed, log).stats.status == "running"  # type: ignore[union-attr]


def test_set_target_and_refresh_now(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "train.log", range(0, 30, 10))
    doc = tmp_path / "run_1.json"
    doc.write_text(json.dumps(seed_document(50)))
    watcher, rec = start([tmp_path])
    rec.wait(lambda s: len(s.rows) == 2)
    watcher.set_target(40)
    snapshot = rec.wait(lambda s: len(s.rows) == 2 and all(r.stats.target == 40 for r in s.rows))
    # A target the user sets moves progress only (METRICS.md): 50 of 40 is 125 %,
    # and the run is not "finished" (its log stated 100).
    stats = row(snapshot, doc).stats  # type: ignore[union-attr]
    assert stats.status != "finished" and stats.progress_pct == 125.0
    doc.write_text(json.dumps(seed_document(60)))  # a re-parse keeps the override
    assert row(rec.wait(at_iter(doc, 60)), doc).stats.target_source == "override"  # type: ignore[union-attr]
    before = rec.count
    watcher.refresh_now()
    rec.wait(lambda s: True, since=before)
    assert row(rec.snapshots[-1], log) is not None


def test_many_busy_logs_are_stat_swept_then_events_again(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thresholds scaled down: busy above 6 changed logs a second, calm below 0.5 (none in a second),
    # so that a slow machine writing the lines slowly keeps it busy.
    monkeypatch.setattr(statpoll, "LoadGauge", functools.partial(statpoll.LoadGauge, 6.0, 0.5, 1.0))
    monkeypatch.setattr(statpoll, "BUSY_POLL", 0.2)
    logs = [write_log(tmp_path / f"run{k}" / "train.log", range(0, 10)) for k in range(6)]
    watcher, recorder = start([tmp_path])
    assert watcher.mode == "inotify"
    step = 10
    deadline = time.monotonic() + 3 * TIMEOUT
    while "busy" not in watcher.mode:  # 6 logs, each a line every 0.1 s: ~60 changes a second
        assert time.monotonic() < deadline, "never went busy"
        for log in logs:
            append(log, iter_line(step))
        step += 1
        time.sleep(0.1)
    assert watcher.mode == "inotify · busy: 6 logs checked every 0.2s"

    # inotify no longer reports modifications: a sweep finds them.
    def unmodified() -> bool:  # (the worker re-schedules just after it says busy)
        handles = [t.handle for t in watcher._watches.targets if t.handle is not None]
        return bool(handles) and all(FileModifiedEvent not in (h.event_filter or ()) for h in handles)

    eventually(unmodified)
    # While the load lasts, lines keep arriving and a new run appears.
    new = write_log(tmp_path / "late" / "train.log", range(0, 50, 10))
    goal = step + 10
    deadline = time.monotonic() + 3 * TIMEOUT
    while not ((s := recorder.snapshots[-1]) and all(at_iter(log, goal)(s) for log in logs) and at_iter(new, 40)(s)):
        assert "busy" in watcher.mode and time.monotonic() < deadline
        if step <= goal:
            for log in logs:
                append(log, iter_line(step))
            step += 1
        time.sleep(0.1)
    # Quiet: back to events, which show a single line again.
    eventually(lambda: watcher.mode == "inotify")
    since = recorder.count
    append(logs[0], iter_line(step))
    recorder.wait(at_iter(logs[0], step), since=since)


# ------------------------------------------------------------- observers


def test_polling_observer(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "train.log", range(0, 30, 10))
    watcher, rec = start([tmp_path], poll=0.1)
    assert watcher.mode == "polling every 0.1s"
    rec.wait(at_iter(log, 20))
    append(log, iter_line(30))
    rec.wait(at_iter(log, 30))


def test_network_root_is_polled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    share = tmp_path / "on nfs"
    local = tmp_path / "local"
    table = tmp_path / "mounts"
    escaped = str(share).replace(" ", r"\040")
    table.write_text(f"/dev/vda / ext4 rw 0 0\nsrv:/export {escaped} nfs4 rw 0 0\n")
    monkeypatch.setattr(mounts, "MOUNTS", table)
    monkeypatch.setattr(watch, "NETWORK_POLL", 0.1)
    log = write_log(share / "train.log", range(0, 30, 10))
    write_log(local / "x.log", range(0, 30, 10))
    watcher, rec = start([share, local])
    assert watcher.network_paths == [share]
    assert watcher.mode == "inotify · 1 path on nfs4 polled every 0.1s"
    rec.wait(at_iter(log, 20))
    append(log, iter_line(30))
    rec.wait(at_iter(log, 30))


def test_network_fs_longest_prefix(tmp_path: Path) -> None:
    mounts_file = tmp_path / "mounts"
    mounts_file.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "fs:/home /home nfs4 rw 0 0\n"
        "/dev/sdb1 /home/me/scratch xfs rw 0 0\n"
        "me@host:/x /mnt/my\\040share fuse.sshfs rw 0 0\n"
        "mds@tcp:/lus /lustre lustre rw 0 0\n"
    )
    mounts = read_mounts(mounts_file)
    assert network_fs(Path("/home/me/runs"), mounts) == "nfs4"
    assert network_fs(Path("/home/me/scratch/runs"), mounts) is None
    assert network_fs(Path("/mnt/my share/runs"), mounts) == "fuse.sshfs"
    assert network_fs(Path("/lustre/proj"), mounts) == "lustre"
    assert network_fs(Path("/homework"), mounts) is None
    assert read_mounts(tmp_path / "missing") == []


# ---------------------------------------------------------- bad weather


def test_watched_folder_deleted_and_recreated(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    root = tmp_path / "runs"
    log = write_log(root / "a" / "train.log", range(0, 30, 10))
    watcher, rec = start([root])
    rec.wait(at_iter(log, 20))
    shutil.rmtree(root)
    rec.wait(lambda s: (r := row(s, log)) is not None and any("deleted" in w for w in r.stats.warnings))
    eventually(lambda: any("was deleted" in p for p in watcher.problems))
    fresh = write_log(root / "b" / "train.log", range(0, 50, 10))
    rec.wait(at_iter(fresh, 40))
    append(fresh, iter_line(50))  # watched again, live
    rec.wait(at_iter(fresh, 50))


def test_worker_survives_exceptions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    bad = write_log(tmp_path / "bad.log", range(0, 30, 10))
    good = write_log(tmp_path / "good.log", range(0, 30, 10))
    real_refresh = LogSource.refresh
    broken = threading.Event()

    def refresh(self: LogSource) -> bool:
        if self.path == bad and broken.is_set():
            raise RuntimeError("parser bug")
        return real_refresh(self)

    monkeypatch.setattr(LogSource, "refresh", refresh)
    watcher, rec = start([tmp_path])
    rec.wait(lambda s: len(s.rows) == 2)
    broken.set()
    append(bad, iter_line(30))
    snapshot = rec.wait(lambda s: (r := row(s, bad)) is not None and bool(r.stats.warnings))
    assert row(snapshot, bad).stats.iter == 20  # type: ignore[union-attr]
    assert any("parser bug" in p for p in watcher.problems)
    append(good, iter_line(30))
    rec.wait(at_iter(good, 30))


def test_publish_callback_errors_do_not_stop_the_worker(tmp_path: Path) -> None:
    log = write_log(tmp_path / "train.log", range(0, 30, 10))
    rec = Recorder()
    calls = [0]

    def publish(snapshot: Snapshot) -> None:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("app bug")
        rec(snapshot)

    watcher = Watcher([tmp_path], RunOptions(), Names(), publish)
    watcher.start()
    try:
        append(log, iter_line(30))
        rec.wait(at_iter(log, 30))
    finally:
        watcher.stop()


def test_unreadable_file_keeps_its_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    log = write_log(tmp_path / "train.log", range(0, 30, 10))
    real_refresh = LogSource.refresh
    denied = threading.Event()

    def refresh(self: LogSource) -> bool:
        if denied.is_set():  # what chmod 000 does for a user who is not root
            raise SourceError(f"cannot read {self.path}: Permission denied")
        return real_refresh(self)

    monkeypatch.setattr(LogSource, "refresh", refresh)
    watcher, rec = start([tmp_path])
    rec.wait(at_iter(log, 20))
    denied.set()
    append(log, iter_line(30))
    snapshot = rec.wait(
        lambda s: (r := row(s, log)) is not None and any("cannot be read" in w for w in r.stats.warnings)
    )
    assert row(snapshot, log).stats.iter == 20  # type: ignore[union-attr]
    assert any("Permission denied" in p for p in watcher.problems)
    denied.clear()
    append(log, iter_line(40))
    snapshot = rec.wait(at_iter(log, 40))
    assert not row(snapshot, log).stats.warnings  # type: ignore[union-attr]
    assert watcher.problems == []


def test_log_replaced_by_a_folder(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "train.log", range(0, 30, 10))
    watcher, rec = start([tmp_path])
    rec.wait(at_iter(log, 20))
    log.unlink()
    log.mkdir()
    rec.wait(lambda s: (r := row(s, log)) is not None and any("cannot be read" in w for w in r.stats.warnings))
    assert any("not a regular file" in p for p in watcher.problems)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "secret.log", range(0, 30, 10))
    log.chmod(0)
    watcher, rec = start([tmp_path])
    snapshot = rec.wait(lambda s: any("secret.log" in path for path, _ in s.unrecognised))
    assert not snapshot.rows
    assert watcher.problems


def test_symlink_loops(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path)
    log = write_log(tmp_path / "sub" / "train.log", range(0, 30, 10))
    (tmp_path / "link.log").symlink_to(log)  # the same run twice: one row
    _, rec = start([tmp_path])
    snapshot = rec.wait(lambda s: len(s.rows) == 1)
    key = Path(snapshot.rows[0].key)
    assert key in (log, tmp_path / "link.log")
    assert any("loop" in path for path, _ in snapshot.unrecognised)
    append(log, iter_line(30))
    rec.wait(at_iter(key, 30))


def test_one_folder_through_two_roots(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    log = write_log(tmp_path / "runs" / "train.log", range(0, 30, 10))
    (tmp_path / "alias").symlink_to(tmp_path / "runs")
    _, rec = start([tmp_path / "runs", tmp_path / "alias"])
    rec.wait(at_iter(log, 20))
    append(log, iter_line(30))
    snapshot = rec.wait(at_iter(log, 30))
    assert len(snapshot.rows) == 1
    new = write_log(tmp_path / "alias" / "new.log", range(0, 20, 10))  # seen through both watches
    snapshot = rec.wait(lambda s: len(s.rows) == 2)
    assert {r.stats.iter for r in snapshot.rows} == {30, 10}
    assert new.exists()


def test_symlinked_file_root_outside_is_watched(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    real = write_log(tmp_path / "elsewhere" / "train.log", range(0, 30, 10))
    link = tmp_path / "watched" / "latest.log"
    link.parent.mkdir()
    link.symlink_to(real)
    _, rec = start([link.parent])
    rec.wait(at_iter(link, 20))
    append(real, iter_line(30))
    rec.wait(at_iter(link, 30))


def test_ten_thousand_files(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    for folder in range(100):
        sub = tmp_path / f"d{folder:03d}"
        sub.mkdir()
        for index in range(100):
            os.close(os.open(sub / f"f{index:03d}.log", os.O_CREAT | os.O_WRONLY, 0o644))
    log = write_log(tmp_path / "d050" / "train.log", range(0, 30, 10))
    began = time.monotonic()
    watcher, rec = start([tmp_path])
    snapshot = rec.wait(lambda s: len(s.rows) == 1 and len(s.unrecognised) == 10_000, timeout=30)
    elapsed = time.monotonic() - began
    print(f"10,000 files: all read in {elapsed:.2f}s")
    assert elapsed < 15
    assert watcher.loading is None
    before = rec.count
    append(log, iter_line(30))
    rec.wait(at_iter(log, 30), since=before)
    assert snapshot.rows[0].key == str(log)


def test_stop_is_idempotent(tmp_path: Path) -> None:
    watcher = Watcher([tmp_path], RunOptions(), Names(), lambda s: None)
    watcher.stop()  # before start
    watcher.start()
    watcher.stop()
    watcher.stop()
    assert not any(t.name == "trainwatch-watcher" for t in threading.enumerate())


# -------------------------------------------------------------- helpers


def seed_document(last: int) -> dict[str, object]:
    """A small document in the seed's JSON run-log shape."""
    return {
        "run_name": "run_1",
        "start_time": "2025-11-13T22:50:09",
        "config": {"max_iters": 100, "log_interval": 10, "eval_interval": 1000, "out_dir": "out-tiny"},
        "training_iterations": [
            {"iter": i, "loss": 10 - i / 20, "time_ms": 500.0, "mfu": -100.0 if i == 0 else 20.0}
            for i in range(0, last + 1, 10)
        ],
        "eval_steps": [],
        "checkpoints": [],
    }


def test_inotify_limit_falls_back_to_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    class Exhausted(watches.PollingObserver):
        def schedule(self, *args: object, **kwargs: object) -> NoReturn:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(watches, "Observer", Exhausted)
    monkeypatch.setattr(watch, "NETWORK_POLL", 0.1)
    log = write_log(tmp_path / "train.log", range(0, 30, 10))
    watcher, rec = start([tmp_path])
    rec.wait(at_iter(log, 20))
    assert watcher.mode == "polling every 0.1s · inotify watch limit reached"
    append(log, iter_line(30))
    rec.wait(at_iter(log, 30))


def test_records_a_parser_holds_back_reach_the_screen_once_the_log_goes_quiet(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    """llm.c prints ``val loss`` and maybe a HellaSwag line after it; the parser
    holds the val loss until the next line says which. A live log that stops
    there (the run is evaluating, or died) must still show it: the watcher
    flushes a log that has been quiet for FLUSH_AFTER_S, as a snapshot does at
    the end of its input."""
    log = tmp_path / "train.log"
    step = "step {:4d}/100 | loss 3.500000 (+nanz)| norm 1.0000 (+nanz)| lr 1.00e-04 | 100.00 ms | 20.0% bf16 MFU"
    step += " | 1000 tok/s\n"
    log.write_text("".join(step.format(i) for i in range(1, 6)) + "val loss 3.25\n")
    _, recorder = start([tmp_path])
    first = recorder.wait(at_iter(log, 5))
    row_now = row(first, log)
    assert row_now is not None and row_now.format == "llmc_stdout"
    shown = recorder.wait(lambda s: (r := row(s, log)) is not None and r.stats.val_loss == 3.25)
    assert (shown.generated_at - first.generated_at).total_seconds() < 2 * watch.FLUSH_AFTER_S + 2


def test_a_log_quiet_when_found_shows_its_held_back_end_with_the_first_read(
    tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]
) -> None:
    """The same llm.c log, last written an hour ago: it has been quiet far
    longer than FLUSH_AFTER_S, so its val loss is there as soon as the first
    read is over, not two seconds later as news (a status alert at startup)."""
    log = tmp_path / "train.log"
    step = "step {:4d}/100 | loss 3.500000 (+nanz)| norm 1.0000 (+nanz)| lr 1.00e-04 | 100.00 ms | 20.0% bf16 MFU"
    step += " | 1000 tok/s\n"
    log.write_text("".join(step.format(i) for i in range(1, 6)) + "val loss 3.25\n")
    hour_ago = time.time() - 3600
    os.utime(log, (hour_ago, hour_ago))
    _, recorder = start([tmp_path])
    recorder.wait(lambda s: not s.loading and row(s, log) is not None)
    loaded = next(s for s in recorder.snapshots if not s.loading)  # the first after the load
    assert row(loaded, log).stats.val_loss == 3.25  # type: ignore[union-attr]


def test_a_file_that_is_no_log_says_what_it_is(tmp_path: Path, start: Callable[..., tuple[Watcher, Recorder]]) -> None:
    # A cloned repository: Git LFS pointers where the logs should be.
    pointer = tmp_path / "train.log"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 23810\n")
    watcher, rec = start([tmp_path])
    snapshot = rec.wait(lambda s: bool(s.unrecognised))
    assert snapshot.unrecognised == ((str(pointer), "a Git LFS pointer, not the log: run `git lfs pull`"),)
    assert watcher.problems == [f"{pointer}: a Git LFS pointer, not the log: run `git lfs pull`"]
