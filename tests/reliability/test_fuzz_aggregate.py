"""The aggregator and the figures against any records a parser could make.

Parsers pass numbers through as logged: a ``time 1e300ms``, a config
``max_iters`` of 400 digits (the stdlib JSON fallback keeps big integers), a
timestamp in year 1. Whatever comes in, ``stats()`` must not raise, no time or
count may come out negative or non-finite, and every export must render with
strictly valid JSON.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.metrics import quiet_for
from trainwatch.core.records import Checkpoint, Eval, Iteration, IterationColumns, Outcome, Record, RunInfo
from trainwatch.core.stats import DRIFT, only_clock_moved
from trainwatch.outputs.export import render

from .helpers import NOW, check_stats, deadline, render_everything, scale, snapshot_of, strict_json

_floats = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e300, -1e300, 1e38, 3.5e38, 1e-300, -0.0, 0.0, -100.0, 20971519.0, 1e15]),
)
_ints = st.one_of(st.none(), st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 2**31, 2**53, 2**64, 10**400]))
_moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
_walls = st.none() | _moments
_steps = st.one_of(st.integers(-5, 3000), st.sampled_from([2**31 - 1, 2**31, 10**400, -(10**400)]))

iterations = st.builds(
    Iteration,
    iter=_steps,
    loss=_floats,
    time_ms=_floats,
    mfu_pct=_floats,
    tokens_per_sec=_floats,
    lr=_floats,
    grad_norm=_floats,
    tokens_seen=_ints,
    wall_time=_walls,
)
infos = st.builds(
    RunInfo,
    world_size=_ints,
    params=_ints,
    target=_ints,
    eval_interval=_ints,
    log_interval=_ints,
    batch_size=_ints,
    grad_accum=_ints,
    grad_accum_per_gpu=_ints,
    block_size=_ints,
    tokens_per_iter=_ints,
    n_layer=_ints,
    n_head=_ints,
    n_embd=_ints,
    mfu_peak_tflops=_floats,
    runtime_s=_floats,
    start_time=_walls,
    end_time=_walls,
    eval_at_start=st.none() | st.booleans(),
    eval_timing=st.sampled_from([None, "same", "next", "excluded"]),
    gpu=st.sampled_from([None, "A100", "NVIDIA H100 80GB HBM3", "RTX A6000", "x"]),
    dtype=st.sampled_from([None, "bf16", "fp32"]),
    tokens_per_sec_scope=st.sampled_from([None, "gpu", "total"]),
)
evals = st.builds(Eval, iter=_steps, val_loss=_floats, train_loss=_floats, wall_time=_walls)
checkpoints = st.builds(Checkpoint, iter=st.none() | _steps, wall_time=_walls)
outcomes = st.builds(Outcome, kind=st.sampled_from(["finished", "failed"]), wall_time=_walls)
records = st.lists(st.one_of(iterations, iterations, iterations, infos, evals, checkpoints, outcomes), max_size=40)


@settings(
    max_examples=scale(300, 4000),
    deadline=2000,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    records,
    _moments,
    st.lists(_moments, max_size=3),
    st.none() | st.integers(1, 10**30),
    st.booleans(),
)
def test_any_records_give_sane_figures(
    recs: list[Record], now: datetime, observed: list[datetime], target: int | None, one_by_one: bool
) -> None:
    agg = RunAggregator(target_override=target)
    for moment in sorted(observed):
        agg.observe(moment)
    if one_by_one:
        for record in recs:
            agg.add(record)
    else:
        agg.add_all(recs)
    stats = agg.stats(now)
    check_stats(stats)
    # A copy (the document path's tail) gives the same figures (repr: NaN != NaN).
    assert repr(agg.copy().stats(now)) == repr(stats)
    # The watcher skips a quiet run on its clock ticks: what it promises must hold.
    quiet = quiet_for(agg, stats, now)
    assert quiet >= 0
    if quiet > 0:
        later = now + timedelta(seconds=min(quiet, 1e6, (datetime.max - now).total_seconds()) / 2)
        assert only_clock_moved(stats, agg.stats(later), DRIFT)
    snapshot = snapshot_of(stats)
    strict_json(render(snapshot, "json"))
    _CALLS[0] += 1
    if _CALLS[0] % 8 == 0:  # pandas makes the other formats slow: a sample of them
        render_everything(snapshot)


_CALLS = [0]


def test_restart_does_not_leave_negative_time() -> None:
    """A restart subtracts the superseded entries; float32 copies must not leave a negative sum."""
    agg = RunAggregator()
    agg.add_all([Iteration(0, time_ms=20971519.0), Iteration(0, time_ms=0.0)])
    check_stats(agg.stats(NOW))


def test_restart_storm_is_linear() -> None:
    """20k evals, then 20k iterations counting down: each one a restart.

    Each restart used to rebuild the dict of every eval: quadratic, 16 s per
    1.6 MB of such a log. Now under a second; the deadline is a hang guard.
    """
    n = scale(20_000, 100_000)
    recs: list[Record] = [Eval(i, val_loss=1.0) for i in range(n)]
    recs += [Iteration(i, loss=1.0, time_ms=10.0) for i in range(n, 0, -1)]
    with deadline(10.0 * n / 20_000, f"{n} restarts"):
        agg = RunAggregator()
        agg.add_all(recs)
        stats = agg.stats(NOW)
    assert stats.iter == 1 and stats.segments == n


def test_restart_storm_in_columns_is_linear() -> None:
    """The same storm as one bulk record (nanoGPT's plain lines): columns
    counting down are a restart per row."""
    n = scale(20_000, 100_000)
    columns = IterationColumns(list(range(n, 0, -1)), [1.0] * n, [10.0] * n, [30.0] * n)
    with deadline(10.0 * n / 20_000, f"{n} restarts in columns"):
        agg = RunAggregator()
        agg.add_all([columns])
    assert agg.segments == n and list(agg.iters) == [1]
