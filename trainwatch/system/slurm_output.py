"""What Slurm's commands print, read: ``scontrol show job`` and ``squeue -o``.

Written from the output of Slurm 22.05 (recorded in tests/fixtures/slurm)
and Slurm's own formats: ``scontrol`` prints ``Key=Value`` pairs (one line
per job with ``-o``, else indented lines, jobs apart by a blank line), times
as local ISO ``2026-12-06T06:51:09`` and durations as ``[D-]HH:MM:SS``;
``squeue`` prints the columns asked for, durations shortened (``1:00``).
Nothing here raises on odd input: what cannot be read is ``None``.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta

from trainwatch.core.slurmjob import SlurmJob

#: ``squeue`` columns trainwatch reads, in this order (``|`` never occurs in them).
SQUEUE_FORMAT = "%i|%T|%l|%S|%e|%N|%r|%u"

_NO_VALUE = frozenset({"", "N/A", "NONE", "None", "Unknown", "(null)", "n/a"})
_NO_LIMIT = frozenset({"UNLIMITED", "INFINITE", "Partition_Limit", "NOT_SET", "INVALID"})


def parse_duration(text: str) -> float | None:
    """Slurm's time: ``1-00:00:00``, ``00:01:00``, ``1:00`` (squeue's M:SS),
    ``2-12``; ``None`` for UNLIMITED, N/A and anything unreadable."""
    text = text.strip()
    if text in _NO_LIMIT or text in _NO_VALUE:
        return None
    days, _, rest = text.rpartition("-")
    try:
        day_s = int(days) * 86400 if days else 0
        parts = [int(p) for p in rest.split(":")]
    except ValueError:
        return None
    if days and len(parts) <= 3:  # D-HH, D-HH:MM, D-HH:MM:SS
        parts = parts + [0] * (3 - len(parts))
    elif len(parts) == 1:
        parts = [0, parts[0], 0]  # a bare number is minutes (sbatch --time=N)
    if len(parts) == 2:
        parts = [0, *parts]  # MM:SS
    if len(parts) != 3 or any(p < 0 for p in parts):
        return None
    hours, minutes, seconds = parts
    return float(day_s + hours * 3600 + minutes * 60 + seconds)


def parse_time(text: str) -> datetime | None:
    """``2026-12-06T06:51:09`` (local, as Slurm prints it) or ``None``."""
    text = text.strip()
    if text in _NO_VALUE:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")


def parse_scontrol(text: str) -> list[dict[str, str]]:
    """``scontrol show job`` output (one line per job with ``-o``, or the
    indented form), as one ``key -> value`` mapping per job."""
    jobs: list[dict[str, str]] = []
    for block in re.split(r"\n\s*\n", text):
        matches = list(_KEY.finditer(block))
        fields: dict[str, str] = {}
        ends = [m.start() for m in matches[1:]] + [len(block)] if matches else []
        for match, end in zip(matches, ends, strict=True):
            fields.setdefault(match.group(1), block[match.end() : end].strip())
        if "JobId" in fields:
            jobs.append(fields)
    return jobs


def job_from_fields(fields: dict[str, str]) -> SlurmJob:
    """A ``SlurmJob`` from one job of ``parse_scontrol``."""
    state = fields.get("JobState", "UNKNOWN").split()[0]
    job_id = fields["JobId"]
    if fields.get("ArrayJobId") and fields.get("ArrayTaskId", "").isdigit():
        job_id = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"
    return _job(
        job_id,
        state,
        fields.get("Reason", ""),
        fields.get("TimeLimit", ""),
        fields.get("StartTime", ""),
        fields.get("EndTime", ""),
        fields.get("NodeList", ""),
        fields.get("ExitCode"),
    )


def parse_squeue(text: str) -> list[SlurmJob]:
    """``squeue -h -o SQUEUE_FORMAT`` output, one job per line; malformed lines are skipped."""
    jobs = []
    for line in text.splitlines():
        cells = line.strip().split("|")
        if len(cells) < 7 or not cells[0]:
            continue
        job_id, state, limit, start, end, nodes, reason = cells[:7]
        jobs.append(_job(job_id, state.split()[0] if state.strip() else "UNKNOWN", reason, limit, start, end, nodes))
    return jobs


def _job(
    job_id: str,
    state: str,
    reason: str,
    limit: str,
    start: str,
    end: str,
    nodes: str,
    exit_code: str | None = None,
) -> SlurmJob:
    pending = state == "PENDING"  # its StartTime/EndTime are the scheduler's guesses
    return SlurmJob(
        job_id=job_id.strip(),
        state=state,
        reason=None if reason.strip() in _NO_VALUE else reason.strip(),
        time_limit_s=parse_duration(limit),
        started_at=None if pending else parse_time(start),
        ends_at=None if pending else parse_time(end),
        nodes=None if nodes.strip() in _NO_VALUE else nodes.strip(),
        exit_code=exit_code,
    )


def owns(fields: dict[str, str], path: str) -> bool:
    """Is the log at ``path`` this job's: its StdOut or StdErr, or else a
    file of the job's user written to since the job started?"""
    real = os.path.realpath(path)
    for key in ("StdOut", "StdErr"):
        value = fields.get(key)
        if value and os.path.realpath(value) == real:
            return True
    match = re.search(r"\((\d+)\)", fields.get("UserId", ""))
    try:
        stat = os.stat(path)
    except OSError:
        return False
    started = parse_time(fields.get("StartTime", ""))
    if started is not None and datetime.fromtimestamp(stat.st_mtime) < started - timedelta(minutes=1):
        return False  # last written before the job began: some other number in the name
    return match is not None and stat.st_uid == int(match.group(1))
