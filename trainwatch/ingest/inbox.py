"""What the observer threads and the app tell the watcher's worker, between two passes.

watchdog calls back on its own threads and the app asks from its own; the
worker owns every ``LogSource``. They meet here: callers only note what
changed (under one lock) and wake the worker, which takes everything noted
since its last pass at once, so a burst of events merges into one pass.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Pending:
    """Everything noted since the worker's last pass."""

    dirty: set[str] = field(default_factory=set)  # files that changed (or appeared)
    moved: dict[str, str] = field(default_factory=dict)  # dest -> src
    new_dirs: set[str] = field(default_factory=set)
    gone_dirs: set[str] = field(default_factory=set)
    force: bool = False  # derive and publish even if nothing changed
    rescan: bool = False  # re-check every file and rediscover the roots
    target: tuple[int | None] | None = None  # a new --target (the tuple: None is a value)


class Inbox:
    """Notes from other threads for the worker, and the event that wakes it."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._pending = Pending()

    def files(self, changed: list[str], moved: tuple[str, str] | None = None) -> None:
        """Files that changed, appeared or moved; ``moved``: ``(src, dest)`` of a
        move, noted whether or not either name is a log. Wakes the worker if
        any file changed (a checkpoint being written must not)."""
        with self._lock:
            self._pending.dirty.update(changed)
            if moved is not None:
                self._pending.moved[moved[1]] = moved[0]
        if changed:
            self.wake.set()

    def folder(self, created: str | None, deleted: str | None) -> None:
        """A folder appeared (``created``) and/or went away (``deleted``); wakes the worker."""
        with self._lock:
            if created is not None:
                self._pending.new_dirs.add(created)
            if deleted is not None:
                self._pending.gone_dirs.add(deleted)
        self.wake.set()

    def ask(self, *, rescan: bool = False, target: tuple[int | None] | None = None) -> None:
        """Publish at the next pass, after a full rescan or with a new target."""
        with self._lock:
            self._pending.force = True
            self._pending.rescan |= rescan
            if target is not None:
                self._pending.target = target
        self.wake.set()

    def take(self) -> Pending:
        """Everything noted since the last ``take``."""
        with self._lock:
            pending, self._pending = self._pending, Pending()
        return pending
