"""How logged iterations enter a run's state: ``RunAggregator``'s hot loops.

A cold load of a long log spends most of its aggregation time here, so these
are kept apart from the bookkeeping in ``aggregate.py``: one loop for
``Iteration`` records (any format), one for ``IterationColumns`` (runs of
plain lines, from a bulk line parser). Both do the arithmetic of
``RunAggregator._account`` in the same order, so every figure is the same to
the bit whichever way the rows came; ``tests/test_bulk_load.py`` holds them
to that.
"""

from __future__ import annotations

import math
import struct
from array import array
from bisect import bisect_left, insort
from collections.abc import Sequence
from functools import partial, reduce
from itertools import compress, filterfalse, repeat
from operator import add, eq, ge, gt, mod, mul, sub, truediv
from typing import Any, cast

from trainwatch.core import fmt, timeline
from trainwatch.core.records import Iteration, IterationColumns
from trainwatch.core.state import EVAL, EXCESS, MAX_HANGS, OUTLIER_FACTOR, TRAIN, RunState, hang_limit

_NAN = math.nan
#: Iteration numbers live in 32-bit columns; anything larger is corrupt input.
MAX_ITER = fmt.MAX_COUNT
# Beyond these a logged number is corrupt input, not a run; let through, it
# would overflow the float32 columns, a float or a datetime further on.
MAX_TIME_MS = 1e12  # one iteration taking 31 years
MAX_MFU_PCT = 1e9  # absurd MFU (a wrong FLOP count) is kept, and flagged by metrics
MAX_RATE = 1e15  # tokens/s
MAX_TOKENS = 2**62
FIRST_EPOCH, LAST_EPOCH = 31536000.0, 7258118400.0
#: ``take_columns`` costs ~30 µs to set up and saves ~0.6 µs a row: fewer rows go row by row.
MIN_COLUMN_ROWS = 8


