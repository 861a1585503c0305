"""Which events of a run deserve a push: pure, published snapshots in, events out.

A run's conditions now (its status; "exited" where Slurm ended its job and
the log says neither finished nor failed; "over_limit" where the ETA lies
past the job's time limit) against those last seen: each condition that is
new is an event (``trainwatch.system.notify`` sends it, once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from trainwatch.core import fmt
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.core.slurmjob import ended_text, limit_warning, will_pass_limit

KINDS = ("stalled", "diverged", "failed", "exited", "finished", "over_limit")
HEADLINE = {
    "stalled": "stalled",
    "diverged": "diverged",
    "failed": "failed",
    "exited": "exited",
    "finished": "finished",
    "over_limit": "will pass its time limit",
}
#: A run seen for the first time reports events this recent, in seconds before trainwatch started.
FIRST_SIGHT_SLACK_S = 5.0


@dataclass(frozen=True, slots=True)
class Event:
    """One thing to tell about one run."""

    kind: str
    key: str  # identity for "sent once": path, kind, and the iteration (or job) it happened at
    run: str
    path: str
    iter: int | None
    loss: float | None
    reason: str

    @property
    def title(self) -> str:
        return f"{self.run} {HEADLINE[self.kind]}"

    @property
    def body(self) -> str:
        where = f" at iteration {self.iter:,}" if self.iter is not None else ""
        loss = f", loss {fmt.number(self.loss, 4)}" if self.loss is not None else ""
        return f"{self.run} {HEADLINE[self.kind]}{where}{loss}: {self.reason}\n{self.path}"


def conditions(row: RunRow) -> frozenset[str]:
    """What is true of the run now, in event names (and ``running``)."""
    status: str = row.stats.status
    job = row.slurm
    if job is not None and job.ended and status in ("running", "stalled"):
        status = "exited"  # Slurm ended the job, and the log says neither finished nor failed
    found: set[str] = {status}
    if will_pass_limit(job, row.stats):
        found.add("over_limit")
    return frozenset(found)


def detect(
    snapshot: Snapshot,
    previous: Mapping[str, frozenset[str]],
    since: datetime,
) -> tuple[list[Event], dict[str, frozenset[str]]]:
    """Events of ``snapshot`` against each run's ``previous`` conditions, and the conditions now.

    ``since``: when watching started; a run not in ``previous`` reports only
    events that happened after it (a time limit ahead is always news)."""
    events: list[Event] = []
    now: dict[str, frozenset[str]] = {}
    for row in snapshot.rows:
        current = now[row.path] = conditions(row)
        before = previous.get(row.path)
        for kind in KINDS:
            if kind not in current or (before is not None and kind in before):
                continue
            if before is None and kind != "over_limit" and not _recent(row, kind, since):
                continue
            events.append(_event(row, kind, snapshot.generated_at))
    return events, now


def _recent(row: RunRow, kind: str, since: datetime) -> bool:
    """Did ``kind`` happen to a run seen for the first time after ``since``?"""
    if kind == "stalled":
        return False  # a stall is the absence of news: a run first seen stalled stalled before we looked
    job = row.slurm
    moment = job.ends_at if kind == "exited" and job is not None and job.ended else row.stats.last_update_at
    return moment is not None and moment >= since - timedelta(seconds=FIRST_SIGHT_SLACK_S)


def _event(row: RunRow, kind: str, now: datetime) -> Event:
    s = row.stats
    job = row.slurm
    at = str(job.job_id) if kind == "over_limit" and job is not None else str(s.iter)
    return Event(kind, f"{row.path}|{kind}|{at}", row.name, row.path, s.iter, s.loss, _reason(row, kind, now))


def _reason(row: RunRow, kind: str, now: datetime) -> str:
    """One line: why."""
    s, job = row.stats, row.slurm
    if kind == "stalled":
        since = (now - s.last_update_at).total_seconds() if s.last_update_at else None
        return f"no new iteration for {fmt.duration(since)}"
    if kind == "diverged":
        return f"loss is {fmt.number(s.loss)}"
    if kind == "failed":
        return next((e for e in reversed(s.events) if e.startswith("failed")), "the log shows an error")
    if kind == "exited":
        if job is not None and job.ended:
            return ended_text(job)
        return "its process is gone, and the log says neither finished nor failed"
    if kind == "over_limit" and job is not None:
        return limit_warning(job, s) or f"job {job.job_id}'s time limit comes first"
    if s.target_source == "default":
        return "the log says it finished"
    return f"{fmt.count(s.iter)} of {s.target:,} iterations"
