"""What every bulk line parser shares (``parsers.base.BulkLineParser``).

A long log is almost all lines of one shape: the framework's per-step line.
``feed_text`` finds how far such lines run with one possessive regex call
(``runs``), turns the run into columns with one ``findall`` and a ``map`` of
``int``/``float`` per field (``columns``), all in C, and gives every other
line to the parser's ``feed``, one by one, as before. A line taken in bulk
must be one that ``feed``'s fast path takes, with the values it gives; the
run regex may be narrower than that fast path (a line it leaves goes to
``feed``), never wider.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from operator import ge
from typing import Any

from trainwatch.core.records import BulkRecord, IterationColumns, Record

#: Fewer plain lines in a row than this are fed one by one: columns cost
#: ~30 µs a run to set up (measured break-even: 5-6 lines).
MIN_COLUMN_ROWS = 8


def runs(text: str, run: re.Pattern[str], start: str) -> Iterator[tuple[int, int, bool]]:
    """``text`` (whole lines) as ``(begin, end, plain)`` pieces: runs of
    lines ``run`` matches, and the lines between.

    ``run`` matches as many whole lines as follow a position (``(?:…\\n)*+``);
    ``start`` is how such a line begins, so that the lines between are
    skipped to the next line that might be one, without a look at each.
    """
    pos, end = 0, len(text)
    needle = "\n" + start
    while pos < end:
        match = run.match(text, pos)
        stop = match.end() if match is not None else pos
        if stop > pos:
            yield pos, stop, True
        if stop == end:
            return
        following = text.find(needle, stop)
        pos = end if following < 0 else following + 1
        yield stop, pos, False


def feed_runs(
    text: str,
    run: re.Pattern[str],
    start: str,
    feed: Callable[[str], Sequence[Record]],
    columns: Callable[[str], IterationColumns | None],
    settle: Callable[[], bool] = lambda: False,
) -> list[BulkRecord]:
    """A bulk parser's ``feed_text``: the records of ``feed`` of each line of
    ``text`` in turn, with each run of at least MIN_COLUMN_ROWS lines that
    ``run`` matches as ``columns`` makes it (``None``: ``feed`` takes those
    lines after all). While ``settle()`` is true, the first line of a run goes
    to ``feed`` first: its general path sets what the columns rely on (the
    target, the rank read, a record held back)."""
    out: list[BulkRecord] = []
    text = whole_lines(text)
    for begin, end, plain in runs(text, run, start):
        block = text[begin:end]
        if plain and settle():
            newline = block.index("\n") + 1
            out += feed(block[: newline - 1])
            block = block[newline:]
        found = columns(block) if plain and block.count("\n") >= MIN_COLUMN_ROWS else None
        if found is None:
            feed_lines(feed, block, out)
        elif found.iters:
            out.append(found)
    return out


def feed_lines(feed: Callable[[str], Sequence[Record]], text: str, out: list[BulkRecord]) -> None:
    """``feed`` each line of ``text`` (whole lines, each ending in ``\\n``)."""
    for line in text.split("\n")[:-1]:
        out += feed(line)


def whole_lines(text: str) -> str:
    """``text`` as whole lines: a last line without its newline is taken as one."""
    return text if not text or text[-1] == "\n" else text + "\n"


def fields(row: re.Pattern[str], block: str, width: int) -> list[tuple[str, ...]] | None:
    """The groups of ``row`` in each line of ``block``, as columns; ``None`` if
    a line does not give exactly one match (then ``feed`` takes the lines)."""
    found: list[Any] = row.findall(block)
    if len(found) != block.count("\n") or not found:
        return None
    if width == 1:
        return [tuple(found)]
    return list(zip(*found, strict=True))


def tokens(block: str, blank: bytes, width: int) -> list[bytes] | None:
    """The words of ``block`` (lines of ``width`` words each once the bytes
    ``blank`` maps to spaces are spaces), row after row; ``None`` if a line has
    more or fewer. Words, not ``findall`` groups: a ``bytes.translate`` and a
    ``split`` build no tuple per line (half the cost). The run regex must make
    every value one word (no space, nor a blanked byte, in its class)."""
    words = block.encode().translate(blank).split()  # (ASCII lines: the encode is a copy)
    return words if len(words) == width * block.count("\n") else None


def floats(values: Sequence[str | bytes]) -> list[float]:
    """``float`` of each value (raises ``ValueError`` as ``float`` does)."""
    return list(map(float, values))


def nones(count: int) -> list[None]:
    """A column of ``count`` rows that give no value."""
    return [None] * count


def above(values: Sequence[float], low: float, *, strict: bool = False) -> bool:
    """Whether every value is a number over ``low`` (``strict``) or at least
    it: none NaN. Two C passes (``min`` alone says nothing where a NaN is)."""
    try:
        least = min(values)
        return (least > low if strict else least >= low) and not math.isnan(math.fsum(values))
    except (OverflowError, ValueError):  # (inf - inf; a sum past 1e308): the caller goes element by element
        return False


def goes_back(last: int | None, steps: list[int]) -> bool:
    """Whether a step of a block is not above the one before it (``last``: the step before the block)."""
    return (last is not None and steps[0] <= last) or any(map(ge, steps, steps[1:]))
