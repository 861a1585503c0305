"""trainwatch follows a log on another host through a real sshd on loopback.

The "remote" host is this machine: a temp folder read through ssh. The test
kills sshd (and with it the session), writes more lines, restarts sshd on the
same port, and checks the run catches up with every iteration counted once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from livelogs import PREAMBLE, Latest, append, line

from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.ingest import remote
from trainwatch.ingest.remote import RemoteRoot
from trainwatch.ingest.watcher import Watcher

from .servers import Sshd

TIMEOUT = 20.0


def the_row(snapshot: Snapshot) -> RunRow | None:
    return snapshot.rows[0] if len(snapshot.rows) == 1 else None


def at(step: int) -> Callable[[Snapshot], bool]:
    return lambda s: (r := the_row(s)) is not None and r.stats.iter == step


def test_follows_a_remote_log_across_an_sshd_restart(tmp_path: Path, sshd: Sshd) -> None:
    folder = tmp_path / "remote" / "run"
    folder.mkdir(parents=True)
    log = folder / "train.log"
    log.write_text(PREAMBLE + "".join(line(s) for s in range(0, 30, 10)))
    latest = Latest(TIMEOUT)
    spec = f"{sshd.target}:{tmp_path / 'remote'}"
    watcher = Watcher([Path(spec)], RunOptions(), Names(), latest, network_poll=0.2, ssh_options=sshd.ssh_options)
    watcher.start()
    try:
        first = latest.wait(at(20), "iteration 20")
        row = the_row(first)
        assert row is not None and row.path == f"{sshd.target}:{log}" and row.format == "nanogpt_stdout"
        assert "ssh: 1/1 host up" in watcher.mode

        append(log, line(30))
        latest.wait(at(30), "iteration 30")

        sshd.stop()
        down = latest.wait(lambda s: any("unreachable" in w for r in s.rows for w in r.stats.warnings), "⚑ unreachable")
        assert the_row(down) is not None and the_row(down).stats.iter == 30  # type: ignore[union-attr]
        assert any("unreachable" in p for p in watcher.problems)
        # Written while the host cannot be reached; the last line is cut mid-way.
        append(log, line(40) + line(50) + line(60)[:12])

        sshd.start()
        append(log, line(60)[12:] + line(70))
        back = latest.wait(at(70), "iteration 70 after the restart")
        row = the_row(back)
        assert row is not None
        assert row.stats.logged_iters == 8  # 0, 10, … 70: each once
        assert row.stats.segments == 1  # no re-sent prefix read as a restart
        assert row.stats.warnings == ()
        assert watcher.problems == []
    finally:
        watcher.stop()


def test_snapshot_reads_a_remote_root_once(tmp_path: Path, sshd: Sshd) -> None:
    """``trainwatch snapshot host:/path``: one read through sshd, then done."""
    log = tmp_path / "remote" / "run" / "train.log"
    log.parent.mkdir(parents=True)
    log.write_text(PREAMBLE + "".join(line(s) for s in range(0, 50, 10)))
    roots = [RemoteRoot(sshd.target, str(tmp_path / "remote"))]
    sources, problems = remote.load(roots, RunOptions(), ssh_options=sshd.ssh_options, timeout=TIMEOUT)
    assert problems == []
    assert [str(s.path) for s in sources] == [f"{sshd.target}:{log}"]
    assert sources[0].format == "nanogpt_stdout"
    # Counted against hand-made lines: iterations 0, 10, 20, 30, 40.
    stats = sources[0].agg.stats(datetime(2026, 1, 1))
    assert (stats.iter, stats.logged_iters) == (40, 5)
    sshd.stop()
    gone, problems = remote.load(roots, RunOptions(), ssh_options=sshd.ssh_options, timeout=TIMEOUT)
    assert gone == [] and len(problems) == 1 and problems[0].startswith(f"{sshd.target}: unreachable (")
