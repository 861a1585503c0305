"""generic_text: the fallback for text logs with a step counter and a loss."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.ingest.source import LogSource
from trainwatch.parsers import FALLBACKS, PARSERS, SNIFF_BYTES, SNIFF_BYTES_MORE, detect, detect_head, generic_text

NOW = datetime(2030, 1, 1)


def _feed(lines: list[str]) -> list[Record]:
    parser = generic_text.new_parser()
    return [record for line in lines for record in parser.feed(line)]


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _format(text: str, name: str = "train.log") -> str | None:
    spec = detect_head(text.encode()[:SNIFF_BYTES_MORE], name)
    return spec.format if spec is not None else None


def _its(records: list[Record]) -> list[Iteration]:
    return [r for r in records if isinstance(r, Iteration)]


# ------------------------------------------------------------- sample styles


def test_pipe_separated_with_units_and_thousands() -> None:
    # (nanochat prints a layout like this with 5-digit steps and a percentage: its own parser's.)
    lines = [
        "Starting training with 8 GPUs",
        "[train] step 0/21400 | loss: 11.090355 | grad norm: 0.4282 | lrm: 1.00 | dt: 46222.92ms"
        " | tok/sec: 11,342 | mfu: 3.64",
        "[train] step 1/21400 | loss: 10.809341 | grad norm: 11.0336 | lrm: 1.00 | dt: 13651.72ms"
        " | tok/sec: 38,404 | mfu: 12.34",
        "[train] step 2/21400 | loss: 10.280090 | grad norm: 5.7968 | lrm: 1.00 | dt: 13750.12ms"
        " | tok/sec: 38,129 | mfu: 12.25",
    ]
    assert _format("\n".join(lines) + "\n") == "generic_text"
    records = _feed(lines)
    assert records[0] == RunInfo(target=21400)  # the step counter's own total
    its = _its(records)
    assert [(i.iter, i.loss, i.time_ms, i.grad_norm, i.tokens_per_sec, i.mfu_pct) for i in its] == [
        (0, 11.090355, 46222.92, 0.4282, 11342.0, 3.64),
        (1, 10.809341, 13651.72, 11.0336, 38404.0, 12.34),
        (2, 10.28009, 13750.12, 5.7968, 38129.0, 12.25),
    ]
    assert its[0].lr is None  # "lrm" is a multiplier, not the learning rate
    st = _stats(records)
    assert (st.iter, st.target, st.target_source, st.loss) == (2, 21400, "log", 10.28009)


def test_epoch_step_key_equals_value_with_timestamps() -> None:
    lines = [
        "[2026-01-02 03:04:05,100] INFO Epoch 1 Step 20 loss=2.95 grad_norm=0.81 lr=3e-4",
        "[2026-01-02 03:04:15,100] INFO Epoch 1 Step 40 loss=2.90 grad_norm=0.79 lr=3e-4",
        "[2026-01-02 03:04:25,100] INFO Epoch 1 Step 60 loss=2.85 grad_norm=0.77 lr=3e-4",
        "[2026-01-02 03:04:35,100] INFO Epoch 2 Step 80 loss=2.80 grad_norm=0.75 lr=2e-4",
    ]
    assert _format("\n".join(lines) + "\n") == "generic_text"
    records = _feed(lines)
    its = _its(records)
    assert [(i.iter, i.loss, i.lr) for i in its] == [
        (20, 2.95, 3e-4),
        (40, 2.9, 3e-4),
        (60, 2.85, 3e-4),
        (80, 2.8, 2e-4),
    ]
    assert its[0].wall_time == datetime(2026, 1, 2, 3, 4, 5, 100000)
    assert its[0].time_ms is None  # no per-step time printed: the timestamps give the pace
    assert not any(isinstance(r, RunInfo) for r in records)  # no total printed: no target invented
    st = _stats(records)
    assert st.target_source == "default"
    assert st.wall_elapsed_s == pytest.approx(30.0)  # 03:04:05 -> 03:04:35


def test_iter_fraction_colon_pairs_and_seconds() -> None:
    lines = [f"iter {i}/1000 train_loss: {3 - i / 100:.2f} time: 0.31s lr: 6e-4" for i in (10, 20, 30)]
    records = _feed(lines)
    assert [(i.iter, i.loss, i.time_ms) for i in _its(records)] == [
        (10, 2.9, 310.0),
        (20, 2.8, 310.0),
        (30, 2.7, 310.0),
    ]
    assert _format("\n".join(lines) + "\n") == "generic_text"


def test_colon_glued_keys_val_lines_and_cumulative_times() -> None:
    # train_time and step_avg are a running total and a running mean: no step's own time.
    # (modded-nanogpt's "step:N/M train_loss:" lines are its own parser's; this is a lookalike.)
    lines = [
        "it 0/5000 | val_loss:10.9954 train_time:0ms step_avg:nanms",
        "it 1/5000 | train_loss:11.0008 train_time:10846ms step_avg:nanms tokens_seen:5.24e+05",
        "it 2/5000 | train_loss:9.0703 train_time:13444ms step_avg:nanms tokens_seen:1.05e+06",
        "it 3/5000 | train_loss:8.5512 train_time:16041ms step_avg:2598.50ms tokens_seen:1.57e+06",
        "it 125/5000 | val_loss:4.3056 train_time:330000ms step_avg:2640.00ms",
    ]
    assert _format("\n".join(lines) + "\n") == "generic_text"
    records = _feed(lines)
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(0, 10.9954), (125, 4.3056)]
    its = _its(records)
    assert [(i.iter, i.loss, i.time_ms, i.tokens_seen) for i in its] == [
        (1, 11.0008, None, 524000),
        (2, 9.0703, None, 1050000),
        (3, 8.5512, None, 1570000),
    ]


def test_printed_dict_tqdm_postfix_prefixes_and_ansi() -> None:
    dict_style = [f"Step {i}: {{'loss': {2.5 - i / 100}, 'learning_rate': 0.0003}}" for i in (10, 20, 30)]
    assert _format("\n".join(dict_style) + "\n") == "generic_text"
    assert [(i.iter, i.loss, i.lr) for i in _its(_feed(dict_style))][-1] == (30, 2.2, 0.0003)
    bar = "\r".join(
        f" {n // 10}%|#   | {n}/1000 [00:{n // 10:02d}<03:10,  5.00it/s, loss={3 - n / 1000:.3f}]" for n in (10, 20, 30)
    )
    assert _format(bar + "\n") == "generic_text"
    records = _feed([bar])
    assert records == [RunInfo(target=1000), Iteration(iter=30, loss=2.97)]  # a bar line shows its last frame
    prefixed = "[rank0]: \x1b[32mstep 5\x1b[0m | loss 2.0 | norm 0.5"
    assert _its(_feed([prefixed])) == [Iteration(iter=5, loss=2.0, grad_norm=0.5)]


def test_train_and_val_on_one_line_nan_and_traceback() -> None:
    records = _feed(
        [
            "step 100 | loss 2.50 | val_loss 2.60 | val_acc 0.41",
            "step 110 | loss nan | dt 100ms",
            "Traceback (most recent call last):",
            '  File "train.py", line 3, in <module>',
            "torch.OutOfMemoryError: CUDA out of memory.",
        ]
    )
    assert records[0] == Eval(iter=100, val_loss=2.6, train_loss=2.5, metrics={"val_acc": 0.41})
    its = _its(records)
    assert its[0] == Iteration(iter=100, loss=2.5)
    assert its[1].loss is not None and math.isnan(its[1].loss)
    assert records[-1] == Outcome("failed", "torch.OutOfMemoryError: CUDA out of memory.")
    assert _stats(records).status == "diverged"


def test_restart_and_junk() -> None:
    records = _feed(
        [
            "",
            "step x | loss 2.0",
            "step 10 | lr 0.1",  # no loss: nothing
            "step 10 | loss 2.0",
            "step 20 | loss 1.9",
            "step 15 | loss 1.95",  # resumed from a checkpoint at 15
            "step 99999999999999999999 | loss 1.0",  # no step a run has
            "loss 1.0",  # no step
            "x" * 100_000 + " step 5 loss 1.0",
        ]
    )
    assert [i.iter for i in _its(records)] == [10, 20, 15]
    assert _stats(records).segments == 2


# ------------------------------------------------ what must stay unrecognised

README = """# mytrainer

