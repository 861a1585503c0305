"""olmo_console: the training console of AllenAI's OLMo and OLMo-core.

There is no corpus file of this format: the sample logs below are written in
the grammar the frameworks' own code prints, with their own number
formatting copied here (and quoted where it comes from).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.cli import EXIT_OK, main
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import by_format, composer_console, detect, detect_fallback, generic_text, olmo_console

NOW = datetime(2030, 1, 1)


def olmo_float(value: float) -> str:
    """allenai/OLMo olmo/train.py ``Trainer.log_metrics_to_console.format_float``."""
    if value < 0.0001:
        return str(value)  # scientific notation
    elif value > 1000:
        return f"{int(value):,d}"
    elif value > 100:
        return f"{value:.1f}"
    elif value > 10:
        return f"{value:.2f}"
    elif value > 1:
        return f"{value:.3f}"
    else:
        return f"{value:.4f}"


def core_float(value: float) -> str:
    """allenai/OLMo-core src/olmo_core/utils.py ``format_float``."""
    if math.isnan(value):
        return "nan"
    elif math.isinf(value):
        return "inf" if value > 0 else "-inf"
    abs_value = abs(value)
    if abs_value == 0.0:
        return "0.0"
    elif abs_value >= 1e9:
        for suffix, factor in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("B", 1e9)):
            if abs_value >= factor:
                scaled = value / factor
                abs_scaled = abs(scaled)
                decimals = 1 if abs_scaled > 100 else 2 if abs_scaled > 10 else 3 if abs_scaled > 1 else 4
                return f"{scaled:,.{decimals}f}{suffix}"
    if abs_value < 0.0001:
        return f"{value:.2E}"
    elif abs_value >= 1000:
        return f"{int(value):,d}"
    elif abs_value > 100:
        return f"{value:.1f}"
    elif abs_value > 10:
        return f"{value:.2f}"
    elif abs_value > 1:
        return f"{value:.3f}"
    else:
        return f"{value:.4f}"


def plain(when: str, logger: str, lineno: int, message: str, level: str = "INFO") -> list[str]:
    """OLMo's (and OLMo-core's) non-tty ``logging.Formatter``:
    ``"%(asctime)s\\t%(hostname)s:%(local_rank)s\\t%(name)s:%(lineno)s\\t%(levelname)s\\t%(message)s"``;
    a message's later lines come without the prefix."""
    return f"{when}\tnode7:0\t{logger}:{lineno}\t{level}\t{message}".split("\n")


def rich(when: str, logger: str, lineno: int, message: str) -> list[str]:
    """OLMo-core's ``_RichHandler``: time ``[%Y-%m-%d %X]``, level ljust(8), location, message."""
    return f"[{when}] INFO     [{logger}:{lineno}, node7, rank=0] {message}".split("\n")


def block(prefix: str, metrics: dict[str, float], fmt: object = olmo_float) -> str:
    """``log_metrics_to_console``: the prefix, then ``    name=value`` per metric."""
    assert callable(fmt)
    return f"{prefix}\n" + "\n".join(f"    {name}={fmt(value)}" for name, value in metrics.items())


def feed(lines: list[str], *, flush: bool = True) -> list[Record]:
    parser = olmo_console.OlmoConsoleParser()
    out = [r for line in lines for r in parser.feed(line)]
    return out + list(parser.flush()) if flush else out


def stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def its(records: list[Record]) -> list[Iteration]:
    return [r for r in records if isinstance(r, Iteration)]


# --------------------------------------------------------------- OLMo (classic)

CONFIG = (
    "TrainConfig(run_name='OLMo-1B-run', seed=6198, epoch=None, dry_run=False, model=ModelConfig("
    "d_model=2048, n_heads=16, n_kv_heads=None, clip_qkv=None, n_layers=16, mlp_ratio=8, "
    "max_sequence_length=2048, vocab_size=50280), optimizer=OptimizerConfig(name='adamw', "
    "learning_rate=0.0004), global_train_batch_size=512, device_train_batch_size=64, "
    "device_train_microbatch_size=8, device_eval_batch_size=16)"
)


