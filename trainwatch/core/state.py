"""One run's state: the running sums, columns and series that records build up.

Aggregation (``aggregate``, ``aggregate_take``) writes it; ``metrics`` and
``throughput`` read it. It lives here, apart from all of them, so that none
of those modules imports another for its type. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Collection
from datetime import datetime
from statistics import median
from typing import Any

from trainwatch.core.records import Checkpoint, Eval, Outcome, RunInfo
from trainwatch.core.series import Series

_NAN = math.nan
#: A logged step this many times the median of the recent ones holds an eval
#: pass (where the log says nothing of its evals), or else a hang.
OUTLIER_FACTOR = 5.0
#: What ``RunState.is_eval`` holds for a logged iteration: an ordinary
#: training step, a step whose time holds an eval pass, or a training step far
#: slower than the recent ones (METRICS.md: a hang, or a checkpoint save the
#: log announced), left out of the pace and the whole-run training time.
TRAIN, EVAL, EXCESS = 0, 1, 2
#: Hangs kept for the events list and the JSON (a restart filters them).
MAX_HANGS = 512


class RunState:
    """One run's accumulated state: what aggregation writes, and metrics and
    throughput read. ``RunAggregator`` feeds it."""

    # Running sums of METRICS.md (set in ``reset_sums``).
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
    # The whole-run training time (METRICS.md ``train_time_s``) is
    # ``replay_s - pause_s + wall_s`` + ``whole_steps`` × the median step
    # time: ordinary logged steps count for the steps since the previous
    # logged one (their time × the gap, as in the replay; or the wall-clock
    # interval where only timestamps tell), eval, excess and untimed ones at
    # the median step time. (The replay less the evals' and hangs' own times:
    # no third sum over every row of a bulk load.)
    pause_s: float  # own times of the timed eval and excess steps
    wall_s: float  # wall-clock intervals of untimed ordinary steps
    whole_steps: int
    whole_sampled: int  # steps extrapolated from a sampled step's time
    n_excess_timed: int
    excess_ms: float

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
        self.pinned = {"params": params_override, "gpu": gpu_override}
        # Per logged iteration of the newest part of the current timeline
        # (restarts truncate it; ``core.timeline`` keeps it bounded: the first
        # ``dropped`` entries are gone, copies of the sums every EVERY entries
        # stand for them). Compact columns, ~15 bytes an entry. Sums are kept
        # in float64 from the exact inputs; the float32 copies serve rate
        # windows and the subtraction of superseded entries after a restart.
        self.dropped = 0
        self.floor = 0  # entries from here on can be taken back out one by one (timeline.floor)
        self.saved: list[Any] = []  # timeline.Saved, every EVERY entries
        self.spacing = 0  # entries between two of the older copies (timeline.SAVED; 0: EVERY)
        self.head_iter: int | None = None  # the iteration of the timeline's first entry, once dropped
        self.wall_first_at: int | None = None  # the entry ``wall_first`` came from
        self.trimmed_last: tuple[float | None, float | None, float | None] = (None, None, None)  # mfu, tps, wall
        self.iters: array[int] = array("i")
        self.times: array[float] = array("f")  # ms, NaN = not logged
        self.mfus: array[float] = array("f")  # %, NaN = not logged / sentinel
        self.tps: array[float] | None = None  # logged tokens/s; created on first use
        self.walls: array[float] | None = None  # epoch s of timestamped lines; likewise
        self.is_eval = bytearray()  # TRAIN, EVAL or EXCESS per entry
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
        self.mark_heap: list[int] = []  # -iter of every eval mark: a restart drops the newest first
        # Eval passes the log timed apart from any step (``Eval.seconds``): their count and sum.
        self.n_pass = 0
        self.pass_s = 0.0
        self.checkpoints: list[Checkpoint] = []
        self.hangs: list[tuple[int, float]] = []  # (iteration, seconds the step took)
        self.outcome: Outcome | None = None
        # When the outcome was first seen, and the newest step logged by the
        # end of its settling time (``RunAggregator._outlive``).
        self.outcome_seen: datetime | None = None
        self.outcome_step = -1
        self.last_loss: float | None = None
        self.observed: list[datetime] = []  # file update times seen by the watcher (the last 64)
        # The first sighting (or the file's birth, where known): the start of
        # a log without timestamps, kept apart from ``observed``, which is cut.
        self.first_seen: datetime | None = None
        # The last 16 ordinary step times (ms; or wall-clock paces, where a
        # step has no time): the median the eval and hang rules compare with.
        self.recent: deque[float] = deque(maxlen=16)
        self.eval_pending = False  # an eval ran since the last logged iteration
        self.ckpt_pending = False  # a checkpoint was logged since the last logged iteration
        # Bumped by every input (add, add_all, observe): figures derived from
        # the state alone are memoised against it (``metrics._rate``), so a
        # once-a-second re-derive of an unchanged run does not rescan windows.
        self.changes = 0
        self.memo: dict[str, tuple[int, Any]] = {}
        self.new_series()
        self.reset_sums()

    @property
    def logged(self) -> int:
        """Logged iterations in the current timeline (the columns hold the newest)."""
        return self.dropped + len(self.iters)

    @property
    def first_iter(self) -> int | None:
        """The iteration of the timeline's first entry."""
        return self.head_iter if self.dropped else (self.iters[0] if self.iters else None)

    def append_optional(self, column: str, value: float | None) -> None:
        """Append to a column that exists only once some entry has a value."""
        values: array[float] | None = getattr(self, column)
        if values is None:
            if value is None:
                return
            values = array("d", [_NAN]) * (len(self.iters) - 1)
            setattr(self, column, values)
        values.append(_NAN if value is None else value)

    def classify_eval(self, step: int, time_ms: float, warmup: bool) -> bool:
        """Does this iteration's logged time include an evaluation pass?"""
        timing = self.info.eval_timing
        if timing == "excluded":
            return False
        if timing == "next":
            pending, self.eval_pending = self.eval_pending, False
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
        return len(self.recent) >= 3 and time_ms > OUTLIER_FACTOR * median(self.recent)

    def reset_sums(self) -> None:
        self.n_train = self.n_train_timed = self.n_eval = self.n_eval_timed = self.n_mfu = 0
        self.train_ms = self.eval_ms = self.mfu_sum = self.replay_s = 0.0
        self.replay_untimed_steps = 0
        self.pause_s = self.wall_s = self.excess_ms = 0.0
        self.whole_steps = self.whole_sampled = self.n_excess_timed = 0
        self.segment_start = 0

    def excess(self, sample: float) -> bool:
        """Is a step of ``sample`` ms (not an eval, not the segment's first) a hang,
        far slower than the recent ones? (``take_columns`` finds the same rows
        its own way; ``tests/test_bulk_load.py`` holds the two to it.)"""
        return sample > hang_limit(self.recent)

    def new_series(self) -> None:
        self.loss_series = Series()
        self.val_series = Series()
        self.time_series = Series()
        self.mfu_series = Series()
        self.tps_series = Series()
        self.wall_series = Series()


def hang_limit(window: Collection[float]) -> float:
    """A step time (ms) above which a step is a hang, given the recent ones:
    OUTLIER_FACTOR × their median (METRICS.md), and beyond their spread too
    (Tukey's far fence, Q3 + 3 × IQR). The spread matters where steps differ
    by nature: a predict run whose steps take 0.6 s or 4 s by turns has a
    median of 1 s, and its 7.4 s steps are no hang; and a slowdown that
    lasts becomes the pace after 4 slow steps of 16. The fence needs 8 steps
    (with fewer, one hang is the upper quartile). Infinite (no step is a
    hang) under 3 steps, or when the median is 0."""
    n = len(window)
    if n < 3:
        return math.inf
    ordered = sorted(window)
    half = n // 2
    typical = ordered[half] if n % 2 else (ordered[half - 1] + ordered[half]) / 2
    if not typical > 0:
        return math.inf
    if n < 8:
        return OUTLIER_FACTOR * typical
    low, high = ordered[n // 4], ordered[3 * n // 4]
    return max(OUTLIER_FACTOR * typical, high + 3 * (high - low))