def take_iterations(agg: RunState, batch: Sequence[Iteration], start: int) -> int:
    """The hot path: take ``batch[start:]`` up to the first restart; where it stopped.

    Per iteration this is what METRICS.md needs and nothing more: the
    columns, the running sums (``RunAggregator._account`` inlined: the same operations
    in the same order, so the figures are bit-identical), the eval and hang
    rules and the bounded series. Sums and series points stay in locals until
    the end: attribute and method calls are most of the cost.
    """
    info = agg.info
    interval, at_start = info.eval_interval, bool(info.eval_at_start)
    by_interval = bool(interval) and info.eval_timing in (None, "same")
    iters, times, mfus, is_eval, is_warmup = agg.iters, agg.times, agg.mfus, agg.is_eval, agg.is_warmup
    tps_col, walls = agg.tps, agg.walls
    recent, marks, seg_start = agg.recent, agg.eval_marks, agg.segment_start
    n_train, n_train_timed, n_eval, n_eval_timed = agg.n_train, agg.n_train_timed, agg.n_eval, agg.n_eval_timed
    train_ms, eval_ms, replay_s, untimed = agg.train_ms, agg.eval_ms, agg.replay_s, agg.replay_untimed_steps
    pause_s, wall_s, whole_steps, whole_sampled = agg.pause_s, agg.wall_s, agg.whole_steps, agg.whole_sampled
    n_excess_timed, excess_ms = agg.n_excess_timed, agg.excess_ms
    mfu_sum, n_mfu, last_mfu, last_loss = agg.mfu_sum, agg.n_mfu, agg.last_mfu, agg.last_loss
    # No step of the window is faster than ``floor``: a step under
    # OUTLIER_FACTOR × floor cannot be a hang, and needs no median.
    floor = min(recent, default=math.inf)
    points: tuple[list[float], ...] = ([], [], [], [], [], [], [], [], [], [])
    loss_x, loss_y, time_x, time_y, mfu_x, mfu_y, wall_x, wall_y, tps_x, tps_y = points
    stop = len(batch)
    due = timeline.boundary(agg)
    for index in range(start, len(batch)):
        it = batch[index]
        step = it.iter
        if not 0 <= step <= MAX_ITER:
            continue  # no real run gets here; a corrupt line must not break the columns
        n = len(iters)
        if n == due:
            stop = index  # a copy of the sums is due (timeline.save), then on from here
            break
        if n and step <= iters[-1]:
            stop = index  # a restart: _rewind, then on from here
            break
        first = n == seg_start
        t = it.time_ms
        time_ms = t if t is not None and 0 <= t <= MAX_TIME_MS else _NAN  # NaN and inf fail too
        timed = time_ms == time_ms
        if by_interval:  # RunState.classify_eval's common case, inlined
            evaluated = step in marks or (step % interval == 0 and (step > 0 or at_start))  # type: ignore[operator]
        else:
            evaluated = agg.classify_eval(step, time_ms, first)
        checkpointed, agg.ckpt_pending = agg.ckpt_pending, False
        m = it.mfu_pct
        mfu = m if m is not None and 0 < m <= MAX_MFU_PCT else _NAN
        iters.append(step)
        times.append(time_ms)
        mfus.append(mfu)
        tps = it.tokens_per_sec
        if tps is not None and not 0 <= tps <= MAX_RATE:
            tps = None
        if tps_col is not None:
            tps_col.append(_NAN if tps is None else tps)
        elif tps is not None:
            agg.append_optional("tps", tps)
            tps_col = agg.tps
        wall = it.wall_time.timestamp() if it.wall_time is not None else None
        if wall is not None and not FIRST_EPOCH <= wall <= LAST_EPOCH:
            wall = None
        gap = 1 if first else step - iters[n - 1]
        # An untimed step with a timestamp after a timestamped one: the
        # interval is its wall-clock evidence (torchtitan logs no step time).
        interval_s = _NAN
        if walls is not None:
            if wall is not None and not (timed or first) and wall >= walls[n - 1]:
                interval_s = wall - walls[n - 1]  # (NaN when the previous line had no timestamp)
            walls.append(_NAN if wall is None else wall)
        elif wall is not None:
            agg.append_optional("walls", wall)
            walls = agg.walls
        if wall is not None:
            if agg.wall_first is None:
                agg.wall_first, agg.wall_first_at = wall, agg.dropped + n
            agg.last_wall = wall
            wall_x.append(step)
            wall_y.append(wall)
        if tps is not None:
            agg.last_tps = tps
            tps_x.append(step)
            tps_y.append(tps)
        if it.tokens_seen is not None and 0 <= it.tokens_seen <= MAX_TOKENS:
            agg.seen_last = (step, it.tokens_seen)
            agg.seen_first = agg.seen_first or agg.seen_last
        # The step's pace sample (ms): its own time, else its wall interval's.
        sample = time_ms if timed else interval_s * 1000 / gap
        kind = EVAL if evaluated else TRAIN
        if not (evaluated or first) and sample > OUTLIER_FACTOR * floor and agg.excess(sample):
            kind = EXCESS
        is_eval.append(kind)
        is_warmup.append(first)
        if kind == EVAL:
            agg.eval_at.append(step)
            n_eval += 1
            whole_steps += gap
            if timed:
                replay_s += time_ms / 1000
                pause_s += time_ms / 1000
                untimed += gap - 1
                if not first:
                    eval_ms += time_ms
                    n_eval_timed += 1
            else:
                untimed += gap
        else:
            n_train += 1
            if kind == EXCESS:
                whole_steps += gap
                if timed:
                    train_ms += time_ms
                    n_train_timed += 1
                    excess_ms += time_ms
                    n_excess_timed += 1
                    replay_s += time_ms / 1000
                    pause_s += time_ms / 1000
                    untimed += gap - 1
                else:
                    untimed += gap
                if not checkpointed:  # (a save the log announced is no hang)
                    _hang(agg.hangs, step, time_ms / 1000 if timed else interval_s)
            elif timed:
                train_ms += time_ms
                n_train_timed += 1
                replay_s += time_ms / 1000 * gap
                whole_sampled += gap - 1
                time_x.append(step)
                time_y.append(time_ms / 1000)
            else:
                untimed += gap
                if interval_s == interval_s:
                    wall_s += interval_s
                else:
                    whole_steps += gap
            if sample == sample and not first:
                recent.append(sample)
                if sample < floor:
                    floor = sample
            if mfu == mfu:
                mfu_sum += mfu
                n_mfu += 1
        if mfu == mfu:
            last_mfu = mfu
            mfu_x.append(step)
            mfu_y.append(mfu)
        if it.loss is not None:
            last_loss = it.loss
            loss_x.append(step)
            loss_y.append(it.loss)
    if stop > start and not agg.segments and iters:
        agg.segments = 1
    agg.n_train, agg.n_train_timed, agg.n_eval, agg.n_eval_timed = n_train, n_train_timed, n_eval, n_eval_timed
    agg.train_ms, agg.eval_ms, agg.replay_s, agg.replay_untimed_steps = train_ms, eval_ms, replay_s, untimed
    agg.pause_s, agg.wall_s, agg.whole_steps, agg.whole_sampled = pause_s, wall_s, whole_steps, whole_sampled
    agg.n_excess_timed, agg.excess_ms = n_excess_timed, excess_ms
    agg.mfu_sum, agg.n_mfu, agg.last_mfu, agg.last_loss = mfu_sum, n_mfu, last_mfu, last_loss
    agg.loss_series.extend(loss_x, loss_y)
    agg.time_series.extend(time_x, time_y)
    agg.mfu_series.extend(mfu_x, mfu_y)
    agg.wall_series.extend(wall_x, wall_y)
    agg.tps_series.extend(tps_x, tps_y)
    return stop


