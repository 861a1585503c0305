"""Resumed reads of the seed JSON log equal full parses, whatever the rewrites do.

A rewrite of a seed log usually adds entries to ``training_iterations`` and
changes the small tail after them. ``LogSource`` then reads only the bytes
past the last entry it parsed (``parse_document_from``). These tests drive
random rewrite sequences through one long-lived ``LogSource`` and compare
every figure with a fresh source that parses the file whole, and check that
changes a resume cannot follow (an earlier entry or eval edited, a restart
inside the settled part, a reformatted file) make it fall back to a full parse.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainwatch.ingest.source import LogSource
from trainwatch.parsers import llm_tii_json

NOW = datetime(2025, 11, 14, 12, 0)
SEED_RUN = "run_20251113_225009.json"


class Counting:
    """Wraps a source's parser functions to count full parses and resumes."""

    def __init__(self, source: LogSource) -> None:
        assert source.spec is not None
        self.full = self.resumed = 0
        spec = source.spec

        def full(data: bytes) -> Any:
            self.full += 1
            return llm_tii_json.parse_document_resumable(data)

        def resumed(data: bytes, previous: Any) -> Any:
            result = llm_tii_json.parse_document_from(data, previous)
            self.resumed += result is not None
            return result

        source.spec = replace(spec, parse_document_resumable=full, parse_document_from=resumed)


