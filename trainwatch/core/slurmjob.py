"""The Slurm job a run belongs to, and what its time limit means for the run.

``trainwatch.system.slurm`` asks Slurm (``squeue``, ``scontrol``) and hands
over a ``SlurmJob``; the rules here are pure: will the run finish before the
job is killed at its limit, how much work since the last checkpoint is at
risk, and what to say when Slurm ended the job. Times are local and naive,
as Slurm prints them and as the rest of trainwatch keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from trainwatch.core import fmt

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow
    from trainwatch.core.stats import RunStats

#: States of a job that is over (Slurm's ``JOB_STATE_BASE`` names); any other
#: state (PENDING, RUNNING, COMPLETING, SUSPENDED, REQUEUED ...) may still change.
ENDED = frozenset(
    {
        "COMPLETED",
        "CANCELLED",
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
        "REVOKED",
    }
)
#: Why a job ended, in words, for the states that say something the log cannot.
WHY_ENDED = {
    "TIMEOUT": "killed at its time limit",
    "CANCELLED": "cancelled (scancel or an administrator)",
    "OUT_OF_MEMORY": "killed for using more memory than it asked for (OOM)",
    "NODE_FAIL": "a node of the job failed",
    "FAILED": "its script exited with an error",
    "PREEMPTED": "preempted by a higher-priority job",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "it reached its deadline",
    "COMPLETED": "its script exited normally",
}
#: ETA within this many seconds of the limit: too close to call either way.
MARGIN_S = 60.0


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """What Slurm says about one job, as last asked (``None``: Slurm did not say)."""

    job_id: str
    #: Slurm's state name: RUNNING, PENDING, TIMEOUT, OUT_OF_MEMORY ...
    state: str
    #: Slurm's reason (``TimeLimit``, ``BeginTime``, ``NodeDown``); ``None`` where it says "None".
    reason: str | None = None
    #: Seconds; ``None``: no limit (UNLIMITED) or not known.
    time_limit_s: float | None = None
    started_at: datetime | None = None
    #: A running job: when the limit ends it; an ended job: when it ended.
    ends_at: datetime | None = None
    nodes: str | None = None
    #: ``exit:signal`` as Slurm prints it (``0:15``: killed by SIGTERM).
    exit_code: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def running(self) -> bool:
        return self.state == "RUNNING"


def beyond_limit_s(job: SlurmJob | None, stats: RunStats) -> float | None:
    """Seconds the run's finish time lies past the job's end (negative: the
    margin before it); ``None`` where either is unknown or the run is not
    heading anywhere (finished, stalled, failed, no ETA)."""
    if job is None or not job.running or job.ends_at is None or job.time_limit_s is None:
        return None
    if stats.status != "running" or stats.finish_at is None or stats.eta_s is None:
        return None
    return (stats.finish_at - job.ends_at).total_seconds()


def will_pass_limit(job: SlurmJob | None, stats: RunStats) -> bool:
    """The ETA lies clearly past the job's time limit: Slurm will kill the run first."""
    beyond = beyond_limit_s(job, stats)
    return beyond is not None and beyond > MARGIN_S


def work_at_risk(stats: RunStats) -> tuple[int | None, float | None]:
    """``(iteration of the last checkpoint, seconds of training since it)``.

    The seconds are the iterations since the checkpoint at the run's pace
    (the work a kill now would lose); ``(None, None)`` where no checkpoint
    was logged, and the seconds are ``None`` where the pace is unknown."""
    if not stats.checkpoint_at:
        return None, None
    last = stats.checkpoint_at[-1]
    pace = stats.rate_s or stats.mean_iter_s
    if stats.iter is None or pace is None:
        return last, None
    return last, max(0, stats.iter - last) * pace


def limit_line(job: SlurmJob, stats: RunStats, now: datetime) -> str:
    """The detail view's line: ``limit 24h · ends 03:10 · finishes 2h 40m after the limit ✗``,
    ``job 123 pending (BeginTime)``, ``TIMEOUT at 06:51 · killed at its time limit (limit 1m 00s)``."""
    limit = f"limit {fmt.duration(job.time_limit_s)}" if job.time_limit_s is not None else "no time limit"
    if job.ended:
        why = WHY_ENDED.get(job.state)
        parts = [f"{job.state} at {fmt.clock(job.ends_at, now)}" if job.ends_at else job.state]
        parts += [why] if why else []
        return " · ".join([*parts, limit])
    if not job.running:
        reason = f" ({job.reason})" if job.reason else ""
        return f"job {job.job_id} {job.state.lower()}{reason} · {limit}"
    parts = [limit]
    if job.ends_at is not None and job.time_limit_s is not None:
        parts.append(f"ends {fmt.clock(job.ends_at, now)}")
    beyond = beyond_limit_s(job, stats)
    if beyond is not None:
        if beyond > MARGIN_S:
            parts.append(f"finishes {fmt.duration(beyond)} after the limit ✗")
        elif beyond < -MARGIN_S:
            parts.append(f"finishes {fmt.duration(-beyond)} before the limit ✓")
        else:
            parts.append("finishes at about the limit ?")
    return " · ".join(parts)


def checkpoint_text(stats: RunStats) -> str:
    """``@ 900 · 40m 00s of work since`` / ``none logged``."""
    last, since = work_at_risk(stats)
    if last is None:
        return "none logged"
    return f"@ {last:,}" + (f" · {fmt.duration(since)} of training since" if since is not None else "")


def limit_warning(job: SlurmJob, stats: RunStats) -> str | None:
    """The ⚑ sentence when the run will not finish within the job's limit, or when Slurm ended the job."""
    if job.ended and job.state != "COMPLETED":
        return ended_text(job)
    if not will_pass_limit(job, stats):
        return None
    beyond = beyond_limit_s(job, stats)
    last, since = work_at_risk(stats)
    risk = (
        "no checkpoint logged yet"
        if last is None
        else f"last checkpoint at iteration {last:,}" + (f", {fmt.duration(since)} of training ago" if since else "")
    )
    return (
        f"the run will pass its Slurm time limit: it finishes {fmt.duration(beyond)} after job "
        f"{job.job_id} is killed ({fmt.duration(job.time_limit_s)} limit); {risk}"
    )


def attach(row: RunRow, job: SlurmJob | None) -> RunRow:
    """``row`` with its Slurm job, and the job's ⚑ warning among the run's warnings.

    A job Slurm ended while the log says neither finished nor failed is a
    run that ``exited`` (METRICS.md), at once, as when its writer is seen to go."""
    if job is None:
        return row if row.slurm is None else replace(row, slurm=None)
    warning = limit_warning(job, row.stats)
    stats = row.stats if warning is None else replace(row.stats, warnings=(*row.stats.warnings, warning))
    if job.ended and stats.status in ("running", "stalled"):
        stats = replace(stats, status="exited", eta_s=None, finish_at=None)
    return replace(row, stats=stats, slurm=job)


def ended_text(job: SlurmJob) -> str:
    """``Slurm ended job 2: TIMEOUT (killed at its time limit)``."""
    why = WHY_ENDED.get(job.state)
    return f"Slurm ended job {job.job_id}: {job.state}" + (f" ({why})" if why else "")
