"""A table row's cells, padded to their column widths, as one ``Strip``.

``row_strip`` is what the runs table draws for each row (and its header).
The usual row is built segment by segment (``plain_strip``), which costs a
third of ``Text.render``: with a hundred busy runs, rows are drawn a score a
second. A cell that does not fit its column, or whose spans overlap, goes
through Rich (``rendered_strip``), which cuts it with an ellipsis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.segment import Segment
from rich.text import Text
from textual.strip import Strip

from trainwatch.tui import cells

if TYPE_CHECKING:
    from rich.align import AlignMethod
    from rich.console import Console
    from rich.style import Style

_ALIGN: dict[str, AlignMethod] = {"left": "left", "center": "center", "right": "right"}


def row_strip(texts: Sequence[Text], widths: Sequence[int], base: Style, console: Console) -> Strip:
    """Cells padded to ``widths``, a space either side of each, as one line."""
    fast = plain_strip(texts, widths, base, console)
    return fast if fast is not None else rendered_strip(texts, widths, base, console)


def rendered_strip(texts: Sequence[Text], widths: Sequence[int], base: Style, console: Console) -> Strip:
    """``row_strip`` by Rich: any cell (too wide ones are cut with an ellipsis)."""
    line = Text(no_wrap=True, end="")
    for text, width in zip(texts, widths, strict=True):
        cell = text.copy()
        cell.truncate(width, overflow="ellipsis")
        cell.align(_ALIGN.get(text.justify or "left", "left"), width)
        line.append(" ")
        line.append_text(cell)
        line.append(" ")
    return Strip(Segment.apply_style(line.render(console), base), line.cell_len)


def plain_strip(texts: Sequence[Text], widths: Sequence[int], base: Style, console: Console) -> Strip | None:
    """``row_strip`` without ``Text.render``, for the usual cells: ones that
    fit their column, whose spans do not overlap. Then every span is one
    segment. ``None``: use ``rendered_strip``.

    The styles are what ``Text.render`` gives: a cell's padding takes its
    style, its spans are drawn over it, the spaces between cells are bare.
    """
    get_style = console.get_style
    segments: list[Segment] = []
    gap = Segment(" ", base)
    for text, width in zip(texts, widths, strict=True):
        plain = text.plain
        pad = width - cell_len(plain)
        if pad < 0 or "\n" in plain:
            return None
        justify = _ALIGN.get(text.justify or "left", "left")
        left = 0 if justify == "left" else pad if justify == "right" else pad // 2
        style = base + get_style(text.style)
        segments.append(gap)
        if left:
            segments.append(Segment(" " * left, style))
        at = 0
        for start, end, span_style in text.spans:
            if start < at or end > len(plain):
                return None
            if start > at:
                segments.append(Segment(plain[at:start], style))
            if end > start:
                segments.append(Segment(plain[start:end], style + get_style(span_style)))
                at = end
        if at < len(plain):
            segments.append(Segment(plain[at:], style))
        if pad - left:
            segments.append(Segment(" " * (pad - left), style))
        segments.append(gap)
    return Strip(segments, sum(widths) + cells.PADDING * len(widths))
