"""Which Slurm job writes a log, and what Slurm says about it.

A run's job id comes from its file name, as ``sbatch -o`` patterns make it
(``slurm-%j.out``, ``%x-%j.out``, ``*_%j.out``, arrays ``slurm-%A_%a.out``),
or from ``SLURM_JOB_ID`` in the environment of the process that writes the
log (where that process is known, ``writer_pid``). A number in a file name
may be anything, so a job found by name counts only when Slurm agrees: the
job's ``StdOut``/``StdErr`` is that file, or the job's user owns it.

Slurm is asked through its commands (``squeue``, ``scontrol show job``), not
a library bound to one Slurm version: once per new candidate, then one
``squeue`` for all live jobs at most every ``INTERVAL`` seconds, in a thread
of its own (a slow slurmctld must not hold up the watcher), each call with
a timeout. A job that ended is not asked about again. Without Slurm on the
machine nothing is asked, nothing shown, nothing fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.core.slurmjob import SlurmJob, attach
from trainwatch.system.slurm_output import SQUEUE_FORMAT, job_from_fields, owns, parse_scontrol, parse_squeue

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

#: Seconds between two questions to Slurm about the same live job, at least.
INTERVAL = 30.0
#: Seconds one Slurm command may take before it is given up (slurmctld busy or down).
TIMEOUT = 10.0
#: Refreshes in a row without an answer about a live job before it is no longer shown.
MAX_MISSES = 3
#: Job ids per ``squeue -j`` call (the command line has a length limit).
CHUNK = 100

Run = Callable[[Sequence[str]], "str | None"]

_NAME_PATTERNS = (
    re.compile(r"^slurm-(\d+(?:_\d+)?)\.(?:out|err|log)$"),  # sbatch's default, arrays' slurm-%A_%a.out
    re.compile(r"^.+[-_](\d+(?:_\d+)?)\.(?:out|err|log)$"),  # %x-%j.out, anything_%j.out
)


# ------------------------------------------------------------------ job ids


def job_id_from_name(name: str) -> str | None:
    """The job id that an ``sbatch -o`` pattern put into the file name ``name``, if any."""
    for pattern in _NAME_PATTERNS:
        match = pattern.match(name)
        if match:
            return match.group(1)
    return None


def job_id_from_environ(pid: int) -> str | None:
    """``SLURM_JOB_ID`` of process ``pid`` (Linux ``/proc``); ``None`` where
    it has none or may not be read (another user's process)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return None
    for entry in environ.split(b"\0"):
        if entry.startswith(b"SLURM_JOB_ID="):
            value = entry.split(b"=", 1)[1].decode("ascii", "replace").strip()
            return value if value.isdigit() else None
    return None


def writer_pid(row: RunRow) -> int | None:
    """The PID of the process writing the run's log, where the watcher knows
    it (``RunStats.process``, from ``system.processes``)."""
    process = row.stats.process
    return process.pid if process is not None else None


# ------------------------------------------------------------------ asking


def run_command(argv: Sequence[str]) -> str | None:
    """``argv``'s standard output, or ``None`` where it failed, timed out or is not installed."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, errors="replace", timeout=TIMEOUT, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("trainwatch: %s failed: %s", argv[0], exc)
        return None
    return done.stdout if done.returncode == 0 else None


def available() -> bool:
    """Slurm's commands are installed here."""
    return shutil.which("squeue") is not None and shutil.which("scontrol") is not None


class Slurm:
    """The two questions trainwatch asks Slurm; ``run`` executes a command (tests give recorded output)."""

    def __init__(self, run: Run = run_command) -> None:
        self._run = run

    def queue(self, ids: Iterable[str]) -> dict[str, SlurmJob]:
        """The jobs among ``ids`` that Slurm still knows (live or recently ended), by id."""
        wanted = sorted(set(ids))
        found: dict[str, SlurmJob] = {}
        for start in range(0, len(wanted), CHUNK):
            chunk = ",".join(wanted[start : start + CHUNK])
            out = self._run(["squeue", "-h", "--states=all", "-j", chunk, "-o", SQUEUE_FORMAT])
            for job in parse_squeue(out or ""):
                found[job.job_id] = job
        return found

    def show(self, job_id: str) -> dict[str, str] | None:
        """``scontrol show job``'s fields of ``job_id``; ``None`` where Slurm does not know it."""
        out = self._run(["scontrol", "show", "job", "-o", job_id])
        jobs = parse_scontrol(out or "")
        return next((j for j in jobs if _id_of(j) == job_id), jobs[0] if len(jobs) == 1 else None)


def _id_of(fields: dict[str, str]) -> str:
    return job_from_fields(fields).job_id


# --------------------------------------------------------------- watching


@dataclass
class _Candidate:
    job_id: str
    sure: bool  # from the writer's environment: no need for Slurm to agree
    file: str  # the file it was found by (Slurm must agree it is the job's)


class SlurmWatch:
    """Attaches each run's Slurm job to published snapshots, asking Slurm in a thread of its own.

    ``annotate`` never waits for Slurm: it takes what was last learnt and
    notes the logs it has not seen yet; the thread asks, and calls
    ``on_news`` when anything a row shows changed (to publish again).
    """

    def __init__(
        self,
        slurm: Slurm | None = None,
        *,
        interval: float = INTERVAL,
        pid_of: Callable[[RunRow], int | None] = writer_pid,
        on_news: Callable[[], None] | None = None,
        enabled: bool | None = None,
    ) -> None:
        self._slurm = slurm or Slurm()
        self._interval = interval
        self._pid_of = pid_of
        self.on_news = on_news
        self.enabled = available() if enabled is None else enabled
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._asked: set[str] = set()  # paths whose candidate was looked for
        self._pending: dict[str, _Candidate] = {}  # path -> candidate not yet checked with Slurm
        self._job_of: dict[str, str] = {}  # path -> job id Slurm confirmed
        self._jobs: dict[str, SlurmJob] = {}  # job id -> latest
        self._cache: dict[str, tuple[RunRow, SlurmJob | None, RunRow]] = {}  # path -> (row in, job, row out)
        self._misses: dict[str, int] = {}  # job id -> refreshes in a row that Slurm did not answer

    # ------------------------------------------------------------- snapshots

    def annotate(self, snapshot: Snapshot) -> Snapshot:
        """``snapshot`` with each run's Slurm job attached (unchanged without Slurm)."""
        if not self.enabled:
            return snapshot
        rows = []
        with self._lock:
            for row in snapshot.rows:
                self._note(row)
                job_id = self._job_of.get(row.path)
                rows.append(self._attached(row, self._jobs.get(job_id) if job_id else None))
            if self._pending:
                self._wake.set()
        return Snapshot(snapshot.generated_at, tuple(rows), snapshot.unrecognised, snapshot.loading)

    def _attached(self, row: RunRow, job: SlurmJob | None) -> RunRow:
        """``attach``, reusing the last row while neither the run nor its job changed:
        the app tells an unchanged run by identity."""
        cached = self._cache.get(row.path)
        if cached is not None and cached[0] is row and cached[1] is job:
            return cached[2]
        out = attach(row, job)
        self._cache[row.path] = (row, job, out)
        return out

    def _note(self, row: RunRow) -> None:
        """Look for the run's job id: once, and again when its writer or its files change.

        Every file of the run counts (a job's ``slurm-%j.out`` beside the
        trainer's own log it writes, ``ingest.grouping``)."""
        if row.host is not None or row.path in self._job_of:
            return  # read over ssh (this machine's Slurm is not that host's), or found already
        pid = self._pid_of(row)
        files = (row.path, *(f for f in row.sources if f != row.path))
        key = "\0".join((str(pid), *files))
        if key in self._asked:
            return
        self._asked.add(key)
        from_env = job_id_from_environ(pid) if pid is not None else None
        if from_env is not None:
            self._pending[row.path] = _Candidate(from_env, sure=True, file=row.path)
            return
        for file in files:
            from_name = job_id_from_name(os.path.basename(file))
            if from_name is not None:
                self._pending[row.path] = _Candidate(from_name, sure=False, file=file)
                return

    # ----------------------------------------------------------------- asking

    def lookup(self, snapshot: Snapshot) -> Snapshot:
        """Ask Slurm now about every run of ``snapshot`` and attach the answers (``trainwatch snapshot``)."""
        if not self.enabled:
            return snapshot
        self.annotate(snapshot)
        self._resolve()
        return self.annotate(snapshot)

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="trainwatch-slurm", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=TIMEOUT + 5)

    def _loop(self) -> None:
        due = 0.0  # when (monotonic) the live jobs are next asked about; 0: none is live
        while not self._stopping.is_set():
            self._wake.wait(max(0.0, due - _now()) if due else None)
            if self._stopping.is_set():
                return
            self._wake.clear()
            news = False
            try:
                news = self._resolve()
                if due and _now() >= due:
                    news |= self._refresh()
                    due = 0.0
            except Exception:  # a surprise in Slurm's output must not end the watching
                log.exception("trainwatch: asking Slurm failed")
            with self._lock:
                live = any(not job.ended for job in self._jobs.values())
            if not live:
                due = 0.0
            elif not due:
                due = _now() + self._interval
            if news and self.on_news is not None:
                self.on_news()

    def _resolve(self) -> bool:
        """Check the new candidates with Slurm; ``True`` if a run got its job."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return False
        known = self._slurm.queue(c.job_id for c in pending.values())
        found: dict[str, tuple[str, SlurmJob]] = {}
        for path, candidate in pending.items():
            if candidate.job_id not in known and not candidate.sure:
                continue  # Slurm knows no such job: the number in the name is something else
            fields = self._slurm.show(candidate.job_id)
            if fields is not None and (candidate.sure or owns(fields, candidate.file)):
                found[path] = (candidate.job_id, known.get(candidate.job_id) or job_from_fields(fields))
            elif candidate.sure and candidate.job_id in known:
                found[path] = (candidate.job_id, known[candidate.job_id])
        with self._lock:
            for path, (job_id, job) in found.items():
                self._job_of[path] = job_id
                self._jobs[job_id] = job
        return bool(found)

    def _refresh(self) -> bool:
        """One ``squeue`` for every live job; ``True`` if any changed."""
        with self._lock:
            live = [job_id for job_id, job in self._jobs.items() if not job.ended]
        if not live:
            return False
        answers = self._slurm.queue(live)
        for job_id in live:
            if job_id not in answers:  # gone from the queue: scontrol may still know how it ended
                fields = self._slurm.show(job_id)
                if fields is not None:
                    answers[job_id] = job_from_fields(fields)
        changed = False
        with self._lock:
            for job_id in live:
                job = answers.get(job_id)
                if job is None:
                    # Forgotten by Slurm (its MinJobAge passed while we could not ask),
                    # or Slurm is down: after a few misses, show nothing rather than a stale state.
                    self._misses[job_id] = self._misses.get(job_id, 0) + 1
                    if self._misses[job_id] >= MAX_MISSES:
                        self._forget(job_id)
                        changed = True
                    continue
                self._misses.pop(job_id, None)
                if self._jobs.get(job_id) != job:
                    self._jobs[job_id] = job
                    changed = True
        return changed

    def _forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self._misses.pop(job_id, None)
        for path in [p for p, j in self._job_of.items() if j == job_id]:
            del self._job_of[path]


def _now() -> float:
    return time.monotonic()


def lookup_once(snapshot: Snapshot) -> Snapshot:
    """``snapshot`` with every run's Slurm job attached, asking Slurm now (nothing without Slurm)."""
    with contextlib.suppress(Exception):  # Slurm's surprises must not cost the snapshot
        return SlurmWatch().lookup(snapshot)
    return snapshot
