"""nanoGPT's plain iteration lines, many at a time (``NanoGPTStdoutParser.feed_text``).

A long nanoGPT log is almost all ``iter N: loss X, time Yms, mfu Z%`` lines.
Matching them one by one and building a frozen ``Iteration`` for each cost
~4 µs a line, twice the cost of a bare regex per line. Here a run of such
lines is checked by one regex call (``plain_run_end``), cut into tokens by
one ``bytes.translate`` and one ``split``, and converted by ``map``: all of it
in C, ~1.5 µs a line (regex 0.2, tokens 0.35, ``int``/``float`` 0.95).

A line taken here is one that ``feed``'s fast path takes, with the values
that ``feed`` gives it. Only the common shape of such lines is taken (ASCII
digits; a loss of digits, signs and points): anything else (``loss nan``,
``1e-05``, Unicode digits) goes to ``feed`` line by line, as before.
"""

from __future__ import annotations

import re

from trainwatch.core.records import IterationColumns

# nanoGPT logs this MFU until its running estimate has warmed up.
MFU_SENTINEL = -100.0
#: One plain iteration line, as ``feed``'s fast path takes it.
PLAIN_LINE = r"iter (\d+): loss ([^,\s]+), time ([\d.]+)ms, mfu (-?[\d.]+)%"
# As many whole lines (newline included) as follow a position, each one
# that PLAIN_LINE fullmatches, of the narrower shape said above. Possessive
# (``++``, ``*+``): no class can give back a character that the next literal
# would take, so nothing is lost, and the engine keeps no backtracking state
# (twice as fast).
_PLAIN_RUN = re.compile(r"(?:iter [0-9]++: loss [-+.0-9]++, time [0-9.]++ms, mfu -?[0-9.]++%\n)*+")
# Of such a line, deleting the letters of its words (iter, loss, time, ms,
# mfu: no value holds one) and blanking ``:,%`` leaves its four values
# between spaces. bytes, not str: translate and split are twice as fast.
_BLANK = bytes.maketrans(b":,%", b"   ")
_WORDS = b"iterlosmfu"


def plain_run_end(text: str, pos: int) -> int:
    """Where the plain lines starting at ``pos`` (a line start) end: ``pos`` if there are none."""
    match = _PLAIN_RUN.match(text, pos)
    assert match is not None  # a ``*`` always matches
    return match.end()


def plain_columns(block: str) -> IterationColumns | None:
    """The values of ``block``, whole plain lines as ``plain_run_end`` found them.

    ``None`` if a value does not convert (``int`` of more than 4,300 digits,
    a loss of ``1.2.3``): ``feed`` takes those lines its general way, so the
    caller hands the block to it line by line.
    """
    tokens = block.encode().translate(_BLANK, _WORDS).split()  # ASCII: the encode is a copy
    if len(tokens) != 4 * block.count("\n"):
        return None  # cannot happen (see above); should it, the lines still parse, one by one
    try:
        iters = list(map(int, tokens[0::4]))
        losses = list(map(float, tokens[1::4]))
        times = list(map(float, tokens[2::4]))
        mfus: list[float | None] = list(map(float, tokens[3::4]))
    except ValueError:
        return None
    if MFU_SENTINEL in mfus:
        mfus = [None if mfu == MFU_SENTINEL else mfu for mfu in mfus]
    return IterationColumns(iters, losses, times, mfus)
