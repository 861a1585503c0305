"""Bytes of a growing log in, whole lines out: the line tailer's buffer.

A last line without its newline waits for it. The wait is bounded, in memory
and in time, whatever the file holds:

- NUL bytes are dropped. A log copytruncated under a writer that lacks
  ``O_APPEND`` goes on at its old offset, and the hole before reads as NULs
  (as many as the old log had bytes), glued to the next line.
- ``\r`` ends a line as far as progress goes. A progress bar redrawn with
  ``\r`` for hours (tqdm writes no newline until it closes, and each frame
  of a Trainer's bar is a step) is handed on, once it is longer than
  ``MAX_LINE``, up to its last ``\r``: as one line, each of its frames in it,
  with no frame lost and none kept waiting. A single segment longer than
  that keeps its first ``MAX_LINE`` bytes; the rest up to the next ``\r``
  or ``\n`` is dropped.
- New bytes are searched once: the held part is never rescanned or copied
  again for each read, which made a 150 MB bar line cost minutes.

``Print`` is what identifies the bytes read of a log (its head and the tail
before the offset): a rotated copy holds them (``ingest.rotation``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

#: The most of one unfinished line (or ``\r`` segment) that is held.
MAX_LINE = 1 << 20
#: Bytes before the read offset checked on each read (``LogSource._same_tail``).
TAIL = 64


class LineBuffer:
    """The unfinished last line of what was read, bounded (see the module)."""

    __slots__ = ("_dropping", "_held", "_ready")

    def __init__(self) -> None:
        self._held = bytearray()
        self._ready: list[bytes] = []  # parts of a long line cut at a \r, to hand on
        self._dropping = False  # the held segment hit MAX_LINE: bytes up to the next \r or \n go

    def clear(self) -> None:
        """Forget the held line (the file started over)."""
        self._held.clear()
        self._ready.clear()
        self._dropping = False

    def push(self, chunk: bytes) -> bytes | memoryview:
        """The whole lines that ``chunk`` completes, each with its ``\\n`` (empty if none)."""
        if b"\0" in chunk:  # (one memchr: normal logs pay nothing more)
            chunk = chunk.replace(b"\0", b"")
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._hold(chunk)
            return self._take_ready()
        lines: bytes | memoryview
        if self._held or self._dropping or self._ready:
            first = chunk.find(b"\n")
            self._hold(chunk[:first])  # the end of the held line, bounded like the rest of it
            head = self._take_ready() + bytes(self._held)
            self._held.clear()
            self._dropping = False
            lines = b"".join((head, memoryview(chunk)[first : cut + 1]))
        else:
            lines = memoryview(chunk)[: cut + 1]  # decoded in place: no copy of the chunk
        if cut + 1 < len(chunk):
            self._hold(chunk[cut + 1 :])
            if self._ready:  # (a rest longer than MAX_LINE: its frames follow the lines)
                lines = bytes(lines) + self._take_ready()
        return lines

    def _take_ready(self) -> bytes:
        if not self._ready:
            return b""
        ready = b"".join(self._ready)
        self._ready.clear()
        return ready

    def _hold(self, piece: bytes) -> None:
        if not piece:
            return
        if self._dropping:
            at = piece.find(b"\r")
            if at < 0:
                return
            self._dropping = False  # a new segment after the cut one
            piece = piece[at:]
        held = self._held
        held += piece
        if len(held) > MAX_LINE:
            at = held.rfind(b"\r")
            if at > 0:  # its frames up to the last \r: a line of their own
                self._ready.append(bytes(held[:at]) + b"\n")
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
