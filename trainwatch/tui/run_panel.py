"""The panel under the table: the selected run's loss, s/iter and MFU."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import var
from textual.widgets import Static

from trainwatch.core.stats import COUNTDOWN, only_clock_moved
from trainwatch.tui import cells, plotspec
from trainwatch.tui.trend import ChartOptions

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow, Snapshot
    from trainwatch.core.stats import RunStats
    from trainwatch.tui.charts import Chart


#: Seconds between two redraws of the charts for the same selected run.
REDRAW_EVERY = 1.0


class RunPanel(Horizontal):
    """Follows the table's cursor. The charts are mounted after the first
    frame, so that the table is on screen as early as can be."""

    snapshot: var[Snapshot | None] = var(None, always_update=True)
    selected: var[str | None] = var(None)
    options: var[ChartOptions] = var(ChartOptions())

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._charts: dict[str, Chart] = {}
        self._drawn: tuple[str | None, str, RunStats, ChartOptions] | None = None
        self._pending = False  # a redraw is scheduled
        self._redrawn_at = -REDRAW_EVERY

    def compose(self) -> ComposeResult:
        yield Static(Text("loading…", style="dim"), id="panel-placeholder")

    def on_mount(self) -> None:
        self.call_after_refresh(self._mount_charts)

    async def _mount_charts(self) -> None:
        from trainwatch.tui.charts import Chart

        await self.query_one("#panel-placeholder").remove()
        self._charts = {name: Chart(id=f"chart-{name}") for name in ("loss", "time", "mfu")}
        await self.mount_all(self._charts.values())
        self._redraw()

    def watch_snapshot(self) -> None:
        # The numbers first: the charts are redrawn after the frame that
        # shows the table's new cells (drawing three charts costs more than
        # the rest of that frame), and at most every REDRAW_EVERY seconds
        # however often a busy run's log grows.
        if self._pending:
            return
        self._pending = True
        wait = self._redrawn_at + REDRAW_EVERY - time.monotonic()
        if wait > 0:
            self.set_timer(wait, self._after_next_frame)
        else:
            self._after_next_frame()

    def _after_next_frame(self) -> None:
        self.call_after_refresh(self._deferred_redraw)

    def _deferred_redraw(self) -> None:
        self._pending = False
        self._redraw()

    def watch_selected(self) -> None:
        self._redraw()

    def watch_options(self) -> None:
        self._redraw()

    def _row(self) -> RunRow | None:
        if self.snapshot is None:
            return None
        return next((r for r in self.snapshot.rows if r.key == self.selected), None)

    def _redraw(self) -> None:
        if not self._charts:
            return
        row = self._row()
        # The watcher hands over the same RunStats while a run's log is
        # unchanged (or stats that differ only in figures that follow the
        # clock): then the charts are as drawn, and need no new specs.
        drawn = (self.selected, row.name, row.stats, self.options) if row is not None else None
        if drawn is not None and self._drawn is not None and _same_run(self._drawn, drawn):
            return
        self._drawn = drawn
        self._redrawn_at = time.monotonic()
        if row is None:
            for chart in self._charts.values():
                chart.spec = None
            return
        name = cells.safe_text(row.name)
        specs = {
            "loss": plotspec.loss_chart(row.stats, f"{name} · loss", options=self.options),
            "time": plotspec.time_chart(row.stats),
            "mfu": plotspec.mfu_chart(row.stats),
        }
        for key, chart in self._charts.items():
            if chart.spec != specs[key]:  # unchanged series: no replot
                chart.spec = specs[key]


def _same_run(
    a: tuple[str | None, str, RunStats, ChartOptions], b: tuple[str | None, str, RunStats, ChartOptions]
) -> bool:
    return a[:2] == b[:2] and a[3] == b[3] and only_clock_moved(b[2], a[2], COUNTDOWN)
