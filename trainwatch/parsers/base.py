"""The contract every log-format parser meets.

Two kinds of log exist. *Line* logs (stdout captures, JSONL, CSV) only grow:
the tailer hands each complete line, once, to a stateful ``LineParser``.
*Document* logs (one JSON object, rewritten whole) are parsed from scratch on
every change; a half-written document parses to ``None`` ("not ready") so the
caller keeps the last good result. Parsers do no I/O and never raise on bad
input: a line they do not understand is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from trainwatch.records import Record


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


@dataclass(frozen=True, slots=True)
class ParserSpec:
    """One format: how to recognise it and how to parse it."""

    format: str
    kind: Literal["lines", "document"]
    #: ``sniff(head, filename)``: does this look like ours? ``head`` is the
    #: first few KB of the file, decoded leniently.
    sniff: Callable[[str, str], bool]
    new_line_parser: Callable[[], LineParser] | None = None
    parse_document: Callable[[bytes], Sequence[Record] | None] | None = None
    #: Metadata files beside the log (Lightning's ``hparams.yaml``): for a log
    #: file name, the sidecar names to look for, most specific first.
    sidecar_names: Callable[[str], list[str]] | None = None
    #: The line parser, given the text of the sidecar that was found.
    new_line_parser_with_sidecar: Callable[[str], LineParser] | None = None
