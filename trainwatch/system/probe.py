"""``BoxWatch``: the ``core.box.BoxProbe`` of this machine, cheap enough to run on every pass.

Per log it keeps what it knows and does as little as that allows:

* a log whose writer is known: one ``poll`` over the writers' pidfds per
  call (is it alive?), and every ``sample_every`` seconds their CPU and
  memory and the GPUs (NVML); the end of a writer wakes the watcher at once
  (``exits.ExitWaiter``), so ``exited`` does not wait for a clock tick;
* a log without a known writer: nothing, until it grows; then (at most every
  ``lookup_every`` seconds, and less often while lookups find nothing) the
  kernel is asked whether anyone holds it open for writing
  (``openfiles.writing``, ~15 µs), and only if someone does, ``/proc`` is
  searched (``openfiles.holders``), once for all such logs;
* a log whose writer is gone: ``gone`` (the run ``exited``, unless its log
  says more) until it grows past where it was, when it is looked up anew.

Never raises: a process that vanishes or may not be looked into is normal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

from trainwatch.core.box import BoxFacts, Gpu, Writer
from trainwatch.system import openfiles, processes
from trainwatch.system.exits import ExitWaiter
from trainwatch.system.gpus import Device, Nvml

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Seconds between two lookups of a log with no known writer, at least.
LOOKUP_EVERY = 3.0
#: ... growing to this while lookups find no one (another user's writer, a hidden one).
LOOKUP_BACKOFF_MAX = 60.0
#: Seconds between samples of the writers' CPU and memory, and of the GPUs.
SAMPLE_EVERY = 5.0
#: Utilisation samples kept per GPU (six minutes at SAMPLE_EVERY).
HISTORY = 72


@dataclass
class _Log:
    """What is known about one log's writer."""

    tracked: processes.Tracked | None = None
    writer: Writer | None = None
    gone: bool = False
    gone_size: int = 0  # the log's size when its writer was found gone
    hidden: bool = False
    pending: bool = True  # grew since the last lookup (a new log counts as grown)
    next_lookup: float = 0.0
    every: float = LOOKUP_EVERY
    gpus: tuple[Gpu, ...] = ()
    used_gpus: set[int] = field(default_factory=set)  # every GPU index it has computed on
    lost: tuple[int, ...] = ()

    def facts(self) -> BoxFacts | None:
        if self.writer is None and not (self.hidden or self.gpus or self.lost):
            return None
        return BoxFacts(self.writer, self.gone, self.hidden, self.gpus, self.lost)