def classic_log() -> list[str]:
    """OLMo after 2024-07: ``[step=N/T,epoch=E]``, eval under the evaluator's label."""
    lines = plain("2024-02-01 11:58:00.001", "train", 98, CONFIG)
    lines += plain("2024-02-01 11:58:30.002", "train", 141, "Total number of parameters: 1,176,764,416")
    lines += plain("2024-02-01 11:59:00.003", "train", 375, "Starting training...")
    for step, loss, bps, tokens in ((10, 7.1234567, 0.07543, 10485760), (20, 6.54321, 0.08012, 20971520)):
        metrics = {
            "train/CrossEntropyLoss": loss,
            "train/Perplexity": math.exp(loss),
            "throughput/total_tokens": tokens,
            "throughput/total_training_Gflops": 1.9e13,
            "throughput/total_training_log_Gflops": 30.6,
            "throughput/device/tokens_per_second": bps * 64 * 2048,
            "throughput/device/batches_per_second": bps,
            "optim/total_grad_norm": 1.2345,
            "System/Peak GPU Memory (MB)": 40123.4,
        }
        lines += plain(
            f"2024-02-01 12:0{step // 10}:00.500", "olmo.train", 1240, block(f"[step={step}/739328,epoch=0]", metrics)
        )
        if step == 10:
            lines += plain("2024-02-01 12:01:10.000", "olmo.train", 1266, "Saving checkpoint...")
            lines += plain("2024-02-01 12:01:20.000", "olmo.train", 1268, "Checkpoint saved to /ckpt/OLMo-1B/step10")
            lines += plain(
                "2024-02-01 12:01:21.000", "olmo.train", 1015, "Running evaluation for 'v3-small-ppl-validation'..."
            )
            lines += plain("2024-02-01 12:01:22.000", "olmo.train", 1034, "[eval_step=2/2]")
            ev = {
                "eval/v3-small-c4_en-validation/CrossEntropyLoss": 3.4567,
                "eval/v3-small-c4_en-validation/Perplexity": 31.7,
            }
            lines += plain("2024-02-01 12:01:30.000", "olmo.train", 1047, block("v3-small-ppl-validation", ev))
            ds = {"eval/downstream/piqa_len_norm": 0.61234}
            lines += plain("2024-02-01 12:01:40.000", "olmo.train", 1047, block("piqa", ds))
    lines += plain("2024-02-01 12:03:00.000", "train", 377, "Training complete")
    return lines


def test_classic_run_read_as_printed() -> None:
    records = feed(classic_log())
    info = [r for r in records if isinstance(r, RunInfo)]
    first = info[0]
    assert (first.name, first.world_size, first.block_size) == ("OLMo-1B-run", 8, 2048)  # 512 // 64 GPUs
    assert first.tokens_per_iter == 512 * 2048
    assert (first.n_layer, first.n_head, first.n_embd) == (16, 16, 2048)
    assert info[1].params == 1_176_764_416
    assert info[2].target == 739328 and info[2].tokens_per_sec_scope == "total"
    assert info[2].eval_timing == "excluded"
    a, b = its(records)
    assert a.iter == 10 and a.loss == 7.123  # format_float: 1 < v <= 10 -> 3 decimals
    assert a.tokens_seen == 10_485_760  # "10,485,760"
    # bps 0.07543 -> "0.0754"; per device 0.07543 * 131072 = 9886.76 -> "9,886"; × 8 GPUs
    assert a.time_ms == pytest.approx(1000 / 0.0754)
    assert a.tokens_per_sec == 9886 * 8
    assert a.grad_norm == 1.234 and a.lr is None  # the console leaves optim/ but the grad norm out
    assert a.wall_time == datetime(2024, 2, 1, 12, 1, 0, 500000)
    assert b.iter == 20 and b.loss == 6.543
    ckpt = next(r for r in records if isinstance(r, Checkpoint))
    assert (ckpt.iter, ckpt.path) == (10, "/ckpt/OLMo-1B/step10")
    evals = [r for r in records if isinstance(r, Eval)]
    assert [e.iter for e in evals] == [10, 10]
    assert evals[0].val_loss == 3.457
    # The second evaluator of the step repeats the first's loss beside its own metric.
    assert evals[1].val_loss == 3.457 and evals[1].metrics["eval/downstream/piqa_len_norm"] == 0.6123
    assert records[-1] == Outcome("finished", "Training complete", datetime(2024, 2, 1, 12, 3))
    # The record order: the step's block is out before the checkpoint that follows it.
    assert records.index(a) < records.index(ckpt) < records.index(evals[0]) < records.index(b)


def test_classic_run_through_the_aggregator() -> None:
    st = stats(feed(classic_log()))
    assert st.iter == 20 and st.target == 739328 and st.loss == 6.543
    assert st.val_loss == 3.457 and st.status == "finished"
    assert st.world_size == 8 and st.params == 1_176_764_416
    assert st.tokens_per_iter == 512 * 2048  # the config, confirmed by 10,485,760 tokens per 10 steps


