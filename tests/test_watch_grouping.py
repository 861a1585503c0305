"""The live watcher groups a job's files into one run, on real temp folders.

Files appear, grow and go while the watcher runs; every published snapshot
is kept, and the tests check all of them: the run's row count stays one (no
row flickers in for a joining file), its row keeps its path (the row's
identity, Prometheus' ``path`` label), nothing is counted twice, and its
figures never go backwards when a stale file joins. Line logs use nanoGPT's
console format and checkpoints HF's ``trainer_state.json``, which every
checkout reads; the corpus's event files join in where their parser exists.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from trainwatch import parsers
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.ingest import sshtail
from trainwatch.ingest.watcher import Watcher
from trainwatch.outputs.prometheus import SnapshotCollector

TIMEOUT = 10.0
PREAMBLE = "tokens per iteration will be: 8,192\nmax_iters = 1000\n"
HF_RUN = "runs/Dec05_05-05-28_51bfe24db250"
EVENTS = "events.out.tfevents.1701752728.51bfe24db250.244.1"


def line(step: int, loss: float | None = None) -> str:
    return f"iter {step}: loss {10 - step / 100 if loss is None else loss:.4f}, time 100.00ms, mfu 10.00%\n"


def write_log(path: Path, steps: range, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PREAMBLE + "".join(line(s) for s in steps))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def append(path: Path, text: str) -> None:
    with open(path, "a") as handle:
        handle.write(text)


def save_checkpoint(out: Path, step: int, every: int = 10) -> Path:
    """What the Trainer leaves for a save at ``step``: the folder, then its state (written in place)."""
    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    history = [{"epoch": s / 1000, "loss": round(3 - s / 1000, 4), "step": s} for s in range(every, step + 1, every)]
    state = {"global_step": step, "max_steps": 1000, "logging_steps": every, "log_history": history}
    path = folder / "trainer_state.json"
    path.write_text(json.dumps(state, indent=2, sort_keys=True))
    return path


class Recorder:
    """The ``publish`` callback: keeps every snapshot, and waits for one."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.cond = threading.Condition()

    def __call__(self, snapshot: Snapshot) -> None:
        with self.cond:
            self.snapshots.append(snapshot)
            self.cond.notify_all()

    def wait(self, predicate: Callable[[Snapshot], bool]) -> Snapshot:
        with self.cond:
            ok = self.cond.wait_for(lambda: bool(self.snapshots) and predicate(self.snapshots[-1]), TIMEOUT)
            assert ok, f"no matching snapshot in {TIMEOUT}s; last: {self.snapshots[-1:]}"
            return self.snapshots[-1]

    def rows(self) -> list[tuple[RunRow, ...]]:
        with self.cond:
            return [s.rows for s in self.snapshots]


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Callable[[], Recorder]]:
    watchers: list[Watcher] = []

    def _start() -> Recorder:
        recorder = Recorder()
        watcher = Watcher([tmp_path], RunOptions(), Names(), recorder)
        watchers.append(watcher)
        watcher.start()
        return recorder

    yield _start
    for watcher in watchers:
        watcher.stop()


def one_row(step: int) -> Callable[[Snapshot], bool]:
    return lambda s: len(s.rows) == 1 and s.rows[0].stats.iter == step


def assert_one_steady_run(rec: Recorder, key: str) -> None:
    """Every snapshot: at most one row, always with the same path, its step never going back."""
    history = [rows for rows in rec.rows() if rows]
    assert all(len(rows) == 1 for rows in history), [[r.path for r in rows] for rows in history]
    assert {rows[0].key for rows in history} == {key}
    steps = [rows[0].stats.iter or 0 for rows in history]
    assert steps == sorted(steps), steps


def iteration_labels(snapshot: Snapshot) -> list[tuple[str, str]]:
    """The ``(run, path)`` labels of ``trainwatch_iteration``'s series for this snapshot."""
    collector = SnapshotCollector(hostname="here")
    collector.publish(snapshot)
    (family,) = (f for f in collector.collect() if f.name == "trainwatch_iteration")
    return [(sample.labels["run"], sample.labels["path"]) for sample in family.samples]


# ------------------------------------------------------------ checkpoints


