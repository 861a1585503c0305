"""A bounded (x, y) series for sparklines and plots.

A run can log millions of iterations; the UI needs a few hundred points. When
the series fills up it merges neighbouring pairs of points (keeping their mean
x and mean y), so memory stays bounded, the shape of the curve survives and
the newest points stay at full resolution until the next merge.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence


class Series:
    """Append-only, downsampling series of float pairs."""

    __slots__ = ("_capacity", "_pend_x", "_pend_y", "_pending", "_stride", "_xs", "_ys")

    def __init__(self, capacity: int = 512) -> None:
        self._capacity = max(4, capacity - capacity % 2)
        self._stride = 1  # raw points per stored point
        self._pending = 0
        self._pend_x = 0.0
        self._pend_y = 0.0
        self._xs: array[float] = array("d")
        self._ys: array[float] = array("d")

    def append(self, x: float, y: float) -> None:
        """Add one raw point."""
        self._pending += 1
        self._pend_x += x
        self._pend_y += y
        if self._pending < self._stride:
            return
        self._xs.append(self._pend_x / self._pending)
        self._ys.append(self._pend_y / self._pending)
        self._pending, self._pend_x, self._pend_y = 0, 0.0, 0.0
        if len(self._xs) >= self._capacity:
            self._halve()

    def extend(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        """``append`` each pair in order (the same arithmetic, without a call per point)."""
        pending, pend_x, pend_y, stride = self._pending, self._pend_x, self._pend_y, self._stride
        for x, y in zip(xs, ys, strict=True):
            pending += 1
            pend_x += x
            pend_y += y
            if pending < stride:
                continue
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
        del self._xs[keep:]
        del self._ys[keep:]
        self._pending, self._pend_x, self._pend_y = 0, 0.0, 0.0

    def points(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The stored xs and ys (the partial bucket is left out)."""
        return tuple(self._xs), tuple(self._ys)

    def __len__(self) -> int:
        return len(self._xs)

    def _halve(self) -> None:
        xs, ys = self._xs, self._ys
        self._xs = array("d", ((xs[i] + xs[i + 1]) / 2 for i in range(0, len(xs) - 1, 2)))
        self._ys = array("d", ((ys[i] + ys[i + 1]) / 2 for i in range(0, len(ys) - 1, 2)))
        self._stride *= 2
