"""What the detail charts say when a log has nothing to plot for them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from trainwatch.source import LogSource, RunOptions
from trainwatch.stats import RunStats
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
