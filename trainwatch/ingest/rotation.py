"""Rotated copies: is a new ``train.log.1`` a copy of a log being shown, or a new run?

logrotate renames a log (``train.log`` -> ``train.log.1``) or copies it and
empties the original (``copytruncate``); either way the copy holds lines the
run already shows, so it is no second run. A new run whose script named its
log ``train.log.1`` because ``train.log`` was taken is one. The copy is told
by its content, never by its name alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from trainwatch.ingest.files import open_regular
from trainwatch.ingest.source import CHUNK, LogSource, SourceError

#: A new file that may be a rotated copy of a log and still cannot be told
#: after this many seconds is a run of its own.
UNDECIDED_S = 30.0


class Rotations:
    """The watcher's memory of rotated copies: those it ignores, and those
    still being written that it cannot tell yet (looked at again each pass)."""

    def __init__(self) -> None:
        #: Rotated-away copies of runs already shown.
        self.ignored: set[str] = set()
        #: Maybe such a copy, still being written, and since when (monotonic).
        self.undecided: dict[str, float] = {}

    def skip(
        self,
        path: str,
        moved_from: str | None,
        shown: Callable[[str], LogSource | None],
        accepts: Callable[[str], bool],
    ) -> bool:
        """Is ``path``, a file the watcher has no source for, a rotated copy (or
        maybe one, still being written) of a log being shown? ``moved_from``:
        the name it was renamed from; ``shown``: the source of a path, if any.
        """
        if moved_from is not None:
            old = shown(moved_from)
            if moved_from in self.ignored or (old is not None and old.ready):
                # A rotated-away copy of a run already shown (log -> log.1) is not a new run.
                self.ignored.add(path)
                return True
        elif path not in self.ignored and accepts(path) and (base := rotated_from(path)) is not None:
            # logrotate's copytruncate: log copied to log.1, then emptied and written on.
            # The copy holds lines the run shows already (its source keeps them).
            copy = self.copy_of_shown(path, shown(base))
            if copy:
                self.ignored.add(path)
                self.undecided.pop(path, None)
            if copy is not False:
                return True  # (undecided: looked at again at each pass)
        self.undecided.pop(path, None)
        if path in self.ignored:
            if not os.path.lexists(path):
                self.ignored.discard(path)  # deleted: whatever appears there next is new
            return True
        return False

    def copy_of_shown(self, path: str, source: LogSource | None) -> bool | None:
        """Is ``path``, new and named as a rotation (``train.log.1``) of the log
        that ``source`` reads (``train.log``), a copy of it? ``None``: it may
        be, but is still being written.

        A copy holds what the log held: its first bytes, and the last bytes
        read at the offset they were read at (as read now, or before the log
        was last truncated: the copy and the truncation may be seen in either
        order). A file that still cannot be told after ``UNDECIDED_S`` is a
        run of its own.
        """
        if source is None or not source.ready:
            return False
        try:
            # Never open(): a FIFO named like a copy (train.log.1) blocked the watcher for good.
            with open_regular(path) as handle:
                size = os.fstat(handle.fileno()).st_size

                def read(pos: int, n: int) -> bytes:
                    handle.seek(pos)
                    return handle.read(n)

                seen = [p.seen_in(read, size) for p in source.prints()]
        except OSError:  # gone, unreadable, or no regular file: no copy
            return False
        if True in seen:
            return True
        if None not in seen:
            return False
        first = self.undecided.setdefault(path, time.monotonic())
        return None if time.monotonic() - first < UNDECIDED_S else False


def rotated_from(path: str) -> str | None:
    """The log that ``path`` would be a rotation of (``train.log.1`` -> ``train.log``), else ``None``."""
    base, number = os.path.splitext(path)
    return base if number[1:].isascii() and number[1:].isdigit() else None


def read_copies(source: LogSource, copies: Sequence[str]) -> list[str]:
    """Feed a log's rotated copies, oldest first, to the log's ``source``
    before its first read (``grouping.rotation_chains`` finds them at startup).

    The copies and the log are one stream, as if the log had been watched
    all along: each file is a new identity to the source (its bytes start at
    0 again, the run's state is kept), so steps that go on continue the run
    and steps that go back are a restart, never counted twice. The problems
    (a copy that cannot be read is left out), one line each.
    """
    problems: list[str] = []
    for copy in copies:
        try:
            # Never open(): a FIFO named like a copy (train.log.1) would block the watcher for good.
            with open_regular(copy) as handle:
                stat = os.fstat(handle.fileno())
                identity = ("rotated copy", stat.st_dev, stat.st_ino)
                offset = 0
                while chunk := handle.read(CHUNK):
                    source.feed_bytes(chunk, identity, offset, stat.st_mtime)
                    offset += len(chunk)
        except OSError as exc:
            problems.append(f"cannot read {copy}: {exc.strerror or exc}")
        except SourceError as exc:
            problems.append(str(exc))
    return problems
