"""The table's cells, layout and order, without an app."""

from __future__ import annotations

import dataclasses
import math

import pytest

from trainwatch.core.rows import Snapshot
from trainwatch.tui import cells, order, plotspec
from trainwatch.tui.alerts import status_alerts

from .conftest import NOW

KEEP_AT_80 = {"run", "status", "progress", "loss", "tokh", "mfu", "eta"}


@pytest.mark.parametrize("width", [60, 79, 100, 120, 160, 240])
def test_layout_fits_and_keeps_the_essentials(live_snapshot: Snapshot, width: int) -> None:
    layout, widths = cells.fit(live_snapshot.rows, width, NOW)
    total = sum(w + cells.PADDING for w in widths.values())
    if width >= 79:
        assert total <= width
        assert set(layout.columns) >= KEEP_AT_80
    for row in live_snapshot.rows:
        for key, text in cells.row_cells(row, layout, NOW, marked=False).items():
            assert text.cell_len <= widths[key], (key, text.plain)  # nothing cut mid-number
            assert "\n" not in text.plain


def test_wide_layout_has_everything(live_snapshot: Snapshot) -> None:
    layout, _ = cells.fit(live_snapshot.rows, 160, NOW)
    # The GPU columns come only with runs that have GPUs (tests/tui/test_box_view.py).
    assert layout.columns == tuple(c.key for c in cells.COLUMNS if not c.key.startswith("gpu_"))
    assert layout.bar and layout.loss_spark and layout.stall_age


def test_spare_room_goes_to_names(live_snapshot: Snapshot) -> None:
    layout, widths = cells.fit(live_snapshot.rows, 79, NOW)
    assert widths["run"] >= len("LLaMA 2 1.36B")
    assert layout.name_width >= 12


def test_status_words_need_no_colour(live_snapshot: Snapshot) -> None:
    words = [cells.status_text(r.stats, NOW) for r in live_snapshot.rows]
    assert words == ["✓ finished", "◐ stalled 50m", "● running", "● running"]
    failed = dataclasses.replace(live_snapshot.rows[0].stats, status="failed")
    assert cells.status_text(failed, NOW) == "✗ failed"


def test_progress_bar_eighths() -> None:
    assert cells.bar(0.0, 4) == "────"
    assert cells.bar(1.0, 4) == "████"
    assert cells.bar(0.5, 4) == "██──"
    assert cells.bar(0.125, 4) == "▌───"
    assert cells.bar(0.03125, 4) == "▏───"
    assert cells.bar(2.0, 3) == "███"


def test_mfu_flag_and_alignment(live_snapshot: Snapshot) -> None:
    layout = cells.Layout()
    flagged = cells.row_cells(live_snapshot.rows[0], layout, NOW, marked=True)
    assert flagged["mfu"].plain == "30.2%⚑"
    assert flagged["mark"].plain == cells.MARK
    clean = dataclasses.replace(live_snapshot.rows[0].stats, warnings=())
    row = dataclasses.replace(live_snapshot.rows[0], stats=clean)
    assert cells.row_cells(row, layout, NOW, marked=False)["mfu"].plain == "30.2%" + cells.BLANK


def test_nan_loss_is_shown_not_hidden(live_snapshot: Snapshot) -> None:
    stats = dataclasses.replace(live_snapshot.rows[2].stats, loss=math.nan, status="diverged")
    row = dataclasses.replace(live_snapshot.rows[2], stats=stats)
    text = cells.row_cells(row, cells.Layout(loss_spark=0), NOW, marked=False)["loss"]
    assert text.plain == "nan"


def test_sort_puts_unknowns_last_both_ways(live_snapshot: Snapshot) -> None:
    by_eta = [r.name for r in order.sort_rows(live_snapshot.rows, "eta")]
    assert by_eta == ["LLaMA 2 1.36B", "GPT-2 1.36B", "Qwen3 1.8B Optimal", "LLaMA 3 2.2B"]
    by_eta_desc = [r.name for r in order.sort_rows(live_snapshot.rows, "eta", reverse=True)]
    assert by_eta_desc == ["Qwen3 1.8B Optimal", "GPT-2 1.36B", "LLaMA 2 1.36B", "LLaMA 3 2.2B"]
    assert order.sort_rows(live_snapshot.rows, None) == list(live_snapshot.rows)


def test_filter_matches_names_case_insensitively(live_snapshot: Snapshot) -> None:
    assert [r.name for r in live_snapshot.rows if order.matches(r, "LLAMA")] == ["LLaMA 2 1.36B", "LLaMA 3 2.2B"]
    assert all(order.matches(r, "  ") for r in live_snapshot.rows)


def test_name_cell_is_literal_and_clean() -> None:
    text = cells.name_cell("[bold]x[/bold]\x1b[31m\nnext", 40, "")
    assert text.plain == "[bold]x[/bold] next"
    assert cells.name_cell("a" * 50, 10, "").plain == "a" * 9 + "…"
    # Twins differ at the end: keep it.
    assert cells.shorten("gpt2 · shakespeare · run_20251031_173650", 32) == "gpt2 · shakespeare …51031_173650"


def test_ticks_are_round() -> None:
    assert plotspec.nice_ticks(0, 2000, 5) == (0, 500, 1000, 1500, 2000)
    assert [plotspec.tick_label(t, 10_000) for t in (0, 10_000, 25_000)] == ["0", "10k", "25k"]
    assert plotspec.tick_label(2.4, 0.05) == "2.40"


def test_robust_range_ignores_a_compile_spike() -> None:
    ys = [67.0] + [28.0 + 0.01 * i for i in range(60)]
    low, high = plotspec.robust_ylim(ys) or (0, 0)
    assert low < 28.0 and 28.59 < high < 30


def test_compare_against_tokens_seen(live_snapshot: Snapshot) -> None:
    rows = list(live_snapshot.rows)
    spec, notes = plotspec.compare_chart(rows, "tokens")
    assert not notes and len(spec.traces) == 4
    qwen = rows[3]
    first_iter = qwen.stats.loss_series[0][-1]
    assert spec.traces[3].xs[-1] == pytest.approx(first_iter * 393_216 / 1e6)
    assert spec.xlabel == "tokens seen (M)"
    spec, notes = plotspec.compare_chart(rows, "wall")
    assert not spec.has_data and len(notes) == 4 and "wall time unavailable" in notes[0]


def test_alerts_only_on_changes(live_snapshot: Snapshot) -> None:
    assert status_alerts(None, live_snapshot) == []
    assert status_alerts(live_snapshot, live_snapshot) == []
    rows = list(live_snapshot.rows)
    rows[3] = dataclasses.replace(rows[3], stats=dataclasses.replace(rows[3].stats, status="diverged"))
    rows[2] = dataclasses.replace(rows[2], stats=dataclasses.replace(rows[2].stats, status="finished"))
    alerts = status_alerts(live_snapshot, dataclasses.replace(live_snapshot, rows=tuple(rows)))
    assert [(a.status, a.severity) for a in alerts] == [("finished", "information"), ("diverged", "error")]
    assert alerts[1].message.startswith("Qwen3 1.8B Optimal diverged")
    # While the logs found at the start are read, a job's status moves as its
    # files join it (a .err read before its .out): nothing to alert on.
    partial = dataclasses.replace(live_snapshot, loading=True)
    assert status_alerts(partial, dataclasses.replace(live_snapshot, rows=tuple(rows))) == []
    assert status_alerts(live_snapshot, dataclasses.replace(partial, rows=tuple(rows))) == []
