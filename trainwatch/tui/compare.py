"""The compare screen (c): marked runs' loss curves overlaid, figures side by side."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from trainwatch.core import fmt
from trainwatch.core.stats import COUNTDOWN, RunStats, only_clock_moved
from trainwatch.tui import cells, plotspec
from trainwatch.tui.charts import Chart
from trainwatch.tui.keybar import KeyBar
from trainwatch.tui.live import LiveScreen
from trainwatch.tui.trend import ChartOptions

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow, Snapshot

_X_TITLE = {"tokens": "tokens seen", "iter": "iteration", "wall": "wall time"}


def figures(row: RunRow, now: datetime) -> list[Text]:
    """The main table's figures of one run, as one column of the side-by-side table."""
    s = row.stats
    flag = " ⚑" if s.warnings else ""
    return [
        Text(cells.status_text(s, now), style=cells.STATUS_STYLE[s.status]),
        Text(f"{fmt.count(s.iter)}/{s.target:,}"),
        Text(cells.loss_text(s.loss)),
        Text(fmt.number(s.val_loss, 3)),
        Text(fmt.number(s.mean_iter_s, 2)),
        Text(fmt.count(s.tokens_per_iter)),
        Text(fmt.si(s.tokens_per_hour)),
        Text(fmt.pct(s.mfu_mean_pct, 1) + flag),
        Text(fmt.train_time(s.train_time_s, s.train_time_estimated)),
        Text(cells.eta_text(s)),
        Text(fmt.clock(s.finish_at, now)),
    ]


FIGURE_NAMES = (
    "Status",
    "Iteration",
    "Loss",
    "Val loss",
    "s/iter",
    "Tokens/iter",
    "Tok/h",
    "MFU",
    "Train time",
    "ETA",
    "Finish",
)


#: The figures kept when the terminal is short (under SHORT lines): the chart keeps its room.
SHORT_FIGURES = ("Status", "Iteration", "Loss", "s/iter", "Tok/h", "ETA")
SHORT = 30


def swatch(index: int) -> Text:
    r, g, b = plotspec.PALETTE[index % len(plotspec.PALETTE)]
    return Text("━━ ", style=f"rgb({r},{g},{b})")


def legend(rows: list[RunRow]) -> Text:
    """``━━ Qwen3 1.8B  ━━ GPT-2 1.36B``, each swatch in its run's colour."""
    out = Text(" ")
    for index, row in enumerate(rows):
        out.append_text(swatch(index))
        out.append(cells.safe_text(row.name) + "   ")
    return out


class CompareScreen(LiveScreen):
    """Loss against tokens seen (or iteration, or wall time), one colour per run."""

    # x-axis keys 1 2 3 (and x to cycle): t stays the app's target key on every screen.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", key_display="q"),
        Binding("x", "cycle_x", "X-axis"),
        Binding("1", "x_mode('tokens')", "Tokens", show=False),
        Binding("2", "x_mode('iter')", "Iteration", show=False),
        Binding("3", "x_mode('wall')", "Wall time", show=False),
    ]

    x_mode: reactive[plotspec.XMode] = reactive[plotspec.XMode]("tokens")

    def __init__(self, keys: list[str], snapshot: Snapshot) -> None:
        super().__init__()
        self.keys = keys
        self.set_reactive(LiveScreen.snapshot, snapshot)
        self._shown: list[tuple[str, list[str]]] = []
        self._short = False
        self._drawn: tuple[str, list[tuple[str, str, RunStats]], ChartOptions] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="compare-title")
        yield Static(id="compare-legend")
        yield Chart(id="compare-chart")
        yield Static(id="compare-notes")
        yield DataTable(id="compare-table", cursor_type="none", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self._short = self.app.size.height < SHORT
        self._redraw()

    def watch_snapshot(self) -> None:
        if self.is_mounted:
            self._redraw()

    def on_resize(self) -> None:
        short = self.size.height < SHORT
        if short != self._short:
            self._short = short
            self._shown = []  # refill the table with the figures that fit
            if self.is_mounted:
                self._redraw()

    def watch_x_mode(self) -> None:
        if self.is_mounted:
            self._redraw()

    def watch_chart_options(self) -> None:
        if self.is_mounted:
            self._redraw()

    def action_x_mode(self, mode: plotspec.XMode) -> None:
        self.x_mode = mode

    def action_cycle_x(self) -> None:
        modes = plotspec.X_MODES
        self.x_mode = modes[(modes.index(self.x_mode) + 1) % len(modes)]

    def rows(self) -> list[RunRow]:
        if self.snapshot is None:
            return []
        by_key = {r.key: r for r in self.snapshot.rows}
        return [by_key[k] for k in self.keys if k in by_key]

    def _redraw(self) -> None:
        if self.snapshot is None:
            return
        rows = self.rows()
        self._fill_table(rows)
        # The curves change only when a compared run has news (not with the
        # clock, nor with another run's log): then rebuild them.
        drawn = (self.x_mode, [(r.key, r.name, r.stats) for r in rows], self.chart_options)
        if self._drawn is not None and _same_curves(self._drawn, drawn):
            return
        self._drawn = drawn
        spec, notes = plotspec.compare_chart(rows, self.x_mode, self.chart_options)
        title = Text(" Compare ", style="bold")
        title.append(f"· {len(rows)} run{'s' if len(rows) != 1 else ''} · loss vs ")
        for mode in plotspec.X_MODES:
            key = {"tokens": "1", "iter": "2", "wall": "3"}[mode]
            style = "bold reverse" if mode == self.x_mode else "dim"
            title.append(f" {key} {_X_TITLE[mode]} ", style=style)
            title.append(" ")
        self.query_one("#compare-title", Static).update(title)
        self.query_one("#compare-legend", Static).update(legend(rows))
        chart = self.query_one("#compare-chart", Chart)
        if chart.spec != spec:
            chart.spec = spec
        self.query_one("#compare-notes", Static).update(Text("\n".join(notes), style="dim"))

    def _fill_table(self, rows: list[RunRow]) -> None:
        assert self.snapshot is not None
        now = self.snapshot.generated_at
        table = self.query_one("#compare-table", DataTable)
        content = [(r.key, [t.plain for t in figures(r, now)]) for r in rows]
        if content == self._shown:
            return  # the ETA ticks every second; most snapshots change nothing here
        self._shown = content
        table.clear(columns=True)
        table.add_column(Text(""), key="figure")
        columns = []
        for index, row in enumerate(rows):
            label = swatch(index)
            label.append_text(cells.name_cell(row.name, 24, "bold"))
            table.add_column(label, key=row.key)
            columns.append(figures(row, now))
        for i, name in enumerate(FIGURE_NAMES):
            if not self._short or name in SHORT_FIGURES:
                table.add_row(Text(name, style="dim"), *(col[i] for col in columns))


Curves = tuple[str, list[tuple[str, str, RunStats]], ChartOptions]


def _same_curves(old: Curves, new: Curves) -> bool:
    """Same x-axis and options, same runs in the same order, none with news beyond the clock."""
    if old[0] != new[0] or old[2] != new[2] or len(old[1]) != len(new[1]):
        return False
    return all(a[:2] == b[:2] and only_clock_moved(a[2], b[2], COUNTDOWN) for a, b in zip(old[1], new[1], strict=True))
