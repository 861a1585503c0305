"""Told the moment a writer process ends: one thread asleep in ``poll`` on pidfds.

A pidfd becomes readable when its process ends, so the watcher need not ask
"still alive?" on a clock: this thread sleeps until some followed process
ends (or it is handed a new one), then calls ``wake``, and the watcher's
next pass finds which (``processes.still_alive``). It owns copies of the
pidfds (``os.dup``), so the watcher can close its own at any time. Where
the system has no pidfds (not Linux 5.3+), nothing is followed here and
the watcher's clock tick asks instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())


class ExitWaiter:
    """Calls ``wake`` (from its own thread) each time a followed process ends."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._new: list[int] = []  # dup'd pidfds for the thread to follow
        self._closing = False
        self._thread: threading.Thread | None = None
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def follow(self, pidfd: int) -> None:
        """Wake when the process of ``pidfd`` ends (a copy is kept; the caller may close its own)."""
        try:
            copy = os.dup(pidfd)
        except OSError:
            return
        with self._lock:
            if self._closing:
                os.close(copy)
                return
            self._new.append(copy)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="trainwatch-exits", daemon=True)
                self._thread.start()
        self._nudge()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            thread = self._thread
        self._nudge()
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:
            for fd in self._new:
                os.close(fd)
            self._new.clear()
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _nudge(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe already says "look"
            os.write(self._write, b"!")

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        followed: set[int] = set()
        try:
            while True:
                for fd, _ in poller.poll():
                    if fd == self._read:
                        with contextlib.suppress(OSError):
                            os.read(self._read, 4096)
                        with self._lock:
                            if self._closing:
                                return
                            new, self._new = self._new, []
                        for pidfd in new:
                            poller.register(pidfd, select.POLLIN)
                            followed.add(pidfd)
                    elif fd in followed:  # a process ended
                        poller.unregister(fd)
                        followed.discard(fd)
                        os.close(fd)
                        try:
                            self._wake()
                        except Exception:  # the watcher's bug: its clock tick still asks
                            log.exception("trainwatch: waking the watcher failed")
        finally:
            for fd in followed:
                os.close(fd)
