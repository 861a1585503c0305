"""Live watching: filesystem events in, immutable Snapshots out.

watchdog observers (inotify, or polling for ``--poll`` and network mounts;
``trainwatch.ingest.watches`` schedules them) call ``_on_event``, which only records
the path as dirty and sets one ``threading.Event``. One worker thread owns
every ``LogSource``: it wakes on that event, refreshes the dirty sources, and
publishes a new ``Snapshot`` when something changed. Events that arrive
while it works merge into its next pass, and passes are at least
``MIN_PASS_INTERVAL`` apart, so a burst of appends costs one or two reads.
When many logs change every second, the watcher stops taking modification
events and stats the logs it knows every second or two instead
(``trainwatch.ingest.statpoll`` says why). The only clock is a tick of at most 1 Hz
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

from trainwatch.core.box import BoxProbe
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import Snapshot
from trainwatch.ingest import mounts, remote, statpoll
from trainwatch.ingest.boxfeed import BoxFeed
from trainwatch.ingest.discover import discover, is_log_name
from trainwatch.ingest.grouping import GroupRules, Groups, named_folders, rotation_chains
from trainwatch.ingest.inbox import Inbox
from trainwatch.ingest.publish import Publisher
from trainwatch.ingest.roots import Roots
from trainwatch.ingest.rotation import Rotations, read_copies
from trainwatch.ingest.source import LogSource, SourceError
from trainwatch.ingest.watches import EVENTS_LOST, Watches
from trainwatch.parsers import filekind

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # never print over the TUI; problems are also in ``problems``

#: Seconds between two refresh passes at least: a burst of events coalesces.
MIN_PASS_INTERVAL = 0.1
#: Bytes read of one log per pass at most (then the others' turn): a log that
#: grows faster than it can be read must not hold back every other run's rows.
PASS_BYTES = 16 << 20
#: While the first read of many files runs, publish rows this often.
LOAD_PUBLISH_INTERVAL = 0.25
#: While the app draws its first frame (``Watcher.hold_until``), the first
#: read goes on for this long at most, then waits for that frame (the two
#: threads share the GIL: reading a large folder took half of Textual's start)
#: ... for this long at most.
FIRST_FRAME_READ_S = 0.03
FIRST_FRAME_WAIT_S = 2.0
#: Line parsers hold some records back until a later line completes them (an
#: eval waiting for its HellaSwag result, a failure held while no phase is
#: training): a log quiet this long is told that no more input is due.
FLUSH_AFTER_S = 2.0
#: Default polling interval for roots on network filesystems (inotify cannot
#: see other hosts' writes) and for remote hosts (``--poll-network``).
NETWORK_POLL = 2.0


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
        grouping: GroupRules | None = None,
        box: BoxProbe | None = None,
    ) -> None:
        remote_roots, paths = remote.split_roots(paths)
        self._tree = Roots(paths)
        self._roots = self._tree.paths
        self._options = options
        self._poll = poll
        self._network_poll = network_poll or NETWORK_POLL
        # What the observer threads and the app note for the worker.
        self._inbox = Inbox()
        self._wake = self._inbox.wake
        self._stopping = threading.Event()
        # Worker state.
        self._sources: dict[str, LogSource] = {}
        self._unread: set[str] = set()
        self._behind: set[str] = set()  # logs with more to read than their last pass took
        self._clock = clock
        self._aliases: dict[str, str] = {}  # resolved path -> source key
        self._rotations = Rotations()
        # Which files are one job's (ingest.grouping), and the rotated copies
        # found at startup, read into their log's source before the log.
        self._groups = Groups(grouping)
        self._copies: dict[str, list[str]] = {}
        self._problems: dict[str, str] = {}
        self._watches = Watches(self._on_event, self._problems, poll=poll, network_poll=self._network_poll)
        self._publisher = Publisher(names, publish, clock, tick)
        self._unflushed: dict[str, float] = {}  # source key -> when (monotonic) it last changed
        self._last_pass = 0.0
        self._drawn: threading.Event | None = None  # hold_until
        self._pass_cost = 0.0  # seconds the last pass took
        # The last pass met a document mid-rewrite (truncated, half written):
        # its writer is at work, and the event of its last write must not wait.
        self._mid_write = False
        self._loading: tuple[int, int] | None = None
        # Many logs changing at once: stat sweeps instead of modification events.
        self._gauge = statpoll.LoadGauge()
        self._sweep = statpoll.StatSweep()
        self._next_sweep = 0.0
        self._sweep_every = statpoll.BUSY_POLL
        self._remote_keys: set[str] = set()
        # The machine around the local runs: their writers and GPUs (``trainwatch.system``, wired by the face).
        self._box = BoxFeed(box, self._wake.set)
        self._worker: threading.Thread | None = None
        table = mounts.read_mounts()
        self._network = {r: fs for r in self._roots if (fs := mounts.network_fs(r, table)) is not None}
        # ``[user@]host:/path`` roots, read over ssh (trainwatch.ingest.remote); polled like a network mount.
        self._remote = remote.RemoteWatch(
            remote_roots,
            options,
            self._wake.set,
            interval=poll or self._network_poll,
            ssh_options=ssh_options,
            clock=clock,
        )

    # ------------------------------------------------------------------ API

    def start(self) -> None:
        """Discover, watch and read in the background; rows are published as files are read."""
        if self._worker is not None:
            return
        self._worker = threading.Thread(target=self._run, name="trainwatch-watcher", daemon=True)
        self._worker.start()

    def hold_until(self, drawn: threading.Event) -> None:
        """Before ``start``: a consumer is drawing its first frame, which our
        first read would slow down. Read the smallest logs for
        FIRST_FRAME_READ_S, publish them, and go on once ``drawn`` is set."""
        self._drawn = drawn

    def stop(self) -> None:
        """Join the worker and the observers; safe to call twice."""
        self._stopping.set()
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=10)
        self._watches.stop()
        self._remote.stop()
        self._box.close()

    def refresh_now(self) -> None:
        """Re-check every file and publish (a missed event cannot hide a change)."""
        self._inbox.ask(rescan=True)

    def set_target(self, target: int | None) -> None:
        """Count every run's progress to ``target`` (``None``: back to the log's own), then republish."""
        self._inbox.ask(target=(target,))

    @property
    def mode(self) -> str:
        """How changes are noticed, for the header: "inotify", "polling every 2s", "inotify · ssh: 2/2 hosts up"."""
        local = self._local_mode() if self._roots or not self._remote.links else ""
        return " · ".join(m for m in (local, self._remote.mode if self._remote.links else "") if m)

    def _local_mode(self) -> str:
        swept = len(self._sources) - len(self._remote_keys)
        busy = f" · busy: {swept} logs checked every {self._sweep_every:g}s" if self._gauge.busy else ""
        return self._watches.mode(busy, self._network, len(self._roots))

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
        if event.event_type == EVENTS_LOST:
            # The kernel's queue overflowed (a burst, or we were stopped a
            # while): what happened meanwhile is unknown. Look at everything.
            self._inbox.ask(rescan=True)
            return
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else ""
        if src in self._tree.links or dest in self._tree.links:
            self._wake.set()  # a symlinked root repointed (``ln -sfn``): each pass checks them
        if event.is_directory:
            kind = event.event_type
            self._inbox.folder(
                created=(dest or src) if kind in ("created", "moved") else None,
                deleted=src if kind in ("deleted", "moved") else None,
            )
            return
        paths = (src, dest) if dest else (src,)
        changed = [p for p in paths if is_log_name(os.path.basename(p)) or p in self._tree.files or p in self._aliases]
        self._inbox.files(changed, (src, dest) if dest else None)

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
            wait = self._last_pass + self._pass_gap() - time.monotonic()
            if self._stopping.is_set() or (wait > 0 and self._stopping.wait(wait)):
                break
            self._wake.clear()
            self._last_pass = time.monotonic()
            self._mid_write = False
            try:
                self._pass()
                self._problems.pop("<worker>", None)
            except Exception as exc:  # a bug must cost one update, not the live view
                log.exception("trainwatch: watcher pass failed")
                self._problems["<worker>"] = f"internal error while updating: {exc}"
            self._pass_cost = time.monotonic() - self._last_pass

    def _pass_gap(self) -> float:
        """Seconds from one pass to the next at least: MIN_PASS_INTERVAL, so that a
        burst of events costs one pass; but after a pass that met a document
        mid-rewrite, only as long as that pass took (its rewrite ends with a
        write whose event would otherwise wait up to 0.1 s: the seed's JSON
        logs reached the screen 119 ms after their rewrite at p95). While logs
        are behind, passes follow each other: only reading bounds them."""
        if self._behind:
            return 0.0
        return min(MIN_PASS_INTERVAL, self._pass_cost) if self._mid_write else MIN_PASS_INTERVAL

    def _timeout(self) -> float | None:
        """Seconds until the clock next needs the worker: the tick, a sweep while busy (now: logs behind)."""
        if self._behind:
            return 0.0
        due = [self._publisher.next_tick] if self._publisher.live else []
        if self._gauge.busy:
            due.append(self._next_sweep)
        if self._unflushed:
            due.append(min(self._unflushed.values()) + FLUSH_AFTER_S)
        if (box := self._box.next_due(self._last_pass)) is not None:
            due.append(box)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _setup(self) -> None:
        self._remote.start()
        for root in self._roots:
            if root.is_dir():
                self._watches.watch(str(root), recursive=True, polled=root in self._network)
            elif root.is_file() and not self._tree.covered(str(root.parent)):
                self._watches.watch(str(root.parent), recursive=False, polled=root in self._network)
            if str(root) in self._tree.links and not self._tree.covered(str(root.parent)):
                # A repointed link (``ln -sfn run2 latest``) shows in its folder only.
                self._watches.watch(str(root.parent), recursive=False, polled=root in self._network)
        files, problems = discover(self._roots)
        for problem in problems:
            self._problems[problem] = problem
        self._copies = rotation_chains([str(p) for p in files], _mtime, self._groups.rules)
        self._groups.read_with.update(self._copies)
        copies = {copy for chain in self._copies.values() for copy in chain}
        self._rotations.ignored |= copies  # (they are the old part of their log: never a run)
        for path in files:
            if str(path) not in copies:
                self._add(str(path))
        sizes = {key: _size(key) for key in self._unread}
        pending = sorted(self._unread, key=sizes.__getitem__)  # small files first: many rows appear at once
        self._loading = (0, len(pending))
        last = began = time.monotonic()
        for done, key in enumerate(pending, 1):
            if self._stopping.is_set():
                return
            drawn = self._drawn
            if drawn is not None and time.monotonic() - began >= FIRST_FRAME_READ_S:
                self._drawn = None
                if not drawn.is_set():
                    self._publish()  # (what is read so far, for that first frame)
                    drawn.wait(FIRST_FRAME_WAIT_S)
            self._read_copies(key)
            self._first_read(key, sizes[key])
            self._regroup(key)
            self._loading = (done, len(pending))
            if done == 1 or time.monotonic() - last >= LOAD_PUBLISH_INTERVAL:
                self._publish()
                last = time.monotonic()
        self._flush_quiet()  # (logs quiet when found: their statuses are known before the load ends)
        self._loading = None
        self._look_box(set(self._sources))
        self._publish()

    def _first_read(self, key: str, size: int) -> None:
        """Read a log found at the start, ``PASS_BYTES`` at a time: a quit
        need not wait for a big one. Its row waits for the bytes it had when
        found; what it grew by since is read in turns with the other logs."""
        while not self._stopping.is_set():
            self._refresh(key)
            source = self._sources.get(key)
            if source is None or not source.behind or source.offset >= size:
                return
            self._unread.add(key)  # no row from half a log

    def _pass(self) -> None:
        pending = self._inbox.take()
        dirty, moved, force, rescan = pending.dirty, pending.moved, pending.force, pending.rescan
        new_dirs, gone_dirs, target = pending.new_dirs, pending.gone_dirs, pending.target
        noticed = len(dirty)  # logs that told us they changed, for the load gauge
        dirty.update(self._rotations.undecided)  # (each pass until they tell, events or not)
        dirty.update(self._behind)  # their turn again
        for root in self._tree.relinked():
            dirty.update(self._relink(root))
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
            self._publisher.forget()  # a refresh asked for: every figure as of now
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
        grown: set[str] = set()
        for path in dirty:
            if self._stopping.is_set():
                return
            key = self._key(path, moved.get(path))
            if key is not None and self._refresh(key):
                changed = True
                self._regroup(key)
                grown.add(key)
        changed |= self._flush_quiet()
        changed |= self._look_box(grown)
        if changed or force:
            self._publish()
        elif self._publisher.live and time.monotonic() >= self._publisher.next_tick:
            self._publish(quiet=True)

    def _quiet_since_found(self, source: LogSource) -> float:
        """Seconds a log found at the start had been quiet by its modification
        time, up to FLUSH_AFTER_S: one quiet long enough is flushed with the
        first read, so its held-back end (a finish, a failure) does not come
        as news two seconds after it."""
        seen = source.agg.observed
        if not seen:
            return 0.0
        return min(max((self._clock() - seen[-1]).total_seconds(), 0.0), FLUSH_AFTER_S)

    def _flush_quiet(self) -> bool:
        """Hand over the records held back by the parsers of logs quiet for
        ``FLUSH_AFTER_S``, as a snapshot does at the end of its input;
        ``True`` if any run changed."""
        now = time.monotonic()
        quiet = [key for key, at in self._unflushed.items() if now - at >= FLUSH_AFTER_S]
        changed = False
        for key in quiet:
            del self._unflushed[key]
            source = self._sources.get(key)
            if source is not None and source.flush():
                self._publisher.forget(source)
                changed = True
        return changed

    def _adopt_remote(self, dirty: set[str]) -> bool:
        """Remote files with news are dirty (new ones get a row); ``True`` if a host's state changed."""
        news, changed = self._remote.collect()
        for key, source in news.items():
            self._remote_keys.add(key)  # read over ssh: never stat-swept
            if key not in self._sources:
                self._sources[key] = source
                self._unread.add(key)
                self._groups.add(key)
            dirty.add(key)
        return changed

    def _key(self, path: str, moved_from: str | None) -> str | None:
        """The source a changed path belongs to, adding one for a new log file."""
        key = path if path in self._sources else self._aliases.get(path)
        if key is not None:
            return key
        if self._rotations.skip(path, moved_from, self._shown, self._tree.accepts):
            return None
        if not self._tree.accepts(path) or not os.path.isfile(path):
            return None
        return self._add(path)

    def _shown(self, path: str) -> LogSource | None:
        """The source of ``path`` (or of the file it is another name of), if any."""
        return self._sources.get(self._aliases.get(path, path))

    def _add(self, path: str) -> str | None:
        real = self._tree.real(path)
        canonical = self._aliases.get(real, real)
        if canonical in self._sources:  # the same file through another root or a symlink
            self._aliases[path] = canonical
            return canonical
        self._sources[path] = LogSource(Path(path), self._options, clock=self._clock, budget=PASS_BYTES)
        self._unread.add(path)
        self._groups.add(path)
        if real != path:
            self._aliases[real] = path
            if not self._tree.covered(os.path.dirname(real)):
                self._watches.watch(os.path.dirname(real), recursive=False, polled=False)
        return path

    def _refresh(self, key: str) -> bool:
        source = self._sources[key]
        self._publisher.forget(source)  # derived again at the next publish
        first = key in self._unread
        self._unread.discard(key)
        before = source.problem
        if source.ready:
            source.problem = None  # a line log re-created after "deleted" would keep it
        try:
            changed = source.refresh()
            if source.behind:
                self._behind.add(key)
            else:
                self._behind.discard(key)
        except SourceError as exc:
            if self._problems.get(key) != str(exc):
                log.warning("trainwatch: %s", exc)
            source.problem = self._problems[key] = str(exc)
            return True
        except Exception as exc:  # a parser bug: keep the source and its last figures
            log.exception("trainwatch: reading %s failed", key)
            source.problem = self._problems[key] = f"internal error reading {key}: {exc}"
            return True
        previous = self._problems.pop(key, None)
        if source.spec is None and filekind.is_kind(source.problem):
            # A file that is no log, and can say what it is (a Git LFS pointer,
            # a TensorBoard event file): shown once, as a path problem is.
            self._problems[key] = f"{key}: {source.problem}"
        had_problem = previous is not None and previous != self._problems.get(key)
        if source.problem == "deleted" and (not source.ready or self._superseded(key, source)):
            del self._sources[key]  # a temporary file that never held a run, or an old checkpoint
            self._groups.remove(key)
            self._publisher.forget(source)
            return True
        if changed:
            self._unflushed[key] = time.monotonic() - (self._quiet_since_found(source) if first else 0.0)
        elif source.mid_write:
            self._mid_write = True
        return changed or first or had_problem or source.problem != before

    def _look_box(self, grown: set[str]) -> bool:
        """Ask the machine about the local runs (``BoxFeed``); ``True`` if what it says of some run changed."""
        skip = self._remote_keys | self._unread
        try:
            moved, gone = self._box.look(self._sources, skip, grown, self._publisher)
        except Exception as exc:  # a broken probe costs its facts, not the watching
            log.exception("trainwatch: the process probe failed")
            self._problems["<box>"] = f"cannot look at the processes: {exc}"
            return False
        for key in gone:  # its writer just went: its last lines may say it finished, and no more will come
            if key not in self._sources:
                continue
            self._refresh(key)
            self._unflushed.pop(key, None)
            self._sources[key].flush()
        return bool(moved)

    def _relink(self, root: str) -> set[str]:
        """A symlinked root now points elsewhere: its logs are another run's.
        Forget the old target's sources, watch the new one; its logs to read."""
        inside = root.rstrip(os.sep) + os.sep
        for key in [k for k in self._sources if k == root or k.startswith(inside)]:
            self._drop(key)
        self._rotations.ignored = {p for p in self._rotations.ignored if not p.startswith(inside)}
        self._watches.rewatch(root)
        added = {self._add(str(p)) for p in discover([Path(root)])[0]}
        return {key for key in added if key is not None}

    def _drop(self, key: str) -> None:
        """Forget a source and everything kept about it."""
        source = self._sources.pop(key)
        self._publisher.forget(source)
        self._groups.remove(key)
        for keep in (self._unread, self._behind):
            keep.discard(key)
        for by_key in (self._problems, self._unflushed, self._rotations.undecided):
            by_key.pop(key, None)
        self._aliases = {alias: k for alias, k in self._aliases.items() if k != key}

    def _change_mode(self) -> None:
        """Modification events off while busy, back on when calm (see statpoll); then re-read everything."""
        self._watches.set_busy(self._gauge.busy)
        self._sweep.forget()
        self._next_sweep = time.monotonic()
        log.info("trainwatch: %s", "many logs change at once: stat sweeps" if self._gauge.busy else "back to events")
        self.refresh_now()

    def _apply_target(self, target: int | None) -> None:
        self._publisher.forget()
        self._options = self._remote.options = replace(self._options, target=target)
        for source in self._sources.values():
            source.options = self._options  # documents build a new aggregator per parse
            source.agg.target_override = target

    def _publish(self, quiet: bool = False) -> None:
        self._publisher.publish(
            self._sources,
            self._unread,
            tuple(self._remote.unrecognised()),
            quiet,
            groups=self._groups,
            loading=self._loading is not None,
        )

    # ------------------------------------------------------------ grouping

    def _read_copies(self, key: str) -> None:
        """A log's rotated copies found at startup, oldest first, before the log: one run, counted once."""
        source = self._sources.get(key)
        for problem in read_copies(source, self._copies.pop(key, ())) if source is not None else ():
            self._problems[problem] = problem

    def _regroup(self, key: str) -> None:
        """A log that names an output folder beside it joins that folder's run (``Groups.claim``)."""
        source = self._sources.get(key)
        if source is not None and source.ready and source.spec is not None and source.spec.kind == "lines":
            self._groups.claim(key, named_folders(source.agg))

    def _superseded(self, key: str, source: LogSource) -> bool:
        """Is deleted ``key`` one of several files of a run that another, still
        there, has caught up with (a checkpoint ``save_total_limit`` removed)?
        Its figures then say nothing more, and it is let go."""
        group = self._groups.group_of(key)
        if group is None or group.primary == key or not source.agg.iters:
            return False
        step = source.agg.iters[-1]
        others = [self._sources.get(member) for member in group.members if member != key]
        alive = [o for o in others if o is not None and o.ready and o.problem != "deleted" and o.agg.iters]
        return any(other.agg.iters[-1] >= step for other in alive)

    # ------------------------------------------------------------- watches

    def _folder_new(self, folder: str) -> set[str]:
        """Files to look at now that ``folder`` appeared (a new run folder, or a lost root back)."""
        found: set[str] = set()
        for target in self._watches.returned(folder):
            found |= {p for p in self._tree.files if os.path.dirname(p) == target.path}
            if target.recursive:
                found |= {str(p) for p in discover([Path(target.path)])[0]}
        if self._tree.in_tree(folder):
            found |= {str(p) for p in discover([Path(folder)])[0]}
        return found


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
