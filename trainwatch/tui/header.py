"""The one-line header: what is watched, how, and the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual.widget import Widget

if TYPE_CHECKING:
    from trainwatch.snapshot import Snapshot


class HeaderBar(Widget):
    """``trainwatch · 4 runs in ~/runs · inotify          Sat 12:04:31 · ? help``"""

    DEFAULT_CSS = """
    HeaderBar {
        dock: top;
        height: 1;
        background: $panel;
        color: $text;
    }
    """

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)

    def __init__(self, where: str, mode: Callable[[], str], clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.where = where
        self._mode = mode
        self._clock = clock
        self._time = ""

    def on_mount(self) -> None:
        self._time = self._clock_text()
        # The only timer in the app: the clock ticks once a second, and only
        # repaints this one line when its text changes.
        self.set_interval(1.0, self._tick)

    def _clock_text(self) -> str:
        return self._clock().strftime("%a %H:%M:%S")

    def _tick(self) -> None:
        text = self._clock_text()
        if text != self._time:
            self._time = text
            self.refresh()

    def render(self) -> RenderResult:
        left = Text(" ")
        left.append("trainwatch", style="bold #5fafff")
        snapshot = self.snapshot
        if snapshot is None:
            left.append(f" · loading {self.where}…")
        else:
            n = len(snapshot.rows)
            left.append(f" · {n} run{'s' if n != 1 else ''} in ")
            left.append(self.where)
        left.append(f" · {self._mode()}", style="dim")
        right = Text(self._time or self._clock_text())
        right.append(" · ")
        right.append("?", style="bold")
        right.append(" help ")
        grid = Table.grid(expand=True)
        grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        grid.add_column(justify="right", no_wrap=True)
        grid.add_row(left, right)
        return grid
