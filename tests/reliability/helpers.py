"""Shared checks for the reliability tests: budgets, deadlines, invariants.

``FULL`` is set from ``pytest --full`` (see ``conftest.py``) before any test
module is imported, so sizes chosen at import time (hypothesis settings) see it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import signal
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import conftest  # tests/ is on sys.path

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Record
from trainwatch.core.rows import RunRow, Snapshot
from trainwatch.core.stats import RunStats
from trainwatch.outputs.export import render, rich_table
from trainwatch.parsers.base import ParserSpec

FULL = False
#: The corpus folder: ../shared/corpus or $TRAINWATCH_CORPUS.
CORPUS = conftest.CORPUS

#: Any input gets this long, plus PER_MB for each megabyte, before it counts
#: as a hang. Generous (a loaded 2-core CI box), yet a quadratic blow-up on a
#: few MB takes minutes and fails it.
BASE_S = 2.0
PER_MB_S = 6.0
NOW = datetime(2030, 1, 1, 12, 0, 0)

#: Figures that are times or counts: never negative, never NaN or inf.
NON_NEGATIVE = (
    "iter",
    "target",
    "logged_iters",
    "eval_iters",
    "segments",
    "progress_pct",
    "train_time_logged_s",
    "mean_iter_s",
    "eta_s",
    "wall_elapsed_s",
    "rate_s",
    "tokens_per_iter",
    "tokens_per_hour",
    "tokens_per_sec",
    "effective_batch",
    "batch_size",
    "grad_accum",
    "world_size",
    "params",
)


def scale(default: int, full: int) -> int:
    """``full`` under ``pytest --full``, else ``default``."""
    return full if FULL else default


def budget_s(nbytes: int) -> float:
    return BASE_S + PER_MB_S * nbytes / 1e6


@contextlib.contextmanager
def deadline(seconds: float, what: str = "") -> Iterator[None]:
    """Fail (instead of hanging the suite) if the body runs past ``seconds``.

    SIGALRM interrupts Python code and the ``re`` engine alike, so a
    catastrophic backtrack becomes a test failure with a traceback.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds:.1f}s: {what}")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def within_budget(nbytes: int, what: str) -> Iterator[None]:
    """The body fails as a hang past ``budget_s(nbytes)``. A hang guard, tens of
    times what the body takes, not a speed test: speed is in benchmarks/."""
    with deadline(budget_s(nbytes), f"{what} ({nbytes / 1e6:.2f} MB)"):
        yield


def parse(spec: ParserSpec, data: bytes) -> list[Record]:
    """Every record ``spec`` makes of ``data``, fed the way ``LogSource`` feeds it."""
    if spec.kind == "document":
        assert spec.parse_document is not None
        records = list(spec.parse_document(data) or [])
        if spec.parse_document_resumable is not None:
            spec.parse_document_resumable(data)
        return records
    if spec.kind == "records":  # binary, append-only: the bytes in two pieces, as a tail may cut them
        assert spec.new_record_parser is not None
        reader = spec.new_record_parser()
        half = len(data) // 2
        return [*reader.feed(data[:half]), *reader.feed(data[half:]), *reader.flush()]
    assert spec.new_line_parser is not None
    parser = spec.new_line_parser()
    out: list[Record] = []
    for line in data.decode("utf-8", "replace").split("\n"):
        out += parser.feed(line.removesuffix("\r"))
    flush = getattr(parser, "flush", None)
    if flush is not None:
        out += flush()
    return out


def stats_of(records: Sequence[Record], now: datetime = NOW) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now)


def check_stats(stats: RunStats, where: str = "") -> None:
    """No negative or non-finite time or count."""
    for name in NON_NEGATIVE:
        value = getattr(stats, name)
        if value is None:
            continue
        assert isinstance(value, int | float), (where, name, value)
        assert math.isfinite(value) and value >= 0, f"{where}: {name} = {value!r}"


def _reject(token: str) -> Any:
    raise ValueError(f"non-standard JSON constant {token}")


def strict_json(text: str) -> Any:
    """``text`` parsed as strict JSON (no NaN/Infinity)."""
    return json.loads(text, parse_constant=_reject)


def render_everything(snapshot: Snapshot) -> dict[str, str]:
    """Every export format and the terminal table; the JSON checked strictly."""
    from rich.console import Console

    out = {kind: render(snapshot, kind) for kind in ("json", "csv", "md", "html")}
    strict_json(out["json"])
    console = Console(record=True, width=160, file=io.StringIO(), color_system=None)
    console.print(rich_table(snapshot, 160))
    out["table"] = console.export_text()
    return out


__all__ = ["render"]  # re-exported for the tests


def snapshot_of(stats: RunStats, name: str = "run", path: str = "run.log", fmt: str = "fuzz") -> Snapshot:
    return Snapshot(NOW, (RunRow(name, path, fmt, stats),))
