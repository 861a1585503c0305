"""Reading a document log (one JSON object, rewritten whole) on each change.

A document is parsed whole when it changes; a half-written one leaves the
last good parse in place. A document whose parser can resume
(``ParserSpec.parse_document_from``) is read from its resume point instead
when the bytes before it look unchanged, so a rewrite that adds ten entries
to a 100 MB log costs ten entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import replace
from typing import BinaryIO

from trainwatch.core.aggregate import RunAggregator
from trainwatch.parsers.base import DocumentParse, ParserSpec


class DocumentReader:
    """What was read of one document log: the stamp (size, time) it was read
    at and, for a resumable one, its last parse, the aggregate of its settled
    records and the digest of the bytes before its resume point."""

    def __init__(self) -> None:
        self._stamp: Hashable = None
        self._parse: DocumentParse | None = None
        self._base: RunAggregator | None = None
        self._print = b""
        #: The last ``read`` met a half-written document.
        self.incomplete = False

    def read(
        self,
        spec: ParserSpec,
        handle: BinaryIO,
        stamp: Hashable,
        size: int,
        new_aggregator: Callable[[], RunAggregator],
    ) -> RunAggregator | None:
        """The run's new aggregate if the document changed since ``stamp``
        and parses; ``None`` if unchanged or half-written (``incomplete``)."""
        assert spec.parse_document is not None
        self.incomplete = False
        if stamp == self._stamp:
            return None
        parsed = self._resume(spec, handle, size)
        if parsed is not None:
            assert self._base is not None
            base = self._base
            base.add_all(parsed.records)
        else:
            handle.seek(0)
            data = handle.read()
            if spec.parse_document_resumable is not None:
                parsed = spec.parse_document_resumable(data)
            else:
                records = spec.parse_document(data)
                parsed = DocumentParse(records) if records is not None else None
            if parsed is None:
                self.incomplete = True
                return None
            base = new_aggregator()
            base.add_all(parsed.records)
            if parsed.resume_at is not None:
                self._print = _prefix_print(lambda pos, n: data[pos : pos + n], parsed.head_end, parsed.resume_at)
        self._stamp = stamp
        if parsed.resume_at is None:
            self._parse = self._base = None
            agg = base
        else:
            # The settled part stays in ``base``; the tail goes on a copy, as
            # the next rewrite replaces it. The copy costs a memcpy of the
            # columns, far less than reading the document again. Only what a
            # resume needs is kept, not the records (a cold load's are many).
            self._parse, self._base = replace(parsed, records=(), tail=()), base
            agg = base.copy()
        agg.add_all(parsed.tail)
        return agg

    def _resume(self, spec: ParserSpec, handle: BinaryIO, size: int) -> DocumentParse | None:
        """The document's news since the last parse, read past its resume point; ``None``: read it whole.

        Only when the bytes before the resume point look unchanged: the same
        digest of the head and of sampled windows (see ``_prefix_print``).
        Reading and hashing every byte would cost as much as parsing them.
        """
        previous = self._parse
        if previous is None or previous.resume_at is None or spec.parse_document_from is None:
            return None
        old = previous.resume_at
        if size < old:
            return None

        def read_file(pos: int, n: int) -> bytes:
            handle.seek(pos)
            return handle.read(n)

        if _prefix_print(read_file, previous.head_end, old) != self._print:
            return None
        handle.seek(old)
        tail = handle.read()
        parsed = spec.parse_document_from(tail, previous)
        if parsed is None or parsed.resume_at is None:
            return None

        def read(pos: int, n: int) -> bytes:
            # What this parse saw: checked bytes before ``old``, the tail after it.
            if pos >= old:
                return tail[pos - old : pos - old + n]
            return read_file(pos, min(n, old - pos)) + (read(old, pos + n - old) if pos + n > old else b"")

        self._print = _prefix_print(read, parsed.head_end, parsed.resume_at)
        return parsed


#: A resumed document is trusted when these bytes before its resume point are
#: unchanged: the head (up to HEAD_PRINT bytes), SAMPLES windows of WINDOW
#: bytes spread evenly over the rest, and the WINDOW bytes just before the
#: resume point. An edit that changes an earlier entry's length shifts those
#: last bytes, so it is always seen; a same-length edit is seen only where a
#: window falls (the windows move as the document grows).
HEAD_PRINT = 1 << 16
WINDOW = 4096
SAMPLES = 16


def _prefix_print(read: Callable[[int, int], bytes], head_end: int, resume_at: int) -> bytes:
    """Digest of sampled windows of bytes ``[0, resume_at)``; ``read(pos, n)`` gives bytes."""
    digest = hashlib.blake2b(digest_size=16)
    head = min(head_end, HEAD_PRINT, resume_at)
    digest.update(read(0, head))
    span = resume_at - head
    for k in range(SAMPLES):
        pos = head + span * k // SAMPLES
        digest.update(read(pos, min(WINDOW, resume_at - pos)))
    last = max(head, resume_at - WINDOW)
    digest.update(read(last, resume_at - last))
    return digest.digest()
