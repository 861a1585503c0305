"""Logged iterations that come as columns (``IterationColumns``): which rows
take which bulk path, and the columns ``take_columns`` leaves to others.

A bulk line parser hands the aggregator its plain lines as columns. Rows
whose time was logged go to ``aggregate_take.take_columns`` (C passes);
rows without one (build-nanogpt, llm.c's main.log) to ``take_untimed``
here; rows with a wall-clock time, and short pieces, row by row to
``take_iterations``. Each path does the arithmetic of the row loop in the
same order, so the figures are the same to the bit whichever way the rows
came (``tests/test_bulk_load.py``, ``tests/test_bulk_formats.py``).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import reduce
from itertools import compress, filterfalse, pairwise
from operator import add

from trainwatch.core.aggregate_stamped import take_stamped
from trainwatch.core.aggregate_take import (
    FIRST_EPOCH,
    LAST_EPOCH,
    MAX_RATE,
    MAX_TIME_MS,
    MAX_TOKENS,
    _all_in,
    _extend,
    _mfus,
    evals_by_rule,
    take_columns,
    take_losses,
)
from trainwatch.core.records import IterationColumns
from trainwatch.core.state import RunState

_NAN = math.nan
Take = Callable[[RunState, IterationColumns, int, int], None]


def column_pieces(columns: IterationColumns, start: int, stop: int) -> list[tuple[int, int, Take]]:
    """Rows ``start:stop`` (rising) in pieces, each with the function that takes it."""
    walls = columns.wall_time
    stamped = walls is not None and walls[start:stop].count(None) < stop - start
    times = columns.times_ms[start:stop]
    if _all_in(times, 0.0, MAX_TIME_MS):  # type: ignore[arg-type]
        return [(start, stop, take_timed)]
    untimed = take_stamped if stamped else take_untimed
    if times.count(None) == len(times):
        return [(start, stop, untimed)]
    # (A time out of range, NaN or inf is "not logged", as row by row.)
    timed = [t is not None and 0 <= t <= MAX_TIME_MS for t in times]
    cuts = [0, *(k for k in range(1, len(timed)) if timed[k] != timed[k - 1]), len(timed)]
    return [(start + a, start + b, take_timed if timed[a] else untimed) for a, b in pairwise(cuts)]


def take_timed(agg: RunState, columns: IterationColumns, start: int, stop: int) -> None:
    """Rows ``start:stop``, each with a logged time and no wall-clock time."""
    before = len(agg.iters)
    if take_columns(agg, columns, start, stop):  # (else taken row by row, optional columns and all)
        take_optional(agg, columns, start, stop, before)


def take_untimed(agg: RunState, columns: IterationColumns, start: int, stop: int) -> None:
    """Rows ``start:stop`` (rising, the first above the timeline's last), none
    with a logged time or a wall-clock time: what ``take_iterations`` does with
    them. Such a row adds its steps to the untimed ones and its MFU to the mean;
    an eval row only its steps."""
    steps = columns.iters[start:stop]
    count = len(steps)
    iters = agg.iters
    before = len(iters)
    first = before == agg.segment_start  # the first row is the segment's warm-up step
    evals = evals_by_rule(agg, steps)  # (without a time the outlier rule finds none)
    mfus, all_mfus = _mfus(columns.mfu_pct[start:stop])
    agg.n_eval += len(evals)
    agg.n_train += count - len(evals)
    # Each row stands for the steps since the previous logged one: their sum
    # telescopes. None has a time nor a wall-clock interval: all are steps of
    # the whole-run time at the median pace, and none can be a hang (so the
    # save announced before the first goes unread).
    span = (1 if first else steps[0] - iters[-1]) + steps[-1] - steps[0]
    agg.replay_untimed_steps += span
    agg.whole_steps += span
    agg.ckpt_pending = False
    agg.eval_at += [steps[index] for index in evals]
    flags = bytearray(count)
    for index in evals:
        flags[index] = 1
    train = mfus if not evals else list(compress(mfus, [not flag for flag in flags]))
    valid = train if all_mfus else list(filterfalse(math.isnan, train))
    agg.mfu_sum = reduce(add, valid, agg.mfu_sum)
    agg.n_mfu += len(valid)
    _extend(iters, steps)
    agg.times += array("f", [_NAN]) * count
    _extend(agg.mfus, mfus)
    agg.is_eval += flags
    agg.is_warmup += bytes([first]) + bytes(count - 1)
    if not agg.segments:
        agg.segments = 1
    take_losses(agg, steps, columns.losses[start:stop])
    if all_mfus:
        agg.last_mfu = mfus[-1]
        agg.mfu_series.extend_steps(steps, mfus)
    else:
        keep = [mfu == mfu for mfu in mfus]  # not NaN
        shown = list(compress(mfus, keep))
        if shown:
            agg.last_mfu = shown[-1]
            agg.mfu_series.extend_steps(list(compress(steps, keep)), shown)
    take_optional(agg, columns, start, stop, before)


def take_optional(
    agg: RunState, columns: IterationColumns, start: int, stop: int, before: int, with_walls: bool = True
) -> None:
    """The optional columns of rows ``start:stop``, which the timeline had
    ``before`` entries before: the logged rates, the tokens seen, and a
    not-logged mark in the wall-clock column if it exists."""
    count = stop - start
    steps = columns.iters[start:stop]
    rates = columns.tokens_per_sec
    if rates is not None:
        logged = rates[start:stop]
        if not _all_in(logged, 0.0, MAX_RATE):  # type: ignore[arg-type]
            logged = [r if r is not None and 0 <= r <= MAX_RATE else None for r in logged]
        if agg.tps is None and logged.count(None) < count:
            agg.tps = array("d", [_NAN]) * before  # (the column exists once some row has a rate)
        if agg.tps is not None:
            _extend(agg.tps, [_NAN if r is None else r for r in logged] if None in logged else logged)
            keep = [r is not None for r in logged]
            shown = list(compress(logged, keep))
            if shown:
                agg.last_tps = shown[-1]
                agg.tps_series.extend_steps(list(compress(steps, keep)), shown)  # type: ignore[arg-type]
    elif agg.tps is not None:
        agg.tps += array("d", [_NAN]) * count
    walls = columns.wall_time
    if walls is not None:
        if with_walls:
            _take_walls(agg, steps, _epochs(walls[start:stop]), before)
    elif agg.walls is not None:
        agg.walls += array("d", [_NAN]) * count
    seen = columns.tokens_seen
    if seen is not None:
        found = [k for k, n in enumerate(seen[start:stop]) if n is not None and 0 <= n <= MAX_TOKENS]
        if found:
            if agg.seen_first is None:
                agg.seen_first = (steps[found[0]], seen[start + found[0]])  # type: ignore[assignment]
            agg.seen_last = (steps[found[-1]], seen[start + found[-1]])  # type: ignore[assignment]


def _epochs(stamps: Sequence[datetime | None]) -> list[float | None]:
    """Wall-clock times as ``take_iterations`` reads them: epoch seconds, ``None`` out of range."""
    if stamps.count(None):
        secs: list[float | None] = [None if w is None else w.timestamp() for w in stamps]
    else:
        secs = list(map(datetime.timestamp, stamps))  # type: ignore[arg-type]
    if not _all_between(secs, FIRST_EPOCH, LAST_EPOCH):
        secs = [s if s is not None and FIRST_EPOCH <= s <= LAST_EPOCH else None for s in secs]
    return secs


def _take_walls(agg: RunState, steps: list[int], secs: list[float | None], before: int) -> None:
    """The wall-clock times of rows ``steps`` (epoch seconds, ``_epochs``) as
    ``take_iterations`` takes them: in the ``walls`` column (NaN: none) and the wall series."""
    count = len(steps)
    if agg.walls is None and secs.count(None) < count:
        agg.walls = array("d", [_NAN]) * before  # (the column exists once some row has a time)
    if agg.walls is None:
        return
    _extend(agg.walls, [_NAN if s is None else s for s in secs] if None in secs else secs)
    keep = [s is not None for s in secs]
    shown = list(compress(secs, keep))
    if shown:
        if agg.wall_first is None:
            agg.wall_first, agg.wall_first_at = shown[0], agg.dropped + before + keep.index(True)
        agg.last_wall = shown[-1]
        agg.wall_series.extend_steps(list(compress(steps, keep)), shown)  # type: ignore[arg-type]


def _all_between(values: list[float | None], low: float, high: float) -> bool:
    try:
        return low <= min(values) and max(values) <= high  # type: ignore[type-var, operator]
    except TypeError:  # a None
        return False
