"""A run's per-iteration columns, bounded whatever the log's length.

Restarts and re-logged steps take entries back out of the running sums, so a
run used to keep the columns of every logged iteration (~15 bytes each: 285
MB for a 1 GB nanoGPT log). Now it keeps the newest (KEEP at least) and,
every EVERY entries, a copy of its running sums (``Saved``; the older ones
thinned out, see SAVED). A restart that goes back no further than ``floor``
takes the superseded entries out one by one, as before; one that goes
further restores the newest copy saved before its step (``restore``): the
entries between that copy and the restart point are then lost from the sums
(EVERY of them at most over the last SAVED × EVERY entries, a 128th of the
timeline at most further back), where before they were taken out as float32
copies.

Which case applies, and where the copies are, depends only on the timeline's
length and the restart's step, never on how records came in batches: the
hot loops stop at each multiple of EVERY for the copy (``boundary``), so a
bulk load and a per-line load agree to the bit.
"""

from __future__ import annotations

import heapq
import math
from array import array
from bisect import bisect_right
from typing import Any, NamedTuple

from trainwatch.core.state import RunState

#: Entries a restart can always take back out one by one.
KEEP = 1024
#: Entries between two copies of the running sums ...
EVERY = 1024
#: ... for the newest SAVED copies; past twice as many, the older ones are
#: thinned to twice their spacing (``RunState.spacing``), evenly over the
#: whole timeline (a 37M-iteration log kept 36,000 copies, 1.2 bytes an entry:
#: the peak grew with the log). The copies, SAVED to 2 × SAVED of them, cost
#: ~0.3 MB whatever the length.
SAVED = 128
#: Evaluations are kept per evaluation (``RunState.eval_marks``: their results
#: for the events list and the rules; ``eval_at``: the eval steps of the
#: timeline, for the charts), one every few hundred steps: past twice this
#: many, only the newest this many stay (the sums keep the rest).
MAX_EVALS = 1024
#: The running sums (``RunState.reset_sums``) and the newest values a copy keeps.
SUMS = (
    "n_train",
    "n_train_timed",
    "n_eval",
    "n_eval_timed",
    "n_mfu",
    "train_ms",
    "eval_ms",
    "mfu_sum",
    "replay_s",
    "replay_untimed_steps",
    "pause_s",
    "wall_s",
    "excess_ms",
    "whole_steps",
    "whole_sampled",
    "n_excess_timed",
)
LASTS = ("wall_first", "wall_first_at", "last_wall", "last_mfu", "last_tps")
_NAN = math.nan


class Saved(NamedTuple):
    """The running sums after ``position`` entries, whose last is at iteration ``step``."""

    position: int
    step: int
    sums: tuple[Any, ...]
    lasts: tuple[Any, ...]
    #: That last entry's columns: iteration, time, MFU, rate, wall time, kind, warm-up.
    entry: tuple[int, float, float, float, float, int, int]


