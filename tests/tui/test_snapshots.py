"""SVG snapshots of every screen at 80×24, 120×36 and 200×50 (fixed clock, fixed runs).

The runs are the seed-like ones the tests write (``seedruns``), so these
snapshots are the same with or without ``../shared/corpus``.

Regenerate with ``pytest tests/tui/test_snapshots.py --snapshot-update`` and
look at the SVGs in ``__snapshots__`` before committing them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from trainwatch.core.rows import Snapshot

from .conftest import AppMaker

SnapCompare = Callable[..., bool]
SIZES = [(80, 24), (120, 36), (200, 50)]


async def _settle(pilot: Pilot[int]) -> None:
    """Let every pending hop finish: the source's first publish arrives after
    a refresh, and charts mount after another. A fixed handful of pauses was
    not enough on a loaded machine, so drain workers, animations and the
    message queue a generous number of times."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.wait_for_scheduled_animations()
        for _ in range(10):
            await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main(snap_compare: SnapCompare, make_app: AppMaker, live_snapshot: Snapshot, size: tuple[int, int]) -> None:
    app, _ = make_app(live_snapshot)

    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        await pilot.press("down", "down", "down")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_main_sorted_and_marked(snap_compare: SnapCompare, make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)

    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        table = app.screen.query_one("RunsTable")
        table.set_sort("eta", reverse=True)  # type: ignore[attr-defined]
        await pilot.press("space", "down", "space")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=(120, 36), run_before=run_before)


def test_smoothed_log_loss_and_problems_only(
    snap_compare: SnapCompare, make_app: AppMaker, live_snapshot: Snapshot
) -> None:
    app, _ = make_app(live_snapshot)

    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        await pilot.press("z", "z", "l", "p")  # EMA 0.9, log scale, only the stalled run
        await _settle(pilot)
        app.clear_notifications()
        await _settle(pilot)

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_no_runs_says_why(snap_compare: SnapCompare, make_app: AppMaker, live_snapshot: Snapshot) -> None:
    empty = dataclasses.replace(live_snapshot, rows=(), unrecognised=(("/runs/model.bin", "binary file"),))
    app, _ = make_app(empty, where="/runs/model.bin")

    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_loading(snap_compare: SnapCompare, make_app: AppMaker) -> None:
    app, _ = make_app(None)
    assert snap_compare(app, terminal_size=(80, 24), run_before=_settle)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_detail(snap_compare: SnapCompare, make_app: AppMaker, live_snapshot: Snapshot, size: tuple[int, int]) -> None:
    app, _ = make_app(live_snapshot)

    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        await pilot.press("down", "down", "down", "enter")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_compare(snap_compare: SnapCompare, make_app: AppMaker, live_snapshot: Snapshot, size: tuple[int, int]) -> None:
    app, _ = make_app(live_snapshot)

    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        await pilot.press("down", "space", "down", "space", "down", "space", "c")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_help(snap_compare: SnapCompare, make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)

    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        await pilot.press("question_mark")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
