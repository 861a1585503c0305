"""hf_trainer_stdout: the console of an HF Transformers / TRL Trainer.

Sample logs are drawn by ``hf_console_sim`` (tqdm's frames and EMA rate,
``tqdm.write``, nested bars, buffered stdout); the corpus tests pin facts
read by hand from the raw files (the grep is in each comment).
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import cache
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import SNIFF_BYTES_MORE, detect_head, hf_console, hf_facts

from .hf_console_sim import Bar, Console, trainer_run

NOW = datetime(2030, 1, 1)
CORPUS_DIR = "hf_trainer_stdout"
#: Step times of a sample run (seconds): uneven, so that a smeared time shows.
STEPS = [3.0, 2.4, 2.7, 2.5, 2.9, 2.2, 2.6, 3.1, 2.5, 2.4] * 4


def _feed(text: str, flush: bool = True) -> list[Record]:
    """As the tailer hands lines over: split on \\n, a trailing \\r removed."""
    parser = hf_console.HFConsoleParser()
    records = [r for line in text.split("\n") for r in parser.feed(line.removesuffix("\r"))]
    return records + list(parser.flush()) if flush else records


def _its(records: list[Record] | tuple[Record, ...]) -> list[Iteration]:
    return [r for r in records if isinstance(r, Iteration)]


def _stats(records: list[Record] | tuple[Record, ...]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _info(records: list[Record] | tuple[Record, ...]) -> dict[str, object]:
    """RunInfo fields merged the way the aggregator merges them (later wins)."""
    merged: dict[str, object] = {}
    for record in records:
        if isinstance(record, RunInfo):
            merged.update({k: v for k in RunInfo.__slots__ if (v := getattr(record, k)) is not None})
    return merged


# transformers' explicit logging format ("[%(levelname)s|%(filename)s:%(lineno)s] %(asctime)s >> %(message)s").
PREAMBLE = "".join(
    f"[INFO|trainer.py:{2414 + k}] 2025-04-29 14:31:39,001 >> {message}\n"
    for k, message in enumerate(
        [
            "***** Running training *****",
            "  Num examples = 1,280",
            "  Num Epochs = 1",
            "  Instantaneous batch size per device = 4",
            "  Total train batch size (w. parallel, distributed & accumulation) = 32",
            "  Gradient Accumulation steps = 2",
            "  Total optimization steps = 40",
            "  Number of trainable parameters = 4,194,304",
        ]
    )
)


# ------------------------------------------------------------ sample logs


def test_plain_trainer_on_a_terminal() -> None:
    console = Console(line_buffered=True)
    losses = trainer_run(console, STEPS, logging_steps=10, eval_steps=20, eval_seconds=30.0)
    records = _feed(PREAMBLE + console.text())
    its = _its(records)
    assert [it.iter for it in its] == list(range(1, 41))
    assert {it.iter: it.loss for it in its if it.loss is not None} == losses
    assert its[9].lr == pytest.approx(2e-05) and its[9].grad_norm == pytest.approx(1.25)
    # Each step's own time, undone from tqdm's smoothed rate (shown to 2 decimals).
    for it, seconds in zip(its, STEPS, strict=True):
        extra = 30.0 if it.iter == 21 else 0.0  # the evaluation after step 20 is in step 21
        assert it.time_ms == pytest.approx((seconds + extra) * 1000, rel=0.02), it.iter
    evals = [r for r in records if isinstance(r, Eval)]
    # the nested bar marks each evaluation, then its dict says what it found
    assert [(e.iter, e.val_loss) for e in evals] == [(20, None), (20, 0.1), (40, None), (40, 0.05)]
    assert evals[1].metrics["eval_runtime"] == pytest.approx(30.0)
    info = _info(records)
    assert info["target"] == 40  # "Total optimization steps = 40"
    assert (info["batch_size"], info["grad_accum_per_gpu"], info["grad_accum"], info["world_size"]) == (4, 2, 8, 4)
    assert info["start_time"] == datetime(2025, 4, 29, 14, 31, 39)
    assert info["runtime_s"] == pytest.approx(sum(STEPS) + 2 * 30.0, abs=1e-3)  # two evaluations
    assert info["eval_timing"] == "next"
    assert "iter_derived" not in info
    st = _stats(records)
    assert (st.iter, st.target, st.status, st.eval_at) == (40, 40, "finished", (21,))
    assert st.loss == losses[40]
    assert st.mean_iter_s == pytest.approx(sum(STEPS[1:]) / 39 - 0.0, rel=0.02)  # warm-up and eval step out


def test_stdout_buffered_far_from_its_bars() -> None:
    # nohup python train.py > log 2>&1: the dicts come in bursts, glued to the
    # end of a later frame; each must still land on its own step.
    console = Console(line_buffered=False)
    losses = trainer_run(
        console, STEPS * 3, logging_steps=10, eval_steps=50, extra=", 'num_tokens': 4096.0, 'entropy': 1.1"
    )
    text = console.text()
    assert "]{'loss': " in text  # glued
    records = _feed(text)
    its = _its(records)
    assert [it.iter for it in its] == list(range(1, 121))
    assert {it.iter: it.loss for it in its if it.loss is not None} == losses
    assert {it.tokens_seen for it in its if it.loss is not None} == {4096}
    assert [e.iter for e in records if isinstance(e, Eval) and e.val_loss is not None] == [50, 100]
    st = _stats(records)
    assert (st.iter, st.status, st.eval_at) == (120, "finished", (51, 101))


def test_every_iteration_comes_out_while_the_run_goes_on() -> None:
    console = Console(line_buffered=True)
    trainer_run(console, STEPS, logging_steps=5, end=False)
    # live: no flush, at most the newest frame held back
    assert [it.iter for it in _its(_feed(console.text(), flush=False))] == list(range(1, 40))
    assert [it.iter for it in _its(_feed(console.text()))] == list(range(1, 41))


def test_a_quiet_live_log_is_flushed_between_bursts() -> None:
    # The watcher flushes a log quiet for 2 s: between two bursts of buffered
    # dicts. The dicts still due must meet their own writes afterwards.
    console = Console(line_buffered=False)
    losses = trainer_run(console, STEPS * 3, logging_steps=10, eval_steps=50)
    lines = console.text().split("\n")
    parser = hf_console.HFConsoleParser()
    records: list[Record] = []
    for index, line in enumerate(lines):
        records += parser.feed(line)
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if line.endswith("}") and not following.startswith("{"):
            records += parser.flush()
    records += parser.flush()
    its = _its(records)
    assert [it.iter for it in its] == list(range(1, 121))
    assert {it.iter: it.loss for it in its if it.loss is not None} == losses


def test_a_quiet_moment_in_a_scripts_own_loop() -> None:
    # flush while an unnamed loop of the script runs takes it for training,
    # for now: the Trainer's bar, when it comes, replaces it.
    console = Console(line_buffered=True)
    prep = Bar(500)
    console.stderr(prep.display() + prep.update(1.0, 100) + "\n")
    parser = hf_console.HFConsoleParser()
    records = [r for line in console.text().split("\n") for r in parser.feed(line)]
    records += parser.flush()
    assert [it.iter for it in _its(records)] == [100]
    console.err.clear()
    console.stderr(prep.update(1.0, 400) + prep.close_leave())
    losses = trainer_run(console, STEPS[:20], logging_steps=10)
    records += [r for line in console.text().split("\n") for r in parser.feed(line)]
    records += parser.flush()
    assert [it.iter for it in _its(records)] == [100, *range(1, 21)]
    st = _stats(records)
    assert (st.iter, st.target, st.loss, st.segments) == (20, 20, losses[20], 2)


def test_bars_without_their_dicts() -> None:
    # Slurm --error: the bars and their clears, the dicts went to --output.
    console = Console(line_buffered=True, split=True)
    trainer_run(console, STEPS, logging_steps=10, eval_steps=20)
    records = _feed(console.text("err"), flush=False)
    its = _its(records)
    assert [it.iter for it in its] == list(range(1, 40))  # nothing waits for dicts that never come
    assert all(it.loss is None for it in its)
    assert its[20].time_ms == pytest.approx((STEPS[20] + 30.0) * 1000, rel=0.02)
    assert [e.iter for e in records if isinstance(e, Eval)] == [20]  # the nested bar marks the evaluation
    st = _stats(records + _feed(console.text("err"))[len(records) :])
    assert (st.target, st.eval_at) == (40, (21,))


def test_dicts_without_their_bars_derive_the_step() -> None:
    # Slurm --output: dicts only; TrainingArguments printed by the script.
    console = Console(line_buffered=True, split=True)
    losses = trainer_run(console, STEPS, logging_steps=10, eval_steps=20)
    args = "TrainingArguments(\n_n_gpu=1,\nlogging_steps=10,\nmax_steps=-1,\nper_device_train_batch_size=4,\n)\n"
    records = _feed(args + console.text("out"))
    its = _its(records)
    assert [(it.iter, it.loss) for it in its] == sorted(losses.items())
    assert all(it.time_ms is None for it in its)
    assert [e.iter for e in records if isinstance(e, Eval)] == [20, 40]
    info = _info(records)
    assert (info["iter_derived"], info["log_interval"], info["batch_size"]) == (True, 10, 4)
    assert "target" not in info  # max_steps=-1: the bar (in the other file) has it
    assert _stats(records).status == "finished"


def test_no_bar_log_after_a_resume() -> None:
    lines = [
        "  Continuing training from checkpoint, will skip to saved global_step",
        "  Continuing training from global step 200",
        "Training Arguments: --model x --logging_steps 50 --max_steps 1000",
        *[f"{{'loss': {1.0 - k / 100}, 'learning_rate': 1e-05, 'epoch': {k / 10}}}" for k in range(1, 4)],
    ]
    records = _feed("\n".join(lines))
    assert [it.iter for it in _its(records)] == [250, 300, 350]
    assert _info(records)["target"] == 1000
    # Without logging_steps the count is all there is.
    plain = _feed("{'loss': 0.5, 'epoch': 0.1}\n{'loss': 0.4, 'epoch': 0.2}")
    assert [it.iter for it in _its(plain)] == [1, 2]


def test_fast_steps_skip_frames() -> None:
    # Below tqdm's mininterval not every update is drawn; the redraw after a
    # write then shows a step no frame showed, with no rate update.
    console = Console(line_buffered=True)
    bar = Bar(30)
    console.stderr(bar.display())
    drawn = []
    for step in range(1, 31):
        draw = step % 3 != 0  # every third update falls inside mininterval
        console.stderr(bar.update(0.05, draw=draw))
        if draw:
            drawn.append(step)
        if step % 6 == 0:
            console.write([bar], f"{{'loss': {step / 100}, 'epoch': {step / 30:.2f}}}")
    records = _feed(console.text())
    its = _its(records)
    assert [it.iter for it in its] == sorted({*drawn, 6, 12, 18, 24, 30})
    assert {it.iter: it.loss for it in its if it.loss is not None} == {s: s / 100 for s in (6, 12, 18, 24, 30)}
    timed = {it.iter: it.time_ms for it in its}
    assert timed[6] is None  # shown only by the redraw
    assert timed[7] == pytest.approx(50.0, rel=0.05)  # the update after it covers steps 6 and 7


def test_rank_prefixes_and_colours() -> None:
    console = Console(line_buffered=True)
    losses = trainer_run(console, STEPS[:20], logging_steps=5)
    lines = console.text().split("\n")
    tagged = "\n".join(f"[rank0]:{line}" if line else line for line in lines)
    noise = "\x1b[93m [WARNING] \x1b[0m async_io requires the dev libaio .so object and headers\n"
    launcher = "[2025-06-24 21:06:40,802] [INFO] [launch.py:163:main] dist_world_size=4\n"
    records = _feed(launcher + noise + tagged)
    its = _its(records)
    assert [it.iter for it in its] == list(range(1, 21))
    assert {it.iter: it.loss for it in its if it.loss is not None} == losses
    assert _info(records)["world_size"] == 4
    assert _stats(records).status == "finished"


def test_carriage_returns_turned_into_newlines() -> None:
    # Some collectors write every \r as a newline: a clear is then a line of spaces.
    console = Console(line_buffered=True)
    losses = trainer_run(console, STEPS, logging_steps=10)
    records = _feed(console.text().replace("\r", "\n"))
    its = _its(records)
    assert [it.iter for it in its] == list(range(1, 41))
    assert {it.iter: it.loss for it in its if it.loss is not None} == losses


def test_dicts_a_logger_printed() -> None:
    lines = [
        "[INFO|callbacks.py:310] 2024-05-20 10:00:00,123 >> {'loss': 1.25, 'learning_rate': 5e-05, 'epoch': 0.1}",
        "2024-05-20 10:01:00 - INFO - my_callback - {'loss': 1.125, 'learning_rate': 5e-05, 'epoch': 0.2}",
        "Updated tokens: {'bos_token_id': None, 'pad_token_id': 151643}.",
    ]
    assert [(it.iter, it.loss) for it in _its(_feed("\n".join(lines)))] == [(1, 1.25), (2, 1.125)]


def test_other_bars_are_not_the_training_bar() -> None:
    console = Console(line_buffered=True)
    prep = Bar(500)  # a script's own unnamed loop before training
    console.stderr(prep.display() + prep.update(1.0, 250) + prep.update(1.0, 250) + prep.close_leave())
    shards = Bar(4, desc="Loading checkpoint shards")
    console.stderr(shards.display() + shards.update(3.0) + shards.close_leave())
    mapped = Bar(1000, desc="Map", unit=" examples")
    console.stderr(mapped.display() + mapped.update(1.0, 1000) + mapped.close_leave())
    trainer_run(console, STEPS[:20], logging_steps=10)
    after = Bar(7)  # trainer.evaluate() after train(): a bar at row 0 of another total
    console.stderr(after.display() + after.update(2.0, 7) + after.close_leave())
    records = _feed(console.text())
    assert [it.iter for it in _its(records)] == list(range(1, 21))
    assert _info(records)["target"] == 20
    assert _stats(records).segments == 1


def test_traceback_ends_the_run_failed() -> None:
    console = Console(line_buffered=False)
    trainer_run(console, STEPS[:25], logging_steps=10, prefix_total=100, end=False)
    console.stderr("Traceback (most recent call last):\n")
    console.stderr('  File "train.py", line 80, in <module>\n    trainer.train()\n')
    console.stderr("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")
    records = _feed(console.text(), flush=False)  # the live view: no flush needed
    assert _its(records)[-1].iter == 25
    failures = [r for r in records if isinstance(r, Outcome)]
    assert [f.kind for f in failures] == ["failed", "failed"]  # "Python traceback", then what it was
    assert failures[-1].message.startswith("torch.OutOfMemoryError: CUDA out of memory")
    st = _stats(records)
    assert (st.iter, st.target, st.status, st.loss) == (25, 100, "failed", 0.4472)  # step 20's dict, flushed at exit


def test_keyboard_interrupt_then_resumed_in_the_same_file() -> None:
    console = Console(line_buffered=True)
    trainer_run(console, STEPS[:15], logging_steps=5, prefix_total=40, end=False)
    console.stderr('\nTraceback (most recent call last):\n  File "t.py", line 3\nKeyboardInterrupt\n')
    resumed = Bar(40)
    console.stderr(resumed.display() + resumed.update(1.0, 11))  # checkpoint-10 restored: 0 -> 11
    for _ in range(9):
        console.stderr(resumed.update(2.5))
    records = _feed(console.text())
    assert [it.iter for it in _its(records)][-11:] == [15, *range(11, 21)]
    st = _stats(records)
    assert (st.iter, st.segments, st.status) == (20, 2, "running")


def test_dict_values_python_prints() -> None:
    console = Console(line_buffered=True)
    bar = Bar(10)
    console.stderr(bar.display() + bar.update(1.0))
    console.write([bar], "{'loss': 0.25, 'grad_norm': inf, 'learning_rate': np.float64(1e-05), 'epoch': 0.1}")
    console.stderr(bar.update(1.0))
    console.write([bar], "{'loss': 0.5, 'grad_norm': tensor(1.2, device='cuda:0'), 'epoch': 0.2}")
    console.stderr(bar.update(1.0))
    console.write([bar], "{'loss': nan, 'note': 'nan inf np.float64(2)', 'epoch': 0.3}")
    records = _feed(console.text())
    its = _its(records)
    assert its[0].grad_norm == math.inf and its[0].lr == pytest.approx(1e-05)
    assert its[1].loss is None  # a dict literal_eval cannot read: skipped, but its place kept
    assert its[2].loss is not None and math.isnan(its[2].loss)
    assert _stats(records).status == "diverged"


def test_dict_values_newer_transformers_formats_as_strings() -> None:
    # Newer ProgressCallback.on_log writes each float as f"{v:.4g}" (a str).
    console = Console(line_buffered=True)
    bar = Bar(4)
    console.stderr(bar.display())
    for index, (loss, lr) in enumerate([("3.412", "1.071e-05"), ("2.897", "2.262e-05")], start=1):
        console.stderr(bar.update(1.0) + bar.update(1.0))
        logs = f"'loss': '{loss}', 'grad_norm': '0.9297', 'learning_rate': '{lr}', 'num_tokens': '1.808e+04'"
        console.write([bar], "{" + logs + f", 'epoch': '{index / 2:.4g}'}}")
    console.write([bar], "{'eval_loss': '0.7206', 'eval_runtime': '29.78', 'epoch': '1'}")
    console.write([bar], "{'train_runtime': '8.1', 'train_loss': '3.15', 'epoch': '1'}")
    records = _feed(console.text())
    its = _its(records)
    assert [(it.iter, it.loss, it.lr, it.grad_norm) for it in its if it.loss is not None] == [
        (2, 3.412, 1.071e-05, 0.9297),
        (4, 2.897, 2.262e-05, 0.9297),
    ]
    assert its[-1].tokens_seen == 18080
    (ev,) = [r for r in records if isinstance(r, Eval)]
    assert (ev.iter, ev.val_loss, ev.metrics["eval_runtime"]) == (4, 0.7206, 29.78)
    assert _stats(records).status == "finished"
    # Strings that are no formatted float stay unread.
    assert hf_facts.train_values({"loss": "n/a", "learning_rate": "1e-5 "}) == (None, None, None, None)


def test_ms_swift_console_after_a_long_preamble() -> None:
    # swift sft: its logger's records, then samples and model reprs (here
    # 300 KB, past the longest sniff), then a bar named "Train" and the
    # dicts written through it, string-formatted, with global_step/max_steps.
    records_ = "[INFO:swift] Start time of running main: 2026-04-25 04:52:00\n"
    filler = "".join(f"      (layer_{k}): Gemma4TextDecoderLayer(hidden=2816)\n" for k in range(6000))
    assert len(filler) > SNIFF_BYTES_MORE
    frames = ""
    for step, loss in ((1, "1.921"), (2, "2.714")):
        frames += f"\rTrain:   0%|          | {step}/2 [00:0{step * 2}<00:02,  2.00s/it]\r{' ' * 60}\r"
        frames += f"{{'loss': '{loss}', 'grad_norm': '32.75', 'global_step/max_steps': '{step}/2', 'epoch': '0.5'}}\n"
    frames += "{'train_runtime': '4.1', 'train_loss': '2.3', 'epoch': '1'}\n"
    text = records_ + filler + frames
    assert detect_head(text.encode()[:SNIFF_BYTES_MORE], "stdout.log") is hf_console.SPEC
    st = _stats(_feed(text))
    assert (st.iter, st.target, st.loss, st.status) == (2, 2, 2.714, "finished")


def test_preamble_with_thousands() -> None:
    lines = [
        "04/29/2025 14:31:39 - INFO - transformers.trainer - ***** Running training *****",
        "04/29/2025 14:31:39 - INFO - transformers.trainer -   Num Epochs = 3.0",
        "04/29/2025 14:31:39 - INFO - transformers.trainer -   Total optimization steps = 17,000",
    ]
    info = _info(_feed("\n".join(lines)))
    assert info["target"] == 17000
    assert info["start_time"] == datetime(2025, 4, 29, 14, 31, 39)
    assert info["config"] == {"num_epochs": 3, "total_optimization_steps": 17000}


LLAMAFACTORY = """\
[INFO|2025-04-29 14:31:38] logging.py:143 >> trainable params: 32,112,640 || all params: 14,800,419,840