def boundary(agg: RunState) -> int:
    """The length of the columns at which the next copy is due."""
    return (agg.logged // EVERY + 1) * EVERY - agg.dropped


def save(agg: RunState) -> None:
    """Keep a copy of the sums if the timeline's length is a multiple of EVERY (once)."""
    position = agg.logged
    if position % EVERY or not agg.iters or (agg.saved and agg.saved[-1].position >= position):
        return
    last = len(agg.iters) - 1
    entry = (
        agg.iters[last],
        agg.times[last],
        agg.mfus[last],
        agg.tps[last] if agg.tps is not None else _NAN,
        agg.walls[last] if agg.walls is not None else _NAN,
        agg.is_eval[last],
        agg.is_warmup[last],
    )
    sums = tuple(getattr(agg, name) for name in SUMS)
    agg.saved.append(Saved(position, agg.iters[last], sums, tuple(getattr(agg, n) for n in LASTS), entry))
    if len(agg.eval_at) > 2 * MAX_EVALS:  # (here: at the same entries whichever way the rows came)
        del agg.eval_at[:-MAX_EVALS]
    if len(agg.saved) > 2 * SAVED:
        spacing = agg.spacing or EVERY
        older = [s for s in agg.saved[:-SAVED] if s.position % spacing == 0]
        while len(older) > SAVED:
            spacing *= 2
            older = [s for s in older if s.position % spacing == 0]
        agg.saved[:-SAVED], agg.spacing = older, spacing


def floor(agg: RunState) -> int:
    """The first entry a restart may take out one by one: KEEP behind the newest
    at least, in steps of EVERY, and never lower than it was (until a restore)."""
    agg.floor = max(agg.floor, (agg.logged - KEEP) // EVERY * EVERY)
    return agg.floor


def trim(agg: RunState) -> None:
    """Drop the columns' entries below the floor (all but the one before it,
    whose iteration and time the first entry's gap needs)."""
    cut = floor(agg) - 1 - agg.dropped
    if cut < EVERY:
        return  # (EVERY at a time: the columns are moved once every EVERY entries)
    if not agg.dropped:
        agg.head_iter = agg.iters[0]
    newest = [_newest(column, cut) for column in (agg.mfus, agg.tps, agg.walls)]
    agg.trimmed_last = tuple(n if n is not None else old for n, old in zip(newest, agg.trimmed_last, strict=True))  # type: ignore[assignment]
    for column in (agg.iters, agg.times, agg.mfus, agg.tps, agg.walls, agg.is_eval, agg.is_warmup):
        if column is not None:
            del column[:cut]
    agg.dropped += cut
    agg.segment_start -= cut  # (below 0: the segment started before the kept entries)


def newest(agg: RunState, which: int) -> float | None:
    """The newest logged MFU (0), rate (1) or wall time (2) of the timeline."""
    column = (agg.mfus, agg.tps, agg.walls)[which]
    found = _newest(column, len(agg.iters))
    return found if found is not None else agg.trimmed_last[which]


def forget_old_evals(agg: RunState) -> None:
    """Past 2 × MAX_EVALS evaluation results, keep the newest MAX_EVALS."""
    if len(agg.eval_marks) > 2 * MAX_EVALS:
        kept = sorted(agg.eval_marks)[-MAX_EVALS:]
        agg.eval_marks = {step: agg.eval_marks[step] for step in kept}
        agg.mark_heap = [-step for step in kept]
        heapq.heapify(agg.mark_heap)


def forget_walls_from(agg: RunState, position: int) -> None:
    """Entries from ``position`` on are gone: the wall-clock figures they gave."""
    if agg.wall_first_at is not None and agg.wall_first_at >= position:
        agg.wall_first = agg.wall_first_at = None  # (it was the first: none is left before)
    agg.last_wall = newest(agg, 2)


def restore(agg: RunState, step: int) -> int:
    """A restart to ``step`` that goes back past the floor: the sums as the
    newest copy saved before ``step`` has them. Returns the iteration of the
    timeline's last entry now (-1: none)."""
    at = bisect_right([s.step for s in agg.saved], step - 1)
    del agg.saved[at:]
    columns: list[Any] = [agg.iters, agg.times, agg.mfus, agg.tps, agg.walls, agg.is_eval, agg.is_warmup]
    for column in columns:
        if column is not None:
            del column[:]
    if not agg.saved:
        agg.reset_sums()
        agg.dropped = agg.floor = 0
        agg.head_iter = None
        for name in LASTS:
            setattr(agg, name, None)
        agg.trimmed_last = (None, None, None)
        return -1
    copy = agg.saved[-1]
    for name, value in zip(SUMS, copy.sums, strict=True):
        setattr(agg, name, value)
    for name, value in zip(LASTS, copy.lasts, strict=True):
        setattr(agg, name, value)
    agg.trimmed_last = (agg.last_mfu, agg.last_tps, agg.last_wall)
    for column, value in zip(columns, copy.entry, strict=True):
        if column is not None:
            column.append(value)
    agg.dropped = copy.position - 1
    agg.floor = copy.position
    agg.segment_start = 1
    return copy.step


def _newest(values: array[Any] | None, stop: int) -> float | None:
    """The newest non-NaN value of ``values[:stop]``."""
    for index in range(min(stop, len(values or ())) - 1, -1, -1):
        value = values[index]  # type: ignore[index]
        if not math.isnan(value):
            return float(value)
    return None
