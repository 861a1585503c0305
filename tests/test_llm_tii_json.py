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


def _diverged_document(tmp_path: Path) -> Path:
    """A small seed-style log whose loss went NaN, written as the seed's logger
    writes it: Python's ``json.dump``, which puts bare ``NaN`` and ``Infinity``
    tokens in the text (not JSON: orjson refuses them)."""
    import json

    entries = [{"iter": k, "loss": 3.0 - k / 100, "time_ms": 1000.0, "mfu": 30.0} for k in range(0, 50, 10)]
    entries.append({"iter": 50, "loss": float("nan"), "time_ms": float("inf"), "mfu": 30.0})
    doc = {"run_name": "run_x", "start_time": "2025-11-13T10:00:00", "config": {"max_iters": 100}}
    doc["training_iterations"] = entries
    path = tmp_path / "run_x.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def test_bare_nan_and_infinity_tokens_are_read(tmp_path: Path) -> None:
    path = _diverged_document(tmp_path)
    assert b": NaN" in path.read_bytes() and b": Infinity" in path.read_bytes()
    records = llm_tii_json.parse_document(path.read_bytes())
    assert records is not None
    last = [r for r in records if isinstance(r, Iteration)][-1]
    assert last.iter == 50 and last.loss != last.loss  # NaN kept: it is the news
    assert last.time_ms is None  # an infinite time is no time


def test_a_nan_loss_makes_the_run_diverged(tmp_path: Path) -> None:
    import json

    from trainwatch.cli import main

    path = _diverged_document(tmp_path)
    out = tmp_path / "snap.json"
    assert main(["snapshot", str(path), "-f", "json", "-o", str(out), "--now", "2025-11-13T10:01:00"]) == 0
    (run,) = json.loads(out.read_text())["runs"]
    assert (run["status"], run["iter"], run["loss"]) == ("diverged", 50, None)


def test_a_live_run_that_goes_nan_turns_diverged(tmp_path: Path) -> None:
    """Live: the rewrite that brings the NaN is read (resumed or whole), not
    taken for a half-written document."""
    import json
    from datetime import datetime

    from trainwatch.ingest.source import LogSource

    path = _diverged_document(tmp_path)
    doc = json.loads(path.read_text())
    nan_entry = doc["training_iterations"].pop()
    path.write_text(json.dumps(doc, indent=2))
    source = LogSource(path)
    source.refresh()
    now = datetime(2025, 11, 13, 10, 1)
    assert source.agg.stats(now).status == "running"
    doc["training_iterations"].append(nan_entry)
    path.write_text(json.dumps(doc, indent=2))
    source.refresh()
    assert source.agg.stats(now).status == "diverged"
