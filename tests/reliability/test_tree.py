"""Watched trees that fight back: symlink loops and 10,000 files."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_OK, main
from trainwatch.names import Names
from trainwatch.snapshot import Snapshot
from trainwatch.source import RunOptions, discover

from . import helpers
from .helpers import scale

LINE = "iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n"
TIMEOUT = 60.0


def loopy_tree(root: Path) -> Path:
    """Two real logs among symlink loops of every kind; returns the real log."""
    (root / "a" / "b").mkdir(parents=True)
    log = root / "a" / "b" / "train.log"
    log.write_text("".join(LINE.format(i=i) for i in range(1, 11)))
    (root / "other.log").write_text("".join(LINE.format(i=i) for i in range(1, 6)))
    (root / "a" / "b" / "up").symlink_to("../..")  # a folder that contains itself
    (root / "a" / "self").symlink_to("self")  # ELOOP
    (root / "x.log").symlink_to("y.log")  # two links pointing at each other
    (root / "y.log").symlink_to("x.log")
    (root / "dangling.log").symlink_to("nowhere.log")
    (root / "alias.log").symlink_to(log)  # the same run by another name
    return log


def test_discovery_does_not_follow_loops(tmp_path: Path) -> None:
    log = loopy_tree(tmp_path)
    start = time.monotonic()
    found, _ = discover([tmp_path, tmp_path / "a" / "b" / "up"])
    assert time.monotonic() - start < 5
    real = {os.path.realpath(p) for p in found}
    assert str(log.resolve()) in real and str((tmp_path / "other.log").resolve()) in real
    assert len(found) == len(real)  # each file once, however many ways it is reached


def test_snapshot_of_a_loopy_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    loopy_tree(tmp_path)
    assert main(["snapshot", str(tmp_path), "-f", "json"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert out.count('"format": "nanogpt_stdout"') == 2


class Recorder:
    def __init__(self) -> None:
        self.last: Snapshot | None = None
        self.cond = threading.Condition()

    def __call__(self, snapshot: Snapshot) -> None:
        with self.cond:
            self.last = snapshot
            self.cond.notify_all()

    def wait(self, rows: int) -> Snapshot:
        with self.cond:
            ok = self.cond.wait_for(lambda: self.last is not None and len(self.last.rows) >= rows, TIMEOUT)
            assert ok and self.last is not None, f"never {rows} rows: {self.last and len(self.last.rows)}"
            return self.last


def test_watcher_on_a_loopy_tree(tmp_path: Path) -> None:
    from trainwatch.watch import Watcher

    log = loopy_tree(tmp_path)
    recorder = Recorder()
    watcher = Watcher([tmp_path], RunOptions(), Names(), recorder)
    watcher.start()
    try:
        snapshot = recorder.wait(2)
        assert sorted(r.stats.iter for r in snapshot.rows) == [5, 10]
        with open(log, "a") as handle:
            handle.write(LINE.format(i=11))
        with recorder.cond:
            assert recorder.cond.wait_for(
                lambda: recorder.last is not None and sorted(r.stats.iter for r in recorder.last.rows) == [5, 11],
                TIMEOUT,
            )
    finally:
        watcher.stop()


def many_files(root: Path, count: int) -> None:
    per_folder = 100
    for index in range(count):
        folder = root / f"job{index // per_folder:04d}"
        if index % per_folder == 0:
            folder.mkdir()
        (folder / f"rank{index % per_folder}.log").write_text(LINE.format(i=index + 1))


def test_ten_thousand_files(tmp_path: Path) -> None:
    """Discovery of 10,000 logs is quick; the watcher shows all of them (2,000
    at CI size: reading them is what costs) and then still notices a change."""
    from trainwatch.watch import Watcher

    count = 10_000
    many_files(tmp_path, count)
    start = time.monotonic()
    found, problems = discover([tmp_path])
    assert len(found) == count and not problems
    assert time.monotonic() - start < 5, "discovery of 10,000 files took over 5 s"

    watched = tmp_path if helpers.FULL else tmp_path / "watched"
    if not helpers.FULL:
        watched.mkdir()
        for folder in sorted(tmp_path.glob("job*"))[: scale(20, 100)]:
            folder.rename(watched / folder.name)
    count = len(discover([watched])[0])
    recorder = Recorder()
    watcher = Watcher([watched], RunOptions(), Names(), recorder)
    watcher.start()
    try:
        recorder.wait(count)
        target = watched / "job0012" / "rank7.log"
        with open(target, "a") as handle:
            handle.write(LINE.format(i=99_999))
        with recorder.cond:
            assert recorder.cond.wait_for(
                lambda: (
                    recorder.last is not None
                    and any(r.key == str(target) and r.stats.iter == 99_999 for r in recorder.last.rows)
                ),
                TIMEOUT,
            )
    finally:
        watcher.stop()


@pytest.mark.slow
def test_snapshot_cli_on_ten_thousand_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    many_files(tmp_path, 10_000)
    assert main(["snapshot", str(tmp_path), "-f", "csv"]) == EXIT_OK
    assert capsys.readouterr().out.count("\n") == 10_001
