"""A run's Slurm job: job ids, Slurm's output (recorded, tests/fixtures/slurm), the limit's verdict.

No Slurm is needed here: ``Slurm`` runs its commands through a function the
tests give, which answers with output recorded from a real slurmctld (the
fixtures' README says how each state came about). The real thing is
tests/integration/test_slurm.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.core.slurmjob import (
    SlurmJob,
    attach,
    beyond_limit_s,
    checkpoint_text,
    limit_line,
    will_pass_limit,
    work_at_risk,
)
from trainwatch.core.stats import RunStats
from trainwatch.ingest.source import LogSource
from trainwatch.outputs.contract import run_record
from trainwatch.system import slurm
from trainwatch.system.slurm import Slurm, SlurmWatch, job_id_from_environ, job_id_from_name
from trainwatch.system.slurm_output import job_from_fields, owns, parse_duration, parse_scontrol, parse_squeue

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"
T = datetime.fromisoformat


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def one_job(name: str) -> SlurmJob:
    (fields,) = parse_scontrol(fixture(name))
    return job_from_fields(fields)


# ---------------------------------------------------------------- job ids


@pytest.mark.parametrize(
    ("name", "job_id"),
    [
        ("slurm-123.out", "123"),  # sbatch's default
        ("slurm-123_4.out", "123_4"),  # an array task, slurm-%A_%a.out
        ("myname-3.out", "3"),  # %x-%j.out
        ("run_4.out", "4"),  # *_%j.out
        ("train_77.err", "77"),
        ("slurm-9.log", "9"),
        ("train.log", None),
        ("slurm-abc.out", None),
        ("model_7b.out", None),
        ("123.out", None),  # a bare number names nothing
        ("slurm-12.json", None),
    ],
)
def test_job_id_from_the_file_name(name: str, job_id: str | None) -> None:
    assert job_id_from_name(name) == job_id


def sleeper(job_id: str) -> subprocess.Popen[bytes]:
    """A process with ``SLURM_JOB_ID`` set, once its environment can be read
    (for a moment after exec, /proc/PID/environ reads empty)."""
    env = {**os.environ, "SLURM_JOB_ID": job_id}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    deadline = time.monotonic() + 10
    while not Path(f"/proc/{child.pid}/environ").read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)
    return child


def test_job_id_from_the_writers_environment() -> None:
    child = sleeper("4242")
    try:
        assert job_id_from_environ(child.pid) == "4242"
    finally:
        child.kill()
        child.wait()
    if "SLURM_JOB_ID" not in os.environ:
        assert job_id_from_environ(os.getpid()) is None
    assert job_id_from_environ(2**22 + 12345) is None  # no such process


# ------------------------------------------------------------ Slurm's words


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:01:00", 60.0),  # scontrol's TimeLimit for --time=1
        ("1:00", 60.0),  # squeue's %l for the same
        ("1-00:00:00", 86400.0),
        ("2-12", 216000.0),  # D-HH
        ("1:02:03", 3723.0),
        ("30", 1800.0),  # sbatch --time=30: minutes
        ("UNLIMITED", None),
        ("Partition_Limit", None),
        ("N/A", None),
        ("soon", None),
        ("1:-5", None),
    ],
)
def test_slurm_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_scontrol_running_job() -> None:
    # scontrol_running.txt: JobState=RUNNING Reason=None, TimeLimit=00:01:00,
    # StartTime=2026-12-06T06:50:09 EndTime=2026-12-06T06:51:09, NodeList=vm.
    (fields,) = parse_scontrol(fixture("scontrol_running.txt"))
    assert fields["StdOut"] == "/tmp/sl/slurm-2.out"
    assert fields["UserId"] == "root(0)"
    assert fields["AllocNode:Sid"] == "localhost:26494"  # keys with ':' and '/' read whole
    assert job_from_fields(fields) == SlurmJob(
        job_id="2",
        state="RUNNING",
        reason=None,
        time_limit_s=60.0,
        started_at=T("2026-12-06T06:50:09"),
        ends_at=T("2026-12-06T06:51:09"),
        nodes="vm",
        exit_code="0:0",
    )


def test_scontrol_one_line_form_reads_the_same() -> None:
    job = one_job("scontrol_running_oneliner.txt")
    assert (job.job_id, job.state, job.time_limit_s, job.nodes) == ("3", "RUNNING", 60.0, "vm")
    assert job.ends_at == T("2026-12-06T06:51:09")


@pytest.mark.parametrize(
    ("name", "state", "reason", "limit", "ended", "ends_at"),
    [
        ("scontrol_pending.txt", "PENDING", "BeginTime", None, False, None),  # its times are guesses: none
        ("scontrol_timeout.txt", "TIMEOUT", "TimeLimit", 60.0, True, "2026-12-06T06:51:24"),
        ("scontrol_cancelled.txt", "CANCELLED", None, 60.0, True, "2026-12-06T06:50:20"),
        ("scontrol_cancelled_pending.txt", "CANCELLED", "BeginTime", None, True, "2026-12-06T06:51:53"),
        ("scontrol_completed.txt", "COMPLETED", None, 300.0, True, "2026-12-06T06:50:20"),
        ("scontrol_node_fail.txt", "NODE_FAIL", "NodeDown", 300.0, True, "2026-12-06T06:51:56"),
        ("scontrol_oom_handmade.txt", "OUT_OF_MEMORY", "OutOfMemory", 86400.0, True, "2026-12-06T06:51:24"),
    ],
)
def test_scontrol_states(
    name: str, state: str, reason: str | None, limit: float | None, ended: bool, ends_at: str | None
) -> None:
    job = one_job(name)
    assert (job.state, job.reason, job.time_limit_s, job.ended) == (state, reason, limit, ended)
    assert job.ends_at == (T(ends_at) if ends_at else None)


def test_scontrol_several_jobs_and_nonsense() -> None:
    both = fixture("scontrol_running.txt") + "\n" + fixture("scontrol_pending.txt")
    assert [f["JobId"] for f in parse_scontrol(both)] == ["2", "4"]
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified\n") == []
    assert parse_scontrol("") == []


def test_squeue_states() -> None:
    # squeue_states.txt, column by column: %i|%T|%l|%S|%e|%N|%r|%u
    jobs = {j.job_id: j for j in parse_squeue(fixture("squeue_states.txt"))}
    assert {k: j.state for k, j in jobs.items()} == {
        "2": "TIMEOUT",
        "3": "CANCELLED",
        "4": "CANCELLED",
        "5": "COMPLETED",
        "6": "NODE_FAIL",
    }
    assert jobs["2"].reason == "TimeLimit" and jobs["2"].time_limit_s == 60.0
    assert jobs["2"].ends_at == T("2026-12-06T06:51:24")
    assert jobs["6"].reason == "NodeDown" and jobs["6"].time_limit_s == 300.0
    running = {j.job_id: j for j in parse_squeue(fixture("squeue_running_pending.txt"))}
    assert running["2"].state == "RUNNING" and running["2"].ends_at == T("2026-12-06T06:51:09")
    assert running["4"].state == "PENDING" and running["4"].time_limit_s is None and running["4"].ends_at is None
    assert parse_squeue("garbage\n|\n") == []


def test_a_log_is_the_jobs_when_slurm_says_so(tmp_path: Path) -> None:
    log = tmp_path / "slurm-2.out"
    log.write_text("x\n")
    fields = {"JobId": "2", "StdOut": str(log), "UserId": "nobody(65534)"}
    assert owns(fields, str(log))
    other = tmp_path / "run_2.out"
    other.write_text("x\n")
    assert owns({**fields, "UserId": f"me({os.stat(other).st_uid})"}, str(other))  # the job's user owns it
    assert not owns({**fields, "UserId": f"someone({os.stat(other).st_uid + 1})"}, str(other))
    # The job's user's file, but last written a day before the job began: not its log.
    later = (datetime.now() + timedelta(days=1)).isoformat(timespec="seconds")
    assert not owns({**fields, "UserId": f"me({os.stat(other).st_uid})", "StartTime": later}, str(other))
    assert owns({**fields, "StartTime": later}, str(log))  # its StdOut, whatever the clock says


# ----------------------------------------------------------------- watching


class Recorded:
    """Slurm's commands answered from recordings; every call noted."""

    def __init__(self) -> None:
        self.squeue = ""
        self.scontrol: dict[str, str] = {}
        self.calls: list[str] = []

    def __call__(self, argv: Sequence[str]) -> str | None:
        self.calls.append(argv[0])
        if argv[0] == "squeue":
            ids = set(argv[argv.index("-j") + 1].split(","))
            lines = [ln for ln in self.squeue.splitlines() if ln.split("|")[0] in ids]
            return "\n".join(lines) + "\n" if lines else None  # squeue exits 1 for only unknown ids
        return self.scontrol.get(argv[-1])