A tiny trainer. It logs one line per step, for example:

```
step 100 | loss 3.2104 | lr 6.0e-04
step 200 | loss 3.1002 | lr 6.0e-04
step 300 | loss 3.0001 | lr 6.0e-04
```

With the default settings the loss reaches 2.9 at step 1000; the loss 2.8
we quoted at step 2000 needs a larger batch. Set it 3 times loss 2 if needed.
| step | loss |
|------|------|
| 100  | 3.21 |
| 200  | 3.10 |
| 300  | 3.00 |
"""

PYTHON = '''"""Training loop."""
import torch

LOG_LINES = [
    "step 100 | loss 3.2104",
    "step 200 | loss 3.1002",
    "step 300 | loss 3.0001",
]


def train(step: int, loss: float) -> None:
    for step in range(1000):
        loss = 2.0  # step 5 loss 1.0
        print(f"step {step} | loss {loss:.4f}")
        print("step %d loss %f" % (step, loss))
        logger.info('iter 10: loss 2.0')
        logger.info('iter 20: loss 1.9')
        logger.info('iter 30: loss 1.8')
'''

CSV_NO_LOSS = "epoch,step,accuracy\n" + "".join(f"0,{s},0.{s % 10}\n" for s in range(1, 50))
CSV_LOSS_COLUMN = "step,loss,lr\n" + "".join(f"{s},{3 - s / 100},0.001\n" for s in range(1, 50))
YAML = "max_steps: 1000\nloss: cross_entropy\nstep: 10\nloss_scale: 1.0\neval_steps: 100\nlr: 0.001\n"
PROSE = (
    "We trained it for step 1 with loss 3 and it went down.\n"
    "At step 2 the loss was lower, then the weather changed.\n"
    "By iteration 3 my train loss 2.1 had plateaued, so we stopped and went home.\n"
)
TWO_LINES = "step 1 | loss 2.0\nstep 2 | loss 1.9\n"
DIFFERENT_SHAPES = "step 1 | loss 2.0\nstep 2 | loss 1.9 | lr 0.1\niter 3 loss 1.8 dt 5ms\nstep 4 | val_loss 2.0\n"
BACKWARDS = "".join(f"step {s} | loss 2.0\n" for s in (50, 40, 30, 20, 10))


@pytest.mark.parametrize(
    "text",
    [README, PYTHON, CSV_NO_LOSS, CSV_LOSS_COLUMN, YAML, PROSE, TWO_LINES, DIFFERENT_SHAPES, BACKWARDS],
    ids=["readme", "python", "csv", "csv_loss_column", "yaml", "prose", "two_lines", "shapes", "backwards"],
)
def test_lookalikes_stay_unrecognised(text: str) -> None:
    assert not generic_text.sniff(text, "notes.txt")
    # (Lightning's parser takes a CSV with a step column: a specific format's call.)
    expected = "lightning_csv" if text.startswith(("epoch,", "step,")) else None
    assert _format(text, "notes.txt") == expected


def test_this_projects_sources_stay_unrecognised() -> None:
    # Sources full of sample log lines (in strings), the README, the tests themselves.
    root = Path(__file__).resolve().parents[2]
    files = [*root.glob("trainwatch/**/*.py"), *root.glob("tests/**/*.py"), *root.glob("*.md")]
    assert len(files) > 50
    taken = [p.name for p in files if generic_text.sniff(p.read_text(encoding="utf-8")[:SNIFF_BYTES_MORE], p.name)]
    assert taken == []


# ---------------------------------------------- never over a specific format

SAMPLES = {
    "nanogpt_stdout": "".join(f"iter {i}: loss {3 - i / 100:.4f}, time 100.00ms, mfu 10.00%\n" for i in range(5)),
    "megatron_stdout": "".join(
        f" iteration {i:>8}/     500 | consumed samples: {i * 8} | elapsed time per iteration (ms): 1000.0 |"
        f" learning rate: 1.0E-04 | global batch size: 8 | lm loss: 3.0E+00 | loss scale: 1.0 |\n"
        for i in range(1, 6)
    ),
    "torchtitan_stdout": "".join(
        f"[rank0]:[titan] 2026-01-01 00:00:0{i},000 - root - INFO - step: {i}  loss: 3.0000  grad_norm: 1.0000"
        f"  memory: 10.00GiB(10.00%)  tps: 1,000  tflops: 10.00  mfu: 5.00%\n"
        for i in range(1, 6)
    ),
    "llmc_stdout": "".join(
        f"step {i:4d}/100 | loss 3.000000 (+nanz)| norm 1.0000 (+nanz)| lr 6.00e-04 | 100.00 ms"
        " | 40.0% bf16 MFU | 50000 tok/s\n"
        for i in range(1, 6)
    ),
    "buildnanogpt_logtxt": "".join(f"{i} train 3.000000\n" for i in range(5)),
    "nanochat": "".join(
        f"step {i:05d}/21400 ({i / 214:.2f}%) | loss: 3.000000 | grad norm: 0.4282 | lrm: 1.00 | dt: 100.00ms"
        f" | tok/sec: 11,342 | mfu: 3.64 | total time: 0.00m\n"
        for i in range(5)
    ),
    "modded_nanogpt": "".join(
        f"step:{i}/3584 train_loss:3.0000 train_time:{i * 100}ms step_avg:100.00ms\n" for i in range(1, 6)
    ),
    "jsonl_metrics": "".join(f'{{"step": {i}, "loss": 3.0}}\n' for i in range(5)),
    "swift_jsonl": "".join(
        f'{{"loss": 3.0, "global_step/max_steps": "{i}/10", "elapsed_time": "{i}s", "memory(GiB)": 1.0}}\n'
        for i in range(1, 6)
    ),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_other_formats_keep_their_format(name: str) -> None:
    assert _format(SAMPLES[name]) == name


def test_a_specific_format_found_late_still_wins() -> None:
    # Lines the fallback would read, then, past the first look, Megatron's own.
    preamble = "".join(f"warmup step {i} | loss 9.0\n" for i in range(SNIFF_BYTES // 20))
    text = preamble + SAMPLES["megatron_stdout"]
    assert len(preamble) > SNIFF_BYTES and generic_text.sniff(preamble, "x.log")
    assert detect(text.encode()[:SNIFF_BYTES], "x.log") is None
    assert _format(text) == "megatron_stdout"


def test_fallback_is_last() -> None:
    assert PARSERS[-len(FALLBACKS) :] == FALLBACKS == (generic_text.SPEC,)


#: Corpus folders and the format their files are (sidecars aside).
CORPUS_FORMATS = {
    "buildnanogpt_logtxt": "buildnanogpt_logtxt",
    "llamafactory_jsonl": "llamafactory_jsonl",
    "llm_tii_json": "llm_tii_json",
    "megatron_stdout": "megatron_stdout",
    "modded_nanogpt": "modded_nanogpt",
    "nanochat": "nanochat",
    "nanogpt_stdout": "nanogpt_stdout",
    "swift_jsonl": "swift_jsonl",
    "torchtitan_stdout": "torchtitan_stdout",
}


def test_corpus_files_keep_their_format(corpus: Path) -> None:
    """Every corpus file a specific parser takes stays with it; the fallback
    only ever takes files no specific parser reads (none, in this tree: before
    their parsers came, it read nanochat's and modded-nanogpt's logs)."""
    fallback_took = []
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.name != "MANIFEST.md"):
        head = path.read_bytes()[:SNIFF_BYTES_MORE]
        specific = detect(head[:SNIFF_BYTES], path.name) or detect(head, path.name, lines_only=True)
        found = detect_head(head, path.name)
        folder = path.relative_to(corpus).parts[0]
        if specific is not None:
            assert found is specific, path
        elif found is not None:
            assert found.format == "generic_text", path
            fallback_took.append(folder)
        if folder in CORPUS_FORMATS:
            assert found is not None and found.format == CORPUS_FORMATS[folder], path
    assert fallback_took == []


def test_the_tailer_asks_the_fallback_last(tmp_path: Path) -> None:
    generic = tmp_path / "train.log"
    generic.write_text("".join(f"step {i} | loss {3 - i / 100} | dt 100ms\n" for i in range(1, 3)))
    source = LogSource(generic)
    assert not source.refresh() and source.problem == "unrecognised format"  # two lines: not yet
    with open(generic, "a") as handle:
        handle.write("step 3 | loss 2.97 | dt 100ms\n")
    assert source.refresh() and source.spec is generic_text.SPEC
    assert source.agg.stats(NOW).iter == 3
    late = tmp_path / "megatron.log"
    late.write_text(
        "".join(f"warmup step {i} | loss 9.0\n" for i in range(SNIFF_BYTES // 20)) + SAMPLES["megatron_stdout"]
    )
    source = LogSource(late)
    source.refresh()
    assert source.spec is not None and source.spec.format == "megatron_stdout"
