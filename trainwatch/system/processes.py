"""From the processes that hold a log open to *the* writer of the run, and whether it lives.

Who holds a log for writing depends on how the run was started:

* ``python train.py > log`` (through a shell, ``nohup``, ``setsid``, a
  ``tmux`` pane): the training process, whose standard output is the log.
* ``torchrun ... > log``: the launcher and every worker (they inherit it).
* ``python train.py 2>&1 | tee log``: only ``tee``. The run is whatever
  writes into the pipe ``tee`` reads, found by the pipe's identity.

The writer shown is the topmost of them (the launcher, not a worker; the
shell of ``sh -c '...' > log``, whose command names the rest); all of them
count as the run's processes, and the run lives while any of them does.

Liveness is watched through a pidfd per process (Linux 5.3+: readable once
the process is gone, and immune to PID reuse), polled with one syscall per
pass; elsewhere psutil's ``is_running`` (which compares start times).
psutil is imported on first use: most logs have no writer to look at.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trainwatch.core.box import Writer
from trainwatch.system import openfiles

if TYPE_CHECKING:
    import psutil

HOLDS = "holds the log open for writing"


@dataclass
class Tracked:
    """The processes that write one run's log, followed from lookup to exit."""

    pid: int  # the one shown: topmost
    how: str
    procs: dict[int, Any] = field(default_factory=dict)  # pid -> psutil.Process
    pidfds: dict[int, int] = field(default_factory=dict)  # pid -> pidfd, where the system has them
    cmdline: str = ""
    started_at: datetime | None = None
    user: str | None = None
    alive: set[int] = field(default_factory=set)
    sampled: bool = False  # cpu_percent() was primed: the next call measures

    @property
    def pids(self) -> tuple[int, ...]:
        return (self.pid, *sorted(p for p in self.procs if p != self.pid))

    def close(self) -> None:
        for fd in self.pidfds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pidfds.clear()


def track(pids: Iterable[int], how: str = HOLDS) -> Tracked | None:
    """A ``Tracked`` for the processes ``pids`` (that write one log), or
    ``None`` when none of them can be looked at any more."""
    import psutil

    procs: dict[int, psutil.Process] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs[pid] = psutil.Process(pid)
    if not procs:
        return None
    tracked = Tracked(0, how, procs)
    tracked.alive = set(procs)
    for pid in procs:
        with contextlib.suppress(OSError, AttributeError):  # AttributeError: no os.pidfd_open here
            tracked.pidfds[pid] = os.pidfd_open(pid)
    _describe(tracked, topmost(procs))
    for proc in procs.values():  # primes cpu_percent: the next sample measures from here
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
    return tracked


def _describe(tracked: Tracked, pid: int) -> None:
    """Show ``pid`` as the run's writer: its command, start and user."""
    import psutil

    tracked.pid = pid
    main = tracked.procs[pid]
    with contextlib.suppress(psutil.Error), main.oneshot():
        tracked.cmdline = shlex.join(main.cmdline()) or main.name()
        tracked.started_at = datetime.fromtimestamp(main.create_time())
        tracked.user = main.username()


def topmost(procs: dict[int, psutil.Process]) -> int:
    """The process of ``procs`` that is an ancestor of most of the others
    (the launcher of workers), the oldest on a tie."""
    import psutil

    below: dict[int, int] = dict.fromkeys(procs, 0)
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):
            for parent in proc.parents():
                if parent.pid in below:
                    below[parent.pid] += 1

    def started(pid: int) -> float:
        try:
            return float(procs[pid].create_time())
        except psutil.Error:
            return float("inf")

    return max(procs, key=lambda pid: (below[pid], -started(pid), -pid))


def resolve(holders: list[int], log: str | None = None) -> Tracked | None:
    """The writer of ``log``, held open by ``holders``, looking through a ``tee``.

    A holder that reads its standard input from a pipe, and whose own
    standard output is not the log, relays whatever writes into that pipe:
    those processes are the run (``tee`` ends with them, at the end of its
    input). ``python train.py > log`` fed by a pipe is no relay: its output
    is the log."""
    real = os.path.realpath(log) if log is not None else None
    for pid in holders:
        pipe = openfiles.stdin_pipe(pid)
        if pipe is None or (real is not None and openfiles.stdout_of(pid) == real):
            continue
        producers = openfiles.writers_into_pipe(pipe, exclude=pid)
        if producers:
            name = _name(pid)
            return track([*producers, *holders], f"prints into {name} (PID {pid}), which writes the log")
    return track(holders)


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as comm:
            return comm.read().strip() or "a filter"
    except OSError:
        return "a filter"


def still_alive(tracked: Tracked) -> set[int]:
    """Update and return which of the tracked processes still run: one
    ``poll`` over the pidfds, psutil for the rest."""
    import psutil

    gone: set[int] = set()
    fds = {fd: pid for pid, fd in tracked.pidfds.items() if pid in tracked.alive}
    if fds:
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        for fd, _ in poller.poll(0):
            gone.add(fds[fd])
    for pid in tracked.alive - set(tracked.pidfds):
        try:
            if not tracked.procs[pid].is_running() or tracked.procs[pid].status() == psutil.STATUS_ZOMBIE:
                gone.add(pid)
        except psutil.Error:
            gone.add(pid)
    for pid in gone:
        tracked.alive.discard(pid)
        if pid in tracked.pidfds:
            with contextlib.suppress(OSError):
                os.close(tracked.pidfds.pop(pid))
    if tracked.pid not in tracked.alive and tracked.alive:
        # The launcher died and its workers write on: show the topmost of them.
        _describe(tracked, topmost({pid: tracked.procs[pid] for pid in tracked.alive}))
    return tracked.alive


def sample(tracked: Tracked) -> tuple[float | None, int | None]:
    """CPU % (of one core, since the previous sample) and resident memory of
    the tracked processes still alive, together."""
    import psutil

    cpu, rss, measured = 0.0, 0, False
    for pid in tracked.alive:
        proc = tracked.procs[pid]
        try:
            with proc.oneshot():
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
                measured = True
        except psutil.Error:
            continue
    first, tracked.sampled = not tracked.sampled, True
    if not measured:
        return None, None
    return (None if first else float(round(cpu))), rss  # whole %: the noise below that is no news


def writer(tracked: Tracked, cpu_pct: float | None = None, rss_bytes: int | None = None) -> Writer:
    """The ``core.box.Writer`` of ``tracked`` as it stands."""
    return Writer(
        pid=tracked.pid,
        alive=bool(tracked.alive),
        cmdline=tracked.cmdline,
        started_at=tracked.started_at,
        how=tracked.how,
        pids=tracked.pids if not tracked.alive else (tracked.pid, *sorted(tracked.alive - {tracked.pid})),
        user=tracked.user,
        cpu_pct=cpu_pct if tracked.alive else None,
        rss_bytes=rss_bytes if tracked.alive else None,
    )


def parents(pid: int, cache: dict[int, int]) -> list[int]:
    """``pid`` and its ancestors up to init, from ``/proc`` (``cache``: pid -> parent, for one sample)."""
    import psutil

    chain = [pid]
    while pid > 1 and len(chain) < 64:
        if pid not in cache:
            try:
                cache[pid] = psutil.Process(pid).ppid()
            except psutil.Error:
                cache[pid] = 0
        pid = cache[pid]
        if pid <= 0:
            break
        chain.append(pid)
    return chain
