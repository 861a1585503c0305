"""What the machine says about a run (``core.box``) in its figures and exports: pure, no process.

``exited`` (METRICS.md): the writer is gone and the log shows neither a
finish nor an error. Everything the log says outranks it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.box import BoxFacts, Gpu, Writer
from trainwatch.core.records import Eval, Iteration, Outcome, RunInfo
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.outputs import export
from trainwatch.outputs.contract import run_record
from trainwatch.outputs.prometheus import SnapshotCollector

NOW = datetime(2025, 11, 14, 12, 0)
STARTED = NOW - timedelta(hours=1)
WRITER = Writer(
    pid=4242,
    alive=True,
    cmdline="torchrun --nproc_per_node 2 train.py",
    started_at=STARTED,
    how="holds the log open for writing",
    pids=(4242, 4243, 4244),
    user="me",
    cpu_pct=190.5,
    rss_bytes=3 * 2**30,
)
GONE = BoxFacts(writer=Writer(4242, False, "python train.py", STARTED, "holds the log open for writing"), gone=True)
GPU = Gpu(0, "NVIDIA A100-SXM4-80GB", 97.0, 71_000.0, 81_920.0, 380.5, 400.0, 63.0, 35_000.0, ((1.0, 97.0),))


def run(*extra: object, last_at: datetime = NOW - timedelta(seconds=5)) -> RunAggregator:
    """A nanoGPT-like run at iteration 40 of 100, last written ``last_at``."""
    agg = RunAggregator()
    agg.add(RunInfo(name="gpt", target=100))
    for i in range(0, 50, 10):
        agg.add(Iteration(iter=i, loss=3.0 - i / 100, time_ms=1000.0, mfu_pct=40.0))
    for record in extra:
        agg.add(record)  # type: ignore[arg-type]
    agg.observe(last_at - timedelta(seconds=40))
    agg.observe(last_at)
    return agg


def test_a_gone_writer_makes_a_live_run_exited() -> None:
    stats = run().stats(NOW, GONE)
    assert stats.status == "exited"
    assert stats.eta_s is None and stats.finish_at is None
    assert stats.process is not None and not stats.process.alive
    assert stats.wall_elapsed_s == run().stats(NOW - timedelta(seconds=5)).wall_elapsed_s  # stopped at its last line


def test_a_stalled_run_whose_writer_went_is_exited() -> None:
    assert run(last_at=NOW - timedelta(hours=2)).stats(NOW).status == "stalled"
    assert run(last_at=NOW - timedelta(hours=2)).stats(NOW, GONE).status == "exited"


def test_what_the_log_says_outranks_exited() -> None:
    assert run(Outcome("finished", "Training completed")).stats(NOW, GONE).status == "finished"
    assert run(Outcome("failed", "CUDA out of memory")).stats(NOW, GONE).status == "failed"
    assert run(Iteration(iter=50, loss=float("nan"), time_ms=1000.0)).stats(NOW, GONE).status == "diverged"
    reached = RunAggregator()
    reached.add(RunInfo(name="gpt", target=20))
    for i in range(0, 30, 10):
        reached.add(Iteration(iter=i, loss=3.0, time_ms=1000.0))
    assert reached.stats(NOW, GONE).status == "finished"  # reached the target it stated


def test_an_alive_writer_changes_no_status() -> None:
    alive = BoxFacts(writer=WRITER)
    assert run().stats(NOW, alive).status == "running"
    assert run(last_at=NOW - timedelta(hours=2)).stats(NOW, alive).status == "stalled"  # alive but silent
    assert run().stats(NOW, BoxFacts(hidden=True)).process_hidden


def test_the_json_contract_carries_process_and_gpus() -> None:
    stats = run(Eval(iter=40, val_loss=2.9)).stats(NOW, BoxFacts(writer=WRITER, gpus=(GPU,)))
    record = run_record(RunRow("gpt", "/runs/a.log", "nanogpt_stdout", stats))
    assert record["process"] == {
        "pid": 4242,
        "alive": True,
        "cmdline": "torchrun --nproc_per_node 2 train.py",
        "started_at": "2025-11-14T11:00:00",
        "pids": [4242, 4243, 4244],
        "user": "me",
        "how": "holds the log open for writing",
        "cpu_pct": 190.5,
        "rss_mib": 3072.0,
    }
    assert record["gpus"] == [
        {
            "index": 0,
            "name": "NVIDIA A100-SXM4-80GB",
            "util_pct": 97.0,
            "mem_used_mib": 71000.0,
            "mem_total_mib": 81920.0,
            "power_w": 380.5,
            "power_limit_w": 400.0,
            "temp_c": 63.0,
            "run_mem_mib": 35000.0,
        }
    ]
    plain = run_record(RunRow("gpt", "/runs/a.log", "nanogpt_stdout", run().stats(NOW)))
    assert plain["process"] is None and plain["gpus"] == []  # unknown: null, and no GPUs
    json.dumps(record)


def _snapshot(facts: BoxFacts | None) -> Snapshot:
    return Snapshot(NOW, (RunRow("gpt", "/runs/a.log", "nanogpt_stdout", run().stats(NOW, facts)),))


def test_csv_has_a_column_per_process_and_gpu_figure() -> None:
    second = Gpu(1, "NVIDIA A100-SXM4-80GB", 95.0, 70_000.0, 81_920.0, 370.0, None, None)
    two = BoxFacts(writer=WRITER, gpus=(GPU, second))
    (row,) = csv.DictReader(io.StringIO(export.render(_snapshot(two), "csv")))
    assert row["process_pid"] == "4242" and row["process_alive"] == "True"
    assert row["gpu_util_pct"] == "97.0 | 95.0" and row["gpu_index"] == "0 | 1"
    (row,) = csv.DictReader(io.StringIO(export.render(_snapshot(None), "csv")))
    assert row["process_pid"] == "" and row["gpu_util_pct"] == ""


def _scrape(snapshot: Snapshot) -> dict[str, list[tuple[dict[str, str], float]]]:
    collector = SnapshotCollector(hostname="box")
    collector.publish(snapshot)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return {
        f.name: [(s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(generate_latest(registry).decode())
    }


def test_prometheus_writer_and_gpu_gauges() -> None:
    metrics = _scrape(_snapshot(BoxFacts(writer=WRITER, gpus=(GPU,))))
    assert [v for _, v in metrics["trainwatch_writer_alive"]] == [1.0]
    assert [v for _, v in metrics["trainwatch_writer_cpu_ratio"]] == [1.905]
    ((labels, util),) = metrics["trainwatch_gpu_utilization_ratio"]
    assert util == 0.97 and labels["gpu"] == "0" and labels["gpu_name"] == "NVIDIA A100-SXM4-80GB"
    assert labels["path"] == "/runs/a.log"
    assert [v for _, v in metrics["trainwatch_gpu_memory_used_bytes"]] == [71_000 * 2**20]
    assert [v for _, v in metrics["trainwatch_gpu_power_watts"]] == [380.5]
    gone = _scrape(_snapshot(GONE))
    assert [v for _, v in gone["trainwatch_writer_alive"]] == [0.0]
    status = {labels["status"]: v for labels, v in gone["trainwatch_run_status"]}
    assert status["exited"] == 1.0 and status["running"] == 0.0
    assert "trainwatch_gpu_utilization_ratio" not in gone  # no GPUs: no family at all
    nothing = _scrape(_snapshot(None))
    assert nothing.get("trainwatch_writer_alive", []) == []  # no writer known: no sample, not 0


def test_a_jobs_files_share_the_writer_of_the_one_it_holds() -> None:
    """A job's files merged into one run (``core.merge``): the writer and its
    GPUs come from the file a process holds (the console log), whichever file
    leads the progress; its death makes the run exited unless another file of
    the run is still being written."""
    from trainwatch.core.merge import merge

    state = run(Iteration(iter=60, loss=2.0, time_ms=1000.0)).stats(NOW)  # a checkpoint state ahead of the console
    alive = run().stats(NOW, BoxFacts(writer=WRITER, gpus=(GPU,)))
    merged = merge([("out/checkpoint-60/trainer_state.json", state), ("train.log", alive)], NOW)
    assert merged.iter == 60 and merged.process == WRITER and merged.gpus == (GPU,)
    assert merged.status == "running"
    gone = run().stats(NOW, GONE)
    assert gone.status == "exited"
    merged = merge([("out/checkpoint-60/trainer_state.json", state), ("train.log", gone)], NOW)
    assert merged.status == "exited" and merged.process is not None and not merged.process.alive
