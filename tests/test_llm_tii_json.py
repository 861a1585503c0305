"""The seed JSON parser: both MFU shapes, sentinels, config variants, mid-write."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, RunInfo
from trainwatch.parsers import detect, llm_tii_json


def load(corpus: Path, run: str) -> list:
    records = llm_tii_json.parse_document((corpus / "llm_tii_json" / f"{run}.json").read_bytes())
    assert records is not None
    return records


def test_newer_variant_dict_mfu_and_metadata(corpus: Path) -> None:
    records = load(corpus, "run_20251113_225009")
    info = records[0]
    assert isinstance(info, RunInfo)
    assert (info.run_id, info.name) == ("run_20251113_225009", "qwen3-1.8b-optimal")
    assert (info.batch_size, info.grad_accum, info.block_size, info.world_size) == (2, 96, 2048, 2)
    assert (info.gpu, info.mfu_peak_tflops, info.eval_at_start) == ("NVIDIA RTX A6000", 310.0, False)
    iterations = [r for r in records if isinstance(r, Iteration)]
    assert len(iterations) == 201
    assert iterations[0].mfu_pct is None  # -100.0 warm-up sentinel
    # iter 10: "mfu_percent": 27.97801331663549, "tokens_per_sec": 7119.202807865909
    assert iterations[1].mfu_pct == pytest.approx(27.978013)
    assert iterations[1].tokens_per_sec == pytest.approx(7119.2028)
    assert [e.iter for e in records if isinstance(e, Eval)] == [1000, 2000]
    assert [c.iter for c in records if isinstance(c, Checkpoint)] == [1000, 2000]
    assert isinstance(records[-1], Outcome) and records[-1].kind == "finished"


def test_older_variant_float_mfu_and_eval_at_start(corpus: Path) -> None:
    records = load(corpus, "run_20251031_173650")
    info = records[0]
    assert isinstance(info, RunInfo)
    assert info.eval_at_start is True  # no key: stock nanoGPT evaluates at iteration 0
    assert info.gpu is None and info.world_size == 1
    iterations = [r for r in records if isinstance(r, Iteration)]
    # {"iter": 5, "mfu": 33.51090848921254}
    assert [(i.iter, i.mfu_pct is not None) for i in iterations] == [(0, False), (5, True), (10, True), (15, True)]
    assert iterations[1].mfu_pct == pytest.approx(33.5109085)
    assert info.name == "gpt2 · shakespeare"  # out_dir "out" is not a name


def test_eval_comes_before_its_iteration(corpus: Path) -> None:
    records = load(corpus, "run_20251110_174040")
    order = [(type(r).__name__, getattr(r, "iter", None)) for r in records]
    assert order.index(("Eval", 1000)) < order.index(("Iteration", 1000))


@pytest.mark.parametrize("cut", [1, 100, 5000, 100_000, -2])
def test_half_written_document_is_not_ready(corpus: Path, cut: int) -> None:
    data = (corpus / "llm_tii_json" / "run_20251113_225009.json").read_bytes()
    assert llm_tii_json.parse_document(data[:cut]) is None


@pytest.mark.parametrize("junk", [b"", b"null", b"[1, 2]", b'{"training_iterations": 5}', b"\xff\xfe{"])
def test_garbage_never_raises(junk: bytes) -> None:
    assert llm_tii_json.parse_document(junk) is None


def test_bad_entries_are_skipped_not_fatal() -> None:
    doc = b'{"training_iterations": [{"iter": "x"}, {"iter": -5}, 7, {"iter": 3, "time_ms": -1, "loss": 2.0}]}'
    records = llm_tii_json.parse_document(doc)
    assert records is not None
    iterations = [r for r in records if isinstance(r, Iteration)]
    assert iterations == [Iteration(iter=3, loss=2.0, time_ms=None)]


def test_sniff(corpus: Path) -> None:
    head = (corpus / "llm_tii_json" / "run_20251110_174040.json").read_bytes()[:16384]
    spec = detect(head, "run.json")
    assert spec is not None and spec.format == "llm_tii_json"
    assert not llm_tii_json.sniff('{"log_history": []}', "trainer_state.json")
