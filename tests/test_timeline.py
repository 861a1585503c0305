"""A run's per-iteration columns stay bounded (``core.timeline``), and restarts still add up.

The aggregator keeps the newest KEEP entries at least and a copy of the
running sums every EVERY entries. A restart within the kept entries takes
them out one by one (as before); one further back restores the newest copy
saved before its step. Where each applies depends on the timeline's length
and the restart's step only, so the bulk and per-line paths agree to the
bit with the bounds made tiny (every trim, copy and restore is exercised).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import pytest
from bulkcheck import assert_same, expanded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainwatch.core import timeline
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import BulkRecord, Eval, Iteration, IterationColumns, RunInfo


def plain(steps: range | list[int], ms: float = 100.0) -> IterationColumns:
    steps = list(steps)
    n = len(steps)
    return IterationColumns(steps, [2.0 + s % 7 / 10 for s in steps], [ms + s % 5 for s in steps], [30.0] * n)


def test_memory_stays_bounded() -> None:
    agg = RunAggregator()
    for start in range(0, 400_000, 5000):
        agg.add_all([plain(range(start, start + 5000))])
        assert len(agg.iters) <= timeline.KEEP + 2 * timeline.EVERY
    stats = agg.stats()
    assert stats.logged_iters == 400_000 and stats.iter == 399_999
    assert len(agg.saved) <= 2 * timeline.SAVED  # (the older copies thinned out: a bound, whatever the length)
    positions = [0] + [copy.position for copy in agg.saved]
    assert agg.spacing > timeline.EVERY  # (thinned)
    assert max(b - a for a, b in pairwise(positions)) <= agg.spacing  # spread over the whole timeline


def test_restart_within_the_kept_entries_is_exact() -> None:
    """Back 500 entries of 3,000: taken out one by one, as with every entry kept."""
    agg, whole = RunAggregator(), RunAggregator()
    agg.add_all([plain(range(3000))])
    agg.add_all([plain(range(2500, 2600))])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timeline, "KEEP", 10**9)
        whole.add_all([plain(range(3000))])
        whole.add_all([plain(range(2500, 2600))])
    assert agg.stats().logged_iters == whole.stats().logged_iters == 2600
    for name in timeline.SUMS:
        assert getattr(agg, name) == getattr(whole, name), name


def test_restart_past_the_floor_restores_the_copy_before_it() -> None:
    """Back to step 1,500 of 5,000: the copy after 1,024 entries (steps 0-1,023)
    is restored; the 476 entries after it and before 1,500 leave the sums."""
    agg = RunAggregator()
    agg.add_all([plain(range(5000))])
    agg.add_all([plain(range(1500, 1600))])
    reference = RunAggregator()
    reference.add_all([plain(range(1024))])
    reference.add_all([plain(range(1500, 1600))])  # (a gap of 477 steps, not a restart)
    assert agg.stats().logged_iters == reference.stats().logged_iters == 1124
    for name in ("n_train", "n_train_timed", "train_ms", "mfu_sum", "n_mfu"):
        assert getattr(agg, name) == getattr(reference, name), name
    assert agg.stats().segments == 2 and agg.iters[-1] == 1599


def test_restart_before_the_first_copy_starts_afresh() -> None:
    agg = RunAggregator()
    agg.add_all([plain(range(5000))])
    agg.add_all([plain(range(10, 20))])
    fresh = RunAggregator()
    fresh.add_all([plain(range(10, 20))])
    assert agg.stats().logged_iters == 10
    for name in timeline.SUMS:
        assert getattr(agg, name) == getattr(fresh, name), name


def test_wall_clock_figures_follow_the_kept_entries() -> None:
    from datetime import datetime, timedelta

    start = datetime(2025, 1, 1)
    rows = [Iteration(k, 2.0, wall_time=start + timedelta(seconds=k)) for k in range(4000)]
    agg = RunAggregator()
    agg.add_all(rows)
    assert agg.wall_first == start.timestamp() and agg.last_wall == rows[-1].wall_time.timestamp()  # type: ignore[union-attr]
    agg.add_all([Iteration(3500, 2.0)])  # back 500: within the kept entries; the new one has no time
    assert agg.wall_first == start.timestamp()
    assert agg.last_wall == rows[3499].wall_time.timestamp()  # type: ignore[union-attr]
    agg.add_all([Iteration(5, 2.0)])  # past the floor, before the first copy: nothing is left
    assert agg.wall_first is None and agg.last_wall is None


# ------------------------------------------------------- bulk and per line

_steps = st.lists(st.sampled_from([1, 1, 1, 1, 2, 0, -3, -40, -200]), min_size=1, max_size=120)


def _records(gaps: list[list[int]], evals: list[int], interval: int | None) -> Iterator[BulkRecord]:
    yield RunInfo(eval_interval=interval)
    step = 0
    for index, block in enumerate(gaps):
        steps = []
        for gap in block:
            step = max(0, step + gap)
            steps.append(step)
        yield IterationColumns(
            steps,
            [1.0 + s % 3 for s in steps],
            [None if s % 11 == 0 else 50.0 + s % 13 for s in steps],
            [None if s % 7 == 0 else 30.0 for s in steps],
            tokens_per_sec=[float(s) for s in steps] if index % 2 else None,
        )
        if evals and index < len(evals):
            yield Eval(evals[index] % (step + 1), val_loss=1.0)


@settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.lists(_steps, min_size=1, max_size=12),
    st.lists(st.integers(0, 500), max_size=6),
    st.sampled_from([None, 5]),
    st.sampled_from([(4, 4, 2), (8, 4, 3), (4, 8, 2), (16, 16, 128)]),
)
def test_columns_equal_their_rows_with_tiny_bounds(
    gaps: list[list[int]], evals: list[int], interval: int | None, bounds: tuple[int, int, int]
) -> None:
    """Trims, copies (thinned) and restores at every few entries: the bulk path
    and the row path keep and restore the same entries, to the bit."""
    records = list(_records(gaps, evals, interval))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timeline, "KEEP", bounds[0])
        patch.setattr(timeline, "EVERY", bounds[1])
        patch.setattr(timeline, "SAVED", bounds[2])
        bulk, reference = RunAggregator(), RunAggregator()
        bulk.add_all(records)
        for record in expanded(records):
            reference.add(record)  # one at a time: every batch boundary differs
        assert_same(bulk, reference)
        assert len(bulk.iters) <= bounds[0] + 2 * bounds[1] + 1


def test_evaluations_kept_are_bounded() -> None:
    """An eval every 10 steps over 100,000 steps: the newest MAX_EVALS results
    (events, rules) and eval steps (charts) stay; the sums count them all."""
    agg = RunAggregator()
    agg.add(RunInfo(eval_interval=10))
    for start in range(0, 100_000, 1000):
        agg.add_all([plain(range(start, start + 1000))])
        for step in range(start, start + 1000, 10):
            agg.add(Eval(step, val_loss=1.0 + step / 1e6))
    assert len(agg.eval_marks) <= 2 * timeline.MAX_EVALS
    assert len(agg.eval_at) <= 2 * timeline.MAX_EVALS + timeline.EVERY  # (trimmed with the copies)
    stats = agg.stats()
    assert stats.eval_iters == 9_999  # (step 0 is no eval without eval_at_start)
    assert stats.val_loss == 1.0 + 99_990 / 1e6 and stats.eval_at[-1] == 99_990