def test_older_markers_and_a_total_in_tokens() -> None:
    """2023: ``[step=N/{max_duration}]`` (``2e12T``, no step count), then ``[step=N/T]``."""
    lines = plain(
        "2023-09-01 10:00:00.000", "olmo.train", 700, block("[step=1/2e12T]", {"train/CrossEntropyLoss": 10.9876})
    )
    lines += plain(
        "2023-12-01 10:00:00.000",
        "olmo.train",
        800,
        block("[step=5/1000]", {"train/CrossEntropyLoss": 0.98765, "optim/learning_rate_group0": 4e-05}),
    )
    records = feed(lines)
    a, b = its(records)
    assert (a.iter, a.loss) == (1, 10.99)  # 10 < v <= 100 -> 2 decimals
    assert (b.iter, b.loss, b.lr) == (5, 0.9877, 4e-05)  # "4e-05": str() under 1e-4
    assert [r.target for r in records if isinstance(r, RunInfo)] == [1000]


def test_srun_labels_and_ansi() -> None:
    lines = [
        f"0: {line}"
        for line in plain(
            "2024-03-01 10:00:00.000", "olmo.train", 1240, block("[step=3/100]", {"train/CrossEntropyLoss": 5.5})
        )
    ]
    lines += ["[rank0]:\x1b[32m2024-03-01 10:00:05.000\tnode7:0\tolmo.train:1240\tINFO\t[step=4/100,epoch=0]\x1b[0m"]
    lines += ["[rank0]:    train/CrossEntropyLoss=5.250"]
    assert [(i.iter, i.loss) for i in its(feed(lines))] == [(3, 5.5), (4, 5.25)]


def test_nan_loss_and_a_crash_mid_block() -> None:
    """``raise ValueError("nan loss encountered")`` while the step's record is not
    over: the block is cut, its lines so far still count, and the run failed."""
    lines = plain(
        "2024-02-01 12:00:00.000", "olmo.train", 1240, block("[step=7/100,epoch=0]", {"train/CrossEntropyLoss": 2.5})
    )
    lines += ["    train/Perplexity=12.1"]  # the rest of the record never came
    lines += [
        "Traceback (most recent call last):",
        '  File "scripts/train.py", line 300, in <module>',
        "ValueError: nan loss encountered",
    ]
    records = feed(lines, flush=False)
    assert its(records)[0].loss == 2.5
    assert records[-1] == Outcome("failed", "ValueError: nan loss encountered")
    assert stats(records).status == "failed"


# ------------------------------------------------------------------ OLMo-core

CORE = "olmo_core.train.callbacks.console_logger"


def core_step(step: int, loss: float, *, eta: str = "1h2m3s", target: str = "1000") -> dict[str, float]:
    return {
        "train/CE loss": loss,
        "train/PPL": math.exp(loss),
        "optim/total grad norm": 0.4321,
        "optim/LR (group 0)": 3.0e-5 * step / 10,
        "throughput/total tokens": step * 4_194_304,
        "throughput/device/TPS": 23456.7,
        "throughput/device/TPS (actual avg)": 23000.1,
        "throughput/device/BPS": 0.35791,
        "throughput/device/MFU": 41.26,
        "gpu_memory/max reserved (GiB)": 70.1,
    }


def core_log(render: object = rich) -> list[str]:
    assert callable(render)
    out: list[str] = []
    out += render("2025-03-01 09:00:00", "olmo_core.train.trainer", 719, "Training for 1,000 steps")
    out += render(
        "2025-03-01 09:00:01", CORE, 73, block("[step=1/1000,epoch=0,eta=???]", core_step(1, 11.2345), core_float)
    )
    for step in (2, 3, 4):
        out += render(f"2025-03-01 09:00:0{step}", CORE, 57, f"[step={step}/1000,epoch=0]")  # bare markers
    out += render("2025-03-01 09:00:05", "olmo_core.train.callbacks.evaluator_callback", 134, "Running lm evals...")
    out += render("2025-03-01 09:00:06", "olmo_core.train.callbacks.evaluator_callback", 215, "[eval=lm,step=2/2]")
    ev = {"c4_en-validation/CE loss": 3.98765, "c4_en-validation/PPL": 53.9}
    out += render(
        "2025-03-01 09:00:09",
        "olmo_core.train.callbacks.evaluator_callback",
        178,
        block("Finished lm evals in 12.3 seconds. Metrics:", ev, core_float),
    )
    out += render(
        "2025-03-01 09:00:10", CORE, 73, block("[step=5/1000,epoch=0,eta=1h2m3s]", core_step(5, 9.87654), core_float)
    )
    out += render(
        "2025-03-01 09:00:11",
        "olmo_core.train.trainer",
        1008,
        "Saving checkpoint for step 5 to '/ckpt/run/step5' asynchronously...",
    )
    out += render("2025-03-01 09:00:12", CORE, 57, "[step=6/1000,epoch=0]")
    out += render("2025-03-01 09:00:20", "olmo_core.train.trainer", 1031, "Checkpoint for step 5 saved successfully")
    out += render(
        "2025-03-01 09:00:30", CORE, 73, block("[step=10/1000,epoch=0,eta=1h1m]", core_step(10, 8.5), core_float)
    )
    return out