def test_checkpoints_appearing_and_deleted_move_one_run_forward(tmp_path: Path, watch: Callable[[], Recorder]) -> None:
    out = tmp_path / "outputs"
    first = save_checkpoint(out, 100)
    rec = watch()
    rec.wait(one_row(100))
    save_checkpoint(out, 200)
    rec.wait(one_row(200))
    shutil.rmtree(out / "checkpoint-100")  # save_total_limit=1: the older one goes
    time.sleep(0.5)  # (the deletion is seen and changes nothing)
    save_checkpoint(out, 300)
    shutil.rmtree(out / "checkpoint-200")
    snapshot = rec.wait(one_row(300))
    time.sleep(0.5)
    assert_one_steady_run(rec, str(first))  # the row shown first keeps its path
    run = rec.snapshots[-1].rows[0]
    assert (run.name, run.stats.logged_iters, run.stats.loss) == ("outputs", 30, 2.7)  # the newest state's steps, once
    assert not any("deleted" in w for w in run.stats.warnings)
    assert run.sources[0] == str(first) and str(out / "checkpoint-300" / "trainer_state.json") in run.sources
    assert str(out / "checkpoint-200" / "trainer_state.json") not in run.sources  # let go: it says nothing more
    assert snapshot.rows[0].stats.iter == 300


def test_a_stale_checkpoint_joining_never_moves_the_run_back(tmp_path: Path, watch: Callable[[], Recorder]) -> None:
    out = tmp_path / "outputs"
    newest = save_checkpoint(out, 300)
    rec = watch()
    rec.wait(one_row(300))
    stale = save_checkpoint(tmp_path / "backup", 100)
    shutil.move(stale.parent, out / "checkpoint-100")  # an old checkpoint copied back in
    rec.wait(lambda s: len(s.rows) == 1 and len(s.rows[0].sources) == 2)
    time.sleep(0.3)
    assert_one_steady_run(rec, str(newest))
    assert rec.snapshots[-1].rows[0].stats.iter == 300


def test_an_event_file_appearing_in_the_output_folder_is_no_run_of_its_own(
    tmp_path: Path, watch: Callable[[], Recorder]
) -> None:
    out = tmp_path / "outputs"
    state = save_checkpoint(out, 100)
    rec = watch()
    rec.wait(one_row(100))
    events = out / HF_RUN / EVENTS
    events.parent.mkdir(parents=True)
    with open(events, "wb") as handle:  # written in records, as a SummaryWriter flushes them
        handle.write(b"\x18\x00\x00\x00\x00\x00\x00\x00\xa3\x7fK\x22\t\x00\x00\x00\x00\x00\x00\x00\x00")
    save_checkpoint(out, 200)
    rec.wait(one_row(200))
    assert_one_steady_run(rec, str(state))


@pytest.mark.skipif(parsers.by_format("tfevents") is None, reason="no TensorBoard event file parser yet")
def test_corpus_event_files_join_their_output_folder_live(
    corpus: Path, tmp_path: Path, watch: Callable[[], Recorder]
) -> None:
    source = corpus / "tfevents" / "hf_tinyllama_qlora_colab_1000steps"
    out = tmp_path / "outputs"
    out.mkdir()
    rec = watch()
    (out / HF_RUN).mkdir(parents=True)
    shutil.copyfile(next((source / HF_RUN).glob("events.out.tfevents.*")), out / HF_RUN / EVENTS)
    rec.wait(one_row(1000))  # MANIFEST: train/loss every step to 1000
    shutil.copytree(source / "checkpoint-1000", out / "checkpoint-1000")
    rec.wait(lambda s: len(s.rows) == 1 and len(s.rows[0].sources) == 2)
    assert_one_steady_run(rec, str(out / HF_RUN / EVENTS))


# -------------------------------------------------------- stdout / stderr


@pytest.mark.parametrize("first", ["out", "err"])
def test_a_jobs_out_and_err_in_either_order_are_one_run(
    tmp_path: Path, watch: Callable[[], Recorder], first: str
) -> None:
    second = "err" if first == "out" else "out"
    lead = write_log(tmp_path / f"train-4437.{first}", range(0, 30, 10))
    rec = watch()
    rec.wait(one_row(20))
    other = write_log(tmp_path / f"train-4437.{second}", range(0, 60, 10))
    rec.wait(lambda s: one_row(50)(s) and len(s.rows[0].sources) == 2)
    append(lead, line(30) + line(60, loss=1.0))
    snapshot = rec.wait(one_row(60))
    assert_one_steady_run(rec, str(lead))
    run = snapshot.rows[0]
    assert run.sources == (str(lead), str(other)) and run.name == "train-4437"
    # Prometheus: one series, its labels as before the file joined.
    assert iteration_labels(rec.snapshots[0]) == iteration_labels(snapshot) == [(run.name, str(lead))]
    assert (run.stats.loss, run.stats.logged_iters) == (1.0, 5)  # the lead's own steps: none counted twice


