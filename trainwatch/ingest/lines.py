"""Bytes of a growing log in, whole lines out: the line tailer's buffer.

A last line without its newline waits for it. The wait is bounded, in memory
and in time, whatever the file holds:

- NUL bytes are dropped. A log copytruncated under a writer that lacks
  ``O_APPEND`` goes on at its old offset, and the hole before reads as NULs
  (as many as the old log had bytes), glued to the next line.
- A line longer than ``MAX_LINE`` keeps only what a terminal would show of it:
  a progress bar redrawn with ``\\r`` for hours (tqdm writes no newline until
  it closes) keeps its last segment, as the parsers read it
  (``parsers.text.last_cr_segment``); a segment longer than that keeps its
  first ``MAX_LINE`` bytes and the rest up to the next ``\\r`` or ``\\n`` is
  dropped.
- New bytes are searched once: the held part is never rescanned or copied
  again for each read, which made a 150 MB bar line cost minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

#: The most of one unfinished line (or ``\r`` segment) that is kept.
MAX_LINE = 1 << 20
#: Bytes before the read offset checked on each read (``LogSource._same_tail``).
TAIL = 64


class LineBuffer:
    """The unfinished last line of what was read, bounded (see the module)."""

    __slots__ = ("_dropping", "_held")

    def __init__(self) -> None:
        self._held = bytearray()
        self._dropping = False  # the held segment hit MAX_LINE: bytes up to the next \r or \n go

    def clear(self) -> None:
        """Forget the held line (the file started over)."""
        self._held.clear()
        self._dropping = False

    def push(self, chunk: bytes) -> bytes | memoryview:
        """The whole lines that ``chunk`` completes, each with its ``\\n`` (empty if none)."""
        if b"\0" in chunk:  # (one memchr: normal logs pay nothing more)
            chunk = chunk.replace(b"\0", b"")
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._hold(chunk)
            return b""
        if self._held or self._dropping:
            first = chunk.find(b"\n")
            self._hold(chunk[:first])  # the end of the held line, bounded like the rest of it
            head = bytes(self._held)
            self.clear()
            lines: bytes | memoryview = b"".join((head, memoryview(chunk)[first : cut + 1]))
        else:
            lines = memoryview(chunk)[: cut + 1]  # decoded in place: no copy of the chunk
        if cut + 1 < len(chunk):
            self._hold(chunk[cut + 1 :])
        return lines

    def _hold(self, piece: bytes) -> None:
        if not piece:
            return
        if self._dropping:
            at = piece.find(b"\r")
            if at < 0:
                return
            self._dropping = False  # a new segment: the terminal shows it over the cut one
            piece = piece[at:]
        held = self._held
        held += piece
        if len(held) > MAX_LINE:
            # Keep from the \r that starts the last segment showing anything
            # (last_cr_segment skips blank ones, as a terminal shows them).
            shown = len(held.rstrip())
            at = held.rfind(b"\r", 0, shown)
            if at > 0:
                del held[:at]
            if len(held) > MAX_LINE:
                del held[MAX_LINE:]
                self._dropping = True


class Print(NamedTuple):
    """Bytes that identify what was read of a line log: its first ``HEAD``
    bytes, and the last ``TAIL`` bytes read, which end at ``offset``."""

    head: bytes
    offset: int
    tail: bytes

    def seen_in(self, read: Callable[[int, int], bytes], size: int) -> bool | None:
        """Does a file of ``size`` bytes (``read(pos, n)``) hold these bytes where
        they were? ``None``: it matches so far, but is still shorter than ``offset``."""
        start = read(0, len(self.head))
        if not self.head.startswith(start):
            return False
        if size < self.offset:
            return None
        # (the whole head was read: it ends at or before ``offset``, within the file)
        return read(self.offset - len(self.tail), len(self.tail)) == self.tail