class Run:
    """A seed-format document being rewritten, and a source that follows it."""

    def __init__(self, folder: Path, real: dict[str, Any], entries: int) -> None:
        self.path = folder / "run.json"
        self.real = real
        self.doc = {k: copy.deepcopy(v) for k, v in real.items() if k not in ("end_time", "summary")}
        self.doc["training_iterations"] = copy.deepcopy(real["training_iterations"][:entries])
        self.doc["eval_steps"], self.doc["checkpoints"] = [], []
        self.mtime = 1_700_000_000_000_000_000
        self.indent = True
        self.write()
        self.source = LogSource(self.path)
        self.source.refresh()
        self.count = Counting(self.source)

    @property
    def entries(self) -> list[dict[str, Any]]:
        return self.doc["training_iterations"]  # type: ignore[no-any-return]

    def write(self, cut: int | None = None) -> None:
        data = orjson.dumps(self.doc, option=orjson.OPT_INDENT_2 if self.indent else 0)
        self.path.write_bytes(data if cut is None else data[: max(1, len(data) * cut // 100)])
        self.mtime += 1_000_000  # rewrites faster than the clock tick must still look new
        os.utime(self.path, ns=(self.mtime, self.mtime))

    def last_iter(self) -> int:
        return int(self.entries[-1]["iter"]) if self.entries else 0

    def entry(self, step: int) -> dict[str, Any]:
        template = self.real["training_iterations"][1 + step % 150]
        return {**copy.deepcopy(template), "iter": step, "loss": 3.0 + (step % 97) / 100}

    def check(self) -> None:
        """The long-lived source says exactly what a fresh full parse says."""
        self.source.refresh()
        fresh = LogSource(self.path)
        fresh.refresh()
        assert fresh.ready == self.source.ready
        if fresh.ready:
            assert asdict(self.source.agg.stats(NOW)) == asdict(fresh.agg.stats(NOW))


OPS = st.sampled_from(
    [
        *("grow", "grow", "grow", "grow_many", "eval_ahead", "eval_behind", "edit_entry", "edit_eval"),
        *("finish", "unfinish", "metadata", "restart", "partial", "same", "compact", "indent", "new_key"),
    ]
)


class Real:
    """The real seed log, read once (not a fixture value: hypothesis would print it)."""

    doc: dict[str, Any] | None = None


@pytest.fixture()
def real(corpus: Path) -> dict[str, Any]:
    if Real.doc is None:
        Real.doc = orjson.loads((corpus / "llm_tii_json" / SEED_RUN).read_bytes())
    assert Real.doc is not None
    return Real.doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, 12), ops=st.lists(st.tuples(OPS, st.integers(0, 10_000)), min_size=1, max_size=12))
def test_random_rewrites_equal_full_parses(
    tmp_path_factory: pytest.TempPathFactory, corpus: Path, start: int, ops: list[tuple[str, int]]
) -> None:
    if Real.doc is None:
        Real.doc = orjson.loads((corpus / "llm_tii_json" / SEED_RUN).read_bytes())
    run = Run(tmp_path_factory.mktemp("resume"), Real.doc, start)
    for op, n in ops:
        full_before = run.count.full
        last = run.last_iter()
        expect_full = False
        if op in ("grow", "grow_many"):
            for k in range(1 + n % (3 if op == "grow" else 40)):
                run.entries.append(run.entry(last + 10 * (k + 1)))
        elif op == "eval_ahead":
            run.doc["eval_steps"].append({"iter": last + 10, "train_loss": 2.5, "val_loss": 2.6 + n / 1e5})
            run.doc["checkpoints"].append({"iter": last + 10, "path": "out/ckpt.pt"})
        elif op == "eval_behind" and run.entries:
            # An eval logged among iterations already read: only a full parse places it.
            run.doc["eval_steps"].append({"iter": max(0, last - 10), "train_loss": 2.5, "val_loss": 2.7})
            run.doc["eval_steps"].sort(key=lambda e: e["iter"])
            expect_full = True
        elif op == "edit_entry" and run.entries:
            # Another length: the bytes before the resume point shift, which the check always
            # sees (a same-length edit is seen only where a sampled window falls: not promised).
            entry = run.entries[n % len(run.entries)]
            loss = run.mtime / 1e18 + 1 / 3
            if len(orjson.dumps(loss)) == len(orjson.dumps(entry["loss"])):
                loss = -loss  # one character more
            entry["loss"] = loss
            expect_full = True
        elif op == "edit_eval" and run.doc["eval_steps"]:
            run.doc["eval_steps"][n % len(run.doc["eval_steps"])]["val_loss"] = run.mtime / 1e18 + 1 / 7
            expect_full = run.doc["eval_steps"][n % len(run.doc["eval_steps"])]["iter"] <= last
        elif op == "finish":
            run.doc["end_time"] = "2025-11-14T14:34:25.025009"
            run.doc["summary"] = {"total_iterations": len(run.entries), "final_iter": last}
        elif op == "unfinish":
            run.doc.pop("end_time", None)
            run.doc.pop("summary", None)
        elif op == "metadata":
            run.doc["metadata"] = {**run.doc.get("metadata", {}), "world_size": 1 + n % 8}
        elif op == "restart" and run.entries:
            run.entries.append(run.entry(max(0, last - 10 * (1 + n % 5))))
        elif op == "partial":
            run.write(cut=n % 100)  # caught mid-write: the last good figures stay
            run.source.refresh()
        elif op == "compact":
            run.indent, expect_full = False, run.indent
        elif op == "indent":
            run.indent, expect_full = True, not run.indent
        elif op == "new_key":
            run.doc["config"] = {**run.doc["config"], "note": f"rewritten at {run.mtime}"}
            expect_full = True
        run.write()
        run.check()
        if expect_full and run.source.ready:
            assert run.count.full > full_before, f"{op} must fall back to a full parse"


def test_growth_is_read_from_the_resume_point(tmp_path: Path, real: dict[str, Any]) -> None:
    run = Run(tmp_path, real, 50)
    for step in range(3):
        run.entries.extend(run.entry(run.last_iter() + 10) for _ in range(10))
        run.doc["end_time" if step == 2 else "note"] = "2025-11-14T14:34:25"
        run.write()
        run.check()
    assert (run.count.full, run.count.resumed) == (0, 3)


def test_same_length_edit_before_the_resume_point_is_seen(tmp_path: Path, real: dict[str, Any]) -> None:
    run = Run(tmp_path, real, 100)
    run.entries[-1]["loss"] += 1.0  # 8.x -> 9.x: same length, in the window before the resume point
    run.write()
    run.check()
    assert (run.count.full, run.count.resumed) == (1, 0)


def test_replaced_by_another_run_is_seen(tmp_path: Path, real: dict[str, Any]) -> None:
    run = Run(tmp_path, real, 100)
    run.doc["run_name"] = "run_20251113_225010"  # same length, in the head
    run.entries.append(run.entry(run.last_iter() + 10))
    run.write()
    run.check()
    assert (run.count.full, run.count.resumed) == (1, 0)
