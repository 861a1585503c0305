"""llamafactory_jsonl: LLaMA-Factory's trainer_log.jsonl."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import detect, llamafactory

NOW = datetime(2030, 1, 1)


def _feed(lines: list[str]) -> list[Record]:
    parser = llamafactory.new_parser()
    return [record for line in lines for record in parser.feed(line)]


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _line(**fields: object) -> str:
    return json.dumps(fields)


# name, iterations done, target, last train loss, status, mean s/iter (None: not asserted)
CASES = [
    (
        "luojiu7b_cpt_8712steps_trainer_log.jsonl",
        8712,  # tail -1: "current_steps": 8712, "total_steps": 8712
        8712,
        1.3703,  # tail -2 | head -1: "loss": 1.3703 (the last line has "loss": null)
        "finished",  # last line: the train() summary (loss null, epoch 3.0)
        42.70,  # tail -1 "elapsed_time": "4 days, 7:19:52" = 371992 s / 8712 steps
    ),
    (
        "mistral7b_translator_sft_8660steps_trainer_log.jsonl",
        8660,  # tail -1: "current_steps": 8660, "total_steps": 8660
        8660,
        0.1333,  # tail -2 | head -1: "loss": 0.1333
        "finished",  # last line: summary without loss, same step as the line before
        2.354,  # "elapsed_time": "5:39:46" = 20386 s / 8660 steps
    ),
    (
        "nsllm_2178steps_10days_trainer_log.jsonl",
        2178,  # tail -1: "current_steps": 2178, "total_steps": 2178
        2178,
        1.9787,  # grep -o '"loss": [0-9.]*' | tail -1
        "finished",  # last line: summary without loss
        # 857595 s / 2178 = 393.8 s per step, but every logged step is > 100 s,
        # which the aggregator's absolute eval rule (METRICS.md) takes for evals.
        None,
    ),
    (
        "sunxiaochuan_predict_only_250steps_trainer_log.jsonl",
        250,  # tail -1: "current_steps": 250, "total_steps": 250
        250,
        None,  # predict-only: no line has a loss (grep -c loss: 0)
        "finished",  # 250 >= total_steps 250
        2.43,  # "elapsed_time": "0:10:07" = 607 s / 250 steps (1 s resolution: loose)
    ),
]


@pytest.mark.parametrize(("name", "done", "target", "loss", "status", "mean_s"), CASES)
def test_corpus_file(
    corpus: Path, name: str, done: int, target: int, loss: float | None, status: str, mean_s: float | None
) -> None:
    path = corpus / "llamafactory_jsonl" / name
    text = path.read_text(encoding="utf-8")
    spec = detect(text[:16384].encode(), path.name)
    assert spec is not None and spec.format == "llamafactory_jsonl"
    st = _stats(_feed(text.split("\n")))
    assert st.iter == done
    assert st.target == target and st.target_source == "log"
    assert st.loss == (pytest.approx(loss) if loss is not None else None)
    assert st.status == status
    assert st.segments == 1
    assert st.val_loss is None  # no line has a non-null eval_loss (grep -c: 0 in all four)
    if mean_s is not None:
        # 1-second elapsed resolution over 5-step intervals: 10 % slack.
        assert st.mean_iter_s == pytest.approx(mean_s, rel=0.1)


def test_parse_duration() -> None:
    assert llamafactory.parse_duration("0:03:29") == 209
    assert llamafactory.parse_duration("4 days, 7:18:24") == 4 * 86400 + 7 * 3600 + 18 * 60 + 24
    assert llamafactory.parse_duration("1 day, 0:00:01") == 86401
    assert llamafactory.parse_duration("garbage") is None
    assert llamafactory.parse_duration(None) is None


def test_old_schema_explicit_nulls_and_eval_line() -> None:
    def old(step: int, loss: float | None, eval_loss: float | None, lr: float | None, elapsed: str) -> str:
        # The older schema writes every key, null when unset.
        return _line(
            current_steps=step, total_steps=100, loss=loss, eval_loss=eval_loss, predict_loss=None, reward=None,
            learning_rate=lr, epoch=step / 100, percentage=float(step), elapsed_time=elapsed, remaining_time="0:10:00",
        )  # fmt: skip

    records = _feed(
        [
            old(10, 2.0, None, 1e-4, "0:00:20"),
            old(20, 1.9, None, 1e-4, "0:00:40"),
            old(20, None, 1.8, None, "0:01:40"),  # the eval log: 60 s of evaluation
            old(30, 1.7, None, 9e-5, "0:02:00"),
        ]
    )
    assert isinstance(records[0], RunInfo) and records[0].target == 100
    its = [r for r in records if isinstance(r, Iteration)]
    # The eval's minute is not charged to step 30's interval.
    assert [(i.iter, i.loss, i.time_ms) for i in its] == [(10, 2.0, None), (20, 1.9, 2000.0), (30, 1.7, 2000.0)]
    assert its[-1].lr == 9e-5
    evals = [r for r in records if isinstance(r, Eval)]
    assert [(e.iter, e.val_loss) for e in evals] == [(20, 1.8)]


def test_new_schema_lr_throughput_tokens() -> None:
    def new(step: int, loss: float, lr: float, elapsed: str, throughput: object, tokens: int) -> str:
        return _line(
            current_steps=step, total_steps=50, loss=loss, lr=lr, epoch=0.1, elapsed_time=elapsed,
            throughput=throughput, total_tokens=tokens,
        )  # fmt: skip

    records = _feed([new(5, 2.0, 3e-5, "0:00:10", "1234.50", 4096), new(10, 1.5, 2e-5, "0:00:20", 0, 0)])
    its = [r for r in records if isinstance(r, Iteration)]
    assert (its[0].lr, its[0].tokens_per_sec, its[0].tokens_seen) == (3e-5, 1234.5, 4096)
    # "0.00" / 0 mean "not counted", not zero throughput.
    assert (its[1].tokens_per_sec, its[1].tokens_seen) == (None, None)
    assert _stats(records).tokens_per_sec_logged_scope == "total"


def test_summary_repeating_last_step_is_not_a_restart() -> None:
    records = _feed(
        [
            _line(current_steps=90, total_steps=100, loss=1.0, epoch=0.9, elapsed_time="0:01:30"),
            _line(current_steps=100, total_steps=100, loss=0.9, epoch=1.0, elapsed_time="0:01:40"),
            _line(current_steps=100, total_steps=100, epoch=1.0, elapsed_time="0:01:41"),
        ]
    )
    assert isinstance(records[-1], Outcome) and records[-1].kind == "finished"
    st = _stats(records)
    assert (st.segments, st.iter, st.loss, st.status) == (1, 100, 0.9, "finished")


def test_early_stop_summary_is_finished_before_total() -> None:
    records = _feed(
        [
            _line(current_steps=10, total_steps=100, loss=1.0, epoch=0.1, elapsed_time="0:00:10"),
            _line(current_steps=12, total_steps=100, epoch=0.12, elapsed_time="0:00:12"),
        ]
    )
    assert _stats(records).status == "finished"


def test_cut_off_and_junk_lines_are_skipped() -> None:
    good = _line(current_steps=5, total_steps=10, loss=2.0, elapsed_time="0:00:05")
    records = _feed(["", "not json", good, good[: len(good) // 2], "[1, 2]", '{"loss": 1.0}'])
    assert [r.iter for r in records if isinstance(r, Iteration)] == [5]


def test_nan_loss_diverges() -> None:
    # json.dumps writes NaN, which only the stdlib fallback reads.
    line = json.dumps({"current_steps": 5, "total_steps": 10, "loss": float("nan"), "elapsed_time": "0:00:05"})
    records = _feed([line])
    its = [r for r in records if isinstance(r, Iteration)]
    assert its[0].loss is not None and math.isnan(its[0].loss)
    assert _stats(records).status == "diverged"


def test_resumed_run_appended_is_a_new_segment() -> None:
    records = _feed(
        [
            _line(current_steps=10, total_steps=100, loss=2.0, elapsed_time="0:00:10"),
            _line(current_steps=20, total_steps=100, loss=1.9, elapsed_time="0:00:20"),
            # Resumed from checkpoint 10: the clock restarts.
            _line(current_steps=15, total_steps=100, loss=1.95, elapsed_time="0:00:06"),
            _line(current_steps=20, total_steps=100, loss=1.9, elapsed_time="0:00:11"),
        ]
    )
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.time_ms for i in its] == [None, 1000.0, None, 1000.0]
    assert _stats(records).segments == 2


def test_two_writers_interleaved_are_one_segment_keeping_the_last_value() -> None:
    # Two processes append to one file (a rank-0 process per node): every
    # step comes twice, the second writer a line or two behind on its own
    # clock, and the two losses may differ in the last digit.
    lines = [
        _line(current_steps=10, total_steps=40, loss=2.0, elapsed_time="0:00:10"),
        _line(current_steps=10, total_steps=40, loss=2.0001, elapsed_time="0:00:11"),
        _line(current_steps=20, total_steps=40, loss=1.9, elapsed_time="0:00:20"),
        _line(current_steps=30, total_steps=40, loss=1.8, elapsed_time="0:00:30"),
        _line(current_steps=20, total_steps=40, loss=1.9001, elapsed_time="0:00:29"),
        _line(current_steps=40, total_steps=40, loss=1.7, elapsed_time="0:00:40"),
        _line(current_steps=30, total_steps=40, loss=1.8001, elapsed_time="0:00:39"),
        _line(current_steps=40, total_steps=40, loss=1.7001, elapsed_time="0:00:41"),
        _line(current_steps=40, total_steps=40, epoch=1.0, elapsed_time="0:00:41"),
    ]
    st = _stats(_feed(lines))
    assert (st.segments, st.iter, st.loss, st.status) == (1, 40, 1.7001, "finished")
    assert st.mean_iter_s == pytest.approx(1.0)


def test_resume_that_logs_a_seen_step_again_is_a_restart() -> None:
    # The resumed clock starts again: the repeat of step 20 comes at 0:00:11,
    # far below the 0:00:20 of its first time, so it is no second writer.
    records = _feed(
        [
            _line(current_steps=10, total_steps=100, loss=2.0, elapsed_time="0:00:10"),
            _line(current_steps=20, total_steps=100, loss=1.9, elapsed_time="0:00:20"),
            _line(current_steps=30, total_steps=100, loss=1.8, elapsed_time="0:00:30"),
            _line(current_steps=20, total_steps=100, loss=1.91, elapsed_time="0:00:11"),
        ]
    )
    st = _stats(records)
    assert (st.segments, st.iter, st.loss) == (2, 20, 1.91)


def test_sniff() -> None:
    head = '{"current_steps": 5, "total_steps": 8712, "loss": 1.7}\n'
    assert llamafactory.sniff(head, "trainer_log.jsonl")
    assert not llamafactory.sniff('{"step": 5, "loss": 1.7}\n', "trainer_log.jsonl")
    assert not llamafactory.sniff("current_steps total_steps", "x.log")
