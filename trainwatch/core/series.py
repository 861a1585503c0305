"""A bounded (x, y) series for sparklines and plots.

A run can log millions of iterations; the UI needs a few hundred points. When
the series fills up it merges neighbouring pairs of points (keeping their mean
x and mean y), so memory stays bounded, the shape of the curve survives and
the newest points stay at full resolution until the next merge.

The points go out (``Series.points``, ``RunStats.*_series``) as ``Points``:
two compact arrays that the series shares until it next changes, and then
copies (8 bytes a value, where tuples of floats took 32, and were built
again at every change of a live run).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from functools import reduce
from operator import add
from typing import NamedTuple


class Points(NamedTuple):
    """A series' stored points: ``xs`` and ``ys`` as float64 arrays. Never
    changed once handed out (the series copies before it changes them)."""

    xs: array[float]
    ys: array[float]

    def pairs(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The xs and ys as tuples (for comparing with literal values)."""
        return tuple(self.xs), tuple(self.ys)


#: No points (shared: nothing changes a ``Points``).
EMPTY = Points(array("d"), array("d"))


class Series:
    """Append-only, downsampling series of float pairs."""

    __slots__ = ("_capacity", "_pend_x", "_pend_y", "_pending", "_points", "_stride", "_xs", "_ys")

    def __init__(self, capacity: int = 512) -> None:
        self._capacity = max(4, capacity - capacity % 2)
        self._stride = 1  # raw points per stored point
        self._pending = 0
        self._pend_x = 0.0
        self._pend_y = 0.0
        self._xs: array[float] = array("d")
        self._ys: array[float] = array("d")
        # The arrays as handed out by ``points()``, until the next stored point:
        # a live run's stats are derived every second and most of its series
        # do not move between two. While they are out, a change copies them first.
        self._points: Points | None = None

    def append(self, x: float, y: float) -> None:
        """Add one raw point."""
        self._pending += 1
        self._pend_x += x
        self._pend_y += y
        if self._pending < self._stride:
            return
        if self._points is not None:
            self._own()
        self._xs.append(self._pend_x / self._pending)
        self._ys.append(self._pend_y / self._pending)
        self._pending, self._pend_x, self._pend_y = 0, 0.0, 0.0
        if len(self._xs) >= self._capacity:
            self._halve()

    def extend(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        """``append`` each pair in order: the same arithmetic, a bucket at a time.

        A bucket's sums are sequential additions, as ``append`` makes them,
        run in C by ``reduce(add, …)`` (not ``sum``: it is compensated since
        Python 3.12), so the points are the same to the bit.
        """
        self._extend(xs, ys, whole_xs=False)

    def extend_steps(self, xs: list[int], ys: Sequence[float]) -> None:
        """``extend`` with iteration numbers (ints from 0 to 2**31) as xs.

        Whole numbers add exactly in a float while the sum stays under 2**53,
        so a bucket's xs are summed as ints: the same float as the sequential
        additions, in a third of the time.
        """
        self._extend(xs, ys, whole_xs=True)

    def _extend(self, xs: Sequence[float], ys: Sequence[float], whole_xs: bool) -> None:
        if len(xs) != len(ys):
            raise ValueError(f"{len(xs)} xs for {len(ys)} ys")
        pending, pend_x, pend_y, stride = self._pending, self._pend_x, self._pend_y, self._stride
        start, count = 0, len(xs)
        while start < count:
            end = min(count, start + stride - pending)  # the rest of the current bucket, or of the input
            # A bucket holds at most ``stride`` xs under 2**31 each: below 2**53 while stride < 2**22.
            if whole_xs and stride < 1 << 22 and pend_x.is_integer():
                pend_x += sum(xs[start:end])
            else:
                pend_x = reduce(add, xs[start:end], pend_x)
            pend_y = reduce(add, ys[start:end], pend_y)
            pending += end - start
            start = end
            if pending < stride:
                break  # the input ended inside the bucket
            if self._points is not None:
                self._own()
            self._xs.append(pend_x / pending)
            self._ys.append(pend_y / pending)
            pending, pend_x, pend_y = 0, 0.0, 0.0
            if len(self._xs) >= self._capacity:
                self._halve()
                stride = self._stride
        self._pending, self._pend_x, self._pend_y = pending, pend_x, pend_y

    def copy(self) -> Series:
        """An independent copy."""
        clone = Series(self._capacity)
        clone._stride, clone._pending, clone._pend_x, clone._pend_y = (
            self._stride,
            self._pending,
            self._pend_x,
            self._pend_y,
        )
        clone._xs, clone._ys = array("d", self._xs), array("d", self._ys)
        return clone

    def truncate_from(self, x: float) -> None:
        """Drop points at or after ``x`` (a restart rewinds the run)."""
        keep = len(self._xs)
        while keep and self._xs[keep - 1] >= x:
            keep -= 1
        if keep < len(self._xs):
            self._own()
            del self._xs[keep:]
            del self._ys[keep:]
        self._pending, self._pend_x, self._pend_y = 0, 0.0, 0.0

    def points(self) -> Points:
        """The stored xs and ys (the partial bucket is left out), shared until the series changes."""
        if self._points is None:
            self._points = Points(self._xs, self._ys)
        return self._points

    def __len__(self) -> int:
        return len(self._xs)

    def _own(self) -> None:
        """Arrays of its own to change: the ones handed out stay as they were."""
        self._xs, self._ys = array("d", self._xs), array("d", self._ys)
        self._points = None

    def _halve(self) -> None:
        xs, ys = self._xs, self._ys  # (new arrays: any handed out stay as they were)
        self._xs = array("d", ((xs[i] + xs[i + 1]) / 2 for i in range(0, len(xs) - 1, 2)))
        self._ys = array("d", ((ys[i] + ys[i + 1]) / 2 for i in range(0, len(ys) - 1, 2)))
        self._stride *= 2
        self._points = None
