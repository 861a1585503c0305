"""The face's plumbing: a watcher wired to its consumers, for the app and the headless commands.

The stages never reach past each other: the app gets a factory that makes a
started-on-demand watcher (it does not import the files stage), and
``serve-metrics`` runs a watcher with no terminal at all, until a signal.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import Snapshot

if TYPE_CHECKING:
    from trainwatch.ingest.grouping import GroupRules
    from trainwatch.ingest.watcher import Watcher
    from trainwatch.outputs.prometheus import MetricsServer

Publish = Callable[[Snapshot], None]


def watcher_factory(
    paths: list[Path],
    options: RunOptions,
    names: Names,
    *,
    poll: float | None = None,
    network_poll: float | None = None,
    also: Publish | None = None,
    grouping: GroupRules | None = None,
) -> Callable[[Publish], Watcher]:
    """A function that makes the watcher of ``paths`` for a consumer's
    ``publish`` (the app's), also publishing to ``also`` (a metrics server)."""

    def factory(publish: Publish) -> Watcher:
        from trainwatch.ingest.watcher import Watcher  # imported here: it loads every parser
        from trainwatch.system.probe import BoxWatch

        to = publish if also is None else _tee(publish, also)
        # The writers of the local logs and their GPUs: who writes each run, and whether it lives.
        return Watcher(
            paths, options, names, to, poll=poll, network_poll=network_poll, grouping=grouping, box=BoxWatch()
        )

    return factory


def _tee(*callbacks: Publish) -> Publish:
    """One publish callback that hands each snapshot to all of ``callbacks``."""

    def publish(snapshot: Snapshot) -> None:
        for callback in callbacks:
            callback(snapshot)

    return publish


def serve(
    server: MetricsServer,
    paths: list[Path],
    options: RunOptions,
    names: Names,
    *,
    poll: float | None = None,
    network_poll: float | None = None,
    grouping: GroupRules | None = None,
) -> int:
    """``trainwatch serve-metrics``: feed the started ``server`` from a watcher
    without a UI until SIGINT/SIGTERM, then stop both; the exit status.

    New problems (an unreadable file, an unreachable host) are written to
    stderr once each.
    """
    from trainwatch.outputs.export import safe_text

    stop = threading.Event()
    seen: set[str] = set()

    def report(snapshot: Snapshot) -> None:
        for problem in watcher.problems:
            if problem not in seen:
                seen.add(problem)
                sys.stderr.write(f"trainwatch: {safe_text(problem)}\n")  # paths and ssh text: no escapes

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    make = watcher_factory(paths, options, names, poll=poll, network_poll=network_poll, also=report, grouping=grouping)
    watcher = make(server.publish)
    try:
        watcher.start()
        sys.stderr.write(f"trainwatch: serving metrics on {server.url} (Ctrl-C stops)\n")
        while not stop.wait(1.0):
            pass
    finally:
        watcher.stop()
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
