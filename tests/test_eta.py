"""ETA quality on the seed runs (METRICS.md: "ETA quality is measurable").

For each run, rebuild the document as it stood at the eval of iteration 1000:
iterations up to 1000, evals up to 1000, no checkpoint written after that
moment, no end_time. With "now" = that eval's logged timestamp, the predicted
remaining time must be within 2 % of the real one (end_time − now).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.parsers import llm_tii_json

SEED_RUNS = ["run_20251113_225009", "run_20251113_095419", "run_20251112_122613", "run_20251110_174040"]


def as_of_eval_1000(doc: dict) -> tuple[bytes, datetime]:
    now = datetime.fromisoformat(next(e["timestamp"] for e in doc["eval_steps"] if e["iter"] == 1000))
    partial = {k: v for k, v in doc.items() if k not in ("end_time", "summary")}
    partial["training_iterations"] = [e for e in doc["training_iterations"] if e["iter"] <= 1000]
    partial["eval_steps"] = [e for e in doc["eval_steps"] if e["iter"] <= 1000]
    partial["checkpoints"] = [c for c in doc["checkpoints"] if datetime.fromisoformat(c["timestamp"]) <= now]
    return orjson.dumps(partial), now


@pytest.mark.parametrize("run_id", SEED_RUNS)
def test_eta_at_iteration_1000_within_2_percent(corpus: Path, run_id: str) -> None:
    doc = orjson.loads((corpus / "llm_tii_json" / f"{run_id}.json").read_bytes())
    data, now = as_of_eval_1000(doc)
    real_remaining = (datetime.fromisoformat(doc["end_time"]) - now).total_seconds()

    agg = RunAggregator()
    records = llm_tii_json.parse_document(data)
    assert records is not None
    agg.add_all(records)
    stats = agg.stats(now=now)

    assert stats.status == "running"
    assert stats.iter == 1000
    assert stats.eta_s is not None
    assert abs(stats.eta_s - real_remaining) / real_remaining < 0.02, (stats.eta_s, real_remaining)
    assert stats.finish_at is not None
    assert abs((stats.finish_at - datetime.fromisoformat(doc["end_time"])).total_seconds()) < 0.02 * real_remaining


def test_eta_counts_down_between_writes(corpus: Path) -> None:
    doc = orjson.loads((corpus / "llm_tii_json" / "run_20251113_095419.json").read_bytes())
    data, now = as_of_eval_1000(doc)
    agg = RunAggregator()
    agg.add_all(llm_tii_json.parse_document(data) or [])
    later = now.replace(minute=now.minute + 1) if now.minute < 59 else now
    first, second = agg.stats(now=now).eta_s, agg.stats(now=later).eta_s
    assert first is not None and second is not None
    assert second == pytest.approx(first - (later - now).total_seconds())


def test_stale_live_run_is_stalled_without_eta(corpus: Path) -> None:
    doc = orjson.loads((corpus / "llm_tii_json" / "run_20251113_095419.json").read_bytes())
    data, _ = as_of_eval_1000(doc)
    agg = RunAggregator()
    agg.add_all(llm_tii_json.parse_document(data) or [])
    # Logged every 10 iterations of ~11.9 s: 3 × 119 s is the stall threshold.
    stats = agg.stats(now=datetime(2025, 11, 14, 0, 0))
    assert stats.status == "stalled"
    assert stats.eta_s is None


@pytest.mark.parametrize(("last", "shown", "progress"), [(1500, "1,500/2,000", 75.0), (2500, "2,500", None)])
def test_past_the_default_target_progress_and_eta_are_unknown(
    tmp_path: Path, last: int, shown: str, progress: float | None
) -> None:
    """A log that states no target is counted to the default 2,000; once a
    running run is past it, that target says nothing: progress and ETA are
    null (SNAPSHOT.md: unknown is null, never 0), not 100 % and 0 s."""
    from trainwatch.ingest.source import LogSource

    log = tmp_path / "train.log"  # nanoGPT's console without max_iters: the default target
    log.write_text("".join(f"iter {k}: loss 3.0, time 100.00ms, mfu 10.00%\n" for k in range(0, last + 1, 10)))
    source = LogSource(log)
    source.refresh()
    stats = source.agg.stats(datetime.fromtimestamp(log.stat().st_mtime))
    assert (stats.status, stats.target, stats.target_source) == ("running", 2000, "default")
    assert stats.iter_of_target == shown and stats.progress_pct == progress
    assert (stats.eta_s is None) == (progress is None)


def test_a_user_target_below_the_current_step_keeps_a_live_run_running(tmp_path: Path) -> None:
    """METRICS.md, status: a target given by the user only moves progress and
    ETA. The demo's ``t`` → 3000 marked runs at 4,680 "finished" while they
    still logged; past it a live run stays running at over 100 %."""
    from trainwatch.core.options import RunOptions
    from trainwatch.ingest.source import LogSource

    log = tmp_path / "train.log"
    lines = "".join(f"iter {k}: loss 3.0, time 100.00ms, mfu 10.00%\n" for k in range(0, 4681, 10))
    log.write_text("max_iters = 5000\n" + lines)
    source = LogSource(log, RunOptions(target=3000))
    source.refresh()
    stats = source.agg.stats(datetime.fromtimestamp(log.stat().st_mtime))
    assert (stats.status, stats.iter, stats.target, stats.target_source) == ("running", 4680, 3000, "override")
    assert stats.progress_pct == pytest.approx(156.0)  # 4680 / 3000 = 1.56
    assert stats.eta_s is None and stats.finish_at is None  # the target is behind it: no time to it
    # The log's own target still finishes it: 5000 stated, 5000 reached.
    log.write_text(
        log.read_text() + "".join(f"iter {k}: loss 3.0, time 100.00ms, mfu 10.00%\n" for k in range(4690, 5001, 10))
    )
    source.refresh()
    assert source.agg.stats(datetime.fromtimestamp(log.stat().st_mtime)).status == "finished"
