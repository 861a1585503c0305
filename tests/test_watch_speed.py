"""The watcher gets out of the way: of the app's first frame, and of a document's rewrite.

* ``Watcher.hold_until``: while the app draws its first frame, the first read
  publishes what it read in FIRST_FRAME_READ_S and waits for the frame.
* A document met mid-rewrite (truncated, half written) is read again at the
  next event, without waiting out MIN_PASS_INTERVAL.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import Snapshot
from trainwatch.ingest import watcher as watch
from trainwatch.ingest.watcher import Watcher

LINE = "iter {k}: loss 2.5000, time 100.00ms, mfu 10.00%\n"


class Latest:
    def __init__(self) -> None:
        self.rows: list[int] = []
        self.iters: list[int | None] = []
        self.changed = threading.Event()

    def __call__(self, snapshot: Snapshot) -> None:
        self.rows.append(sum(r.stats.logged_iters > 0 for r in snapshot.rows))  # (the logs read)
        self.iters.append(snapshot.rows[0].stats.iter if snapshot.rows else None)
        self.changed.set()

    def wait(self, predicate: object, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return True
            self.changed.wait(0.01)
            self.changed.clear()
        return bool(predicate())  # type: ignore[operator]


def test_the_first_read_waits_for_the_first_frame(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in range(30):
        log = tmp_path / f"run{k:02d}" / "train.log"
        log.parent.mkdir()
        log.write_text("".join(LINE.format(k=s) for s in range(k + 1)))
    monkeypatch.setattr(watch, "FIRST_FRAME_READ_S", 0.0)  # no time to read: publish, then wait
    monkeypatch.setattr(watch, "FIRST_FRAME_WAIT_S", 60.0)
    drawn = threading.Event()
    latest = Latest()
    watcher = Watcher([tmp_path], RunOptions(), Names(), latest)
    watcher.hold_until(drawn)
    watcher.start()
    try:
        assert latest.wait(lambda: latest.rows)  # the rows found, none read yet
        time.sleep(0.3)
        assert max(latest.rows) == 0  # held: the frame is not drawn yet
        drawn.set()
        assert latest.wait(lambda: latest.rows[-1] == 30)
    finally:
        watcher.stop()


def test_a_document_met_half_written_is_read_again_at_the_next_event(tmp_path: Path) -> None:
    """The pass that meets a rewrite half written (truncated, a first piece)
    lets the next one start as soon as it took, not MIN_PASS_INTERVAL later:
    the event of the rewrite's last write is taken at once."""
    log = tmp_path / "run.json"
    doc = {"run_name": "r", "training_iterations": [{"iter": k, "loss": 2.0, "time_ms": 100.0} for k in range(200)]}
    text = json.dumps(doc, indent=2)
    log.write_text(text)
    latest = Latest()
    watcher = Watcher([tmp_path], RunOptions(), Names(), latest)
    watcher.start()
    try:
        assert latest.wait(lambda: latest.iters and latest.iters[-1] == 199)
        watcher.stop()
        assert watcher._pass_gap() == watch.MIN_PASS_INTERVAL
        log.write_text(text[:100])  # a rewrite caught half written
        key = next(iter(watcher._sources))
        watcher._refresh(key)
        assert watcher._sources[key].mid_write and watcher._mid_write
        watcher._pass_cost = 0.002
        assert watcher._pass_gap() == 0.002
        log.write_text(text)  # written whole: read, and the gap is the usual one again
        watcher._mid_write = False
        assert watcher._refresh(key) is False or not watcher._sources[key].mid_write
        assert not watcher._mid_write and watcher._pass_gap() == watch.MIN_PASS_INTERVAL
    finally:
        watcher.stop()