def nanogpt_log(path: Path, last: int, target: int = 1000) -> Path:
    lines = [f"iter {s}: loss {10 - s / 100:.4f}, time 500.00ms, mfu 10.00%\n" for s in range(0, last + 1, 10)]
    path.write_text(f"tokens per iteration will be: 8,192\nmax_iters = {target}\n" + "".join(lines))
    return path


def snapshot_of(*paths: Path, now: datetime) -> Snapshot:
    from trainwatch.ingest.publish import build

    sources = []
    for path in paths:
        source = LogSource(path, RunOptions())
        source.refresh()
        source.flush()
        sources.append(source)
    return build(sources, Names(), now)


def test_watch_finds_follows_and_stops_asking(tmp_path: Path) -> None:
    log = nanogpt_log(tmp_path / "slurm-2.out", 100)
    other = nanogpt_log(tmp_path / "exp_31337.out", 100)  # a number Slurm does not know
    plain = nanogpt_log(tmp_path / "train.log", 100)
    run = Recorded()
    run.squeue = fixture("squeue_running_pending.txt")
    run.scontrol["2"] = fixture("scontrol_running.txt").replace("/tmp/sl/slurm-2.out", str(log))
    watch = SlurmWatch(Slurm(run), enabled=True)
    snap = snapshot_of(log, other, plain, now=T("2026-12-06T06:50:40"))

    first = watch.annotate(snap)
    assert all(row.slurm is None for row in first.rows)  # annotate never waits for Slurm
    assert run.calls == []
    assert watch._resolve()  # what the thread does
    assert run.calls == ["squeue", "scontrol"]  # one squeue for both candidates, scontrol for the known one
    rows = {Path(r.path).name: r for r in watch.annotate(snap).rows}
    assert rows["slurm-2.out"].slurm is not None and rows["slurm-2.out"].slurm.state == "RUNNING"
    assert rows["exp_31337.out"].slurm is None and rows["train.log"].slurm is None
    again = watch.annotate(snap)
    assert {r.path: r for r in again.rows}[str(log)] is rows["slurm-2.out"]  # unchanged: the same row object

    # Slurm killed it: the next refresh says so, and then nothing more is asked.
    run.squeue = fixture("squeue_states.txt")
    assert watch._refresh()
    (job,) = [r.slurm for r in watch.annotate(snap).rows if r.slurm is not None]
    assert (job.state, job.reason) == ("TIMEOUT", "TimeLimit")
    calls = len(run.calls)
    assert not watch._refresh()
    assert len(run.calls) == calls


