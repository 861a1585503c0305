"""Records in, per-run figures out: the state half of METRICS.md.

``RunAggregator`` accumulates one run's records incrementally and cheaply
(running sums, bounded series); ``stats(now)`` derives the figures
(``trainwatch.metrics``). Pure Python: no I/O, no UI, and the clock is a
parameter, so every figure is reproducible in tests.

Restarts: when a logged iteration's number is not above the previous one, the
run was resumed from an earlier checkpoint. Entries at or after the resume
point are superseded by the new segment, so they leave every sum: nothing is
counted twice.
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
from statistics import median
from typing import Any

from trainwatch import fmt
from trainwatch.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.series import Series
from trainwatch.stats import RunStats

#: A logged time above this many rolling medians is an eval pass (METRICS.md).
OUTLIER_FACTOR = 5.0

_NAN = math.nan
#: Iteration numbers live in 32-bit columns; anything larger is corrupt input.
MAX_ITER = fmt.MAX_COUNT
_RUNINFO_FIELDS = tuple(f.name for f in fields(RunInfo))
# Beyond these a logged number is corrupt input, not a run; let through, it
# would overflow the float32 columns, a float or a datetime further on.
MAX_TIME_MS = 1e12  # one iteration taking 31 years
MAX_MFU_PCT = 1e9  # absurd MFU (a wrong FLOP count) is kept, and flagged by metrics
MAX_RATE = 1e15  # tokens/s
MAX_TOKENS = 2**62
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
_POSITIVE = ("mfu_peak_tflops", "runtime_s")
#: Timestamps outside these years are corrupt (and near year 1 or 9999 the
#: datetime arithmetic of the ETA overflows).
_FIRST_TIME, _LAST_TIME = datetime(1971, 1, 1), datetime(2200, 1, 1)
_FIRST_EPOCH, _LAST_EPOCH = 31536000.0, 7258118400.0
#: Checkpoints kept for the events list; a restart filters them.
MAX_CHECKPOINTS = 512


class RunAggregator:
    """One run's accumulated state. Feed records with ``add``."""

    # Running sums of METRICS.md (set in ``_reset_sums``).
    n_train: int
    n_train_timed: int
    n_eval: int
    n_eval_timed: int
    n_mfu: int
    train_ms: float
    eval_ms: float
    mfu_sum: float
    replay_s: float
    replay_untimed_steps: int

    def __init__(
        self,
        target_override: int | None = None,
        tokens_per_iter_override: int | None = None,
        params_override: int | None = None,
        gpu_override: str | None = None,
    ) -> None:
        self.target_override = target_override
        self.tokens_per_iter_override = tokens_per_iter_override
        self.info = RunInfo(params=params_override, gpu=gpu_override)
        self._pinned = {"params": params_override, "gpu": gpu_override}
        # Per logged iteration of the current timeline (restarts truncate it).
        # Compact columns: a million logged steps cost ~17 MB. Sums are kept
        # in float64 from the exact inputs; the float32 copies serve rate
        # windows and the subtraction of superseded entries after a restart.
        self.iters: array[int] = array("i")
        self.times: array[float] = array("f")  # ms, NaN = not logged
        self.mfus: array[float] = array("f")  # %, NaN = not logged / sentinel
        self.tps: array[float] | None = None  # logged tokens/s; created on first use
        self.walls: array[float] | None = None  # epoch s of timestamped lines; likewise
        self.is_eval = bytearray()
        self.is_warmup = bytearray()
        self.eval_at: list[int] = []
        self.wall_first: float | None = None
        # Newest logged values, kept as scalars so deriving stats never scans.
        self.last_mfu: float | None = None
        self.last_tps: float | None = None
        self.last_wall: float | None = None
        self.seen_first: tuple[int, int] | None = None  # (iter, cumulative tokens)
        self.seen_last: tuple[int, int] | None = None
        self.segments = 0
        self.eval_marks: dict[int, Eval] = {}
        self._mark_heap: list[int] = []  # -iter of every eval mark: a restart drops the newest first
        self.checkpoints: list[Checkpoint] = []
        self.outcome: Outcome | None = None
        self.last_loss: float | None = None
        self.observed: list[datetime] = []  # file update times seen by the watcher
        self._recent: deque[float] = deque(maxlen=16)  # for the outlier rule
        self._eval_pending = False  # an eval ran since the last logged iteration
        # Bumped by every input (add, add_all, observe): figures derived from
        # the state alone are memoised against it (``metrics._rate``), so a
        # once-a-second re-derive of an unchanged run does not rescan windows.
        self.changes = 0
        self.memo: dict[str, tuple[int, Any]] = {}
        self._new_series()
        self._reset_sums()

    # ------------------------------------------------------------------ input

    def add(self, record: Record) -> None:
        """Take one record into account."""
        self.changes += 1
        if isinstance(record, Iteration):
            self._add_iteration(record)
        elif isinstance(record, RunInfo):
            self._merge_info(record)
        elif isinstance(record, Eval):
            if not 0 <= record.iter <= MAX_ITER:
                return  # corrupt input, as for iterations
            if self.info.eval_timing == "next" and self.iters and record.iter >= self.iters[-1]:
                self._eval_pending = True
            if record.iter not in self.eval_marks:
                heapq.heappush(self._mark_heap, -record.iter)
            self.eval_marks[record.iter] = record
            if record.val_loss is not None:
                self.val_series.append(record.iter, record.val_loss)
        elif isinstance(record, Checkpoint):
            if record.iter is not None and not 0 <= record.iter <= MAX_ITER:
                record = replace(record, iter=None)
            self.checkpoints.append(record)
            if len(self.checkpoints) > 2 * MAX_CHECKPOINTS:
                del self.checkpoints[:-MAX_CHECKPOINTS]
        elif isinstance(record, Outcome):
            self.outcome = record

    def add_all(self, records: Iterable[Record]) -> None:
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
            self.add(record)
        if batch:
            self._add_iterations(batch)

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

    def observe(self, at: datetime) -> None:
        """The log changed at ``at`` (file mtime): wall-clock evidence."""
        self.changes += 1
        if not self.observed or at > self.observed[-1]:
            self.observed.append(at)
            del self.observed[:-64]

    def stats(self, now: datetime | None = None) -> RunStats:
        """The run's figures as of ``now`` (default: the current local time)."""
        from trainwatch.metrics import derive  # metrics imports this module's types

        return derive(self, now or datetime.now())

    # --------------------------------------------------------------- internals

    def _merge_info(self, new: RunInfo) -> None:
        changes = {
            name: value
            for name in _RUNINFO_FIELDS
            if (value := getattr(new, name)) is not None and self._pinned.get(name) is None and _sane(name, value)
        }
        if changes:
            self.info = replace(self.info, **changes)

    def _add_iteration(self, it: Iteration) -> None:
        self._add_iterations((it,))

    def _add_iterations(self, batch: Sequence[Iteration]) -> None:
        """Take logged iterations into account, restarts included."""
        index = 0
        while index < len(batch):
            index = self._take(batch, index)
            if index < len(batch):
                self._rewind(batch[index].iter)  # then _take goes on from that entry

    def _take(self, batch: Sequence[Iteration], start: int) -> int:
        """The hot path: take ``batch[start:]`` up to the first restart; where it stopped.

        Per iteration this is what METRICS.md needs and nothing more: the
        columns, the running sums (``_account`` inlined: the same operations
        in the same order, so the figures are bit-identical), the eval rule
        and the bounded series. Sums and series points stay in locals until
        the end: attribute and method calls are most of the cost.
        """
        info = self.info
        interval, at_start = info.eval_interval, bool(info.eval_at_start)
        by_interval = bool(interval) and info.eval_timing in (None, "same")
        iters, times, mfus, is_eval, is_warmup = self.iters, self.times, self.mfus, self.is_eval, self.is_warmup
        tps_col, walls = self.tps, self.walls
        recent, marks, seg_start = self._recent, self.eval_marks, self._segment_start
        n_train, n_train_timed, n_eval, n_eval_timed = self.n_train, self.n_train_timed, self.n_eval, self.n_eval_timed
        train_ms, eval_ms, replay_s, untimed = self.train_ms, self.eval_ms, self.replay_s, self.replay_untimed_steps
        mfu_sum, n_mfu, last_mfu, last_loss = self.mfu_sum, self.n_mfu, self.last_mfu, self.last_loss
        points: tuple[list[float], ...] = ([], [], [], [], [], [], [], [], [], [])
        loss_x, loss_y, time_x, time_y, mfu_x, mfu_y, wall_x, wall_y, tps_x, tps_y = points
        stop = len(batch)
        for index in range(start, len(batch)):
            it = batch[index]
            step = it.iter
            if not 0 <= step <= MAX_ITER:
                continue  # no real run gets here; a corrupt line must not break the columns
            n = len(iters)
            if n and step <= iters[-1]:
                stop = index  # a restart: _rewind, then on from here
                break
            first = n == seg_start
            t = it.time_ms
            time_ms = t if t is not None and 0 <= t <= MAX_TIME_MS else _NAN  # NaN and inf fail too
            timed = time_ms == time_ms
            if by_interval:  # _classify_eval's common case, inlined
                evaluated = step in marks or (step % interval == 0 and (step > 0 or at_start))  # type: ignore[operator]
            else:
                evaluated = self._classify_eval(step, time_ms, first)
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
                self._append_optional("tps", tps)
                tps_col = self.tps
            wall = it.wall_time.timestamp() if it.wall_time is not None else None
            if wall is not None and not _FIRST_EPOCH <= wall <= _LAST_EPOCH:
                wall = None
            if walls is not None:
                walls.append(_NAN if wall is None else wall)
            elif wall is not None:
                self._append_optional("walls", wall)
                walls = self.walls
            if wall is not None:
                if self.wall_first is None:
                    self.wall_first = wall
                self.last_wall = wall
                wall_x.append(step)
                wall_y.append(wall)
            if tps is not None:
                self.last_tps = tps
                tps_x.append(step)
                tps_y.append(tps)
            if it.tokens_seen is not None and 0 <= it.tokens_seen <= MAX_TOKENS:
                self.seen_last = (step, it.tokens_seen)
                self.seen_first = self.seen_first or self.seen_last
            is_eval.append(evaluated)
            is_warmup.append(first)
            gap = 1 if first else step - iters[n - 1]
            if evaluated:
                self.eval_at.append(step)
                n_eval += 1
                if timed:
                    replay_s += time_ms / 1000
                    untimed += gap - 1
                    if not first:
                        eval_ms += time_ms
                        n_eval_timed += 1
                else:
                    untimed += gap
            else:
                n_train += 1
                if timed:
                    train_ms += time_ms
                    n_train_timed += 1
                    replay_s += time_ms / 1000 * gap
                    time_x.append(step)
                    time_y.append(time_ms / 1000)
                    if not first:
                        recent.append(time_ms)
                else:
                    untimed += gap
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
        if stop > start and not self.segments and iters:
            self.segments = 1
        self.n_train, self.n_train_timed, self.n_eval, self.n_eval_timed = n_train, n_train_timed, n_eval, n_eval_timed
        self.train_ms, self.eval_ms, self.replay_s, self.replay_untimed_steps = train_ms, eval_ms, replay_s, untimed
        self.mfu_sum, self.n_mfu, self.last_mfu, self.last_loss = mfu_sum, n_mfu, last_mfu, last_loss
        self.loss_series.extend(loss_x, loss_y)
        self.time_series.extend(time_x, time_y)
        self.mfu_series.extend(mfu_x, mfu_y)
        self.wall_series.extend(wall_x, wall_y)
        self.tps_series.extend(tps_x, tps_y)
        return stop

    def _append_optional(self, column: str, value: float | None) -> None:
        """Append to a column that exists only once some entry has a value."""
        values: array[float] | None = getattr(self, column)
        if values is None:
            if value is None:
                return
            values = array("d", [_NAN]) * (len(self.iters) - 1)
            setattr(self, column, values)
        values.append(_NAN if value is None else value)

    def _classify_eval(self, step: int, time_ms: float, warmup: bool) -> bool:
        """Does this iteration's logged time include an evaluation pass?"""
        timing = self.info.eval_timing
        if timing == "excluded":
            return False
        if timing == "next":
            pending, self._eval_pending = self._eval_pending, False
            return pending
        if step in self.eval_marks:
            return True
        interval = self.info.eval_interval
        if interval:
            return step % interval == 0 and (step > 0 or bool(self.info.eval_at_start))
        if math.isnan(time_ms) or warmup:
            return False
        # METRICS.md also calls any step over 100 s an eval; that would make
        # every step of a run at 400 s a step an "eval". Only the relative
        # rule is sound, once a few ordinary steps give it a median.
        return len(self._recent) >= 3 and time_ms > OUTLIER_FACTOR * median(self._recent)

    def _rewind(self, step: int) -> None:
        """A restart from ``step``: drop the superseded tail of the timeline."""
        keep = len(self.iters)
        while keep and self.iters[keep - 1] >= step:
            keep -= 1
        for index in range(keep, len(self.iters)):
            self._account(index, -1, self.times[index], self.mfus[index])
        for column in (self.iters, self.times, self.mfus, self.tps, self.walls):
            if column is not None:
                del column[keep:]
        del self.is_eval[keep:]
        del self.is_warmup[keep:]
        if keep == 0:  # nothing left: no float residue of the subtractions either
            self.train_ms = self.eval_ms = self.mfu_sum = self.replay_s = 0.0
        # Cost proportional to what is dropped, not to the run: a log where
        # every line goes back (two ranks printing each line) is a restart per line.
        del self.eval_at[bisect_left(self.eval_at, step) :]  # ascending: the timeline's order
        marks, heap = self.eval_marks, self._mark_heap
        while heap and -heap[0] >= step:
            marks.pop(-heapq.heappop(heap), None)
        self.checkpoints = [c for c in self.checkpoints if c.iter is None or c.iter < step]
        if self.seen_first is not None and self.seen_first[0] >= step:
            self.seen_first = None
        if self.seen_last is not None and self.seen_last[0] >= step:
            self.seen_last = self.seen_first
        self.wall_first = next((w for w in self.walls or () if not math.isnan(w)), None)
        self.last_wall = _newest(self.walls)
        self.last_mfu = _newest(self.mfus)
        self.last_tps = _newest(self.tps)
        for series in (self.loss_series, self.val_series, self.time_series, self.mfu_series):
            series.truncate_from(step)
        for series in (self.tps_series, self.wall_series):
            series.truncate_from(step)
        self._recent.clear()
        self._eval_pending = False
        self._segment_start = keep
        self.segments += 1
        self.outcome = None  # a resumed run is running again
        if self.info.end_time is not None:
            self.info = replace(self.info, end_time=None)

    def _account(self, index: int, sign: int, time_ms: float, mfu: float) -> None:
        """Add (+1) or remove (-1) one logged iteration from the running sums.

        Besides METRICS.md's sums this keeps the replay of the timeline
        (``metrics._last_progress_at``): each logged time stands for the steps
        since the previous logged one; an eval step's time covers itself only,
        and steps without a logged time are costed at the current rate.
        """
        gap = 1 if self.is_warmup[index] else self.iters[index] - self.iters[index - 1]
        timed = not math.isnan(time_ms)
        if self.is_eval[index]:
            self.n_eval += sign
            if timed:
                self.replay_s += sign * time_ms / 1000
                self.replay_untimed_steps += sign * (gap - 1)
                if not self.is_warmup[index]:
                    self.eval_ms += sign * time_ms
                    self.n_eval_timed += sign
            else:
                self.replay_untimed_steps += sign * gap
            return
        self.n_train += sign
        if timed:
            self.train_ms += sign * time_ms
            self.n_train_timed += sign
            self.replay_s += sign * time_ms / 1000 * gap
        else:
            self.replay_untimed_steps += sign * gap
        if not math.isnan(mfu):
            self.mfu_sum += sign * mfu
            self.n_mfu += sign

    def _reset_sums(self) -> None:
        self.n_train = self.n_train_timed = self.n_eval = self.n_eval_timed = self.n_mfu = 0
        self.train_ms = self.eval_ms = self.mfu_sum = self.replay_s = 0.0
        self.replay_untimed_steps = 0
        self._segment_start = 0

    def _new_series(self) -> None:
        self.loss_series = Series()
        self.val_series = Series()
        self.time_series = Series()
        self.mfu_series = Series()
        self.tps_series = Series()
        self.wall_series = Series()


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
