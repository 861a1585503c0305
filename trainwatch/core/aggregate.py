"""Records in, per-run figures out: the state half of METRICS.md.

``RunAggregator`` accumulates one run's records incrementally and cheaply
(running sums, bounded series); ``stats(now)`` derives the figures
(``trainwatch.core.metrics``). Pure Python: no I/O, no UI, and the clock is a
parameter, so every figure is reproducible in tests. The loops that take
logged iterations in (most of a cold load) live in ``aggregate_take``.

Restarts: when a logged iteration's number is below the previous one, the
run was resumed from an earlier checkpoint. Entries at or after the resume
point are superseded by the new segment, so they leave every sum: nothing is
counted twice. The same number again (a second writer, a step logged twice)
is no restart: the newer entry replaces the last one, in the same segment,
and the evals and checkpoints at that step stay.
"""

from __future__ import annotations

import copy
import heapq
import math
from array import array
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from datetime import datetime
from itertools import pairwise

from trainwatch.core import timeline
from trainwatch.core.aggregate_columns import column_pieces
from trainwatch.core.aggregate_take import MAX_ITER, MIN_COLUMN_ROWS, restarts, take_iterations
from trainwatch.core.box import BoxFacts
from trainwatch.core.records import BulkRecord, Checkpoint, Eval, Iteration, IterationColumns, Outcome, RunInfo
from trainwatch.core.series import Series
from trainwatch.core.state import EVAL, EXCESS, RunState
from trainwatch.core.stats import RunStats

_NAN = math.nan
_RUNINFO_FIELDS = tuple(f.name for f in fields(RunInfo))
_COUNT_LIMITS = {
    "world_size": 2**24,
    "params": 2**53,
    "target": MAX_ITER,
    "eval_interval": MAX_ITER,
    "log_interval": MAX_ITER,
    "batch_size": 2**31,
    "grad_accum": 2**31,
    "grad_accum_per_gpu": 2**31,
    "block_size": 2**31,
    "tokens_per_iter": 2**53,
    "n_layer": 2**20,
    "n_head": 2**20,
    "n_embd": 2**24,
}
_POSITIVE = ("mfu_peak_tflops", "runtime_s", "eval_cost_steps")
#: Timestamps outside these years are corrupt (and near year 1 or 9999 the
#: datetime arithmetic of the ETA overflows).
_FIRST_TIME, _LAST_TIME = datetime(1971, 1, 1), datetime(2200, 1, 1)
#: Checkpoints kept for the events list; a restart filters them.
MAX_CHECKPOINTS = 512
#: Seconds after an outcome was seen within which new steps are still the
#: ending process's output (``_outlive``).
OUTCOME_SETTLE_S = 10.0