def test_watch_asks_scontrol_when_squeue_forgot(tmp_path: Path) -> None:
    log = nanogpt_log(tmp_path / "slurm-2.out", 100)
    run = Recorded()
    run.squeue = fixture("squeue_running_pending.txt")
    running = fixture("scontrol_running.txt").replace("/tmp/sl/slurm-2.out", str(log))
    run.scontrol["2"] = running
    watch = SlurmWatch(Slurm(run), enabled=True)
    snap = snapshot_of(log, now=T("2026-12-06T06:50:40"))
    watch.annotate(snap)
    watch._resolve()
    run.squeue = ""  # gone from the queue
    run.scontrol["2"] = fixture("scontrol_timeout.txt")
    assert watch._refresh()
    (row,) = watch.annotate(snap).rows
    assert row.slurm is not None and row.slurm.state == "TIMEOUT"
    assert "Slurm ended job 2: TIMEOUT (killed at its time limit)" in row.stats.warnings


def test_a_job_slurm_forgot_is_no_longer_shown(tmp_path: Path) -> None:
    log = nanogpt_log(tmp_path / "slurm-2.out", 100)
    run = Recorded()
    run.squeue = fixture("squeue_running_pending.txt")
    run.scontrol["2"] = fixture("scontrol_running.txt").replace("/tmp/sl/slurm-2.out", str(log))
    watch = SlurmWatch(Slurm(run), enabled=True)
    snap = snapshot_of(log, now=T("2026-12-06T06:50:40"))
    watch.annotate(snap)
    watch._resolve()
    run.squeue, run.scontrol = "", {}
    for _ in range(slurm.MAX_MISSES - 1):
        watch._refresh()
        assert watch.annotate(snap).rows[0].slurm is not None  # one miss may be a busy slurmctld
    watch._refresh()
    assert watch.annotate(snap).rows[0].slurm is None


def test_no_slurm_means_nothing_asked_nothing_changed(tmp_path: Path) -> None:
    log = nanogpt_log(tmp_path / "slurm-2.out", 100)
    run = Recorded()
    watch = SlurmWatch(Slurm(run), enabled=False)
    snap = snapshot_of(log, now=T("2026-12-06T06:50:40"))
    assert watch.annotate(snap) is snap
    assert watch.lookup(snap) is snap
    watch.start()
    watch.stop()
    assert run.calls == []


