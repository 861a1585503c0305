"""The main screen: header, the runs table, the selected run's plots, footer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Static

from trainwatch.tui import cells, order
from trainwatch.tui.header import HeaderBar
from trainwatch.tui.keybar import KeyBar
from trainwatch.tui.live import LiveScreen
from trainwatch.tui.ordered_input import OrderedInput
from trainwatch.tui.run_panel import RunPanel
from trainwatch.tui.runs_table import RunsTable

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow, Snapshot


class MainScreen(LiveScreen):
    """One row per run; the panel below follows the cursor."""

    # In order of use: the key bar leaves out the last ones first on a narrow terminal.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort"),
        Binding("f", "status_filter('active')", "Hide finished"),
        Binding("p", "status_filter('problems')", "Problems"),
        Binding("S", "reverse", "Reverse", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    # Under 100 columns the panel shows the loss chart alone; under 16 lines
    # the table takes the room.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 (Textual's declaration)
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (16, "-tall")]  # noqa: RUF012

    def __init__(self, where: str, mode: Callable[[], str], clock: Callable[[], datetime]) -> None:
        super().__init__()
        self._header = HeaderBar(where, mode, clock)
        self._titles: tuple[Text | None, Text | None] = (None, None)  # of the runs box, as last set

    def compose(self) -> ComposeResult:
        yield self._header
        with Vertical(id="runs-box"):
            yield RunsTable(id="runs")
            yield Static(Text("loading…", style="dim"), id="empty")
        yield RunPanel(id="panel")
        yield OrderedInput(placeholder="filter runs by name (Esc clears)", id="filter")
        yield KeyBar()

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    def selected_row(self) -> RunRow | None:
        key, snapshot = self.table.selected_key, self.snapshot
        if key is None or snapshot is None:
            return None
        return next((r for r in snapshot.rows if r.key == key), None)

    def compared_rows(self) -> list[RunRow]:
        """Marked runs in display order; with none marked, every shown run."""
        visible = self.table.visible_rows
        marked = [r for r in visible if r.key in self.table.marked]
        return marked or visible

    # ------------------------------------------------------------ snapshots

    def watch_snapshot(self) -> None:
        if self.is_mounted:
            self._show()

    def watch_chart_options(self) -> None:
        if self.is_mounted:
            self.query_one(RunPanel).options = self.chart_options

    def _show(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        self._header.snapshot = snapshot
        self.table.snapshot = snapshot
        panel = self.query_one(RunPanel)
        panel.snapshot = snapshot
        panel.display = bool(snapshot.rows)  # no run, no chart: the room goes to the reason why
        self._update_titles(snapshot)

    def on_mount(self) -> None:
        self.table.focus()
        self._show()

    def _update_titles(self, snapshot: Snapshot) -> None:
        box = self.query_one("#runs-box")
        counts = Counter(r.stats.status for r in snapshot.rows)
        title = Text("Runs")
        for status in cells.STATUS_ORDER_SHOWN:
            if counts[status]:
                title.append(" · ")
                mark = cells.STATUS_MARK[status]
                title.append(f"{mark} {counts[status]} {status}", style=cells.STATUS_STYLE[status])
        if self.has_class("-narrow"):  # a bare top rule: Textual pads titles only beside corners
            title = Text(" ").append_text(title).append(" ")
        # Assigning a border title repaints the whole box, even when equal.
        if not cells.same_text(self._titles[0], title):
            box.border_title = title
        subtitle = Text()
        note = order.STATUS_FILTER_NOTE[self.table.status_filter]
        if self.table.query_text or note:
            what = ", ".join(p for p in (self.table.query_text, note) if p)
            subtitle.append(f"filter: {what} ({len(self.table.visible_rows)} shown)")
        if snapshot.unrecognised:
            subtitle.append(" · " if subtitle else "")
            n = len(snapshot.unrecognised)
            subtitle.append(f"{n} other file{'s' if n != 1 else ''} not a run", style="dim")
        subtitle_or_none = subtitle if subtitle else None
        if not cells.same_text(self._titles[1], subtitle_or_none):
            box.border_subtitle = subtitle_or_none
        self._titles = (title, subtitle_or_none)
        empty = self.query_one("#empty", Static)
        if snapshot.rows and self.table.visible_rows:
            empty.display = False
        else:
            empty.display = True
            if not snapshot.rows:
                empty.update(self._no_runs_text())
            elif self.table.status_filter != "all" and not self.table.query_text:
                note = order.STATUS_FILTER_NOTE[self.table.status_filter]
                empty.update(Text(f"No run to show ({note}). Esc shows every run.", style="dim"))
            else:
                empty.update(Text(f"No run matches {self.table.query_text!r}. Esc clears the filter.", style="dim"))

    def _no_runs_text(self) -> Text:
        """Why there is no run (the same line as ``snapshot`` gives), and that we keep watching."""
        reason = getattr(self.app, "no_runs_reason", None) or ""
        for summary in (f"no training runs found under {self._header.where}", "no training runs found"):
            reason = reason.removeprefix(summary)  # the line below says that much
        reason = reason.removeprefix(": ")
        text = Text()
        if reason:
            text.append(cells.safe_text(reason), style=cells.YELLOW)
            text.append("\n")
        text.append("No training runs found yet: waiting for logs to appear.", style="dim")
        return text

    def on_resize(self) -> None:
        if self.snapshot is not None:  # the breakpoint class may have changed
            self._update_titles(self.snapshot)

    @on(RunsTable.Selected)
    def _follow(self, event: RunsTable.Selected) -> None:
        self.query_one(RunPanel).selected = event.key

    @on(RunsTable.Opened)
    def _open_detail(self, event: RunsTable.Opened) -> None:
        event.stop()
        self.action_detail()

    # -------------------------------------------------------------- actions

    def action_detail(self) -> None:
        from trainwatch.tui.detail import DetailScreen

        row = self.selected_row()
        if row is not None and self.snapshot is not None:
            screen = DetailScreen(row.key, self.snapshot)
            screen.set_reactive(LiveScreen.chart_options, self.chart_options)
            self.app.push_screen(screen)

    def action_mark(self) -> None:
        self.table.toggle_mark()

    def action_compare(self) -> None:
        from trainwatch.tui.compare import CompareScreen

        rows = self.compared_rows()
        if not rows or self.snapshot is None:
            self.notify("Nothing to compare yet.", severity="warning")
            return
        screen = CompareScreen([r.key for r in rows], self.snapshot)
        screen.set_reactive(LiveScreen.chart_options, self.chart_options)
        self.app.push_screen(screen)

    def action_sort(self) -> None:
        self.table.cycle_sort()
        self._notify_sort()

    def action_reverse(self) -> None:
        self.table.reverse_sort()
        self._notify_sort()

    def _notify_sort(self) -> None:
        column = self.table.sort_column
        title = cells.COLUMN[column].title if column else "file order"
        self.notify(f"sorted by {title}{' (reversed)' if self.table.sort_reverse else ''}", timeout=2)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        self.table.focus()
        self.table.status_filter = "all"
        self.table.set_query("")
        if self.snapshot is not None:
            self._update_titles(self.snapshot)

    def action_status_filter(self, which: order.StatusFilter) -> None:
        """``f`` hides finished runs, ``p`` shows only problems; the same key again shows all."""
        self.table.set_status_filter("all" if self.table.status_filter == which else which)
        if self.snapshot is not None:
            self._update_titles(self.snapshot)
        note = order.STATUS_FILTER_NOTE[self.table.status_filter] or "every run shown"
        self.notify(note, timeout=2)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_query(event.value)
        if self.snapshot is not None:
            self._update_titles(self.snapshot)

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.table.focus()
