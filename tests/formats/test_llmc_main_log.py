"""llmc_main_log: llm.c's ``main.log`` (``s:<step> trl|tel|eval:<value>``)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import SNIFF_BYTES, by_format, detect, llmc_main
from trainwatch.parsers.llmc_main import LlmcMainLogParser

NOW = datetime(2030, 1, 1)
NAME = "llmc_stdout/llmc_main_124M_19552steps.log"


def _feed(lines: list[str], flush: bool = True) -> list[Record]:
    parser = LlmcMainLogParser()
    records = [record for line in lines for record in parser.feed(line)]
    return records + (parser.flush() if flush else [])


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def test_corpus_file(corpus: Path) -> None:
    lines = (corpus / NAME).read_text().split("\n")
    records = _feed([line.removesuffix("\r") for line in lines])
    stats = _stats(records)
    # 19552 "trl" lines, s:0 .. s:19551 (grep -c ' trl:'); the last "s:19552 tel"
    # (the final evaluation, after the last step trained) is the largest step printed.
    assert (stats.iter, stats.logged_iters, stats.segments) == (19552, 19552, 1)
    assert stats.loss == pytest.approx(3.2813)  # "s:19551 trl:3.2813 lr:0.000000 norm:0.23"
    assert stats.val_loss == pytest.approx(3.2731)  # "s:19552 tel:3.2731"
    # The last tel/eval sit at s:19552, off the every-250 cadence of the
    # other 79: llm.c evaluates off-cadence only at its last step.
    assert (stats.target, stats.target_source, stats.status) == (19552, "log", "finished")
    assert stats.mean_iter_s is None and stats.mfu_mean_pct is None  # main.log has no timing
    evals = [r for r in records if isinstance(r, Eval)]
    assert len(evals) == 80  # grep -c ' tel:'
    assert sum(bool(e.metrics) for e in evals) == 79  # grep -c ' eval:' (none at s:0)
    assert evals[0] == Eval(iter=0, val_loss=11.0095)  # "s:0 tel:11.0095"
    assert evals[-1] == Eval(iter=19552, val_loss=3.2731, metrics={"hellaswag": 0.3054})


def test_sniff(corpus: Path) -> None:
    head = (corpus / NAME).read_bytes()[:SNIFF_BYTES]
    spec = detect(head, "main.log")
    assert spec is not None and spec.format == "llmc_main_log"
    assert by_format("llmc_main_log") is llmc_main.SPEC
    assert not llmc_main.sniff("0 train 10.98\n1 train 10.5\n", "log.txt")  # build-nanogpt
    assert not llmc_main.sniff("", "main.log")


def test_records_and_numbering() -> None:
    records = _feed(
        [
            "s:0 tel:11.0095",
            "s:0 trl:11.0116 lr:0.000001 norm:14.96",
            "s:1 trl:nan lr:0.000002 norm:nan",
            "s:2 tel:6.1565",
            "s:2 eval:0.2437",
            "garbage",
        ]
    )
    assert len(records) == 4
    assert records[0] == Eval(iter=0, val_loss=11.0095)  # tel before the first step: iteration 0
    assert records[1] == Iteration(iter=0, loss=11.0116, lr=1e-06, grad_norm=14.96)  # trl s:0: step 0, as printed
    nan_step = records[2]
    assert isinstance(nan_step, Iteration) and nan_step.iter == 1 and math.isnan(nan_step.loss or 0.0)
    assert records[3] == Eval(iter=2, val_loss=6.1565, metrics={"hellaswag": 0.2437})
    assert _stats(records).status == "diverged"


def test_final_eval_on_cadence_is_not_taken_for_the_end() -> None:
    lines = [f"s:{s} tel:3.0" for s in (0, 250, 500)] + ["s:500 trl:3.1 lr:0.1 norm:0.2"]
    records = _feed(lines)
    assert not [r for r in records if isinstance(r, Outcome | RunInfo)]


def test_off_cadence_eval_finishes_the_run() -> None:
    lines = [f"s:{s} tel:3.0" for s in (0, 250, 500)] + ["s:612 tel:2.9", "s:612 eval:0.3"]
    records = _feed(lines, flush=False)
    assert records[-3:] == [
        Eval(iter=612, val_loss=2.9, metrics={"hellaswag": 0.3}),
        RunInfo(target=612),
        Outcome("finished", "final evaluation at step 612, off the every-250 cadence"),
    ]


def test_restart_is_a_new_segment() -> None:
    lines = [f"s:{s} trl:3.0 lr:0.1 norm:0.2" for s in (0, 1, 2, 1, 2, 3)]
    stats = _stats(_feed(lines))
    assert (stats.segments, stats.iter) == (2, 3)  # s:3 is the largest step printed
