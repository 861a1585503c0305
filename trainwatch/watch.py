"""Live watching: filesystem events in, immutable Snapshots out.

watchdog observers (inotify, or polling for ``--poll`` and network mounts;
``trainwatch.watches`` schedules them) call ``_on_event``, which only records
the path as dirty and sets one ``threading.Event``. One worker thread owns
every ``LogSource``: it wakes on that event, refreshes the dirty sources, and
publishes a new ``Snapshot`` when something changed. Events that arrive
while it works merge into its next pass, and passes are at least
``MIN_PASS_INTERVAL`` apart, so a burst of appends costs one or two reads.
When many logs change every second, the watcher stops taking modification
events and stats the logs it knows every second or two instead
(``trainwatch.statpoll`` says why). The only clock is a tick of at most 1 Hz
that re-derives the runs whose ETA counts down, and a quiet run once it can
turn stalled (``metrics.quiet_for``); it stops when every run is finished,
failed or diverged, and then nothing runs until a file changes. Files are
opened read-only (``LogSource``); nothing is ever written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from watchdog.events import FileSystemEvent

from trainwatch import metrics, mounts, remote, statpoll
from trainwatch.names import Names
from trainwatch.snapshot import RunRow, Snapshot, build
from trainwatch.source import LogSource, RunOptions, SourceError, discover, is_log_name
from trainwatch.stats import DRIFT, RunStats, only_clock_moved
from trainwatch.watches import Watches, native_name

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # never print over the TUI; problems are also in ``problems``

#: Seconds between two refresh passes at least: a burst of events coalesces.
MIN_PASS_INTERVAL = 0.1
#: While the first read of many files runs, publish rows this often.
LOAD_PUBLISH_INTERVAL = 0.25
#: A clock tick that changes no figure (or only a finish estimate drifting
#: with the clock) publishes nothing, for at most this long.
QUIET_REPUBLISH = 15.0
#: A new file that may be a rotated copy of a log (``_copy_of_shown``) and
#: still cannot be told after this many seconds is a run of its own.
UNDECIDED_S = 30.0
#: Default polling interval for roots on network filesystems (inotify cannot
#: see other hosts' writes) and for remote hosts (``--poll-network``).
NETWORK_POLL = 2.0
_LIVE = ("running", "stalled")


class Watcher:
    """Owns watchdog and one LogSource per file; publishes immutable Snapshots from ONE worker thread."""

    def __init__(
        self,
        paths: list[Path],
        options: RunOptions,
        names: Names,
        publish: Callable[[Snapshot], None],
        *,
        poll: float | None = None,
        clock: Callable[[], datetime] = datetime.now,
        tick: float = 1.0,
        network_poll: float | None = None,
        ssh_options: Sequence[str] | None = None,
    ) -> None:
        remote_roots, paths = remote.split_roots(paths)
        self._roots = [Path(os.path.abspath(p)) for p in paths]
        self._options = options
        self._names = names
        self._publish_cb = publish
        self._poll = poll
        self._network_poll = network_poll or NETWORK_POLL
        self._clock = clock
        self._tick = tick
        # Shared with the observer threads (under _lock).
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._dirty: set[str] = set()
        self._moved: dict[str, str] = {}  # dest -> src
        self._new_dirs: set[str] = set()
        self._gone_dirs: set[str] = set()
        self._force = False
        self._rescan_all = False
        self._target: tuple[int | None] | None = None
        # Worker state.
        self._sources: dict[str, LogSource] = {}
        self._unread: set[str] = set()
        self._aliases: dict[str, str] = {}  # resolved path -> source key
        self._ignored: set[str] = set()  # rotated-away copies of runs already shown
        # Maybe such a copy, still being written, and since when (see _copy_of_shown).
        self._undecided: dict[str, float] = {}
        self._dir_roots = {str(r) for r in self._roots if not r.is_file()}
        self._file_roots = {str(r) for r in self._roots if r.is_file()}
        self._real_roots = {r: os.path.realpath(r) for r in self._dir_roots}
        self._problems: dict[str, str] = {}
        self._watches = Watches(self._on_event, self._problems, poll=poll, network_poll=self._network_poll)
        self._live = False
        self._next_tick = 0.0
        self._last_pass = 0.0
        self._published_at = -QUIET_REPUBLISH
        # Each run's stats and when (monotonic) they were derived, kept while its log is unchanged.
        self._derived: dict[LogSource, tuple[float, RunStats]] = {}
        # From when (the clock's time), and for how many seconds, a run's stats only drift (metrics.quiet_for).
        self._quiet: dict[LogSource, tuple[datetime, float]] = {}
        self._loading: tuple[int, int] | None = None
        # Many logs changing at once: stat sweeps instead of modification events.
        self._gauge = statpoll.LoadGauge()
        self._sweep = statpoll.StatSweep()
        self._next_sweep = 0.0
        self._sweep_every = statpoll.BUSY_POLL
        self._remote_keys: set[str] = set()
        self._worker: threading.Thread | None = None
        table = mounts.read_mounts()
        self._network = {r: fs for r in self._roots if (fs := mounts.network_fs(r, table)) is not None}
        # ``[user@]host:/path`` roots, read over ssh (trainwatch.remote); polled like a network mount.
        self._remote = remote.RemoteWatch(
            remote_roots, options, self._wake.set, interval=poll or self._network_poll, ssh_options=ssh_options
        )

    # ------------------------------------------------------------------ API

    def start(self) -> None:
        """Discover, watch and read in the background; rows are published as files are read."""
        if self._worker is not None:
            return
        self._worker = threading.Thread(target=self._run, name="trainwatch-watcher", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Join the worker and the observers; safe to call twice."""
        self._stopping.set()
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=10)
        self._watches.stop()
        self._remote.stop()

    def refresh_now(self) -> None:
        """Re-check every file and publish (a missed event cannot hide a change)."""
        with self._lock:
            self._force = self._rescan_all = True
        self._wake.set()

    def set_target(self, target: int | None) -> None:
        """Count every run's progress to ``target`` (``None``: back to the log's own), then republish."""
        with self._lock:
            self._target = (target,)
            self._force = True
        self._wake.set()

    @property
    def mode(self) -> str:
        """How changes are noticed, for the header: "inotify", "polling every 2s", "inotify · ssh: 2/2 hosts up"."""
        local = self._local_mode() if self._roots or not self._remote.links else ""
        return " · ".join(m for m in (local, self._remote.mode if self._remote.links else "") if m)

    def _local_mode(self) -> str:
        native = native_name()
        if self._gauge.busy:
            swept = len(self._sources) - len(self._remote_keys)
            native += f" · busy: {swept} logs checked every {self._sweep_every:g}s"
        if self._poll is not None:
            return f"polling every {self._poll:g}s"
        if self._watches.fallback is not None:
            return f"polling every {self._network_poll:g}s · {self._watches.fallback}"
        if not self._network:
            return native
        kinds = ", ".join(sorted(set(self._network.values())))
        count = len(self._network)
        where = f"{count} path{'s' if count > 1 else ''} on {kinds}"
        if count == len(self._roots):
            return f"polling every {self._network_poll:g}s · {where}"
        return f"{native} · {where} polled every {self._network_poll:g}s"

    @property
    def network_paths(self) -> list[Path]:
        """Watched roots that sit on NFS/Lustre/CIFS/sshfs/GPFS (from /proc/mounts)."""
        return list(self._network)

    @property
    def problems(self) -> list[str]:
        """One line per path that cannot be watched or read right now (remote hosts included)."""
        return list(self._problems.copy().values()) + self._remote.problems

    @property
    def loading(self) -> tuple[int, int] | None:
        """``(files read, files found)`` during the first read, then ``None``."""
        return self._loading

    # ----------------------------------------------------- observer threads

    def _on_event(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        noted = False
        with self._lock:
            if event.is_directory:
                if event.event_type in ("created", "moved"):
                    self._new_dirs.add(dest or src)
                if event.event_type in ("deleted", "moved"):
                    self._gone_dirs.add(src)
                noted = True
            else:
                for path in (src, dest) if dest else (src,):
                    if _wanted_name(path) or path in self._file_roots or path in self._aliases:
                        self._dirty.add(path)
                        noted = True
                if dest:
                    self._moved[dest] = src
        if noted:  # a checkpoint being written must not wake us
            self._wake.set()

    # --------------------------------------------------------------- worker

    def _run(self) -> None:
        try:
            self._setup()
        except Exception as exc:  # never leave the app without a first snapshot
            log.exception("trainwatch: setting up the watcher failed")
            self._problems["<setup>"] = f"watcher setup failed: {exc}"
            with contextlib.suppress(Exception):
                self._publish()
        while not self._stopping.is_set():
            self._wake.wait(self._timeout())
            wait = self._last_pass + MIN_PASS_INTERVAL - time.monotonic()
            if self._stopping.is_set() or (wait > 0 and self._stopping.wait(wait)):
                break
            self._wake.clear()
            self._last_pass = time.monotonic()
            try:
                self._pass()
                self._problems.pop("<worker>", None)
            except Exception as exc:  # a bug must cost one update, not the live view
                log.exception("trainwatch: watcher pass failed")
                self._problems["<worker>"] = f"internal error while updating: {exc}"

    def _timeout(self) -> float | None:
        """Seconds until the clock next needs the worker: the tick, a sweep while busy."""
        due = [self._next_tick] if self._live else []
        if self._gauge.busy:
            due.append(self._next_sweep)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _setup(self) -> None:
        self._remote.start()
        for root in self._roots:
            if root.is_dir():
                self._watches.watch(str(root), recursive=True, polled=root in self._network)
            elif root.is_file() and not self._covered(str(root.parent)):
                self._watches.watch(str(root.parent), recursive=False, polled=root in self._network)
        files, problems = discover(self._roots)
        for problem in problems:
            self._problems[problem] = problem
        for path in files:
            self._add(str(path))
        pending = sorted(self._unread, key=_size)  # small files first: many rows appear at once
        self._loading = (0, len(pending))
        last = time.monotonic()
        for done, key in enumerate(pending, 1):
            if self._stopping.is_set():
                return
            self._refresh(key)
            self._loading = (done, len(pending))
            if done == 1 or time.monotonic() - last >= LOAD_PUBLISH_INTERVAL:
                self._publish()
                last = time.monotonic()
        self._loading = None
        self._publish()

    def _pass(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            moved, self._moved = self._moved, {}
            new_dirs, self._new_dirs = self._new_dirs, set()
            gone_dirs, self._gone_dirs = self._gone_dirs, set()
            force, self._force = self._force, False
            rescan, self._rescan_all = self._rescan_all, False
            target, self._target = self._target, None
        noticed = len(dirty)  # logs that told us they changed, for the load gauge
        dirty.update(self._undecided)  # (each pass until they tell, events or not)
        if self._gauge.busy and time.monotonic() >= self._next_sweep:
            swept = self._sweep.changed(k for k in self._sources if k not in self._remote_keys)
            self._sweep_every = statpoll.sweep_interval(len(swept))
            self._next_sweep = time.monotonic() + self._sweep_every
            dirty.update(swept)
            noticed = len(swept) if not rescan else 0  # a rescan's sweep finds every log "changed"
        if self._watches.native and self._gauge.note(noticed, time.monotonic()):
            self._change_mode()
        if target is not None:
            self._apply_target(target[0])
        if force:
            self._derived.clear()  # a refresh asked for: every figure as of now
            self._quiet.clear()
        for folder in gone_dirs:
            self._watches.folder_gone(folder)
            dirty.update(k for k in self._sources if k.startswith(folder.rstrip(os.sep) + os.sep))
        for folder in new_dirs:
            dirty.update(self._folder_new(folder))
            if folder in self._sources:
                dirty.add(folder)  # a log replaced by a folder: SourceError, shown as such
        if rescan:
            dirty.update(self._sources)
            dirty.update(str(p) for p in discover(self._roots)[0])
        changed = self._adopt_remote(dirty)
        for path in dirty:
            key = self._key(path, moved.get(path))
            if key is not None:
                changed |= self._refresh(key)
        if changed or force:
            self._publish()
        elif self._live and time.monotonic() >= self._next_tick:
            self._publish(quiet=True)

    def _adopt_remote(self, dirty: set[str]) -> bool:
        """Remote files with news are dirty (new ones get a row); ``True`` if a host's state changed."""
        news, changed = self._remote.collect()
        for key, source in news.items():
            self._remote_keys.add(key)  # read over ssh: never stat-swept
            if key not in self._sources:
                self._sources[key] = source
                self._unread.add(key)
            dirty.add(key)
        return changed

    def _key(self, path: str, moved_from: str | None) -> str | None:
        """The source a changed path belongs to, adding one for a new log file."""
        key = path if path in self._sources else self._aliases.get(path)
        if key is not None:
            return key
        if moved_from is not None:
            old = self._sources.get(self._aliases.get(moved_from, moved_from))
            if moved_from in self._ignored or (old is not None and old.ready):
                # A rotated-away copy of a run already shown (log -> log.1) is not a new run.
                self._ignored.add(path)
                return None
        elif path not in self._ignored and self._accepts(path) and (copy := self._copy_of_shown(path)) is not False:
            # logrotate's copytruncate: log copied to log.1, then emptied and written on.
            # The copy holds lines the run shows already (its source keeps them).
            if copy:
                self._ignored.add(path)
                self._undecided.pop(path, None)
            return None  # (undecided: looked at again at each pass)
        self._undecided.pop(path, None)
        if path in self._ignored:
            if not os.path.lexists(path):
                self._ignored.discard(path)  # deleted: whatever appears there next is new
            return None
        if not self._accepts(path) or not os.path.isfile(path):
            return None
        return self._add(path)

    def _copy_of_shown(self, path: str) -> bool | None:
        """Is ``path``, new and named as a rotation (``train.log.1``) of a log
        being shown (``train.log``), a copy of it? ``None``: it may be, but is
        still being written.

        A copy holds what the log held: its first bytes, and the last bytes
        read at the offset they were read at (as read now, or before the log
        was last truncated: the copy and the truncation may be seen in either
        order). A new run whose script named its log ``train.log.1`` (the
        name being taken) does not: it is a run of its own. So is a file that
        still cannot be told after ``UNDECIDED_S``.
        """
        base, number = os.path.splitext(path)
        if not (number[1:].isascii() and number[1:].isdigit()):
            return False
        source = self._sources.get(self._aliases.get(base, base))
        if source is None or not source.ready:
            return False
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size

                def read(pos: int, n: int) -> bytes:
                    handle.seek(pos)
                    return handle.read(n)

                seen = [p.seen_in(read, size) for p in source.prints()]
        except OSError:
            return False
        if True in seen:
            return True
        if None not in seen:
            return False
        first = self._undecided.setdefault(path, time.monotonic())
        return None if time.monotonic() - first < UNDECIDED_S else False

    def _add(self, path: str) -> str | None:
        real = self._real(path)
        canonical = self._aliases.get(real, real)
        if canonical in self._sources:  # the same file through another root or a symlink
            self._aliases[path] = canonical
            return canonical
        self._sources[path] = LogSource(Path(path), self._options)
        self._unread.add(path)
        if real != path:
            self._aliases[real] = path
            if not self._covered(os.path.dirname(real)):
                self._watches.watch(os.path.dirname(real), recursive=False, polled=False)
        return path

    def _real(self, path: str) -> str:
        """``os.path.realpath`` in one system call for a plain file under a root.

        Below a root only the file itself can be a symlink: neither discover
        nor the observers follow symlinked folders.
        """
        if not os.path.islink(path):
            for root, real_root in self._real_roots.items():
                if path.startswith(root + os.sep):
                    return real_root + path[len(root) :]
        return os.path.realpath(path)

    def _refresh(self, key: str) -> bool:
        source = self._sources[key]
        self._derived.pop(source, None)  # derived again at the next publish (see there)
        self._quiet.pop(source, None)
        first = key in self._unread
        self._unread.discard(key)
        before = source.problem
        if source.ready:
            source.problem = None  # a line log re-created after "deleted" would keep it
        try:
            changed = source.refresh()
        except SourceError as exc:
            if self._problems.get(key) != str(exc):
                log.warning("trainwatch: %s", exc)
            source.problem = self._problems[key] = str(exc)
            return True
        except Exception as exc:  # a parser bug: keep the source and its last figures
            log.exception("trainwatch: reading %s failed", key)
            source.problem = self._problems[key] = f"internal error reading {key}: {exc}"
            return True
        had_problem = self._problems.pop(key, None) is not None
        if source.problem == "deleted" and not source.ready:
            del self._sources[key]  # a temporary file that never held a run
            return True
        return changed or first or had_problem or source.problem != before

    def _publish(self, quiet: bool = False) -> None:
        """Derive and hand over a new snapshot. ``quiet`` (a clock tick, no
        file changed): skip it when every figure is as before, up to
        ``QUIET_REPUBLISH`` seconds (a stalled run's age, shown in minutes,
        and finish dates still follow the clock)."""
        now = self._clock()
        clock = time.monotonic()
        ready = [s for k, s in self._sources.items() if k not in self._unread]
        due = clock - self._published_at >= QUIET_REPUBLISH  # the drifting figures too
        fresh = [self._stats(source, now, clock, due) for source in ready if source.spec is not None and source.ready]
        if quiet and not any(fresh) and not due:
            self._next_tick = clock + self._tick
            return  # a tick that changed no figure (and no file changed): nothing to show
        snapshot = build(ready, self._names, now, lambda source: self._derived[source][1])
        rows = tuple(self._annotate(row) for row in snapshot.rows)
        snapshot = Snapshot(snapshot.generated_at, rows, snapshot.unrecognised + tuple(self._remote.unrecognised()))
        self._live = any(row.stats.status in _LIVE for row in rows)
        self._next_tick = clock + self._tick
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
        stats = source.agg.stats(now)
        self._quiet[source] = (now, metrics.quiet_for(source.agg, stats, now))
        if memo is not None and memo[1] == stats:
            self._derived[source] = (clock, memo[1])
            return False
        # Kept either way (a snapshot published for another reason carries
        # the current figures), but the drift of a finish estimate alone is
        # no reason to publish: QUIET_REPUBLISH covers it.
        self._derived[source] = (clock, stats)
        return memo is None or not only_clock_moved(memo[1], stats, DRIFT)

    def _annotate(self, row: RunRow) -> RunRow:
        """A run whose file went away or became unreadable says so (⚑) and keeps its figures."""
        source = self._sources.get(row.path)
        problem = source.problem if source is not None else None
        if not problem:
            return row
        note = (
            "the log file was deleted: these are its last figures"
            if problem == "deleted"
            else f"the log cannot be read now ({problem}): these are its last figures"
        )
        return replace(row, stats=replace(row.stats, warnings=(*row.stats.warnings, note)))

    def _change_mode(self) -> None:
        """Modification events off while busy, back on when calm (see statpoll); then re-read everything."""
        self._watches.set_busy(self._gauge.busy)
        self._sweep.forget()
        self._next_sweep = time.monotonic()
        log.info("trainwatch: %s", "many logs change at once: stat sweeps" if self._gauge.busy else "back to events")
        self.refresh_now()

    def _apply_target(self, target: int | None) -> None:
        self._derived.clear()
        self._quiet.clear()
        self._options = self._remote.options = replace(self._options, target=target)
        for source in self._sources.values():
            source.options = self._options  # documents build a new aggregator per parse
            source.agg.target_override = target

    # ------------------------------------------------------------- watches

    def _accepts(self, path: str) -> bool:
        """Is ``path`` a log file the user asked to watch (discover's rules)?"""
        return path in self._file_roots or (_wanted_name(path) and self._in_tree(os.path.dirname(path)))

    def _in_tree(self, folder: str) -> bool:
        """Is ``folder`` inside a watched root, and not below a hidden folder?"""
        while folder not in self._dir_roots:
            parent, part = os.path.split(folder)
            if parent == folder or part.startswith(".") or part == "__pycache__":
                return False
            folder = parent
        return True

    def _covered(self, folder: str) -> bool:
        return any(folder == r or folder.startswith(r + os.sep) for r in self._dir_roots)

    def _folder_new(self, folder: str) -> set[str]:
        """Files to look at now that ``folder`` appeared (a new run folder, or a lost root back)."""
        found: set[str] = set()
        for target in self._watches.returned(folder):
            found |= {p for p in self._file_roots if os.path.dirname(p) == target.path}
            if target.recursive:
                found |= {str(p) for p in discover([Path(target.path)])[0]}
        if self._in_tree(folder):
            found |= {str(p) for p in discover([Path(folder)])[0]}
        return found


def _wanted_name(path: str) -> bool:
    name = os.path.basename(path)
    return is_log_name(name)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
