"""Reading files that may be anything: only a regular file is read.

``open()`` of a FIFO blocks until a writer comes (for ever, if none does), a
character device such as ``/dev/zero`` never ends, and a path that was a log
a moment ago can be either by the time it is opened. So every file
trainwatch reads (logs, rotated copies, sidecars, the config file) is opened
here: without blocking, then checked with ``fstat`` on the open descriptor,
which tells what was really opened, whatever the path pointed at before.

And what a file says about itself is checked too: a hole (``data_from``,
``past_nuls``) is skipped rather than read as zeros, and a modification time
no datetime can hold is no time at all (``from_timestamp``).
"""

from __future__ import annotations

import errno
import os
import stat as stat_module
from datetime import datetime
from typing import BinaryIO


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder: never read."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(errno.EINVAL, "not a regular file", os.fspath(path))


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """``path`` opened for reading, unbuffered (``seek`` may use ``SEEK_DATA``);
    ``NotRegularFile`` (an ``OSError``) if it is not a regular file.

    ``O_NONBLOCK`` makes the open of a FIFO return at once instead of waiting
    for a writer; it changes nothing for a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    try:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(path)
        return open(fd, "rb", buffering=0, closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of the regular file ``path``, if it holds at most ``limit``;
    ``OSError`` otherwise (``NotRegularFile``, or EFBIG for a bigger one)."""
    with open_regular(path) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", os.fspath(path))
    return data


def from_timestamp(seconds: float) -> datetime | None:
    """A file time as a local datetime; ``None`` for one no datetime holds
    (tmpfs keeps mtimes past the year 9999, and NaN comes over the wire)."""
    try:
        return datetime.fromtimestamp(seconds)
    except (OverflowError, OSError, ValueError):
        return None


#: Zeros scanned past at most, where a file system stores a hole as written zeros.
NUL_SCAN = 64 << 20


def past_nuls(handle: BinaryIO, chunk: int) -> int:
    """Where the first byte that is not NUL is (at most ``NUL_SCAN`` bytes of zeros are read)."""
    pos = 0
    try:
        pos = handle.seek(0, os.SEEK_DATA)  # a hole is skipped without reading it
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # nothing but a hole
            return handle.seek(0, os.SEEK_END)
    except ValueError:  # (an in-memory file: no SEEK_DATA)
        pass
    handle.seek(pos)
    while pos < NUL_SCAN:
        block = handle.read(chunk)
        if not block:
            break
        rest = block.lstrip(b"\0")
        pos += len(block) - len(rest)
        if rest:
            break
    return pos


def data_from(handle: BinaryIO, offset: int, size: int) -> int:
    """The first offset at or after ``offset`` that is not in a hole (``size``: all hole)."""
    try:
        return handle.seek(offset, os.SEEK_DATA)
    except OSError as exc:
        return size if exc.errno == errno.ENXIO else offset  # (else: no SEEK_DATA here, read it all)
