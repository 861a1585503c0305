"""A snapshot: every run's figures at one moment, as the watcher publishes it.

Immutable: the watcher's thread builds one (``ingest.publish``) and hands it
to the app, the exports and Prometheus, which only read it. The JSON form is
``outputs.contract``.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from trainwatch.core.slurmjob import SlurmJob
from trainwatch.core.stats import RunStats


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as shown: its name, where it lives, and its figures."""

    name: str
    path: str
    format: str
    stats: RunStats
    #: The host a remote run is read from (``gpu1`` for ``me@gpu1:/runs/x.log``); ``None``: this machine.
    host: str | None = None
    #: Every file the run is read from, ``path`` first (one job writes several: ``ingest.grouping``).
    sources: tuple[str, ...] = ()
    #: The Slurm job the run belongs to, where one is known (``core.slurmjob``, ``system.slurm``).
    slurm: SlurmJob | None = None
    #: Its log was deleted: shown with its last figures (⚑), but no run any
    #: more for what counts runs (Prometheus has no series of it).
    gone: bool = False

    @property
    def key(self) -> str:
        """Stable identity of the row across updates: its primary file, kept as files join."""
        return self.path


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All runs at one moment, plus the files that are not runs."""

    generated_at: datetime
    rows: tuple[RunRow, ...]
    unrecognised: tuple[tuple[str, str], ...] = ()  # (path, reason)
    #: The first read of the logs found at the start is still going: rows may
    #: be missing, and a run's status may still move as its other files are read.
    loading: bool = False


def disambiguate(rows: list[RunRow]) -> list[RunRow]:
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
    return [replace(row, name=f"{row.name} · {suffix[id(row)]}") if id(row) in suffix else row for row in rows]


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
