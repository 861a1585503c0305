"""``metrics.quiet_for``: for as long as it says, the watcher does not derive
a run on its clock ticks. What it promises is checked against ``derive``
itself, on every log of the corpus, at moments from the run's last update
until long after it turned stalled."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from trainwatch.core.metrics import quiet_for
from trainwatch.core.stats import DRIFT, only_clock_moved
from trainwatch.ingest.discover import discover
from trainwatch.ingest.source import LogSource

#: Seconds after the run's last update at which it is looked at.
OFFSETS = (0.0, 0.5, 3.0, 30.0, 200.0, 4000.0)
#: A quiet period "for ever" is checked this far ahead.
FAR = 30 * 86400.0


def _sources(corpus: Path) -> list[LogSource]:
    sources = []
    for path in discover([corpus])[0]:
        source = LogSource(path)
        source.refresh()
        source.flush()
        if source.ready and source.spec is not None:
            sources.append(source)
    return sources


def test_quiet_runs_only_drift_until_they_can_stall(corpus: Path) -> None:
    sources = _sources(corpus)
    assert len(sources) > 30
    kinds = set()
    for source in sources:
        agg = source.agg
        last = agg.stats(datetime(2030, 1, 1)).last_update_at
        base = last if last is not None and last.tzinfo is None else datetime(2026, 1, 1)
        for offset in OFFSETS:
            now = base + timedelta(seconds=offset)
            stats = agg.stats(now)
            quiet = quiet_for(agg, stats, now)
            assert quiet >= 0
            if quiet == 0:
                kinds.add("counting down")
                assert stats.status == "running" and stats.eta_s is not None
                continue
            span = min(quiet, FAR)
            for t in (0.001, span / 2, span - 0.001):
                later = agg.stats(now + timedelta(seconds=t))
                assert only_clock_moved(stats, later, DRIFT), (source.path.name, offset, t)
            if math.isinf(quiet):
                kinds.add(stats.status)
            else:
                kinds.add("until stalled")
                assert stats.status == "running"
                assert agg.stats(now + timedelta(seconds=quiet + 0.01)).status == "stalled"
    # The corpus shows each case but a countdown (next test): a quiet running
    # run, and runs the clock cannot change.
    assert {"until stalled", "stalled", "finished", "failed", "diverged"} <= kinds, kinds


def test_a_run_counting_down_is_never_quiet() -> None:
    """Between two log lines the ETA counts down second by second: no skipped tick."""
    from trainwatch.core.aggregate import RunAggregator
    from trainwatch.core.records import Iteration, RunInfo

    agg = RunAggregator()
    agg.add_all([RunInfo(target=1000), *(Iteration(i, loss=2.0, time_ms=1000.0) for i in range(0, 100, 10))])
    noon = datetime(2026, 1, 1, 12)
    agg.observe(noon)
    # Ten iterations a log line at 1 s each: the next line is due 10 s after the last.
    at = [noon + timedelta(seconds=s) for s in (1, 9.9, 10.1)]
    assert [quiet_for(agg, agg.stats(t), t) for t in at[:2]] == [0.0, 0.0]
    stats = agg.stats(at[2])
    stall = 60.0  # max(3 × the 10 s between lines, a minute)
    assert quiet_for(agg, stats, at[2]) == pytest.approx(stall - 10.1)
