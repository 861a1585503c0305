"""The aggregator on hand-made records: incremental, restarts, rules of METRICS.md."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers import llm_tii_json

NOW = datetime(2025, 11, 14, 12, 0)


def stats_dict(agg: RunAggregator) -> dict:
    return asdict(agg.stats(now=NOW))


@pytest.mark.parametrize("run", ["run_20251113_225009.json", "run_20251031_174932.json"])
def test_one_at_a_time_equals_all_at_once(corpus: Path, run: str) -> None:
    records = llm_tii_json.parse_document((corpus / "llm_tii_json" / run).read_bytes())
    assert records

    at_once = RunAggregator()
    at_once.add_all(records)

    streamed = RunAggregator()
    for index, record in enumerate(records):
        streamed.add(record)
        if index % 7 == 0:
            streamed.stats(now=NOW)  # deriving mid-way must not disturb the state
    assert stats_dict(streamed) == stats_dict(at_once)


def _run(times: list[tuple[int, float]], info: RunInfo | None = None) -> RunAggregator:
    agg = RunAggregator()
    if info:
        agg.add(info)
    for step, ms in times:
        agg.add(Iteration(iter=step, loss=1.0, time_ms=ms))
    return agg


def test_restart_supersedes_without_double_counting() -> None:
    # 0..40 logged, then resumed from a checkpoint at 20: 20, 30, 40 run again.
    records: list[Record] = [Iteration(iter=i, loss=5.0 - i / 100, time_ms=100.0) for i in range(0, 50, 10)]
    records += [Iteration(iter=i, loss=4.0, time_ms=200.0) for i in range(20, 60, 10)]
    agg = RunAggregator()
    agg.add_all(records)
    stats = agg.stats(now=NOW)
    assert stats.segments == 2
    assert stats.iter == 50
    # kept: 0, 10 (100 ms each) then 20, 30, 40, 50 (200 ms each)
    assert stats.logged_iters == 6
    assert stats.train_time_logged_s == pytest.approx((2 * 100 + 4 * 200) / 1000)


def test_eval_rule_without_interval_uses_outliers() -> None:
    times = [(i, 1000.0) for i in range(1, 12)] + [(12, 9000.0), (13, 1000.0)]
    agg = _run(times)
    assert agg.stats(now=NOW).eval_at == (12,)


def test_eval_rule_with_interval_and_no_eval_at_start() -> None:
    agg = _run([(i, 1000.0) for i in range(0, 31, 5)], RunInfo(eval_interval=10, eval_at_start=False))
    assert agg.stats(now=NOW).eval_at == (10, 20, 30)


def test_nan_loss_is_diverged_and_outranks_failure() -> None:
    agg = _run([(1, 10.0), (2, 10.0)])
    agg.add(Iteration(iter=3, loss=math.nan, time_ms=10.0))
    agg.add(Outcome("failed", "killed"))
    assert agg.stats(now=NOW).status == "diverged"


def test_target_precedence() -> None:
    agg = _run([(1, 10.0)])
    assert (agg.stats(now=NOW).target, agg.stats(now=NOW).target_source) == (2000, "default")
    agg.add(RunInfo(target=500))
    assert agg.stats(now=NOW).target == 500
    agg.target_override = 300
    assert (agg.stats(now=NOW).target, agg.stats(now=NOW).target_source) == (300, "override")


def test_tokens_evidence_disagreeing_with_config_warns() -> None:
    info = RunInfo(
        batch_size=4, grad_accum=8, block_size=1024, world_size=2, tokens_per_sec_scope="gpu"
    )  # config: 4×8×1024 = 32,768
    agg = RunAggregator()
    agg.add(info)
    for i in range(1, 20):  # evidence: 8,192 tok/s per GPU × 4 s × 2 GPUs = 65,536
        agg.add(Iteration(iter=i, time_ms=4000.0, tokens_per_sec=8192.0))
    stats = agg.stats(now=NOW)
    assert stats.tokens_per_iter == 65_536
    assert stats.tokens_per_iter_source == "evidence"
    assert any("config says 32,768" in w for w in stats.warnings)


def test_per_gpu_accumulation_is_multiplied_by_world_size() -> None:
    agg = RunAggregator()
    agg.add(RunInfo(batch_size=4, grad_accum_per_gpu=8, block_size=1024, world_size=4))
    agg.add(Iteration(iter=1, time_ms=1000.0))
    assert agg.stats(now=NOW).tokens_per_iter == 4 * 8 * 4 * 1024


def test_derived_mfu_from_params_and_gpu() -> None:
    # 124M params, no attention term known: 6 × 124e6 = 744 MFLOP/token.
    # 100k tok/s on one A100 (312 TFLOPS dense bf16): 744e6 × 1e5 / 312e12 = 23.85 %
    agg = RunAggregator(params_override=124_000_000, gpu_override="NVIDIA A100-SXM4-40GB")
    agg.add(RunInfo(tokens_per_iter=100_000, dtype="bfloat16", world_size=1))
    for i in range(1, 5):
        agg.add(Iteration(iter=i, time_ms=1000.0))
    stats = agg.stats(now=NOW)
    assert stats.mfu_derived
    assert stats.mfu_mean_pct == pytest.approx(23.846, abs=0.01)


def test_impossible_mfu_is_flagged() -> None:
    agg = RunAggregator()
    for i in range(1, 4):
        agg.add(Iteration(iter=i, time_ms=100.0, mfu_pct=15224.37))
    assert any("impossible" in w for w in agg.stats(now=NOW).warnings)


def test_wall_clock_rate_and_eta_from_timestamps() -> None:
    start = datetime(2025, 1, 1, 0, 0)
    agg = RunAggregator()
    agg.add(RunInfo(target=100))
    for i in range(0, 51, 10):  # 10 iterations every 20 s: 2 s per iteration
        agg.add(Iteration(iter=i, wall_time=start + timedelta(seconds=2 * i)))
    stats = agg.stats(now=start + timedelta(seconds=100))
    assert stats.rate_source == "wall clock"
    assert stats.rate_s == pytest.approx(2.0)
    assert stats.eta_s == pytest.approx(100.0)  # 50 iterations left × 2 s


def test_eval_marks_count_as_progress() -> None:
    agg = _run([(i, 100.0) for i in range(0, 100, 10)])
    agg.add(Eval(iter=100, val_loss=2.5))
    stats = agg.stats(now=NOW)
    assert stats.iter == 100 and stats.val_loss == 2.5


def test_a_resumed_hang_does_not_wreck_the_eta() -> None:
    # 1 s steps, then one step that holds a 2-hour hang, then 1 s steps again.
    agg = RunAggregator()
    agg.add(RunInfo(target=1000, eval_interval=500, eval_at_start=False))
    for i in range(1, 40):
        agg.add(Iteration(iter=i, time_ms=7_200_000.0 if i == 20 else 1000.0))
    stats = agg.stats(now=NOW)
    assert stats.rate_s == pytest.approx(1.0)
    assert stats.train_time_logged_s == pytest.approx(38 + 7200)  # the sum is still what was logged


def test_the_same_step_again_replaces_it_in_the_same_segment() -> None:
    # A second writer (or a re-log) prints step 20 again: the newer entry wins,
    # nothing is counted twice, and it is no restart.
    agg = RunAggregator()
    agg.add_all(
        [
            Iteration(iter=10, loss=3.0, time_ms=100.0, mfu_pct=30.0),
            Iteration(iter=20, loss=2.9, time_ms=110.0, mfu_pct=31.0),
            Eval(iter=20, val_loss=3.1),
            Iteration(iter=20, loss=2.8, time_ms=120.0),  # no MFU this time
            Iteration(iter=30, loss=2.7, time_ms=130.0, mfu_pct=33.0),
            Iteration(iter=30, loss=2.6, time_ms=140.0),
        ]
    )
    stats = agg.stats(now=NOW)
    assert (stats.iter, stats.loss, stats.segments, stats.logged_iters) == (30, 2.6, 1, 3)
    assert stats.val_loss == 3.1  # the eval at the repeated step stays
    assert list(agg.iters) == [10, 20, 30]
    assert list(agg.times) == [100.0, 120.0, 140.0]
    assert agg.last_mfu == 30.0  # both newer MFUs were replaced by entries without one
    assert list(agg.is_warmup) == [1, 0, 0]  # the first entry stays the segment's warm-up


def test_the_same_first_step_again_is_still_the_warm_up() -> None:
    agg = _run([(1, 5000.0), (1, 4000.0), (2, 100.0)])
    assert list(agg.is_warmup) == [1, 0] and list(agg.times) == [4000.0, 100.0]
    assert agg.stats(now=NOW).segments == 1


def test_the_same_step_again_keeps_a_pending_eval_of_the_next_step() -> None:
    # Megatron/torchtitan evaluate after logging step i: the time lands in the
    # next logged step, however many copies of it are printed.
    agg = RunAggregator()
    agg.add_all(
        [
            RunInfo(eval_timing="next"),
            Iteration(iter=10, loss=3.0, time_ms=100.0),
            Eval(iter=10, val_loss=3.1),
            Iteration(iter=20, loss=2.9, time_ms=900.0),
            Iteration(iter=20, loss=2.9, time_ms=900.0),
        ]
    )
    assert list(agg.is_eval) == [0, 1]
    assert agg.eval_at == [20]


def test_wall_clock_without_timestamps_runs_from_the_first_sighting() -> None:
    """A log without timestamps: wall clock = first sighting to last update.
    It froze once 64 updates had been seen (``observed`` keeps the last 64):
    the detail view showed "wall clock 31s" beside "train time 1m 13s"."""
    agg = RunAggregator()
    start = datetime(2025, 11, 14, 10, 0)
    for k in range(200):  # 200 updates, 5 s apart
        agg.add(Iteration(iter=k, loss=2.0, time_ms=5000.0))
        agg.observe(start + timedelta(seconds=5 * k))
        if k in (63, 64, 199):
            elapsed = agg.stats(now=start + timedelta(seconds=5 * k)).wall_elapsed_s
            assert elapsed == 5 * k  # 5 s × k updates after the first
    assert len(agg.observed) <= 128  # still bounded
    # An update stamped earlier than the last (a clock step) never moves it back.
    agg.observe(start + timedelta(seconds=100))
    assert agg.stats(now=start + timedelta(seconds=995)).wall_elapsed_s == 995
    # The file's birth time, where the filesystem keeps one, is an earlier start.
    agg.observe(start + timedelta(seconds=1000), born=start - timedelta(seconds=60))
    assert agg.stats(now=start + timedelta(seconds=1000)).wall_elapsed_s == 1060


@pytest.mark.parametrize("kind", ["failed", "finished"])
def test_an_outcome_the_log_goes_on_past_is_forgotten(kind: str) -> None:
    # A job killed at step 10 (its last checkpoint) and requeued appends to
    # the same log from step 11: no step goes back, so no restart clears it.
    agg = _run([(i, 100.0) for i in range(1, 11)])
    agg.add(Outcome(kind, "DUE TO TIME LIMIT"))
    agg.observe(NOW)
    agg.add(Iteration(iter=11, time_ms=100.0))  # the dying process's last lines (a flush at exit)...
    agg.add(Iteration(iter=12, time_ms=100.0))
    agg.observe(NOW + timedelta(seconds=2))
    assert agg.stats(now=NOW).status == kind
    agg.add(Iteration(iter=13, time_ms=100.0))  # a minute on: one line more is not enough...
    agg.observe(NOW + timedelta(seconds=60))
    assert agg.stats(now=NOW).status == kind
    agg.add(Iteration(iter=14, time_ms=100.0))  # ... two are: the job runs again
    agg.observe(NOW + timedelta(seconds=61))
    assert agg.stats(now=NOW).status == "running"


def test_steps_flushed_after_a_traceback_leave_the_failure() -> None:
    # stdout buffered behind stderr's traceback reaches the log after it, in
    # the same read: those steps are older than the crash.
    from trainwatch.core.records import IterationColumns

    agg = _run([(i, 100.0) for i in range(1, 11)])
    agg.add(Outcome("failed", "Python traceback"))
    steps = list(range(11, 31))
    agg.add(IterationColumns(steps, [2.0] * len(steps), [100.0] * len(steps), [None] * len(steps)))
    agg.observe(NOW)
    agg.observe(NOW + timedelta(minutes=5))  # (the file touched, nothing logged)
    stats = agg.stats(now=NOW)
    assert (stats.status, stats.iter) == ("failed", 30)
