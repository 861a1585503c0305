"""Draw a ``ChartSpec`` as lines of styled terminal text.

plotext took 20-160 ms per chart (its general-purpose ``build``), and the app
redraws three charts whenever the selected run's log grows, so that was most
of the app's CPU and most of the delay before a new log line showed. The
charts need little: braille lines, point markers, marker columns and two
axes, which this module draws in 1-3 ms (60 × 15 cells, a few hundred points).

It is pure (no Textual): ``draw`` maps a spec and a size to ``height`` rich
``Text`` lines of exactly ``width`` cells, so it can be tested as text.

Coordinates: the plot area is ``plot_w × plot_h`` cells; each cell holds a
braille character of 2 × 4 dots, so lines are drawn on a ``2·plot_w × 4·plot_h``
dot grid whose origin is the top-left dot (dot rows grow downwards).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.color import Color
from rich.style import Style
from rich.text import Span, Text

from trainwatch.tui.plotspec import MARKS, RGB, ChartSpec, nice_ticks, tick_label
from trainwatch.tui.trend import log_label, log_ticks

#: Axis lines and tick labels: readable, but quieter than the data.
AXIS_STYLE = Style(color="grey50")
MARK_STYLE = Style(color=Color.from_rgb(*MARKS))
MESSAGE_STYLE = Style(dim=True)
POINT = "●"
BRAILLE = 0x2800

# Braille bit of the dot at (column within the cell, row within the cell):
# the Unicode block numbers dots 1-2-3 down the left, 4-5-6 down the right,
# then 7 and 8 along the bottom (added later, hence the odd bits).
_DOT = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
# _RUN[side][top][bottom]: the bits of dot rows top..bottom of one side of a
# cell, so a vertical run costs one OR per cell instead of one per dot.
_RUN = tuple(
    tuple(tuple(sum(side[r] for r in range(top, bottom + 1)) for bottom in range(4)) for top in range(4))
    for side in _DOT
)
# Tolerance (in dots) for values that sit on a limit: the data's own minimum
# must not vanish because of a rounding error in the scaling.
_EPS = 1e-6
# The character of each dot pattern; no dots is a space.
_CHARS = (" ", *(chr(BRAILLE + bits) for bits in range(1, 256)))


@dataclass(frozen=True, slots=True)
class Limits:
    """The data ranges the plot area spans, padded so neither is empty."""

    x_low: float
    x_high: float
    y_low: float
    y_high: float


def draw(spec: ChartSpec, width: int, height: int) -> list[Text]:
    """``spec`` drawn in ``width × height`` cells: exactly ``height`` lines of
    exactly ``width`` cells each. Axes take the left and bottom edges when
    there is room for them; a spec with no finite point shows ``spec.empty``.

    Each line is styled by spans only (no base style), in order and not
    overlapping, so that the widget can turn each span into one segment.
    """
    width, height = max(0, width), max(0, height)
    limits = data_limits(spec)
    if limits is None:
        return message(spec.empty, width, height)
    if width == 0 or height == 0:
        return [Text(" " * width) for _ in range(height)]

    # Bottom: an axis row and a row of x labels, if a plot row is left over.
    has_x_axis = height >= 3
    plot_h = height - 2 if has_x_axis else height
    y_ticks, y_rows = _y_ticks(limits, plot_h, height, spec.y_log)
    y_labels = [log_label(t) for t in y_ticks] if spec.y_log else _labels(y_ticks)
    label_w = max((len(label) for label in y_labels), default=0)
    # Left: right-aligned labels and an axis column, if two plot columns are left.
    has_y_axis = width - label_w - 1 >= 2
    left = label_w + 1 if has_y_axis else 0
    plot_w = width - left

    canvas = _Canvas(plot_w, plot_h, limits)
    for x in spec.dashed:
        canvas.vline(x, "┆")
    for x in spec.vlines:
        canvas.vline(x, "│")  # over a dashed one in the same column
    for x in spec.hangs:
        canvas.vline(x, "╏")
    points: list[tuple[Sequence[float], Sequence[float], Style]] = []
    for trace in spec.traces:
        style = _style(trace.color)
        if trace.kind == "points":
            points.append((trace.xs, trace.ys, style))
        elif trace.kind == "dots":
            canvas.dots(trace.xs, trace.ys, style)
        else:
            canvas.line(trace.xs, trace.ys, style)
    for xs, ys, style in points:  # markers go over every line
        canvas.points(xs, ys, style)

    prefixes = [""] * plot_h
    if has_y_axis:
        prefixes = [" " * label_w + "│"] * plot_h
        for row, label in zip(y_rows, y_labels, strict=True):
            prefixes[row] = label.rjust(label_w) + "┤"
    lines = canvas.rows(prefixes)
    if has_x_axis:
        x_ticks = _ticks(limits.x_low, limits.x_high, max(3, width // 10), room=width // 6)
        lines.extend(_x_axis(canvas, x_ticks, left, width, has_y_axis))
    for line in lines:
        line.no_wrap, line.end = True, ""
    return lines


def message(text: str, width: int, height: int, style: Style = MESSAGE_STYLE) -> list[Text]:
    """``text`` centred in ``width × height`` cells (cropped if it is wider)."""
    width, height = max(0, width), max(0, height)
    lines = [Text(" " * width, end="", no_wrap=True) for _ in range(height)]
    if height and width:
        shown = Text(text, style=style)
        shown.truncate(width)
        pad = width - shown.cell_len
        lines[(height - 1) // 2] = Text.assemble(" " * (pad // 2), shown, " " * (pad - pad // 2), end="", no_wrap=True)
    return lines


def data_limits(spec: ChartSpec) -> Limits | None:
    """The x range of all finite points, and ``spec.ylim`` or their y range;
    ``None`` when there is no finite point to draw."""
    x_low = y_low = math.inf
    x_high = y_high = -math.inf
    for trace in spec.traces:
        for xs, ys in _finite_runs(trace.xs, trace.ys):
            x_low, x_high = min(x_low, min(xs)), max(x_high, max(xs))
            y_low, y_high = min(y_low, min(ys)), max(y_high, max(ys))
    if x_low > x_high:
        return None
    if spec.ylim is not None and all(math.isfinite(v) for v in spec.ylim) and spec.ylim[0] <= spec.ylim[1]:
        y_low, y_high = spec.ylim
    # One point, or a flat line: an empty range cannot be scaled to the area.
    if _narrow(x_low, x_high):
        x_low, x_high = x_low - 1, x_high + 1
    if _narrow(x_low, x_high):  # ±1 is lost in the rounding of a huge value
        x_low, x_high = x_low - abs(x_low) * 0.1, x_high + abs(x_high) * 0.1
    if _narrow(y_low, y_high):
        y_low, y_high = y_low - (abs(y_low) * 0.1 or 1.0), y_high + (abs(y_high) * 0.1 or 1.0)
    if _narrow(y_low, y_high):  # 10% of a denormal is no wider
        y_low, y_high = y_low - 1, y_high + 1
    if not (math.isfinite(x_high - x_low) and math.isfinite(y_high - y_low)):
        return None  # a range beyond floats (±1e308) cannot be scaled either
    return Limits(x_low, x_high, y_low, y_high)


def _narrow(low: float, high: float) -> bool:
    """Whether [low, high] is too narrow to scale and tick: empty, or so
    narrow that its ticks are lost in float rounding (nice_ticks would then
    step by less than the spacing of floats, and never reach ``high``)."""
    span = high - low
    return not (span > 1e-300 and span > 1e-9 * max(abs(low), abs(high)))


def _finite_runs(xs: Sequence[float], ys: Sequence[float]) -> list[tuple[Sequence[float], Sequence[float]]]:
    """The stretches of points between non-finite values (which break a line)."""
    n = min(len(xs), len(ys))
    xs, ys = xs[:n], ys[:n]
    # Usual case, checked at C speed: a finite sum means every value is finite
    # (an overflowing sum of finite values only sends us down the slow path).
    if math.isfinite(sum(xs)) and math.isfinite(sum(ys)):
        return [(xs, ys)] if n else []
    runs: list[tuple[Sequence[float], Sequence[float]]] = []
    start = 0
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if not (math.isfinite(x) and math.isfinite(y)):
            if i > start:
                runs.append((xs[start:i], ys[start:i]))
            start = i + 1
    if n > start:
        runs.append((xs[start:], ys[start:]))
    return runs


def _style(rgb: RGB) -> Style:
    return Style(color=Color.from_rgb(*rgb))


def _ticks(low: float, high: float, count: int, room: int) -> tuple[float, ...]:
    """Round tick values in [low, high], no more than ``room`` of them."""
    ticks = nice_ticks(low, high, count)
    while len(ticks) < 3 and count < 12:  # a coarse step can leave one tick in range
        count += 1
        ticks = nice_ticks(low, high, count)
    # Labels need a place of their own: halve the ticks until they have one.
    while len(ticks) > max(2, room):
        ticks = ticks[::2]
    return ticks


def _y_ticks(limits: Limits, plot_h: int, height: int, log: bool = False) -> tuple[tuple[float, ...], list[int]]:
    """The y ticks and the plot row of each, no two on one row (``log``:
    the values are log10s, ticked at round values)."""
    if log:
        ticks = log_ticks(limits.y_low, limits.y_high, max(2, height // 2))
    else:
        ticks = _ticks(limits.y_low, limits.y_high, max(3, height // 4), room=height // 2)
    # The row of the dot the tick's value is drawn on, so that a flat line at
    # a tick's value runs along that tick's row.
    scale = (plot_h * 4 - 1) / (limits.y_high - limits.y_low)
    rows = [min(plot_h - 1, max(0, int((limits.y_high - t) * scale + 0.5) >> 2)) for t in ticks]
    while len(set(rows)) < len(rows):
        ticks, rows = ticks[::2], rows[::2]
    return ticks, rows


def _labels(ticks: Sequence[float]) -> list[str]:
    """Tick labels with as few decimals as the ticks need.

    Thinning (``ticks[::2]``) can leave ticks that are not multiples of their
    spacing (0.25 and 0.75 are 0.5 apart, and one decimal would print 0.2):
    halve the spacing until every tick is a multiple of it, which at worst
    gives back the step ``nice_ticks`` chose.
    """
    # Rounded: far from 0 the difference of two ticks is off in its last bits.
    step = float(f"{ticks[1] - ticks[0]:.6g}") if len(ticks) >= 2 else 0.0
    if not (math.isfinite(step) and step > 0):  # one tick, or a range below nice_ticks' rounding
        return [tick_label(t + 0.0, abs(t) or 1.0) for t in ticks]
    for _ in range(8):
        if all(abs(t / step - round(t / step)) < 1e-6 for t in ticks):
            break
        step /= 2
    labels = [tick_label(t + 0.0, step) for t in ticks]  # + 0.0: no "-0"
    if len(set(labels)) < len(labels):
        # tick_label keeps at most 6 decimals of its unit: iterations
        # 1,000,000 to 1,000,040 would all read "1M". Write them out in full.
        decimals = next((d for d in range(13) if abs(round(step, d) - step) <= 1e-6 * step), 12)
        labels = [f"{t + 0.0:.{decimals}f}" for t in ticks]
    return labels


def _x_axis(canvas: _Canvas, ticks: tuple[float, ...], left: int, width: int, corner: bool) -> list[Text]:
    """The axis row (``└──┬──``) and the row of x labels centred under the ticks."""
    axis = ["─"] * width
    if corner:
        axis[: left - 1] = " " * (left - 1)
        axis[left - 1] = "└"
    labels = [" "] * width
    spans = []  # one per label (not one for the row): the spaces stay unstyled
    texts = _labels(ticks)
    end = -1  # one past the last label placed; labels keep a space between them
    for tick, label in zip(ticks, texts, strict=True):
        column = left + canvas.column(tick)
        if not left <= column < width:
            continue
        axis[column] = "┬"
        start = column - (len(label) - 1) // 2
        if start > end and start >= 0 and start + len(label) <= width:
            labels[start : start + len(label)] = label
            end = start + len(label)
            spans.append(Span(start, end, AXIS_STYLE))
    # Spans rather than the Text's base style: see ``draw``.
    return [Text("".join(axis), spans=[Span(0, width, AXIS_STYLE)]), Text("".join(labels), spans=spans)]


class _Canvas:
    """The plot area: braille dots with the colour of the last trace to touch
    each cell, point markers, and marker columns."""

    def __init__(self, plot_w: int, plot_h: int, limits: Limits) -> None:
        self.plot_w, self.plot_h, self.limits = plot_w, plot_h, limits
        self.dots_w, self.dots_h = plot_w * 2, plot_h * 4
        self.x_scale = (self.dots_w - 1) / (limits.x_high - limits.x_low)
        self.y_scale = (self.dots_h - 1) / (limits.y_high - limits.y_low)
        cells = plot_w * plot_h
        self.bits = [0] * cells
        self.colour: list[Style | None] = [None] * cells
        self.markers: dict[int, Style] = {}  # cell index -> colour
        self.vlines: dict[int, str] = {}  # cell column -> its mark

    def column(self, x: float) -> int:
        """The cell column of data value ``x`` (may be outside the area)."""
        return math.floor((x - self.limits.x_low) * self.x_scale + 0.5) >> 1

    def vline(self, x: float, mark: str) -> None:
        if math.isfinite(x) and self.limits.x_low <= x <= self.limits.x_high:
            self.vlines[self.column(x)] = mark

    def points(self, xs: Sequence[float], ys: Sequence[float], style: Style) -> None:
        lim = self.limits
        for x, y in zip(xs, ys, strict=False):
            # Outside ylim (a clipped spike) the marker is left out, not pinned to the edge.
            if lim.x_low <= x <= lim.x_high and lim.y_low <= y <= lim.y_high:  # False for NaN
                col = int((x - lim.x_low) * self.x_scale + 0.5) >> 1
                row = int((lim.y_high - y) * self.y_scale + 0.5) >> 2
                self.markers[min(row, self.plot_h - 1) * self.plot_w + min(col, self.plot_w - 1)] = style

    def dots(self, xs: Sequence[float], ys: Sequence[float], style: Style) -> None:
        """One dot per point, not joined (faint raw values under a trend line).
        Points that fall on the same dot are set once: a long log has many."""
        lim, last = self.limits, self.dots_h - 1
        x_low, y_high, x_scale, y_scale = lim.x_low, lim.y_high, self.x_scale, self.y_scale
        inside = [
            (x, y) for x, y in zip(xs, ys, strict=False) if x_low <= x <= lim.x_high and lim.y_low <= y <= y_high
        ]  # False for NaN
        seen = {(int((x - x_low) * x_scale + 0.5), min(last, int((y_high - y) * y_scale + 0.5))) for x, y in inside}
        for column, row in seen:
            self._fill(column, row, row, style)

    def line(self, xs: Sequence[float], ys: Sequence[float], style: Style) -> None:
        """Join consecutive finite points; a non-finite value breaks the line."""
        x_low, y_high = self.limits.x_low, self.limits.y_high
        x_scale, y_scale = self.x_scale, self.y_scale
        for run_xs, run_ys in _finite_runs(xs, ys):
            pxs = [(x - x_low) * x_scale for x in run_xs]
            pys = [(y_high - y) * y_scale for y in run_ys]
            columns = [int(px + 0.5) for px in pxs]
            # Points that share a dot column only make that column's vertical
            # run longer: draw each column's run once, and a segment from the
            # last point in one column to the first in the next. A 10,000-point
            # series then costs about one segment per dot column, not per point.
            starts = [0, *(i for i in range(1, len(columns)) if columns[i] != columns[i - 1]), len(columns)]
            for k in range(len(starts) - 1):
                first, end = starts[k], starts[k + 1]
                if k:
                    self._segment(pxs[first - 1], pys[first - 1], pxs[first], pys[first], style)
                group = pys[first:end]
                self._run(columns[first], min(group), max(group), style)

    def _run(self, column: int, top: float, bottom: float, style: Style) -> None:
        """Dots of column ``column`` from dot row ``top`` to ``bottom``, clipped."""
        last = self.dots_h - 1
        if bottom < -_EPS or top > last + _EPS:
            return
        self._fill(column, int(max(0.0, top) + 0.5), int(min(last, bottom) + 0.5), style)

    def _segment(self, x0: float, y0: float, x1: float, y1: float, style: Style) -> None:
        """A straight line between two dot positions, clipped to the plot rows."""
        last = self.dots_h - 1
        if (y0 < -_EPS and y1 < -_EPS) or (y0 > last + _EPS and y1 > last + _EPS):
            return
        # Cut the part above or below the area (ylim clips spikes): the line
        # runs up to the edge in the direction of the point it is heading to.
        if not (-_EPS <= y0 <= last + _EPS and -_EPS <= y1 <= last + _EPS):
            dx, dy = x1 - x0, y1 - y0  # dy != 0: one end is in or across the area
            t_top, t_bottom = -y0 / dy, (last - y0) / dy
            t0, t1 = max(0.0, min(t_top, t_bottom)), min(1.0, max(t_top, t_bottom))
            if t0 > t1:
                return
            x0, y0, x1, y1 = x0 + dx * t0, y0 + dy * t0, x0 + dx * t1, y0 + dy * t1
        c0, r0 = int(x0 + 0.5), int(min(last, max(0.0, y0)) + 0.5)
        c1, r1 = int(x1 + 0.5), int(min(last, max(0.0, y1)) + 0.5)
        if c1 < c0:
            c0, r0, c1, r1 = c1, r1, c0, r0
        dc, dr = c1 - c0, r1 - r0
        if dc == 0:
            self._fill(c0, min(r0, r1), max(r0, r1), style)
            return
        adr, sign = abs(dr), 1 if dr >= 0 else -1
        if dc >= adr:
            # Shallow: one dot per column, at the row nearest the line
            # (integer rounding, as Bresenham would pick).
            for k in range(dc + 1):
                row = r0 + sign * ((2 * k * adr + dc) // (2 * dc))
                self._fill(c0 + k, row, row, style)
            return
        # Steep: each column gets the run of rows whose nearest column it is;
        # the runs of neighbouring columns meet, so the line has no gaps.
        for k in range(dc + 1):
            s_low = max(0, -((-(2 * k - 1) * adr) // (2 * dc)))
            s_high = min(adr, -((-(2 * k + 1) * adr) // (2 * dc)) - 1)
            a, b = r0 + sign * s_low, r0 + sign * s_high
            self._fill(c0 + k, min(a, b), max(a, b), style)

    def _fill(self, column: int, top: int, bottom: int, style: Style) -> None:
        """Set dots ``top..bottom`` (inclusive, top ≤ bottom) of dot column ``column``."""
        if not 0 <= column < self.dots_w:
            return
        runs = _RUN[column & 1]
        first = (top >> 2) * self.plot_w + (column >> 1)
        last = (bottom >> 2) * self.plot_w + (column >> 1)
        bits, colour = self.bits, self.colour
        if first == last:
            bits[first] |= runs[top & 3][bottom & 3]
            colour[first] = style
            return
        bits[first] |= runs[top & 3][3]
        colour[first] = style
        full = runs[0][3]
        for index in range(first + self.plot_w, last, self.plot_w):
            bits[index] |= full
            colour[index] = style
        bits[last] |= runs[0][bottom & 3]
        colour[last] = style

    def rows(self, prefixes: Sequence[str]) -> list[Text]:
        """The plot rows, each after its prefix (the y axis): markers over
        dots over marker columns."""
        width = self.plot_w
        chars = [_CHARS[bits] for bits in self.bits]
        styles = self.colour[:]  # None where there is no dot
        for column, mark in self.vlines.items():
            for index in range(column, len(chars), width):
                if not self.bits[index]:
                    chars[index], styles[index] = mark, MARK_STYLE
        for index, marker in self.markers.items():
            chars[index], styles[index] = POINT, marker
        lines = []
        for row, prefix in enumerate(prefixes):
            start, offset = row * width, len(prefix)
            spans = [Span(0, offset, AXIS_STYLE)] if prefix else []
            run_style: Style | None = None
            run_start = 0
            for column, style in enumerate(styles[start : start + width]):
                if style is not run_style:  # one span per run of a colour
                    if run_style is not None:
                        spans.append(Span(offset + run_start, offset + column, run_style))
                    run_style, run_start = style, column
            if run_style is not None:
                spans.append(Span(offset + run_start, offset + width, run_style))
            lines.append(Text(prefix + "".join(chars[start : start + width]), spans=spans, end="", no_wrap=True))
        return lines