[INFO|2025-04-29 14:31:39] trainer.py:2414 >> ***** Running training *****

[INFO|2025-04-29 14:31:39] trainer.py:2422 >>   Total optimization steps = 768

[INFO|2025-04-29 16:11:19] trainer.py:3984 >> Saving model checkpoint to saves/lora/train/checkpoint-768

[INFO|2025-04-29 16:11:20] trainer.py:2681 >> {blank}
Training completed. Do not forget to share your model on huggingface.co/models =)


[WARNING|2025-04-29 16:11:20] logging.py:148 >> No metric loss to plot.
""".format(blank="")  # the record's message starts with a newline


def test_llamafactory_running_log() -> None:
    assert hf_console.sniff(LLAMAFACTORY, "running_log.txt")
    records = _feed(LLAMAFACTORY)
    assert _its(records) == [Iteration(768, wall_time=datetime(2025, 4, 29, 16, 11, 19))]
    assert next(r for r in records if isinstance(r, Checkpoint)).path == "saves/lora/train/checkpoint-768"
    (end,) = [r for r in records if isinstance(r, Outcome)]
    assert (end.kind, end.wall_time) == ("finished", datetime(2025, 4, 29, 16, 11, 20))
    st = _stats(records)
    assert (st.iter, st.target, st.status, st.started_at) == (768, 768, "finished", datetime(2025, 4, 29, 14, 31, 39))


def _lf_record(minute: int, message: str) -> str:
    return f"[INFO|2024-11-26 10:{minute:02d}:00] logging.py:157 >> {message}\n\n"


def _lf_dicts(*ks: int) -> list[str]:
    return [_lf_record(k, f"{{'loss': {2.0 - k / 10:.4f}, 'learning_rate': 1.0000e-05, 'epoch': 0.{k}}}") for k in ks]


def _lf_save(minute: int, step: int) -> str:
    message = f"Saving model checkpoint to out/checkpoint-{step}"
    return f"[INFO|2024-11-26 10:{minute:02d}:10] trainer.py:3801 >> {message}\n\n"


def test_llamafactory_running_log_with_losses_learns_logging_steps_from_saves() -> None:
    # Older LLaMA-Factory versions log each train dict in running_log.txt; no
    # bar and no logging_steps, but saves every 20 steps, each after 4 more
    # dicts, say the dicts come every 5 steps. Steps before that are counted.
    lines = [
        "[INFO|2024-11-26 10:00:00] trainer.py:2321 >>   Total optimization steps = 1,000\n\n",
        *_lf_dicts(1, 2, 3, 4),
        _lf_save(4, 20),
        *_lf_dicts(5, 6, 7, 8),
        _lf_save(8, 40),
        *_lf_dicts(9),
        "[INFO|2024-11-26 10:09:30] trainer.py:2584 >> \nTraining completed. Do not forget to share your model\n",
    ]
    records = _feed("".join(lines))
    its = _its(records)
    assert [it.iter for it in its] == [*range(1, 9), 45]
    assert its[-1].wall_time == datetime(2024, 11, 26, 10, 9)  # the record's own time
    st = _stats(records)
    assert (st.iter, st.target, st.loss, st.status) == (45, 1000, 1.1, "finished")


def test_saves_that_disagree_teach_no_logging_steps() -> None:
    # save_steps not a multiple of logging_steps (150 and 100): 150 after 1
    # dict and 300 after 3 disagree, so the count stays; 600 after 6 agrees
    # with 300 after 3, and the next dict is at 700.
    dict_ = "{'loss': 1.0, 'epoch': 0.1}\n"
    save = "Saving model checkpoint to out/checkpoint-{}\n"
    text = dict_ + save.format(150) + dict_ * 2 + save.format(300) + dict_ * 3 + save.format(600) + dict_
    assert [it.iter for it in _its(_feed(text))] == [1, 2, 3, 4, 5, 6, 700]


def test_sniff() -> None:
    assert hf_console.sniff("***** Running training *****\n", "x.log")
    assert hf_console.sniff("noise\n{'loss': 2.31, 'grad_norm': 1.2, 'epoch': 0.5}\n", "x.out")
    assert hf_console.sniff("\r  5%|▌         | 10/200 [00:21<06:42,  2.12s/it]", "x.err")
    assert hf_console.sniff("[rank0]:{'train_runtime': 3.2, 'epoch': 1.0}\n", "x.log")
    assert not hf_console.sniff("\rMap:  50%|█████     | 500/1000 [00:01<00:01, 900.1 examples/s]", "x.err")
    # ProgressCallback sets no postfix: another loop's bar, for the generic text fallback
    assert not hf_console.sniff("\r  5%|▌         | 10/200 [00:21<06:42,  2.12s/it, loss=2.31]", "x.err")
    assert not hf_console.sniff("iter 10: loss 3.2, time 100ms, mfu 30%\n", "train.log")
    assert not hf_console.sniff("step 1/500 | loss 10.9 (+nanz)| norm 1.2\n", "train.log")


def test_garbage_never_raises() -> None:
    junk = [
        "",
        "\r",
        "\r \r",
        "%|",
        "\r 1%|| 1/0 [00:00<?, ?it/s]",
        "\r 9%|| 99999999999999999999/1 [00:00<?, ?it/s]",
        "{'loss': ",
        "{'loss': " + "[" * 5000,
        "{" + "'a': 1, " * 20000 + "'epoch': 1}",
        "\x1b[A\r\x1b[",
        "TrainingArguments(",
        "logging_steps=²,",
        "  Total optimization steps = ²",
        "Saving model checkpoint to x/checkpoint-²",
    ]
    parser = hf_console.HFConsoleParser()
    records = [r for line in junk for r in parser.feed(line)] + list(parser.flush())
    assert all(isinstance(r, Record) for r in records)


# ------------------------------------------------------------ the corpus


@cache
def _file_records(name: str, corpus: Path) -> tuple[Record, ...]:
    return tuple(_feed((corpus / CORPUS_DIR / name).read_bytes().decode("utf-8", "replace")))


# file, iterations done, target, last train loss, last val loss, evaluations (iterations timed with one), status
CASES = [
    (
        "trl_sft_qwen3_8b_qlora_nohup_tqdm_1755steps_with_eval_training.log",
        1755,  # tr '\r' '\n' | grep -oE "\| *[0-9]+/1755 \[" | tail -1: "| 1755/1755 ["
        1755,
        1.3171,  # grep -o "{'loss': [0-9.]*" | tail -1
        1.3451920747756958,  # grep -o "'eval_loss': [0-9.]*" | tail -1
        8,  # grep -c "{'eval_loss'": 8, one every 200 steps
        "finished",  # "{'train_runtime': 39860.6586, ..."
    ),
    (
        "hf_gemma2_lmsys_tqdm_keyboardinterrupt_at_244of8264_train.log",
        244,  # the last training frame: "| 244/8264 [39:40<15:39:22,  7.03s/it]"
        8264,
        0.488,  # grep -o "{'loss': [0-9.]*" | tail -1
        0.516632080078125,  # grep -o "'eval_loss': [0-9.]*"
        1,
        "failed",  # tail: "KeyboardInterrupt" after "Traceback (most recent call last):"
    ),
    (
        "deepspeed_4rank_mobilevlm_pretrain_4361steps_mobivlm.out",
        4361,  # tail: "| 4361/4361 [1:01:49<00:00,  1.08it/s]"
        4361,
        0.4502,  # grep -o "{'loss': [0-9.]*" | tail -1
        None,  # grep -c eval_loss: 0
        0,
        "finished",  # "{'train_runtime': 3709.8176, ..."
    ),
    (
        "slurm_job4437_trl_qwen14b_qlora_resumed_from_step200_stderr_tqdm.err",
        1500,  # tr '\r' '\n' | grep -oE "[0-9]+/1500 \[" | tail -1
        1500,
        None,  # no dict in the .err
        None,
        12,  # 13 nested eval bars ("0/750 [" after 300, 400 ... 1500); the last is after the last step
        "finished",  # 1500 of the 1500 the bar states
    ),
    (
        "slurm_job4437_trl_qwen14b_qlora_resumed_from_step200_stdout.out",
        65,  # no step anywhere: 65 train dicts (grep -c "{'loss'"), counted
        2000,  # no total in this file: the default
        0.0451,  # grep -o "{'loss': [0-9.]*" | tail -1
        0.046588730067014694,  # grep -o "'eval_loss': [0-9.]*" | tail -1
        0,
        "finished",  # "{'train_runtime': 19729.9735, ..."
    ),
    (
        "llamafactory_webui_qwen3_14b_lora_768steps_no_loss_lines_running_log.txt",
        768,  # "Saving model checkpoint to .../checkpoint-768", the only step in the file
        768,  # "Total optimization steps = 768"
        None,  # no loss line at all
        None,
        0,
        "finished",  # "Training completed. Do not forget to share your model ..."
    ),
]


@pytest.mark.parametrize(("name", "done", "target", "loss", "val", "evals", "status"), CASES)
def test_corpus_file(
    corpus: Path, name: str, done: int, target: int, loss: float | None, val: float | None, evals: int, status: str
) -> None:
    head = (corpus / CORPUS_DIR / name).read_bytes()[:262144]
    assert detect_head(head, name) is hf_console.SPEC
    st = _stats(_file_records(name, corpus))
    assert (st.iter, st.target, st.status, st.eval_iters, st.segments) == (done, target, status, evals, 1)
    assert st.loss == loss
    assert st.val_loss == val


def test_corpus_steps_of_buffered_dicts(corpus: Path) -> None:
    # nohup: the dicts come in bursts hundreds of steps late; grep -c "{'loss'"
    # is 175 and logging_steps 10, so step 10 k carries the k-th loss.
    records = _file_records(CASES[0][0], corpus)
    logged = [(it.iter, it.loss) for it in _its(records) if it.loss is not None]
    assert [step for step, _ in logged] == list(range(10, 1751, 10))
    assert logged[0] == (10, 2.1095)  # the first dict, glued after "| 200/1755 [1:11:26<8:59:28, 20.82s/it]"
    assert [e.iter for e in records if isinstance(e, Eval) and e.val_loss is not None] == list(range(200, 1601, 200))
    st = _stats(records)
    assert st.eval_at == tuple(range(201, 1602, 200))  # each evaluation (~287 s) is in the next step's time
    # The steps' own times add up to what train() reports: "'train_runtime': 39860.6586".
    assert sum(it.time_ms or 0 for it in _its(records)) / 1000 == pytest.approx(39860.6586, rel=1e-3)
    assert _info(records)["runtime_s"] == 39860.6586


def test_corpus_gemma_eval_and_interrupt(corpus: Path) -> None:
    records = _file_records(CASES[1][0], corpus)
    # 24 dicts (grep -c "{'loss'"), every 10 steps; the evaluation bar (2948
    # batches) follows "| 200/8264 [23:37<15:44:25,  7.03s/it]" and its dict
    # is glued to the 244 frame.
    assert [it.iter for it in _its(records) if it.loss is not None] == list(range(10, 241, 10))
    evals = [r for r in records if isinstance(r, Eval) and r.val_loss is not None]
    assert [(e.iter, e.metrics["eval_log_loss"]) for e in evals] == [(200, 1.032826258623043)]
    assert [r.iter for r in records if isinstance(r, Checkpoint)] == [200]  # "checkpoint-200"
    failures = [r.message for r in records if isinstance(r, Outcome)]
    assert failures[-1] == "KeyboardInterrupt"  # the atexit traceback after it is teardown


def test_corpus_deepspeed_every_step(corpus: Path) -> None:
    records = _file_records(CASES[2][0], corpus)
    its = _its(records)
    assert len(its) == 4361 and all(it.loss is not None for it in its)  # logging_steps 1
    assert _info(records)["world_size"] == 4  # "dist_world_size=4"
    # "'train_runtime': 3709.8176": the steps' times add up to it.
    assert sum(it.time_ms or 0 for it in its) / 1000 == pytest.approx(3709.8176, rel=1e-3)


def test_corpus_slurm_pair_resumed_from_200(corpus: Path) -> None:
    err = _file_records(CASES[3][0], corpus)
    # "| 0/1500 [00:00<?, ?it/s]" then "| 201/1500 [00:16<01:48, 11.97it/s]": checkpoint-200 restored.
    its = _its(err)
    assert (its[0].iter, len(its)) == (201, 1300)
    out = _file_records(CASES[4][0], corpus)
    assert _info(out)["iter_derived"] is True
    assert [e.iter for e in out if isinstance(e, Eval)] == list(range(5, 66, 5))  # 13 evals, one per 5 dicts
    assert _info(out)["runtime_s"] == 19729.9735
