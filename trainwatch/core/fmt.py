"""Human formatting of figures, shared by the terminal table, md/html exports
and the app: ``1h 33m``, ``50.2M``, ``27.62%``, a local clock time."""

from __future__ import annotations

import math
import re
from datetime import datetime

DASH = "—"
_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """``text`` with each lone surrogate as U+FFFD: what UTF-8 can carry.

    A file name that is not UTF-8 decodes with its bytes as surrogates
    (``os.fsdecode``), and a JSON log can spell one (``"\\ud800"``); an
    encoder to UTF-8 (an HTTP response, a terminal) raises on them.
    """
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def duration(seconds: float | None) -> str:
    """``45s``, ``12m 05s``, ``1h 33m``, ``2d 03h``."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    s = round(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    minutes, sec = divmod(s, 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def train_time(seconds: float | None, estimated: bool) -> str:
    """A whole-run training time: ``15h 34m est.`` where part of it is extrapolated."""
    text = duration(seconds)
    return f"{text} est." if estimated and text != DASH else text


def si(value: float | None, digits: int = 1) -> str:
    """``950``, ``12.3k``, ``50.2M``, ``1.3B``."""
    if value is None or not math.isfinite(value):
        return DASH
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.{digits}f}{suffix}"
    return f"{value:.0f}"


def count(value: int | float | None) -> str:
    """Thousands separators: ``393,216``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return DASH
    return f"{value:,.0f}"


#: The largest iteration count a log can state (the aggregator's int32 columns).
MAX_COUNT = 2**31 - 1


def parse_count(text: str) -> int:
    """``count``'s inverse for what a person types: ``"2,000"``, ``"2_000"``
    or ``"2000"`` → 2000; a ValueError that says why for anything else
    (zero, a sign, "²" or other non-ASCII digits, more than MAX_COUNT)."""
    digits = text.replace(",", "").replace("_", "").strip()
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"expected a whole number, got {text!r}")
    value = int(digits)
    if not 0 < value <= MAX_COUNT:
        raise ValueError(f"expected a number from 1 to {MAX_COUNT:,}, got {text!r}")
    return value


def pct(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return f"{value:.{digits}f}%"


def number(value: float | None, digits: int = 2) -> str:
    if value is None:
        return DASH
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"


def clock(moment: datetime | None, now: datetime) -> str:
    """One scheme for every time of day shown: ``14:34`` today, ``Mon 14:34``
    within six days either way (a weekday names one day then), the date
    ``2025-11-28`` beyond."""
    if moment is None:
        return DASH
    days = abs((moment.date() - now.date()).days)
    if days == 0:
        return moment.strftime("%H:%M")
    if days <= 6:
        return f"{_WEEKDAYS[moment.weekday()]} {moment:%H:%M}"
    return moment.strftime("%Y-%m-%d")


#: English weekday names whatever the locale (``%a`` follows LC_TIME, and widths with it).
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def sparkline(values: tuple[float, ...], width: int = 8, *, min_span: float = 0.0) -> str:
    """A tiny bar chart of the last ``width`` buckets (NaN shown as ×).

    ``min_span``: the smallest range the bars stand for, so that noise on a
    flat series (0.1 s on 28 s per iteration) does not fill the whole height.
    """
    bars = "▁▂▃▄▅▆▇█"
    if not values:
        return ""
    step = max(1, math.ceil(len(values) / width))
    buckets = [values[i : i + step] for i in range(0, len(values), step)][-width:]
    means = [sum(b) / len(b) for b in buckets]
    finite = [m for m in means if math.isfinite(m)]
    if not finite:
        return "×" * len(means)
    low, high = min(finite), max(finite)
    if high - low < min_span:
        low = (low + high - min_span) / 2
    span = max(high - low, min_span) or 1.0
    return "".join(bars[min(7, int((m - low) / span * 7.999))] if math.isfinite(m) else "×" for m in means)


def duration_short(seconds: float | None) -> str:
    """The leading unit only, for tight cells: ``45s``, ``12m``, ``3h``, ``2d``."""
    if seconds is None or not math.isfinite(seconds):
        return DASH
    s = round(max(0.0, seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"
