"""modded_nanogpt: KellerJordan/modded-nanogpt record logs (source code first, then ``step:i/N`` lines)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.ingest.source import LogSource
from trainwatch.parsers import SNIFF_BYTES, SNIFF_BYTES_MORE, by_format, detect, detect_head, modded_nanogpt

NOW = datetime(2030, 1, 1)
CORPUS_DIR = "modded_nanogpt"
RULE = "=" * 100


def _feed(lines: list[str]) -> list[Record]:
    parser = modded_nanogpt.ModdedNanoGPTParser()
    return [record for line in lines for record in parser.feed(line)]


def _stats(records: tuple[Record, ...] | list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _info(records: tuple[Record, ...] | list[Record]) -> dict[str, object]:
    """RunInfo fields merged the way the aggregator merges them (later wins)."""
    merged: dict[str, object] = {}
    for record in records:
        if isinstance(record, RunInfo):
            merged.update({k: v for k in RunInfo.__slots__ if (v := getattr(record, k)) is not None})
    return merged


def _its(records: list[Record]) -> list[Iteration]:
    return [r for r in records if isinstance(r, Iteration)]


# The head of a record log: the training script prints itself first. Its
# format strings, and a docstring line that looks like a metric line, must
# never be read as metrics.
SOURCE = [
    "import os",
    "import sys",
    "with open(sys.argv[0]) as f:",
    "    code = f.read() # read the code of this file ASAP, for logging",
    '"""',
    "step:5/100 train_loss:1.0000 train_time:1ms step_avg:1.00ms",
    '"""',
    "        print0(f'step:{step}/{args.num_iterations} val_loss:{val_loss:.4f} train_time:{training_time_ms:.0f}ms "
    "step_avg:{training_time_ms/(timed_steps-1):.2f}ms')",
    "        print0(f'step:{step+1}/{args.num_iterations} train_loss:{train_loss.item():.4f} "
    "train_time:{approx_time:.0f}ms step_avg:{approx_time/timed_steps:.2f}ms')",
    "    print0(f'peak memory consumption: {torch.cuda.max_memory_allocated() // 1024 // 1024} MiB')",
    RULE,
    "Running pytorch 2.6.0.dev20241126+cu124 compiled for CUDA 12.4",
    "nvidia-smi:",
    "|   0  NVIDIA H100 80GB HBM3          On  |   00000000:19:00.0 Off |                    0 |",
    "|   1  NVIDIA H100 80GB HBM3          On  |   00000000:3B:00.0 Off |                    0 |",
    RULE,
]

# Late 2024: a loss on every step, step_avg "nan" until step 11 and the clock
# zeroed at the top of step 10 (train_time drops at step:11).
OLDER = [
    *SOURCE,
    "step:0/20 val_loss:10.8258 train_time:0ms step_avg:nanms",
    *(f"step:{i}/20 train_loss:{11 - i / 10:.4f} train_time:{i * 1000}ms step_avg:nanms" for i in range(1, 11)),
    "step:11/20 train_loss:9.9000 train_time:250ms step_avg:nanms",
    "step:12/20 train_loss:9.8000 train_time:500ms step_avg:250.00ms",
    *(
        f"step:{i}/20 train_loss:{11 - i / 10:.4f} train_time:{(i - 10) * 250}ms step_avg:250.00ms"
        for i in range(13, 21)
    ),
    "step:20/20 val_loss:3.2794 train_time:2500ms step_avg:250.00ms",
    "peak memory consumption: 31237 MiB",
]