def take_columns(agg: RunState, columns: IterationColumns, start: int, stop: int) -> bool:
    """Take rows ``start:stop`` of ``columns``: what ``take_iterations`` does with them, in C passes.

    The caller (``RunAggregator._add_columns``) has dropped rows whose
    iteration number is out of range and rewound any restart: these rows
    rise, and the first is above the timeline's last entry. The running
    sums are sequential float additions, as in ``take_iterations`` and in
    the same order: ``functools.reduce(operator.add, …)`` is that loop run
    in C (the builtin ``sum`` is not: Python 3.12 made it compensated). A
    row is either a training step (most) or an eval step; the training
    steps between two eval steps are taken a slice at a time.

    ``False``: the rows went to ``take_iterations`` whole (a time no log can
    mean), their optional columns included.
    """
    steps = columns.iters[start:stop]
    times = cast("list[float]", columns.times_ms[start:stop])
    info = agg.info
    if not _all_in(times, 0.0, MAX_TIME_MS):
        # A time no log can mean (an overflowed number): the row-by-row loop knows what to do.
        take_iterations(agg, columns.iterations(start, stop), 0)
        return False
    losses = columns.losses[start:stop]
    mfus, all_mfus = _mfus(columns.mfu_pct[start:stop])
    count = len(steps)
    iters = agg.iters
    first = len(iters) == agg.segment_start  # the first row is the segment's warm-up step
    # Steps since the previous logged one (each logged time stands for them).
    gap0 = 1 if first else steps[0] - iters[-1]
    every_step = gap0 == 1 and steps[-1] - steps[0] == count - 1  # rising: all gaps are 1
    gaps: list[int] = [1] * count if every_step else [gap0, *map(sub, steps[1:], steps)]
    secs = list(map(truediv, times, repeat(1000)))
    recent = agg.recent
    checkpointed, agg.ckpt_pending = agg.ckpt_pending, False  # (the first row's, as row by row)
    by_interval = True  # (every training row enters the window; the outlier rule keeps it itself)
    excess: list[int] = []
    if info.eval_timing in ("next", "excluded") or info.eval_interval:
        evals = evals_by_rule(agg, steps)
        excess = _excess_rows(agg, times, evals, first)
    else:
        by_interval = False
        # (it keeps ``recent`` as it goes; its outliers are evals, so no row is a hang)
        evals = _evals_by_outliers(agg, steps, times, first)
    n_train, n_train_timed, n_eval, n_eval_timed = agg.n_train, agg.n_train_timed, agg.n_eval, agg.n_eval_timed
    train_ms, eval_ms, replay_s, untimed = agg.train_ms, agg.eval_ms, agg.replay_s, agg.replay_untimed_steps
    pause_s, wall_s, whole_steps, whole_sampled = agg.pause_s, agg.wall_s, agg.whole_steps, agg.whole_sampled
    n_excess_timed, excess_ms = agg.n_excess_timed, agg.excess_ms
    mfu_sum, n_mfu = agg.mfu_sum, agg.n_mfu
    time_x: list[int] = []
    time_y: list[float] = []
    eval_at = agg.eval_at
    breaks = sorted(evals + excess) if excess else evals
    hung = set(excess)
    begin = 0  # the first row not taken yet
    for end in [*breaks, count]:
        if end > begin:  # rows begin..end-1 are training steps, all timed
            taken = end - begin
            n_train += taken
            n_train_timed += taken
            train_ms = reduce(add, times[begin:end], train_ms)
            # Each time stands for the steps since the previous logged one; x * 1 is x.
            increments = secs[begin:end] if every_step else map(mul, secs[begin:end], gaps[begin:end])
            replay_s = reduce(add, increments, replay_s)
            if not every_step:
                whole_sampled += sum(gaps[begin:end]) - taken
            valid = mfus[begin:end] if all_mfus else list(filterfalse(math.isnan, mfus[begin:end]))
            mfu_sum = reduce(add, valid, mfu_sum)
            n_mfu += len(valid)
            time_x += steps[begin:end]
            time_y += secs[begin:end]
            if by_interval:  # (the outlier rule kept them as it went) the last 16 are all that stay
                recent.extend(times[max(1 if first and begin == 0 else begin, end - (recent.maxlen or 0)) : end])
        if end == count:
            break
        whole_steps += gaps[end]
        if end in hung:  # a hang: its time covers itself only, and it leaves the pace
            n_train += 1
            n_train_timed += 1
            train_ms += times[end]
            excess_ms += times[end]
            n_excess_timed += 1
            replay_s += secs[end]
            pause_s += secs[end]
            untimed += gaps[end] - 1
            recent.append(times[end])
            if not (checkpointed and end == 0):
                _hang(agg.hangs, steps[end], secs[end])
            if mfus[end] == mfus[end]:
                mfu_sum += mfus[end]
                n_mfu += 1
        else:  # an eval step: its time covers itself only
            eval_at.append(steps[end])
            n_eval += 1
            replay_s += secs[end]
            pause_s += secs[end]
            untimed += gaps[end] - 1
            if not (first and end == 0):
                eval_ms += times[end]
                n_eval_timed += 1
        begin = end + 1
    agg.n_train, agg.n_train_timed, agg.n_eval, agg.n_eval_timed = n_train, n_train_timed, n_eval, n_eval_timed
    agg.train_ms, agg.eval_ms, agg.replay_s, agg.replay_untimed_steps = train_ms, eval_ms, replay_s, untimed
    agg.pause_s, agg.wall_s, agg.whole_steps, agg.whole_sampled = pause_s, wall_s, whole_steps, whole_sampled
    agg.n_excess_timed, agg.excess_ms = n_excess_timed, excess_ms
    agg.mfu_sum, agg.n_mfu = mfu_sum, n_mfu
    _extend(iters, steps)
    _extend(agg.times, times)
    _extend(agg.mfus, mfus)
    flags = bytearray(count)
    for index in evals:
        flags[index] = EVAL
    for index in excess:
        flags[index] = EXCESS
    agg.is_eval += flags
    agg.is_warmup += bytes([first]) + bytes(count - 1)
    if not agg.segments:
        agg.segments = 1
    take_losses(agg, steps, losses)
    agg.time_series.extend_steps(time_x, time_y)
    if all_mfus:
        agg.last_mfu = mfus[-1]
        agg.mfu_series.extend_steps(steps, mfus)
    else:
        keep = list(map(eq, mfus, mfus))  # not NaN
        valid = list(compress(mfus, keep))
        if valid:
            agg.last_mfu = valid[-1]
            agg.mfu_series.extend_steps(list(compress(steps, keep)), valid)
    return True


