"""hf_trainer_state: Hugging Face Trainer's trainer_state.json."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import detect, hf_trainer_state

NOW = datetime(2030, 1, 1)


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _parse(data: bytes) -> list[Record]:
    records = hf_trainer_state.parse_document(data)
    assert records is not None
    return records


# name, iterations done, target, last train loss, last val loss, status
CASES = [
    (
        "cpt_5490steps_eval_rouge_predict_trainer_state.json",
        5490,  # grep: "global_step": 5490
        5490,  # grep: "max_steps": 5490
        0.2645,  # grep -B6 '"step"' | grep loss | tail -1: "loss": 0.2645 (step 5000)
        0.4916660189628601,  # grep eval_loss | tail -1
        "finished",  # grep -c train_runtime: 1 (the train() summary entry)
    ),
    (
        "mistral7b_translator_checkpoint1000_of_8660_trainer_state.json",
        1000,  # "global_step": 1000
        8660,  # "max_steps": 8660
        0.4539,  # last log_history entry: "loss": 0.4539, "step": 1000
        None,  # grep -c eval_loss: 0
        "running",  # no summary, should_training_stop false, 1000 < 8660
    ),
    (
        "nsllm_final_2178steps_trainer_state.json",
        2178,  # "global_step": 2178 (last train entry is step 2175)
        2178,  # "max_steps": 2178
        1.9787,  # last entry with loss: step 2175 "loss": 1.9787
        None,  # no eval entries
        "finished",  # summary entry with "train_runtime": 857595.0988
    ),
    (
        "tinyllama_sft_trl_2800of2808_with_eval_trainer_state.json",
        2800,  # "global_step": 2800 (last train entry 2790, eval at 2800)
        2808,  # "max_steps": 2808
        1.025,  # last train entry (step 2790): "loss": 1.025
        1.1219322681427002,  # last entry: "eval_loss": 1.1219322681427002, "step": 2800
        "running",  # should_training_stop false, no summary, 2800 < 2808
    ),
]


@pytest.mark.parametrize(("name", "done", "target", "loss", "val", "status"), CASES)
def test_corpus_file(
    corpus: Path, name: str, done: int, target: int, loss: float, val: float | None, status: str
) -> None:
    path = corpus / "hf_trainer_state" / name
    data = path.read_bytes()
    spec = detect(data[:16384], path.name)
    assert spec is not None and spec.format == "hf_trainer_state"
    st = _stats(_parse(data))
    assert st.iter == done
    assert st.target == target
    assert st.target_source == "log"
    assert st.loss == pytest.approx(loss)
    assert st.val_loss == (pytest.approx(val) if val is not None else None)
    assert st.status == status
    assert st.segments == 1


def test_crlf_file_parses_and_skips_predict_entries(corpus: Path) -> None:
    data = (corpus / "hf_trainer_state" / "cpt_5490steps_eval_rouge_predict_trainer_state.json").read_bytes()
    assert b"\r\n" in data
    records = _parse(data)
    evals = [r for r in records if isinstance(r, Eval)]
    # python: 10 entries with eval_loss, 10 predict_* entries without "step"
    assert len(evals) == 10
    assert evals[0].iter == 549 and evals[0].metrics["eval_rouge-1"] == pytest.approx(46.5406)
    assert not any("predict" in key for ev in evals for key in ev.metrics)
    info = records[0]
    assert isinstance(info, RunInfo)
    assert info.config is not None and info.config["train_runtime"] == pytest.approx(64358.151)
    # eval_steps says 500 but evals ran per epoch (549, 1098, ...): not an interval.
    assert info.eval_interval is None
    assert info.log_interval == 500 and info.batch_size == 6


def test_trl_num_tokens_and_eval_interval(corpus: Path) -> None:
    records = _parse(
        (corpus / "hf_trainer_state" / "tinyllama_sft_trl_2800of2808_with_eval_trainer_state.json").read_bytes()
    )
    its = [r for r in records if isinstance(r, Iteration) and r.loss is not None]
    # head: step 15 "num_tokens": 61440.0; tail: step 2790 "num_tokens": 11424256.0
    assert its[0].tokens_seen == 61440 and its[-1].tokens_seen == 11424256
    assert its[-1].grad_norm == pytest.approx(1.9084734916687012)
    info = records[0]
    assert isinstance(info, RunInfo) and info.eval_interval == 200


def _state(history: list[dict[str, object]], **top: object) -> bytes:
    doc = {"global_step": 0, "max_steps": 100, "logging_steps": 10, "eval_steps": 50, "log_history": history}
    doc.update(top)
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def test_incomplete_document_is_not_ready() -> None:
    data = _state([{"step": 10, "loss": 2.0}], global_step=10)
    assert hf_trainer_state.parse_document(data[: len(data) // 2]) is None
    assert hf_trainer_state.parse_document(b"") is None


def test_nan_loss_written_by_json_dumps_is_kept() -> None:
    # json.dumps writes NaN bare (not JSON); orjson refuses it, the fallback not.
    data = _state([{"step": 10, "loss": 2.0}, {"step": 20, "loss": float("nan")}], global_step=20)
    assert b"NaN" in data
    records = _parse(data)
    losses = [r.loss for r in records if isinstance(r, Iteration)]
    assert losses[0] == 2.0 and losses[1] is not None and math.isnan(losses[1])
    assert _stats(records).status == "diverged"


def test_early_stopping_checkpoint_is_finished() -> None:
    control = {"TrainerControl": {"args": {"should_training_stop": True}, "attributes": {}}}
    data = _state([{"step": 10, "loss": 2.0}], global_step=40, stateful_callbacks=control)
    records = _parse(data)
    assert isinstance(records[-1], Outcome) and records[-1].kind == "finished"
    st = _stats(records)
    assert st.status == "finished" and st.iter == 40


def test_duplicate_step_is_not_a_restart() -> None:
    data = _state([{"step": 10, "loss": 2.0}, {"step": 10, "custom": 1.0}, {"step": 20, "loss": 1.5}], global_step=20)
    assert _stats(_parse(data)).segments == 1


def test_top_level_tokens_go_on_the_last_step() -> None:
    data = _state([{"step": 10, "loss": 2.0}], global_step=10, num_input_tokens_seen=40960)
    its = [r for r in _parse(data) if isinstance(r, Iteration)]
    assert [(i.iter, i.tokens_seen) for i in its] == [(10, 40960)]


def test_sniff() -> None:
    assert hf_trainer_state.sniff('{\n  "best_metric": null,\n  "log_history": [', "x.json")
    assert hf_trainer_state.sniff('{\r\n  "global_step": 5,\r\n', "trainer_state.json")
    # The seed's JSON logs and JSONL with a global_step key are not ours.
    assert not hf_trainer_state.sniff('{"training_iterations": [], "log_history": []}', "run.json")
    assert not hf_trainer_state.sniff('{"global_step": 1, "loss": 2.0}\n', "metrics.jsonl")
    assert not hf_trainer_state.sniff("step 1 loss 2", "trainer_state.json")


def test_a_json_lines_log_whose_last_line_embeds_a_log_history_is_no_state_file() -> None:
    """ms-swift's logging.jsonl ends with a summary line holding the whole
    ``log_history``: a JSONL file is never read as a whole document, at the
    first look or at the second, longer one."""
    from trainwatch import parsers

    step = {"loss": 2.5, "global_step/max_steps": "1/10"}
    summary = {"last_model_checkpoint": "/out", "log_history": [{"loss": 2.5, "step": 1}], "global_step": 10}
    short = (json.dumps(step) + "\n" + json.dumps(summary) + "\n").encode()
    long = (json.dumps(step) + "\n") * 400 + json.dumps(summary) + "\n"
    for head in (short, long.encode()):
        spec = parsers.detect_head(head[: parsers.SNIFF_BYTES_MORE], "logging.jsonl")
        assert spec is None or spec.kind == "lines"
    # A real state file, written as the Trainer writes it (indent=2), still is one.
    state = json.dumps({"global_step": 10, "log_history": [{"loss": 2.5, "step": 1}]}, indent=2).encode()
    assert detect(state, "trainer_state.json") is hf_trainer_state.SPEC