def test_older_style_skips_the_source_and_times_steps_from_train_time() -> None:
    records = _feed(OLDER)
    its = _its(records)
    assert [it.iter for it in its] == list(range(1, 21))  # "step:5/100" inside the source is no step
    # step_avg is a running mean and is not read; times are train_time deltas.
    assert [it.time_ms for it in its[:10]] == [1000.0] * 10
    assert its[10].time_ms == 250.0  # the clock restarted at the top of step 11's loop pass
    assert [it.time_ms for it in its[11:]] == [250.0] * 9
    assert its[0].loss == pytest.approx(10.9) and its[-1].loss == pytest.approx(9.0)
    evals = [r for r in records if isinstance(r, Eval)]
    assert [(e.iter, e.val_loss) for e in evals] == [(0, 10.8258), (20, 3.2794)]
    assert records[-1] == Outcome("finished", "peak memory consumption: 31237 MiB")
    info = _info(records)
    assert info["target"] == 20 and info["eval_timing"] == "excluded"
    assert info["gpu"] == "NVIDIA H100 80GB HBM3"  # the first nvidia-smi row
    st = _stats(records)
    assert (st.iter, st.target, st.status, st.loss, st.val_loss) == (20, 20, "finished", 9.0, 3.2794)
    assert st.train_time_logged_s == pytest.approx(10 + 2.5)  # every step once, the reset undone


# 2025: no train loss; val_loss every 125 steps with 6 decimals; warm-up
# steps printed before step 0.
NEWER = [
    *SOURCE[:4],
    RULE,
    "Running Python 3.12.7 (main, Aug 15 2025, 14:32:43) [GCC 11.4.0]",
    RULE,
    *(f"Warmup step {i}/10" for i in range(1, 11)),
    "step:0/250 val_loss:10.825840 train_time:0ms step_avg:0.38ms",
    *(f"step:{i}/250 train_time:{i * 200}ms step_avg:200.00ms" for i in range(1, 126)),
    "step:125/250 val_loss:4.305626 train_time:25001ms step_avg:200.01ms",
    *(f"step:{i}/250 train_time:{i * 200 + 1}ms step_avg:200.00ms" for i in range(126, 251)),
    "step:250/250 val_loss:3.278001 train_time:50002ms step_avg:200.01ms",
    "peak memory allocated: 53367 MiB reserved: 56014 MiB",
]


def test_newer_style_has_no_train_loss_and_val_lines_are_evals() -> None:
    records = _feed(NEWER)
    its = _its(records)
    assert len(its) == 250 and all(it.loss is None for it in its)  # "Warmup step" lines are not steps
    assert its[124].time_ms == 200.0  # step 125: train line to train line
    assert its[125].time_ms == 201.0  # step 126 counts from step 125's train line (the eval is off the clock)
    evals = [r for r in records if isinstance(r, Eval)]
    assert [e.val_loss for e in evals] == [10.825840, 4.305626, 3.278001]
    st = _stats(records)
    assert (st.iter, st.target, st.status, st.loss, st.val_loss) == (250, 250, "finished", None, 3.278001)
    assert st.mean_iter_s == pytest.approx(50.001 / 250)


def test_val_only_logs_make_an_iteration_per_val_line() -> None:
    """Track-3 logs print validation lines only, train_time in seconds."""
    lines = [
        "Running PyTorch 2.11.0+cu128 compiled for CUDA 12.8 on NVIDIA H100 80GB HBM3 with world_size 8",
        "step:0/500 val_loss:10.82584 train_time:0.001s step_avg:nanms",
        "step:250/500 val_loss:4.12440 train_time:41.354s step_avg:147.87ms",
        "step:500/500 val_loss:3.27839 train_time:82.707s step_avg:147.03ms ema_beta:0.95",
    ]
    records = _feed(lines)
    its = _its(records)
    assert [(it.iter, it.loss) for it in its] == [(250, None), (500, None)]
    assert its[0].time_ms == pytest.approx((41354 - 1) / 250)
    assert its[1].time_ms == pytest.approx((82707 - 41354) / 250)
    info = _info(records)
    assert (info["gpu"], info["world_size"]) == ("NVIDIA H100 80GB HBM3", 8)
    assert _stats(records).status == "finished"  # 500 of a stated 500, though no end line


