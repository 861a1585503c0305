"""The watchdog side of the watcher: which folders are watched, by which
observer, for which events.

A root folder gets one recursive watch; a log named on the command line gets
a watch of its folder. inotify is used where it can see the writes; roots on
network filesystems and ``--poll`` use a polling observer, and so does
everything once inotify's watch limit is reached (better late than blind). A
watched folder that is deleted has its nearest existing ancestor watched
until it comes back. While many logs change at once (``trainwatch.ingest.statpoll``)
the inotify watches are re-scheduled without modification events.

Only the watcher's worker thread calls this; the observers' threads call the
``on_event`` callback it is given.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    EventsLostEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # never print over the TUI; problems are also in ``problems``
# Nor may watchdog ("Inotify queue overflowed" went to stderr, over the app's
# screen): with a handler of its own, logging's last resort stays silent.
logging.getLogger("watchdog").addHandler(logging.NullHandler())

# Creation, change, deletion and moves only: our own reads (open, access,
# close-nowrite) must never wake us. And the news that events were lost (the
# kernel's queue overflowed): the watcher then looks at everything again.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    EventsLostEvent,
]
#: ``event_type`` of ``EventsLostEvent``.
EVENTS_LOST = EventsLostEvent.event_type
# While busy (trainwatch.ingest.statpoll): everything but modifications, which a stat sweep finds.
_BUSY_EVENTS = [e for e in _EVENTS if e is not FileModifiedEvent]


@dataclass
class Target:
    """One scheduled watch: a root folder (recursive) or a named file's folder."""

    path: str
    recursive: bool
    polled: bool
    handle: ObservedWatch | None = None
    observer: BaseObserver | None = None
    lost: bool = False  # the folder was deleted; an ancestor is watched for its return
    stand_in: ObservedWatch | None = None


class _Handler(FileSystemEventHandler):
    def __init__(self, on_event: Callable[[FileSystemEvent], None]) -> None:
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._on_event(event)


