"""The base of every screen that shows the live snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.reactive import var
from textual.screen import Screen

from trainwatch.tui.trend import ChartOptions

if TYPE_CHECKING:
    from trainwatch.core.rows import Snapshot


class LiveScreen(Screen[None]):
    """A screen with a reactive ``snapshot``; the app sets it on every screen
    in the stack (inside one ``batch_update``) when a new snapshot arrives.
    ``chart_options`` (smoothing, log scale) is the app's, set the same way."""

    snapshot: var[Snapshot | None] = var(None, always_update=True)
    chart_options: var[ChartOptions] = var(ChartOptions())