def test_derivative_fields_and_preamble() -> None:
    lines = [
        "logs/cf1ef5f9.txt",
        "Hyperparameters: main.<locals>.Hyperparameters(num_iterations=3, val_loss_every=128)",
        "tokens_per_fwdbwd=524288 (B=1 T=32768 ddp_world_size=2 train_accumulation_steps=8 args.batch_size=16)",
        RULE,
        *SOURCE[:4],
        RULE,
        "Model Config: main.<locals>.GPTConfig(vocab_size=50304, n_layer=12, n_head=12, n_embd=768)",
        "step:0/3 val_loss:10.9954 train_time:0ms step_avg:nanms",
        "step:1/3 train_loss:11.0008 train_time:10846ms step_avg:nanms tokens_seen:5.24e+05 tokens/sec:4.83e+04 "
        "vram:15.8/23.5GB",
        "step:2/3 train_loss:9.0703 train_time:13444ms step_avg:nanms tokens_seen:1.05e+06 tokens/sec:7.80e+04 ",
        "step:3/3 train_loss:7.9482 train_time:15982ms step_avg:nanms tokens_seen:1.57e+06 tokens/sec:9.84e+04 ",
    ]
    records = _feed(lines)
    info = _info(records)
    assert info["tokens_per_iter"] == 524288
    assert (info["batch_size"], info["block_size"], info["world_size"], info["grad_accum_per_gpu"]) == (1, 32768, 2, 8)
    assert (info["n_layer"], info["n_head"], info["n_embd"]) == (12, 12, 768)
    assert info["tokens_per_sec_scope"] == "total"
    its = _its(records)
    assert [it.tokens_seen for it in its] == [524000, 1050000, 1570000]  # as printed, 3 digits
    assert [it.tokens_per_sec for it in its] == [4.83e04, 7.80e04, 9.84e04]
    assert [it.time_ms for it in its] == [10846.0, 2598.0, 2538.0]
    assert _stats(records).tokens_per_iter == 524288


def test_console_copy_with_prefixes_ansi_and_a_crash() -> None:
    lines = [
        "[rank0]: step:0/100 val_loss:10.8258 train_time:0ms step_avg:nanms",
        "\x1b[0m[rank0]: step:1/100 train_loss:10.8000 train_time:500ms step_avg:nanms",
        "step:2/100 train_loss:10.5000 train_time:1000ms step_avg:nanms",
        "step:3/100 train_loss:10.2",  # cut off by the crash: its last value is not whole
        "Traceback (most recent call last):",
        '  File "train_gpt.py", line 500, in <module>',
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    ]
    records = _feed(lines)
    assert [(it.iter, it.loss) for it in _its(records)] == [(1, 10.8), (2, 10.5)]
    st = _stats(records)
    assert st.status == "failed"
    assert "OutOfMemoryError" in st.events[-1]


# torch.compile logs each graph break as a glog-style warning record per line,
# a whole traceback included; the run goes on.
GRAPH_BREAK = [
    f"W0530 14:48:26.433000 2622492 site-packages/torch/_dynamo/convert_frame.py:1233] {text}"
    for text in (
        "WON'T CONVERT forward /home/u/gpt/model.py line 228",
        "due to: ",
        "Traceback (most recent call last):",
        '  File "/home/u/torch/_dynamo/convert_frame.py", line 1164, in __call__',
        "torch._dynamo.exc.Unsupported: generator",
    )
]


def test_a_traceback_logged_as_a_warning_is_no_failure() -> None:
    steps = [f"step:{i}/100 train_loss:{4 - i / 10:.6e} train_time:{i * 50}ms step_avg:50.00ms" for i in (1, 2)]
    st = _stats(_feed([*GRAPH_BREAK, *GRAPH_BREAK, *steps]))
    assert (st.iter, st.status) == (2, "running")
    # A real crash after them still ends the run.
    crash = ["Traceback (most recent call last):", '  File "train.py", line 9', "RuntimeError: boom"]
    records = _feed([*GRAPH_BREAK, *steps, *crash])
    assert _stats(records).status == "failed"
    assert [r.message for r in records if isinstance(r, Outcome)][-1] == "RuntimeError: boom"


