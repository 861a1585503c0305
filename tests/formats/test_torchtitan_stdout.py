"""torchtitan_stdout: torchtitan's training stdout (rank-prefixed Python logging)."""

from __future__ import annotations

import math
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import detect, torchtitan

NOW = datetime(2030, 1, 1)
CORPUS_DIR = "torchtitan_stdout"


def _feed(lines: list[str]) -> list[Record]:
    parser = torchtitan.TorchtitanParser()
    return [record for line in lines for record in parser.feed(line)]


@cache
def _file_records(path: Path) -> tuple[Record, ...]:
    text = path.read_bytes().decode("utf-8", "replace")
    return tuple(_feed([line.removesuffix("\r") for line in text.split("\n")]))


def _stats(records: tuple[Record, ...] | list[Record], now: datetime = NOW) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=now)


def _info(records: tuple[Record, ...] | list[Record]) -> dict[str, object]:
    """RunInfo fields merged the way the aggregator merges them (later wins)."""
    merged: dict[str, object] = {}
    for record in records:
        if isinstance(record, RunInfo):
            merged.update({k: v for k in RunInfo.__slots__ if (v := getattr(record, k)) is not None})
    return merged


# Values read from the raw files with sed 's/\x1b\[[0-9;]*m//g' | grep " - step:" | awk.
# file, iterations done, target, last loss, last val loss, status, mfu now, mfu mean,
# logged tok/s (last, per GPU), wall seconds per step (first to last step line).
CASES = [
    (
        "titan_kimi436m_attnres_12500steps_with_validate_ansi.log",
        12500,  # last step line "step: 12500"
        12500,  # "Trainer is initialized with ... total steps 12500 (warmup 500)"
        3.13547,  # step 12500 "loss:  3.13547"
        3.0654,  # last "validate step: 12000  loss:  3.0654"
        "finished",  # "Training completed"
        6.40,  # step 12500 "mfu: 6.40%"
        6.398110,  # awk: mean of the 1238 "mfu:" values not right after a "validate step:" line
        3218,  # step 12500 "tps: 3,218"
        (191918.383, 12499),  # 2026-04-27 16:43:50,719 (step 1) → 2026-04-29 22:02:29,102 (step 12500)
    ),
    (
        "titan_kimi436m_baseline_overnight_mfu_over_100pct_ansi.log",
        12500,
        12500,  # "total steps 12500"
        3.82854,  # step 12500 "loss:  3.82854"
        None,  # grep -c "validate step": 0
        "finished",  # "Training completed"
        15224.37,  # step 12500 "mfu: 15224.37%" (kept as logged; the aggregator warns)
        15162.363789,  # awk: mean of the 1251 "mfu:" values
        3217,  # step 12500 "tps: 3,217"
        (23978.315, 12499),  # 2026-04-23 22:49:29,671 → 2026-04-24 05:29:07,986
    ),
    (
        "titan_llama3_175m_crashed_traceback_ansi.log",
        8810,  # last step line "step: 8810", then the traceback
        20000,  # "total steps 20000 (warmup 500)"
        4.08492,  # step 8810 "loss:  4.08492"
        None,
        "failed",  # "[rank0]:[rank0]: RuntimeError: Cannot send a request, as the client has been closed."
        5.94,  # step 8810 "mfu: 5.94%"
        5.859297,  # awk: mean of the 882 "mfu:" values
        27242,  # step 8810 "tps: 27,242"
        (10738.288, 8809),  # 2026-04-19 12:18:01,628 → 15:16:59,916
    ),
    (
        "titan_vlm447m_pp2_tp2_rank4_prefix_500steps_ansi.log",
        500,  # "[rank4]:... step: 500"
        500,  # "total steps 500 (warmup 10)"
        3.90980,  # step 500 "loss:  3.90980"
        None,
        "finished",  # "Training completed", then a PythonFinalizationError traceback at shutdown
        0.21,  # step 500 "mfu: 0.21%"
        0.2095,  # awk: mean of the 500 "mfu:" values
        106,  # step 500 "tps: 106"
        (2424.851, 499),  # 2026-05-03 08:03:24,367 → 08:43:49,218
    ),
]


