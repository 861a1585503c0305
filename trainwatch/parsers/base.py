"""The contract every log-format parser meets.

Three kinds of log exist. *Line* logs (stdout captures, JSONL, CSV) only grow:
the tailer hands each complete line, once, to a stateful ``LineParser`` (or
all the complete lines it read at once, to a ``BulkLineParser``).
*Document* logs (one JSON object, rewritten whole) are parsed from scratch on
every change; a half-written document parses to ``None`` ("not ready") so the
caller keeps the last good result. *Record* logs (TensorBoard event files)
only grow too, but are binary: the tailer hands the bytes appended, cut
anywhere, to a ``RecordParser``, which keeps a cut record until the rest
comes. Parsers do no I/O and never raise on bad input: a line they do not
understand is skipped.

A document that grows in the middle (an array gaining entries before a small
tail, rewritten whole each time) may also be read *resumably*: the parser says
where its stable part ends (``DocumentParse.resume_at``), and after the
caller has checked that the bytes before that point did not change, it parses
only the bytes after it. A cold load and a resumed one feed an aggregator to
the same state.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from trainwatch.core.records import BulkRecord, Record


class LineParser(Protocol):
    """Stateful parser of an append-only log, fed one line at a time.

    ``line`` has its trailing ``\\n`` / ``\\r\\n`` removed; it may still hold
    inner ``\\r`` (progress bars) and ANSI escapes.
    """

    def feed(self, line: str) -> Sequence[Record]: ...


class FlushingLineParser(LineParser, Protocol):
    """A line parser that holds records back until a later line completes
    them (an MFU line after its iteration line, a val loss waiting for its
    HellaSwag result). ``flush`` hands them over when no more input is due."""

    def flush(self) -> Sequence[Record]: ...


@runtime_checkable
class BulkLineParser(LineParser, Protocol):
    """A line parser that also takes many lines at once, for catching up on a big log.

    ``feed_text(text)`` must give the same records, in the same order, as
    ``feed`` of each line of ``text`` in turn, except that runs of plain
    iteration lines may come as one ``IterationColumns`` (the aggregator
    takes them to the same figures). ``text`` is whole lines, each ending in
    ``\\n``, with ``\\r\\n`` already made ``\\n``: the decoded bytes as read.
    A list of lines is built only where needed: splitting a 100 MB log into
    lines and joining them again costs ~0.1 µs a line, 5 % of its load.
    """

    def feed_text(self, text: str) -> Sequence[BulkRecord]: ...


class RecordParser(Protocol):
    """Stateful parser of an append-only binary log, fed the bytes appended
    since the last call (cut anywhere: it keeps an unfinished record)."""

    def feed(self, data: bytes) -> Sequence[Record]: ...

    def flush(self) -> Sequence[Record]:
        """No more bytes are due now: hand over what is held back."""
        ...


@dataclass(frozen=True, slots=True)
class DocumentParse:
    """A document parsed in two parts, so that its next rewrite can be read from ``resume_at``.

    ``records`` are settled: they follow from the bytes before ``resume_at``
    alone, so they are fed to the run's aggregator once. ``tail`` is what
    the rest of the document says now (later evals, the end of the run,
    metadata written last); a newer parse replaces it, so it is applied to a
    copy. ``resume_at`` is ``None`` when the document cannot be resumed (read
    it whole next time). Bytes ``[0, head_end)`` are the document's head,
    which must stay as it is for a resume. ``state`` is the parser's own.
    """

    records: Sequence[Record]
    tail: Sequence[Record] = ()
    resume_at: int | None = None
    head_end: int = 0
    state: object = None


@dataclass(frozen=True, slots=True)
class ParserSpec:
    """One format: how to recognise it and how to parse it."""

    format: str
    kind: Literal["lines", "document", "records"]
    #: ``sniff(head, filename)``: does this look like ours? ``head`` is the
    #: first few KB of the file, decoded leniently.
    sniff: Callable[[str, str], bool]
    new_line_parser: Callable[[], LineParser] | None = None
    #: For a binary format: ``sniff_bytes(head, filename)`` on the raw first
    #: bytes, asked before the text sniffers (which never see a file with NULs).
    sniff_bytes: Callable[[bytes, str], bool] | None = None
    new_record_parser: Callable[[], RecordParser] | None = None
    parse_document: Callable[[bytes], Sequence[Record] | None] | None = None
    #: Optional, for documents that grow in the middle: the whole document as
    #: a ``DocumentParse`` (``None``: not whole yet) ...
    parse_document_resumable: Callable[[bytes], DocumentParse | None] | None = None
    #: ... and, given the bytes from ``previous.resume_at`` on, only what is new
    #: (``None``: cannot resume exactly; parse the whole document instead).
    parse_document_from: Callable[[bytes, DocumentParse], DocumentParse | None] | None = None
    #: Metadata files beside the log (Lightning's ``hparams.yaml``): for a log
    #: file name, the sidecar names to look for, most specific first ...
    sidecar_names: Callable[[str], list[str]] | None = None
    #: ... which all end with this (what a remote host is asked to send).
    sidecar_suffix: str | None = None
    #: The line parser, given the text of the sidecar that was found.
    new_line_parser_with_sidecar: Callable[[str], LineParser] | None = None


log = logging.getLogger("trainwatch.parsers")
log.addHandler(logging.NullHandler())  # never print over the TUI; a logging config shows these
#: Tracebacks logged per format at most: a bug that fires on every line must not flood a log.
MAX_LOGGED_ERRORS = 5
_logged: Counter[str] = Counter()


def line_failed(format_name: str, line: str) -> None:
    """Record that a parser's safety net caught an exception on ``line``.

    The line parsers catch everything (a monitor must never die on a strange
    line), which would also hide their bugs: call this from the ``except``
    so the traceback reaches the ``trainwatch.parsers`` logger, the first
    MAX_LOGGED_ERRORS times per format.
    """
    _logged[format_name] += 1
    if _logged[format_name] <= MAX_LOGGED_ERRORS:
        log.warning("%s parser failed on line %.200r", format_name, line, exc_info=True)
