"""ETA quality on the seed runs (METRICS.md: "ETA quality is measurable").

For each run, rebuild the document as it stood at the eval of iteration 1000:
iterations up to 1000, evals up to 1000, no checkpoint written after that
moment, no end_time. With "now" = that eval's logged timestamp, the predicted
remaining time must be within 2 % of the real one (end_time − now).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.stats import RunStats
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


def _with_hang(doc: dict, at: int, seconds: float) -> dict:
    """``doc`` as if iteration ``at`` had hung for ``seconds`` (a stuck data
    loader, a dead node that came back): that step's time_ms holds the stall,
    and everything logged after it happens that much later."""
    from datetime import timedelta

    shift = timedelta(seconds=seconds)

    def later(stamp: str) -> str:
        return (datetime.fromisoformat(stamp) + shift).isoformat()

    hung = dict(doc)
    hung["training_iterations"] = [
        {**e, "time_ms": e["time_ms"] + seconds * 1000} if e["iter"] == at else e for e in doc["training_iterations"]
    ]
    for key in ("eval_steps", "checkpoints"):
        hung[key] = [{**e, "timestamp": later(e["timestamp"])} if e["iter"] > at else e for e in doc[key]]
    hung["end_time"] = later(doc["end_time"])
    return hung


def _eta_at_eval_1000(doc: dict) -> tuple[RunStats, float]:
    data, now = as_of_eval_1000(doc)
    agg = RunAggregator()
    agg.add_all(llm_tii_json.parse_document(data) or [])
    return agg.stats(now=now), (datetime.fromisoformat(doc["end_time"]) - now).total_seconds()


def test_a_three_hour_hang_leaves_the_eta_and_the_pace_alone(corpus: Path) -> None:
    """METRICS.md, hang and recent rate. Qwen3's log with a 3-hour hang inside
    iteration 900: the ETA made at the eval of 1000 moved from 28,671 s to
    125,587 s (the hung step's time stood for all 10 steps since 890 in the
    replay of the timeline, and the countdown's gap was not clamped)."""
    doc = orjson.loads((corpus / "llm_tii_json" / "run_20251113_225009.json").read_bytes())
    plain, remaining = _eta_at_eval_1000(doc)
    hung, remaining_hung = _eta_at_eval_1000(_with_hang(doc, 900, 3 * 3600))
    assert remaining_hung == remaining  # the hang is over by then: the rest takes as long
    assert plain.eta_s is not None and hung.eta_s is not None
    assert abs(hung.eta_s - plain.eta_s) / plain.eta_s < 0.03, (hung.eta_s, plain.eta_s)
    assert abs(hung.eta_s - remaining) / remaining < 0.03
    # grep "\"iter\": 900," -A2: "time_ms": 28230.67... + 10,800,000 ms = 10,828.23 s
    ((step, seconds),) = hung.hangs
    assert step == 900 and seconds == pytest.approx(10828.23, abs=0.01)
    assert "hung 3h 00m at iteration 900" in hung.events
    assert plain.hangs == ()
    # s/iter, tokens/h and the whole-run training time do not see it either.
    assert hung.mean_iter_s == pytest.approx(plain.mean_iter_s, rel=1e-3)
    assert hung.tokens_per_hour == pytest.approx(plain.tokens_per_hour, rel=1e-3)
    assert hung.train_time_s == pytest.approx(plain.train_time_s, rel=1e-3)
    # ... while the seed's logged sum keeps what was logged, as its table did.
    assert hung.train_time_logged_s == pytest.approx(plain.train_time_logged_s + 10800)  # type: ignore[operator]


def test_a_now_before_the_files_mtime_adds_nothing(tmp_path: Path) -> None:
    """Where the ETA counts down from the file's mtime (a log without
    timestamps), ``--now`` before that mtime (a plain copy of an old log)
    added the gap: LLaMA-Factory copies got ETAs of 700 days. Now the
    countdown is clamped at 0."""
    from trainwatch.cli import main

    log = tmp_path / "trainer_log.jsonl"
    lines = [
        f'{{"current_steps": {k}, "total_steps": 100, "loss": 2.0, "elapsed_time": "0:00:{k:02d}", '
        f'"remaining_time": "0:00:00"}}'
        for k in range(10, 60, 10)
    ]
    log.write_text("\n".join(lines) + "\n")  # steps 10-50 at 1 s a step (10 steps per 10 s)
    out = tmp_path / "snap.json"
    assert main(["snapshot", str(log), "-f", "json", "-o", str(out), "--now", "2024-01-01T00:00:00"]) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert run["iter"] == 50 and run["mean_iter_s"] == pytest.approx(1.0)
    assert run["eta_s"] == pytest.approx(50.0)  # 50 steps left at 1 s; not 50 s + (mtime − now)


def test_validation_after_the_last_iteration_is_not_due() -> None:
    """Megatron validates after a step is logged (eval_timing "next"): the pass
    at the last iteration comes after it, so the time to reach the target
    does not hold it (it was charged: +1-2 % at half way)."""
    from trainwatch.core.records import Eval, Iteration, RunInfo

    agg = RunAggregator()
    agg.add(RunInfo(target=500, eval_interval=100, eval_timing="next", start_time=datetime(2026, 1, 1)))
    for step in range(1, 251):
        if step == 101:
            agg.add(Eval(iter=100, val_loss=2.0))
        agg.add(Iteration(iter=step, loss=2.0, time_ms=61_000.0 if step in (101, 201) else 1000.0))
        if step == 200:
            agg.add(Eval(iter=200, val_loss=2.0))
    stats = agg.stats(datetime(2026, 1, 1) + timedelta(seconds=250 + 120))
    # By hand: 250 steps left at 1 s; evals due at 300 and 400 (not 500), each
    # 60 s over a step (steps 101 and 201 took 61 s): 250 + 2 × 60 = 370 s.
    assert stats.eta_s == pytest.approx(370.0)
    assert ("ETA", "2 eval(s) still due at 60 s each (as timed so far)") in stats.provenance


def test_evals_timed_apart_from_the_steps_are_priced_as_timed(tmp_path: Path) -> None:
    """ms-swift (and LLaMA-Factory) time nothing but the elapsed time since the
    start: an eval logged after its step's train log took the difference, and
    it belongs to no step. The ETA prices the evals still due at that (it
    priced them at 0 s: ms-swift's run was 29 % short at half way)."""
    from trainwatch.ingest.source import LogSource

    def line(step: int, elapsed: int, eval_: bool = False) -> str:
        kind = '"eval_loss": 1.5' if eval_ else '"loss": 2.0'
        return f'{{{kind}, "global_step/max_steps": "{step}/40", "elapsed_time": "{elapsed}s"}}\n'

    log = tmp_path / "logging.jsonl"
    log.write_text(
        line(5, 10)
        + line(10, 20)
        + line(10, 50, eval_=True)  # a 30 s eval after step 10
        + line(15, 60)
        + line(20, 70)
        + line(20, 100, eval_=True)
        + line(25, 110)
    )
    source = LogSource(log)
    source.refresh()
    stats = source.agg.stats(datetime.fromtimestamp(log.stat().st_mtime))
    assert (source.format, stats.iter, stats.rate_s) == ("swift_jsonl", 25, pytest.approx(2.0))
    # By hand: 15 steps left at 2 s (10 s per 5 steps) = 30 s, and the evals at
    # 30 and 40 (every 10, as the two logged ones) at 30 s each: 90 s.
    assert stats.eta_s == pytest.approx(90.0)
    assert ("ETA", "2 eval(s) still due at 30 s each (as timed so far)") in stats.provenance