def test_metric_lines_past_a_long_preamble_are_found(tmp_path: Path) -> None:
    # 1 MB of compile warnings before the first step line: past the longest
    # sniff of the head, the newest lines say what the log is.
    log = tmp_path / "train.log"
    warnings = "".join(line + "\n" for line in GRAPH_BREAK) * 2000
    assert len(warnings) > SNIFF_BYTES_MORE
    steps = "".join(
        f"step:{i}/100 train_loss:{4 - i / 10:.6e} train_time:{i * 50}ms step_avg:50.00ms\n" for i in range(1, 6)
    )
    log.write_text(warnings + steps)
    source = LogSource(log)
    source.refresh()
    assert source.spec is modded_nanogpt.SPEC
    st = source.agg.stats(NOW)
    assert (st.iter, st.target, st.loss) == (5, 100, 3.5)
    assert st.status != "failed"  # (stalled: the file is older than NOW; the warnings are no crash)


def test_a_second_run_in_the_same_file_starts_a_new_clock() -> None:
    run = ["step:0/3 val_loss:10.0 train_time:0ms step_avg:nanms"] + [
        f"step:{i}/3 train_loss:{10 - i}.0000 train_time:{i * 100}ms step_avg:100.00ms" for i in (1, 2, 3)
    ]
    records = _feed([*run, "peak memory consumption: 1 MiB", *run[:3]])
    its = _its(records)
    assert [it.iter for it in its] == [1, 2, 3, 1, 2]
    assert [it.time_ms for it in its] == [100.0] * 5
    st = _stats(records)
    assert (st.iter, st.segments, st.status) == (2, 2, "running")


@pytest.mark.parametrize(
    "line",
    [
        "step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:{training_time_ms:.0f}ms",
        "step:1/ train_time:5ms",
        "step:²/10 train_time:5ms step_avg:5.00ms",
        "step:1/10 train_time:-5ms step_avg:5.00ms",
        "step:1/10 train_time:nanms step_avg:nanms",
        "step:" + "9" * 5000 + "/10 train_time:1ms step_avg:1ms",
    ],
)
def test_strange_lines_never_raise(line: str) -> None:
    for record in _feed([line]):
        if isinstance(record, Iteration):
            assert record.time_ms is None or record.time_ms >= 0


def test_detection() -> None:
    # A record log's first 16 KB are source code: the logging idiom finds it.
    head = "\n".join(SOURCE[:4]) + "\n" + "x = 1\n" * 4000
    assert detect(head[:SNIFF_BYTES].encode(), "0b9c2f1e.txt") is modded_nanogpt.SPEC
    assert detect(b"step:0/5820 val_loss:10.825840 train_time:0ms step_avg:0.38ms\n", "out.log") is modded_nanogpt.SPEC
    assert detect(b"iter 10: loss 4.1, time 1200.00ms, mfu 30.00%\n", "train.log") is not modded_nanogpt.SPEC
    assert by_format("modded_nanogpt") is modded_nanogpt.SPEC


# ------------------------------------------------------------------ corpus

# Read by hand: grep "^step:" FILE | tail; grep -c "^step:[0-9]*/[0-9]* val_loss" FILE; tail -2 FILE.
# file, last step (= done), target, last train loss, last val loss, status, val lines,
# train_time of the last train line + the 10 untimed steps' time (ms), as the log prints them.
CASES = [
    (
        "derivative_gpt2_124m_2x4090_3584steps_train_loss_tokens_vram.txt",
        3584,  # "step:3584/3584 val_loss:3.2714 ..."
        3584,
        3.1346,  # "step:3584/3584 train_loss:3.1346 train_time:9186285ms"
        3.2714,
        "finished",  # "peak memory consumption: 16756 MiB"
        29,  # grep -c val_loss lines (every 128 steps and 0)
        33826 + 9186285,  # step:10 "train_time:33826ms", then the clock restarts (step:11 "2556ms")
    ),
    (
        "fork_medium_track_5820steps_val_loss_only_style.txt",
        5820,  # "step:5820/5820 val_loss:2.919093 train_time:1424449ms"
        5820,
        None,  # grep -c "^step:.*train_loss": 0
        2.919093,
        "finished",  # "peak memory allocated: 53367 MiB reserved: 56014 MiB"
        48,
        1424194,  # "step:5820/5820 train_time:1424194ms"; awk: train_time never drops
    ),
]


