"""What the bulk-path tests share: the per-line reference and the comparison.

A line log is read in bulk where its parser has ``feed_text`` (runs of plain
lines come as ``IterationColumns``, which the aggregator takes in C passes).
The per-line path (``feed`` per line, one ``Iteration`` each,
``take_iterations``) is the reference: every figure, series and column
must be the same to the bit.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

# The corpus folder, needed at collection to parametrize over its logs
# (../shared/corpus or $TRAINWATCH_CORPUS; tests/ is on sys.path).
from conftest import CORPUS

from trainwatch import parsers
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import BulkRecord, IterationColumns, Record
from trainwatch.core.series import Series
from trainwatch.core.stats import RunStats
from trainwatch.ingest.source import LogSource
from trainwatch.parsers.base import LineParser, ParserSpec

NOW = datetime(2030, 1, 1, 12, 0)


class PerLine:
    """A parser seen as a plain ``LineParser``: ``LogSource`` feeds it line by line."""

    def __init__(self, parser: LineParser) -> None:
        self._parser = parser

    def feed(self, line: str) -> Sequence[Record]:
        return self._parser.feed(line)

    def flush(self) -> Sequence[Record]:
        flush = getattr(self._parser, "flush", None)
        return flush() if flush is not None else ()


class PerLineSource(LogSource):
    """``LogSource`` as it read line logs before the bulk path."""

    def _make_line_parser(self, spec: ParserSpec) -> LineParser:
        return PerLine(super()._make_line_parser(spec))


def state(agg: RunAggregator) -> dict[str, str]:
    """Everything an aggregator holds, as text (``repr``: NaN equals NaN, -0.0 differs from 0.0)."""
    out: dict[str, str] = {}
    for name, value in vars(agg).items():
        if name in ("changes", "memo"):
            continue  # a counter of calls, and what was derived from it
        if isinstance(value, Series):
            value = (value.points(), value._stride, value._pending, value._pend_x, value._pend_y)
        elif isinstance(value, array):
            value = (value.typecode, value.tobytes())  # bytes: float32 NaNs and signed zeros too
        elif isinstance(value, bytearray):
            value = bytes(value)
        out[name] = repr(value)
    return out


def assert_same(bulk: RunAggregator, reference: RunAggregator) -> None:
    """Every RunStats field (series included) and every piece of state are equal."""
    got, want = bulk.stats(NOW), reference.stats(NOW)
    for field in fields(RunStats):
        assert repr(getattr(got, field.name)) == repr(getattr(want, field.name)), field.name
    got_state, want_state = state(bulk), state(reference)
    for name in want_state:
        assert got_state[name] == want_state[name], name


def expanded(records: Sequence[BulkRecord]) -> list[Record]:
    """The records with each ``IterationColumns`` as its rows."""
    out: list[Record] = []
    for record in records:
        if isinstance(record, IterationColumns):
            out += record.iterations()
        else:
            out.append(record)
    return out


def feed_per_line(new: Callable[[], Any], text: str) -> list[Record]:
    """Records of ``feed`` of each line of ``text`` (whole lines), then ``flush``."""
    parser = new()
    out: list[Record] = []
    for line in text.split("\n")[:-1]:
        out += parser.feed(line)
    return out + list(getattr(parser, "flush", list)())


def feed_bulk(new: Callable[[], Any], text: str, cuts: Sequence[int] = ()) -> list[BulkRecord]:
    """``feed_text`` of ``text`` cut at line starts near ``cuts``, then ``flush``."""
    parser = new()
    out: list[BulkRecord] = []
    start = 0
    for cut in sorted(cuts):
        end = text.find("\n", cut) + 1
        if end > start:
            out += parser.feed_text(text[start:end])
            start = end
    out += parser.feed_text(text[start:])
    return out + list(getattr(parser, "flush", list)())


def corpus_logs(*formats: str) -> list[Path]:
    """Every log of the corpus in one of ``formats``, as detection sees it."""
    if not CORPUS.is_dir():
        return []
    found = []
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file() and path.suffix != ".md":
            with open(path, "rb") as handle:
                head = handle.read(parsers.SNIFF_BYTES_MORE)  # as LogSource: the first bytes, else more
            spec = parsers.detect_head(head, path.name)
            if spec is not None and spec.format in formats:
                found.append(path)
    return found


def load_both(log: Path) -> tuple[LogSource, LogSource]:
    """``log`` read by the bulk path and by the per-line reference, each to its end."""
    reference = PerLineSource(log)
    reference.refresh()
    reference.flush()
    bulk = LogSource(log)
    bulk.refresh()
    bulk.flush()
    return bulk, reference


def text_of(path: Path) -> str:
    """A log's whole lines as ``LogSource`` hands them to ``feed_text``."""
    text = path.read_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
    return text[: text.rfind("\n") + 1]
