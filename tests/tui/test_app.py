"""Pilot tests: keys and live updates on the real seed runs with a fixed clock."""

from __future__ import annotations

import dataclasses
import html
import io
import os
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widgets import Input, Static

from trainwatch.core.rows import Snapshot
from trainwatch.outputs.export import render
from trainwatch.tui.app import TrainwatchApp, default_export_dir, describe_paths
from trainwatch.tui.charts import Chart
from trainwatch.tui.compare import CompareScreen
from trainwatch.tui.detail import DetailScreen
from trainwatch.tui.dialogs import HelpScreen, TargetScreen
from trainwatch.tui.main_screen import MainScreen
from trainwatch.tui.row_strip import plain_strip, rendered_strip
from trainwatch.tui.runs_table import RunsTable

from .conftest import LIVE, NOW, AppMaker, write_live_copy

QWEN = "run_20251113_225009"


async def settle(pilot: Pilot[int]) -> None:
    """Let the deferred start, the snapshot message and the chart mounts run."""
    for _ in range(3):
        await pilot.pause()


def table(app: TrainwatchApp) -> RunsTable:
    return app.screen.query_one(RunsTable)


def names_in_order(app: TrainwatchApp) -> list[str]:
    t = table(app)
    return [t.get_cell(key, "run").plain for key in t.row_keys]


def selected_name(app: TrainwatchApp) -> str:
    t = table(app)
    key = t.selected_key
    assert key is not None
    return t.get_cell(key, "run").plain


