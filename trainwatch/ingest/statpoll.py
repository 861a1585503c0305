"""When many logs change at once: check them with ``stat`` instead of taking events.

watchdog turns every append into Python work in three threads (the inotify
reader, the emitter, the dispatcher): about half a millisecond a line on a
shared box. With a hundred runs each logging a line a second that is 5 % of
a core before a single byte is read, while ``os.stat`` of a hundred known
logs costs a fraction of a millisecond. So the Watcher counts how many logs
change per second; above ``BUSY_RATE`` it stops asking inotify for
modifications (creations, moves and deletions still come as events, so new
runs appear at once) and stats the logs it knows every second or two
instead (``sweep_interval``: each changed log costs a read and a derive, so
the more of them change, the less often they are looked at, up to
``MAX_POLL``); below ``CALM_RATE`` it goes back to events, which show a single
run's line within milliseconds. The two rates are far apart so that a load
near one of them does not flip the mode back and forth.

Pure bookkeeping, no threads: the Watcher's worker calls these.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable

#: Changed logs per second, averaged over ``WINDOW``, above which events give way to polling.
BUSY_RATE = 20.0
#: ... and below which polling gives way to events again.
CALM_RATE = 5.0
#: Seconds over which the rate is measured; a mode is also kept at least this long.
WINDOW = 3.0
#: Seconds between two stat sweeps while busy: the table then updates once a second, as top does ...
BUSY_POLL = 1.0
#: ... or less often when more than ``SWEEP_BUDGET`` logs changed since the last sweep ...
SWEEP_BUDGET = 50
#: ... but at least this often.
MAX_POLL = 2.0

#: What identifies a file's content changing: a new file, a new length, a new write time.
Stamp = tuple[int, int, int] | None


class LoadGauge:
    """The rate of changed logs, and whether it calls for polling (with hysteresis)."""

    def __init__(self, busy_rate: float = BUSY_RATE, calm_rate: float = CALM_RATE, window: float = WINDOW) -> None:
        self.busy = False
        self._busy_rate = busy_rate
        self._calm_rate = calm_rate
        self._window = window
        self._counts: deque[tuple[float, int]] = deque()
        self._total = 0
        self._since = 0.0  # when the current mode began

    def note(self, changed: int, now: float) -> bool:
        """``changed`` logs were found changed at ``now`` (monotonic); ``True`` if the mode flips."""
        if changed:
            self._counts.append((now, changed))
            self._total += changed
        while self._counts and self._counts[0][0] <= now - self._window:
            self._total -= self._counts.popleft()[1]
        if now - self._since < self._window:
            return False  # too soon after the last flip (or the start) to judge
        rate = self._total / self._window
        flip = rate < self._calm_rate if self.busy else rate >= self._busy_rate
        if flip:
            self.busy = not self.busy
            self._since = now
        return flip


def sweep_interval(changed: int) -> float:
    """Seconds until the next sweep, after one that found ``changed`` logs changed.

    About ``SWEEP_BUDGET`` logs are read a second, at most: a hundred logs
    that each grow every second are read every two seconds, two lines each.
    """
    if changed <= SWEEP_BUDGET:
        return BUSY_POLL
    return min(MAX_POLL, math.ceil(2 * changed / SWEEP_BUDGET) / 2)  # in half seconds: a steady header


class StatSweep:
    """The last stamp seen of each log, to tell which changed since the last sweep."""

    def __init__(self) -> None:
        self._stamps: dict[str, Stamp] = {}

    def changed(self, paths: Iterable[str]) -> list[str]:
        """The paths whose stamp differs from the last sweep's (all of them at the first)."""
        out = []
        old, new = self._stamps, {}
        for path in paths:
            new[path] = stamp = _stamp(path)
            if old.get(path, 0) != stamp:  # 0: never seen, unlike any stamp
                out.append(path)
        self._stamps = new  # rebuilt: a log no longer watched is dropped
        return out

    def forget(self) -> None:
        """Start over: the next sweep reports every path."""
        self._stamps.clear()


def _stamp(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None  # gone or unreadable: its source finds out which when refreshed
    return (st.st_ino, st.st_size, st.st_mtime_ns)
