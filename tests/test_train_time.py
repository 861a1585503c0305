"""METRICS.md, training time (whole run): ``train_time_s`` beyond the seed runs
(those are in test_seed_metrics.py), with hand-computed values."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, RunInfo
from trainwatch.ingest.source import LogSource

T0 = datetime(2026, 5, 3, 8, 0)


def test_from_timestamps_evals_and_hangs_left_out() -> None:
    """A log with timestamps and no step times (torchtitan's): the wall-clock
    intervals between logged steps, evals and hangs counted at the median step.

    Steps 1-10 every 2 s; an eval after step 5 takes 30 s (Megatron and
    torchtitan time it into the next step, 6); step 8 hangs for 600 s. By
    hand: intervals of ordinary steps 2-5, 7, 9, 10 = 7 × 2 s = 14 s; steps 1
    (the first: no interval), 6 (eval) and 8 (hang) at the median 2 s = 6 s;
    20 s in all, the 10 steps' 2 s each.
    """
    agg = RunAggregator()
    agg.add(RunInfo(target=100, eval_timing="next"))
    for step in range(1, 11):
        if step == 6:
            agg.add(Eval(iter=5, val_loss=2.0))
        late = (30 if step >= 6 else 0) + (600 if step >= 8 else 0)
        agg.add(Iteration(iter=step, loss=2.0, wall_time=T0 + timedelta(seconds=2 * step + late)))
    stats = agg.stats(T0 + timedelta(seconds=651))
    assert stats.train_time_s == pytest.approx(20.0)
    assert stats.train_time_estimated  # three steps at the median
    assert stats.hangs == ((8, 602.0),)  # 2 s + the 600 s hang, from the wall clock
    assert stats.train_time_logged_s is None  # no step time logged: the seed's sum is unknown
    assert stats.wall_elapsed_s == pytest.approx(2 * 10 + 630 - 2)  # first to last timestamp


def test_torchtitan_from_its_timestamps(corpus: Path) -> None:
    # grep 'step: ' | the 500 step lines, 08:03:24,367 (step 1) to 08:43:49,218 (step 500):
    # 499 intervals = 2,424.851 s, none over 5 × the median (4.857 s); step 1 at
    # the median: 2,424.851 + 4.857 = 2,429.7 s.
    source = LogSource(corpus / "torchtitan_stdout" / "titan_vlm447m_pp2_tp2_rank4_prefix_500steps_ansi.log")
    source.refresh()
    stats = source.agg.stats(datetime(2026, 6, 1))
    assert stats.train_time_s == pytest.approx(2429.7, rel=1e-3)
    assert stats.hangs == ()


def test_llamafactory_from_its_elapsed_times(corpus: Path) -> None:
    # head -1: step 5 at "elapsed_time": "0:03:29" (209 s); tail -1: step 8712 at
    # "4 days, 7:19:52" = 371,992 s. Each record's time covers the steps since
    # the previous one: 371,992 - 209 = 371,783 s, plus the first record's step
    # at the median (~42.7 s): 371,826 s; no evals.
    source = LogSource(corpus / "llamafactory_jsonl" / "luojiu7b_cpt_8712steps_trainer_log.jsonl")
    source.refresh()
    stats = source.agg.stats(datetime(2026, 6, 1))
    assert stats.train_time_s == pytest.approx(371_826, rel=1e-4)


def test_unknown_without_step_times_or_timestamps() -> None:
    agg = RunAggregator()
    for step in range(0, 100, 10):
        agg.add(Iteration(iter=step, loss=2.0))
    stats = agg.stats(T0)
    assert (stats.train_time_s, stats.train_time_estimated) == (None, False)