class Watches:
    """Every scheduled watch and the observers behind them."""

    def __init__(
        self,
        on_event: Callable[[FileSystemEvent], None],
        problems: dict[str, str],
        *,
        poll: float | None,
        network_poll: float,
    ) -> None:
        self._on_event = on_event
        self._problems = problems  # the watcher's: one line per folder that cannot be watched
        self._poll = poll
        self._network_poll = network_poll
        self._targets: dict[tuple[str, bool], Target] = {}
        self._native: BaseObserver | None = None
        self._poller: BaseObserver | None = None
        #: Why inotify gave way to polling (its watch limit), once it has.
        self.fallback: str | None = None
        #: Modification events are off (many logs change at once; see statpoll).
        self.busy = False

    @property
    def native(self) -> bool:
        """Whether any folder is watched by inotify (or the platform's own observer)."""
        return self._native is not None

    @property
    def targets(self) -> list[Target]:
        return list(self._targets.values())

    def watch(self, path: str, recursive: bool, polled: bool) -> None:
        """Watch ``path`` (once, however often asked); ``polled`` for a network filesystem."""
        target = self._targets.setdefault((path, recursive), Target(path, recursive, polled))
        if target.handle is None and not target.lost:
            self._schedule(target)

    def set_busy(self, busy: bool) -> None:
        """Re-schedule the inotify watches with or without modification events.

        A change written while a folder is between two watches is missed:
        the watcher re-reads every log after calling this.
        """
        self.busy = busy
        native = self._native
        for target in self._targets.values():
            if native is not None and target.observer is native and target.handle is not None:
                _unschedule(native, target.handle)
                target.handle = None
                self._schedule(target)

    def rewatch(self, path: str) -> None:
        """Watch ``path`` anew: it is a symlink that points elsewhere now, and
        a watch follows the link once, when it is made."""
        for target in self._targets.values():
            if target.path == path and target.handle is not None and target.observer is not None:
                _unschedule(target.observer, target.handle)
                target.handle = None
                self._schedule(target)

    def folder_gone(self, folder: str) -> None:
        """``folder`` was deleted: watch its nearest ancestor for its return."""
        for target in self._targets.values():
            if target.path == folder and not target.lost:
                if target.handle is not None and target.observer is not None:
                    _unschedule(target.observer, target.handle)
                target.handle, target.lost = None, True
                self._problems[folder] = f"{folder} was deleted: its runs keep their last figures"
                self._watch_for_return(target)

    def returned(self, folder: str) -> list[Target]:
        """``folder`` appeared: the lost watches at or below it that are watched again."""
        back: list[Target] = []
        inside = folder.rstrip(os.sep) + os.sep
        for target in list(self._targets.values()):
            if target.lost and (target.path == folder or target.path.startswith(inside)):
                self._watch_for_return(target)
                if not target.lost:
                    back.append(target)
        return back

    def mode(self, busy: str, network: dict[Path, str], roots: int) -> str:
        """How changes under the local roots are noticed, for the header: ``busy``
        says what the stat sweeps do, ``network`` the roots on network mounts."""
        native = native_name() + busy
        if self._poll is not None:
            return f"polling every {self._poll:g}s"
        if self.fallback is not None:
            return f"polling every {self._network_poll:g}s · {self.fallback}"
        if not network:
            return native
        kinds = ", ".join(sorted(set(network.values())))
        count = len(network)
        where = f"{count} path{'s' if count > 1 else ''} on {kinds}"
        if count == roots:
            return f"polling every {self._network_poll:g}s · {where}"
        return f"{native} · {where} polled every {self._network_poll:g}s"

    def stop(self) -> None:
        for observer in (self._native, self._poller):
            if observer is not None and observer.is_alive():
                observer.stop()
                observer.join(timeout=10)

    def _polling(self, target: Target) -> bool:
        return target.polled or self._poll is not None or self.fallback is not None

    def _schedule(self, target: Target) -> None:
        polling = self._polling(target)
        try:
            observer = self._observer(polling)
            events = _BUSY_EVENTS if self.busy and not polling else _EVENTS
            target.handle = observer.schedule(
                _Handler(self._on_event), target.path, recursive=target.recursive, event_filter=events
            )
        except OSError as exc:
            if polling or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                self._problems[target.path] = f"cannot watch {target.path}: {exc.strerror or exc}"
                return
            # The inotify watch limit: poll rather than go blind.
            self.fallback = str(exc.strerror or exc)
            log.warning("trainwatch: %s on %s; polling instead", self.fallback, target.path)
            self._schedule(target)
            return
        target.observer, target.lost = observer, False
        self._problems.pop(target.path, None)

    def _observer(self, polling: bool) -> BaseObserver:
        if polling:
            if self._poller is None:
                self._poller = PollingObserver(timeout=self._poll or self._network_poll)
                self._poller.start()
            return self._poller
        if self._native is None:
            self._native = Observer()
            self._native.start()
        return self._native

    def _watch_for_return(self, target: Target) -> None:
        """Re-watch a deleted folder that is back, else watch its nearest ancestor for its return."""
        if target.stand_in is not None and target.observer is not None:
            # Lost folders with one ancestor share its watch: re-arm the others.
            others = [t for t in self._targets.values() if t is not target and t.stand_in == target.stand_in]
            _unschedule(target.observer, target.stand_in)
            for t in [target, *others]:
                t.stand_in = None
            for other in others:
                self._watch_for_return(other)
        if os.path.isdir(target.path):
            self._schedule(target)
            return
        ancestor = os.path.dirname(target.path)
        while not os.path.isdir(ancestor) and os.path.dirname(ancestor) != ancestor:
            ancestor = os.path.dirname(ancestor)
        observer = self._observer(self._polling(target))
        try:
            # Its own filter makes it a watch of its own, never shared with a root's.
            target.stand_in = observer.schedule(
                _Handler(self._on_event), ancestor, event_filter=[DirCreatedEvent, DirMovedEvent]
            )
            target.observer = observer
        except OSError as exc:
            log.warning("trainwatch: cannot watch %s for %s to return: %s", ancestor, target.path, exc)


def native_name() -> str:
    """What the header calls this platform's observer: "inotify", "FSEvents"…"""
    name = getattr(Observer, "__name__", "")
    return {
        "InotifyObserver": "inotify",
        "FSEventsObserver": "FSEvents",
        "KqueueObserver": "kqueue",
        "WindowsApiObserver": "ReadDirectoryChangesW",
    }.get(name, "polling")


def _unschedule(observer: BaseObserver, handle: ObservedWatch) -> None:
    with contextlib.suppress(KeyError):  # its emitter may be gone already
        observer.unschedule(handle)
