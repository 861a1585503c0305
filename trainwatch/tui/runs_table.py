"""The runs table: one row per run, updated in place from each snapshot.

A new snapshot changes only the cells whose text changed (``update_cell``);
rows are keyed by ``RunRow.key`` so the cursor stays on the same run across
updates, re-sorts and filtering. The columns are rebuilt only when the
layout changes (a resize, a new sort arrow), never per snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist

from trainwatch.tui import cells

if TYPE_CHECKING:
    from trainwatch.snapshot import RunRow, Snapshot


class _KeyedText(Text):
    """The mark cell, which also carries its row's key so that sorting can use
    our own order (DataTable.sort hands the key function cell values only)."""

    def __init__(self, text: Text, row_key: str) -> None:
        super().__init__(text.plain, style=text.style, justify=text.justify, no_wrap=True, end="")
        self.row_key = row_key


class RunsTable(DataTable[Text]):
    """Runs as rows, with sorting, a name filter and marks for comparing."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Detail", key_display="⏎")]

    class Selected(Message):
        """The run under the cursor changed (moved, sorted, filtered or first shown)."""

        def __init__(self, key: str | None) -> None:
            super().__init__()
            self.key = key

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, cell_padding=1)
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.query_text = ""
        self.marked: set[str] = set()
        self._layout: cells.Layout | None = None
        self._label_state: tuple[str | None, bool] = (None, False)
        self._cells: dict[str, dict[str, Text]] = {}
        self._announced: str | None = None
        self._visible: list[RunRow] = []

    # ------------------------------------------------------------- public API

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None

    @property
    def visible_rows(self) -> list[RunRow]:
        """The rows shown, in display order."""
        return list(self._visible)

    def set_sort(self, column: str | None, reverse: bool = False) -> None:
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

    def toggle_mark(self) -> None:
        key = self.selected_key
        if key is None:
            return
        self.marked ^= {key}
        self._sync()

    # ----------------------------------------------------------------- events

    def watch_snapshot(self) -> None:
        self._sync()

    def on_resize(self) -> None:
        self._sync()

    def on_data_table_row_highlighted(self) -> None:
        self._announce()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = event.column_key.value
        if key not in cells.SORTABLE:
            return
        self.set_sort(key, not self.sort_reverse if key == self.sort_column else False)

    # -------------------------------------------------------------- internals

    def _sync(self) -> None:
        snapshot = self.snapshot
        if snapshot is None:
            return
        now = snapshot.generated_at
        rows = [r for r in snapshot.rows if cells.matches(r, self.query_text)]
        self._visible = cells.sort_rows(rows, self.sort_column, self.sort_reverse)
        self.marked &= {r.key for r in snapshot.rows}
        # The layout depends on every run, not the filtered few: filtering must not reflow.
        layout, _ = cells.fit(snapshot.rows, max(0, self.size.width - 1), now, self.sort_column)
        fresh = {r.key: cells.row_cells(r, layout, now, marked=r.key in self.marked) for r in self._visible}
        keep = self.selected_key
        if layout != self._layout or self._label_state != (self.sort_column, self.sort_reverse):
            self._rebuild(layout, fresh)
        else:
            self._update(fresh)
        self._restore_cursor(keep)
        self._announce()

    def _rebuild(self, layout: cells.Layout, fresh: dict[str, dict[str, Text]]) -> None:
        self._layout = layout
        self._label_state = (self.sort_column, self.sort_reverse)
        self.clear(columns=True)
        for key in layout.columns:
            self.add_column(self._label(key), key=key)
        self._cells = {}
        for key, row in fresh.items():
            self._add(key, row)

    def _update(self, fresh: dict[str, dict[str, Text]]) -> None:
        for key in [k for k in self._cells if k not in fresh]:
            self.remove_row(key)
            del self._cells[key]
        for key, row in fresh.items():
            if key not in self._cells:
                self._add(key, row)
                continue
            old = self._cells[key]
            for column, text in row.items():
                if not _same(old.get(column), text):
                    value = _KeyedText(text, key) if column == "mark" else text
                    self.update_cell(key, column, value, update_width=True)
            self._cells[key] = row
        self._apply_order([r.key for r in self._visible])

    def _add(self, key: str, row: dict[str, Text]) -> None:
        values = [_KeyedText(text, key) if column == "mark" else text for column, text in row.items()]
        self.add_row(*values, key=key)
        self._cells[key] = row

    def _apply_order(self, keys: Sequence[str]) -> None:
        current = [row.key.value for row in self.ordered_rows]
        if current == list(keys):
            return
        position = {key: index for index, key in enumerate(keys)}
        self.sort("mark", key=lambda cell: position[cell.row_key])

    def _restore_cursor(self, key: str | None) -> None:
        if key is None or key not in self._cells:
            return
        index = self.get_row_index(key)
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False)

    def _announce(self) -> None:
        key = self.selected_key
        if key != self._announced:
            self._announced = key
            self.post_message(self.Selected(key))

    def _label(self, key: str) -> Text:
        column = cells.COLUMN[key]
        justify = column.header_justify or column.justify
        title = column.title
        if key == self.sort_column:
            arrow = "▼" if self.sort_reverse else "▲"
            title = f"{title} {arrow}" if justify == "left" else f"{arrow} {title}"
        return Text(title, justify=justify, no_wrap=True)


def _same(a: Text | None, b: Text) -> bool:
    # Text.__eq__ ignores the base style, which carries the status colour.
    return a is not None and a.plain == b.plain and a.style == b.style and a.spans == b.spans
