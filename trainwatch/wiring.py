"""The face's plumbing: a watcher wired to its consumers, for the app and the headless commands.

The stages never reach past each other: the app gets a factory that makes a
started-on-demand watcher (it does not import the files stage), and
``serve-metrics`` and ``alert`` run a watcher with no terminal at all, until
a signal. Between the watcher and its consumers sits a ``Relay``: it
attaches each run's Slurm job (``system.slurm``) and shows every snapshot to
the notifier (``system.notify``), so the app, the metrics and the push
alerts see the same runs; the files stage knows nothing of either.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
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
    from trainwatch.system.notify import Notifier
    from trainwatch.system.slurm import SlurmWatch

Publish = Callable[[Snapshot], None]
#: New problems written to stderr one by one at a time; the rest are counted in one more line.
PROBLEMS_SHOWN = 10


class Relay:
    """The watcher's ``publish``: Slurm jobs attached, the notifier told, then the consumer.

    Slurm is asked in a thread of its own; when it has news, the last
    snapshot is handed on again with the news attached (``republish``)."""

    def __init__(self, downstream: Publish, *, slurm: SlurmWatch | None = None, notifier: Notifier | None = None):
        self._downstream = downstream
        self.slurm = slurm
        self.notifier = notifier
        self._lock = threading.Lock()  # the watcher's and Slurm's threads hand on in turn, in order
        self._last: Snapshot | None = None
        if slurm is not None:
            slurm.on_news = self.republish

    def __call__(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._last = snapshot
            self._hand_on(snapshot)

    def republish(self) -> None:
        with self._lock:
            if self._last is not None:
                self._hand_on(self._last)

    def _hand_on(self, snapshot: Snapshot) -> None:
        if self.slurm is not None:
            snapshot = self.slurm.annotate(snapshot)
        if self.notifier is not None:
            self.notifier.observe(snapshot)
        self._downstream(snapshot)

    def start(self) -> None:
        if self.slurm is not None:
            self.slurm.start()
        if self.notifier is not None:
            self.notifier.start()

    def stop(self) -> None:
        if self.slurm is not None:
            self.slurm.stop()
        if self.notifier is not None:
            self.notifier.stop()  # sends what is still queued

    @property
    def problems(self) -> list[str]:
        notifier = self.notifier
        return notifier.problems if notifier is not None else []


class Watching:
    """A watcher and its relay, started and stopped together (what the app's ``source_factory`` makes)."""

    def __init__(self, watcher: Watcher, relay: Relay) -> None:
        self.watcher = watcher
        self.relay = relay

    def start(self) -> None:
        self.relay.start()
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        self.relay.stop()

    def refresh_now(self) -> None:
        self.watcher.refresh_now()

    def set_target(self, target: int | None) -> None:
        self.watcher.set_target(target)

    @property
    def mode(self) -> str:
        return self.watcher.mode

    @property
    def network_paths(self) -> list[Path]:
        return self.watcher.network_paths

    @property
    def problems(self) -> list[str]:
        return self.watcher.problems + self.relay.problems

    @property
    def loading(self) -> tuple[int, int] | None:
        return self.watcher.loading


def watcher_factory(
    paths: list[Path],
    options: RunOptions,
    names: Names,
    *,
    poll: float | None = None,
    network_poll: float | None = None,
    also: Publish | None = None,
    grouping: GroupRules | None = None,
    notify: Sequence[str] = (),
) -> Callable[[Publish], Watching]:
    """A function that makes the watcher of ``paths`` for a consumer's
    ``publish`` (the app's), also publishing to ``also`` (a metrics server),
    with Slurm jobs attached where Slurm is installed, and push alerts to
    the apprise URLs ``notify``."""

    def factory(publish: Publish) -> Watching:
        from trainwatch.ingest.watcher import Watcher  # imported here: it loads every parser
        from trainwatch.system.probe import BoxWatch
        from trainwatch.system.slurm import SlurmWatch

        notifier = None
        if notify:
            from trainwatch.system.notify import Notifier

            notifier = Notifier(notify)
        to = publish if also is None else _tee(publish, also)
        relay = Relay(to, slurm=SlurmWatch(), notifier=notifier)
        # The writers of the local logs and their GPUs: who writes each run, and whether it lives.
        watcher = Watcher(
            paths, options, names, relay, poll=poll, network_poll=network_poll, grouping=grouping, box=BoxWatch()
        )
        return Watching(watcher, relay)

    return factory


def _tee(*callbacks: Publish) -> Publish:
    """One publish callback that hands each snapshot to all of ``callbacks``."""

    def publish(snapshot: Snapshot) -> None:
        for callback in callbacks:
            callback(snapshot)

    return publish


def serve(
    server: MetricsServer | None,
    paths: list[Path],
    options: RunOptions,
    names: Names,
    *,
    poll: float | None = None,
    network_poll: float | None = None,
    grouping: GroupRules | None = None,
    notify: Sequence[str] = (),
) -> int:
    """``trainwatch serve-metrics`` and ``trainwatch alert``: feed the started
    ``server`` (if any) and push alerts to ``notify`` (if any) from one
    watcher without a UI until SIGINT/SIGTERM/SIGHUP, then stop; the exit status.

    New problems (an unreadable file, an unreachable host, a notification
    not delivered) are written to stderr once each.
    """
    from trainwatch.outputs.export import safe_text

    stop = threading.Event()
    seen: set[str] = set()

    def report(snapshot: Snapshot) -> None:
        new = [p for p in watching.problems if p not in seen]
        seen.update(new)
        if len(new) > PROBLEMS_SHOWN + 1:  # a folder of 50,000 FIFOs is not 50,000 lines
            new[PROBLEMS_SHOWN:] = [f"… and {len(new) - PROBLEMS_SHOWN:,} more files that cannot be read"]
        for problem in new:
            sys.stderr.write(f"trainwatch: {safe_text(problem)}\n")  # paths and ssh text: no escapes

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # SIGHUP too (the terminal or the ssh session it was started from closed):
    # dying by the default action would skip stopping the ssh links.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    also = report if server is None else _tee(server.publish, report)
    make = watcher_factory(
        paths, options, names, poll=poll, network_poll=network_poll, grouping=grouping, notify=notify
    )
    watching = make(also)
    try:
        watching.start()
        doing = [f"serving metrics on {server.url}"] if server is not None else []
        if notify:
            doing.append(f"sending alerts to {len(notify)} destination{'s' if len(notify) > 1 else ''}")
        sys.stderr.write(f"trainwatch: {' and '.join(doing)} (Ctrl-C stops)\n")
        while not stop.wait(1.0):
            pass
    finally:
        watching.stop()
        if server is not None:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
