"""What the charts do to a noisy series: smoothing, a rolling median, a log scale.

Pure functions on tuples of floats (no Textual), as TensorBoard and W&B users
expect them: the loss can be smoothed with a debiased exponential moving
average (TensorBoard's smoothing slider) and drawn on a log scale; s/iter
and MFU are drawn as a rolling median over faint raw points, so that ±2 %
step-to-step noise no longer reads as a barcode.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

#: The smoothing weights ``z`` steps through (0: off); 0.6 is TensorBoard's default.
SMOOTHING_STEPS = (0.0, 0.6, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class ChartOptions:
    """How the loss curves are drawn, chosen with ``z`` and ``l``; the same on every screen."""

    smoothing: float = 0.0  # EMA weight; 0 draws the raw curve alone
    log_y: bool = False

    def next_smoothing(self) -> ChartOptions:
        steps = SMOOTHING_STEPS
        index = steps.index(self.smoothing) if self.smoothing in steps else 0
        return ChartOptions(steps[(index + 1) % len(steps)], self.log_y)

    def toggled_log(self) -> ChartOptions:
        return ChartOptions(self.smoothing, not self.log_y)

    def describe(self) -> str:
        """``EMA 0.9 · log``, or empty for the plain curve."""
        parts = [f"EMA {self.smoothing:g}"] if self.smoothing else []
        if self.log_y:
            parts.append("log")
        return " · ".join(parts)


def ema(ys: Sequence[float], weight: float) -> tuple[float, ...]:
    """TensorBoard's smoothing: an exponential moving average divided by
    ``1 - weight^n``, so that the first points are not pulled towards zero.
    A non-finite value is kept as it is and does not enter the average."""
    if not 0.0 < weight < 1.0:
        return tuple(ys)
    out = []
    last, count = 0.0, 0
    for y in ys:
        if not math.isfinite(y):
            out.append(y)
            continue
        last = last * weight + (1 - weight) * y
        count += 1
        out.append(last / (1 - weight**count))
    return tuple(out)


def median_window(count: int) -> int:
    """An odd window of about 2 % of the points, from 5 to 101."""
    window = min(101, max(5, count // 50))
    return window if window % 2 else window + 1


#: The most points a median line has: a chart has a few hundred dot columns.
LINE_POINTS = 400


def median_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The rolling median of ``ys`` (finite values; centred windows of
    ``median_window``) at no more than ``LINE_POINTS`` evenly spaced points,
    as (xs, ys): a line through a 20,000-step log costs milliseconds, not a
    tenth of a second on every redraw."""
    n = min(len(xs), len(ys))
    if n <= LINE_POINTS:
        return tuple(xs[:n]), rolling_median(ys[:n])
    half = median_window(n) // 2
    picks = sorted({round(i * (n - 1) / (LINE_POINTS - 1)) for i in range(LINE_POINTS)})
    out_x, out_y = [], []
    for i in picks:
        window = sorted(ys[max(0, i - half) : i + half + 1])
        size = len(window)
        out_x.append(xs[i])
        out_y.append(window[size // 2] if size % 2 else (window[size // 2 - 1] + window[size // 2]) / 2)
    return tuple(out_x), tuple(out_y)


def rolling_median(ys: Sequence[float], window: int | None = None) -> tuple[float, ...]:
    """The median of each point's centred window (shorter at the ends), over
    finite values only. A sorted window is kept as points enter and leave it,
    so 10,000 points cost milliseconds."""
    n = len(ys)
    if n == 0:
        return ()
    window = window or median_window(n)
    half = window // 2
    ordered: list[float] = []
    out = []
    entered = 0  # ys[:entered] have entered the window
    for i in range(n):
        while entered < min(n, i + half + 1):
            if math.isfinite(ys[entered]):
                bisect.insort(ordered, ys[entered])
            entered += 1
        leaving = i - half - 1
        if leaving >= 0 and math.isfinite(ys[leaving]):
            del ordered[bisect.bisect_left(ordered, ys[leaving])]
        size = len(ordered)
        if not size:
            out.append(math.nan)
        elif size % 2:
            out.append(ordered[size // 2])
        else:
            out.append((ordered[size // 2 - 1] + ordered[size // 2]) / 2)
    return tuple(out)


def at_least(ylim: tuple[float, float] | None, ys: Sequence[float], span: float) -> tuple[float, float] | None:
    """``ylim`` (or the range of ``ys``) widened, around its middle, to at
    least ``span`` × the median of ``ys``: a rate steady within ±0.5 % is
    then drawn flat, not stretched over the whole height."""
    finite = sorted(y for y in ys if math.isfinite(y))
    if not finite:
        return ylim
    low, high = ylim if ylim is not None else (finite[0], finite[-1])
    least = abs(finite[len(finite) // 2]) * span
    if high - low >= least:
        return ylim
    middle = (low + high) / 2
    return middle - least / 2, middle + least / 2


def log10_or_nan(ys: Sequence[float]) -> tuple[float, ...]:
    """log10 of each value; NaN (a gap in the line) where it is not above zero."""
    return tuple(math.log10(y) if y > 0 and math.isfinite(y) else math.nan for y in ys)


def log_ticks(low: float, high: float, room: int) -> tuple[float, ...]:
    """Tick positions (log10 of round values) between ``low`` and ``high``
    (log10 units), at most ``room`` of them: 1-2-5 per decade, or finer
    where the range is within a decade or two (a loss from 12 down to 2)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high < low or room < 1:
        return ()
    ticks: tuple[float, ...] = ()
    for mantissas in ((1, 2, 3, 4, 5, 6, 8), (1, 2, 3, 5), (1, 2, 5), (1, 3), (1,)):
        values = [
            math.log10(m * 10.0**decade) for decade in range(math.floor(low), math.ceil(high) + 1) for m in mantissas
        ]
        ticks = tuple(t for t in values if low - 1e-9 <= t <= high + 1e-9)
        if len(ticks) <= room:
            return ticks
    while len(ticks) > room:
        ticks = ticks[::2]
    return ticks


def log_label(tick: float) -> str:
    """The value a log tick stands for: ``2``, ``0.5``, ``1e+04``."""
    return f"{10.0**tick:.3g}"
