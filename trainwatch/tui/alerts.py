"""Which status changes deserve a notification (pure: two snapshots in, alerts out),
and the escape sequences that raise them as desktop notifications through the terminal."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainwatch.core import fmt
from trainwatch.core.slurmjob import ended_text
from trainwatch.tui import cells

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow, Snapshot

Severity = Literal["information", "warning", "error"]
SEVERITY: dict[str, Severity] = {
    "stalled": "warning",
    "diverged": "error",
    "failed": "error",
    "finished": "information",
    "exited": "error",
}


@dataclass(frozen=True, slots=True)
class Alert:
    key: str
    status: str
    message: str
    severity: Severity


def status_alerts(old: Snapshot | None, new: Snapshot) -> list[Alert]:
    """Runs whose status changed into stalled, diverged, failed, exited or finished.

    Nothing on first display (``old`` is ``None``), nothing while the logs
    found at the start are read (``loading``: a job's status moves as its
    other files join it) and nothing for runs that just appeared: an alert
    reports a change someone could have missed.
    """
    if old is None or old.loading or new.loading:
        return []
    before = {row.key: row.stats.status for row in old.rows}
    alerts = []
    for row in new.rows:
        status = row.stats.status
        if status in SEVERITY and row.key in before and before[row.key] != status:
            alerts.append(Alert(row.key, status, _message(row, new), SEVERITY[status]))
    return alerts


def _message(row: RunRow, snapshot: Snapshot) -> str:
    s, name = row.stats, cells.safe_text(row.name)
    if s.status == "stalled":
        since = (snapshot.generated_at - s.last_update_at).total_seconds() if s.last_update_at else None
        return f"{name} stalled: no progress for {fmt.duration(since)} (at iteration {fmt.count(s.iter)})"
    if s.status == "diverged":
        return f"{name} diverged: loss is {fmt.number(s.loss)} at iteration {fmt.count(s.iter)}"
    if s.status == "failed":
        last = next((e for e in reversed(s.events) if e.startswith("failed")), "failed")
        return f"{name} {cells.safe_text(last)} (iteration {fmt.count(s.iter)})"
    if s.status == "exited" and row.slurm is not None and row.slurm.ended:
        return f"{name} exited: {ended_text(row.slurm)} (at iteration {fmt.count(s.iter)})"
    if s.status == "exited":
        pid = f" (PID {s.process.pid})" if s.process is not None else ""
        return (
            f"{name} exited: its process{pid} is gone, and the log says neither finished nor failed "
            f"(at iteration {fmt.count(s.iter)})"
        )
    return f"{name} finished: {fmt.count(s.iter)} iterations, loss {fmt.number(s.loss, 3)}"


#: C0 and C1 controls (ESC, BEL, ST...) end or break an OSC string: never inside one.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def desktop_sequence(kind: str, title: str, body: str, *, tmux: bool = False) -> str:
    """The terminal escape that raises a desktop notification: ``osc9``
    (iTerm2, WezTerm, kitty, Windows Terminal, foot...) or ``osc777``
    (``notify;title;body``: VTE terminals, rxvt-unicode, Ghostty, WezTerm). It
    travels with the terminal's output, so it reaches the user's desktop over
    SSH. Inside tmux it is wrapped for passthrough (tmux: ``allow-passthrough on``)."""
    title, body = _CONTROLS.sub(" ", title).strip(), _CONTROLS.sub(" ", body).strip()
    if kind == "osc777":
        sequence = f"\x1b]777;notify;{title.replace(';', ',')};{body}\x1b\\"
    else:
        sequence = f"\x1b]9;{title}: {body}\x1b\\"
    if tmux:
        sequence = "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"
    return sequence
