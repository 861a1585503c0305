"""Fixtures for the app tests: four seed-like runs as they would look while live.

The runs are written by the tests (``seedruns``: the seed's JSON format and
the four seed runs' shapes), so the app is tested the same way on a fresh
clone without ``../shared/corpus``. To show every status at one fixed
moment, three of them stop at an earlier iteration (as the log stood then)
with their timestamps moved so that that point falls just before ``NOW``;
the fourth is finished. Every figure then comes from the real pipeline
(``LogSource`` → ``publish.build``) with a fixed clock, so screens and SVG
snapshots are deterministic.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.names import Names
from trainwatch.core.rows import Snapshot
from trainwatch.ingest.publish import build
from trainwatch.ingest.source import LogSource
from trainwatch.parsers import llm_tii_json

from . import seedruns

if TYPE_CHECKING:
    from trainwatch.tui.app import TrainwatchApp

NOW = datetime(2025, 11, 14, 12, 4, 31)
NAMES = Names(
    {
        "run_20251113_225009": "Qwen3 1.8B Optimal",
        "run_20251113_095419": "GPT-2 1.36B",
        "run_20251112_122613": "LLaMA 3 2.2B",
        "run_20251110_174040": "LLaMA 2 1.36B",
    }
)
# run id -> (cut at iteration, seconds between its last progress and NOW); None: as logged.
LIVE: dict[str, tuple[int, float] | None] = {
    "run_20251113_225009": (1230, 20.0),
    "run_20251113_095419": (1610, 5.0),
    "run_20251112_122613": (520, 50 * 60.0),
    "run_20251110_174040": None,
}


def _shift(node: Any, by: timedelta) -> Any:
    if isinstance(node, dict):
        return {
            k: (datetime.fromisoformat(v) + by).isoformat()
            if k in ("start_time", "end_time", "timestamp") and isinstance(v, str)
            else _shift(v, by)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_shift(v, by) for v in node]
    return node


def write_live_copy(run_id: str, dst: Path, upto: int, lag_s: float, now: datetime = NOW) -> None:
    """Run ``run_id`` as it stood at iteration ``upto``, moved so that was ``lag_s`` before ``now``."""
    doc = seedruns.document(run_id, upto)
    agg = RunAggregator()
    agg.add_all(llm_tii_json.parse_document(orjson.dumps(doc)) or [])
    anchor = agg.stats(now).last_update_at
    assert anchor is not None
    by = now - timedelta(seconds=lag_s) - anchor
    dst.write_bytes(orjson.dumps(_shift(doc, by), option=orjson.OPT_INDENT_2))
    stamp = (anchor + by).timestamp()
    os.utime(dst, (stamp, stamp))


@pytest.fixture(scope="session")
def live_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    for run_id, cut in LIVE.items():
        dst = folder / f"{run_id}.json"
        if cut is None:
            doc = seedruns.document(run_id)
            dst.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
            end = datetime.fromisoformat(doc["end_time"]).timestamp()
            os.utime(dst, (end, end))
        else:
            write_live_copy(run_id, dst, *cut)
    return folder


@pytest.fixture(scope="session")
def snapshot_at(live_dir: Path) -> Callable[[datetime], Snapshot]:
    """Snapshot of the live folder as of a moment (fresh sources each time)."""

    def make(now: datetime = NOW) -> Snapshot:
        sources = []
        for path in sorted(live_dir.iterdir()):
            source = LogSource(path)
            source.refresh()
            sources.append(source)
        return build(sources, NAMES, now)

    return make


@pytest.fixture(scope="session")
def live_snapshot(snapshot_at: Callable[[datetime], Snapshot]) -> Snapshot:
    return snapshot_at(NOW)


class FakeSource:
    """Stands in for ``trainwatch.ingest.watcher.Watcher``: the test publishes snapshots."""

    mode = "inotify"
    network_paths: ClassVar[list[Path]] = []

    def __init__(self, publish: Callable[[Snapshot], None], first: Snapshot | None = None) -> None:
        self.publish = publish
        self.first = first
        self.started = self.stopped = False
        self.targets: list[int | None] = []
        self.refreshes = 0

    def start(self) -> None:
        self.started = True
        if self.first is not None:
            self.publish(self.first)

    def stop(self) -> None:
        self.stopped = True

    def refresh_now(self) -> None:
        self.refreshes += 1

    def set_target(self, target: int | None) -> None:
        self.targets.append(target)


AppMaker = Callable[..., tuple["TrainwatchApp", list[FakeSource]]]


@pytest.fixture
def make_app() -> AppMaker:
    """``make_app(first_snapshot, **app_kwargs)`` → (app, [the fake source once created])."""
    from trainwatch.tui.app import TrainwatchApp

    def make(first: Snapshot | None, **kwargs: Any) -> tuple[TrainwatchApp, list[FakeSource]]:
        sources: list[FakeSource] = []

        def factory(publish: Callable[[Snapshot], None]) -> FakeSource:
            sources.append(FakeSource(publish, first))
            return sources[-1]

        kwargs.setdefault("where", "~/runs")
        kwargs.setdefault("clock", lambda: NOW)
        return TrainwatchApp(factory, **kwargs), sources

    return make
