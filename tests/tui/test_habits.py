"""The habits of the field, with Pilot: Ctrl-C, vim keys, status filters,
chart toggles, the log pane, a burst of keys, bad input, small terminals."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from trainwatch.core.rows import Snapshot
from trainwatch.tui.app import TrainwatchApp
from trainwatch.tui.charts import Chart
from trainwatch.tui.detail import DetailScreen
from trainwatch.tui.keybar import KeyBar
from trainwatch.tui.log_pane import LogPane
from trainwatch.tui.run_panel import RunPanel
from trainwatch.tui.runs_table import RunsTable

from .conftest import AppMaker


async def settle(pilot: Pilot[int]) -> None:
    for _ in range(4):
        await pilot.pause()


def names(app: TrainwatchApp) -> list[str]:
    table = app.screen.query_one(RunsTable)
    return [table.get_cell(key, "run").plain for key in table.row_keys]


def bar_text(app: TrainwatchApp) -> str:
    bar = app.screen.query_one(KeyBar)
    return "".join(segment.text for segment in bar.render_line(0))


async def test_ctrl_c_quits_with_the_interrupt_status(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+c")
        await settle(pilot)
    assert app.return_code == 130


async def test_q_quits_with_zero(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await settle(pilot)
    assert app.return_code == 0


async def test_vim_keys_move_the_cursor(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == 3
        await pilot.press("g")
        assert table.cursor_row == 0


async def test_status_filters_hide_finished_and_show_problems(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert names(app) == ["LLaMA 3 2.2B", "GPT-2 1.36B", "Qwen3 1.8B Optimal"]
        assert "finished hidden" in str(app.screen.query_one("#runs-box").border_subtitle)
        await pilot.press("p")
        await settle(pilot)
        assert names(app) == ["LLaMA 3 2.2B"]  # the stalled one
        await pilot.press("p")
        await settle(pilot)
        assert len(names(app)) == 4
        await pilot.press("f", "escape")  # Esc clears every filter
        await settle(pilot)
        assert len(names(app)) == 4


async def test_smoothing_and_log_scale_reach_the_charts(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        chart = app.screen.query_one("#chart-loss", Chart)
        assert chart.spec is not None and not chart.spec.y_log and len(chart.spec.traces) == 2
        await pilot.press("z", "l")
        await settle(pilot)
        spec = chart.spec
        assert spec is not None and spec.y_log and "EMA 0.6" in spec.legend
        assert len(spec.traces) == 3  # raw (faint), EMA, val
        await pilot.press("enter")
        await settle(pilot)
        detail = app.screen.query_one("#d-loss", Chart).spec
        assert detail is not None and detail.y_log  # the same options in the detail view


async def test_rate_charts_draw_a_median_over_the_raw_points(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        spec = app.screen.query_one("#chart-time", Chart).spec
        assert spec is not None
        assert [t.kind for t in spec.traces] == ["dots", "line"]
        assert spec.legend.startswith("─ median ⠂ each step")
        assert spec.title == "s/iter"


async def test_a_burst_of_keys_with_backspace_is_typed_in_order(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    """Keys that arrive in one read (a laggy ssh link) reach the app back to
    back; Textual ran Input's backspace after the next characters (#6605)."""
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        for char in "gpz\x7ft-2":
            app.post_message(events.Key("backspace" if char == "\x7f" else char, char))
        await settle(pilot)
        assert box.value == "gpt-2"
        assert names(app) == ["GPT-2 1.36B"]


async def test_plain_input_still_reorders_a_burst() -> None:
    """Canary for the workaround above: when this fails, Textual applies an
    Input's bound keys in order (textual#6605) and OrderedInput can go."""
    from textual.app import App, ComposeResult

    class Plain(App[None]):
        def compose(self) -> ComposeResult:
            yield Input()

    app = Plain()
    async with app.run_test() as pilot:
        await pilot.pause()
        for char in "abc\x7fde":
            app.post_message(events.Key("backspace" if char == "\x7f" else char, char))
        for _ in range(4):
            await pilot.pause()
        assert app.query_one(Input).value != "abde"


async def test_80x24_keeps_quit_help_and_a_chart(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = bar_text(app)
        assert text.rstrip().endswith("? help  q quit") or text.rstrip().endswith("? help q quit")
        panel = app.screen.query_one(RunPanel)
        assert panel.display and panel.size.height >= 12  # the loss chart fills what the table leaves
        assert app.screen.query_one("#chart-loss", Chart).size.height >= 12
        table = app.screen.query_one(RunsTable)
        assert {"run", "status", "progress", "loss", "eta"} <= set(table.columns)


async def test_bad_input_says_why_in_the_app(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    empty = dataclasses.replace(live_snapshot, rows=(), unrecognised=(("/runs/model.bin", "binary file"),))
    app, _ = make_app(empty, where="/runs/model.bin")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        message = app.screen.query_one("#empty").render()
        assert "/runs/model.bin: binary file" in str(message)
        assert not app.screen.query_one(RunPanel).display  # no "loading…" chart forever
    assert app.no_runs_reason is not None and "binary file" in app.no_runs_reason


async def test_detail_shows_the_log_and_jumps_to_the_error(
    make_app: AppMaker, live_snapshot: Snapshot, tmp_path: Path
) -> None:
    log = tmp_path / "train.log"
    lines = [f"step {i} | loss 3.{i:03d}" for i in range(60)]
    lines += ["Traceback (most recent call last):", '  File "train.py", line 3', "RuntimeError: NCCL error: timeout"]
    lines += ["[W] teardown"] * 20
    log.write_text("\n".join(lines) + "\n")
    rows = list(live_snapshot.rows)
    rows[0] = dataclasses.replace(rows[0], path=str(log))
    app, _ = make_app(dataclasses.replace(live_snapshot, rows=tuple(rows)))
    async with app.run_test(size=(120, 50)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        pane = app.screen.query_one(LogPane)
        assert pane.tail is not None and pane.tail.lines[-1] == "[W] teardown"
        assert pane.tail.error_kind == "NCCL error"
        assert "Traceback" not in str(pane.render())  # the last lines: after the traceback
        await pilot.press("exclamation_mark")
        await settle(pilot)
        shown = str(pane.render())
        assert shown.splitlines()[1] == "Traceback (most recent call last):"
        assert "from the error" in str(pane.border_title)


async def test_palette_screenshot_lands_in_the_export_folder(
    make_app: AppMaker, live_snapshot: Snapshot, tmp_path: Path
) -> None:
    app, _ = make_app(live_snapshot, export_dir=tmp_path / "shots")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.deliver_screenshot()
        await settle(pilot)
        saved = list((tmp_path / "shots").glob("*.svg"))
        assert len(saved) == 1
        assert any(str(saved[0]) in str(n.message) for n in app._notifications)