def test_missing_commands_fail_soft() -> None:
    assert slurm.run_command(["/nonexistent/squeue", "-h"]) is None
    assert slurm.run_command([sys.executable, "-c", "raise SystemExit(1)"]) is None
    failing = Slurm(lambda argv: None)  # slurmctld down, timed out, or not installed
    assert failing.queue(["1", "2"]) == {} and failing.show("1") is None


def test_the_thread_asks_on_its_own_and_reports_news(tmp_path: Path) -> None:
    log = nanogpt_log(tmp_path / "slurm-2.out", 100)
    run = Recorded()
    run.squeue = fixture("squeue_running_pending.txt")
    run.scontrol["2"] = fixture("scontrol_running.txt").replace("/tmp/sl/slurm-2.out", str(log))
    news = threading.Event()
    watch = SlurmWatch(Slurm(run), enabled=True, interval=0.05, on_news=news.set)
    snap = snapshot_of(log, now=T("2026-12-06T06:50:40"))
    watch.start()
    try:
        watch.annotate(snap)
        assert news.wait(5)
        news.clear()
        run.squeue = fixture("squeue_states.txt")
        assert news.wait(5)  # the refresh found TIMEOUT
        (row,) = watch.annotate(snap).rows
        assert row.slurm is not None and row.slurm.state == "TIMEOUT"
    finally:
        watch.stop()


def test_the_job_file_among_a_runs_files(tmp_path: Path) -> None:
    trainer = nanogpt_log(tmp_path / "train.log", 100)  # the run's lead file names no job
    out = tmp_path / "slurm-2.out"
    out.write_text("starting\n")
    run = Recorded()
    run.squeue = fixture("squeue_running_pending.txt")
    run.scontrol["2"] = fixture("scontrol_running.txt").replace("/tmp/sl/slurm-2.out", str(out))
    watch = SlurmWatch(Slurm(run), enabled=True)
    (row,) = snapshot_of(trainer, now=T("2026-12-06T06:50:40")).rows
    snap = Snapshot(T("2026-12-06T06:50:40"), (replace(row, sources=(str(trainer), str(out))),))
    watch.annotate(snap)
    assert watch._resolve()
    (found,) = watch.annotate(snap).rows
    assert found.slurm is not None and found.slurm.job_id == "2"


def test_writer_environment_wins_over_the_name(tmp_path: Path) -> None:
    log = nanogpt_log(tmp_path / "train.log", 100)  # no job id in the name
    run = Recorded()
    run.squeue = fixture("squeue_running_pending.txt")
    run.scontrol["3"] = fixture("scontrol_running_oneliner.txt")  # StdOut elsewhere: the environment is enough
    child = sleeper("3")
    try:
        watch = SlurmWatch(Slurm(run), enabled=True, pid_of=lambda row: child.pid)
        snap = snapshot_of(log, now=T("2026-12-06T06:50:40"))
        watch.annotate(snap)
        watch._resolve()
        (row,) = watch.annotate(snap).rows
        assert row.slurm is not None and row.slurm.job_id == "3"
    finally:
        child.kill()
        child.wait()


# ----------------------------------------------------------- the verdict


def stats(tmp_path: Path, now: datetime, **changes: object) -> RunStats:
    (row,) = snapshot_of(nanogpt_log(tmp_path / "slurm-2.out", 100), now=now).rows
    return replace(row.stats, **changes)  # type: ignore[arg-type]


RUNNING = SlurmJob(
    "2", "RUNNING", None, 86400.0, T("2026-12-05T03:10:00"), T("2026-12-06T03:10:00"), "gpu[01-04]", "0:0"
)
NOW = T("2026-12-05T20:00:00")


def test_finishing_after_the_limit(tmp_path: Path) -> None:
    s = stats(
        tmp_path,
        NOW,
        status="running",
        eta_s=36000.0,
        finish_at=T("2026-12-06T05:50:00"),
        checkpoint_at=(500, 900),
        iter=1000,
        rate_s=24.0,
    )
    assert beyond_limit_s(RUNNING, s) == 2 * 3600 + 40 * 60
    assert will_pass_limit(RUNNING, s)
    assert limit_line(RUNNING, s, NOW) == "limit 1d 00h · ends Sun 03:10 · finishes 2h 40m after the limit ✗"
    assert work_at_risk(s) == (900, 2400.0)  # 100 iterations at 24 s
    assert checkpoint_text(s) == "@ 900 · 40m 00s of training since"
    row = attach(RunRow("run", "/x/slurm-2.out", "nanogpt_stdout", s), RUNNING)
    warning = row.stats.warnings[-1]
    assert warning.startswith("the run will pass its Slurm time limit: it finishes 2h 40m after job 2 is killed")
    assert "last checkpoint at iteration 900, 40m 00s of training ago" in warning
    record = run_record(row)["slurm"]
    assert record["job_id"] == "2" and record["state"] == "RUNNING" and record["time_limit_s"] == 86400.0
    assert record["ends_at"] == "2026-12-06T03:10:00" and record["eta_beyond_limit_s"] == 9600.0
    assert record["checkpoint_iter"] == 900 and record["since_checkpoint_s"] == 2400.0


