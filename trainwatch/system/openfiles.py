"""Which processes hold a file open for writing: a kernel question first, then ``/proc``.

Two steps, cheapest first. ``writing`` asks the kernel whether *any*
process on this machine has the file open for writing: a read lease
(``fcntl(F_SETLEASE, F_RDLCK)``) is refused with EAGAIN exactly then,
whoever the process belongs to, and costs ~15 µs. Only a file that someone
writes is then looked for in ``/proc/PID/fd`` (``holders``): a readlink per
open file of every process we may look into (~7 ms on a quiet box, more on
a busy one), and the ``flags`` line of ``/proc/PID/fdinfo/N`` for the few
that match. psutil's ``open_files()`` does the same for every file and
reads every fdinfo (3× the cost here); psutil is used for what it does
well, the processes themselves (``system.processes``).

The lease is held for the microseconds between taking and releasing it. A
writer that opens the file in that window waits until we release it (the
kernel tells the lease holder with a signal: SIGURG, ignored by default, so
that the signal cannot kill trainwatch). Linux only; elsewhere every answer
is "cannot tell", and nothing here ever raises.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

try:
    import fcntl
except ImportError:  # not a Unix: no leases
    fcntl = None  # type: ignore[assignment]

PROC = "/proc"
_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)


def writing(path: str) -> bool | None:
    """Does any process on this machine hold ``path`` open for writing?

    ``None``: cannot tell (not our file and no CAP_LEASE, leases off, a
    filesystem without them such as NFS, not Linux)."""
    if fcntl is None or not hasattr(fcntl, "F_SETLEASE"):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # A lease broken while held signals its holder; SIGIO (the default) would end trainwatch.
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        except OSError as exc:
            return True if exc.errno == errno.EAGAIN else None
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    except OSError:
        return None
    finally:
        os.close(fd)


@dataclass
class Scan:
    """What one pass over ``/proc`` found."""

    #: path -> PIDs holding it open for writing.
    holders: dict[str, list[int]] = field(default_factory=dict)
    #: Processes whose open files we may not read (another user's, without privileges).
    hidden: int = 0
    #: Paths this process itself holds open for writing (a test's or the demo's writer).
    own: set[str] = field(default_factory=set)


def holders(paths: Collection[str], me: int | None = None, proc: str = PROC) -> Scan:
    """The processes that hold each of ``paths`` open for writing.

    A path is matched by the name the kernel gives the open file (its real
    path) and, for a file seen through another mount (a container's bind
    mount), by device and inode where the file name is the same. ``me``
    (default: this process) is left out: trainwatch never writes a log, so
    its own handles are a test's or the demo's."""
    me = os.getpid() if me is None else me
    wanted: dict[str, str] = {}
    names: dict[str, list[tuple[int, int, str]]] = {}  # base name -> (dev, ino, path)
    for path in paths:
        wanted[os.path.realpath(path)] = path
        try:
            st = os.stat(path)
        except OSError:
            continue
        names.setdefault(os.path.basename(path), []).append((st.st_dev, st.st_ino, path))
    scan = Scan()
    if not wanted:
        return scan
    for pid in _pids(proc):
        folder = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(folder)
        except PermissionError:
            scan.hidden += 1
            continue
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        for fd in fds:
            try:
                target = os.readlink(f"{folder}/{fd}")
            except OSError:
                continue
            match = wanted.get(target) or _same_inode(f"{folder}/{fd}", names.get(os.path.basename(target)))
            if match is None or not _for_writing(proc, pid, fd):
                continue
            if pid == me:
                scan.own.add(match)
            elif pid not in (found := scan.holders.setdefault(match, [])):
                found.append(pid)
    return scan


def writers_into_pipe(pipe: str, exclude: int, proc: str = PROC) -> list[int]:
    """Processes whose standard output or error is ``pipe`` (``pipe:[123]``):
    what a ``tee`` (or any filter) reading that pipe relays into the log."""
    found = []
    for pid in _pids(proc):
        if pid == exclude:
            continue
        for fd in (1, 2):
            try:
                if os.readlink(f"{proc}/{pid}/fd/{fd}") == pipe:
                    found.append(pid)
                    break
            except OSError:
                continue
    return found


def stdin_pipe(pid: int, proc: str = PROC) -> str | None:
    """``pipe:[N]`` when ``pid`` reads its standard input from a pipe."""
    try:
        target = os.readlink(f"{proc}/{pid}/fd/0")
    except OSError:
        return None
    return target if target.startswith("pipe:[") else None


def stdout_of(pid: int, proc: str = PROC) -> str | None:
    """What ``pid``'s standard output is (a path, ``pipe:[N]``...), if it may be read."""
    try:
        return os.readlink(f"{proc}/{pid}/fd/1")
    except OSError:
        return None


def _pids(proc: str) -> Iterable[int]:
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    return [int(n) for n in names if n.isdigit()]


def _same_inode(fd_path: str, candidates: list[tuple[int, int, str]] | None) -> str | None:
    if not candidates:
        return None
    try:
        st = os.stat(fd_path)  # follows the link to the open file itself
    except OSError:
        return None
    return next((path for dev, ino, path in candidates if (dev, ino) == (st.st_dev, st.st_ino)), None)


def _for_writing(proc: str, pid: int, fd: str) -> bool:
    """``flags:`` in ``/proc/PID/fdinfo/FD`` (octal) has write access."""
    try:
        with open(f"{proc}/{pid}/fdinfo/{fd}", encoding="ascii") as info:
            for line in info:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & os.O_ACCMODE in _WRITE_MODES
    except (OSError, ValueError, IndexError):
        return False
    return False
