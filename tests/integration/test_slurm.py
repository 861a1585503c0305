"""A real Slurm job: trainwatch shows its time limit, the verdict, and the TIMEOUT.

Needs the single-node Slurm of ``slurm_up.sh`` (``.ci/run`` starts it; on a
laptop without Slurm the test skips, in CI it fails instead). The job writes
a nanoGPT-style log at 2 iterations a second towards 1,000 iterations under
``sbatch --time=1``: the ETA (~8 min) lies far past the 1-minute limit, and
Slurm kills it 60-90 s after it starts (slurmctld checks limits every 30 s).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from livelogs import Latest

from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.core.slurmjob import limit_line
from trainwatch.ingest.watcher import Watcher
from trainwatch.system.slurm import SlurmWatch
from trainwatch.wiring import Relay

JOB = """#!/bin/bash
echo "tokens per iteration will be: 8,192"
echo "max_iters = 1000"
i=0
while true; do
    echo "iter $i: loss 9.0000, time 500.00ms, mfu 10.00%"
    i=$((i + 1))
    sleep 0.5
done
"""


def slurm_up() -> None:
    """Skip (fail in CI) with the reason when there is no Slurm to submit to."""
    ci = os.environ.get("CI") == "true"
    why = None
    if shutil.which("sbatch") is None:
        why = "Slurm is not installed (no sbatch); as root, bash tests/integration/slurm_up.sh sets one up"
    else:
        state = subprocess.run(["sinfo", "-h", "-o", "%a %t"], capture_output=True, text=True, timeout=20)
        if state.returncode != 0 or not any(w in state.stdout for w in ("idle", "mix", "alloc")):
            why = f"Slurm is installed but no node is ready (sinfo: {state.stdout.strip() or state.stderr.strip()})"
    if why is not None:
        if ci:
            pytest.fail(f"{why}: .ci/run's slurm_up.sh should have made it ready")
        pytest.skip(why)


def the_row(snapshot: Snapshot) -> RunRow | None:
    return snapshot.rows[0] if snapshot.rows else None


def job_state(snapshot: Snapshot) -> str | None:
    row = the_row(snapshot)
    return row.slurm.state if row is not None and row.slurm is not None else None


def snapshot_json(folder: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "trainwatch", "snapshot", str(folder), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(done.stdout)["runs"]
    return dict(run)


def test_a_jobs_limit_verdict_and_timeout(tmp_path: Path) -> None:
    slurm_up()
    folder = tmp_path / "job"
    folder.mkdir()
    script = folder / "train.sh"
    script.write_text(JOB)
    script.chmod(0o755)
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--time=1", "-J", "tw-test", "-D", str(folder), "-o", "slurm-%j.out", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    latest = Latest(timeout=40)
    watch = SlurmWatch(interval=2.0)  # 30 s in use; the test cannot wait that long twice
    relay = Relay(latest, slurm=watch)
    watcher = Watcher([folder], RunOptions(), Names(), relay, poll=0.5)
    relay.start()
    watcher.start()
    try:
        # Running: the limit, the end, and the verdict (the ETA lies far past the limit).
        snap = latest.wait(lambda s: job_state(s) == "RUNNING", "the running job")
        row = the_row(snap)
        assert row is not None and row.slurm is not None
        assert Path(row.path).name == f"slurm-{job_id}.out" and row.slurm.job_id == job_id
        assert row.slurm.time_limit_s == 60.0
        snap = latest.wait(lambda s: "✗" in line_of(s), "an ETA against the limit")
        line = line_of(snap)
        assert line.startswith("limit 1m 00s · ends ") and " after the limit ✗" in line
        assert any(w.startswith("the run will pass its Slurm time limit") for w in the_row(snap).stats.warnings)  # type: ignore[union-attr]

        run = snapshot_json(folder)  # the JSON contract, from the command line
        assert run["slurm"]["job_id"] == job_id and run["slurm"]["state"] == "RUNNING"
        assert run["slurm"]["time_limit_s"] == 60.0 and run["slurm"]["eta_beyond_limit_s"] > 60

        # Slurm kills it at the limit: the reason is shown.
        latest.timeout = 100
        snap = latest.wait(lambda s: job_state(s) == "TIMEOUT", "Slurm's TIMEOUT")
        row = the_row(snap)
        assert row is not None and row.slurm is not None and row.slurm.reason == "TimeLimit"
        assert f"Slurm ended job {job_id}: TIMEOUT (killed at its time limit)" in row.stats.warnings
        assert line_of(snap).startswith("TIMEOUT at ")
        run = snapshot_json(folder)
        assert (run["slurm"]["state"], run["slurm"]["reason"]) == ("TIMEOUT", "TimeLimit")
    finally:
        watcher.stop()
        relay.stop()
        subprocess.run(["scancel", job_id], capture_output=True, timeout=30)


def line_of(snapshot: Snapshot) -> str:
    row = the_row(snapshot)
    if row is None or row.slurm is None:
        return ""
    return limit_line(row.slurm, row.stats, snapshot.generated_at)
