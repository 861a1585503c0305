"""swift_jsonl: ms-swift's logging.jsonl."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import detect, detect_head, swift_jsonl

NOW = datetime(2030, 1, 1)
NAME = "swift_qwen3_8b_lora_438steps_eval_every100_logging.jsonl"


def _feed(lines: list[str]) -> list[Record]:
    parser = swift_jsonl.new_parser()
    return [record for line in lines for record in parser.feed(line)]


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _line(**fields: object) -> str:
    return json.dumps(fields)


def _progress(step: int, total: int, elapsed: str, speed: dict[str, float]) -> dict[str, object]:
    """The keys ``add_train_message`` appends to every log dict."""
    return {
        "global_step/max_steps": f"{step}/{total}",
        "percentage": f"{step / total * 100:.2f}%",
        "elapsed_time": elapsed,
        "remaining_time": "1m 0s",
        "memory(GiB)": 16.5,
        **speed,
    }


def _train(step: int, loss: float, elapsed: str, speed: dict[str, float], total: int = 100) -> str:
    fields = {"loss": loss, "grad_norm": 1.5, "learning_rate": 1e-4, "token_acc": 0.9, "epoch": step / total}
    return json.dumps(fields | _progress(step, total, elapsed, speed))


# --------------------------------------------------------------------- corpus


def test_corpus_file(corpus: Path) -> None:
    path = corpus / "swift_jsonl" / NAME
    data = path.read_bytes()
    spec = detect_head(data[: 1 << 18], path.name)
    assert spec is not None and spec.format == "swift_jsonl"
    records = _feed(data.decode().split("\n"))
    st = _stats(records)
    # head -n 50 FILE | grep '"loss"' | tail -1: "global_step/max_steps": "430/438", "loss": 0.15476817
    # (the 51st line is the summary; its log_history repeats the losses unrounded)
    assert st.loss == 0.15476817
    # tail -2 | head -1: the train_runtime record at "438/438"; steps done and the target as printed
    assert (st.iter, st.target, st.target_source) == (438, 438, "log")
    # head -n 50 | grep '"eval_loss"' | tail -1: "eval_loss": 0.12936011 at 438/438
    assert st.val_loss == 0.12936011
    assert st.status == "finished"  # grep -c train_runtime on head -n 50: 1
    assert st.segments == 1
    its = [r for r in records if isinstance(r, Iteration)]
    assert its[0].iter == 1 and its[0].loss == 20.53074074  # head -1
    # head -n 50 | grep -c '"loss"': 44 train records, plus the train_runtime record's step 438
    assert len(its) == 45 and its[-1].iter == 438 and its[-1].loss is None
    evals = [r for r in records if isinstance(r, Eval)]
    assert [e.iter for e in evals] == [100, 200, 300, 400, 438]  # grep '"eval_loss"'
    assert evals[0].metrics["token_acc"] == 0.9284995
    # Steps 1 -> 430: elapsed "6s" -> "46m 13s" = 2767 s, less the four evals inside
    # (8m 24s -> 10m 52s, 19m 18s -> 21m 49s, 30m 14s -> 32m 44s, 41m 11s -> 43m 41s:
    # 148 + 151 + 150 + 150 s) = 2168 s over 429 steps.
    assert st.mean_iter_s == pytest.approx(2168 / 429, rel=0.01)
    outcome = [r for r in records if isinstance(r, Outcome)]
    assert outcome == [Outcome("finished", "training ended at step 438 of 438")]


# --------------------------------------------------------------- sample logs


@pytest.mark.parametrize(
    "speed",
    [
        pytest.param(lambda step, secs: {"train_speed(iter/s)": round(step / secs, 6)}, id="iter_per_s"),
        pytest.param(lambda step, secs: {"train_speed(s/it)": round(secs / step, 6)}, id="s_per_it"),
    ],
)
def test_both_speed_keys(speed: object) -> None:
    assert callable(speed)
    lines = [
        _train(5, 2.5, "20s", speed(5, 20)),
        _train(10, 2.25, "40s", speed(10, 40)),
        json.dumps(
            {"eval_loss": 2.4, "eval_runtime": 30.0, "eval_token_acc": 0.5, "epoch": 0.1}
            | _progress(10, 100, "1m 10s", speed(10, 70))
        ),
        _train(15, 2.0, "1m 30s", speed(15, 90)),
    ]  # fmt: skip
    spec = detect(("\n".join(lines) + "\n").encode(), "logging.jsonl")
    assert spec is not None and spec.format == "swift_jsonl"
    records = _feed(lines)
    assert records[0] == RunInfo(target=100)
    its = [r for r in records if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.time_ms) for i in its] == [(5, 2.5, None), (10, 2.25, 4000.0), (15, 2.0, 4000.0)]
    assert its[0].lr == 1e-4 and its[0].grad_norm == 1.5
    # The eval's own duration: elapsed 1m 10s at the eval, 40 s at its step's train log (eval_runtime: 30.0)
    evals = [e for e in records if isinstance(e, Eval)]
    assert evals == [Eval(10, val_loss=2.4, metrics={"token_acc": 0.5}, seconds=30.0)]
    st = _stats(records)
    assert (st.iter, st.target, st.loss, st.val_loss, st.status) == (15, 100, 2.0, 2.4, "running")


def test_runtime_record_finishes_and_summary_is_no_step() -> None:
    speed = {"train_speed(s/it)": 2.0}
    summary = {
        "model_parameter_info": "PeftModelForCausalLM: 8212.5588M Params",
        "last_model_checkpoint": "/out/v0/checkpoint-20",
        "best_model_checkpoint": "/out/v0/checkpoint-20",
        "best_metric": 1.7,
        "global_step": 20,
        "log_history": [{"loss": 2.0, "step": 10}, {"loss": 1.8, "step": 20}, {"train_runtime": 40.0, "step": 20}],
        "memory": 16.6,
    }
    records = _feed(
        [
            _train(10, 2.0, "20s", speed, total=20),
            _train(20, 1.8, "40s", speed, total=20),
            _line(train_runtime=41.5, train_loss=1.9, epoch=1.0, **_progress(20, 20, "41s", speed)),
            json.dumps(summary),
        ]
    )
    assert RunInfo(runtime_s=41.5) in records
    assert [r.iter for r in records if isinstance(r, Iteration)] == [10, 20]  # not the history again
    assert [r for r in records if isinstance(r, Outcome)] == [Outcome("finished", "training ended at step 20 of 20")]
    assert _stats(records).status == "finished"


def test_summary_without_runtime_is_a_crash() -> None:
    speed = {"train_speed(s/it)": 2.0}
    summary = {"global_step": 10, "best_metric": None, "log_history": [{"loss": 2.0, "step": 10}], "memory": 9.0}
    records = _feed([_train(10, 2.0, "20s", speed), json.dumps(summary)])
    assert records[-1] == Outcome("failed", "training stopped at step 10 without finishing (no train_runtime logged)")
    assert _stats(records).status == "failed"


def test_runtime_after_last_train_log_adds_the_last_steps() -> None:
    speed = {"train_speed(iter/s)": 0.5}
    runtime = _line(train_runtime=26.0, **_progress(13, 13, "26s", speed))
    records = _feed([_train(10, 2.0, "20s", speed, total=13), runtime])
    its = [r for r in records if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.time_ms) for i in its] == [(10, 2.0, None), (13, None, 2000.0)]
    st = _stats(records)
    assert (st.iter, st.loss, st.status) == (13, 2.0, "finished")


def test_swift2_global_step_and_iter_speed() -> None:
    # swift 2.x: a bare global_step, acc, and train_speed(iter/s) = global_step / elapsed
    lines = [
        '{"loss": 1.8210969, "acc": 0.62, "grad_norm": 2.75, "learning_rate": 2e-05, "memory(GiB)": 16.79, '
        '"train_speed(iter/s)": 0.2, "epoch": 0.01, "global_step": 1}',
        '{"loss": 1.75309932, "acc": 0.63, "grad_norm": 3.7, "learning_rate": 0.0001, "memory(GiB)": 18.48, '
        '"train_speed(iter/s)": 0.25, "epoch": 0.05, "global_step": 5}',
        '{"eval_loss": 1.6, "eval_acc": 0.66, "eval_runtime": 3.0, "epoch": 0.05, "global_step": 5}',
    ]
    spec = detect(("\n".join(lines) + "\n").encode(), "logging.jsonl")
    assert spec is not None and spec.format == "swift_jsonl"
    records = _feed(lines)
    its = [r for r in records if isinstance(r, Iteration)]
    # elapsed = step / (iter/s): 5 s at step 1, 20 s at step 5 -> 15 s over 4 steps
    assert [(i.iter, i.loss, i.time_ms) for i in its] == [(1, 1.8210969, None), (5, 1.75309932, 3750.0)]
    assert [(e.iter, e.val_loss, e.metrics) for e in records if isinstance(e, Eval)] == [(5, 1.6, {"acc": 0.66})]
    assert not any(isinstance(r, RunInfo) for r in records)  # no max_steps in swift 2's lines


def test_megatron_swift_iteration_key_and_stepless_eval() -> None:
    # Megatron-swift 4 writes "iteration": "i/N"; Megatron-swift 3 wrote evals with no step.
    lines = [
        '{"loss": 3.1, "grad_norm": 0.9, "learning_rate": 1e-05, "iteration": "10/500", "elapsed_time": "1m 0s", '
        '"remaining_time": "49m 0s", "memory(GiB)": 60.1, "train_speed(s/it)": 6.0}',
        '{"loss": 3.0, "learning_rate": 1e-05, "elapsed_time_per_iteration": 5.5, "consumed_samples": 2560, '
        '"global_step/max_steps": "20/500"}',
        '{"eval_loss": 3.05}',
    ]
    records = _feed(lines)
    assert records[0] == RunInfo(target=500)
    its = [r for r in records if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.time_ms) for i in its] == [(10, 3.1, None), (20, 3.0, 5500.0)]
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(20, 3.05)]


def test_parse_duration() -> None:
    assert swift_jsonl.parse_duration("0s") == 0
    assert swift_jsonl.parse_duration("1m 42s") == 102
    assert swift_jsonl.parse_duration("2h 0m 5s") == 7205
    assert swift_jsonl.parse_duration("1d 2h 3m 4s") == 86400 + 7200 + 180 + 4
    assert swift_jsonl.parse_duration("1m 42.37s") == pytest.approx(102.37)  # early 2026
    for bad in ("", "nan s", "1e9s", "5x", "1:02:03", "²s", None, 42):
        assert swift_jsonl.parse_duration(bad) is None


def test_resume_and_junk() -> None:
    speed = {"train_speed(s/it)": 2.0}
    records = _feed(
        [
            "",
            "not json",
            _train(10, 2.0, "20s", speed),
            _train(20, float("nan"), "40s", speed)[:-10],  # cut mid-line
            '{"loss": NaN, "global_step/max_steps": "20/100", "elapsed_time": "40s"}',
            '{"loss": 1.0, "global_step/max_steps": "x/100"}',
            _train(30, 1.9, "1m 0s", speed),
            _train(20, 1.95, "10s", speed),  # resumed from checkpoint-15: a new clock
            _train(30, 1.85, "30s", speed),
        ]
    )
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.iter for i in its] == [10, 20, 30, 20, 30]
    assert its[1].loss is not None and math.isnan(its[1].loss)
    assert [i.time_ms for i in its] == [None, 2000.0, 2000.0, None, 2000.0]
    st = _stats(records)
    assert (st.segments, st.iter, st.loss) == (2, 30, 1.85)


def test_sniff() -> None:
    speed = {"train_speed(iter/s)": 0.2}
    head = _train(1, 2.0, "5s", speed) + "\n"
    assert swift_jsonl.sniff(head, "logging.jsonl")
    assert not swift_jsonl.sniff('{"step": 1, "loss": 2.0}\n', "m.jsonl")
    assert not swift_jsonl.sniff('{"current_steps": 1, "total_steps": 5, "loss": 2.0}\n', "trainer_log.jsonl")
    assert not swift_jsonl.sniff('{"memory(GiB)": 3}\n', "x.jsonl")  # no step
    assert not swift_jsonl.sniff("global_step/max_steps 1/5\n", "x.log")
    # A generic JSONL metrics log stays generic; LLaMA-Factory stays LLaMA-Factory.
    generic = detect(b'{"global_step": 5, "loss": 1.0}\n', "x.jsonl")
    assert generic is not None and generic.format == "jsonl_metrics"
    lf = detect(b'{"current_steps": 5, "total_steps": 10, "loss": 1.0, "elapsed_time": "0:00:10"}\n', "x.jsonl")
    assert lf is not None and lf.format == "llamafactory_jsonl"
