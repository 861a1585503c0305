"""nanogpt_stdout: nanoGPT's console (stock lines and the enhanced fork's blocks)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import SNIFF_BYTES, by_format, detect, nanogpt_stdout
from trainwatch.parsers.nanogpt_stdout import NanoGPTStdoutParser

NOW = datetime(2030, 1, 1)
DIR = "nanogpt_stdout"


def _feed(lines: list[str], flush: bool = True) -> list[Record]:
    parser = NanoGPTStdoutParser()
    records = [record for line in lines for record in parser.feed(line)]
    return records + (parser.flush() if flush else [])


def _feed_file(path: Path) -> list[Record]:
    """Feed complete lines as the tailer does (split on \\n, CR removed), then flush."""
    data = path.read_bytes()
    text = data[: data.rfind(b"\n")].decode("utf-8", "replace")
    return _feed([line.removesuffix("\r") for line in text.split("\n")])


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _merged_info(records: list[Record]) -> dict[str, object]:
    merged: dict[str, object] = {}
    for r in records:
        if isinstance(r, RunInfo):
            merged.update({k: getattr(r, k) for k in r.__slots__ if getattr(r, k) is not None})
    return merged


# ------------------------------------------------------------------ corpus

# name, iters done, last train loss, last val loss, status, logged, eval iters, mean s/iter, MFU mean
CASES = [
    (
        "nanogpt_custom_optimizer_noisy_prints_2650iters_wandb_output.log",
        2650,  # tail -1: "iter 2650: loss 216.3787, time 2947.12ms, mfu 21.00%"
        216.3787,
        230.6713,  # grep '^step ' | tail -1: "step 2600: train loss 231.3248, val loss 230.6713"
        # No end marker and no max_iters in the log (reaching the default target
        # 2000 proves nothing); no file times fed here, so it cannot be stalled.
        "running",
        266,  # grep -c '^iter '
        27,  # grep -c '^step ' (each "iter N" after "step N" carries the eval's time)
        2.9474813,  # awk: mean "time" of the 239 iter lines whose N has no "step N:" line
        21.056653,  # awk: mean mfu of those 239 lines (all > 0)
    ),
    (
        "nanogpt_gpt2vocab_scratch_13280iters_wandb_output.log",
        13280,  # tail -1: "iter 13280: loss 3.1290, time 3051.26ms, mfu 22.03%"
        3.1290,
        3.1641,  # grep '^step ' | tail -1: "step 13000: train loss 3.1668, val loss 3.1641"
        "running",  # as above: wandb's copy stops mid-run, no stated target
        1329,  # grep -c '^iter '
        14,  # grep -c '^step '
        3.0472265,  # awk, as above (1315 non-eval iter lines)
        21.928563,  # awk, as above; iter 0's "mfu -100.00%" is the eval/warm-up line
    ),
    (
        "nanogpt_shakespeare_char_termux_cpu_nan_450iters_train.log",
        450,  # tail -1: "iter 450: loss nan, time 1440.08ms, mfu 0.01%"
        math.nan,  # loss nan from "iter 425" on
        3.3687,  # "step 400: train loss 3.3296, val loss 3.3687"
        "diverged",
        91,  # grep -c '^iter '
        5,  # grep -c '^step '
        1.4432713,  # awk, as above (86 non-eval iter lines)
        0.01,  # every iter line after 0 says "mfu 0.01%"
    ),
]


@pytest.mark.parametrize(
    ("name", "done", "loss", "val", "status", "logged", "evals", "mean_s", "mfu"),
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
    logged: int,
    evals: int,
    mean_s: float,
    mfu: float,
) -> None:
    records = _feed_file(corpus / DIR / name)
    stats = _stats(records)
    assert stats.iter == done
    assert stats.target == 2000 and stats.target_source == "default"  # no max_iters echo in any
    assert stats.segments == 1  # awk: iter numbers only ever increase
    assert stats.loss is not None
    assert (math.isnan(loss) and math.isnan(stats.loss)) or stats.loss == pytest.approx(loss)
    assert stats.val_loss == pytest.approx(val)
    assert stats.status == status
    assert (stats.logged_iters, stats.eval_iters) == (logged, evals)
    assert stats.mean_iter_s == pytest.approx(mean_s, rel=1e-6)
    assert stats.mfu_mean_pct == pytest.approx(mfu, rel=1e-6)
    assert not stats.mfu_derived


def test_termux_preamble(corpus: Path) -> None:
    records = _feed_file(corpus / DIR / "nanogpt_shakespeare_char_termux_cpu_nan_450iters_train.log")
    info = _merged_info(records)
    assert info["tokens_per_iter"] == 512  # "tokens per iteration will be: 512"
    assert info["params"] == 10_650_000  # "number of parameters: 10.65M"
    # The FutureWarning and its indented source line are no failure.
    assert not [r for r in records if isinstance(r, Outcome)]
    # "saving checkpoint to out-kirin" after the evals at 100..400, not after step 0.
    assert [(c.iter, c.path) for c in records if isinstance(c, Checkpoint)] == [
        (100, "out-kirin"),
        (200, "out-kirin"),
        (300, "out-kirin"),
        (400, "out-kirin"),
    ]
    first = next(r for r in records if isinstance(r, Iteration))
    assert (first.iter, first.time_ms, first.mfu_pct) == (0, 10268.08, None)  # mfu -100.00%


def test_noisy_prints_are_skipped(corpus: Path) -> None:
    records = _feed_file(corpus / DIR / "nanogpt_custom_optimizer_noisy_prints_2650iters_wandb_output.log")
    assert sum(isinstance(r, Iteration) for r in records) == 266
    assert sum(isinstance(r, Eval) for r in records) == 27
    assert sum(isinstance(r, Checkpoint) for r in records) == 26  # grep -c 'saving checkpoint'
    assert not [r for r in records if isinstance(r, Outcome)]
    # No metadata in this log but the format's own: evals are timed in "iter N".
    assert [r for r in records if isinstance(r, RunInfo)] == [RunInfo(eval_timing="same")]


def test_sniff_corpus(corpus: Path) -> None:
    for path in (corpus / DIR).iterdir():
        data = path.read_bytes()
        if b"GRADIENT IS NONE" in data[:SNIFF_BYTES]:
            # 34 KB of the fork's own prints come before nanoGPT's first line:
            # the standard 16 KB head cannot tell; a longer look can.
            assert detect(data[:SNIFF_BYTES], path.name) is None
            assert nanogpt_stdout.sniff(data[:65536].decode(), path.name)
            continue
        spec = detect(data[:SNIFF_BYTES], path.name)
        assert spec is not None and spec.format == "nanogpt_stdout", path.name


def test_sniff_rejects_other_formats(corpus: Path) -> None:
    for name in (
        "llmc_stdout/llmc_gpt2_124M_a100_timeout_at_step750.log",
        "megatron_stdout/megads_qwen7b_16ranks_500iters_with_validation.log",
        "buildnanogpt_logtxt/buildnanogpt_v1_20k_train_with_export_evaluate_lines.txt",
    ):
        head = (corpus / name).read_bytes()[:SNIFF_BYTES].decode("utf-8", "replace")
        assert not nanogpt_stdout.sniff(head, Path(name).name), name
    assert by_format("nanogpt_stdout") is nanogpt_stdout.SPEC


# ----------------------------------------------------------- stock lines


def test_config_echo_and_overrides() -> None:
    records = _feed(
        [
            "Overriding config with config/train_gpt2.py:",
            "# 12 batch size * 1024 block size * 5 gradaccum * 8 GPUs = 491,520",
            "wandb_log = True",
            "wandb_run_name='gpt2-124M'",
            "batch_size = 12",
            "block_size = 1024",
            "gradient_accumulation_steps = 5 * 8",
            "max_iters = 600000",
            "eval_interval = 1000 # keep frequent",
            "",
            "Overriding: max_iters = 2000",
            "Overriding: log_interval = 10",
            "tokens per iteration will be: 491,520",
            "number of parameters: 123.69M",
            "step 0: train loss 10.9886, val loss 10.9897",
            "some_user_var = 3",  # outside the echo, not a nanoGPT key: ignored
        ]
    )
    info = _merged_info(records)
    assert info["target"] == 2000  # the CLI override wins over the file's 600000
    assert (info["batch_size"], info["block_size"], info["grad_accum"]) == (12, 1024, 40)
    assert (info["eval_interval"], info["log_interval"]) == (1000, 10)
    assert info["tokens_per_iter"] == 491_520
    assert info["params"] == 123_690_000
    assert info["name"] == "gpt2-124M"
    config = info["config"]
    assert isinstance(config, dict) and config["wandb_log"] is True and "some_user_var" not in config
    # Metadata is emitted before the records of the line that follows it.
    assert isinstance(records[0], RunInfo) and isinstance(records[-1], Eval)


def test_iteration_line_fields_and_sentinel() -> None:
    lines = [
        "iter 0: loss 10.9733, time 31264.63ms, mfu -100.00%",
        "iter 10: loss 10.3218, time 2948.92ms, mfu 22.83%",
        "iter 20: loss inf, time 2956.29ms, mfu 22.83%",
    ]
    records = [r for r in _feed(lines) if isinstance(r, Iteration)]
    assert records[0] == Iteration(iter=0, loss=10.9733, time_ms=31264.63, mfu_pct=None)
    assert records[1] == Iteration(iter=10, loss=10.3218, time_ms=2948.92, mfu_pct=22.83)
    assert isinstance(records[2], Iteration) and records[2].loss == math.inf


def test_nan_loss_means_diverged() -> None:
    records = _feed(["iter 0: loss 4.27, time 10.0ms, mfu -100.00%", "iter 5: loss nan, time 10.0ms, mfu 0.01%"])
    assert _stats(records).status == "diverged"


def test_ansi_prefixes_cr_and_crlf() -> None:
    records = _feed(
        [
            "\x1b[32miter 10: loss 3.5, time 100.0ms, mfu 1.00%\x1b[0m",
            "[rank0]: iter 20: loss 3.4, time 101.0ms, mfu 1.00%",
            "9: [default3]: step 30: train loss 3.3, val loss 3.35",
            "Training:  10%|█         | 30/300 [00:03<00:27]\riter 30: loss 3.3, time 900.0ms, mfu 1.00%",
            "iter 40: loss 3.2, time 99.0ms, mfu 1.00%\r",  # a CR the tailer did not remove
        ]
    )
    assert [(type(r).__name__, r.iter) for r in records if isinstance(r, Iteration | Eval)] == [
        ("Iteration", 10),
        ("Iteration", 20),
        ("Eval", 30),
        ("Iteration", 30),
        ("Iteration", 40),
    ]
    assert _stats(records).eval_iters == 1  # iter 30 follows the eval at step 30


def test_cut_off_last_line_is_skipped() -> None:
    parser = NanoGPTStdoutParser()
    assert parser.feed("iter 40: loss 3.1234, ti") == [RunInfo(eval_timing="same")]
    assert parser.feed("iter 40: loss 3.1234, time 29") == []
    assert parser.flush() == []


def test_traceback_fails_the_run() -> None:
    records = _feed(
        [
            "iter 10: loss 3.5, time 100.0ms, mfu 1.00%",
            "Traceback (most recent call last):",
            '  File "train.py", line 300, in <module>',
            "    loss.backward()",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        ]
    )
    assert records[-1] == Outcome("failed", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert _stats(records).status == "failed"


def test_eval_line_with_a_unit_after_each_loss() -> None:
    # A fork that trains on characters prints bits per character.
    line = "step 0: train loss 12.6510 BPC, val loss 12.6486 BPC"
    assert detect(f"{line}\nTraceback (most recent call last):\n".encode(), "output.log") is nanogpt_stdout.SPEC
    records = _feed([line, "step 250: train loss 1.2345 bpc, val loss 1.3000 bpc"])
    evals = [r for r in records if isinstance(r, Eval)]
    assert [(e.iter, e.train_loss, e.val_loss) for e in evals] == [(0, 12.651, 12.6486), (250, 1.2345, 1.3)]


def test_traceback_needs_an_exception_line() -> None:
    records = _feed(
        [
            "Traceback (most recent call last):",
            '  File "wandb/sdk/internal.py", line 12, in send',
            "iter 10: loss 3.5, time 100.0ms, mfu 1.00%",  # not an exception line: still read
            "ConnectionError: wandb upload failed",
        ],
        flush=False,
    )
    assert [type(r).__name__ for r in records] == ["RunInfo", "Iteration", "Outcome"]
    assert records[-1] == Outcome("failed", "ConnectionError: wandb upload failed")


def test_cut_off_traceback_is_flushed() -> None:
    parser = NanoGPTStdoutParser()
    parser.feed("Traceback (most recent call last):")
    parser.feed('  File "train.py", line 300, in <module>')
    assert parser.flush() == [Outcome("failed", "Python traceback (cut off)")]


def test_slurm_kill_in_a_half_written_line() -> None:
    records = _feed(
        [
            "iter 10: loss 3.5, time 100.0ms, mfu 1.00%",
            "iter 20: loss 3.4, time 10slurmstepd: error: *** JOB 7 ON g1 CANCELLED AT 2024-10-10T02:20:29 "
            "DUE TO TIME LIMIT ***",
        ]
    )
    assert records[-1] == Outcome("failed", "killed by SLURM time limit", datetime(2024, 10, 10, 2, 20, 29))
    assert [r.iter for r in records if isinstance(r, Iteration)] == [10]  # the cut line is unreadable


def test_restart_starts_a_new_segment() -> None:
    records = _feed(
        [
            "iter 0: loss 4.0, time 100.0ms, mfu -100.00%",
            "iter 10: loss 3.0, time 100.0ms, mfu 1.00%",
            "iter 20: loss 2.9, time 100.0ms, mfu 1.00%",
            "Resuming training from out",
            "iter 10: loss 3.0, time 100.0ms, mfu -100.00%",
            "iter 30: loss 2.8, time 100.0ms, mfu 1.00%",
        ]
    )
    stats = _stats(records)
    assert (stats.segments, stats.iter, stats.logged_iters) == (2, 30, 3)


# ------------------------------------------------- enhanced console blocks

RULE = "─" * 80


def _block(step: int, grads: bool = True, sep: str = "│") -> list[str]:
    """One logged iteration as the enhanced train.py prints it."""
    lines = [
        "",
        RULE,
        f"📍 Iter {step:>6d} {sep} Loss: 3.2145 {sep} Time: 234ms {sep} LR: 1.50e-06",
        RULE,
        f"⚡ MFU: 45.23% {sep} Achieved: 141.1 TF {sep} Peak: 312.0 TF",
        f"   Tokens/s: 21,943 {sep} FLOPs/token: 6.40 GF (6N+12LHQT: N=0.124B)",
        f"💾 Memory: 2.34 GB alloc {sep} 3.12 GB peak {sep} 4.00 GB reserved",
    ]
    if grads:
        lines.append(f"📊 Gradients: norm=1.2345 {sep} mean=-5.67e-06 {sep} std=2.34e-04")
    return lines


def test_enhanced_block_is_one_iteration() -> None:
    parser = NanoGPTStdoutParser()
    emitted = [parser.feed(line) for line in _block(10)]
    # No iteration until the block's last line, then the whole of it at once.
    assert not [r for batch in emitted[:-1] for r in batch if isinstance(r, Iteration)]
    assert emitted[-1] == [
        Iteration(
            iter=10, loss=3.2145, time_ms=234.0, mfu_pct=45.23, tokens_per_sec=21943.0, lr=1.5e-06, grad_norm=1.2345
        )
    ]
    info = _merged_info([r for batch in emitted for r in batch])
    assert (info["mfu_peak_tflops"], info["tokens_per_sec_scope"]) == (312.0, "gpu")
    # Metadata is not repeated for every block.
    assert not [r for line in _block(20) for r in parser.feed(line) if isinstance(r, RunInfo)]


def test_enhanced_block_without_gradients_ends_at_the_next_line() -> None:
    parser = NanoGPTStdoutParser()
    for line in _block(15, grads=False, sep="|"):
        assert not [r for r in parser.feed(line) if isinstance(r, Iteration)]
    # The blank line that opens the next block closes this one.
    its = [r for r in parser.feed("") if isinstance(r, Iteration)]
    assert its == [Iteration(iter=15, loss=3.2145, time_ms=234.0, mfu_pct=45.23, tokens_per_sec=21943.0, lr=1.5e-06)]


def test_enhanced_block_followed_directly_by_the_next() -> None:
    lines = _block(10, grads=False)[2:5] + _block(20)[2:]  # no blank, no rule between
    its = [r for r in _feed(lines, flush=False) if isinstance(r, Iteration)]
    assert [(i.iter, i.mfu_pct, i.tokens_per_sec) for i in its] == [(10, 45.23, None), (20, 45.23, 21943.0)]


def test_enhanced_cut_off_block_is_flushed_once() -> None:
    parser = NanoGPTStdoutParser()
    for line in _block(10)[:5]:  # up to the MFU line: the rest not written yet
        parser.feed(line)
    flushed = [r for r in parser.flush() if isinstance(r, Iteration)]
    assert [(i.iter, i.mfu_pct) for i in flushed] == [(10, 45.23)]
    assert parser.flush() == []
    # Lines of that block arriving after the flush emit nothing more.
    assert [r for line in _block(10)[5:] for r in parser.feed(line) if isinstance(r, Iteration)] == []


def test_enhanced_run_end_to_end() -> None:
    lines = [
        "📊 MODEL ARCHITECTURE:",
        "  Architecture Name:     12L-12H-768D-AbsPos-LN-NB-GELU-PostNorm",
        "  Total parameters:      124,475,904 (124.48M)",
        "  ├─ Layers:             12",
        "  ├─ Hidden size:        768",
        "  ├─ Attention heads:    12",
        "  ├─ Sequence length:    1024",
        "⚙️  TRAINING CONFIGURATION:",
        "  Batch size (micro):    12",
        "  Gradient accum steps:  20",
        "  Tokens per iteration:  491,520",
        "  Max iterations:        50",
        "🖥️  HARDWARE:",
        "  Device:                NVIDIA A100-SXM4-80GB",
        "  GPUs:                  2",
        "  Precision:             bfloat16",
        "  Hardware peak:         624.0 TFLOPS (A100 bf16)",
        "",
        "━" * 80,
        "📊 EVALUATION │ Step      0",
        "━" * 80,
        "  Train loss: 10.9886 │ Val loss: 10.9897 │ LR: 3.00e-07",
        "━" * 80,
        "",
        "Iter 0: loss 10.8422, time 32054ms (warming up...)",
        *[line for step in range(5, 50, 5) for line in _block(step, grads=step % 10 == 0)],
        "",
        "━" * 80,
        "📊 EVALUATION │ Step     50",
        "━" * 80,
        "  Train loss: 3.1000 │ Val loss: 3.2000 │ LR: 6.00e-05",
        "━" * 80,
        "💾 Saving checkpoint to out-gpt2",
        *_block(50),
        "",
        "=" * 80,
        "✅ Training completed! Log saved to: out-gpt2/run_20251113_225009.json",
        "=" * 80,
        "Traceback (most recent call last):",  # teardown noise after the clean end
        "RuntimeError: destroy_process_group() called twice",
    ]
    records = _feed(lines)
    info = _merged_info(records)
    assert info["params"] == 124_475_904 and info["n_layer"] == 12 and info["n_embd"] == 768
    assert (info["n_head"], info["block_size"], info["batch_size"]) == (12, 1024, 12)
    assert (info["grad_accum_per_gpu"], info["tokens_per_iter"], info["target"]) == (20, 491_520, 50)
    assert (info["gpu"], info["world_size"], info["dtype"]) == ("NVIDIA A100-SXM4-80GB", 2, "bfloat16")
    assert info["architecture"] == "12L-12H-768D-AbsPos-LN-NB-GELU-PostNorm"
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(0, 10.9897), (50, 3.2)]
    assert [c.iter for c in records if isinstance(c, Checkpoint)] == [50]
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.iter for i in its] == [0, *range(5, 55, 5)]  # each once
    assert its[0].mfu_pct is None and all(i.mfu_pct == 45.23 for i in its[1:])
    outcomes = [r for r in records if isinstance(r, Outcome)]
    assert [o.kind for o in outcomes] == ["finished"]  # the later traceback does not fail it
    stats = _stats(records)
    assert (stats.iter, stats.target, stats.logged_iters, stats.status) == (50, 50, 11, "finished")
    assert stats.eval_iters == 2  # iterations 0 and 50 carry the evals' time
