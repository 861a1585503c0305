"""A snapshot: every run's figures at one moment, and its JSON contract.

The live app, its export key and ``trainwatch snapshot`` all go through
``Snapshot`` and ``run_record``, so the figures a user exports are exactly
the figures on screen. Field names are stable (shared/design/SNAPSHOT.md):
add fields freely, never rename or drop one.
"""

from __future__ import annotations

import functools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainwatch import __version__
from trainwatch.names import Names, display_name
from trainwatch.source import LogSource
from trainwatch.stats import RunStats


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as shown: its name, where it lives, and its figures."""

    name: str
    path: str
    format: str
    stats: RunStats

    @property
    def key(self) -> str:
        """Stable identity of the row across updates (its file)."""
        return self.path


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All runs at one moment, plus the files that are not runs."""

    generated_at: datetime
    rows: tuple[RunRow, ...]
    unrecognised: tuple[tuple[str, str], ...] = ()  # (path, reason)


def build(
    sources: Iterable[LogSource],
    names: Names,
    now: datetime,
    derive: Callable[[LogSource], RunStats] | None = None,
) -> Snapshot:
    """Rows for every source that holds a run; the rest as unrecognised.

    ``derive`` gives a source's stats (default: derived afresh as of ``now``);
    the watcher passes one that reuses the stats of sources that did not change."""
    rows: list[RunRow] = []
    unrecognised: list[tuple[str, str]] = []
    for source in sources:
        if source.spec is None or not source.ready:
            unrecognised.append((str(source.path), source.problem or "not a training log"))
            continue
        stats = source.agg.stats(now) if derive is None else derive(source)
        if stats.logged_iters == 0 and stats.iter is None:
            unrecognised.append((str(source.path), f"{source.spec.format}: no iterations logged yet"))
            continue
        name = display_name(names, stats.run_id, stats.log_name, source.path)
        rows.append(RunRow(name, str(source.path), source.spec.format, stats))
    return Snapshot(now, tuple(_disambiguate(rows)), tuple(unrecognised))


def _disambiguate(rows: list[RunRow]) -> list[RunRow]:
    """Runs that share a name (the same out_dir, or two ``train.log``) get the
    shortest suffix that tells them apart: the run id, else as many parent
    folders as it takes."""
    groups: dict[str, list[RunRow]] = defaultdict(list)
    for row in rows:
        groups[row.name].append(row)
    if all(len(twins) == 1 for twins in groups.values()):
        return rows
    # Per group, not per row against every row: every job folder has its
    # train.log, and thousands of twins must not cost a quadratic scan.
    suffix: dict[int, str] = {}
    for twins in groups.values():
        if len(twins) > 1:
            found = _suffixes(tuple((r.path, r.stats.run_id) for r in twins))
            suffix.update(zip(map(id, twins), found, strict=True))
    return [
        RunRow(f"{row.name} · {suffix[id(row)]}", row.path, row.format, row.stats) if id(row) in suffix else row
        for row in rows
    ]


@functools.lru_cache(maxsize=64)
def _suffixes(twins: tuple[tuple[str, str | None], ...]) -> tuple[str, ...]:
    """For each of runs (path, run id) sharing a name: its run id if no twin
    has it, else the fewest trailing path parts no twin shares.

    Cached: the live view asks again on every update, for the same runs."""
    ids = Counter(run_id for _, run_id in twins)
    parts = [Path(path).parts for path, _ in twins]
    names = Counter(p[-1] for p in parts)
    tails: dict[int, Counter[tuple[str, ...]]] = {}  # depth -> how many twins end so
    out: list[str] = []
    for (path, run_id), mine in zip(twins, parts, strict=True):
        if run_id and ids[run_id] == 1:
            out.append(run_id)
            continue
        shown_as = path
        for depth in range(1, len(mine) + 1):
            if depth not in tails:
                tails[depth] = Counter(p[-depth:] for p in parts)
            tail = mine[-depth:]
            if tails[depth][tail] == 1:
                # The file name alone says nothing once folders differ: show the folders.
                shown = tail[:-1] if depth > 1 and names[mine[-1]] == len(twins) else tail
                shown_as = "/".join(shown)
                break
        out.append(shown_as)
    return tuple(out)


def run_record(row: RunRow) -> dict[str, Any]:
    """The stable JSON object of one run (SNAPSHOT.md)."""
    s = row.stats
    return {
        "run": row.name,
        "run_id": s.run_id,
        "path": row.path,
        "format": row.format,
        "status": s.status,
        "iter": s.iter,
        "target": s.target,
        "target_source": s.target_source,
        "progress_pct": _round(s.progress_pct, 1),
        "loss": _round(s.loss, 4),
        "val_loss": _round(s.val_loss, 4),
        "batch_size": s.batch_size,
        "grad_accum": s.grad_accum,
        "world_size": s.world_size,
        "effective_batch": _round(s.effective_batch, 2),
        "tokens_per_iter": s.tokens_per_iter,
        "logged_iters": s.logged_iters,
        "eval_iters": s.eval_iters,
        "train_time_logged_s": _round(s.train_time_logged_s, 1),
        "mean_iter_s": _round(s.mean_iter_s, 3),
        "tokens_per_hour": _round(s.tokens_per_hour, 0),
        "tokens_per_sec": _round(s.tokens_per_sec, 1),
        "tokens_per_sec_logged": _round(s.tokens_per_sec_logged, 1),
        "tokens_per_sec_logged_scope": s.tokens_per_sec_logged_scope,
        "mfu_mean_pct": _round(s.mfu_mean_pct, 2),
        "mfu_now_pct": _round(s.mfu_now_pct, 2),
        "mfu_derived": s.mfu_derived,
        "mfu_dense_pct": _round(s.mfu_dense_pct, 1),
        "tokens_per_iter_source": s.tokens_per_iter_source,
        "segments": s.segments,
        "warnings": list(s.warnings),
        "params": s.params,
        "gpu": s.gpu,
        "wall_elapsed_s": _round(s.wall_elapsed_s, 1),
        "eta_s": _round(s.eta_s, 1),
        "started_at": _iso(s.started_at),
        "finish_at": _iso(s.finish_at),
        "last_update_at": _iso(s.last_update_at),
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


def _round(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None  # NaN/inf are not JSON; the status says "diverged"
    return round(value, digits)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment is not None else None