def _hang(hangs: list[tuple[int, float]], step: int, seconds: float) -> None:
    """Note a hang; past 2 × MAX_HANGS the oldest half goes (as row by row, so in bulk)."""
    hangs.append((step, seconds))
    if len(hangs) >= 2 * MAX_HANGS:
        del hangs[:-MAX_HANGS]


def evals_by_rule(agg: RunState, steps: list[int]) -> list[int]:
    """Which of ``steps`` (rising) are eval steps by every rule but the outlier
    one (``RunState.classify_eval``; the caller knows that rule does not apply):
    none when the log's timer leaves evals out, the first row if an eval ran
    since the last logged step when they fall in the next one, else the known
    interval's multiples and the steps an eval was logged at."""
    timing = agg.info.eval_timing
    if timing == "excluded":
        return []
    if timing == "next":
        pending, agg.eval_pending = agg.eval_pending, False
        return [0] if pending else []
    interval = agg.info.eval_interval
    if interval:
        return _evals_by_interval(agg, steps, interval, bool(agg.info.eval_at_start))
    heap = agg.mark_heap
    if heap and -heap[0] >= steps[0] and (marked := agg.eval_marks.keys() & steps):
        return sorted(map(partial(bisect_left, steps), marked))
    return []


def take_losses(agg: RunState, steps: list[int], losses: Sequence[float | None]) -> None:
    """The logged losses of rows ``steps`` (``None``: not logged) into the last loss and its series."""
    if None in losses:
        keep = [loss is not None for loss in losses]
        steps, losses = list(compress(steps, keep)), list(compress(losses, keep))
        if not losses:
            return
    agg.last_loss = losses[-1]
    agg.loss_series.extend_steps(steps, cast("list[float]", losses))


