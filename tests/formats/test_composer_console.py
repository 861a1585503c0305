"""composer_console: MosaicML Composer's ConsoleLogger (LLM Foundry's training output).

There is no corpus file of this format: the sample logs below are printed by
a copy of the logger's own formatting (mosaicml/composer,
composer/loggers/console_logger.py ``ConsoleLogger.log_to_console`` and
composer/loggers/logger.py ``format_log_data_value``).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from trainwatch.cli import EXIT_OK, main
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import by_format, composer_console, detect, detect_fallback, olmo_console

NOW = datetime(2030, 1, 1)


def fmt(data: Any) -> str:
    """``format_log_data_value`` for the types a metric has."""
    if data is None:
        return "None"
    if isinstance(data, str):
        return f'"{data}"'
    if isinstance(data, int):
        return str(data)
    if isinstance(data, float):
        return f"{data:.4f}"
    raise TypeError(data)


def console(progress: str, data: dict[str, Any], prefix: str = "Train ") -> list[str]:
    """``log_to_console``: one ``print`` of the marker and the metrics."""
    log_str = f"{progress}" + (":" if len(data) > 0 else "")
    for name, value in data.items():
        log_str += f"\n\t {prefix}{name}: {fmt(value)}"
    return log_str.split("\n")


def config(hparams: dict[str, Any]) -> list[str]:
    """``_log_hparams_to_console``."""
    return ["*" * 30, "Config:", *yaml.dump(hparams).split("\n"), "*" * 30]


def train(batch: int, loss: float, *, window_full: bool = True, per_batch: int = 2048 * 256) -> dict[str, Any]:
    """What the trainer and the callbacks log between two console prints: ``time/*``
    at BATCH_START (one batch behind), then loss, LR, speed, ``time/train``."""
    data: dict[str, Any] = {
        "time/batch": batch - 1,
        "time/sample": (batch - 1) * 256,
        "time/batch_in_epoch": batch - 1,
        "time/sample_in_epoch": (batch - 1) * 256,
        "time/token": (batch - 1) * per_batch,
        "time/token_in_epoch": (batch - 1) * per_batch,
        "loss/train/total": loss,
        "lr-DecoupledAdamW/group0": 6.0e-4 * batch / 100,
        "l2_norm/grad_global": 0.98765,
    }
    if window_full:
        data |= {
            "throughput/batches_per_sec": 0.41234,
            "throughput/samples_per_sec": 105.56,
            "throughput/device/batches_per_sec": 0.05154,
            "throughput/device/samples_per_sec": 13.19,
            "throughput/tokens_per_sec": 216182.12341,
            "throughput/device/tokens_per_sec": 27022.77,
            "throughput/flops_per_sec": 1.2e15,
            "throughput/device/flops_per_sec": 1.5e14,
            "throughput/device/mfu": 0.48076,
        }
    data |= {"time/train": batch * 2.4252 / 3600, "time/val": 0.0, "time/total": batch * 2.4252 / 3600}
    return data


HPARAMS = {
    "run_name": "mpt-125m",
    "max_seq_len": 2048,
    "global_train_batch_size": 256,
    "device_train_microbatch_size": 16,
    "max_duration": "4800ba",
    "eval_interval": "500ba",
    "n_gpus": 8,
    "n_params": 125311488,
    "model": {"name": "mpt_causal_lm", "d_model": 768, "n_heads": 12, "n_layers": 12},
    "callbacks": {"speed_monitor": {"window_size": 10}},
}


def foundry_log() -> list[str]:
    lines = config(HPARAMS)
    lines += console("[batch=1/4800]", train(1, 11.2345678, window_full=False))
    lines += console("[batch=2/4800]", train(2, 10.5, window_full=False))
    lines += console("[batch=500/4800]", train(500, 3.45678))
    lines += console("[Eval batch=1/10] Eval on eval data", {}, "Eval ")
    lines += console(
        "[Eval batch=10/10] Eval on eval data",
        {"metrics/eval/LanguageCrossEntropy": 3.3456789, "metrics/eval/LanguagePerplexity": 28.38},
        "Eval ",
    )
    lines += console("[batch=510/4800]", train(510, 3.2))
    return lines


def feed(lines: list[str], *, flush: bool = True) -> list[Record]:
    parser = composer_console.ComposerConsoleParser()
    out = [r for line in lines for r in parser.feed(line)]
    return out + list(parser.flush()) if flush else out


def stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def its(records: list[Record]) -> list[Iteration]:
    return [r for r in records if isinstance(r, Iteration)]


def test_llm_foundry_run() -> None:
    records = feed(foundry_log())
    info = next(r for r in records if isinstance(r, RunInfo))
    assert (info.name, info.world_size, info.params) == ("mpt-125m", 8, 125311488)
    assert (info.target, info.eval_interval, info.block_size) == (4800, 500, 2048)
    assert info.tokens_per_iter == 256 * 2048
    a, b, c, d = its(records)
    assert (a.iter, a.loss, a.lr, a.grad_norm) == (1, 11.2346, 0.0000, 0.9877)  # "{:.4f}": 6e-06 -> 0.0000
    assert a.tokens_seen == 0  # time/token at BATCH_START of batch 1
    assert a.time_ms is None  # the speed monitor's window is not full yet, no earlier time/train
    # time/train 2 * 2.4252 / 3600 = 0.0013473 -> "0.0013"; batch 1: 0.00067367 -> "0.0007"
    assert b.time_ms == pytest.approx((0.0013 - 0.0007) * 3600 * 1000)
    assert c.iter == 500 and c.loss == 3.4568
    assert c.time_ms == pytest.approx(1000 / 0.4123)  # batches_per_sec over all ranks
    assert c.tokens_per_sec == 216182.1234  # all ranks
    assert c.mfu_pct == pytest.approx(48.08)  # "0.4808"
    assert c.tokens_seen == 499 * 2048 * 256
    assert c.lr == 0.003
    assert d.iter == 510
    ev = next(r for r in records if isinstance(r, Eval))
    assert (ev.iter, ev.val_loss) == (500, 3.3457)
    assert ev.metrics["metrics/eval/LanguagePerplexity"] == 28.38
    st = stats(records)
    assert (st.iter, st.target, st.loss, st.val_loss) == (510, 4800, 3.2, 3.3457)
    assert st.status != "failed" and st.tokens_per_sec_logged_scope == "total"
    assert st.tokens_per_iter == 256 * 2048  # config, confirmed by time/token: 10 batches, 5,242,880 tokens


def test_epoch_duration_counts_batches_across_epochs() -> None:
    """``[epoch=E][batch=b/B]``: ``b`` counts in the epoch; the step is (E-1)·B + b."""
    lines = console("[epoch=1][batch=100/100]", train(100, 4.0))
    lines += console("[epoch=2][batch=50/100]", train(150, 3.5))
    records = feed(lines)
    assert [(i.iter, i.loss) for i in its(records)] == [(100, 4.0), (150, 3.5)]
    assert any(isinstance(r, RunInfo) and r.iter_derived for r in records)


def test_token_duration_takes_the_batch_counter() -> None:
    """``[token=N/T]``: the step is ``time/batch`` (logged before the batch) + 1."""
    lines = console("[token=20971520/2621440000]", train(40, 5.0))
    (it,) = its(feed(lines))
    assert it.iter == 40 and it.loss == 5.0


def test_rank_prefixes_and_a_crash_mid_block() -> None:
    lines = [f"[rank0]:{line}" for line in console("[batch=7/100]", train(7, 6.25))]
    lines = lines[:6]  # the marker and five time/ lines, then the crash
    lines += [
        "[rank0]: Traceback (most recent call last):",
        '[rank0]:   File "train.py", line 9, in <module>',
        "[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    ]
    records = feed(lines, flush=False)
    (it,) = its(records)
    assert it.iter == 7 and it.loss is None and it.tokens_seen == 6 * 2048 * 256  # the loss line never came
    assert records[-1] == Outcome("failed", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize("tab", ["\t", " " * 7])
def test_srun_label_before_every_line(tab: str) -> None:
    """A multi-node run under srun --label: "0: " before the marker and each metric line, as in
    the LLM Foundry log of aws-samples' llm-foundry test case README (there with the tab
    expanded)::

        0: [batch=1/300000000]:
        0:       Train time/batch: 0
        0:       Train loss/train/total: 12.0000
    """
    lines = console("[batch=1/300000000]", {"time/batch": 0, "time/token": 0, "loss/train/total": 12.0})
    lines += console("[batch=2/300000000]", {"time/batch": 1, "time/token": 8192, "loss/train/total": 11.25})
    tagged = ["0: " + line.replace("\t", tab) for line in lines]
    head = ("\n".join(tagged) + "\n").encode()
    assert detect(head, "slurm-1234.out") is composer_console.SPEC
    records = feed(tagged)
    assert [(i.iter, i.loss, i.tokens_seen) for i in its(records)] == [(1, 12.0, 0), (2, 11.25, 8192)]
    assert stats(records).target == 300000000  # "[batch=N/300000000]"


def test_autoresume_starts_a_new_segment() -> None:
    lines = console("[batch=30/100]", train(30, 4.5))
    lines += ["Traceback (most recent call last):", "RuntimeError: NCCL timeout"]
    lines += console("[batch=21/100]", train(21, 4.6))  # resumed from the checkpoint of batch 20
    lines += console("[batch=100/100]", train(100, 3.1))
    st = stats(feed(lines))
    assert (st.iter, st.segments, st.loss) == (100, 2, 3.1)
    assert st.status == "finished"  # the marker reached the target it states


def test_evals_under_the_training_marker_before_0_13() -> None:
    """Composer < 0.13 printed ``eval_end``'s ``state.eval_metric_values`` under the training marker."""
    lines = console("[batch=100/200]", train(100, 3.5))
    lines += console("[batch=100/200]", {"LanguageCrossEntropy": 3.25, "LanguagePerplexity": 25.79}, "Eval ")
    lines += console("[batch=110/200]", train(110, 3.4))
    records = feed(lines)
    assert [i.iter for i in its(records)] == [100, 110]
    (ev,) = [r for r in records if isinstance(r, Eval)]
    assert (ev.iter, ev.val_loss, ev.metrics["LanguagePerplexity"]) == (100, 3.25, 25.79)
    assert stats(records).segments == 1


def test_values_that_are_no_number_are_skipped() -> None:
    lines = console("[batch=3/10]", {"time/batch": 2, "loss/train/total": 2.5})
    lines.insert(2, "\t Train metrics/train/Counts: Tensor of shape torch.Size([3])")
    lines.append('\t Train Table: {"columns":["a"],"data":[[1]]}')
    assert its(feed(lines)) == [Iteration(3, loss=2.5)]


def test_a_block_is_held_until_the_next_print() -> None:
    parser = composer_console.ComposerConsoleParser()
    assert [r for line in console("[batch=1/10]", {"loss/train/total": 2.0}) for r in parser.feed(line)] == []
    assert its(list(parser.flush())) == [Iteration(1, loss=2.0)]
    assert parser.feed("\t Train loss/train/total: 9.0000") == []
    assert parser.flush() == []


def test_detection() -> None:
    for lines in (foundry_log(), [f"[rank3]:{x}" for x in foundry_log()]):
        head = ("\n".join(lines) + "\n").encode()
        assert detect(head, "train.log") is composer_console.SPEC
        assert detect_fallback(head, "train.log") is None  # no one read these before
        assert not olmo_console.sniff(head.decode(), "train.log")
    assert by_format("composer_console") is composer_console.SPEC
    assert not composer_console.sniff("[batch=3/10]: done\nTrain loss 2.0\n", "x.log")


def test_snapshot_of_a_log_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Detected by name and head, read to its end: the last block comes out at the end of input."""
    path = tmp_path / "stdout.log"
    path.write_text("\n".join(foundry_log()) + "\n")
    assert main(["snapshot", str(path), "-f", "json", "--now", "2026-01-01T00:00:00"]) == EXIT_OK
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    assert (run["format"], run["iter"]) == ("composer_console", 510)