@pytest.mark.parametrize(
    ("name", "done", "target", "loss", "val", "status", "mfu_now", "mfu_mean", "tps", "span"), CASES
)
def test_corpus_file(
    corpus: Path,
    name: str,
    done: int,
    target: int,
    loss: float,
    val: float | None,
    status: str,
    mfu_now: float,
    mfu_mean: float,
    tps: float,
    span: tuple[float, int],
) -> None:
    path = corpus / CORPUS_DIR / name
    assert detect(path.read_bytes()[:16384], name) is torchtitan.SPEC
    st = _stats(_file_records(path))
    assert st.iter == done
    assert st.target == target
    assert st.loss == pytest.approx(loss)
    assert st.val_loss == (pytest.approx(val) if val is not None else None)
    assert st.status == status
    assert st.segments == 1
    assert st.mfu_now_pct == pytest.approx(mfu_now)
    assert st.mfu_mean_pct == pytest.approx(mfu_mean, rel=1e-6)
    assert st.tokens_per_sec_logged == pytest.approx(tps)
    assert st.tokens_per_sec_logged_scope == "gpu"
    # torchtitan logs no step time: the rate comes from the timestamps. The
    # aggregator's recent window may differ a little from the whole-run mean.
    seconds, steps = span
    assert st.mean_iter_s == pytest.approx(seconds / steps, rel=0.02)


def test_tokens_per_step_agree_with_logged_rate(corpus: Path) -> None:
    """Per-device tps × devices × seconds per step ≈ global batch × sequence length."""
    records = _file_records(corpus / CORPUS_DIR / CASES[0][0])
    info = _info(records)
    assert info["tokens_per_iter"] == 96 * 2048  # "global batch size 96, ..., sequence length 2048"
    assert info["world_size"] == 4  # "pp=1, dp_replicate=1, dp_shard=4, cp=1, tp=1"
    st = _stats(records)
    assert st.mean_iter_s is not None and st.tokens_per_sec_logged is not None
    assert 3218 * 4 * st.mean_iter_s == pytest.approx(96 * 2048, rel=0.02)


def test_attnres_run_facts(corpus: Path) -> None:
    records = _file_records(corpus / CORPUS_DIR / CASES[0][0])
    info = _info(records)
    assert info["gpu"] == "NVIDIA GeForce RTX 5090"  # "CUDA capacity: NVIDIA GeForce RTX 5090 with 31.35GiB memory"
    assert info["params"] == 1201640636  # "size: 1,201,640,636 total parameters"
    assert info["architecture"] == "kimi_linear"
    assert info["mfu_peak_tflops"] == pytest.approx(312.0)  # "Peak FLOPS used for computing MFU: 3.120e+14"
    assert (info["n_layer"], info["n_head"], info["n_embd"]) == (16, 16, 1168)  # the model JSON dump
    assert info["start_time"] == datetime(2026, 4, 27, 16, 43, 20, 359000)  # "Training starts at step 1"
    ends = [r.wall_time for r in records if isinstance(r, Outcome)]
    assert ends == [datetime(2026, 4, 29, 22, 2, 37, 299000)]  # "Training completed"
    evals = [r for r in records if isinstance(r, Eval)]
    assert [e.iter for e in evals] == [1, *range(1000, 12001, 1000)]  # 13 "validate step:" lines
    checkpoints = [r for r in records if isinstance(r, Checkpoint)]
    assert [c.iter for c in checkpoints] == [2000, 4000, 6000, 8000, 10000, 12000, 12500]
    assert checkpoints[-1].path is not None and checkpoints[-1].path.endswith("/checkpoint/step-12500")
    its = [r for r in records if isinstance(r, Iteration)]
    assert (its[0].iter, its[0].grad_norm, its[0].tokens_per_sec) == (1, pytest.approx(0.4601), 1601)


def test_llama3_config_dump_and_crash_reason(corpus: Path) -> None:
    records = _file_records(corpus / CORPUS_DIR / CASES[2][0])
    info = _info(records)
    # torchtitan-args JSON: "dim": 768, 12 entries in "layers", each "n_heads": 12
    assert (info["n_layer"], info["n_head"], info["n_embd"]) == (12, 12, 768)
    assert info["world_size"] == 1
    outcomes = [r for r in records if isinstance(r, Outcome)]
    assert outcomes[-1].kind == "failed"
    assert outcomes[-1].message == "RuntimeError: Cannot send a request, as the client has been closed."


def test_rank4_metrics_and_finalization_traceback(corpus: Path) -> None:
    records = _file_records(corpus / CORPUS_DIR / CASES[3][0])
    assert _info(records)["world_size"] == 8  # pp=2 × dp_shard=2 × tp=2
    assert sum(isinstance(r, Iteration) for r in records) == 500
    # "Training completed", then "Exception ignored while calling deallocator"
    # and a PythonFinalizationError traceback at interpreter shutdown: the run
    # finished; the shutdown noise is no failure.
    assert [r.kind for r in records if isinstance(r, Outcome)] == ["finished"]