def restarts(steps: list[int]) -> list[int]:
    """The rows whose iteration number is not above the previous row's."""
    return [index + 1 for index in _indices(list(map(ge, steps, steps[1:])), True)]


def _extend(column: array[Any], values: Sequence[Any]) -> None:
    """``column.extend(values)``, five times faster: ``array`` parses each item
    with ``PyArg_Parse``, ``struct`` packs them with the same C cast (to int,
    to float32) and no parse."""
    column.frombytes(struct.pack(f"{len(values)}{column.typecode}", *values))


def _all_in(values: list[float], low: float, high: float) -> bool:
    """Whether every value is a number from ``low`` (>= 0) to ``high``, in two C passes:
    with none below ``low`` (nor NaN), each is at most their exact sum. (Values
    whose sum passes ``high`` are only sent the slow way: a few thousand logged
    times or MFUs are far below 1e12 ms or 1e9 %.)"""
    try:
        return min(values) >= low and math.fsum(values) <= high
    except (TypeError, OverflowError):  # a None; a sum past 1e308
        return False


def _mfus(logged: Sequence[float | None]) -> tuple[list[float], bool]:
    """The MFU column as ``take_iterations`` stores it (NaN: none, or out of range); whether all are valid."""
    if _all_in(logged, math.ulp(0.0), MAX_MFU_PCT):  # type: ignore[arg-type]
        return cast("list[float]", logged), True
    return [m if m is not None and 0 < m <= MAX_MFU_PCT else _NAN for m in logged], False