class RunAggregator(RunState):
    """One run's accumulated state (``RunState``). Feed records with ``add``."""

    # ------------------------------------------------------------------ input

    def add(self, record: BulkRecord) -> None:
        """Take one record into account."""
        self.changes += 1
        if isinstance(record, Iteration):
            self._add_iteration(record)
            timeline.trim(self)
        elif isinstance(record, IterationColumns):
            self._add_columns(record)
            timeline.trim(self)
        elif isinstance(record, RunInfo):
            self._merge_info(record)
        elif isinstance(record, Eval):
            if not 0 <= record.iter <= MAX_ITER:
                return  # corrupt input, as for iterations
            if self.info.eval_timing == "next" and self.iters and record.iter >= self.iters[-1]:
                self.eval_pending = True
            earlier = self.eval_marks.get(record.iter)
            if earlier is None:
                heapq.heappush(self.mark_heap, -record.iter)
            self.eval_marks[record.iter] = record
            timeline.forget_old_evals(self)
            self._time_pass(earlier, -1)
            self._time_pass(record, +1)
            # A later Eval of a step repeats its val loss beside a new metric: one point.
            if record.val_loss is not None and (earlier is None or earlier.val_loss != record.val_loss):
                self.val_series.append(record.iter, record.val_loss)
        elif isinstance(record, Checkpoint):
            if record.iter is not None and not 0 <= record.iter <= MAX_ITER:
                record = replace(record, iter=None)
            self.checkpoints.append(record)
            if record.iter is None or not self.iters or record.iter >= self.iters[-1]:
                self.ckpt_pending = True  # the next logged step's time may hold the save
            if len(self.checkpoints) > 2 * MAX_CHECKPOINTS:
                del self.checkpoints[:-MAX_CHECKPOINTS]
        elif isinstance(record, Outcome):
            self.outcome = record
            self.outcome_seen = None  # (``_outlive`` at the next update seen)

    def add_all(self, records: Iterable[BulkRecord]) -> None:
        """``add`` each record in order (runs of iterations take the bulk path)."""
        self.changes += 1
        batch: list[Iteration] = []
        for record in records:
            if record.__class__ is Iteration:
                batch.append(record)
                continue
            if batch:
                self._add_iterations(batch)
                batch = []
            if record.__class__ is IterationColumns:
                self._add_columns(record)
            else:
                self.add(record)
        if batch:
            self._add_iterations(batch)
        timeline.trim(self)

    def copy(self) -> RunAggregator:
        """An independent copy: a document's stable part is kept, its tail re-applied to copies."""
        clone = object.__new__(RunAggregator)
        for name, value in vars(self).items():
            if isinstance(value, Series):
                value = value.copy()
            elif isinstance(value, array | bytearray | list | dict | deque):
                value = copy.copy(value)  # elements are immutable (numbers, records, datetimes)
            setattr(clone, name, value)
        return clone

    def observe(self, at: datetime, born: datetime | None = None, *, restart: bool = False) -> None:
        """The log changed at ``at``: wall-clock evidence (the file's mtime, or
        when the watcher saw it change). ``born``: the file's birth time, where
        the filesystem keeps one. ``restart``: the times observed so far are on
        another clock (the file server's), and are dropped."""
        self.changes += 1
        first = min(t for t in (at, born, self.first_seen) if t is not None)
        self.first_seen = first
        if restart:
            self.observed.clear()
            if self.outcome_seen is not None:
                self.outcome_seen = at  # (on the new clock: its settling time starts again)
        if not self.observed or at > self.observed[-1]:
            self.observed.append(at)
            del self.observed[:-64]
        if self.outcome is not None:
            self._outlive(at)

    def stats(self, now: datetime | None = None, facts: BoxFacts | None = None) -> RunStats:
        """The run's figures as of ``now`` (default: the current local time);
        ``facts``: what the machine says about it (``core.box``)."""
        from trainwatch.core.metrics import derive  # metrics imports this module's types

        return derive(self, now or datetime.now(), facts)

    # --------------------------------------------------------------- internals

    def _merge_info(self, new: RunInfo) -> None:
        changes = {
            name: value
            for name in _RUNINFO_FIELDS
            if (value := getattr(new, name)) is not None and self.pinned.get(name) is None and _sane(name, value)
        }
        if changes:
            self.info = replace(self.info, **changes)

    def _add_iteration(self, it: Iteration) -> None:
        self._add_iterations((it,))

    def _add_iterations(self, batch: Sequence[Iteration]) -> None:
        """Take logged iterations into account, restarts included."""
        index = 0
        while index < len(batch):
            index = take_iterations(self, batch, index)
            timeline.save(self)  # (it stops where a copy of the sums is due, and at a restart)
            if index < len(batch) and self.iters and batch[index].iter <= self.iters[-1]:
                self._step_back(batch[index].iter)  # then take_iterations goes on from that entry

    def _add_columns(self, columns: IterationColumns) -> None:
        """Take a run of logged iterations into account: what
        ``_add_iterations`` does with its rows, restarts included."""
        steps = columns.iters
        if not steps:
            return
        if min(steps) < 0 or max(steps) > MAX_ITER:  # corrupt rows, skipped as take_iterations skips them
            columns = columns.select([0 <= step <= MAX_ITER for step in steps])
            steps = columns.iters
            if not steps:
                return
        # Rising pieces: each later one starts with a restart (an iteration
        # number not above the one before), which rewinds the timeline first.
        cuts = [0, *restarts(steps), len(steps)]
        for start, stop in pairwise(cuts):
            if self.iters and steps[start] <= self.iters[-1]:
                self._step_back(steps[start])
            while start < stop:  # up to each multiple of EVERY, where a copy of the sums is due
                end = min(stop, start + timeline.boundary(self) - len(self.iters))
                for low, high, how in column_pieces(columns, start, end):
                    if high - low < MIN_COLUMN_ROWS:
                        # (two ranks printing each line: a restart a row) cheaper row by row
                        take_iterations(self, columns.iterations(low, high), 0)
                    else:
                        how(self, columns, low, high)
                timeline.save(self)
                start = end

    def _outlive(self, at: datetime) -> None:
        """Forget an outcome the log has gone on past (at ``at``, an update
        seen): the run did not end there if two newer steps came in an update
        OUTCOME_SETTLE_S or more after the outcome was seen (a Slurm job
        requeued after a kill appends to its log and resumes from a checkpoint
        above the last step logged; a traceback the run survived). Steps in
        the updates before then are the dying process's: stdout buffered
        behind stderr's traceback and flushed at exit, a bar's closing frame,
        another rank's last lines. A log read whole cannot tell the two apart:
        its outcome stands."""
        seen = self.outcome_seen
        if seen is None or (at - seen).total_seconds() < OUTCOME_SETTLE_S:
            self.outcome_seen = seen or at
            self.outcome_step = self.iters[-1] if self.iters else -1
        elif len(self.iters) >= 2 and self.iters[-2] > self.outcome_step:
            self.outcome = self.outcome_seen = None

    def _step_back(self, step: int) -> None:
        """An iteration not above the last one: the same step again replaces
        it; an earlier one is a restart."""
        if step == self.iters[-1]:
            self._drop_last()
        else:
            self._rewind(step)

    def _drop_last(self) -> None:
        """Take the last logged iteration back out, for a newer entry of the
        same step: its sums, columns and flags, not its segment, evals or
        checkpoints. (The plotted series keep its point: a downsampled series
        cannot give one back, and the newer point lands on the same step.)"""
        index = len(self.iters) - 1
        if self.dropped + index < timeline.floor(self):
            self._rewind(self.iters[index])  # (past the floor: as a restart to it, ``timeline.restore``)
            return
        step = self.iters[index]
        time_ms, mfu = self.times[index], self.mfus[index]
        kind, warmup = self.is_eval[index], self.is_warmup[index]
        wall = self.walls[index] if self.walls is not None else _NAN
        tps = self.tps[index] if self.tps is not None else _NAN
        # Whether its pace sample went into the window: its time, or its wall interval.
        sampled = not warmup and (not math.isnan(time_ms) or self._wall_interval(index) is not None)
        self._account(index, -1, time_ms, mfu)
        for column in (self.iters, self.times, self.mfus, self.tps, self.walls):
            if column is not None:
                del column[index:]
        del self.is_eval[index:]
        del self.is_warmup[index:]
        del self.saved[bisect_left([s.position for s in self.saved], self.logged + 1) :]
        if not self.logged:  # nothing left: no float residue of the subtractions either
            self.train_ms = self.eval_ms = self.mfu_sum = self.replay_s = 0.0
            self.pause_s = self.wall_s = self.excess_ms = 0.0
        if kind == EVAL:
            if self.eval_at and self.eval_at[-1] == step:
                self.eval_at.pop()
            if self.info.eval_timing == "next":
                self.eval_pending = True  # the newer entry is the step the eval's time fell in
        else:
            if sampled and self.recent:
                self.recent.pop()  # its time was the newest in the window
            if kind == EXCESS and self.hangs and self.hangs[-1][0] == step:
                self.hangs.pop()
        if self.seen_first is not None and self.seen_first[0] >= step:
            self.seen_first = None
        if self.seen_last is not None and self.seen_last[0] >= step:
            self.seen_last = self.seen_first
        # Rescan a column only where the dropped entry was its newest value.
        if not math.isnan(wall):
            timeline.forget_walls_from(self, self.logged)
        if not math.isnan(mfu):
            self.last_mfu = timeline.newest(self, 0)
        if not math.isnan(tps):
            self.last_tps = timeline.newest(self, 1)

    def _rewind(self, step: int) -> None:
        """A restart from ``step``: drop the superseded tail of the timeline."""
        keep = len(self.iters)
        low = timeline.floor(self) - self.dropped  # (entries from here on can be taken out one by one)
        while keep > max(low, 0) and self.iters[keep - 1] >= step:
            keep -= 1
        if keep == low > 0 and self.iters[keep - 1] >= step:
            # Further back than the floor: the sums as last saved before ``step``.
            last = timeline.restore(self, step)
            del self.eval_at[bisect_left(self.eval_at, last + 1) :]
            self.hangs = [h for h in self.hangs if h[0] <= last]
        else:
            for index in range(keep, len(self.iters)):
                self._account(index, -1, self.times[index], self.mfus[index])
            for column in (self.iters, self.times, self.mfus, self.tps, self.walls):
                if column is not None:
                    del column[keep:]
            del self.is_eval[keep:]
            del self.is_warmup[keep:]
            del self.saved[bisect_left([s.position for s in self.saved], self.logged + 1) :]
            if not self.logged:  # nothing left: no float residue of the subtractions either
                self.train_ms = self.eval_ms = self.mfu_sum = self.replay_s = 0.0
                self.pause_s = self.wall_s = self.excess_ms = 0.0
            timeline.forget_walls_from(self, self.logged)
            self.last_mfu = timeline.newest(self, 0)
            self.last_tps = timeline.newest(self, 1)
            self.segment_start = keep
        # Cost proportional to what is dropped, not to the run: a log where
        # every line goes back (two ranks printing each line) is a restart per line.
        del self.eval_at[bisect_left(self.eval_at, step) :]  # ascending: the timeline's order
        marks, heap = self.eval_marks, self.mark_heap
        while heap and -heap[0] >= step:
            self._time_pass(marks.pop(-heapq.heappop(heap), None), -1)
        self.checkpoints = [c for c in self.checkpoints if c.iter is None or c.iter < step]
        self.hangs = [h for h in self.hangs if h[0] < step]
        if self.seen_first is not None and self.seen_first[0] >= step:
            self.seen_first = None
        if self.seen_last is not None and self.seen_last[0] >= step:
            self.seen_last = self.seen_first
        for series in (self.loss_series, self.val_series, self.time_series, self.mfu_series):
            series.truncate_from(step)
        for series in (self.tps_series, self.wall_series):
            series.truncate_from(step)
        self.recent.clear()
        self.eval_pending = self.ckpt_pending = False
        self.segments += 1
        self.outcome = None  # a resumed run is running again
        if self.info.end_time is not None:
            self.info = replace(self.info, end_time=None)

    def _account(self, index: int, sign: int, time_ms: float, mfu: float) -> None:
        """Add (+1) or remove (-1) one logged iteration from the running sums.

        Besides METRICS.md's sums this keeps the replay of the timeline
        (``metrics._last_progress_at``): each logged time stands for the steps
        since the previous logged one; an eval or hang step's time covers
        itself only, and steps without a logged time are costed at the current
        rate. And the whole-run training time (``RunState.pause_s`` ...): the
        same, but eval, hang and untimed steps at the median step time, and
        an untimed step after a timestamped one by its wall-clock interval.
        """
        gap = 1 if self.is_warmup[index] else self.iters[index] - self.iters[index - 1]
        timed = not math.isnan(time_ms)
        kind = self.is_eval[index]
        if kind == EVAL:
            self.n_eval += sign
            self.whole_steps += sign * gap
            if timed:
                self.replay_s += sign * time_ms / 1000
                self.pause_s += sign * time_ms / 1000
                self.replay_untimed_steps += sign * (gap - 1)
                if not self.is_warmup[index]:
                    self.eval_ms += sign * time_ms
                    self.n_eval_timed += sign
            else:
                self.replay_untimed_steps += sign * gap
            return
        self.n_train += sign
        if kind == EXCESS:
            self.whole_steps += sign * gap
            if timed:
                self.train_ms += sign * time_ms
                self.n_train_timed += sign
                self.excess_ms += sign * time_ms
                self.n_excess_timed += sign
                self.replay_s += sign * time_ms / 1000
                self.pause_s += sign * time_ms / 1000
                self.replay_untimed_steps += sign * (gap - 1)
            else:
                self.replay_untimed_steps += sign * gap
        elif timed:
            self.train_ms += sign * time_ms
            self.n_train_timed += sign
            self.replay_s += sign * time_ms / 1000 * gap
            self.whole_sampled += sign * (gap - 1)
        else:
            self.replay_untimed_steps += sign * gap
            interval = self._wall_interval(index)
            if interval is None:
                self.whole_steps += sign * gap
            else:
                self.wall_s += sign * interval
        if not math.isnan(mfu):
            self.mfu_sum += sign * mfu
            self.n_mfu += sign

    def _time_pass(self, mark: Eval | None, sign: int) -> None:
        """Count an eval mark's own duration in (+1) or out (-1) of the passes timed apart from steps."""
        if mark is None or mark.seconds is None or not 0 <= mark.seconds < 1e9:
            return
        self.n_pass += sign
        self.pass_s = self.pass_s + sign * mark.seconds if self.n_pass else 0.0

    def _wall_interval(self, index: int) -> float | None:
        """Seconds from the previous logged step to this untimed one, where both are timestamped."""
        walls = self.walls
        if walls is None or self.is_warmup[index] or math.isnan(walls[index]) or math.isnan(walls[index - 1]):
            return None
        interval = walls[index] - walls[index - 1]
        return interval if interval >= 0 else None


def _sane(name: str, value: object) -> bool:
    """Whether a RunInfo value is in its field's range (corrupt input is left out)."""
    limit = _COUNT_LIMITS.get(name)
    if limit is not None:
        return isinstance(value, int) and 0 < value <= limit
    if name in _POSITIVE:
        return isinstance(value, int | float) and 0 < value < 1e15
    if isinstance(value, datetime):
        return _FIRST_TIME <= value.replace(tzinfo=None) <= _LAST_TIME
    return True


def _newest(values: array[float] | None) -> float | None:
    """The newest non-NaN entry of a column (used only after a restart)."""
    for index in range(len(values or ()) - 1, -1, -1):
        value = values[index]  # type: ignore[index]
        if not math.isnan(value):
            return float(value)
    return None
