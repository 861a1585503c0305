"""Watched trees that fight back: symlink loops and 10,000 files."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_OK, main
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.core.stats import RunStats
from trainwatch.ingest.discover import discover
from trainwatch.ingest.source import LogSource

from . import helpers
from .helpers import deadline, scale

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
    with deadline(5.0, "discovery in a tree with symlink loops"):  # a followed loop never ends
        found, _ = discover([tmp_path, tmp_path / "a" / "b" / "up"])
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
    from trainwatch.ingest.watcher import Watcher

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
    from trainwatch.ingest.watcher import Watcher

    count = 10_000
    many_files(tmp_path, count)
    with deadline(10.0, "discovery of 10,000 files"):  # ~0.4 s here; a hang guard
        found, problems = discover([tmp_path])
    assert len(found) == count and not problems

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


def _reference_name(row: RunRow, rows: list[RunRow]) -> str:
    """The name ``rows.disambiguate`` gave a row (commit fcec1a4): plain, and quadratic."""
    twins = [r for r in rows if r.name == row.name]
    if len(twins) == 1:
        return row.name
    ids = [r.stats.run_id for r in twins]
    if row.stats.run_id and ids.count(row.stats.run_id) == 1:
        return f"{row.name} · {row.stats.run_id}"
    parts = Path(row.path).parts
    others = [Path(r.path).parts for r in twins if r is not row]
    for depth in range(1, len(parts) + 1):
        tail = parts[-depth:]
        if all(tuple(o[-depth:]) != tail for o in others):
            shown = tail[:-1] if depth > 1 and all(o[-1] == parts[-1] for o in others) else tail
            return f"{row.name} · {'/'.join(shown)}"
    return f"{row.name} · {row.path}"


def test_many_same_named_runs(tmp_path: Path) -> None:
    """Every job folder has its train.log: telling 4,000 same-named runs apart
    was quadratic (20 s per snapshot of 10,000 runs, and the app republishes
    every second). The names must stay exactly what they were."""
    from dataclasses import replace

    from trainwatch.core.rows import disambiguate

    template = _row_stats()
    rows = []
    for i in range(4_000):
        run_id = f"run{i % 7}" if i % 3 == 0 else (f"unique{i}" if i % 5 == 0 else None)
        path = f"/scratch/{['a', 'b'][i % 2]}/job{i // 40:03d}/{['train', 'eval'][i % 2]}/rank{i % 20}.log"
        name = ["rank", "Qwen3", "out"][i % 3]
        rows.append(RunRow(name, path, "nanogpt_stdout", replace(template, run_id=run_id)))
    rows.append(RunRow("solo", "/x/solo.log", "nanogpt_stdout", template))
    rows.append(RunRow("rank", "/scratch/a/job000/train/rank0.log", "nanogpt_stdout", template))  # a true duplicate
    # ~0.07 s here; the quadratic naming took ~3 s for these rows. A hang guard.
    with deadline(2.0, f"naming {len(rows)} runs"):
        names = [row.name for row in disambiguate(rows)]
    sample = [*range(0, len(rows), 97), len(rows) - 2, len(rows) - 1, 0]
    assert [names[i] for i in sample] == [_reference_name(rows[i], rows) for i in sample]
    assert names[-1] == names[0] == "rank · /scratch/a/job000/train/rank0.log"  # the same path twice


def _row_stats() -> RunStats:
    path_stats = LogSource(Path(__file__))
    return path_stats.agg.stats()