class BoxWatch:
    """Writers and GPUs of local logs (``core.box.BoxProbe``)."""

    def __init__(
        self,
        *,
        lookup_every: float = LOOKUP_EVERY,
        sample_every: float = SAMPLE_EVERY,
        nvml: Nvml | Literal["auto"] | None = "auto",
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._lookup_every = lookup_every
        self._sample_every = sample_every
        self._nvml_auto = nvml == "auto"  # opened when first needed: NVML's start is not free
        self._nvml: Nvml | None = None if nvml == "auto" else nvml
        self._clock = clock
        self._wall = wall
        self._logs: dict[str, _Log] = {}
        self._next_scan = 0.0
        self._next_sample = 0.0
        self._history: dict[int, deque[tuple[float, float]]] = {}
        self._exits: ExitWaiter | None = None

    # ----------------------------------------------------------- BoxProbe

    def look(self, paths: Collection[str], changed: Collection[str]) -> Mapping[str, BoxFacts]:
        try:
            self._look(paths, changed)
        except Exception:  # a bug here must cost the facts, never the watching
            log.exception("trainwatch: looking at the processes failed")
        return {path: facts for path, entry in self._logs.items() if (facts := entry.facts()) is not None}

    def next_due(self) -> float | None:
        due = [e.next_lookup for e in self._logs.values() if e.pending and not self._alive(e)]
        if any(self._alive(e) for e in self._logs.values()):
            due.append(self._next_sample)
        return max(min(due), self._next_scan) if due else None

    def wake_with(self, wake: Callable[[], None]) -> None:
        if self._exits is None:
            self._exits = ExitWaiter(wake)

    def close(self) -> None:
        if self._exits is not None:
            self._exits.close()
            self._exits = None
        for entry in self._logs.values():
            if entry.tracked is not None:
                entry.tracked.close()
        self._logs.clear()
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None

    # ------------------------------------------------------------ internals

    @staticmethod
    def _alive(entry: _Log) -> bool:
        return entry.tracked is not None and bool(entry.tracked.alive)

    def _look(self, paths: Collection[str], changed: Collection[str]) -> None:
        now = self._clock()
        wanted = set(paths)
        for path in [p for p in self._logs if p not in wanted]:
            entry = self._logs.pop(path)
            if entry.tracked is not None:
                entry.tracked.close()
        for path in wanted:
            self._logs.setdefault(path, _Log())
        for path in changed:
            if path in self._logs:
                self._logs[path].pending = True
        fewer = False  # some writer lost a process: its figures are sampled again now
        for path, entry in self._logs.items():
            if entry.tracked is not None:
                count = len(entry.tracked.alive)
                if not processes.still_alive(entry.tracked):
                    self._lost_writer(path, entry)
                fewer |= entry.tracked is not None and len(entry.tracked.alive) < count
            elif entry.gone and entry.pending:
                if _size(path) > entry.gone_size:  # written after its writer went: by whom, is to be seen
                    entry.gone, entry.writer = False, None
                else:
                    entry.pending = False  # its last lines, read after the writer went
        found = self._lookups(now)
        if found or fewer or (now >= self._next_sample and any(self._alive(e) for e in self._logs.values())):
            self._sample(now)

    def _lost_writer(self, path: str, entry: _Log) -> None:
        assert entry.tracked is not None
        entry.tracked.close()
        entry.writer = processes.writer(entry.tracked)
        entry.tracked = None
        entry.gone, entry.gone_size = True, _size(path)
        entry.gpus = ()
        entry.pending = False

    def _lookups(self, now: float) -> bool:
        """Look up the logs that grew and have no live writer; ``True`` if a writer was found."""
        due = [p for p, e in self._logs.items() if e.pending and not self._alive(e) and now >= e.next_lookup]
        if not due:
            return False
        # Whether anyone writes them at all, the kernel answers at once.
        held = {path: openfiles.writing(path) for path in due}
        search = [path for path, writing in held.items() if writing is not False]
        for path, writing in held.items():
            if writing is False:  # no one: nothing to search (cheap to ask again, no backoff)
                self._logs[path].hidden = False
                self._settle(path, now, fruitless=False)
        if not search or now < self._next_scan:
            return False
        self._next_scan = now + self._lookup_every
        scan = openfiles.holders(search)
        found = False
        for path in search:
            entry = self._logs[path]
            tracked = processes.resolve(scan.holders[path], path) if path in scan.holders else None
            if tracked is not None:
                if (exits := self._exits) is not None:
                    for pidfd in tracked.pidfds.values():
                        exits.follow(pidfd)  # its end wakes the watcher at once
                entry.tracked, entry.gone, entry.hidden = tracked, False, False
                entry.writer = processes.writer(tracked)
                found = True
            else:
                # Someone writes it whom we may not see: another user's process, another PID namespace.
                entry.hidden = held[path] is True and path not in scan.own
            self._settle(path, now, fruitless=tracked is None)
        return found

    def _settle(self, path: str, now: float, fruitless: bool) -> None:
        """A lookup of ``path`` is done: the next one when it grows, and not
        before ``every`` seconds, which grow while searches find no one."""
        entry = self._logs[path]
        entry.pending = False
        entry.every = min(entry.every * 2, LOOKUP_BACKOFF_MAX) if fruitless else self._lookup_every
        entry.next_lookup = now + entry.every

    def _sample(self, now: float) -> None:
        """CPU and memory of every live writer, and the GPUs they compute on."""
        self._next_sample = now + self._sample_every
        live = [e for e in self._logs.values() if self._alive(e)]
        for entry in live:
            assert entry.tracked is not None
            cpu, rss = processes.sample(entry.tracked)
            entry.writer = processes.writer(entry.tracked, cpu, rss)
        devices = self._gpus()
        if devices is None:
            return
        wall = self._wall()
        for device in devices:
            if device.util_pct is not None:
                self._history.setdefault(device.index, deque(maxlen=HISTORY)).append((wall, device.util_pct))
        lost = self._nvml.lost if self._nvml is not None else set()
        ancestry: dict[int, int] = {}
        for entry in live:
            assert entry.tracked is not None
            entry.gpus = tuple(
                self._gpu(device, used)
                for device in devices
                if (used := _run_memory(device, entry.tracked.alive, ancestry)) is not False
            )
            entry.used_gpus |= {g.index for g in entry.gpus}
            entry.lost = tuple(sorted(entry.used_gpus & lost))

    def _gpus(self) -> list[Device] | None:
        if self._nvml_auto:
            self._nvml_auto, self._nvml = False, Nvml.open()
        return self._nvml.sample() if self._nvml is not None else None

    def _gpu(self, device: Device, run_mem: float | None) -> Gpu:
        return Gpu(
            index=device.index,
            name=device.name,
            util_pct=device.util_pct,
            mem_used_mib=device.mem_used_mib,
            mem_total_mib=device.mem_total_mib,
            power_w=device.power_w,
            power_limit_w=device.power_limit_w,
            temp_c=device.temp_c,
            run_mem_mib=run_mem,
            util_history=tuple(self._history.get(device.index, ())),
        )


def _run_memory(device: Device, pids: set[int], ancestry: dict[int, int]) -> float | Literal[False] | None:
    """The GPU memory (MiB) that ``pids`` and their descendants hold on
    ``device``; ``False`` when none of them computes on it."""
    total: float | None = None
    matched = False
    for pid, used in device.processes.items():
        if pids.intersection(processes.parents(pid, ancestry)):
            matched = True
            if used is not None:
                total = (total or 0.0) + used
    return total if matched else False


def _size(path: str) -> int:
    with contextlib.suppress(OSError):
        return os.stat(path).st_size
    return 0
