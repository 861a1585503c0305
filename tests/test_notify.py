"""Push alerts: which events, sent once (across restarts), rate-limited, through real apprise.

The end-to-end test with ``trainwatch alert`` as a process is
tests/integration/test_alerts.py.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from webhook import Receiver

from trainwatch.config import ConfigError, load_notify
from trainwatch.core.names import Names
from trainwatch.core.options import RunOptions
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.core.slurmjob import SlurmJob
from trainwatch.ingest.publish import build
from trainwatch.ingest.source import LogSource
from trainwatch.system.alert_events import Event, conditions, detect
from trainwatch.system.notify import Ledger, Notifier, apprise_sender, check_urls
from trainwatch.tui.alerts import desktop_sequence

T = datetime.fromisoformat
START = T("2026-12-06T10:00:00")


def base_row(tmp_path: Path, name: str = "a.log") -> RunRow:
    path = tmp_path / name
    lines = [f"iter {s}: loss {10 - s / 100:.4f}, time 500.00ms, mfu 10.00%\n" for s in range(0, 101, 10)]
    path.write_text("tokens per iteration will be: 8,192\nmax_iters = 1000\n" + "".join(lines))
    source = LogSource(path, RunOptions())
    source.refresh()
    source.flush()
    (row,) = build([source], Names(), START).rows
    return row


def with_(row: RunRow, slurm: SlurmJob | None = None, **changes: object) -> RunRow:
    return replace(row, stats=replace(row.stats, **changes), slurm=slurm)  # type: ignore[arg-type]


def snap(*rows: RunRow, at: datetime = START) -> Snapshot:
    return Snapshot(at, rows)


# ------------------------------------------------------------------ events


def test_a_change_of_status_is_one_event(tmp_path: Path) -> None:
    row = base_row(tmp_path)
    running = with_(row, status="running", last_update_at=START)
    events, now = detect(snap(running), {}, START - timedelta(minutes=1))
    assert events == [] and now == {row.path: frozenset({"running"})}

    diverged = with_(row, status="diverged", loss=float("nan"), iter=110, last_update_at=START)
    (event,) = detect(snap(diverged), now, START - timedelta(minutes=1))[0]
    assert event.kind == "diverged" and event.key == f"{row.path}|diverged|110"
    assert event.title == f"{row.name} diverged"
    assert event.body == f"{row.name} diverged at iteration 110, loss nan: loss is nan\n{row.path}"
    # The same again is no news.
    assert detect(snap(diverged), {row.path: frozenset({"diverged"})}, START)[0] == []


def test_first_sight_reports_only_what_happened_since_watching_began(tmp_path: Path) -> None:
    row = base_row(tmp_path)
    since = START
    old = with_(row, status="failed", last_update_at=START - timedelta(days=2))
    assert detect(snap(old), {}, since)[0] == []  # a folder of old runs sends nothing
    fresh = with_(row, status="failed", last_update_at=START + timedelta(seconds=3), events=("failed: CUDA OOM",))
    (event,) = detect(snap(fresh), {}, since)[0]
    assert event.kind == "failed" and event.reason == "failed: CUDA OOM"
    stalled = with_(row, status="stalled", last_update_at=START + timedelta(seconds=3))
    assert detect(snap(stalled), {}, since)[0] == []  # first seen stalled: it stalled before we looked


def test_slurm_ending_the_job_is_exited_with_slurms_reason(tmp_path: Path) -> None:
    row = base_row(tmp_path)
    job = SlurmJob("2", "TIMEOUT", "TimeLimit", 60.0, START, START + timedelta(seconds=75), "vm")
    ended = with_(row, slurm=job, status="stalled", last_update_at=START)
    assert conditions(ended) == frozenset({"exited"})  # not "stalled" too: one message explains it
    (event,) = detect(snap(ended), {row.path: frozenset({"running"})}, START)[0]
    assert event.kind == "exited"
    assert event.reason == "Slurm ended job 2: TIMEOUT (killed at its time limit)"
    finished = with_(row, slurm=replace(job, state="COMPLETED"), status="finished")
    assert conditions(finished) == frozenset({"finished"})  # the log's word stands


def test_heading_past_the_time_limit(tmp_path: Path) -> None:
    row = base_row(tmp_path)
    job = SlurmJob("9", "RUNNING", None, 3600.0, START, START + timedelta(hours=1), "vm")
    late = with_(
        row, slurm=job, status="running", eta_s=7200.0, finish_at=START + timedelta(hours=2), last_update_at=START
    )
    (event,) = detect(snap(late), {}, START)[0]  # even on first sight: it is ahead, not past
    assert event.kind == "over_limit" and event.key == f"{row.path}|over_limit|9"
    assert event.title.endswith("will pass its time limit")
    assert "finishes 1h 00m after job 9 is killed" in event.reason


# ------------------------------------------------------------------ ledger


def event(path: str, kind: str = "diverged", at: int = 1) -> Event:
    return Event(kind, f"{path}|{kind}|{at}", "run", path, at, 1.0, "why")


def test_each_event_is_claimed_once_even_across_processes(tmp_path: Path) -> None:
    first = Ledger(["json://a"], tmp_path)
    assert first.record({"/r": frozenset({"diverged"})}, [event("/r")], 1000.0) == [event("/r")]
    assert first.record({}, [event("/r")], 1001.0) == []
    again = Ledger(["json://a"], tmp_path)  # a restart, or a second trainwatch
    assert again.record({}, [event("/r")], 1002.0) == []
    assert again.previous() == {"/r": frozenset({"diverged"})}
    other = Ledger(["json://b"], tmp_path)  # another destination has heard nothing
    assert other.record({}, [event("/r")], 1003.0) == [event("/r")]
    assert json.loads(first.path.read_text())["sent"] == {"/r|diverged|1": 1000.0}


def test_a_stall_soon_after_the_last_is_not_sent(tmp_path: Path) -> None:
    ledger = Ledger(["json://a"], tmp_path)
    assert ledger.record({}, [event("/r", "stalled", 10)], 1000.0)
    assert ledger.record({}, [event("/r", "stalled", 20)], 1600.0) == []  # flapping: quiet
    assert ledger.record({}, [event("/r", "stalled", 30)], 1000.0 + 3600) == [event("/r", "stalled", 30)]
    assert ledger.record({}, [event("/q", "stalled", 10)], 1601.0)  # another run's own


def test_an_unwritable_state_dir_still_sends(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    ledger = Ledger(["json://a"], blocker / "state")  # a folder under a file cannot be made
    assert ledger.record({}, [event("/r")], 1.0) == [event("/r")]
    assert ledger.record({}, [event("/r")], 2.0) == []  # remembered in memory for this process
    assert ledger.problem is not None and "cannot keep notification state" in ledger.problem


def test_state_lives_under_the_users_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    ledger = Ledger(["json://a"])
    assert ledger.path.parent == tmp_path / "state" / "trainwatch"


# ----------------------------------------------------------------- sending


class Outbox:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.done = threading.Event()

    def __call__(self, title: str, body: str, kind: str) -> bool:
        self.sent.append((title, body, kind))
        return True


def test_a_burst_beyond_the_limit_goes_out_as_a_digest(tmp_path: Path) -> None:
    outbox = Outbox()
    notifier = Notifier(["json://a"], ledger=Ledger(["json://a"], tmp_path), send=outbox, burst=2, refill_s=3600)
    rows = [base_row(tmp_path, f"r{i}.log") for i in range(5)]
    notifier.observe(snap(*(with_(r, status="running") for r in rows)))
    failed = [
        with_(r, status="failed", last_update_at=START, events=(f"failed: boom {i}",)) for i, r in enumerate(rows)
    ]
    notifier.observe(snap(*failed))
    notifier.start()
    notifier.stop()
    assert len(outbox.sent) == 2  # one alone, the other four together
    assert outbox.sent[0][0].endswith(" failed")
    title, body, _ = outbox.sent[1]
    assert title == "4 trainwatch events" and body.count("failed: boom") == 4
    assert len(notifier.sent) == 5


def test_snapshots_of_the_first_read_send_nothing(tmp_path: Path) -> None:
    # A job's .err read before its .out: stalled for a moment, then finished.
    outbox = Outbox()
    notifier = Notifier(["json://a"], ledger=Ledger(["json://a"], tmp_path), send=outbox)
    row = base_row(tmp_path)
    notifier.observe(snap(with_(row, status="running")))
    notifier.observe(replace(snap(with_(row, status="stalled", last_update_at=START)), loading=True))
    notifier.observe(snap(with_(row, status="running")))
    notifier.start()
    notifier.stop()
    assert outbox.sent == [] and notifier.sent == []


def test_failed_delivery_is_a_problem_line(tmp_path: Path) -> None:
    notifier = Notifier(["json://a"], ledger=Ledger(["json://a"], tmp_path), send=lambda t, b, k: False)
    row = base_row(tmp_path)
    notifier.observe(snap(with_(row, status="running")))
    notifier.observe(snap(with_(row, status="finished", last_update_at=START)))
    notifier.start()
    notifier.stop()
    assert notifier.problems == ["could not deliver a notification (a destination did not accept it); "
                                 "the next events are tried again"]  # fmt: skip


def test_apprise_posts_json_to_a_real_receiver(tmp_path: Path) -> None:
    with Receiver() as receiver:
        assert check_urls([receiver.url]) == []
        send = apprise_sender([receiver.url])
        assert send("run diverged", "run diverged at iteration 110: loss is nan", "diverged")
        (message,) = receiver.messages
        assert message["title"] == "run diverged" and message["type"] == "failure"
        assert message["message"] == "run diverged at iteration 110: loss is nan"
    assert check_urls(["nonsense-scheme://x", "json://127.0.0.1:1/"]) == ["nonsense-scheme://x"]


# ------------------------------------------------------------------ config


def test_config_notify_urls(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('notify = ["ntfy://ntfy.sh/runs", "json://127.0.0.1:8000/"]\n')
    assert load_notify(config) == ["ntfy://ntfy.sh/runs", "json://127.0.0.1:8000/"]
    config.write_text('notify = "ntfy://ntfy.sh/runs"\n')
    assert load_notify(config) == ["ntfy://ntfy.sh/runs"]
    config.write_text("notify = 3\n")
    with pytest.raises(ConfigError, match="notify must be a list of URLs"):
        load_notify(config)
    config.write_text("[runs.x]\nname = 'y'\n")
    assert load_notify(config) == []


# ------------------------------------------------------- the terminal's way


def test_desktop_notification_sequences() -> None:
    assert desktop_sequence("osc9", "trainwatch: diverged", "run diverged") == (
        "\x1b]9;trainwatch: diverged: run diverged\x1b\\"
    )
    assert desktop_sequence("osc777", "a;b", "body; more") == "\x1b]777;notify;a,b;body; more\x1b\\"
    # A run's name cannot end the sequence early or smuggle its own.
    evil = desktop_sequence("osc9", "t", "x\x07\x1b]52;c;AAAA\x1b\\ y\x9c")
    assert evil.count("\x1b") == 2 and "\x07" not in evil and "\x9c" not in evil
    assert desktop_sequence("osc9", "t", "b", tmux=True) == "\x1bPtmux;\x1b\x1b]9;t: b\x1b\x1b\\\x1b\\"
