"""The app with the real Watcher while its logs are made unreadable, replaced
by a folder and deleted: one notification per problem, the run keeps its last
figures (flagged), and reading resumes with nothing lost or counted twice.

Unreadable: the tests run as root, which reads through permission bits, so
``chmod 000`` alone changes nothing here; ``trainwatch.ingest.source.open_regular`` is
monkeypatched to raise ``PermissionError`` for that file while it is
"unreadable" (the real-permission case, as ``nobody``, is in
``test_torture.py`` for ``LogSource``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions

LINE = "iter {i}: loss 2.0, time 100.00ms, mfu 10.00%\n"


def lines(first: int, last: int) -> str:
    return "".join(LINE.format(i=i) for i in range(first, last + 1))


async def until(pilot: Pilot[int], condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out: {what}")


async def test_unreadable_replaced_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainwatch.ingest.watcher import Watcher
    from trainwatch.tui.app import TrainwatchApp

    path = tmp_path / "train.log"
    path.write_text(lines(1, 50))
    locked: set[str] = set()
    from trainwatch.ingest import files

    real_open = files.open_regular

    def guarded_open(file: Any) -> Any:
        if str(file) in locked:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file)

    monkeypatch.setattr("trainwatch.ingest.source.open_regular", guarded_open)
    app = TrainwatchApp(lambda publish: Watcher([tmp_path], RunOptions(), Names(), publish), watched=[tmp_path])

    def row() -> Any:
        snapshot = app.snapshot
        return next((r for r in snapshot.rows if r.key == str(path)), None) if snapshot else None

    def notes() -> list[str]:
        return [str(n.message) for n in app._notifications]

    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: row() is not None and row().stats.iter == 50, "the first read")

        locked.add(str(path))
        with open(path, "a") as handle:
            handle.write(lines(51, 60))
        await until(pilot, lambda: any("Permission denied" in n for n in notes()), "the unreadable notice")
        assert row().stats.iter == 50 and any("cannot be read" in w for w in row().stats.warnings)
        locked.clear()
        with open(path, "a") as handle:
            handle.write(lines(61, 70))
        await until(pilot, lambda: row().stats.iter == 70, "reading again")
        assert (row().stats.logged_iters, row().stats.segments) == (70, 1)
        assert not any("cannot be read" in w for w in row().stats.warnings)

        path.unlink()
        path.mkdir()
        await until(pilot, lambda: any("not a regular file" in n for n in notes()), "the folder notice")
        assert row().stats.iter == 70
        path.rmdir()
        path.write_text(lines(71, 80))
        await until(pilot, lambda: row() is not None and row().stats.iter == 80, "the file back")
        assert (row().stats.logged_iters, row().stats.segments) == (80, 1)

        path.unlink()
        await until(pilot, lambda: any("deleted" in w for w in row().stats.warnings), "the deletion flag")
        assert row().stats.iter == 80  # its last figures stay
    notices = notes()
    assert sum("Permission denied" in n for n in notices) == 1  # once, not per refresh
    assert all("\n" not in n for n in notices)
