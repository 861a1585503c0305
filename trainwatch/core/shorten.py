"""Run names cut to a width, and still told apart.

Runs of one sweep share most of their name (``log124M · llmc_gpt2_124M_a100``,
``log124M · llmc_gpt2_124M_h100``): cutting each name on its own keeps the
same head on every row. ``shorten_all`` cuts the names together: where two
would read the same, it drops the part they share and keeps the part that
differs, with what context the width leaves. Widths are terminal cells (a
CJK character takes two).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from rich.cells import cell_len

ELLIPSIS = "…"


def shorten(name: str, width: int) -> str:
    """``gpt2 · shakespe…251031_173650``: names differ at the end as often as
    at the start (dates, ids appended to tell twins apart), so keep both."""
    if cell_len(name) <= width:
        return name
    if width < 1:
        return ""
    if width < 12:
        return head(name, width - 1) + ELLIPSIS
    tail = (width - 1) * 2 // 5
    return head(name, width - 1 - tail) + ELLIPSIS + _tail(name, tail)


def shorten_all(names: Sequence[str], width: int) -> list[str]:
    """Each name cut to ``width`` cells; names that differ stay different
    where the width allows it."""
    out = [shorten(name, width) for name in names]
    for _ in range(2):  # a second pass settles groups the first one merged
        groups: dict[str, set[str]] = defaultdict(set)
        for name, short in zip(names, out, strict=True):
            groups[short].add(name)
        clashing = {short: sorted(full) for short, full in groups.items() if len(full) > 1}
        if not clashing:
            break
        for short, group in clashing.items():
            start = _common_start(group)
            end = _common_start([g[::-1] for g in group])
            shown = {g: window(g, start, max(start, len(g) - end), width) for g in group}
            out = [shown[name] if short == cut and name in shown else cut for name, cut in zip(names, out, strict=True)]
    return out


def window(name: str, start: int, end: int, width: int) -> str:
    """``name`` cut to ``width`` cells around ``name[start:end]``, the part
    that tells it apart (widened to whole words): that part first, then what
    follows it, then as much of the name's start as the width leaves
    (``log124M…a100_full_19560steps``)."""
    if cell_len(name) <= width:
        return name
    if width < 1:
        return ""
    while start > 0 and name[start - 1] not in _SEPARATORS:
        start -= 1
    while end < len(name) and name[end] not in _SEPARATORS:
        end += 1
    before, rest = name[:start], name[start:]
    if not before:
        return shorten(name, width)  # the names differ from their start
    if cell_len(name[start:end]) >= width - 1:
        return ELLIPSIS + shorten(rest, width - 1)  # the differing part alone fills the width
    if cell_len(rest) + 1 >= width:
        # The differing part and what follows: the end of the name cut in its own middle.
        middle = name[start:end]
        after = shorten(name[end:], width - 1 - cell_len(middle))
        return ELLIPSIS + middle + after
    return head(before, width - 1 - cell_len(rest)) + ELLIPSIS + rest


_SEPARATORS = frozenset(" _-./·:@,|")


def _common_start(texts: Sequence[str]) -> int:
    """How many characters all of ``texts`` begin with."""
    first, last = min(texts), max(texts)  # the extremes share what every text shares
    length = min(len(first), len(last))
    return next((i for i in range(length) if first[i] != last[i]), length)


def head(text: str, cells: int) -> str:
    """The longest start of ``text`` that fits ``cells`` cells."""
    out, used = [], 0
    for char in text:
        used += cell_len(char)
        if used > cells:
            break
        out.append(char)
    return "".join(out)


def _tail(text: str, cells: int) -> str:
    return head(text[::-1], cells)[::-1]