def shown(app: TrainwatchApp, selector: str) -> str:
    """The text of a Static, as a terminal would show it."""
    console = Console(width=200, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(app.screen.query_one(selector, Static).content)
    return capture.get()


def notices(app: TrainwatchApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_rows_appear_after_loading(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, sources = make_app(live_snapshot)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert sources[0].started
        t = table(app)
        assert t.row_count == 4
        assert names_in_order(app) == ["LLaMA 2 1.36B", "LLaMA 3 2.2B", "GPT-2 1.36B", "Qwen3 1.8B Optimal"]
        qwen = next(r for r in live_snapshot.rows if QWEN in r.key)
        assert t.get_cell(qwen.key, "status").plain == "● running"
        assert t.get_cell(qwen.key, "progress").plain.endswith("1,230/2,000")
        assert t.get_cell(qwen.key, "mfu").plain == "27.6%⚑"
        stalled = next(r for r in live_snapshot.rows if "122613" in r.key)
        assert t.get_cell(stalled.key, "status").plain == "◐ stalled 50m"
    assert sources[0].stopped


async def test_loading_before_first_snapshot(make_app: AppMaker) -> None:
    app, _ = make_app(None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert table(app).row_count == 0
        assert "loading" in shown(app, "#empty")


@pytest.fixture
def moving_dir(live_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    shutil.copytree(live_dir, folder)
    for path in folder.iterdir():
        stamp = (live_dir / path.name).stat().st_mtime
        os.utime(path, (stamp, stamp))
    return folder


def snapshot_of(folder: Path, now: datetime) -> Snapshot:
    from trainwatch.ingest.publish import build
    from trainwatch.ingest.source import LogSource

    from .conftest import NAMES

    sources = []
    for path in sorted(folder.iterdir()):
        source = LogSource(path)
        source.refresh()
        sources.append(source)
    return build(sources, NAMES, now)


async def test_new_iteration_updates_the_row_in_place(make_app: AppMaker, moving_dir: Path) -> None:
    first = snapshot_of(moving_dir, NOW)
    app, sources = make_app(first)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        t = table(app)
        qwen_key = next(r.key for r in first.rows if QWEN in r.key)
        t.move_cursor(row=t.get_row_index(qwen_key))
        await pilot.pause()
        # The log grows by ten iterations; the watcher would publish this.
        later = NOW + timedelta(seconds=280)
        write_live_copy(QWEN, moving_dir / f"{QWEN}.json", 1240, 5.0, later)
        sources[0].publish(snapshot_of(moving_dir, later))
        await settle(pilot)
        assert t.get_cell(qwen_key, "progress").plain.endswith("1,240/2,000")
        assert t.row_count == 4
        assert t.selected_key == qwen_key  # the cursor stayed on the run


async def test_sort_keys_and_header_click_keep_the_selected_run(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down")
        assert selected_name(app) == "GPT-2 1.36B"
        await pilot.press("s")  # by name
        assert names_in_order(app) == ["GPT-2 1.36B", "LLaMA 2 1.36B", "LLaMA 3 2.2B", "Qwen3 1.8B Optimal"]
        assert selected_name(app) == "GPT-2 1.36B"
        await pilot.press("S")
        assert names_in_order(app)[0] == "Qwen3 1.8B Optimal"
        assert selected_name(app) == "GPT-2 1.36B"
        t = table(app)
        assert "▼" in t.header_label("run").plain
        # Clicking a header sorts by it (the loss column, ascending).
        await pilot.click(RunsTable, offset=(t.column_x("loss") + 2, 0))
        await settle(pilot)
        assert names_in_order(app) == ["Qwen3 1.8B Optimal", "LLaMA 3 2.2B", "LLaMA 2 1.36B", "GPT-2 1.36B"]
        assert selected_name(app) == "GPT-2 1.36B"


async def test_filter_and_escape(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("slash")
        box = app.screen.query_one("#filter", Input)
        assert box.has_focus
        await pilot.press("l", "l", "a", "m", "a")
        await settle(pilot)
        assert names_in_order(app) == ["LLaMA 2 1.36B", "LLaMA 3 2.2B"]
        await pilot.press("enter")  # keep the filter, back to the table
        assert table(app).has_focus and names_in_order(app) == ["LLaMA 2 1.36B", "LLaMA 3 2.2B"]
        await pilot.press("escape")
        await settle(pilot)
        assert table(app).row_count == 4


async def test_detail_screen_and_back(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        title = shown(app, "#detail-title")
        assert "Qwen3 1.8B Optimal" in title and "running" in title
        facts = shown(app, "#facts-run")
        assert "2 batch × 48 accum × 2 GPUs × 2,048 seq = 393,216 tokens/iter" in facts
        notes = shown(app, "#notes")
        assert "⚑ MFU logged against 310 TFLOPS" in notes and "eval @ 1,000" in notes
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_detail_shows_the_slurm_job(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    from trainwatch.core.slurmjob import SlurmJob, attach

    job = SlurmJob("812", "RUNNING", None, 86400.0, NOW - timedelta(hours=23), NOW + timedelta(hours=1), "gpu1")
    rows = tuple(attach(r, job) if r.name == "Qwen3 1.8B Optimal" else r for r in live_snapshot.rows)
    app, _ = make_app(dataclasses.replace(live_snapshot, rows=rows))
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "down", "enter")
        await settle(pilot)
        progress = shown(app, "#facts-progress")
        assert "Slurm 812" in progress and "limit 1d 00h · ends 13:04 · finishes" in progress
        assert "after the limit ✗ ⚑" in progress and "checkpoint" in progress
        assert "⚑ the run will pass its Slurm time limit" in shown(app, "#notes")


async def test_marks_and_compare(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("down", "space", "down", "down", "space")
        t = table(app)
        assert [t.get_cell(key, "mark").plain for key in t.row_keys] == [" ", "◆", " ", "◆"]
        await pilot.press("c")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [r.name for r in screen.rows()] == ["LLaMA 3 2.2B", "Qwen3 1.8B Optimal"]
        legend = shown(app, "#compare-legend")
        assert "LLaMA 3 2.2B" in legend and "Qwen3 1.8B Optimal" in legend
        assert "tokens seen" in (screen.query_one("#compare-chart").border_title or "")
        await pilot.press("2")
        assert screen.x_mode == "iter"
        await pilot.press("3")
        await settle(pilot)
        assert "wall time unavailable" in shown(app, "#compare-notes")
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_export_writes_the_snapshot(make_app: AppMaker, live_snapshot: Snapshot, tmp_path: Path) -> None:
    app, _ = make_app(live_snapshot, export_dir=tmp_path / "out")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await settle(pilot)
    stamp = live_snapshot.generated_at.strftime("%Y%m%d-%H%M%S")
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"trainwatch-{stamp}.{kind}" for kind in ("csv", "json", "md")]
    json_text = (tmp_path / "out" / f"trainwatch-{stamp}.json").read_text()
    assert json_text == render(live_snapshot, "json")
    assert orjson.loads(json_text)["runs"][3]["run"] == "Qwen3 1.8B Optimal"
    assert any("exported" in n for n in notices(app))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
async def test_export_error_is_one_line(make_app: AppMaker, live_snapshot: Snapshot, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    app, _ = make_app(live_snapshot, export_dir=locked)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await settle(pilot)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and "export failed" in str(errors[0].message)
        assert "\n" not in str(errors[0].message)


async def test_export_error_when_the_folder_is_a_file(
    make_app: AppMaker, live_snapshot: Snapshot, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    app, _ = make_app(live_snapshot, export_dir=blocker)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        await app.workers.wait_for_complete()
        await settle(pilot)
        errors = [str(n.message) for n in app._notifications if n.severity == "error"]
        assert len(errors) == 1 and errors[0].startswith("export failed")


async def test_help_and_target(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, sources = make_app(live_snapshot)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("t")
        assert isinstance(app.screen, TargetScreen)
        for bad in ("0", "²", "9" * 11):  # not above 0; a digit int() refuses; over the int32 columns
            await pilot.press(*bad)
            await pilot.press("enter")
            assert isinstance(app.screen, TargetScreen)
            await pilot.press(*["backspace"] * len(bad))
        await pilot.press("3", "0", "0", "0", "enter")
        await settle(pilot)
        assert isinstance(app.screen, MainScreen)
        assert sources[0].targets == [3000]
        await pilot.press("t", "escape")
        assert sources[0].targets == [3000]


async def test_alert_on_status_change_only(
    make_app: AppMaker, live_snapshot: Snapshot, snapshot_at: Callable[[datetime], Snapshot]
) -> None:
    app, sources = make_app(live_snapshot, bell=True)
    rings: list[int] = []
    app.bell = lambda: rings.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert not [n for n in notices(app) if "stalled" in n]  # nothing on first display
        sources[0].publish(snapshot_at(NOW + timedelta(hours=1)))
        await settle(pilot)
        stalled = [n for n in app._notifications if "stalled" in str(n.message)]
        assert {str(n.message).split(" stalled")[0] for n in stalled} == {"GPT-2 1.36B", "Qwen3 1.8B Optimal"}
        assert all(n.severity == "warning" for n in stalled)
        assert len(rings) == 2
        sources[0].publish(snapshot_at(NOW + timedelta(hours=1, seconds=5)))
        await settle(pilot)
        assert len(rings) == 2  # still stalled: no new alert


async def test_log_text_is_shown_literally(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    evil = "[b]x[/b] [link=y]z[/link]\x1b[2J\x07"
    rows = list(live_snapshot.rows)
    rows[0] = dataclasses.replace(rows[0], name=evil)
    snap = dataclasses.replace(live_snapshot, rows=tuple(rows))
    app, _ = make_app(snap)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        cell = table(app).get_cell(rows[0].key, "run")
        assert cell.plain == "[b]x[/b] [link=y]z[/link]"
        assert not cell.spans


def test_default_export_dir(tmp_path: Path) -> None:
    runs, home = tmp_path / "runs", tmp_path / "home"
    (runs / "sub").mkdir(parents=True)
    assert default_export_dir([runs], tmp_path, home) == tmp_path.resolve()
    assert default_export_dir([runs], runs, home) == home / "trainwatch-exports"
    assert default_export_dir([runs], runs / "sub", home) == home / "trainwatch-exports"
    log = runs / "a.log"
    log.write_text("")
    assert default_export_dir([log], runs, home) == home / "trainwatch-exports"


def test_describe_paths() -> None:
    home = Path.home()
    assert describe_paths([home / "runs"]) == "~/runs"
    assert describe_paths([Path("/a"), Path("/b"), Path("/c")]) == "3 paths"


def test_live_fixture_statuses(live_snapshot: Snapshot) -> None:
    assert [r.stats.status for r in live_snapshot.rows] == ["finished", "stalled", "running", "running"]
    assert len(LIVE) == 4


async def test_command_palette_offers_our_commands(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Export snapshot", "Set target", "Compare runs", "Filter runs", "Sort by Loss"} <= titles
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Sort by Loss")
        command.callback()
        await settle(pilot)
        assert names_in_order(app)[0] == "Qwen3 1.8B Optimal"
        await pilot.press("ctrl+p")
        await settle(pilot)
        assert app.screen.__class__.__name__ == "CommandPalette"


async def test_watch_problems_are_one_line_errors(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, sources = make_app(live_snapshot)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        sources[0].problems = ["cannot read /runs/a.log: Permission denied"]  # type: ignore[attr-defined]
        sources[0].publish(live_snapshot)
        sources[0].publish(live_snapshot)
        await settle(pilot)
        errors = [str(n.message) for n in app._notifications if n.severity == "error"]
        assert errors == ["cannot read /runs/a.log: Permission denied"]  # once, not per snapshot


def many_runs(snapshot: Snapshot, count: int) -> Snapshot:
    """``count`` runs (copies of the seed runs under other paths and names)."""
    rows = [
        dataclasses.replace(base, name=f"run {k:02d}", path=f"/runs/{k:02d}/{Path(base.path).name}")
        for k, base in ((k, snapshot.rows[k % len(snapshot.rows)]) for k in range(count))
    ]
    return dataclasses.replace(snapshot, rows=tuple(rows))


def screen_text(app: TrainwatchApp) -> str:
    return html.unescape(app.export_screenshot()).replace("\xa0", " ")


async def test_table_scrolls_with_the_cursor_and_keeps_its_header(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    snap = many_runs(live_snapshot, 40)
    app, _ = make_app(snap)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        t = table(app)
        assert t.row_count == 40 and t.size.height < 40  # more runs than lines
        assert "run 00" in screen_text(app) and "run 39" not in screen_text(app)
        await pilot.press("end")
        assert selected_name(app) == "run 39"
        text = screen_text(app)
        assert "run 39" in text and "run 00" not in text
        assert "Status" in text and "Progress" in text  # the header stayed on screen
        await pilot.press("home", "down", "down")
        assert selected_name(app) == "run 02"
        await pilot.press("pagedown")
        assert t.cursor_row == 2 + t.size.height - 2
        assert selected_name(app) in screen_text(app)


async def test_a_run_that_changed_off_screen_shows_its_news_when_scrolled_to(
    make_app: AppMaker, live_snapshot: Snapshot
) -> None:
    snap = many_runs(live_snapshot, 40)
    app, sources = make_app(snap)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        t = table(app)
        rows = list(snap.rows)
        rows[39] = dataclasses.replace(rows[39], stats=dataclasses.replace(rows[39].stats, loss=7.654))
        sources[0].publish(dataclasses.replace(snap, rows=tuple(rows)))
        await settle(pilot)
        assert "run 39" not in screen_text(app)
        await pilot.press("end")
        line = next(line for line in screen_text(app).splitlines() if "run 39" in line)
        assert "7.654" in line
        assert t.get_cell(rows[39].key, "loss").plain.startswith("7.654")


async def test_a_run_scrolled_into_view_gets_room_for_what_changed_off_screen(
    make_app: AppMaker, live_snapshot: Snapshot
) -> None:
    snap = many_runs(live_snapshot, 40)
    app, sources = make_app(snap)
    async with app.run_test(size=(100, 24)) as pilot:
        await settle(pilot)
        rows = list(snap.rows)
        rows[39] = dataclasses.replace(rows[39], stats=dataclasses.replace(rows[39].stats, loss=123456.75))
        sources[0].publish(dataclasses.replace(snap, rows=tuple(rows)))
        await settle(pilot)
        await pilot.press("end")
        await settle(pilot)
        t = table(app)
        shown = t.render_line(1 + t.get_row_index(rows[39].key) - int(t.scroll_offset.y))
        line = "".join(segment.text for segment in shown)
        cell = t.get_cell(rows[39].key, "loss").plain  # "123456.8 █▄▅▂▃▁▁▁": value and sparkline
        assert "run 39" in line and cell.startswith("123456.8") and cell in line  # not cut to "123456.8 █▄…"


def _styled_chars(strip: Strip) -> list[tuple[str, object]]:
    return [(char, segment.style) for segment in strip for char in segment.text]


async def test_rows_drawn_without_rich_look_as_rich_draws_them(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    rows = list(many_runs(live_snapshot, 8).rows)
    names = ["東京 run 日本語", "x" * 300, "[b]x[/b] \x1b[2J", "tab\there", "e\u0301 combining", "🚀 rocket", "", "a"]
    rows = [dataclasses.replace(row, name=name) for row, name in zip(rows, names, strict=True)]
    app, _ = make_app(dataclasses.replace(live_snapshot, rows=tuple(rows)))
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        t = table(app)
        base, console = t.rich_style, app.console
        widths = [t.column_width(column) for column in t.columns]
        fast = 0
        for row in rows:
            texts = [t.get_cell(row.key, column) for column in t.columns]
            rich = rendered_strip(texts, widths, base, console)
            ours = plain_strip(texts, widths, base, console)
            if ours is not None:
                fast += 1
                assert _styled_chars(ours) == _styled_chars(rich), row.name
                assert ours.cell_length == rich.cell_length
        assert fast >= 6  # the usual row takes the fast path (an over-long name does not)
        header = [t.header_label(column) for column in t.columns]
        ours = plain_strip(header, widths, base, console)
        assert ours is not None and _styled_chars(ours) == _styled_chars(rendered_strip(header, widths, base, console))


async def test_click_selects_a_row_and_a_second_click_opens_it(make_app: AppMaker, live_snapshot: Snapshot) -> None:
    app, _ = make_app(live_snapshot)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        t = table(app)
        assert t.cursor_row == 0
        await pilot.click(RunsTable, offset=(10, 3))  # line 0 is the header: the third run
        assert t.cursor_row == 2 and isinstance(app.screen, MainScreen)
        await pilot.click(RunsTable, offset=(10, 3))
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)


async def test_a_new_snapshot_repaints_only_the_rows_that_changed(
    make_app: AppMaker, live_snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, sources = make_app(live_snapshot)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        t = table(app)
        await pilot.pause(0.2)
        painted: list[int] = []
        render_line = RunsTable.render_line

        def spy(self: RunsTable, y: int) -> Strip:
            painted.append(y)
            return render_line(self, y)

        monkeypatch.setattr(RunsTable, "render_line", spy)
        # One run's loss changes (a new RunStats object); the others are handed over as they were.
        rows = list(live_snapshot.rows)
        index = t.get_row_index(rows[1].key)
        rows[1] = dataclasses.replace(rows[1], stats=dataclasses.replace(rows[1].stats, loss=1.234))
        sources[0].publish(dataclasses.replace(live_snapshot, rows=tuple(rows)))
        await settle(pilot)
        assert t.get_cell(rows[1].key, "loss").plain.startswith("1.234")
        assert painted == [1 + index]  # its line, below the header, and no other


async def test_detail_follows_the_run_and_skips_clock_only_updates(
    make_app: AppMaker, moving_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainwatch.tui import plotspec

    specs: list[object] = []
    loss_chart = plotspec.loss_chart

    def counted(*args: Any, **kwargs: Any) -> plotspec.ChartSpec:
        specs.append(args)
        return loss_chart(*args, **kwargs)

    monkeypatch.setattr(plotspec, "loss_chart", counted)
    first = snapshot_of(moving_dir, NOW)
    app, sources = make_app(first)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        t = table(app)
        qwen = next(r for r in first.rows if QWEN in r.key)
        t.move_cursor(row=t.get_row_index(qwen.key))
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        assert "1,230 / 2,000" in shown(app, "#facts-progress")
        loss, built = screen.query_one("#d-loss", Chart).spec, len(specs)
        # The same run a few seconds on, with no news: only the finish estimate moved.
        drift = dataclasses.replace(
            qwen.stats, finish_at=qwen.stats.finish_at + timedelta(seconds=3) if qwen.stats.finish_at else None
        )
        rows = tuple(dataclasses.replace(r, stats=drift) if r.key == qwen.key else r for r in first.rows)
        sources[0].publish(dataclasses.replace(first, rows=rows))
        await settle(pilot)
        assert len(specs) == built  # no chart spec rebuilt
        assert screen.query_one("#d-loss", Chart).spec is loss
        # Ten more iterations: the facts and the charts follow.
        later = NOW + timedelta(seconds=280)
        write_live_copy(QWEN, moving_dir / f"{QWEN}.json", 1240, 5.0, later)
        sources[0].publish(snapshot_of(moving_dir, later))
        await settle(pilot)
        assert "1,240 / 2,000" in shown(app, "#facts-progress")
        assert len(specs) > built and screen.query_one("#d-loss", Chart).spec != loss


async def test_panel_skips_clock_only_updates(
    make_app: AppMaker, moving_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainwatch.tui import plotspec, run_panel

    # No one-second hold between redraws: every snapshot reaches the check at once.
    monkeypatch.setattr(run_panel, "REDRAW_EVERY", 0.0)
    titles: list[str] = []
    loss_chart = plotspec.loss_chart

    def counted(stats: Any, title: str = "", **kwargs: Any) -> plotspec.ChartSpec:
        titles.append(title)
        return loss_chart(stats, title, **kwargs)

    monkeypatch.setattr(plotspec, "loss_chart", counted)
    first = snapshot_of(moving_dir, NOW)
    app, sources = make_app(first)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        qwen = next(r for r in first.rows if QWEN in r.key)
        t = table(app)
        t.move_cursor(row=t.get_row_index(qwen.key))
        await settle(pilot)
        assert titles and "Qwen3" in titles[-1]
        built = len(titles)
        # A few seconds on with no news: only the finish estimate and ETA moved.
        assert qwen.stats.finish_at is not None and qwen.stats.eta_s is not None
        drift = dataclasses.replace(
            qwen.stats, finish_at=qwen.stats.finish_at + timedelta(seconds=3), eta_s=qwen.stats.eta_s - 3
        )
        rows = tuple(dataclasses.replace(r, stats=drift) if r.key == qwen.key else r for r in first.rows)
        sources[0].publish(dataclasses.replace(first, rows=rows))
        await settle(pilot)
        assert len(titles) == built  # no chart spec rebuilt
        # Ten more iterations: the charts follow.
        later = NOW + timedelta(seconds=280)
        write_live_copy(QWEN, moving_dir / f"{QWEN}.json", 1240, 5.0, later)
        sources[0].publish(snapshot_of(moving_dir, later))
        await settle(pilot)
        assert len(titles) > built


async def test_compare_rebuilds_curves_only_for_news(
    make_app: AppMaker, live_snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainwatch.tui import plotspec

    calls: list[str] = []
    compare_chart = plotspec.compare_chart

    def counted(rows: Any, mode: plotspec.XMode, options: Any = None) -> Any:
        calls.append(mode)
        return compare_chart(rows, mode, options)

    monkeypatch.setattr(plotspec, "compare_chart", counted)
    app, sources = make_app(live_snapshot)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen) and calls == ["tokens"]

        def moved(**changes: Any) -> Snapshot:
            rows = [dataclasses.replace(r, stats=dataclasses.replace(r.stats, **changes)) for r in live_snapshot.rows]
            return dataclasses.replace(live_snapshot, rows=tuple(rows))

        sources[0].publish(moved(wall_elapsed_s=12345.0))  # the clock's own figures only
        await settle(pilot)
        assert calls == ["tokens"]
        sources[0].publish(moved(loss=1.5))  # news
        await settle(pilot)
        await pilot.press("2")
        assert calls == ["tokens", "tokens", "iter"]


async def test_cursor_stays_on_top_while_runs_arrive_then_follows_its_run(
    make_app: AppMaker, live_snapshot: Snapshot
) -> None:
    rows = live_snapshot.rows
    app, sources = make_app(dataclasses.replace(live_snapshot, rows=rows[2:]))  # the first file read
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        t = table(app)
        assert t.selected_key == rows[2].key
        sources[0].publish(live_snapshot)  # the others arrive, in file order before it
        await settle(pilot)
        assert t.cursor_row == 0 and t.selected_key == rows[0].key  # still the top row
        await pilot.press("down")  # the user picks a run: from now on the cursor follows it
        chosen = t.selected_key
        sources[0].publish(dataclasses.replace(live_snapshot, rows=tuple(reversed(rows))))
        await settle(pilot)
        assert t.selected_key == chosen and t.cursor_row == len(rows) - 2
