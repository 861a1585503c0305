"""Rewrite refresh: a 100 MB seed JSON log rewritten with 10 more entries.

The seed's logger rewrites its whole document every few iterations. The
figure is ``LogSource.refresh()`` after such a rewrite (the file is in the
page cache, as it is right after a write); the baseline is the full parse of
the same file by a fresh source. Target: 10 ms per refresh, i.e. a cost that
follows the new entries, not the file. The figures after the last rewrite are
checked against a full parse: they must be identical.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from benchmarks import generate
from benchmarks.core import Context, Row, best_of, percentile
from trainwatch.ingest.source import LogSource
from trainwatch.parsers import llm_tii_json

NEW_ENTRIES = 10


def _counting(source: LogSource, counts: dict[str, int]) -> None:
    """Count the full parses and the resumed ones the source does."""
    assert source.spec is not None

    def full(data: bytes) -> Any:
        counts["full"] += 1
        return llm_tii_json.parse_document_resumable(data)

    def resumed(data: bytes, previous: Any) -> Any:
        result = llm_tii_json.parse_document_from(data, previous)
        counts["resumed"] += result is not None
        return result

    source.spec = replace(source.spec, parse_document_resumable=full, parse_document_from=resumed)


def run(ctx: Context) -> None:
    sizes = ctx.sizes
    path = ctx.data / f"refresh-{sizes.json_entries}.json"
    doc = generate.seed_doc(sizes.json_entries, finished=False)
    path.write_bytes(generate.dump(doc))
    mb = path.stat().st_size / 1e6
    source = LogSource(path)
    source.refresh()
    (full,) = best_of(sizes.repeats, lambda: LogSource(path).refresh())
    counts = {"full": 0, "resumed": 0}
    _counting(source, counts)
    times: list[float] = []
    for k in range(sizes.rewrites):
        doc = generate.grow(doc, NEW_ENTRIES, seed=k)
        path.write_bytes(generate.dump(doc))  # the whole file, as the logger does
        start = time.perf_counter()
        source.refresh()
        times.append(time.perf_counter() - start)
    fresh = LogSource(path)
    fresh.refresh()
    now = datetime.now()
    identical = asdict(fresh.agg.stats(now)) == asdict(source.agg.stats(now))
    median, p95, worst = percentile(times, 50), percentile(times, 95), max(times)
    what = f"{mb:,.0f} MB seed JSON + {NEW_ENTRIES} entries, {len(times)} rewrites"
    note = (
        f"median of {len(times)}; p95 {p95 * 1000:.1f} ms, worst {worst * 1000:.1f} ms; "
        f"{counts['resumed']} resumed, {counts['full']} full parses; "
        f"figures identical to a full parse: {'yes' if identical else 'NO'}"
    )
    ctx.add(Row("refresh", what, median * 1000, "ms", "full parse", full * 1000, "≤ 10 ms", median <= 0.010, note))
    if not identical:
        ctx.notes.append("rewrite refresh: the resumed figures differ from a full parse (a bug)")