def _evals_by_interval(agg: RunState, steps: list[int], interval: int, at_start: bool) -> list[int]:
    """Which of ``steps`` (rising) are eval steps when the eval interval is known:
    a multiple of it (step 0 only with ``eval_at_start``), or one an eval was logged at."""
    low, high = steps[0], steps[-1]
    multiples = range(-(-low // interval) * interval, high + 1, interval)
    if len(multiples) <= 64:  # the usual case: a few evals in a few thousand rows; find each
        at = map(partial(bisect_left, steps), multiples)  # the first row at or past each multiple
        found = [i for m, i in zip(multiples, at, strict=True) if steps[i] == m]
    else:
        found = _indices(list(map(mod, steps, repeat(interval))), 0)
    if found and steps[found[0]] == 0 and not at_start:
        del found[0]
    heap = agg.mark_heap  # -iter of every logged eval: its top is the newest
    if heap and -heap[0] >= low and (marked := agg.eval_marks.keys() & steps):
        found = sorted({*found, *map(partial(bisect_left, steps), marked)})
    return found


def _excess_rows(agg: RunState, times: list[float], evals: list[int], first: bool) -> list[int]:
    """Which rows (not evals, not the warm-up) are hangs (``RunState.excess``),
    when every training row enters the window (the eval interval is known).

    A row can be one only above OUTLIER_FACTOR × the fastest time of the
    window and the rows: those few are found in C passes, and only they get
    their window (the last 16 training times before them) and its median.
    """
    recent = agg.recent
    limit = OUTLIER_FACTOR * min(min(recent, default=math.inf), min(times))
    if max(times) <= limit:  # the usual case: no row is even a candidate
        return []
    candidates = _indices(list(map(gt, times, repeat(limit))), True)
    skip = set(evals)
    if first:
        skip.add(0)  # the warm-up step: a training step, but never in the window
    size = recent.maxlen or 0
    found: list[int] = []
    for index in candidates:
        if index in skip:
            continue
        window: list[float] = []
        row = index - 1
        while row >= 0 and len(window) < size:
            if row not in skip:
                window.append(times[row])
            row -= 1
        if len(window) < size:
            window += list(recent)[max(0, len(recent) - (size - len(window))) :]
        if times[index] > hang_limit(window):
            found.append(index)
    return found


def _evals_by_outliers(agg: RunState, steps: list[int], times: list[float], first: bool) -> list[int]:
    """Which of ``steps`` are eval steps when the eval interval is not known:
    one an eval was logged at, or a time over OUTLIER_FACTOR × the median of
    the last 16 training times (``RunState.classify_eval``).

    Row by row, as each row's verdict moves the window; the window is also
    kept sorted, so the median is two look-ups instead of a sort (the same
    two values, and ``statistics.median``'s ``(a + b) / 2``).
    """
    marks, recent = agg.eval_marks, agg.recent
    marked = evals_by_rule(agg, steps)  # (the rule's other half: the steps an eval was logged at)
    if max(times) <= OUTLIER_FACTOR * min(min(recent, default=math.inf), min(times)):
        # No row is over 5 × the fastest time of the window and the rows, so
        # none is over 5 × any median: only the logged evals are evals, and
        # every other row but the warm-up enters the window (its last 16 stay).
        skip = {0, *marked} if first else set(marked)
        kept = [t for index, t in enumerate(times) if index not in skip] if skip else times
        recent.extend(kept[-(recent.maxlen or 0) :])
        return marked
    window = sorted(recent)
    size = recent.maxlen
    found: list[int] = []
    for index, (step, time_ms) in enumerate(zip(steps, times, strict=True)):
        if step in marks:
            found.append(index)
            continue
        if first and index == 0:
            continue  # the warm-up step: a training step, and not part of the window
        n = len(window)
        if n >= 3:
            half = n // 2
            median = window[half] if n % 2 else (window[half - 1] + window[half]) / 2
            if time_ms > OUTLIER_FACTOR * median:
                found.append(index)
                continue
        if n == size:
            del window[bisect_left(window, recent[0])]  # the oldest leaves the window
        insort(window, time_ms)
        recent.append(time_ms)
    return found


def _indices(values: Sequence[object], value: object) -> list[int]:
    """Where ``value`` is in ``values`` (``list.index`` scans in C: a few hits in many rows)."""
    found: list[int] = []
    index = -1
    try:
        while True:
            index = values.index(value, index + 1)
            found.append(index)
    except ValueError:
        return found
