"""The one-line header: what is watched, how, and the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import RenderResult
from textual.reactive import var
from textual.widget import Widget

if TYPE_CHECKING:
    from trainwatch.core.rows import Snapshot


class HeaderBar(Widget):
    """``trainwatch · 4 runs in ~/runs · inotify                 Sat 12:04 · ? help``

    Repaints only when its text changes: a new snapshot with the same number
    of runs, or a clock tick within the same minute, costs nothing on screen.
    """

    DEFAULT_CSS = """
    HeaderBar {
        dock: top;
        height: 1;
        background: $panel;
        color: $text;
    }
    """

    snapshot: var[Snapshot | None] = var(None, always_update=True)

    def __init__(self, where: str, mode: Callable[[], str], clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.where = where
        self._mode = mode
        self._clock = clock
        self._shown: tuple[str, str, str] | None = None

    def on_mount(self) -> None:
        self._next_minute()

    def _next_minute(self) -> None:
        """The app's only timer: it wakes when the minute turns, not every
        second (an idle app must cost nothing, on a busy training box)."""
        now = self._clock()
        self.set_timer(60.05 - now.second - now.microsecond / 1e6, self._on_minute)

    def _on_minute(self) -> None:
        self._maybe_refresh()
        self._next_minute()

    def watch_snapshot(self) -> None:
        self._maybe_refresh()

    def _texts(self) -> tuple[str, str, str]:
        """What is watched, how, and the time: the header changes when these do."""
        snapshot = self.snapshot
        if snapshot is None:
            where = f" · loading {self.where}…"
        else:
            n = len(snapshot.rows)
            where = f" · {n} run{'s' if n != 1 else ''} in {self.where}"
        return where, self._mode(), self._clock().strftime("%a %H:%M")

    def _maybe_refresh(self) -> None:
        if self._texts() != self._shown:
            self.refresh()

    def render(self) -> RenderResult:
        self._shown = where, mode, clock = self._texts()
        left = Text(" ", no_wrap=True, overflow="ellipsis", end="")
        left.append("trainwatch", style="bold #5fafff")
        left.append(where)
        left.append(f" · {mode}", style="dim")
        right = Text(clock, end="")
        right.append(" · ")
        right.append("?", style="bold")
        right.append(" help ")
        width = self.size.width
        room = max(0, width - right.cell_len - 1)
        left.truncate(room, overflow="ellipsis", pad=True)
        return left + Text(" ") + right if width > right.cell_len else right
