"""llmc_stdout: llm.c's console output (train_gpt2cu under SLURM)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import SNIFF_BYTES, by_format, detect, llmc
from trainwatch.parsers.llmc import LlmcStdoutParser

NOW = datetime(2030, 1, 1)
DIR = "llmc_stdout"
FULL = "llmc_gpt2_124M_a100_full_19560steps.log"
STEP = (
    "step {:4d}/19560 | loss 4.734725 (-1.78z)| norm 0.5501 (-1.43z)| lr 6.00e-04 | 4188.82 ms"
    " | 32.2% bf16 MFU | 123896 tok/s"
)


def _feed(lines: list[str], flush: bool = True) -> list[Record]:
    parser = LlmcStdoutParser()
    records = [record for line in lines for record in parser.feed(line)]
    return records + (parser.flush() if flush else [])


@functools.cache
def _feed_file(path: Path) -> tuple[Record, ...]:
    """Feed complete lines as the tailer does (split on \\n, CR removed), then flush."""
    data = path.read_bytes()
    text = data[: data.rfind(b"\n")].decode("utf-8", "replace")
    return tuple(_feed([line.removesuffix("\r") for line in text.split("\n")]))


def _stats(records: Sequence[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _same(a: float | None, b: float) -> bool:
    return a is not None and ((math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-6))


# ------------------------------------------------------------------ corpus

# name, iters done, last loss, last val loss, status, eval iters, mean s/iter, MFU mean, last tok/s
CASES = [
    (
        FULL,
        19560,  # tail: "step 19560/19560 | loss 3.253402 ..."
        3.253402,
        3.264775,  # grep '^val loss' | tail -1
        # All 19560 steps done, then "Error: Token out of vocabulary" (see
        # test_full_run_records): a crash after the stated target is a finished run.
        "finished",
        # llm.c's step timer excludes evals (eval_timing "excluded"), so the slow
        # steps 1862 (33,494.81 ms), 2289 (27,799.79), 8882 (21,051.59) and 10741
        # (50,084.95) are no evals: they are hangs (METRICS.md), out of s/iter.
        0,
        4.236537244,  # python: mean "ms" of the 19559 timed step lines (19528's is cut) less those 4
        31.963934761,  # python: mean "% bf16 MFU" of the same 19559 lines
        122878,  # tail: "... | 122878 tok/s"
    ),
    (
        "llmc_gpt2_124M_a100_timeout_at_step750.log",
        750,  # "step  750/19560 | loss 4.763922 ..." then val loss, then the cut HellaSwag line
        4.763922,
        4.723455,  # grep '^val loss' | tail -1
        "failed",  # "slurmstepd: error: *** JOB 11672114 ... DUE TO TIME LIMIT ***"
        0,
        4.209531707,  # python: mean "ms" of the 750 step lines
        32.113333333,  # python: mean MFU of the 750 step lines
        124025,  # "step  750/... | 124025 tok/s"
    ),
    (
        "llmc_gpt2_124M_a100_nan_timeout_at_step902.log",
        902,  # last line: "step  902/19560 | loss     nan (+nanz)|slurmstepd: ... TIME LIMIT ***"
        math.nan,  # "loss     nan" from step 1 on
        math.nan,  # grep '^val loss': "val loss nan" x4
        # NaN outranks the time-limit kill: the kill is where the wasted job
        # ended, the divergence is what the user must act on.
        "diverged",
        0,
        3.603964828,  # python: mean "ms" of the 901 complete step lines
        37.469367370,  # python: mean MFU of the same 901 lines
        144513,  # "step  901/... | 144513 tok/s" (902's line is cut before its tok/s)
    ),
]


@pytest.mark.parametrize(
    ("name", "done", "loss", "val", "status", "evals", "mean_s", "mfu", "tps"),
    CASES,
    ids=[c[0][:40] for c in CASES],
)
def test_corpus_file(
    corpus: Path,
    name: str,
    done: int,
    loss: float,
    val: float,
    status: str,
    evals: int,
    mean_s: float,
    mfu: float,
    tps: int,
) -> None:
    stats = _stats(_feed_file(corpus / DIR / name))
    assert stats.iter == done
    assert (stats.target, stats.target_source) == (19560, "log")  # "step i/19560"; box train_num_batches
    assert stats.segments == 1  # step numbers only increase
    assert stats.logged_iters == done  # one line per step
    assert _same(stats.loss, loss)
    assert _same(stats.val_loss, val)
    assert stats.status == status
    assert stats.eval_iters == evals
    assert stats.mean_iter_s == pytest.approx(mean_s, rel=1e-6)
    assert stats.mfu_mean_pct == pytest.approx(mfu, rel=1e-6)
    # box: "total batch size | 524288". The aggregator prefers the evidence
    # (running-average tok/s x step time), which lands within 0.4 % of it.
    assert stats.tokens_per_iter == pytest.approx(524288, rel=0.005)
    assert (stats.tokens_per_sec_logged, stats.tokens_per_sec_logged_scope) == (tps, "total")
    assert (stats.gpu, stats.params, stats.world_size) == ("NVIDIA A100-PCIE-40GB", 124475904, 1)


def test_full_run_records(corpus: Path) -> None:
    records = _feed_file(corpus / DIR / FULL)
    evals = [r for r in records if isinstance(r, Eval)]
    assert len(evals) == 80  # grep -c '^val loss'; each HellaSwag result joins its val loss
    assert (evals[0].iter, evals[0].val_loss, evals[0].metrics) == (0, 11.007921, {})  # before "step 1"
    assert evals[-1] == Eval(iter=19560, val_loss=3.264775, metrics={"hellaswag": 0.304621})
    assert sum(bool(e.metrics) for e in evals) == 79  # grep -c 'HellaSwag: [0-9]*/[0-9]* ='
    assert [(c.iter, c.path) for c in records if isinstance(c, Checkpoint)] == [
        (5000, "log124M/model_00005000.bin"),  # "Writing checkpoint at step 5000" + "Writing model to ..."
        (10000, "log124M/model_00010000.bin"),
        (15000, "log124M/model_00015000.bin"),
    ]
    # stderr's "Error: Token out of vocabulary" landed inside step 19528's line
    # (stdout was block-buffered: the error byte offset is exactly 41 x 64 KiB).
    cut = next(r for r in records if isinstance(r, Iteration) and r.iter == 19528)
    assert (cut.loss, cut.grad_norm, cut.lr, cut.time_ms) == (3.329409, 0.2206, None, None)
    assert [r for r in records if isinstance(r, Outcome)] == [
        Outcome("failed", "Error: Token out of vocabulary at train_gpt2.cu:675")
    ]
    info = [r for r in records if isinstance(r, RunInfo) and r.config]
    assert len(info) == 1 and info[0].n_layer == 12 and info[0].block_size == 1024
    assert info[0].tokens_per_iter == 524288  # stated exactly by the box
    assert info[0].mfu_peak_tflops == 312.0 and info[0].dtype == "BF16"


def test_timeout_in_hellaswag(corpus: Path) -> None:
    records = _feed_file(corpus / DIR / "llmc_gpt2_124M_a100_timeout_at_step750.log")
    # The val loss of step 750 is kept although its HellaSwag line was cut.
    assert list(records[-2:]) == [
        Eval(iter=750, val_loss=4.723455),
        Outcome("failed", "killed by SLURM time limit", datetime(2024, 10, 10, 0, 43, 56)),
    ]


def test_nan_run_cut_step_line(corpus: Path) -> None:
    records = _feed_file(corpus / DIR / "llmc_gpt2_124M_a100_nan_timeout_at_step902.log")
    last = [r for r in records if isinstance(r, Iteration)][-1]
    assert last.iter == 902 and last.loss is not None and math.isnan(last.loss) and last.time_ms is None
    assert records[-1] == Outcome("failed", "killed by SLURM time limit", datetime(2024, 10, 10, 2, 20, 29))


def test_sniff(corpus: Path) -> None:
    for path in (corpus / DIR).iterdir():
        spec = detect(path.read_bytes()[:SNIFF_BYTES], path.name)
        expected = "llmc_main_log" if path.name.startswith("llmc_main") else "llmc_stdout"
        assert spec is not None and spec.format == expected, path.name
    for other in ("nanogpt_stdout", "megatron_stdout", "torchtitan_stdout"):
        for path in (corpus / other).iterdir():
            head = path.read_bytes()[:SNIFF_BYTES].decode("utf-8", "replace")
            assert not llmc.sniff(head, path.name), path.name
    assert by_format("llmc_stdout") is llmc.SPEC


# ----------------------------------------------------------------- lines


def test_step_line() -> None:
    records = _feed([STEP.format(746)])
    assert records == [
        RunInfo(target=19560, tokens_per_sec_scope="total", eval_timing="excluded"),
        Iteration(
            iter=746,
            loss=4.734725,
            time_ms=4188.82,
            mfu_pct=32.2,
            tokens_per_sec=123896.0,
            lr=6.0e-04,
            grad_norm=0.5501,
        ),
    ]


def test_older_step_line_format() -> None:
    lines = ["step    1/74: train loss 4.367631 norm 1.2345 lr 1.00e-04 (80.64 ms, 6350 tok/s)"]
    assert llmc.sniff(lines[0] + "\n", "train.log")
    assert _feed(lines) == [
        RunInfo(target=74, tokens_per_sec_scope="total", eval_timing="excluded"),
        Iteration(iter=1, loss=4.367631, time_ms=80.64, tokens_per_sec=6350.0, lr=1e-04, grad_norm=1.2345),
    ]
    assert _feed(["step    2/74: train loss 4.1 (79.5 ms)"])[-1] == Iteration(iter=2, loss=4.1, time_ms=79.5)


def test_unknown_mfu_and_nan() -> None:
    line = (
        "step    3/10 | loss     nan (+nanz)| norm    nan (+nanz)| lr 2.57e-06 | 3603.56 ms"
        " | -100.0% bf16 MFU | 9 tok/s"
    )
    it = _feed([line])[-1]
    assert isinstance(it, Iteration) and it.mfu_pct is None and it.loss is not None and math.isnan(it.loss)
    assert _stats(_feed([line])).status == "diverged"


def test_ansi_prefix_and_stray_cr() -> None:
    records = _feed(["\x1b[1m[rank0]: " + STEP.format(1) + "\x1b[0m", STEP.format(2) + "\r"])
    assert [r.iter for r in records if isinstance(r, Iteration)] == [1, 2]


def test_error_inside_a_step_line() -> None:
    records = _feed(
        [
            STEP.format(7)[: STEP.format(7).index("| lr") + 3] + "Error: Token out of vocabulary at train_gpt2.cu:675",
            "Error details:",
            "  File: train_gpt2.cu",
            "r 4.52e-09 | 4285.08 ms | 31.5% bf16 MFU | 124130 tok/s",  # the rest of step 7's line
            STEP.format(8),
        ]
    )
    its = [r for r in records if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.grad_norm, i.time_ms) for i in its] == [
        (7, 4.734725, 0.5501, None),
        (8, 4.734725, 0.5501, 4188.82),
    ]
    assert [r for r in records if isinstance(r, Outcome)] == [
        Outcome("failed", "Error: Token out of vocabulary at train_gpt2.cu:675")
    ]


def test_slurm_cut_drops_the_truncated_field() -> None:
    kill = "slurmstepd: error: *** JOB 1 ON g1 CANCELLED AT 2024-10-10T02:20:29 DUE TO TIME LIMIT ***"
    records = _feed([STEP.format(5)[:75] + kill])  # cut inside "lr 6.00e-04"
    it = next(r for r in records if isinstance(r, Iteration))
    assert (it.iter, it.loss, it.grad_norm, it.lr) == (5, 4.734725, 0.5501, None)
    assert records[-1] == Outcome("failed", "killed by SLURM time limit", datetime(2024, 10, 10, 2, 20, 29))


def test_val_loss_and_hellaswag_make_one_eval() -> None:
    progress = "\r".join(f"evaluating HellaSwag: {i}/1256" for i in range(0, 1260, 10))
    records = _feed(
        [STEP.format(250), "val loss 6.202221", progress + "\rHellaSwag: 2493/10042 = 0.248257", STEP.format(251)],
        flush=False,
    )
    assert [r for r in records if isinstance(r, Eval)] == [
        Eval(iter=250, val_loss=6.202221, metrics={"hellaswag": 0.248257})
    ]
    # Without HellaSwag the val loss goes out before the next step.
    records = _feed(["val loss 11.008742", STEP.format(1)], flush=False)
    assert isinstance(records[0], Eval) and records[0].iter == 0 and records[0].val_loss == 11.008742


def test_flush_while_hellaswag_runs() -> None:
    parser = LlmcStdoutParser()
    parser.feed(STEP.format(500))
    parser.feed("val loss 5.42")
    assert parser.flush() == [Eval(iter=500, val_loss=5.42)]
    # When the result arrives, its Eval repeats the val loss (it replaces the first).
    assert parser.feed("evaluating HellaSwag: 0/1256\rHellaSwag: 2441/10042 = 0.243079") == [
        Eval(iter=500, val_loss=5.42, metrics={"hellaswag": 0.243079})
    ]


def test_config_box_and_setup() -> None:
    records = _feed(
        [
            "+-----------------------+----------------------------------------------------+",
            "| Parameter             | Value                                              |",
            "+-----------------------+----------------------------------------------------+",
            "| max_steps             | 1000                                               |",
            "| sequence length T     | 1024                                               |",
            "| total batch size      | 524288                                             |",
            "| device                | NVIDIA H100 80GB HBM3                              |",
            "| num_parameters        | 124475904                                          |",
            "| train_num_batches     | 1000                                               |",
            "| num_processes         | 8                                                  |",
            "+-----------------------+----------------------------------------------------+",
            "num_parameters: 124475904 => bytes: 248951808",
            "batch_size B=64 * seq_len T=1024 * num_processes=8 and total_batch_size=524288",
            "=> setting grad_accum_steps=1",
        ]
    )
    box = records[0]
    assert isinstance(box, RunInfo)
    assert (box.target, box.block_size, box.tokens_per_iter, box.world_size) == (1000, 1024, 524288, 8)
    assert (box.gpu, box.params, box.tokens_per_sec_scope) == ("NVIDIA H100 80GB HBM3", 124475904, "total")
    assert box.eval_timing == "excluded"
    assert records[1:] == [
        RunInfo(batch_size=64, block_size=1024, world_size=8, tokens_per_iter=524288),
        RunInfo(grad_accum_per_gpu=1),
    ]


def test_sample_text_is_not_parsed_and_clean_end() -> None:
    records = _feed(
        [
            STEP.format(10).replace("/19560", "/10"),
            "generating:",
            "---",
            "step 99/100 | loss 1.0 | Error: this is generated text",
            "---",
            "total average iteration time: 4242.441687 ms",
            "slurmstepd: error: *** JOB 1 ON g1 CANCELLED AT 2024-10-10T02:20:29 DUE TO TIME LIMIT ***",
        ]
    )
    assert [r.iter for r in records if isinstance(r, Iteration)] == [10]
    assert [r for r in records if isinstance(r, Outcome)] == [
        Outcome("finished", "total average iteration time: 4242.441687 ms")
    ]
    assert _stats(records).status == "finished"


def test_resume_is_a_new_segment() -> None:
    stats = _stats(_feed([STEP.format(i) for i in (1, 2, 3, 2, 3, 4)]))
    assert (stats.segments, stats.iter, stats.logged_iters) == (2, 4, 4)
