"""The paths read once, for ``trainwatch snapshot``: every file read to its
end and grouped into runs as the live app groups them, documents caught
mid-rewrite read again, and the writers of the local logs looked up once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainwatch.core.box import BoxFacts
    from trainwatch.core.options import RunOptions
    from trainwatch.ingest.grouping import GroupRules, Groups
    from trainwatch.ingest.source import LogSource

#: How long ``snapshot`` waits for a document caught mid-rewrite (the seed's
#: logger rewrites its JSON in place, not atomically), and how often it looks.
REWRITE_WAIT_S, REWRITE_POLL_S = 2.0, 0.02


def load(paths: list[Path], options: RunOptions, rules: GroupRules) -> tuple[list[LogSource], list[str], Groups]:
    """Every file under the paths read once, grouped into runs as the live app groups them."""
    from trainwatch.ingest import grouping, remote
    from trainwatch.ingest.discover import discover
    from trainwatch.ingest.rotation import read_copies
    from trainwatch.ingest.source import LogSource, SourceError

    groups = grouping.Groups(rules)
    remote_roots, local = remote.split_roots(paths)
    files, problems = discover(local)
    chains = grouping.rotation_chains([str(p) for p in files], _mtime, groups.rules)
    copies = {copy for chain in chains.values() for copy in chain}
    groups.read_with.update(chains)
    sources = []
    for path in files:
        if str(path) in copies:
            continue  # read with its log, below
        source = LogSource(path, options)
        try:
            problems += read_copies(source, chains.get(str(path), ()))
            source.refresh()
            source.flush()
        except SourceError as exc:
            problems.append(str(exc))
            continue
        sources.append(source)
    problems += _await_rewrites(sources)
    if remote_roots:
        far, far_problems = remote.load(remote_roots, options)
        sources += far
        problems += far_problems
    for source in sources:
        groups.add(str(source.path))
    for source in sources:  # (once every file is placed: a log's .err follows it)
        groups.claim(str(source.path), grouping.named_folders(source.agg))
    return sources, problems, groups


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def box_facts(sources: list[LogSource]) -> Mapping[str, BoxFacts]:
    """The writers (and their GPUs) of the local logs, looked up once."""
    from trainwatch.ingest import remote
    from trainwatch.system.probe import BoxWatch

    local = [str(s.path) for s in sources if remote.host_of(str(s.path)) is None]
    probe = BoxWatch()
    try:
        return probe.look(local, local)
    finally:
        probe.close()


def _await_rewrites(sources: list[LogSource]) -> list[str]:
    """Read again, for up to REWRITE_WAIT_S, the documents caught mid-rewrite;
    a problem for each still half-written (a snapshot must not say "no runs"
    of a run whose log was being rewritten at that instant)."""
    import time

    from trainwatch.ingest.source import SourceError

    pending = [source for source in sources if source.being_written]
    deadline = time.monotonic() + REWRITE_WAIT_S
    while pending and time.monotonic() < deadline:
        time.sleep(REWRITE_POLL_S)
        for source in pending:
            try:
                source.refresh()
            except SourceError:
                continue  # (gone, or unreadable now: reported as still being written)
        pending = [source for source in pending if source.being_written]
    return [f"{source.path}: being written, try again" for source in pending]
