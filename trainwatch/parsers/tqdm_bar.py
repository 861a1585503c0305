"""tqdm progress-bar frames, as ``tqdm.format_meter`` draws them, and the
per-step time they hide.

A frame with a known total is ``{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}
[{elapsed}<{remaining}, {rate_fmt}{postfix}]``: ``desc`` and its ``": "`` are
left out when empty, ``elapsed`` and ``remaining`` are ``[H:]MM:SS`` (hours
unbounded; ``remaining`` is ``?`` until a rate is known), ``rate_fmt`` is
``{rate:5.2f}{unit}/s``, or ``{1/rate:5.2f}s/{unit}`` when that is above 1,
or ``?{unit}/s``; ``postfix`` is ``, `` and the caller's text. ``unit`` is
``it`` unless set (datasets' ``Map:`` bars say ``examples``). A frame is
written as ``\\r`` + frame + spaces over the previous one; a bar at position
``p > 0`` (a nested eval bar) is written after ``p`` newlines and followed by
``p`` cursor-ups (``ESC[A``), and its frames are no training progress.

The rate a frame shows is an exponential moving average (``smoothing`` 0.3 by
default) of the seconds between updates: ``rate = EMA(dn) / EMA(dt)``, both
updated only when an update is drawn. ``BarClock`` inverts that average, so
that an iteration's time is its own wall time and not a smear of the
evaluation pass before it, and checks the result against the change of the
elapsed clock (whole seconds); where they disagree (another ``smoothing``, a
lost frame) the shown rate is used.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# The right half of a frame with a total, from the bar's right edge:
# "| 900/2000 [1:23:45<1:40:00,  5.12s/it, loss=0.5]". Counts of more than
# 12 digits are no counter (and int() of thousands of digits is slow).
_R_BAR = re.compile(
    r"\| *(\d{1,12})/(\d{1,12}) \[(?:(\d{1,9}):)?(\d\d):(\d\d)<(?:\d+(?::\d\d){1,2}|\?), "  # counts, elapsed<remaining
    r"*(?:([\d.]+)|\?) ?(s/)?([^\],/ ]*)(?:/s)?(?:, ([^\]]*))?\]"  # rate, s/ if inverted, unit, postfix
)
# tqdm's own smoothing default, which HF's ProgressCallback keeps.
ALPHA = 0.3
_BETA = 1.0 - ALPHA


class Frame(NamedTuple):
    """One drawn frame of a bar with a known total (a tuple: a bar draws many)."""

    desc: str
    n: int
    total: int
    elapsed_s: int
    #: Iterations per second as shown (``None``: ``?``).
    rate: float | None
    unit: str
    postfix: str
    #: Where the frame's text ends in the segment it was read from.
    end: int


def parse_frame(segment: str) -> Frame | None:
    """The frame at the start of ``segment`` (one ``\\r``-separated piece), or ``None``."""
    pct = segment.find("%|")
    if pct < 0:
        return None
    edge = segment.find("|", pct + 2)  # the bar's right edge (its fill has no "|")
    m = _R_BAR.match(segment, edge) if edge > 0 else None
    if m is None:
        return None
    start = pct
    while start > 0 and segment[start - 1].isdigit():
        start -= 1
    if start == pct:
        return None
    desc = segment[:start].strip()
    if desc.endswith(":"):
        desc = desc[:-1].rstrip()
    n_text, total_text, hours, minutes, seconds, shown_text, inverse, unit, postfix = m.groups()
    elapsed = (int(hours) * 3600 if hours else 0) + int(minutes) * 60 + int(seconds)
    rate: float | None = None
    if shown_text is not None:
        try:
            shown = float(shown_text)
        except ValueError:
            return None
        if shown > 0:
            rate = 1.0 / shown if inverse else shown  # "s/it": the inverse rate
    return Frame(desc, int(n_text), int(total_text), elapsed, rate, unit, postfix or "", m.end())


class BarClock:
    """The wall time of each update of one bar, from the smoothed rate it shows.

    tqdm keeps ``D = EMA(dn)`` and ``T = EMA(dt)`` (the same bias correction
    on both, so it cancels in ``rate = D / T``). Knowing each update's ``dn``
    (from the counts drawn), ``T = D / rate`` follows for every frame, and the
    update's own ``dt = (T - (1 - a) T_prev) / a``.
    """

    __slots__ = ("_d", "_elapsed", "_n", "_t")

    def __init__(self, n: int = 0, elapsed_s: int = 0) -> None:
        self._n = n  # the count at the last update
        self._elapsed = elapsed_s
        self._d = 0.0
        self._t: float | None = 0.0  # None: unknown (a frame without a rate)

    @classmethod
    def starting_at(cls, frame: Frame) -> BarClock:
        """A clock for a bar first seen at ``frame``: from its start (``n == 0``),
        or taken up mid-way (its average then assumed steady, one step an update)."""
        clock = cls(frame.n, frame.elapsed_s)
        if frame.n:
            clock._d = 1.0
            clock._t = 1.0 / frame.rate if frame.rate else None
        return clock

    def update(self, frame: Frame) -> float | None:
        """Seconds per iteration over this update (``frame.n`` above the last), or ``None``."""
        dn = frame.n - self._n
        if dn <= 0:
            self._n, self._elapsed = frame.n, frame.elapsed_s
            return None
        d = ALPHA * dn + _BETA * self._d
        t = d / frame.rate if frame.rate else None
        clock = frame.elapsed_s - self._elapsed  # whole seconds: +-1 s
        seconds: float | None = None
        if t is not None and self._t is not None:
            dt = (t - _BETA * self._t) / ALPHA
            if dt > 0 and abs(dt - clock) <= 1.0 + 0.1 * dt:
                seconds = dt / dn
        if seconds is None and frame.rate:
            seconds = 1.0 / frame.rate  # the smoothed rate, as shown
        self._n, self._elapsed, self._d, self._t = frame.n, frame.elapsed_s, d, t
        return seconds
