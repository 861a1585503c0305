"""The watcher's side of a ``core.box.BoxProbe``: which runs to ask about, and what moved.

The probe (``trainwatch.system.probe.BoxWatch``, handed in by the face: this
stage may not import ``system``) says who writes each local log and what
its GPUs do. Here its answers become the publisher's ``facts``; the runs
whose facts changed are derived again, and a run whose writer just went is
read once more before that (its last lines may say it finished, which
outranks ``exited``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from trainwatch.core.box import BoxProbe
from trainwatch.ingest.publish import Publisher
from trainwatch.ingest.source import LogSource

#: A probe's next sample waits at least this long after the watcher's last
#: pass: a probe that keeps saying "due now" cannot make the watcher spin.
MIN_WAIT = 1.0


class BoxFeed:
    """Feeds the publisher what ``probe`` says (nothing without a probe)."""

    def __init__(self, probe: BoxProbe | None, wake: Callable[[], None]) -> None:
        self._probe = probe
        if probe is not None:
            probe.wake_with(wake)  # a writer that ends wakes the watcher at once

    def look(
        self, sources: dict[str, LogSource], skip: Collection[str], grown: Collection[str], publisher: Publisher
    ) -> tuple[list[str], list[str]]:
        """Ask about the local runs (keys not in ``skip``; ``grown``: their logs
        grew); returns the keys whose facts moved, and of them those whose
        writer just went. Moved runs are forgotten by ``publisher``."""
        if self._probe is None:
            return [], []
        local = [key for key, source in sources.items() if key not in skip and source.spec is not None]
        facts = self._probe.look(local, [key for key in grown if key in sources and key not in skip])
        before = publisher.facts
        moved = [key for key in set(facts) | set(before) if facts.get(key) != before.get(key)]
        publisher.facts = dict(facts)
        gone = []
        for key in moved:
            now, was = facts.get(key), before.get(key)
            if now is not None and now.gone and not (was is not None and was.gone):
                gone.append(key)
            if key in sources:
                publisher.forget(sources[key])
        return moved, gone

    def next_due(self, last_pass: float) -> float | None:
        """When (monotonic) the probe has news without a log changing."""
        due = self._probe.next_due() if self._probe is not None else None
        return None if due is None else max(due, last_pass + MIN_WAIT)

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
