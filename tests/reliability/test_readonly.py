"""trainwatch never changes what it watches, and its exports are atomic.

The watched tree's state, every file and folder: bytes, size, mtime, ctime,
inode, mode, and each folder's listing (atime is left out: reading is allowed
to touch it, where the mount records it at all). It must be identical after
``trainwatch snapshot`` in every format and after a session of the app with
the real ``Watcher`` (keys pressed, detail opened, an export written).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import Snapshot
from trainwatch.outputs.export import render, write_atomic

State = dict[str, tuple[object, ...]]

CORPUS_PICKS = (
    "llm_tii_json/run_20251113_225009.json",
    "llm_tii_json/run_20251110_174040.json",
    "nanogpt_stdout/nanogpt_shakespeare_char_termux_cpu_nan_450iters_train.log",
    "hf_trainer_state/cpt_5490steps_eval_rouge_predict_trainer_state.json",
    "lightning_csv/slm_wikitext103_partial_32049steps_stepcols_only_metrics.csv",
    "llamafactory_jsonl/sunxiaochuan_predict_only_250steps_trainer_log.jsonl",
)


def tree_state(root: Path) -> State:
    state: State = {}
    for folder, dirs, files in os.walk(root):
        st = os.stat(folder)
        state[folder] = ("dir", tuple(sorted(dirs + files)), st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
        for name in files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if os.path.isfile(path) else None
            state[path] = ("file", digest, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)
    return state


@pytest.fixture
def watched(corpus: Path, tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for pick in CORPUS_PICKS:
        target = root / pick
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(corpus / pick, target)
    (root / "notes.txt").write_text("not a log\n")
    (root / "sub" / "empty.log").parent.mkdir()
    (root / "sub" / "empty.log").write_text("")
    return root


@pytest.mark.parametrize("kind", ["table", "json", "md", "csv", "html"])
def test_snapshot_leaves_the_tree_alone(kind: str, watched: Path) -> None:
    before = tree_state(watched)
    result = subprocess.run(
        [sys.executable, "-m", "trainwatch", "snapshot", str(watched), "-f", kind],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=watched,  # even run from inside the watched folder
    )
    assert result.returncode == 0, result.stderr
    assert tree_state(watched) == before


async def test_app_session_leaves_the_tree_alone(
    watched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Watcher, started from inside the watched folder: the export key
    writes to ~/trainwatch-exports, not beside the logs."""
    from trainwatch.ingest.watcher import Watcher
    from trainwatch.tui.app import EXPORT_FALLBACK, TrainwatchApp
    from trainwatch.tui.runs_table import RunsTable

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(watched)
    before = tree_state(watched)

    def factory(publish):  # type: ignore[no-untyped-def]
        return Watcher([watched], RunOptions(), Names(), publish)

    app = TrainwatchApp(factory, watched=[watched])
    assert app.export_dir == home / EXPORT_FALLBACK
    async with app.run_test(size=(200, 50)) as pilot:
        table = app.screen.query_one(RunsTable)
        for _ in range(400):  # the watcher reads in the background: wait for every run
            await pilot.pause(0.05)
            if table.row_count >= 6:
                break
        assert table.row_count >= 6
        await pilot.press("down", "enter")
        await pilot.pause(0.2)
        await pilot.press("escape", "e")
        await app.workers.wait_for_complete()
        await pilot.pause(0.2)
    assert app.exported and all(p.parent == home / EXPORT_FALLBACK for p in app.exported)
    assert tree_state(watched) == before


def test_export_from_elsewhere_goes_to_the_current_folder(watched: Path, tmp_path: Path) -> None:
    from trainwatch.tui.app import default_export_dir

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert default_export_dir([watched], elsewhere, tmp_path / "home") == elsewhere.resolve()
    assert default_export_dir([watched / "sub" / "empty.log"], watched / "sub", tmp_path / "home") == (
        tmp_path / "home" / "trainwatch-exports"
    )


def test_exports_are_atomic(tmp_path: Path, corpus: Path) -> None:
    """A reader polling the export while it is rewritten 200 times only ever
    sees a whole file, old or new; no temporary file is left behind."""
    from trainwatch.ingest.publish import build
    from trainwatch.ingest.source import LogSource

    sources = []
    for path in sorted((corpus / "llm_tii_json").glob("run_2025111*.json")):
        source = LogSource(path)
        source.refresh()
        sources.append(source)
    snapshot = build(sources, Names(), __import__("datetime").datetime(2025, 11, 20))
    texts = [render(Snapshot(snapshot.generated_at, snapshot.rows[: 1 + i % 4]), "json") for i in range(4)]
    target = tmp_path / "out.json"
    write_atomic(target, texts[0])
    stop = threading.Event()
    seen: list[int] = []
    torn: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            text = target.read_text()
            try:
                seen.append(len(json.loads(text)["runs"]))
            except ValueError:
                torn.append(text[-80:])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(200):
            write_atomic(target, texts[i % 4])
    finally:
        stop.set()
        thread.join()
    assert not torn and len(seen) > 10
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
