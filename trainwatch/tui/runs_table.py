"""The runs table: one row per run, repainting only the rows that changed.

Textual's ``DataTable`` re-renders every visible cell whenever any cell
changes (its render caches are keyed on a global update count): with 20 runs
that was ~170 ms per snapshot, the largest cost of the live view. This table
is a line-API widget instead: each row is rendered to one ``Strip`` when its
text changes and kept; a snapshot that changes one run's cells repaints that
one line. The header stays on the first line while the rows scroll.

Rows are keyed by ``RunRow.key``, so the cursor stays on the same run across
updates, re-sorts and filtering. The column layout (which columns, how wide)
comes from ``cells.fit`` over every run, so filtering never reflows it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import var
from textual.scroll_view import ScrollView
from textual.strip import Strip

from trainwatch.core.stats import COUNTDOWN, only_clock_moved
from trainwatch.tui import cells, order
from trainwatch.tui.row_strip import row_strip

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow, Snapshot
    from trainwatch.core.stats import RunStats

#: Cells are rebuilt for every run at least this often (status ages, ETAs
#: count down with the clock); in between, only runs whose stats changed.
CLOCK_STEP = timedelta(seconds=1)
#: A run off screen is measured again (for the column widths) at most this
#: often: with a hundred busy runs, measuring each on every update was a
#: tenth of the app's work. The widths follow it within this long, and at
#: once when it is scrolled into view.
WIDTH_LAG = timedelta(seconds=5)


class RunsTable(ScrollView, can_focus=True):
    """Runs as rows, with sorting, a name filter and marks for comparing."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Detail", key_display="⏎"),
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "cursor_to(0)", "First", show=False),
        Binding("end,G", "cursor_to(-1)", "Last", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"runs-table--header", "runs-table--cursor"}
    DEFAULT_CSS = """
    RunsTable {
        height: auto;
        background: $surface;
        color: $foreground;
    }
    RunsTable > .runs-table--header {
        text-style: bold;
    }
    RunsTable > .runs-table--cursor {
        background: $block-cursor-blurred-background;
    }
    RunsTable:focus > .runs-table--cursor {
        background: $block-cursor-background;
    }
    """

    class Selected(Message):
        """The run under the cursor changed (moved, sorted, filtered or first shown)."""

        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    class Opened(Message):
        """Enter (or a click on the highlighted row): open this run."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    snapshot: var[Snapshot | None] = var(None, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.query_text = ""
        self.status_filter: order.StatusFilter = "all"
        self.marked: set[str] = set()
        self.cursor_row = 0
        self._follow = False  # the cursor follows its run (see _sync)
        self._keys: list[str] = []  # shown, in display order
        self._visible: list[RunRow] = []
        self._layout: cells.Layout | None = None
        self._widths: dict[str, int] = {}
        self._header: Strip | None = None
        self._cells: dict[str, dict[str, Text]] = {}  # on-screen rows; others are built when shown
        self._strips: dict[str, Strip] = {}
        self._rows: dict[str, RunRow] = {}
        self._now: datetime | None = None
        # What each row's cells and widths were made from: (stats, name, marked) and (stats, name, widths).
        self._built: dict[str, tuple[RunStats, str, bool]] = {}
        self._measured: dict[str, tuple[RunStats, str, dict[str, int], datetime]] = {}
        self._cells_at: datetime | None = None
        self._label_state: tuple[str | None, bool] = (None, False)
        # Names as shown (cut together so that they stay apart), and what they were cut from.
        self._names: dict[str, str] = {}
        self._names_from: tuple[tuple[str, ...], int] | None = None
        self._width = 0
        self._announced: str | None = None

    # ------------------------------------------------------------- public API

    @property
    def row_count(self) -> int:
        return len(self._keys)

    @property
    def row_keys(self) -> list[str]:
        """The keys of the rows shown, in display order."""
        return list(self._keys)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._layout.columns if self._layout else ()

    @property
    def selected_key(self) -> str | None:
        return self._keys[self.cursor_row] if self._keys else None

    @property
    def visible_rows(self) -> list[RunRow]:
        """The rows shown, in display order."""
        return list(self._visible)

    def get_cell(self, key: str, column: str) -> Text:
        """The text shown for run ``key`` in ``column``."""
        return self._row_cells(key)[column]

    def get_row_index(self, key: str) -> int:
        return self._keys.index(key)

    def header_label(self, column: str) -> Text:
        return self._label(column)

    def column_width(self, column: str) -> int:
        """``column``'s width in cells, without its padding."""
        return self._widths[column]

    def column_x(self, column: str) -> int:
        """The first cell of ``column`` (its padding), from the left edge."""
        x = 0
        for key in self.columns:
            if key == column:
                return x
            x += self._widths[key] + cells.PADDING
        raise KeyError(column)

    def move_cursor(self, row: int) -> None:
        if not self._keys:
            return
        self._follow = True
        row = max(0, min(row, len(self._keys) - 1))
        if row != self.cursor_row:
            self._refresh_row(self.cursor_row)
            self.cursor_row = row
            self._refresh_row(row)
        self._scroll_to_cursor()
        self._announce()

    def set_sort(self, column: str | None, reverse: bool = False) -> None:
        self._follow = self._follow or bool(self._keys)  # the run under the cursor stays under it
        self.sort_column, self.sort_reverse = column, reverse
        self._sync()

    def cycle_sort(self) -> None:
        order: list[str | None] = [None, *cells.SORTABLE]
        self.set_sort(order[(order.index(self.sort_column) + 1) % len(order)], self.sort_reverse)

    def reverse_sort(self) -> None:
        self.set_sort(self.sort_column, not self.sort_reverse)

    def set_query(self, text: str) -> None:
        self.query_text = text
        self._sync()

    def set_status_filter(self, which: order.StatusFilter) -> None:
        """Show every run, the unfinished ones, or only those with a problem."""
        self.status_filter = which
        self._sync()

    def toggle_mark(self) -> None:
        key = self.selected_key
        if key is None:
            return
        self._follow = True
        self.marked ^= {key}
        self._sync()

    # ---------------------------------------------------------------- actions

    def action_cursor(self, step: int) -> None:
        self.move_cursor(self.cursor_row + step)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * max(1, self.size.height - 2))

    def action_cursor_to(self, row: int) -> None:
        self.move_cursor(row if row >= 0 else len(self._keys) - 1)

    def action_open(self) -> None:
        key = self.selected_key
        if key is not None:
            self.post_message(self.Opened(key))

    # ----------------------------------------------------------------- events

    def watch_snapshot(self) -> None:
        self._sync()

    def on_resize(self) -> None:
        if self.size.width != self._width:
            self._sync()

    def on_focus(self) -> None:
        self._refresh_row(self.cursor_row)  # the cursor's colour follows focus

    def on_blur(self) -> None:
        self._refresh_row(self.cursor_row)

    def on_click(self, event: events.Click) -> None:
        if event.y == 0:
            column = self._column_at(event.x)
            if column is not None and column in cells.SORTABLE:
                self.set_sort(column, not self.sort_reverse if column == self.sort_column else False)
            return
        row = int(self.scroll_offset.y) + event.y - 1
        if 0 <= row < len(self._keys):
            if row == self.cursor_row:
                self.action_open()
            else:
                self.move_cursor(row)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._header = None
        self._strips.clear()  # the theme changed: colours are baked into strips

    # -------------------------------------------------------------- rendering

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            if self._header is None:
                header_style = self.get_component_rich_style("runs-table--header")
                texts = [self._label(key) for key in self.columns]
                self._header = self._strip(texts, base + header_style)
            return self._header.crop_extend(0, width, base)
        index = int(self.scroll_offset.y) + y - 1
        if not 0 <= index < len(self._keys):
            return Strip.blank(width, base)
        key = self._keys[index]
        strip = self._strips.get(key)
        if strip is None:
            row = self._row_cells(key)
            strip = self._strips[key] = self._strip([row[c] for c in self.columns], base)
        if index == self.cursor_row:  # the cursor bar spans the table's whole width
            cursor = self.get_component_rich_style("runs-table--cursor")
            strip = strip.crop_extend(0, width, base)
            return Strip(Segment.apply_style(iter(strip), post_style=Style(bgcolor=cursor.bgcolor)), width)
        return strip.crop_extend(0, width, base)

    def _strip(self, texts: list[Text], base: Style) -> Strip:
        """Cells padded to their column widths, as one line."""
        return row_strip(texts, [self._widths[key] for key in self.columns], base, self.app.console)

    def _label(self, key: str) -> Text:
        column = cells.COLUMN[key]
        justify = column.header_justify or column.justify
        title = column.title
        if key == self.sort_column:
            arrow = "▼" if self.sort_reverse else "▲"
            title = f"{title} {arrow}" if justify == "left" else f"{arrow} {title}"
        return Text(title, justify=justify, no_wrap=True)

    # -------------------------------------------------------------- internals

    def _sync(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        self._now = now = snapshot.generated_at
        # Every run's cells follow the clock once a second; in between only
        # runs whose stats changed are looked at (the watcher hands over the
        # same RunStats object for a run whose log did not change).
        elapsed = now - self._cells_at if self._cells_at is not None else None
        clock = elapsed is None or elapsed >= CLOCK_STEP or elapsed < timedelta(0)
        if clock:
            self._cells_at = now
        # Until the user moves the cursor (or sorts), it stays on the top row
        # while runs keep arriving; from then on it follows its run.
        keep = self.selected_key if self._follow else None
        self.marked &= {r.key for r in snapshot.rows}
        rows = [r for r in snapshot.rows if order.matches(r, self.query_text) and order.shown_by(r, self.status_filter)]
        self._visible = order.sort_rows(rows, self.sort_column, self.sort_reverse)
        self._rows = {r.key: r for r in self._visible}
        keys = [r.key for r in self._visible]
        # The layout depends on every run, not the filtered few: filtering must not reflow.
        self._width = self.size.width
        top, bottom = self._screen_rows()
        shown = set(keys[top:bottom])
        widest = cells.merge_widths(self._measure(row, now, clock, row.key in shown) for row in snapshot.rows)
        layout, widths = cells.fit(snapshot.rows, max(0, self._width - 1), now, self.sort_column, widest)
        relayout = (layout, widths) != (self._layout, self._widths)
        names_from = (tuple(r.name for r in snapshot.rows), layout.name_width)
        if names_from != self._names_from:
            self._names_from = names_from
            self._names = cells.shown_names(snapshot.rows, layout.name_width)
        if relayout:
            self._layout, self._widths = layout, widths
            self._strips.clear()
            self._built.clear()  # every cell is rebuilt for the new layout
        label_state = (self.sort_column, self.sort_reverse)
        if relayout or self._header is None or self._label_state != label_state:
            self._header = None
            self._label_state = label_state
            self._refresh_line(0)
        changed = self._update_cells(now, clock)
        if keys != self._keys or relayout:
            self._keys = keys
            self.virtual_size = Size(self._width, len(keys) + 1)
            self.refresh()
        elif changed:
            position = {key: index for index, key in enumerate(self._keys)}
            for key in changed:
                self._refresh_row(position[key])
        self._restore_cursor(keep)
        self._announce()

    def _measure(self, row: RunRow, now: datetime, clock: bool, shown: bool) -> dict[str, int]:
        """``cells.measure`` of ``row``, remeasured only when needed (see
        ``_sync``), and for a run off screen (``not shown``) at most every
        ``WIDTH_LAG``."""
        memo = self._measured.get(row.key)
        if memo is not None and not shown and timedelta(0) <= now - memo[3] < WIDTH_LAG:
            return memo[2]
        if memo is None or memo[1] != row.name or not only_clock_moved(memo[0], row.stats, COUNTDOWN):
            widths = cells.measure(row, now)
        elif clock or memo[0] is not row.stats:
            widths = {**memo[2], **cells.measure_timed(row, now)}
        else:
            return memo[2]
        self._measured[row.key] = (row.stats, row.name, widths, now)
        return widths

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value) and self._stale_widths():
            self.call_later(self._sync)  # runs scrolled into view were measured a while ago

    def _stale_widths(self) -> bool:
        """Is a run on screen measured from older figures than it shows (see WIDTH_LAG)?"""
        top, bottom = self._screen_rows()
        for key in self._keys[top:bottom]:
            memo, row = self._measured.get(key), self._rows.get(key)
            if row is not None and (memo is None or memo[0] is not row.stats or memo[1] != row.name):
                return True
        return False

    def _screen_rows(self) -> tuple[int, int]:
        """The positions (in display order) of the rows on screen: ``[top, bottom)``."""
        top = int(self.scroll_offset.y)
        return top, top + max(1, self.size.height - 1)

    def _update_cells(self, now: datetime, clock: bool) -> list[str]:
        """Rebuild the cells of on-screen runs that changed, and the clock's
        cells of the others when ``clock``; the keys of rows whose text
        changed. A run scrolled out of view only forgets its cells (they are
        built when it is drawn again): with a hundred busy runs, most of
        what changes is off screen."""
        layout = self._layout
        assert layout is not None
        for key in [k for k in self._cells if k not in self._rows]:
            self._forget(key)
        for key in [k for k in self._measured if k not in self._rows]:
            del self._measured[key]
        top, bottom = self._screen_rows()
        changed = []
        for index, row in enumerate(self._visible):
            if not top <= index < bottom:
                self._forget(row.key)
                continue
            marked = row.key in self.marked
            name = self._names.get(row.key, row.name)
            built = (row.stats, name, marked)
            old = self._built.get(row.key)
            if old is not None and old[1:] == built[1:] and only_clock_moved(old[0], built[0], COUNTDOWN):
                if not clock and old[0] is built[0]:
                    continue
                timed = cells.row_cells(row, layout, now, marked=marked, only=cells.TIMED, name=name)
                fresh = {**self._cells[row.key], **timed}
            else:
                fresh = cells.row_cells(row, layout, now, marked=marked, name=name)
            self._built[row.key] = built
            if not _same_row(self._cells.get(row.key), fresh):
                self._cells[row.key] = fresh
                self._strips.pop(row.key, None)
                changed.append(row.key)
        return changed

    def _forget(self, key: str) -> None:
        self._cells.pop(key, None)
        self._built.pop(key, None)
        self._strips.pop(key, None)

    def _row_cells(self, key: str) -> dict[str, Text]:
        """Run ``key``'s cells, built now if it was off screen when its figures changed."""
        texts = self._cells.get(key)
        if texts is None:
            row, layout, now = self._rows[key], self._layout, self._now
            assert layout is not None and now is not None
            marked = key in self.marked
            name = self._names.get(key, row.name)
            texts = self._cells[key] = cells.row_cells(row, layout, now, marked=marked, name=name)
            self._built[key] = (row.stats, name, marked)
        return texts

    def _restore_cursor(self, key: str | None) -> None:
        if key is not None and key in self._keys:
            self.cursor_row = self._keys.index(key)
        self.cursor_row = max(0, min(self.cursor_row, len(self._keys) - 1))
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        rows_shown = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + rows_shown:
            self.scroll_to(y=self.cursor_row - rows_shown + 1, animate=False, immediate=True)

    def _refresh_row(self, index: int) -> None:
        self._refresh_line(1 + index - int(self.scroll_offset.y))

    def _refresh_line(self, line: int) -> None:
        if 0 <= line < self.size.height:
            self.refresh(Region(0, line, self.size.width, 1))

    def _column_at(self, x: int) -> str | None:
        for key in self.columns:
            width = self._widths[key] + cells.PADDING
            if x < width:
                return key
            x -= width
        return None

    def _announce(self) -> None:
        key = self.selected_key
        if key != self._announced:
            self._announced = key
            self.post_message(self.Selected(key))


def _same_row(old: dict[str, Text] | None, new: dict[str, Text]) -> bool:
    return old is not None and old.keys() == new.keys() and all(cells.same_text(old[c], t) for c, t in new.items())
