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
