"""The base of every screen that shows the live snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.reactive import var
from textual.screen import Screen

from trainwatch.tui.trend import ChartOptions

if TYPE_CHECKING:
    from trainwatch.core.rows import Snapshot


class LiveScreen(Screen[None]):
    """A screen with a reactive ``snapshot``; the app sets it on the screen
    shown when a new snapshot arrives, and a screen brought back takes the
    newest (``on_screen_resume``). ``chart_options`` (smoothing, log scale) is
    the app's, set on every screen in the stack."""

    snapshot: var[Snapshot | None] = var(None, always_update=True)
    chart_options: var[ChartOptions] = var(ChartOptions())

    def on_screen_resume(self) -> None:
        # Screens below the top one are not redrawn for every snapshot (with
        # 100 busy runs that kept the main thread from the keys): catch up,
        # once the screen is back on the terminal as it was.
        self.call_after_refresh(self._catch_up)

    def _catch_up(self) -> None:
        newest = getattr(self.app, "snapshot", None)
        if newest is not None and newest is not self.snapshot and self.is_current:
            self.snapshot = newest
