"""buildnanogpt_logtxt: build-nanogpt's log.txt (``<step> <kind> <value>``)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Record
from trainwatch.core.stats import RunStats
from trainwatch.parsers import buildnanogpt, detect

NOW = datetime(2030, 1, 1)
RESUMED = "buildnanogpt_13L_38k_with_val_and_resume_markers.txt"
EXPORTS = "buildnanogpt_v1_20k_train_with_export_evaluate_lines.txt"


def _feed(lines: list[str]) -> list[Record]:
    parser = buildnanogpt.new_parser()
    return [record for line in lines for record in parser.feed(line)]


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _corpus(corpus: Path, name: str) -> tuple[str, list[Record]]:
    path = corpus / "buildnanogpt_logtxt" / name
    data = path.read_bytes()
    spec = detect(data[:16384], path.name)
    assert spec is not None
    return spec.format, _feed(data.decode().split("\n"))


# name, iterations done, last train loss, last val loss, segments
CASES = [
    (
        RESUMED,
        37999,  # grep ' train ' | tail -1: "37999 train 2.831837" (the step as printed)
        2.831837,
        3.055331,  # grep ' val ' | tail -1: "37999 val 3.055331"
        2,  # awk: train steps go back once (10314 -> 10001, after the 2nd "# resumed")
    ),
    (
        EXPORTS,
        20248,  # grep ' train ' | tail -1: "20248 train 3.186557"
        3.186557,
        3.312497,  # no val lines; grep evaluate | tail -1: "20000 evaluate ... loss 3.312497"
        1,  # awk: train steps never go back
    ),
]


@pytest.mark.parametrize(("name", "done", "loss", "val", "segments"), CASES)
def test_corpus_file(corpus: Path, name: str, done: int, loss: float, val: float, segments: int) -> None:
    fmt, records = _corpus(corpus, name)
    assert fmt == "buildnanogpt_logtxt"
    st = _stats(records)
    assert st.iter == done
    assert st.loss == pytest.approx(loss)
    assert st.val_loss == pytest.approx(val)
    assert st.segments == segments
    assert st.target_source == "default"  # log.txt never states max_steps
    assert st.mean_iter_s is None  # no timing in this format


def test_a_target_the_user_sets_moves_progress_not_status(corpus: Path) -> None:
    _, records = _corpus(corpus, RESUMED)
    agg = RunAggregator(target_override=37999)
    agg.add_all(records)
    stats = agg.stats(now=NOW)
    # 37999 of 37999: full progress, but only the log's own word finishes a run
    assert (stats.status, stats.progress_pct) == ("running", 100.0)


def test_export_and_evaluate_lines(corpus: Path) -> None:
    _, records = _corpus(corpus, EXPORTS)
    checkpoints = [r for r in records if isinstance(r, Checkpoint)]
    evals = [r for r in records if isinstance(r, Eval)]
    # grep -c ' export ': 20; grep -c ' evaluate ': 20
    assert len(checkpoints) == 20 and len(evals) == 20
    # "1000 export log/submission_20260425_alvin_01000" (follows "1000 train"): at the printed step
    assert checkpoints[0] == Checkpoint(iter=1000, path="log/submission_20260425_alvin_01000")
    # "1000 evaluate ppl 93.8204 loss 4.541382 tok 5169152 sec 124.16"
    assert evals[0].iter == 1000 and evals[0].val_loss == pytest.approx(4.541382)
    assert evals[0].metrics == {"ppl": 93.8204, "tok": 5169152.0, "sec": 124.16}


def test_resume_comment_blank_and_val_lines() -> None:
    records = _feed(
        ["", "# resumed at 2026-05-30T00:35:08 from step 8001", "8001 train 2.85", "8002 val 3.3", "8002 train 3.0"]
    )
    assert [(type(r).__name__, r.iter) for r in records] == [("Iteration", 8001), ("Eval", 8002), ("Iteration", 8002)]


def test_hella_nan_and_junk() -> None:
    records = _feed(["0 hella 0.2955", "0 train nan", "12 train", "12 val abc", "step 5 | loss 2.0", "5 lr 0.0006"])
    assert isinstance(records[0], Eval) and records[0].metrics == {"hellaswag": 0.2955}
    assert isinstance(records[1], Iteration) and records[1].loss is not None and math.isnan(records[1].loss)
    assert len(records) == 2
    assert _stats(records).status == "diverged"


def test_evaluate_loss_stays_a_metric_when_val_lines_exist() -> None:
    records = _feed(["0 val 3.5", "0 train 3.6", "0 evaluate ppl 30 loss 3.4"])
    last = records[-1]  # both at the printed step 0: one evaluation, whose val loss is the val line's
    assert isinstance(last, Eval) and last.val_loss == 3.5 and last.metrics["loss"] == 3.4


def test_sniff() -> None:
    head = "\n# resumed at 2026 from step 1\n1 train 2.5\n2 train 2.4\n2 val 2.6\n3 train 2.3\n"
    assert buildnanogpt.sniff(head, "log.txt")
    assert not buildnanogpt.sniff("1 train 2.5\n2 train 2.4\n", "log.txt")  # too few lines
    prose = "".join(f"line {i} of the story\n" for i in range(20)) + "1 train 2\n2 train 2\n3 train 2\n"
    assert not buildnanogpt.sniff(prose, "notes.txt")
    assert not buildnanogpt.sniff("iter 0: loss 2.5, time 1ms\n" * 5, "train.log")


def test_hellaswag_keeps_the_val_loss_of_its_step() -> None:
    # train_gpt2.py writes "<step> val" and then "<step> hella" for one evaluation.
    lines = ["0 val 10.9853", "0 hella 0.2463", "0 train 10.955", "250 val 6.0147", "250 hella 0.2510", "250 train 6.1"]
    records = _feed(lines)
    evals = [r for r in records if isinstance(r, Eval)]
    assert evals[-1] == Eval(iter=250, val_loss=6.0147, metrics={"hellaswag": 0.2510})
    agg = RunAggregator()
    agg.add_all(records)
    st = agg.stats(now=NOW)
    assert st.val_loss == 6.0147
    assert agg.val_series.points().pairs() == ((0.0, 250.0), (10.9853, 6.0147))  # one point per evaluation
    assert "eval @ 250: val 6.0147, hellaswag 0.251" in st.events
