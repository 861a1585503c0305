"""llm.c's console step lines, many at a time (``LlmcStdoutParser.feed_text``).

A long llm.c log is almost all ``step k/N | loss X (z)| norm G (z)| lr L |
MS ms | M% bf16 MFU | T tok/s`` lines. A run of them of the common shape is
found by one regex call, cut into words by one ``bytes.translate`` and
``split`` and converted by ``map`` (``parsers.bulk``), each value as the fast
path of ``feed`` converts it.
"""

from __future__ import annotations

import re

from trainwatch.core.records import IterationColumns
from trainwatch.parsers import bulk

# A run of whole step lines of the common shape (ASCII digits; a value is one
# word, with no "/" or "%"), each one that the fast path of ``feed`` fullmatches
# with the same fields (each is what lies between the same spaces and
# literals), for ``feed_text``. Possessive: no class can give back what the
# next literal would take.
STEP_RUN = re.compile(
    r"(?:step ++[0-9]++/[0-9]++ \| loss ++[^ /%\n]++ \([^) \n]*+\)\| norm ++[^ /%\n]++ \([^) \n]*+\)"
    r"\| lr [^ /%\n]++ \| [^ /%\n]++ ms \| [^ /%\n]++% bf16 MFU \| [^ /%\n]++ tok/s\n)*+"
)
# Such a line with "/" and "%" as spaces is 23 words: step N T | loss X (z)| norm
# G (z)| lr L | MS ms | MFU bf16 MFU | TPS tok s.
_BLANK = bytes.maketrans(b"/%", b"  ")
_WORDS = 23


def step_columns(block: str, target: int | None) -> IterationColumns | None:
    """The fast path's records of ``block`` (step lines of total ``target``) as columns; ``None``
    where it would not take them all (``feed`` then reads the lines one by one)."""
    words = bulk.tokens(block, _BLANK, _WORDS)
    if words is None:
        return None
    totals = words[2::_WORDS]
    if totals.count(str(target).encode()) != len(totals):
        return None  # (another target: the general path says so, line by line)
    try:
        steps = list(map(int, words[1::_WORDS]))
        times = bulk.floats(words[13::_WORDS])
        mfus = bulk.floats(words[16::_WORDS])
        columns = IterationColumns(
            steps,
            bulk.floats(words[5::_WORDS]),
            times if bulk.above(times, 0) else [t if t >= 0 else None for t in times],
            mfus if bulk.above(mfus, 0, strict=True) else [m if m > 0 else None for m in mfus],
            tokens_per_sec=bulk.floats(words[20::_WORDS]),
            lr=bulk.floats(words[11::_WORDS]),
            grad_norm=bulk.floats(words[8::_WORDS]),
        )
    except ValueError:
        return None
    return columns
