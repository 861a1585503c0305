"""The base of every screen that shows the live snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.reactive import var
from textual.screen import Screen

if TYPE_CHECKING:
    from trainwatch.core.rows import Snapshot


class LiveScreen(Screen[None]):
    """A screen with a reactive ``snapshot``; the app sets it on every screen
    in the stack (inside one ``batch_update``) when a new snapshot arrives."""

    snapshot: var[Snapshot | None] = var(None, always_update=True)