def test_core_rich_log() -> None:
    records = feed(core_log())
    a, b, c = its(records)
    assert a.iter == 1 and a.loss == 11.23  # core_float: 10 < v <= 100 -> 2 decimals
    assert a.lr == 3.0e-06  # "3.00E-06"
    assert a.tokens_seen == 4_194_304  # "4,194,304"
    assert a.tokens_per_sec == 23456  # per device: no world size in OLMo-core's log
    assert a.mfu_pct == 41.26 and a.grad_norm == 0.4321
    assert a.time_ms == pytest.approx(1000 / 0.3579)
    assert a.wall_time == datetime(2025, 3, 1, 9, 0, 1)
    assert (b.iter, b.loss, c.iter, c.loss) == (5, 9.877, 10, 8.5)
    # "41,943,040" is under 1e9: whole; the bare markers of steps 2-4 and 6 are no iterations.
    assert c.tokens_seen == 41_943_040
    info = [r for r in records if isinstance(r, RunInfo)]
    assert info[0].target == 1000 and info[1].tokens_per_sec_scope == "gpu"
    assert info[1].eval_timing == "same"  # step 5's BPS holds its eval
    ev = next(r for r in records if isinstance(r, Eval))
    # Evaluated in step 5's post-step hook, printed before step 5's metrics.
    assert (ev.iter, ev.val_loss, ev.seconds) == (5, 3.988, 12.3)
    assert ev.metrics["c4_en-validation/PPL"] == 53.9
    assert ev.wall_time == datetime(2025, 3, 1, 9, 0, 9)
    ckpt = next(r for r in records if isinstance(r, Checkpoint))
    assert (ckpt.iter, ckpt.path, ckpt.wall_time) == (5, "/ckpt/run/step5", datetime(2025, 3, 1, 9, 0, 20))
    st = stats(records)
    assert (st.iter, st.target, st.loss, st.val_loss) == (10, 1000, 8.5, 3.988)
    assert st.tokens_per_sec_logged_scope == "gpu" and st.mfu_now_pct == 41.26
    # Tokens per step from the cumulative counter: 41,943,040 - 4,194,304 over 9 steps.
    assert st.tokens_per_iter == 4_194_304


def test_core_plain_log_with_rank_prefix_and_colours() -> None:
    lines = [f"[rank0]:{line}" for line in core_log(plain)]
    lines = [line.replace("[step=", "\x1b[1m[step=", 1) for line in lines]
    assert [(i.iter, i.loss) for i in its(feed(lines))] == [(1, 11.23), (5, 9.877), (10, 8.5)]


def test_large_values_carry_suffixes() -> None:
    metrics = {"train/CE loss": 2.25, "throughput/total tokens": 1.23456e12, "throughput/device/TPS": 1.5e9}
    lines = rich("2025-03-01 09:00:00", CORE, 73, block("[step=300000/???,epoch=2]", metrics, core_float))
    (it,) = its(feed(lines))
    assert it.iter == 300000 and it.tokens_seen == 1_235_000_000_000  # "1.235T"
    assert it.tokens_per_sec == pytest.approx(1.5e9)  # "1.500B"
    assert not [r for r in feed(lines) if isinstance(r, RunInfo) and r.target]  # "???": no step limit


