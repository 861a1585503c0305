"""What the detail charts say when a log has nothing to plot for them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from trainwatch.core.options import RunOptions
from trainwatch.core.stats import RunStats
from trainwatch.ingest.source import LogSource
from trainwatch.tui import plotspec

# HF trainer_state.json: per-step losses, but only the run's total runtime
# ("train_runtime": 64358.151 over "global_step": 5490 = 11.72 s/iter).
HF = "hf_trainer_state/cpt_5490steps_eval_rouge_predict_trainer_state.json"


def _stats(corpus: Path, options: RunOptions | None = None) -> RunStats:
    source = LogSource(corpus / HF, options or RunOptions())
    source.refresh()
    return source.agg.stats(datetime(2026, 1, 1))


def test_a_log_without_step_times_says_so_with_its_mean(corpus: Path) -> None:
    stats = _stats(corpus)
    chart = plotspec.time_chart(stats)
    assert not chart.traces[0].xs
    assert chart.title == "s/iter"  # no eval marks over an empty plot
    assert chart.empty == "11.72 s/iter on average; no per-step times logged"
    tokens = plotspec.tokens_chart(stats)
    assert tokens.empty == "tokens/iter unknown: pass --tokens-per-iter"


def test_tokens_per_second_without_step_times(corpus: Path) -> None:
    stats = _stats(corpus, RunOptions(tokens_per_iter=1000))
    # 1,000 tokens ÷ (64,358.151 s ÷ 5,490) = 85.3 tokens/s.
    assert plotspec.tokens_chart(stats).empty == "85 tokens/s on average; no per-step times logged"


def test_checkpoints_are_marked_where_no_eval_is(corpus: Path) -> None:
    # llm.c: "Writing checkpoint at step 5000" (and 10000, 15000); evals every 250 steps.
    source = LogSource(corpus / "llmc_stdout" / "llmc_gpt2_124M_a100_full_19560steps.log")
    source.refresh()
    stats = source.agg.stats(datetime(2026, 1, 1))
    assert stats.checkpoint_at == (5000, 10000, 15000)
    chart = plotspec.time_chart(stats)
    assert chart.dashed == (5000.0, 10000.0, 15000.0)
    # and four steps of 21-50 s among 4.2 s ones: hangs ("step 1862/19560 | ... | 33494.81 ms",
    # 2289: 27799.79 ms, 8882: 21051.59 ms, 10741: 50084.95 ms)
    assert [step for step, _ in stats.hangs] == [1862, 2289, 8882, 10741]
    assert chart.hangs == (1862.0, 2289.0, 8882.0, 10741.0)
    assert chart.legend.endswith("┆ checkpoint ╏ hang (left out)")  # explained on the chart's border
    # The seed JSON saves at its evals (1000, 2000): the eval mark says it all.
    seed = LogSource(corpus / "llm_tii_json" / "run_20251110_174040.json")
    seed.refresh()
    seed_stats = seed.agg.stats(datetime(2026, 1, 1))
    assert seed_stats.checkpoint_at == (1000, 2000)
    assert plotspec.time_chart(seed_stats).dashed == ()


def test_hangs_are_marked_on_the_step_time_chart_not_plotted() -> None:
    """A 2-hour hang at iteration 20 (1 s steps): out of the series (it would
    flatten every other step against the axis), marked ╏ where it happened."""
    from trainwatch.core.aggregate import RunAggregator
    from trainwatch.core.records import Iteration, RunInfo

    agg = RunAggregator()
    agg.add(RunInfo(target=100, eval_interval=50, eval_at_start=False))
    for i in range(1, 40):
        agg.add(Iteration(iter=i, loss=2.0, time_ms=7_200_000.0 if i == 20 else 1000.0))
    stats = agg.stats(datetime(2026, 1, 1))
    assert stats.hangs == ((20, 7200.0),)
    chart = plotspec.time_chart(stats)
    assert 20 not in chart.traces[0].xs and max(chart.traces[0].ys) == 1.0
    assert chart.hangs == (20.0,)
    assert chart.title == "s/iter" and chart.legend.endswith("╏ hang (left out)")
    from trainwatch.tui.plotdraw import draw

    assert any("╏" in line.plain for line in draw(chart, 60, 12))