def test_out_and_err_appearing_together_after_start_are_one_run(tmp_path: Path, watch: Callable[[], Recorder]) -> None:
    (tmp_path / "notes.txt").write_text("not a log\n")
    rec = watch()
    rec.wait(lambda s: True)
    out = write_log(tmp_path / "slurm-12.out", range(0, 50, 10))
    write_log(tmp_path / "slurm-12.err", range(0, 50, 10))
    rec.wait(lambda s: one_row(40)(s) and len(s.rows[0].sources) == 2)
    history = [rows for rows in rec.rows() if rows]
    assert all(len(rows) == 1 for rows in history)
    assert history[-1][0].key in (str(out), str(out.with_suffix(".err")))


def test_a_log_that_names_the_output_folder_beside_it_joins_its_run(
    tmp_path: Path, watch: Callable[[], Recorder]
) -> None:
    state = save_checkpoint(tmp_path / "outputs", 100)
    log = write_log(tmp_path / "train.log", range(0, 30, 10))
    rec = watch()
    rec.wait(lambda s: len(s.rows) == 2)  # the log has not said where it saves
    append(log, "saving checkpoint to outputs\n" + line(110))
    snapshot = rec.wait(lambda s: len(s.rows) == 1)
    run = snapshot.rows[0]
    assert set(run.sources) == {str(state), str(log)} and run.stats.iter == 110


# ------------------------------------------------------------------ rotation


def test_rotated_copies_at_startup_are_one_run_read_oldest_first(tmp_path: Path, watch: Callable[[], Recorder]) -> None:
    write_log(tmp_path / "train.log.2", range(0, 30, 10), mtime=1_000)
    write_log(tmp_path / "train.log.1", range(30, 60, 10), mtime=2_000)
    log = write_log(tmp_path / "train.log", range(60, 90, 10), mtime=3_000)
    rec = watch()
    snapshot = rec.wait(one_row(80))
    assert snapshot.rows[0].stats.logged_iters == 9 and snapshot.rows[0].stats.segments == 1
    # Rotated again while watched: .1 -> .2 -> .3 and the log -> .1; nothing new, nothing twice.
    for n in (2, 1):
        (tmp_path / f"train.log.{n}").rename(tmp_path / f"train.log.{n + 1}")
    log.rename(tmp_path / "train.log.1")
    write_log(log, range(90, 110, 10))
    snapshot = rec.wait(one_row(100))
    time.sleep(0.3)
    assert_one_steady_run(rec, str(log))
    assert rec.snapshots[-1].rows[0].stats.logged_iters == 11


# -------------------------------------------------------------------- remote


def test_a_remote_jobs_err_joins_its_out(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path_factory.mktemp("bin") / "fake-ssh"  # ssh that runs the script here (as in test_remote)
    script.write_text("#!/bin/sh\nexec sh -s\n")
    script.chmod(0o755)
    monkeypatch.setattr(sshtail, "SSH", str(script))
    monkeypatch.delenv(sshtail.ENV_OPTIONS, raising=False)
    monkeypatch.setattr(sshtail, "RESCAN", 0.5)  # new files are looked for every 10 s by default
    out = write_log(tmp_path / "x-9.out", range(0, 30, 10))
    rec = Recorder()
    watcher = Watcher([Path(f"me@fake:{tmp_path}")], RunOptions(), Names(), rec, network_poll=0.1)
    watcher.start()
    try:
        rec.wait(one_row(20))
        write_log(tmp_path / "x-9.err", range(0, 60, 10))
        rec.wait(lambda s: one_row(50)(s) and len(s.rows[0].sources) == 2)
        assert_one_steady_run(rec, f"me@fake:{out}")
    finally:
        watcher.stop()


def test_a_run_says_its_log_was_deleted_only_when_all_its_files_are_gone(
    tmp_path: Path, watch: Callable[[], Recorder]
) -> None:
    write_log(tmp_path / "train.log.1", range(0, 30, 10), mtime=1_000)  # read into train.log's run
    log = write_log(tmp_path / "train.log", range(30, 60, 10), mtime=2_000)
    out = write_log(tmp_path / "job.out", range(0, 30, 10))
    err = write_log(tmp_path / "job.err", range(0, 30, 10))
    rec = watch()
    rec.wait(lambda s: len(s.rows) == 2)
    err.unlink()
    log.unlink()

    def flagged(s: Snapshot) -> bool:
        return any("deleted" in w for r in s.rows if r.key == str(log) for w in r.stats.warnings)

    snapshot = rec.wait(flagged)
    (job,) = (r for r in snapshot.rows if r.key == str(out))
    assert not job.stats.warnings  # its .out is still there
    out.unlink()
    rec.wait(lambda s: flagged(s) and all(r.stats.warnings for r in s.rows))
