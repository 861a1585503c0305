"""Exports onto a full disk and into a read-only place.

A real tmpfs of 64 KB (mounted by the test, which runs as root in CI) plays
the full disk and the read-only file system. Where mounting is not allowed,
the same faults are injected instead: ``fsync`` failing with ENOSPC (as it
does on a full NFS mount) and ``mkstemp`` failing with EROFS. Each test's
docstring says which it got (``FAULT.kind``). Either way: one line on stderr
(or one notification in the app), the previous export intact, no temporary
file left behind.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from trainwatch.cli import EXIT_USAGE, main
from trainwatch.core.rows import Snapshot
from trainwatch.outputs import writing


@dataclass
class Fault:
    kind: str  # "tmpfs" or "injected"
    folder: Path


def _mount(folder: Path, options: str) -> bool:
    """Mount a tmpfs on ``folder``; ``False`` where not allowed (or
    ``TRAINWATCH_TEST_NO_MOUNT=1``, to exercise the injected faults)."""
    if os.geteuid() != 0 or os.environ.get("TRAINWATCH_TEST_NO_MOUNT"):
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, timeout=30
    )
    return result.returncode == 0


def _umount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fault]:
    """A folder with an old export in it and no space left."""
    folder = tmp_path / "full"
    folder.mkdir()
    if _mount(folder, "size=64k"):
        try:
            (folder / "out.json").write_text('{"old": true}\n')
            fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
            try:  # fill it up, to the last byte
                while os.write(fd, b"x" * 512):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(fd)
            yield Fault("tmpfs", folder)
        finally:
            _umount(folder)
        return
    (folder / "out.json").write_text('{"old": true}\n')

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writing.os, "fsync", no_space)
    yield Fault("injected", folder)


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fault]:
    folder = tmp_path / "ro"
    folder.mkdir()
    if _mount(folder, "size=64k"):
        try:
            (folder / "out.json").write_text('{"old": true}\n')
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True, timeout=30)
            yield Fault("tmpfs", folder)
        finally:
            _umount(folder)
        return
    (folder / "out.json").write_text('{"old": true}\n')

    def erofs(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))

    monkeypatch.setattr(writing.tempfile, "mkstemp", erofs)
    yield Fault("injected", folder)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("out.json", "filler"))


@pytest.mark.parametrize("kind", ["json", "csv", "md", "html", "table"])
def test_snapshot_onto_a_full_disk(
    kind: str, full_disk: Fault, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = full_disk.folder / "out.json"
    status = main(["snapshot", str(corpus / "llm_tii_json"), "-f", kind, "-o", str(target)])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE, err
    assert err == f"trainwatch: cannot write {target}: No space left on device\n", full_disk.kind
    assert target.read_text() == '{"old": true}\n'  # the previous export is intact
    assert leftovers(full_disk.folder) == []


def test_snapshot_into_a_read_only_place(read_only: Fault, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = read_only.folder / "out.json"
    status = main(["snapshot", str(corpus / "llm_tii_json"), "-f", "json", "-o", str(target)])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert err == f"trainwatch: cannot write {target}: Read-only file system\n", read_only.kind
    assert target.read_text() == '{"old": true}\n'


@pytest.mark.parametrize("where", ["missing/out.json", "a-file/out.json"])
def test_snapshot_into_a_folder_that_is_not_there(
    where: str, tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    target = tmp_path / where
    assert main(["snapshot", str(corpus / "llm_tii_json"), "-o", str(target)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"trainwatch: cannot write {target}: ") and err.count("\n") == 1


# ------------------------------------------------------------------- app


class FakeSource:
    mode = "inotify"
    network_paths: ClassVar[list[Path]] = []

    def __init__(self, publish: Callable[[Snapshot], None], first: Snapshot) -> None:
        self.publish, self.first = publish, first

    def start(self) -> None:
        self.publish(self.first)

    def stop(self) -> None: ...
    def refresh_now(self) -> None: ...
    def set_target(self, target: int | None) -> None: ...


def corpus_snapshot(corpus: Path) -> Snapshot:
    from trainwatch.core.names import Names
    from trainwatch.ingest.publish import build
    from trainwatch.ingest.source import LogSource

    sources = []
    for path in sorted((corpus / "llm_tii_json").glob("run_2025111*.json")):
        source = LogSource(path)
        source.refresh()
        sources.append(source)
    return build(sources, Names(), __import__("datetime").datetime(2025, 11, 20))


@pytest.mark.parametrize("fault", ["full_disk", "read_only"])
async def test_app_export_fault_is_one_notification(fault: str, corpus: Path, request: pytest.FixtureRequest) -> None:
    from trainwatch.tui.app import TrainwatchApp
    from trainwatch.tui.runs_table import RunsTable

    place: Fault = request.getfixturevalue(fault)
    snapshot = corpus_snapshot(corpus)
    app = TrainwatchApp(lambda publish: FakeSource(publish, snapshot), export_dir=place.folder)
    async with app.run_test(size=(160, 40)) as pilot:
        for _ in range(3):
            await pilot.pause()
        assert app.screen.query_one(RunsTable).row_count == len(snapshot.rows)
        await pilot.press("e")
        await app.workers.wait_for_complete()
        for _ in range(3):
            await pilot.pause()
        messages = [str(n.message) for n in app._notifications]
    errors = [m for m in messages if m.startswith("export failed")]
    reason = "No space left on device" if fault == "full_disk" else "Read-only file system"
    assert len(errors) == 1 and reason in errors[0], (place.kind, messages)
    assert app.exported == []
    assert (place.folder / "out.json").read_text() == '{"old": true}\n'
    assert leftovers(place.folder) == []