@cache
def _file_records(path: Path) -> tuple[Record, ...]:
    text = path.read_bytes().decode("utf-8", "replace")
    return tuple(_feed([line.removesuffix("\r") for line in text.split("\n")]))


@pytest.mark.parametrize(("name", "done", "target", "loss", "val", "status", "evals", "train_ms"), CASES)
def test_corpus_file(
    corpus: Path,
    name: str,
    done: int,
    target: int,
    loss: float | None,
    val: float,
    status: str,
    evals: int,
    train_ms: int,
) -> None:
    path = corpus / CORPUS_DIR / name
    # The first step line is 33-37 KB in, behind the source: the longer look finds it.
    assert detect_head(path.read_bytes()[:SNIFF_BYTES_MORE], name) is modded_nanogpt.SPEC
    records = _file_records(path)
    st = _stats(records)
    assert (st.iter, st.target, st.status, st.segments) == (done, target, status, 1)
    assert st.loss == (pytest.approx(loss) if loss is not None else None)
    assert st.val_loss == pytest.approx(val)
    assert sum(isinstance(r, Eval) for r in records) == evals
    assert st.logged_iters == done  # every step printed once; none from the source
    assert st.train_time_logged_s == pytest.approx(train_ms / 1000)


def test_corpus_derivative_facts(corpus: Path) -> None:
    records = _file_records(corpus / CORPUS_DIR / CASES[0][0])
    its = _its(list(records))
    # step:10 "train_time:33826ms", step:11 "train_time:2556ms", step:12 "train_time:5107ms"
    assert [it.time_ms for it in its[9:12]] == [33826.0 - 31282.0, 2556.0, 5107.0 - 2556.0]
    assert its[-1].tokens_seen == 1880000000  # "tokens_seen:1.88e+09"
    info = _info(records)
    assert info["tokens_per_iter"] == 524288  # line 4: "tokens_per_fwdbwd=524288"
    assert info["gpu"] == "NVIDIA GeForce RTX 4090"  # nvidia-smi "|   0  NVIDIA GeForce RTX 4090        Off |"
    assert _stats(records).tokens_per_iter == 524288


# ---------------------------------------------------------------- fast path

FAST_CASES = [
    "step:1/20 train_loss:10.9000 train_time:1000ms step_avg:nanms",
    "step:1/20 train_loss:nan train_time:1000ms step_avg:nanms",
    "step:125/250 val_loss:4.305626 train_time:25001ms step_avg:200.01ms",
    "step:7/250 train_time:1400ms step_avg:200.00ms",
    "step:12/3584 train_loss:6.4685 train_time:5107ms step_avg:nanms tokens_seen:6.29e+06 tokens/sec:1.23e+06 ",
    "step:12/3584 train_loss:6.4685 train_time:5107ms step_avg:nanms tokens_seen:-1 tokens/sec:nan ",
    "step:12/3584 train_loss:6.4685 train_time:5107ms step_avg:nanms tokens_seen:6.29e+06 tokens/sec:1.2",  # cut
    "step:1/20 train_loss:1,5 train_time:1000ms step_avg:nanms",
    "step:1/20 train_loss:١٢٣ train_time:1000ms step_avg:nanms",
    "step:1/20 train_time:" + "9" * 400 + "ms step_avg:1ms",
]


@pytest.mark.parametrize("line", FAST_CASES)
def test_fast_path_reads_as_the_general_one(line: str) -> None:
    fast = modded_nanogpt.fast_line(line)
    assert fast is None or repr(fast) == repr(modded_nanogpt.read_line(line))  # repr: nan == nan


def test_fast_path_on_every_corpus_line(corpus: Path) -> None:
    taken = 0
    for path in sorted((corpus / CORPUS_DIR).iterdir()):
        for line in path.read_bytes().decode("utf-8", "replace").split("\n"):
            if line.startswith("step:") and (fast := modded_nanogpt.fast_line(line)) is not None:
                taken += 1
                assert fast == modded_nanogpt.read_line(line), line
    assert taken == 3584 + 29 - 11 + 5820 + 48  # all but the derivative's 11 "vram:" lines