def test_finishing_in_time_and_too_close_to_call(tmp_path: Path) -> None:
    s = stats(tmp_path, NOW, status="running", eta_s=3600.0, finish_at=T("2026-12-05T21:00:00"), checkpoint_at=())
    assert limit_line(RUNNING, s, NOW) == "limit 1d 00h · ends Sun 03:10 · finishes 6h 10m before the limit ✓"
    assert not will_pass_limit(RUNNING, s)
    assert checkpoint_text(s) == "none logged"
    row = attach(RunRow("run", "/x", "nanogpt_stdout", s), RUNNING)
    assert row.stats.warnings == s.warnings  # nothing to flag
    close = replace(s, finish_at=T("2026-12-06T03:10:30"))
    assert limit_line(RUNNING, close, NOW).endswith("finishes at about the limit ?")
    stalled = replace(s, status="stalled", eta_s=None)
    assert beyond_limit_s(RUNNING, stalled) is None and limit_line(RUNNING, stalled, NOW).endswith("ends Sun 03:10")


def test_pending_and_ended_jobs(tmp_path: Path) -> None:
    s = stats(tmp_path, NOW, status="stalled")
    assert limit_line(one_job("scontrol_pending.txt"), s, NOW) == "job 4 pending (BeginTime) · no time limit"
    now = T("2026-12-06T07:00:00")
    timeout = one_job("scontrol_timeout.txt")
    assert limit_line(timeout, s, now) == "TIMEOUT at 06:51 · killed at its time limit · limit 1m 00s"
    oom = attach(RunRow("run", "/x", "f", s), one_job("scontrol_oom_handmade.txt"))
    assert oom.stats.status == "exited" and oom.stats.eta_s is None  # the log said neither finished nor failed
    assert oom.stats.warnings[-1] == (
        "Slurm ended job 7: OUT_OF_MEMORY (killed for using more memory than it asked for (OOM))"
    )
    node = attach(RunRow("run", "/x", "f", s), one_job("scontrol_node_fail.txt"))
    assert node.stats.warnings[-1] == "Slurm ended job 6: NODE_FAIL (a node of the job failed)"
    cancelled = attach(RunRow("run", "/x", "f", s), one_job("scontrol_cancelled.txt"))
    assert "CANCELLED" in cancelled.stats.warnings[-1]
    done = attach(RunRow("run", "/x", "f", s), one_job("scontrol_completed.txt"))
    assert done.stats.warnings == s.warnings  # a job that ended normally is no caveat
    assert done.stats.status == "exited"  # ... but the log did not say it finished
    failed = attach(RunRow("run", "/x", "f", replace(s, status="failed")), one_job("scontrol_timeout.txt"))
    assert failed.stats.status == "failed"  # the log's own word stands


def test_json_without_slurm_is_null(tmp_path: Path) -> None:
    s = stats(tmp_path, NOW)
    assert run_record(RunRow("run", "/x", "f", s))["slurm"] is None


def test_detail_view_line(tmp_path: Path) -> None:
    from trainwatch.tui.detail import slurm_facts

    s = stats(tmp_path, NOW, status="running", eta_s=36000.0, finish_at=T("2026-12-06T05:50:00"))
    row = RunRow("run", "/x", "f", s, slurm=RUNNING)
    (label, line), (ckpt, _) = slurm_facts(row, NOW)
    assert label == "Slurm 2" and ckpt == "checkpoint"
    assert str(line) == "limit 1d 00h · ends Sun 03:10 · finishes 2h 40m after the limit ✗ ⚑"
    assert slurm_facts(RunRow("run", "/x", "f", s), NOW) == []


def test_the_writer_pid_comes_from_the_writer_lookup(tmp_path: Path) -> None:
    from trainwatch.core.box import Writer

    s = stats(tmp_path, NOW)
    assert slurm.writer_pid(RunRow("run", "/x", "f", s)) is None
    writer = Writer(4321, True, "python train.py", None, "holds the log open for writing")
    assert slurm.writer_pid(RunRow("run", "/x", "f", replace(s, process=writer))) == 4321
