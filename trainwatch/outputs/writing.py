"""Writing an export where the user said, and only there.

``write_atomic`` is what ``snapshot -o FILE`` and the app's export key write
with. A regular file is replaced whole (a temporary file beside it, then a
rename), so a reader never sees half of it. Everything else is written into,
never replaced: a character device (``-o /dev/null``, as root, made a plain
file of the device node), a FIFO, a terminal, ``/dev/stdout`` and the
``/proc/self/fd`` links. What the file was stays: a symlink is written
through to its target, an existing file keeps its mode and owner, a new one
gets the umask's mode, and a file with other hard links is rewritten in
place. A SIGTERM or SIGHUP during the write leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import signal
import stat as stat_module
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

#: Links to an open file of some process: what they point at is no path to rename over.
_FD_LINK = re.compile(r"/(?:dev/(?:fd/|std(?:in|out|err)$)|proc/[^/]+/fd/)")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers never see a partial file (see the module)."""
    # surrogateescape: a file name that is not UTF-8 is written as its bytes, as ls shows it.
    data = text.encode("utf-8", "surrogateescape")
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat_module.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if st is not None and (not stat_module.S_ISREG(st.st_mode) or _through_fd_link(path)):
        _write_into(path, data, append=stat_module.S_ISREG(st.st_mode))
        return
    target = Path(os.path.realpath(path)) if os.path.islink(path) else path  # (a dangling link: its target is made)
    if st is not None and st.st_nlink > 1:
        _write_into(target, data, truncate=True)  # a rename would cut it off from its other names
        return
    with _signals_raise():
        if not _replace(target, data, st):
            _write_into(target, data, truncate=True)


def _replace(target: Path, data: bytes, old: os.stat_result | None) -> bool:
    """Write ``data`` to a temporary file beside ``target`` and rename it over
    it; ``False`` (nothing written) if the old file cannot be replaced by one
    with its owner (not ours to give), or not from its folder (not writable)."""
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except PermissionError:
        if old is None:
            raise
        return False  # a folder we may not add to, a file we may write: written in place, as > would
    try:
        with os.fdopen(fd, "wb") as handle:
            mine = os.fstat(handle.fileno())
            if old is not None and (old.st_uid, old.st_gid) != (mine.st_uid, mine.st_gid):
                try:
                    os.fchown(handle.fileno(), old.st_uid, old.st_gid)
                except PermissionError:
                    Path(tmp).unlink(missing_ok=True)
                    return False
            # After the chown, which clears set-id bits. mkstemp makes 0600 whatever the umask.
            os.fchmod(handle.fileno(), stat_module.S_IMODE(old.st_mode) if old is not None else 0o666 & ~_umask())
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def _write_into(path: Path, data: bytes, *, truncate: bool = False, append: bool = False) -> None:
    """Write ``data`` into what ``path`` names, without replacing it. A FIFO
    that no process reads is an error (ENXIO), not a wait for ever."""
    flags = os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    flags |= (os.O_TRUNC | os.O_CREAT) if truncate else 0
    flags |= os.O_APPEND if append else 0  # /dev/stdout onto a file: where the shell's >> or > put it
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(exc.errno, "no process is reading it", str(path)) from None
        raise
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)  # a slow reader: wait for it
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        with contextlib.suppress(OSError):  # (a pipe or a terminal cannot be synced)
            os.fsync(handle.fileno())


def _through_fd_link(path: Path) -> bool:
    """Does ``path`` lead, link by link, through ``/dev/stdout`` or ``/proc/self/fd/N``?"""
    here = os.path.abspath(path)
    for _ in range(40):  # (the kernel's own limit of links followed)
        if _FD_LINK.match(here):
            return True
        try:
            here = os.path.join(os.path.dirname(here), os.readlink(here))
        except OSError:
            return False
        here = os.path.normpath(here)
    return False


def _umask() -> int:
    """The process's umask, read without setting it (another thread may be creating files)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _Signalled(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP, where they would kill the process as it stands
    (default action, main thread), raise instead while the body runs, so that
    its clean-up runs; then the signal is delivered again as it was meant."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    watched = [s for s in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) == signal.SIG_DFL]

    def raise_(signum: int, frame: FrameType | None) -> None:
        raise _Signalled(signum)

    for signum in watched:
        signal.signal(signum, raise_)
    try:
        yield
    except _Signalled as caught:
        for signum in watched:
            signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(caught.signum)  # the default action: the process ends by it
        raise
    finally:
        for signum in watched:
            signal.signal(signum, signal.SIG_DFL)