def test_validation_time_lands_in_the_next_logged_step(corpus: Path) -> None:
    st = _stats(_file_records(corpus / CORPUS_DIR / CASES[0][0]))
    # "validate step: 1" follows step 1, "validate step: 1000" follows step 1000, ...
    assert st.eval_at == (10, *range(1010, 12011, 1000))


def test_absurd_mfu_is_kept_and_flagged(corpus: Path) -> None:
    st = _stats(_file_records(corpus / CORPUS_DIR / CASES[1][0]))
    assert st.mfu_now_pct == pytest.approx(15224.37)
    assert any("impossible" in w for w in st.warnings)


# ------------------------------------------------------------ inline oddities


def _step(
    i: int,
    loss: str = "11.73954",
    rank: int = 0,
    mfu: str = "6.43",
    ts: str = "2026-04-27 16:45:15,717",
) -> str:
    return (
        f"[rank{rank}]:[titan] {ts} - root - INFO - \x1b[31mstep: {i:2}  \x1b[32mloss: {loss}  "
        "\x1b[38;2;180;60;0mgrad_norm:  0.7114  \x1b[38;2;54;234;195mmemory: 26.01GiB(82.96%)  "
        f"\x1b[34mtps: 3,235  \x1b[36mtflops: 47,210.56  \x1b[35mmfu: {mfu}%\x1b[39m"
    )


def test_24bit_ansi_inside_every_field() -> None:
    records = _feed([_step(10)])
    its = [r for r in records if isinstance(r, Iteration)]
    assert len(its) == 1
    it = its[0]
    assert (it.iter, it.loss, it.grad_norm, it.tokens_per_sec, it.mfu_pct) == (
        10,
        pytest.approx(11.73954),
        pytest.approx(0.7114),
        3235,
        pytest.approx(6.43),
    )
    assert it.wall_time == datetime(2026, 4, 27, 16, 45, 15, 717000)
    assert it.time_ms is None  # torchtitan prints no step time


def test_plain_lines_without_colour_or_rank() -> None:
    line = (
        "[titan] 2025-01-01 10:00:00,000 - root - INFO - step: 5  loss: 10.5000  memory: 1.0GiB(1.00%)  "
        "tps: 1,000  tflops: 10.00  mfu: 3.20%"
    )
    (scope, it) = _feed([line])
    assert isinstance(scope, RunInfo) and scope.tokens_per_sec_scope == "gpu"
    assert isinstance(it, Iteration)
    assert (it.iter, it.loss, it.grad_norm, it.tokens_per_sec, it.mfu_pct) == (5, 10.5, None, 1000, 3.2)


def test_mfu_over_100_percent_kept_as_logged() -> None:
    (it,) = [r for r in _feed([_step(10, mfu="15,131.59")]) if isinstance(r, Iteration)]
    assert it.mfu_pct == pytest.approx(15131.59)


def test_only_the_first_logging_rank_counts() -> None:
    records = _feed([_step(1, rank=4), _step(1, rank=0), _step(2, rank=0), _step(2, rank=4)])
    assert [r.iter for r in records if isinstance(r, Iteration)] == [1, 2]
    assert _stats(records).segments == 1


def test_cut_off_step_line() -> None:
    # The last field of a cut line may be a partial number: drop what is not whole.
    cut = _step(7)[: _step(7).index("grad_norm") + 14]  # "...grad_norm:  0.71"
    (it,) = [r for r in _feed([cut]) if isinstance(r, Iteration)]
    assert it.loss == pytest.approx(11.73954)
    assert it.grad_norm is None and it.mfu_pct is None
    assert not [r for r in _feed([_step(7)[: _step(7).index("loss: ") + 9]]) if isinstance(r, Iteration)]


def test_nan_loss_is_divergence() -> None:
    records = _feed([_step(1), _step(2, loss="nan")])
    losses = [r.loss for r in records if isinstance(r, Iteration)]
    assert losses[1] is not None and math.isnan(losses[1])
    assert _stats(records).status == "diverged"


