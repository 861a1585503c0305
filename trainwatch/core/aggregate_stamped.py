"""Logged iterations without a step time but with a wall-clock time (torchtitan's), as columns.

Row by row (``aggregate_take.take_iterations``), such a step's pace is the
wall-clock interval since the previous logged step, over the steps between
(where both are timestamped and the clock did not go back): that sample goes
into the window of the hang rule, and into the whole-run training time; a
step far slower than the window is a hang. Here the same is done a column at
a time: the intervals and samples in one pass, the few rows that could be
hangs found as ``aggregate_take._excess_rows`` finds them, and the sums added
in row order, so the figures are the same to the bit.
"""

from __future__ import annotations

import math
from array import array
from functools import reduce
from itertools import compress, filterfalse
from operator import add, sub

from trainwatch.core.aggregate_take import _extend, _hang, _mfus, evals_by_rule, take_losses
from trainwatch.core.records import IterationColumns
from trainwatch.core.state import EVAL, EXCESS, OUTLIER_FACTOR, RunState, hang_limit

_NAN = math.nan


def take_stamped(agg: RunState, columns: IterationColumns, start: int, stop: int) -> None:
    """Rows ``start:stop`` (rising, the first above the timeline's last), none
    with a logged time, some with a wall-clock time: what ``take_iterations``
    does with them."""
    from trainwatch.core.aggregate_columns import _epochs, _take_walls, take_optional  # (it imports this module)

    steps = columns.iters[start:stop]
    count = len(steps)
    iters = agg.iters
    before = len(iters)
    first = before == agg.segment_start  # the first row is the segment's warm-up step
    secs = _epochs(columns.wall_time[start:stop])  # type: ignore[index]
    walls = [_NAN if s is None else s for s in secs]
    gaps = [1 if first else steps[0] - iters[-1], *map(sub, steps[1:], steps)]
    # Each row's interval from the row before (the column's last entry for the
    # first): NaN where either has no time, or the clock went back.
    previous = agg.walls[-1] if agg.walls is not None and before else _NAN
    intervals = [w - p if w >= p else _NAN for w, p in zip(walls, [previous, *walls[:-1]], strict=True)]
    if first:
        intervals[0] = _NAN  # (the warm-up step's interval holds the start)
    samples = [i * 1000 / g for i, g in zip(intervals, gaps, strict=True)]  # ms a step
    evals = evals_by_rule(agg, steps)  # (without a time the outlier rule finds none)
    excess = _excess(agg, samples, evals, first)
    checkpointed, agg.ckpt_pending = agg.ckpt_pending, False  # (the first row's, as row by row)
    kinds = bytearray(count)
    for index in evals:
        kinds[index] = EVAL
    for index in excess:
        kinds[index] = EXCESS
    # The sums, in row order. Every row adds its steps to the untimed ones
    # (their sum telescopes); an eval or a hang, or a step without an
    # interval, its steps to the whole-run time's at the median pace; an
    # ordinary step with an interval, that interval.
    agg.replay_untimed_steps += sum(gaps)
    agg.n_eval += len(evals)
    agg.n_train += count - len(evals)
    paced = [kind == 0 and i == i for kind, i in zip(kinds, intervals, strict=True)]
    agg.whole_steps += sum(compress(gaps, [not p for p in paced]))
    agg.wall_s = reduce(add, compress(intervals, paced), agg.wall_s)
    for index in excess:
        if not (checkpointed and index == 0):  # (a save the log announced is no hang)
            _hang(agg.hangs, steps[index], intervals[index])
    agg.eval_at += [steps[index] for index in evals]
    # The window: each sample of a step that is no eval, the warm-up's aside.
    entering = [s for index, s in enumerate(samples) if s == s and kinds[index] != EVAL and not (first and index == 0)]
    agg.recent.extend(entering[-(agg.recent.maxlen or 0) :])
    mfus, all_mfus = _mfus(columns.mfu_pct[start:stop])
    trained = mfus if not evals else list(compress(mfus, [kind != EVAL for kind in kinds]))
    valid = trained if all_mfus else list(filterfalse(math.isnan, trained))
    agg.mfu_sum = reduce(add, valid, agg.mfu_sum)
    agg.n_mfu += len(valid)
    _extend(iters, steps)
    agg.times += array("f", [_NAN]) * count
    _extend(agg.mfus, mfus)
    agg.is_eval += kinds
    agg.is_warmup += bytes([first]) + bytes(count - 1)
    if not agg.segments:
        agg.segments = 1
    _take_walls(agg, steps, secs, before)
    take_losses(agg, steps, columns.losses[start:stop])
    keep = [m == m for m in mfus]  # not NaN
    shown = list(compress(mfus, keep))
    if shown:
        agg.last_mfu = shown[-1]
        agg.mfu_series.extend_steps(list(compress(steps, keep)), shown)
    take_optional(agg, columns, start, stop, before, with_walls=False)


def _excess(agg: RunState, samples: list[float], evals: list[int], first: bool) -> list[int]:
    """Which rows (not evals, not the warm-up) are hangs (``RunState.excess``):
    ``aggregate_take._excess_rows`` for samples of which some are NaN (no
    interval: such a row enters no window)."""
    recent = agg.recent
    valid = [s for s in samples if s == s]
    if not valid:
        return []
    limit = OUTLIER_FACTOR * min(min(recent, default=math.inf), min(valid))
    candidates = [index for index, s in enumerate(samples) if s > limit]  # (NaN is never over)
    skip = {*evals, 0} if first else set(evals)
    size = recent.maxlen or 0
    found: list[int] = []
    for index in candidates:
        if index in skip:
            continue
        window: list[float] = []
        row = index - 1
        while row >= 0 and len(window) < size:
            if row not in skip and samples[row] == samples[row]:
                window.append(samples[row])
            row -= 1
        if len(window) < size:
            window += list(recent)[max(0, len(recent) - (size - len(window))) :]
        if samples[index] > hang_limit(window):
            found.append(index)
    return found
