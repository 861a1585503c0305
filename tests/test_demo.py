"""``trainwatch demo``: the simulator writes four runs that trainwatch reads."""

from __future__ import annotations

import json
import sys
import threading
import types
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from trainwatch import cli, parsers
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import Snapshot
from trainwatch.demo import PLANS, Simulator, run_demo, schedule
from trainwatch.ingest.watcher import Watcher

pytestmark = pytest.mark.skipif(
    parsers.by_format("nanogpt_stdout") is None, reason="the nanoGPT console parser is not registered"
)

EXPECTED = {
    "llama-350m-demo": "finished",
    "qwen3-600m-demo": "stalled",  # stuck for real minutes; --now below is past that
    "gpt2-124m-demo": "finished",
    "gpt2-350m-lr3e-3": "diverged",
}


def snapshot_json(folder: Path, capsys: pytest.CaptureFixture[str], now: datetime) -> dict[str, str]:
    capsys.readouterr()
    assert cli.main(["snapshot", str(folder), "-f", "json", "--now", now.isoformat(timespec="seconds")]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    return {run["run"]: run["status"] for run in runs}


def test_headless_demo_writes_four_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo(tmp_path, speed=50_000, headless=True, duration=2.0) == 0
    assert str(tmp_path) in capsys.readouterr().out
    files = sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(EXPECTED)
    assert snapshot_json(tmp_path, capsys, datetime.now() + timedelta(hours=3)) == EXPECTED
    # Right now the stalled run is still "running": it stopped writing less than a minute ago.
    assert snapshot_json(tmp_path, capsys, datetime.now())["qwen3-600m-demo"] == "running"


def test_json_rewrites_are_in_place(tmp_path: Path) -> None:
    simulator = Simulator(tmp_path, speed=1.0)
    simulator.step()
    doc = next(tmp_path.glob("llama-350m-demo/run_*.json"))
    inode = doc.stat().st_ino
    first = json.loads(doc.read_text())
    simulator.started -= 60.0  # a simulated minute later
    simulator.step()
    second = json.loads(doc.read_text())
    assert doc.stat().st_ino == inode  # rewritten with open("w"), as the real logger does
    assert len(second["training_iterations"]) > len(first["training_iterations"])
    assert first["config"]["out_dir"] == "out-llama-350m-demo"
    mfu = second["training_iterations"][-1]["mfu"]
    assert mfu["hardware_peak_tflops"] == 312.0 and mfu["tokens_per_sec"] > 0
    assert "end_time" not in second
    log = (tmp_path / "gpt2-124m-demo" / "train.log").read_text()
    assert "tokens per iteration will be: 491,520" in log and "max_iters = 5000" in log


def test_schedule_is_realistic() -> None:
    for plan in PLANS:
        events = schedule(plan, speed=60.0)
        iters = [e for e in events if e.kind == "iter"]
        assert [e.t for e in events] == sorted(e.t for e in events)
        healthy = [e.loss for e in iters if plan.diverge_at is None or e.step < plan.diverge_at - 100]
        assert healthy[0] > 2 * healthy[-1]  # the loss goes down (until it diverges)
        evals = [e for e in iters if e.step % plan.eval_interval == 0 and e.step > 0]
        ordinary = sorted(e.ms for e in iters if e.step % plan.eval_interval)
        assert all(e.ms > 3 * ordinary[len(ordinary) // 2] for e in evals)  # evals pause the run
    diverging = next(p for p in PLANS if p.diverge_at is not None)
    assert any(e.loss != e.loss for e in schedule(diverging, 60.0))


def test_live_watcher_follows_the_demo(tmp_path: Path) -> None:
    snapshots: list[Snapshot] = []
    done = threading.Event()

    def publish(snapshot: Snapshot) -> None:
        snapshots.append(snapshot)
        statuses = {row.name: row.stats.status for row in snapshot.rows}
        if statuses.get("gpt2-124m-demo") == "finished" and statuses.get("llama-350m-demo") == "finished":
            done.set()

    watcher = Watcher([tmp_path], RunOptions(), Names(), publish)
    watcher.start()
    try:
        run_demo(tmp_path, speed=50_000, headless=True, duration=1.5)
        assert done.wait(10)
    finally:
        watcher.stop()
    assert watcher.problems == []
    last: dict[str, int] = {}
    for snapshot in snapshots:  # JSON rewrites caught mid-write never take a run backwards
        for row in snapshot.rows:
            assert (row.stats.iter or 0) >= last.get(row.key, 0)
            last[row.key] = row.stats.iter or 0
    assert {row.name for row in snapshots[-1].rows} == set(EXPECTED)


def test_app_exit_stops_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[Path]] = []

    def run_app(paths: list[Path], **kwargs: object) -> int:
        seen.append(paths)
        return 0  # the user quit at once

    fake = types.ModuleType("trainwatch.tui.app")
    fake.run_app = run_app  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "trainwatch.tui.app", fake)
    assert run_demo(tmp_path, speed=60.0, headless=False, duration=None) == 0
    assert seen == [[tmp_path]]
    assert not any(t.name == "demo-writer" and t.is_alive() for t in threading.enumerate())


def _demo_stats(plan: object, upto: int, now: datetime, monkeypatch: pytest.MonkeyPatch) -> object:
    """The stats of the demo's run of ``plan`` as its document stood right after
    it logged iteration ``upto``, seen at that moment (``now``)."""
    from trainwatch import demo
    from trainwatch.core.aggregate import RunAggregator
    from trainwatch.parsers import llm_tii_json

    events = schedule(plan, speed=60.0)  # type: ignore[arg-type]
    end = next(i for i, e in enumerate(events) if e.kind == "iter" and e.step == upto)
    run = demo.Run(plan, Path("run.json"), events, start=0.0)  # type: ignore[arg-type]
    run.done = events[: end + 1]

    class Fixed(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Fixed:  # type: ignore[override]
            return cls.fromtimestamp(now.timestamp())

    monkeypatch.setattr(demo, "datetime", Fixed)
    doc = demo._document(run, events[end].t)
    agg = RunAggregator()
    agg.add_all(llm_tii_json.parse_document(json.dumps(doc).encode()) or [])
    return agg.stats(now=now)


@pytest.mark.parametrize("upto", [2610, 3000, 3500])
def test_the_demo_stall_moves_nothing_but_its_own_event(monkeypatch: pytest.MonkeyPatch, upto: int) -> None:
    """qwen3-600m-demo hangs inside iteration 2600 for 180 real s × speed 60 =
    10,800 s. That step's time_ms (10,803,308 ms) was averaged in: s/iter went
    3.49 → 44.55, tokens/h 135M → 10.6M and the ETA showed 1d 03h with six
    minutes left. Now the same run without the stall gives the same figures."""
    from dataclasses import replace

    plan = next(p for p in PLANS if p.slug == "qwen3-600m-demo")
    now = datetime(2026, 1, 5, 12, 0)
    stalled = _demo_stats(plan, upto, now, monkeypatch)
    calm = _demo_stats(replace(plan, stall_at=None), upto, now, monkeypatch)
    for figure in ("mean_iter_s", "tokens_per_hour", "rate_s", "eta_s", "train_time_s"):
        assert getattr(stalled, figure) == pytest.approx(getattr(calm, figure), rel=0.005), figure
    # By hand: a step is 131,072 tokens × 4.3046 GFLOP/token ÷ (2 GPUs × 310 TFLOPS × 0.28)
    # = 3.2501 s (±1.5 % noise); the warm-up step 0 took 64.47 s (45 s + 6 steps).
    # Logged every 10: upto/10 + 1 entries, less the evals at 1000, 2000, 3000
    # and the hang; s/iter is their mean, warm-up included (as the seed's table).
    paced = upto // 10 + 1 - upto // 1000 - 1
    assert stalled.mean_iter_s == pytest.approx((64.47 + (paced - 1) * 3.2501) / paced, rel=0.01)  # type: ignore[attr-defined]
    ((step, seconds),) = stalled.hangs  # type: ignore[attr-defined]
    assert step == 2600 and 10_800 < seconds < 10_810
    assert calm.hangs == ()  # type: ignore[attr-defined]
