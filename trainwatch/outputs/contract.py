"""The JSON contract of a snapshot (docs: SNAPSHOT.md).

The live app's export key, ``trainwatch snapshot -f json`` and the other
exports all go through ``run_record``, so the figures a user exports are
exactly the figures on screen. Field names are stable: add fields freely,
never rename or drop one.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from trainwatch import __version__
from trainwatch.core.box import Gpu, Writer
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.core.slurmjob import beyond_limit_s, work_at_risk


def run_record(row: RunRow) -> dict[str, Any]:
    """The stable JSON object of one run (SNAPSHOT.md)."""
    s = row.stats
    return {
        "run": row.name,
        "run_id": s.run_id,
        "path": row.path,
        "sources": list(row.sources or (row.path,)),
        "format": row.format,
        "status": s.status,
        "iter": s.iter,
        "target": s.target,
        "target_source": s.target_source,
        "progress_pct": _number(s.progress_pct),
        "loss": _number(s.loss),
        "val_loss": _number(s.val_loss),
        "batch_size": s.batch_size,
        "grad_accum": s.grad_accum,
        "world_size": s.world_size,
        "effective_batch": _number(s.effective_batch),
        "tokens_per_iter": s.tokens_per_iter,
        "logged_iters": s.logged_iters,
        "eval_iters": s.eval_iters,
        "train_time_logged_s": _number(s.train_time_logged_s),
        "train_time_s": _number(s.train_time_s),
        "train_time_estimated": s.train_time_estimated,
        "mean_iter_s": _number(s.mean_iter_s),
        "tokens_per_hour": _number(s.tokens_per_hour),
        "tokens_per_sec": _number(s.tokens_per_sec),
        "tokens_per_sec_logged": _number(s.tokens_per_sec_logged),
        "tokens_per_sec_logged_scope": s.tokens_per_sec_logged_scope,
        "mfu_mean_pct": _number(s.mfu_mean_pct),
        "mfu_now_pct": _number(s.mfu_now_pct),
        "mfu_derived": s.mfu_derived,
        "mfu_dense_pct": _number(s.mfu_dense_pct),
        "tokens_per_iter_source": s.tokens_per_iter_source,
        "segments": s.segments,
        "warnings": list(s.warnings),
        "params": s.params,
        "gpu": s.gpu,
        "wall_elapsed_s": _number(s.wall_elapsed_s),
        "eta_s": _number(s.eta_s),
        "started_at": _iso(s.started_at),
        "finish_at": _iso(s.finish_at),
        "last_update_at": _iso(s.last_update_at),
        "hangs": [{"iter": step, "seconds": _number(seconds)} for step, seconds in s.hangs],
        "process": process_record(s.process),
        "gpus": [gpu_record(g) for g in s.gpus],
        "slurm": slurm_record(row),
    }


def process_record(writer: Writer | None) -> dict[str, Any] | None:
    """The process writing the log (SNAPSHOT.md ``process``); ``None`` where none is known.
    ``pid`` is the writer's; ``pids`` every process counted in (a launcher's workers)."""
    if writer is None:
        return None
    return {
        "pid": writer.pid,
        "alive": writer.alive,
        "cmdline": writer.cmdline,
        "started_at": _iso(writer.started_at),
        "pids": list(writer.pids),
        "user": writer.user,
        "how": writer.how,
        "cpu_pct": _round(writer.cpu_pct, 1),
        "rss_mib": _round(writer.rss_bytes / 2**20 if writer.rss_bytes is not None else None, 1),
    }


def gpu_record(gpu: Gpu) -> dict[str, Any]:
    """One GPU of the run (SNAPSHOT.md ``gpus``), as last sampled."""
    return {
        "index": gpu.index,
        "name": gpu.name,
        "util_pct": _round(gpu.util_pct, 1),
        "mem_used_mib": _round(gpu.mem_used_mib, 1),
        "mem_total_mib": _round(gpu.mem_total_mib, 1),
        "power_w": _round(gpu.power_w, 1),
        "power_limit_w": _round(gpu.power_limit_w, 1),
        "temp_c": _round(gpu.temp_c, 1),
        "run_mem_mib": _round(gpu.run_mem_mib, 1),
    }


def slurm_record(row: RunRow) -> dict[str, Any] | None:
    """The run's Slurm job (SNAPSHOT.md ``slurm``); ``None`` where none is known.
    ``eta_beyond_limit_s``: how far the finish lies past the job's end (negative: the margin)."""
    job = row.slurm
    if job is None:
        return None
    last, since = work_at_risk(row.stats)
    return {
        "job_id": job.job_id,
        "state": job.state,
        "reason": job.reason,
        "time_limit_s": job.time_limit_s,
        "started_at": _iso(job.started_at),
        "ends_at": _iso(job.ends_at),
        "nodes": job.nodes,
        "eta_beyond_limit_s": _round(beyond_limit_s(job, row.stats), 1),
        "checkpoint_iter": last,
        "since_checkpoint_s": _round(since, 1),
    }


def snapshot_record(snapshot: Snapshot) -> dict[str, Any]:
    """The whole snapshot as the JSON contract's top-level object."""
    generated = snapshot.generated_at
    if generated.tzinfo is None:
        generated = generated.astimezone()
    return {
        "generated_at": generated.astimezone(UTC).isoformat(timespec="seconds"),
        "trainwatch_version": __version__,
        "runs": [run_record(row) for row in snapshot.rows],
        "unrecognised": [{"path": path, "reason": reason} for path, reason in snapshot.unrecognised],
    }


def _number(value: float | None) -> float | None:
    """A figure as it is: logged values keep the precision the log printed
    (a loss printed 2.921752 stays 2.921752), derived ones their full
    precision; the tables round for people, JSON and CSV never do."""
    if value is None or not math.isfinite(value):
        return None  # NaN/inf are not JSON; the status says "diverged"
    return value


def _round(value: float | None, digits: int) -> float | None:
    """A reading of the machine's (CPU %, MiB, watts), not a logged figure:
    rounded to what its sensor means, ``None`` where unknown."""
    number = _number(value)
    return round(number, digits) if number is not None else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None
