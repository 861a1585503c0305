"""The writer of a log, found among real processes started the ways runs are started.

Each test launches a real training-console script (``helpers.SCRIPT``)
through ``sh -c`` in its own session and ends it by PID. The expected
writer is checked against what the test itself knows: the PID that ``$!``
or the session reports, the command it ran.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from trainwatch.core import metrics
from trainwatch.core.box import BoxFacts
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import Snapshot
from trainwatch.ingest.source import LogSource
from trainwatch.ingest.watcher import Watcher
from trainwatch.system import openfiles, processes
from trainwatch.system.exits import ExitWaiter
from trainwatch.system.probe import BoxWatch

from .helpers import launched, lines, python, script, session, wait_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and pidfds are Linux's")


def _look(*logs: Path) -> dict[str, object]:
    probe = BoxWatch(nvml=None)
    try:
        paths = [str(p) for p in logs]
        return dict(probe.look(paths, paths))
    finally:
        probe.close()


def _pid_of(cmd_part: str, sid: int) -> int:
    """The PID of the process of session ``sid`` whose command line holds ``cmd_part``."""
    for pid in session(sid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if cmd_part in cmdline and not cmdline.startswith("sh "):
            return pid
    raise AssertionError(f"no {cmd_part!r} in session {sid}")


def test_a_redirected_python_is_the_writer(tmp_path: Path) -> None:
    loop, log = script(tmp_path), tmp_path / "train.log"
    with launched(f"exec {python()} {loop} > {log}", log) as proc:
        facts = _look(log)[str(log)]
        writer = facts.writer  # type: ignore[attr-defined]
        assert writer.pid == proc.pid  # exec: the shell became python
        assert writer.alive and writer.how == processes.HOLDS
        assert str(loop) in writer.cmdline
        assert writer.rss_bytes > 1_000_000
        assert writer.started_at is not None


def test_a_shell_redirect_counts_the_shell_and_python(tmp_path: Path) -> None:
    """``sh -c 'python w.py > log'``: dash opens the file and forks; both hold it.
    The writer shown is the shell (its command names the rest), python counts in."""
    loop, log = script(tmp_path), tmp_path / "train.log"
    with launched(f"{python()} {loop} > {log}", log) as proc:
        writer = _look(log)[str(log)].writer  # type: ignore[attr-defined]
        py = _pid_of(str(loop), proc.pid)
        assert py in writer.pids
        assert writer.pid in (proc.pid, py)


def test_nohup_in_the_background(tmp_path: Path) -> None:
    loop, log = script(tmp_path), tmp_path / "train.log"
    pid_file = tmp_path / "pid"
    with launched(f"nohup {python()} {loop} > {log} 2>&1 & echo $! > {pid_file}; wait", log):
        writer = _look(log)[str(log)].writer  # type: ignore[attr-defined]
        assert writer.pid == int(pid_file.read_text())
        assert writer.alive


def test_through_tee_the_producer_is_the_writer(tmp_path: Path) -> None:
    loop, log = script(tmp_path), tmp_path / "train.log"
    with launched(f"{python()} {loop} 2>&1 | tee {log} > /dev/null", log) as proc:
        writer = _look(log)[str(log)].writer  # type: ignore[attr-defined]
        assert writer.pid == _pid_of(str(loop), proc.pid)
        assert writer.how.startswith("prints into tee (PID ")
        assert _pid_of("tee", proc.pid) in writer.pids


def test_a_pipe_into_a_redirected_writer_is_no_tee(tmp_path: Path) -> None:
    """``yes | python train.py > log``: python reads a pipe, but its output is the log: it is the writer."""
    loop, log = script(tmp_path), tmp_path / "train.log"
    with launched(f"yes | {python()} {loop} > {log}", log) as proc:
        writer = _look(log)[str(log)].writer  # type: ignore[attr-defined]
        assert writer.pid == _pid_of(str(loop), proc.pid)
        assert writer.how == processes.HOLDS


def test_a_launcher_and_its_workers(tmp_path: Path) -> None:
    """A parent that spawns workers sharing its console (torchrun's shape): the parent is shown."""
    loop, log = script(tmp_path), tmp_path / "train.log"
    with launched(f"exec {python()} {loop} --workers 2 > {log}", log) as proc:
        wait_for(lambda: len(session(proc.pid)) >= 3)
        writer = _look(log)[str(log)].writer  # type: ignore[attr-defined]
        assert writer.pid == proc.pid
        assert len(writer.pids) == 3 and set(writer.pids) == set(session(proc.pid))


def test_workers_outliving_their_launcher_keep_the_run_alive(tmp_path: Path) -> None:
    loop, log = script(tmp_path), tmp_path / "train.log"
    with launched(f"exec {python()} {loop} --workers 1 > {log}", log) as proc:
        wait_for(lambda: len(session(proc.pid)) >= 2)
        probe = BoxWatch(nvml=None)
        try:
            first = probe.look([str(log)], [str(log)])[str(log)].writer
            assert first is not None and first.pid == proc.pid
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            later = probe.look([str(log)], [])[str(log)]
            assert later.writer is not None and later.writer.alive and not later.gone
            assert later.writer.pid != proc.pid  # the worker is shown now
        finally:
            probe.close()


def test_a_file_handler_in_the_script_itself(tmp_path: Path) -> None:
    loop, log = script(tmp_path), tmp_path / "train.log"
    with launched(f"exec {python()} {loop} --open {log}", log) as proc:
        assert _look(log)[str(log)].writer.pid == proc.pid  # type: ignore[attr-defined]


def test_a_log_nobody_writes_has_no_facts(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("iter 0: loss 4.0, time 50.00ms, mfu 30.00%\n")
    assert openfiles.writing(str(log)) is False
    assert _look(log) == {}


def test_our_own_handle_is_not_a_writer(tmp_path: Path) -> None:
    """The test (or the demo) writing from trainwatch's own process: not shown, and not "hidden"."""
    log = tmp_path / "train.log"
    with open(log, "w") as handle:
        handle.write("iter 0: loss 4.0, time 50.00ms, mfu 30.00%\n")
        handle.flush()
        assert openfiles.writing(str(log)) is True
        assert _look(log) == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a probe as another user")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_another_users_writer_is_no_error(tmp_path: Path) -> None:
    """Looked at by a user who may not see the writer's open files: no owner, no error.
    When the log is that user's own, the kernel still says someone writes it: "hidden"."""
    shared = Path(tempfile.mkdtemp(prefix="trainwatch-users-", dir="/tmp"))  # pytest's tmp is root's alone
    request_cleanup = shutil.rmtree
    shared.chmod(0o755)
    loop, log = script(tmp_path), shared / "train.log"
    probe = (
        "import json, sys; from trainwatch.system.probe import BoxWatch; p = BoxWatch(nvml=None); "
        "f = p.look([sys.argv[1]], [sys.argv[1]]); "
        "print(json.dumps({k: [v.writer is not None, v.hidden] for k, v in f.items()}))"
    )
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", python(), "-c", probe, str(log)]
    with launched(f"exec {python()} {loop} > {log}", log):
        out = subprocess.run(nobody, capture_output=True, text=True, timeout=30, cwd=Path.cwd())
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {}  # root's file: the kernel will not say, nor will /proc
        os.chown(log, 65534, 65534)
        out = subprocess.run(nobody, capture_output=True, text=True, timeout=30, cwd=Path.cwd())
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {str(log): [False, True]}
    request_cleanup(shared)


# ----------------------------------------------------------- exited, live


class Recorder:
    def __init__(self) -> None:
        self.snapshots: list[tuple[float, Snapshot]] = []
        self.cond = threading.Condition()

    def __call__(self, snapshot: Snapshot) -> None:
        with self.cond:
            self.snapshots.append((time.monotonic(), snapshot))
            self.cond.notify_all()

    def wait(self, status: str, timeout: float = 10.0) -> tuple[float, Snapshot]:
        def found() -> tuple[float, Snapshot] | None:
            return next(((t, s) for t, s in self.snapshots if s.rows and s.rows[0].stats.status == status), None)

        with self.cond:
            assert self.cond.wait_for(lambda: found() is not None, timeout), [
                [r.stats.status for r in s.rows] for _, s in self.snapshots[-3:]
            ]
            result = found()
        assert result is not None
        return result


def _watch(folder: Path) -> tuple[Watcher, Recorder]:
    rec = Recorder()
    watcher = Watcher([folder], RunOptions(), Names(), rec, box=BoxWatch(nvml=None))
    watcher.start()
    return watcher, rec


def test_sigkill_turns_a_live_run_exited_within_a_second(tmp_path: Path) -> None:
    loop, folder = script(tmp_path), tmp_path / "runs"
    folder.mkdir()
    log = folder / "train.log"
    with launched(f"exec {python()} {loop} > {log}", log) as proc:
        watcher, rec = _watch(folder)
        try:
            rec.wait("running")
            wait_for(lambda: rec.snapshots[-1][1].rows[0].stats.process is not None)
            writer = rec.snapshots[-1][1].rows[0].stats.process
            assert writer is not None and writer.pid == proc.pid and writer.alive
            killed = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            seen, snapshot = rec.wait("exited")
            row = snapshot.rows[0]
            assert seen - killed < 1.0, f"exited after {seen - killed:.2f} s"  # (a pidfd wakes the watcher: ms)
            assert row.stats.process is not None and not row.stats.process.alive
            assert row.stats.eta_s is None
        finally:
            watcher.stop()


def test_alive_but_silent_still_stalls_and_does_not_exit(tmp_path: Path) -> None:
    """A writer that lives and writes nothing: ``stalled`` by the log's own rule, never ``exited``."""
    loop, log = script(tmp_path), tmp_path / "train.log"
    with launched(f"exec {python()} {loop} --steps 5 --every 0.01 --linger 60 > {log}", log):
        wait_for(lambda: lines(log) >= 5)
        facts = _look(log)[str(log)]
        assert isinstance(facts, BoxFacts)
        source = LogSource(log)
        source.refresh()
        now = source.agg.stats(None, facts)
        assert now.status == "running" and now.process is not None
        later = source.agg.stats(datetime.now() + timedelta(seconds=metrics.MIN_STALL_S + 5), facts)
        assert later.status == "stalled" and later.process is not None and later.process.alive


def test_a_clean_finish_is_finished_not_exited(tmp_path: Path) -> None:
    loop, folder = script(tmp_path), tmp_path / "runs"
    folder.mkdir()
    log = folder / "train.log"
    with launched(f"exec {python()} {loop} --steps 30 --every 0.05 --finish > {log}", log) as proc:
        watcher, rec = _watch(folder)
        try:
            wait_for(lambda: rec.snapshots and rec.snapshots[-1][1].rows[0].stats.process is not None)
            proc.wait(timeout=20)
            rec.wait("finished")
            time.sleep(1.5)  # a few ticks: it must stay finished
            final = rec.snapshots[-1][1].rows[0].stats
            assert final.status == "finished"
            assert final.process is not None and not final.process.alive
            assert all(s.rows[0].stats.status != "exited" for _, s in rec.snapshots)
        finally:
            watcher.stop()


def test_a_log_written_after_its_writer_went_is_looked_up_again(tmp_path: Path) -> None:
    """A run resumed into the same log (``>>``) by a new process: running again, with the new writer."""
    loop, log = script(tmp_path), tmp_path / "train.log"
    probe = BoxWatch(nvml=None, lookup_every=0.0)
    try:
        with launched(f"exec {python()} {loop} > {log}", log) as first:
            assert probe.look([str(log)], [str(log)])[str(log)].writer.pid == first.pid  # type: ignore[union-attr]
        gone = probe.look([str(log)], [])[str(log)]
        assert gone.gone and gone.writer is not None and not gone.writer.alive
        assert probe.look([str(log)], [str(log)])[str(log)].gone  # its last lines: still gone
        with launched(f"exec {python()} {loop} >> {log}", log) as second:
            wait_for(lambda: lines(log) >= 8)
            again = probe.look([str(log)], [str(log)])[str(log)]
            assert not again.gone and again.writer is not None and again.writer.pid == second.pid
    finally:
        probe.close()


# ------------------------------------------------------ trainwatch snapshot


def test_snapshot_json_shows_the_live_writer(tmp_path: Path) -> None:
    loop, folder = script(tmp_path), tmp_path / "runs"
    folder.mkdir()
    log = folder / "train.log"
    with launched(f"exec {python()} {loop} > {log}", log) as proc:
        out = subprocess.run(
            [python(), "-m", "trainwatch", "snapshot", str(folder), "-f", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert out.returncode == 0, out.stderr
        (run,) = json.loads(out.stdout)["runs"]
        assert run["status"] == "running"
        assert run["process"]["pid"] == proc.pid and run["process"]["alive"] is True
        assert str(loop) in run["process"]["cmdline"]
        assert run["gpus"] == []
    # Once the writer is gone, one look cannot tell it from a log no process
    # ever held (a copy, a test's file): no process, the status the log gives.
    out = subprocess.run(
        [python(), "-m", "trainwatch", "snapshot", str(folder), "-f", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    (run,) = json.loads(out.stdout)["runs"]
    assert run["process"] is None


def test_snapshot_as_of_another_moment_looks_up_no_process(tmp_path: Path) -> None:
    loop, folder = script(tmp_path), tmp_path / "runs"
    folder.mkdir()
    log = folder / "train.log"
    with launched(f"exec {python()} {loop} > {log}", log):
        out = subprocess.run(
            [python(), "-m", "trainwatch", "snapshot", str(folder), "-f", "json", "--now", "2030-01-01T00:00:00"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[2],
        )
        (run,) = json.loads(out.stdout)["runs"]
        assert run["process"] is None


def test_the_exit_waiter_wakes_once_per_ended_process(tmp_path: Path) -> None:
    woken = threading.Event()
    waiter = ExitWaiter(woken.set)
    try:
        proc = subprocess.Popen(["sleep", "30"])
        pidfd = os.pidfd_open(proc.pid)
        waiter.follow(pidfd)
        os.close(pidfd)  # the waiter keeps its own copy
        assert not woken.wait(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        assert woken.wait(5)
        proc.wait()
    finally:
        waiter.close()
    waiter.close()  # twice: no error
