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
from textual.widgets import Footer, Input, Static

from trainwatch.tui import cells
from trainwatch.tui.header import HeaderBar
from trainwatch.tui.live import LiveScreen
from trainwatch.tui.run_panel import RunPanel
from trainwatch.tui.runs_table import RunsTable

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow, Snapshot


class MainScreen(LiveScreen):
    """One row per run; the panel below follows the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    # Below these sizes the plots go and the table gets the room (UI.md: 80×24).
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 (Textual's declaration)
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]  # noqa: RUF012

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
        yield Input(placeholder="filter runs by name (Esc clears)", id="filter")
        yield Footer(compact=True)

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

    def _show(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        self._header.snapshot = snapshot
        self.table.snapshot = snapshot
        self.query_one(RunPanel).snapshot = snapshot
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
        if self.table.query_text:
            subtitle.append(f"filter: {self.table.query_text} ({len(self.table.visible_rows)} shown)")
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
                empty.update(Text("No training runs found yet: waiting for logs to appear.", style="dim"))
            else:
                empty.update(Text(f"No run matches {self.table.query_text!r}. Esc clears the filter.", style="dim"))

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
            self.app.push_screen(DetailScreen(row.key, self.snapshot))

    def action_mark(self) -> None:
        self.table.toggle_mark()

    def action_compare(self) -> None:
        from trainwatch.tui.compare import CompareScreen

        rows = self.compared_rows()
        if not rows or self.snapshot is None:
            self.notify("Nothing to compare yet.", severity="warning")
            return
        self.app.push_screen(CompareScreen([r.key for r in rows], self.snapshot))

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
        self.table.set_query("")
        if self.snapshot is not None:
            self._update_titles(self.snapshot)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_query(event.value)
        if self.snapshot is not None:
            self._update_titles(self.snapshot)

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.table.focus()