def test_core_resumed_run_and_a_failure() -> None:
    lines = core_log()
    lines += rich("2025-03-01 10:00:00", "olmo_core.train.trainer", 836, "Will resume training from step 5, epoch 0")
    lines += rich(
        "2025-03-01 10:00:05", CORE, 73, block("[step=6/1000,epoch=0,eta=1h]", core_step(6, 8.75), core_float)
    )
    lines += rich(
        "2025-03-01 10:00:06",
        "olmo_core.train.trainer",
        746,
        "Training failed due to:\nRuntimeError: nan loss encountered at step 7",
    )
    lines += [
        "Traceback (most recent call last):",
        '  File "train.py", line 9, in main',
        "RuntimeError: nan loss encountered at step 7",
    ]
    records = feed(lines)
    assert [i.iter for i in its(records)] == [1, 5, 10, 6]
    st = stats(records)
    assert st.iter == 6 and st.segments == 2 and st.loss == 8.75
    assert st.status == "failed"
    assert records[-1] == Outcome("failed", "RuntimeError: nan loss encountered at step 7")


def test_core_sync_checkpoint_and_the_end() -> None:
    lines = rich("2025-03-01 09:00:00", CORE, 73, block("[step=20/20,epoch=0]", core_step(20, 3.0), core_float))
    # eval_on_finish: two evaluators after the last metrics, then the end.
    for name, metrics in (("lm", {"c4_en-validation/CE loss": 2.9}), ("downstream", {"hellaswag/acc": 0.31})):
        message = block(f"Finished {name} evals in 4.0 seconds. Metrics:", metrics, core_float)
        lines += rich("2025-03-01 09:00:00", "olmo_core.train.callbacks.evaluator_callback", 178, message)
    lines += rich(
        "2025-03-01 09:00:01", "olmo_core.train.trainer", 970, "Saving checkpoint for step 20 to '/ckpt/step20'..."
    )
    lines += rich("2025-03-01 09:00:09", "olmo_core.train.trainer", 990, "Checkpoint saved")
    lines += rich("2025-03-01 09:00:10", "olmo_core.train.trainer", 764, "Training complete")
    records = feed(lines, flush=False)
    assert Checkpoint(20, "/ckpt/step20", datetime(2025, 3, 1, 9, 0, 9)) in records
    evals = [r for r in records if isinstance(r, Eval)]
    assert [(e.iter, e.val_loss, e.seconds) for e in evals] == [(20, 2.9, 4.0), (20, 2.9, 8.0)]
    assert evals[-1].metrics["hellaswag/acc"] == 0.31
    assert records.index(evals[-1]) < len(records) - 1  # out before the Outcome
    assert stats(records).status == "finished"


# ------------------------------------------------------------------- holding


def test_a_block_is_held_until_its_record_ends() -> None:
    parser = olmo_console.OlmoConsoleParser()
    lines = rich("2025-03-01 09:00:00", CORE, 73, block("[step=1/10,epoch=0]", core_step(1, 4.0), core_float))
    assert [r for line in lines for r in parser.feed(line)] == []  # the next line may still be its own
    (it,) = its(list(parser.flush()))  # the log went quiet
    assert it.loss == 4.0
    assert parser.feed("    train/PPL=54.60") == []  # a late line of it: dropped, nothing twice
    assert parser.flush() == []
    more = rich("2025-03-01 09:00:05", CORE, 73, block("[step=2/10,epoch=0]", {"train/CE loss": 3.5}, core_float))
    assert its(list(parser.feed(more[0])) + list(parser.feed(more[1])) + list(parser.feed("x"))) == [
        Iteration(2, loss=3.5, wall_time=datetime(2025, 3, 1, 9, 0, 5))
    ]


def test_detection() -> None:
    for lines in (classic_log(), core_log(), core_log(plain), [f"[rank0]:{x}" for x in core_log(plain)]):
        head = ("\n".join(lines) + "\n").encode()
        assert detect(head, "stdout.log") is olmo_console.SPEC
    assert by_format("olmo_console") is olmo_console.SPEC
    # Neither the Composer parser nor the fallback take it wrongly when asked alone.
    text = "\n".join(core_log())
    assert not composer_console.sniff(text, "x.log")
    # Before this parser, these logs were no one's: the fallback does not take them either.
    assert detect_fallback(text.encode(), "x.log") is None
    assert not generic_text.sniff("\n".join(classic_log()), "x.log")
    assert not olmo_console.sniff("step=1 loss=2.0\n[step=5/10] done\n", "x.log")  # no OLMo logger, no metric line


def test_snapshot_of_a_log_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Detected by name and head, read to its end: the last block comes out at the end of input."""
    path = tmp_path / "stdout.log"
    path.write_text("\n".join(core_log()) + "\n")
    assert main(["snapshot", str(path), "-f", "json", "--now", "2026-01-01T00:00:00"]) == EXIT_OK
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert (run["format"], run["iter"]) == ("olmo_console", 10)
