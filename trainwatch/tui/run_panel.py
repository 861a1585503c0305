"""The panel under the table: the selected run's loss, s/iter and MFU."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from trainwatch.tui import cells, plotspec

if TYPE_CHECKING:
    from trainwatch.snapshot import RunRow, Snapshot
    from trainwatch.tui.charts import Chart


class RunPanel(Horizontal):
    """Follows the table's cursor. The charts are mounted after the first
    frame so that importing the plotting library never delays startup."""

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)
    selected: reactive[str | None] = reactive(None)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._charts: dict[str, Chart] = {}

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
        self._redraw()

    def watch_selected(self) -> None:
        self._redraw()

    def _row(self) -> RunRow | None:
        if self.snapshot is None:
            return None
        return next((r for r in self.snapshot.rows if r.key == self.selected), None)

    def _redraw(self) -> None:
        if not self._charts:
            return
        row = self._row()
        if row is None:
            for chart in self._charts.values():
                chart.spec = None
            return
        name = cells.safe_text(row.name)
        specs = {
            "loss": plotspec.loss_chart(row.stats, f"{name} · loss (train ─, val ●)"),
            "time": plotspec.time_chart(row.stats),
            "mfu": plotspec.mfu_chart(row.stats),
        }
        for key, chart in self._charts.items():
            if chart.spec != specs[key]:  # unchanged series: no replot
                chart.spec = specs[key]
