"""From the files' sources to a published snapshot: one row per run, named.

``build`` is shared by ``trainwatch snapshot`` (once) and the watcher (on
every change), so the two cannot disagree. ``Publisher`` is the watcher's
side: it derives only the runs that need it, and hands the consumer a new
immutable ``Snapshot`` only when a figure changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from trainwatch.core import metrics
from trainwatch.core.box import BoxFacts
from trainwatch.core.merge import merge
from trainwatch.core.names import Names, display_name
from trainwatch.core.rows import RunRow, Snapshot, disambiguate
from trainwatch.core.stats import DRIFT, RunStats, only_clock_moved
from trainwatch.ingest import remote
from trainwatch.ingest.grouping import Group, Groups
from trainwatch.ingest.source import LogSource

log = logging.getLogger("trainwatch.ingest.watcher")
log.addHandler(logging.NullHandler())  # never print over the TUI

#: A clock tick that changes no figure (or only a finish estimate drifting
#: with the clock) publishes nothing, for at most this long.
QUIET_REPUBLISH = 15.0
_LIVE = ("running", "stalled")


def build(
    sources: Iterable[LogSource],
    names: Names,
    now: datetime,
    derive: Callable[[LogSource], RunStats] | None = None,
    groups: Groups | None = None,
    facts: Mapping[str, BoxFacts] | None = None,
) -> Snapshot:
    """One row per run (``groups``: the files of one job are one run), the
    files that hold none as unrecognised.

    ``derive`` gives a source's stats (default: derived afresh as of ``now``,
    with what the machine says about the run, ``facts`` by path); the watcher
    passes one that reuses the stats of sources that did not change. Without
    ``groups`` the sources are grouped here, as found. A run with a file not
    read yet waits for it, so that its row appears once, with its own path,
    rather than as one file's row that another then joins."""
    by_path = {str(source.path): source for source in sources}
    if groups is None:
        groups = Groups()
    for path in by_path:
        groups.add(path)  # (a no-op for files the watcher placed)
    rows: list[RunRow] = []
    unrecognised: list[tuple[str, str]] = []
    for group in groups.groups():
        members = [by_path.get(path) for path in group.members]
        if any(source is None for source in members):
            continue
        shown: list[tuple[LogSource, RunStats]] = []
        for source in members:
            assert source is not None
            if source.spec is None or not source.ready:
                unrecognised.append((str(source.path), source.problem or "not a training log"))
                continue
            path = str(source.path)
            fact = facts.get(path) if facts else None
            stats = source.agg.stats(now, fact) if derive is None else derive(source)
            if stats.logged_iters == 0 and stats.iter is None:
                unrecognised.append((str(source.path), f"{source.spec.format}: no iterations logged yet"))
                continue
            shown.append((source, stats))
        if shown:
            rows.append(_row(group, _current(shown), groups, names, now))
    return Snapshot(now, tuple(disambiguate(rows)), tuple(unrecognised))


def _row(group: Group, shown: list[tuple[LogSource, RunStats]], groups: Groups, names: Names, now: datetime) -> RunRow:
    """The row of one run from the files that hold it (the primary's first)."""
    kinds = {str(source.path): source.spec.kind if source.spec else None for source, _ in shown}
    path = groups.primary(group, kinds)
    shown.sort(key=lambda member: str(member[0].path) != path)
    paths, figures = tuple(str(source.path) for source, _ in shown), tuple(stats for _, stats in shown)
    last = group.merged
    if last is not None and last[0] == paths and all(a is b for a, b in zip(last[1], figures, strict=True)):
        stats = last[2]  # no file changed: the same object (the app skips it by identity)
    else:
        stats = merge(list(zip(paths, figures, strict=True)), now)
        group.merged = (paths, figures, stats)
    first = shown[0][0]
    fmt = first.spec.format if first.spec is not None else ""
    read = [p for p in kinds if p != path]
    sources = (path, *read, *(c for p in (path, *read) for c in groups.read_with.get(p, ())))
    label = group.label  # a folder's or a job's name, for a run of several files
    name = (
        names.lookup(stats.run_id, Path(path))
        or (names.lookup(None, Path(label)) if label else None)
        or display_name(names, None, stats.log_name or label, Path(path))
    )
    return RunRow(name, path, fmt, stats, remote.host_of(path), sources)


def _current(shown: list[tuple[LogSource, RunStats]]) -> list[tuple[LogSource, RunStats]]:
    """The files whose figures count: a deleted file that another of the run's
    files has caught up with (an old checkpoint removed by ``save_total_limit``)
    no longer does; one with steps no other file has keeps them."""
    if len(shown) == 1:
        return shown
    alive = [s.iter for source, s in shown if source.problem != "deleted" and s.iter is not None]
    reached = max(alive, default=None)
    kept = [
        (source, s)
        for source, s in shown
        if source.problem != "deleted" or reached is None or s.iter is None or s.iter > reached
    ]
    return kept or shown