def test_preamble_lines() -> None:
    records = _feed(
        [
            "[rank0]:[titan] 2026-04-23 22:49:06,423 - root - INFO - Building device mesh with parallelism: "
            "pp=1, dp_replicate=2, dp_shard=4, cp=1, tp=2, ep=1, etp=1",
            "[rank0]:[titan] 2025-01-01 10:00:00,000 - root - INFO - GPU capacity: NVIDIA H100 80GB HBM3 (0) "
            "with 79.11GiB memory",
            "[rank0]:[titan] 2025-01-01 10:00:00,000 - root - INFO - \x1b[34mModel llama3 8B \x1b[31msize: "
            "8,030,261,248 total parameters\x1b[39m",
            "[rank0]:[titan] 2025-01-01 10:00:00,000 - root - INFO - Trainer is initialized with local batch "
            "size 1, global batch size 64, gradient accumulation steps 4, sequence length 8192, total steps "
            "1000 (warmup 200)",
            "[rank0]:[titan] 2025-01-01 10:00:00,000 - root - INFO - Building llama3 8B with "
            "TransformerModelArgs(dim=4096, n_layers=32, n_heads=32, n_kv_heads=8)",
        ]
    )
    info = _info(records)
    assert info["world_size"] == 16  # 1 × 2 × 4 × 1 × 2
    assert info["gpu"] == "NVIDIA H100 80GB HBM3"
    assert (info["architecture"], info["name"], info["params"]) == ("llama3", "8B", 8030261248)
    assert (info["target"], info["block_size"], info["tokens_per_iter"]) == (1000, 8192, 64 * 8192)
    assert (info["batch_size"], info["grad_accum"]) == (1, 64)
    assert (info["n_embd"], info["n_layer"], info["n_head"]) == (4096, 32, 32)


def test_inferred_mesh_size_is_not_a_world_size() -> None:
    line = (
        "[rank0]:[titan] 2026-04-23 22:49:06,423 - root - INFO - Building device mesh with parallelism: "
        "pp=1, dp_replicate=1, dp_shard=-1, cp=1, tp=1"
    )
    assert _feed([line]) == []


def test_model_json_cut_short_does_not_swallow_steps() -> None:
    records = _feed(
        [
            "[rank0]:[titan] 2026-04-27 16:43:19,000 - root - INFO - Building kimi_linear small with {",
            '[rank0]:  "hidden_size": 64,',
            '[rank0]:  "nested": {',
            '[rank0]:    "num_hidden_layers": 99',
            "[rank0]:  },",
            _step(1),
        ]
    )
    assert [r.iter for r in records if isinstance(r, Iteration)] == [1]
    assert "n_embd" not in _info(records)  # the dump never closed: nothing half-read


def test_crash_traceback_then_torchrun_summary() -> None:
    records = _feed(
        [
            _step(8810),
            "[rank0]:[rank0]: Traceback (most recent call last):",
            '[rank0]:[rank0]:   File "/root/torchtitan/torchtitan/train.py", line 68, in <module>',
            '[rank0]:[rank0]:     raise RuntimeError("Cannot send a request, as the client has been closed.")',
            "[rank0]:[rank0]: RuntimeError: Cannot send a request, as the client has been closed.",
            "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
        ]
    )
    outcomes = [r for r in records if isinstance(r, Outcome)]
    assert [o.message for o in outcomes] == [
        "Python traceback",
        "RuntimeError: Cannot send a request, as the client has been closed.",
    ]
    assert _stats(records).status == "failed"


def test_ignored_exception_mid_run_is_not_a_failure() -> None:
    records = _feed(
        [
            _step(10),
            "[rank0]:Exception ignored in: <function _MultiProcessingDataLoaderIter.__del__ at 0x7f>",
            "[rank0]:Traceback (most recent call last):",
            "[rank0]:AssertionError: can only test a child process",
            _step(20),
        ]
    )
    assert not any(isinstance(r, Outcome) for r in records)


def test_restart_resets_the_end() -> None:
    done = "[rank0]:[titan] 2026-04-24 05:29:16,216 - root - INFO - Training completed"
    records = _feed([_step(10), _step(20), done, _step(10), _step(20), "srun: error: nid01: task 0: Exited"])
    assert [r.kind for r in records if isinstance(r, Outcome)] == ["finished", "failed"]
    st = _stats(records)
    assert (st.segments, st.status) == (2, "failed")


def test_carriage_return_and_garbage() -> None:
    records = _feed(["junk\r" + _step(3), "", "step:", "step: x  loss: y ", "\x1b[31m", "validate step: 5  loss:"])
    assert [r.iter for r in records if isinstance(r, Iteration)] == [3]


def test_sniff() -> None:
    assert torchtitan.sniff("[rank0]:[titan] 2026-04-27 16:43:15,575 - root - INFO - torchtitan version", "a")
    assert not torchtitan.sniff(" iteration        1/     500 | consumed samples: 16 |", "m.log")
