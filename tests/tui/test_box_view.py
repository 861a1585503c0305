"""The machine around a run on screen: ``exited``, the Process and GPUs boxes, the GPU columns.

The seed runs of ``conftest`` get facts as ``system.probe`` would give them
(a torchrun launcher with two workers on two A100s; a writer that is gone),
so the screens are deterministic. SVGs: ``--snapshot-update``, then look.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from trainwatch.core.box import Gpu, Writer
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.tui import boxview, cells
from trainwatch.tui.alerts import status_alerts

from .conftest import NOW, AppMaker
from .test_snapshots import SIZES, _settle

SnapCompare = Callable[..., bool]
QWEN, GPT2 = "Qwen3 1.8B Optimal", "GPT-2 1.36B"


def _history(base: float, wobble: tuple[float, ...]) -> tuple[tuple[float, float], ...]:
    start = NOW.timestamp() - 5 * 24
    return tuple((start + 5 * k, min(100.0, base + wobble[k % len(wobble)])) for k in range(24))


WRITER = Writer(
    pid=48213,
    alive=True,
    cmdline="torchrun --standalone --nproc_per_node 2 train.py config/qwen3_1b8.py",
    started_at=NOW - timedelta(hours=9, minutes=12),
    how="holds the log open for writing",
    pids=(48213, 48240, 48241),
    user="falcon",
    cpu_pct=198.0,
    rss_bytes=int(11.4 * 2**30),
)
DIPS = (_history(90, (6, 8, 4, 9, -60, -25, 2, 7)), _history(88, (9, 3, 7, 5, -55, -30, 8, 6)))  # a starved loader
GPUS = (
    Gpu(0, "NVIDIA RTX A6000", 98.0, 44_870.0, 49_140.0, 291.0, 300.0, 79.0, 44_300.0, DIPS[0]),
    Gpu(1, "NVIDIA RTX A6000", 96.0, 44_912.0, 49_140.0, 287.0, 300.0, 77.0, 44_350.0, DIPS[1]),
)


def _with_box(snapshot: Snapshot) -> Snapshot:
    rows = []
    for row in snapshot.rows:
        if row.name == QWEN:
            row = dataclasses.replace(row, stats=dataclasses.replace(row.stats, process=WRITER, gpus=GPUS))
        elif row.name == GPT2:
            gone = dataclasses.replace(WRITER, pid=47001, alive=False, cmdline="python train.py", pids=(47001,))
            stats = dataclasses.replace(row.stats, status="exited", process=gone, eta_s=None, finish_at=None)
            row = dataclasses.replace(row, stats=stats)
        rows.append(row)
    return dataclasses.replace(snapshot, rows=tuple(rows))


def _row(snapshot: Snapshot, name: str) -> RunRow:
    return next(r for r in snapshot.rows if r.name == name)


def test_exited_reads_without_colour_and_alerts_once(live_snapshot: Snapshot) -> None:
    boxed = _with_box(live_snapshot)
    assert cells.status_text(_row(boxed, GPT2).stats, NOW) == "○ exited"
    alerts = status_alerts(live_snapshot, boxed)
    assert [(a.status, a.severity) for a in alerts] == [("exited", "error")]
    assert alerts[0].message.startswith("GPT-2 1.36B exited: its process (PID 47001) is gone")
    assert status_alerts(boxed, boxed) == []


def test_gpu_columns_only_when_some_run_has_gpus(live_snapshot: Snapshot) -> None:
    layout, _ = cells.fit(live_snapshot.rows, 200, NOW)
    assert "gpu_util" not in layout.columns and "gpu_mem" not in layout.columns
    boxed = _with_box(live_snapshot)
    layout, _ = cells.fit(boxed.rows, 200, NOW)
    assert {"gpu_util", "gpu_mem"} <= set(layout.columns)
    shown = cells.row_cells(_row(boxed, QWEN), layout, NOW, marked=False)
    assert (shown["gpu_util"].plain, shown["gpu_mem"].plain) == ("2×97%", "88/96G")
    other = cells.row_cells(_row(boxed, GPT2), layout, NOW, marked=False)
    assert other["gpu_util"].plain == "—"
    narrow, _ = cells.fit(boxed.rows, 80, NOW)
    assert "gpu_mem" not in narrow.columns  # the first to go at 80 columns


def test_process_box_text(live_snapshot: Snapshot) -> None:
    facts = dict(boxview.process_facts(_row(_with_box(live_snapshot), QWEN).stats, NOW))
    assert str(facts["PID"]) == "48213  alive  +2 processes"
    assert str(facts["command"]) == WRITER.cmdline
    assert facts["started"] == "02:52, 9h 12m ago"
    assert facts["CPU"] == "198 % of a core"
    assert facts["memory"] == "11.4 GiB resident"
    gone = dict(boxview.process_facts(_row(_with_box(live_snapshot), GPT2).stats, NOW))
    assert str(gone["PID"]) == "47001  gone"


async def test_detail_shows_the_boxes_only_with_facts(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(_with_box(live_snapshot))
    async with app.run_test(size=(160, 48)) as pilot:
        await _settle(pilot)
        table = app.screen.query_one("RunsTable")
        for name, box, gpus in ((QWEN, True, True), (GPT2, True, False), ("LLaMA 2 1.36B", False, False)):
            table.move_cursor(table.get_row_index(_row(app.snapshot, name).key))  # type: ignore[attr-defined, arg-type]
            await pilot.press("enter")
            await _settle(pilot)
            assert app.screen.query_one("#box").display is box, name
            assert app.screen.query_one("#facts-gpus", Static).display is gpus, name
            await pilot.press("escape")
            await _settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_detail_with_process_and_gpus(
    snap_compare: SnapCompare, make_app: AppMaker, live_snapshot: Snapshot, size: tuple[int, int]
) -> None:
    app, _ = make_app(_with_box(live_snapshot))

    async def run_before(pilot: Pilot[int]) -> None:
        await _settle(pilot)
        table = app.screen.query_one("RunsTable")
        table.move_cursor(table.get_row_index(_row(_with_box(live_snapshot), QWEN).key))  # type: ignore[attr-defined]
        await pilot.press("enter")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_main_with_gpu_columns_and_an_exited_run(
    snap_compare: SnapCompare, make_app: AppMaker, live_snapshot: Snapshot
) -> None:
    app, _ = make_app(_with_box(live_snapshot))
    assert snap_compare(app, terminal_size=(160, 48), run_before=_settle)


def test_utilisation_sparkline_has_a_fixed_scale() -> None:
    """An idle GPU looks idle (not scaled up to fill the height); only the last samples show."""
    history = tuple((float(t), u) for t, u in enumerate([0.0, 4.0, 50.0, 97.0, 100.0, 12.5]))
    assert boxview.util_spark(history) == "▁▁▅██▂"
    assert boxview.util_spark(history, width=2) == "█▂"