class Publisher:
    """Derives runs' figures and hands snapshots to ``publish``, from the watcher's one thread."""

    def __init__(
        self,
        names: Names,
        publish: Callable[[Snapshot], None],
        clock: Callable[[], datetime],
        tick: float,
    ) -> None:
        self._names = names
        self._publish_cb = publish
        self._clock = clock
        self._tick = tick
        #: Some run can still change with the clock alone (running or stalled).
        self.live = False
        #: When (monotonic) the clock next needs a publish.
        self.next_tick = 0.0
        self._published_at = -QUIET_REPUBLISH
        # Each run's stats and when (monotonic) they were derived, kept while its log is unchanged.
        self._derived: dict[LogSource, tuple[float, RunStats]] = {}
        # From when (the clock's time), and for how many seconds, a run's stats only drift (metrics.quiet_for).
        self._quiet: dict[LogSource, tuple[datetime, float]] = {}
        # The runs' files, when the caller does not keep them: a row keeps its path from one publish to the next.
        self._groups = Groups()
        #: What the machine says about each run (``core.box``), by path; the watcher sets it,
        #: and ``forget``s the runs whose facts changed.
        self.facts: Mapping[str, BoxFacts] = {}

    def forget(self, source: LogSource | None = None) -> None:
        """Derive ``source`` (default: every run) again at the next publish."""
        if source is None:
            self._derived.clear()
            self._quiet.clear()
        else:
            self._derived.pop(source, None)
            self._quiet.pop(source, None)

    def publish(
        self,
        sources: dict[str, LogSource],
        unread: set[str],
        unrecognised: tuple[tuple[str, str], ...] = (),
        quiet: bool = False,
        groups: Groups | None = None,
        loading: bool = False,
    ) -> None:
        """Derive and hand over a new snapshot. ``quiet`` (a clock tick, no
        file changed): skip it when every figure is as before, up to
        ``QUIET_REPUBLISH`` seconds (a stalled run's age, shown in minutes,
        and finish dates still follow the clock). ``groups``: the runs'
        files, as the watcher places them (default: grouped here as found).
        ``loading``: the first read is not over (``Snapshot.loading``)."""
        now = self._clock()
        clock = time.monotonic()
        ready = [s for k, s in sources.items() if k not in unread]
        due = clock - self._published_at >= QUIET_REPUBLISH  # the drifting figures too
        fresh = [self._stats(source, now, clock, due) for source in ready if source.spec is not None and source.ready]
        if quiet and not any(fresh) and not due:
            self.next_tick = clock + self._tick
            return  # a tick that changed no figure (and no file changed): nothing to show
        snapshot = build(ready, self._names, now, lambda source: self._derived[source][1], groups or self._groups)
        rows = tuple(
            _annotate(row, [sources[p] for p in row.sources or (row.path,) if p in sources]) for row in snapshot.rows
        )
        snapshot = Snapshot(snapshot.generated_at, rows, snapshot.unrecognised + unrecognised, loading)
        self.live = any(row.stats.status in _LIVE for row in rows)
        self.next_tick = clock + self._tick
        self._published_at = clock
        try:
            self._publish_cb(snapshot)
        except Exception:  # the consumer's bug must not stop the watching
            log.exception("trainwatch: publishing a snapshot failed")

    def _stats(self, source: LogSource, now: datetime, clock: float, drift: bool = False) -> bool:
        """Bring ``source``'s stats up to date in ``_derived``; ``True`` if they changed.

        A run's stats are derived again when its log changed (``_refresh``
        drops them) or when they are a tick old (ETAs and stall detection
        follow the clock). With 100 busy runs, re-deriving every run on each
        of ten passes a second cost more than everything else here. A
        re-derive that changes nothing keeps the previous object, so that the
        app (and ``_publish``) can tell an unchanged run by identity, for free.

        A run known to be quiet (only its drifting figures would move, until
        it can turn stalled) is not derived on a tick at all, unless ``drift``
        asks for those figures too: with runs idle, deriving each of them
        every second was most of trainwatch's idle cost.
        """
        memo = self._derived.get(source)
        if memo is not None:
            if clock - memo[0] < self._tick:
                return False
            since, length = self._quiet.get(source, (now, 0.0))
            if not drift and 0 <= (now - since).total_seconds() < length:
                return False  # (a clock set back is no reason to trust it: derived again)
        stats = source.agg.stats(now, self.facts.get(str(source.path)))
        self._quiet[source] = (now, metrics.quiet_for(source.agg, stats, now))
        if memo is not None and memo[1] == stats:
            self._derived[source] = (clock, memo[1])
            return False
        # Kept either way (a snapshot published for another reason carries
        # the current figures), but the drift of a finish estimate alone is
        # no reason to publish: QUIET_REPUBLISH covers it.
        self._derived[source] = (clock, stats)
        return memo is None or not only_clock_moved(memo[1], stats, DRIFT)


def _annotate(row: RunRow, files: list[LogSource]) -> RunRow:
    """A run whose files all went away or became unreadable says so (⚑) and
    keeps its figures; one file of several gone (an old checkpoint) is no news.
    (``files``: the run's sources the watcher reads; not the rotated copies read into one.)"""
    problems = [source.problem for source in files]
    if not problems or not all(problems):
        return row
    problem = problems[0]
    note = (
        "the log file was deleted: these are its last figures"
        if problem == "deleted"
        else f"the log cannot be read now ({problem}): these are its last figures"
    )
    stats = replace(row.stats, warnings=(*row.stats.warnings, note))
    return replace(row, stats=stats, gone=problem == "deleted")
