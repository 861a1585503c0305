"""megatron_stdout: Megatron-LM and Megatron-DeepSpeed training stdout."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

import pytest

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import detect, megatron

NOW = datetime(2030, 1, 1)


def _feed(lines: list[str]) -> list[Record]:
    parser = megatron.MegatronParser()
    return [record for line in lines for record in parser.feed(line)]


@cache
def _file_records(path: Path) -> tuple[Record, ...]:
    # As the tailer hands lines over: split on \n, trailing \r removed.
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


CORPUS_DIR = "megatron_stdout"

# file, iterations done, target, last train loss, last val loss, status, segments,
# mean iteration time (s, over logged iterations whose time holds no eval pass).
CASES = [
    (
        "mcore_llama3_1b_fineweb_srun_prefixed_344of500_inprogress.out",
        344,  # tail: "iteration      344/     500 | ..."
        500,  # same line; "train_iters ..... 500" in the argument dump
        4.659249,  # tail: "lm loss: 4.659249E+00"
        None,  # grep -c "validation loss": 0 (eval_iters 0)
        "running",  # no end marker; NOW is 5 s after the last timestamp
        1,
        2.215089,  # awk: mean of the 344 "elapsed time per iteration (ms)" / 1000
    ),
    (
        "megads_qwen7b_16ranks_500iters_with_validation.log",
        500,  # grep "iteration  *500/": the last iteration line
        500,  # "iteration      500/     500"
        6.234454,  # iteration 500: "lm loss: 6.234454E+00"
        6.335348,  # last "validation loss at iteration 500 on 160-sample draw ... lm loss value: 6.335348E+00"
        "finished",  # "[after training is done] datetime: 2025-12-22 22:04:38"
        1,
        17.989943,  # awk: mean over the 496 iterations other than 101/201/301/401 (each ~48 s of eval)
    ),
    (
        "megads_qwen7b_16ranks_500iters_freqscale_interleaved.log",
        500,
        500,
        6.239220,  # iteration 500: "lm loss: 6.239220E+00"
        6.340290,  # last validation line: "lm loss value: 6.340290E+00"
        "finished",  # "[after training is done] datetime: 2025-12-23 04:08:07"
        1,
        17.608858,  # awk, as above: 496 iterations, 101/201/301/401 excluded
    ),
    (
        "megads_qwen_tp2pp2dp4_4x50iter_runs_concatenated.log",
        50,  # the 4th run's last line: "iteration       50/      50"
        50,
        8.953270,  # tail of run 4: "lm loss: 8.953270E+00"
        None,  # eval_interval 51 > train_iters 50: no validation line
        "finished",  # 4th "[after training is done] datetime: 2026-03-15 17:34:10"
        4,  # grep -c "iteration        1/      50": 4
        20.121684,  # awk: mean of run 4's 50 "elapsed time per iteration (ms)" / 1000
    ),
]


@pytest.mark.parametrize(("name", "done", "target", "loss", "val", "status", "segments"), [c[:7] for c in CASES])
def test_corpus_file(
    corpus: Path,
    name: str,
    done: int,
    target: int,
    loss: float,
    val: float | None,
    status: str,
    segments: int,
) -> None:
    path = corpus / CORPUS_DIR / name
    assert detect(path.read_bytes()[:16384], name) is megatron.SPEC
    records = _file_records(path)
    walls = [r.wall_time for r in records if isinstance(r, Iteration) and r.wall_time]
    # A live look at the in-progress file: 5 s after its last line.
    st = _stats(records, max(walls) + timedelta(seconds=5) if walls else NOW)
    assert st.iter == done
    assert st.target == target
    assert st.loss == pytest.approx(loss)
    assert st.val_loss == (pytest.approx(val) if val is not None else None)
    assert st.status == status
    assert st.segments == segments


# Megatron evaluates after logging iteration i: the eval's cost lands in
# iteration i + 1 (101: 66.7 s against ~18.5 s), which must not count.
@pytest.mark.parametrize(("name", "mean_s"), [(c[0], c[7]) for c in CASES])
def test_corpus_mean_iteration_time(corpus: Path, name: str, mean_s: float) -> None:
    st = _stats(_file_records(corpus / CORPUS_DIR / name))
    assert st.mean_iter_s == pytest.approx(mean_s, rel=1e-5)


def _last_tflops(path: Path) -> float | None:
    """Achieved TFLOP/s per GPU of the last iteration, as the parser kept it."""
    parser = megatron.MegatronParser()
    for line in path.read_text(encoding="utf-8", errors="replace").split("\n"):
        parser.feed(line)
    return parser.last_tflops_per_gpu


def test_mcore_run_facts(corpus: Path) -> None:
    records = _file_records(corpus / CORPUS_DIR / CASES[0][0])
    info = _info(records)
    assert info["world_size"] == 40  # "world_size ...... 40" (10 nodes × 4 GPUs)
    assert info["block_size"] == 8192  # "seq_length ...... 8192"
    assert info["tokens_per_iter"] == 80 * 8192  # "global_batch_size ...... 80"
    assert (info["n_layer"], info["n_head"], info["n_embd"]) == (16, 32, 2048)
    assert info["params"] == 1235814400  # TP=PP=1: "model parallel rank (0, 0): 1235814400"
    assert info["dtype"] == "bfloat16"  # "bf16 ...... True"
    assert "gpu" not in info  # the log never names the GPU
    its = [r for r in records if isinstance(r, Iteration)]
    assert len(its) == 344
    # srun prefix "9: [default3]: " and the Megatron-LM timestamp before "iteration"
    assert its[0].wall_time == datetime(2026, 4, 15, 11, 19, 2, 524672)
    assert its[0].time_ms == pytest.approx(12465.5)
    assert its[0].lr == pytest.approx(6e-6)
    assert its[0].grad_norm == pytest.approx(11.908)
    assert its[0].tokens_per_sec is None  # Megatron-LM core logs no token rate
    # Kept for derived MFU (records.Iteration has no field for it yet).
    assert _last_tflops(corpus / CORPUS_DIR / CASES[0][0]) == pytest.approx(75.3)  # tail: "(TFLOP/s/GPU): 75.3"
    checkpoints = [r for r in records if isinstance(r, Checkpoint)]
    assert [c.iter for c in checkpoints] == [50, 100, 150, 200, 250, 300]  # "successfully saved checkpoint from"
    assert not any(isinstance(r, Outcome) for r in records)  # in progress: no end, no failure


def test_megads_run_facts_and_throughput(corpus: Path) -> None:
    records = _file_records(corpus / CORPUS_DIR / CASES[1][0])
    info = _info(records)
    assert info["world_size"] == 16
    assert info["tokens_per_iter"] == 16 * 2048  # global batch 16 × seq 2048
    assert info["tokens_per_sec_scope"] == "gpu"  # "tokens per gpu per second (tgs)"
    assert info["params"] == 4 * 1904025088  # TP=4 shards of "rank (t, 0): 1904025088"
    assert info["start_time"] == datetime(2025, 12, 22, 19, 30, 22)  # "[before the start of training step]"
    assert "end_time" not in info  # on the Outcome: see test_appended_run_is_live_not_finished
    ends = [r.wall_time for r in records if isinstance(r, Outcome)]
    assert ends == [datetime(2025, 12, 22, 22, 4, 38)]  # "[after training is done] datetime: ..."
    its = [r for r in records if isinstance(r, Iteration)]
    assert its[-1].tokens_per_sec == pytest.approx(107.858)  # iteration 500: "(tgs): 107.858"
    assert its[-1].tokens_seen == 16384000  # "consumed tokens:     16384000"
    evals = [r for r in records if isinstance(r, Eval)]
    assert [e.iter for e in evals] == [100, 200, 300, 400, 500, 500]
    assert evals[0].val_loss == pytest.approx(7.666490)
    assert evals[0].metrics["lm loss PPL"] == pytest.approx(2135.573)
    st = _stats(records)
    assert st.tokens_per_iter == 32768  # evidence (consumed tokens) and config agree
    assert st.eval_at == (101, 201, 301, 401)  # eval after 100 is timed in 101 (66699.5 ms)
    assert st.tokens_per_sec_logged == pytest.approx(107.858)
    assert st.tokens_per_sec_logged_scope == "gpu"
    # The NCCL "destroy_process_group() was not called" warnings after the end
    # are no failure.
    assert [r.kind for r in records if isinstance(r, Outcome)] == ["finished"]


def test_freqscale_gpu_and_derived_mfu(corpus: Path) -> None:
    records = _file_records(corpus / CORPUS_DIR / CASES[2][0])
    # "[GPUFreqManager] Initialized for 16 GPUs (Tesla V100-SXM3-32GB)"; the
    # ~2000 "[FreqScale] ..." lines in between yield nothing.
    assert _info(records)["gpu"] == "Tesla V100-SXM3-32GB"
    assert sum(isinstance(r, Iteration) for r in records) == 500
    st = _stats(records)
    # The run trains in bf16, which V100 has no tensor cores for: there is no
    # peak to measure utilisation against, so no MFU rather than a wrong one.
    assert st.dense_peak_tflops is None
    assert not st.mfu_derived and st.mfu_mean_pct is None


def test_concatenated_runs_end_finished_despite_teardown_stacks(corpus: Path) -> None:
    records = _file_records(corpus / CORPUS_DIR / CASES[3][0])
    # Four runs, four clean ends; the C++ "Exception raised from recvBytes"
    # stacks and TCPStore warnings after each are teardown noise.
    assert [r.kind for r in records if isinstance(r, Outcome)] == ["finished"] * 4
    steps = [r.iter for r in records if isinstance(r, Iteration)]
    assert steps == list(range(1, 51)) * 4
    # Each run's args dump, TP2×PP2 shards summed: (0,0)+(1,0) 1903462400, (0,1)+(1,1) 1903465984
    params = [r.params for r in records if isinstance(r, RunInfo) and r.params]
    assert params == [2 * 1903462400 + 2 * 1903465984] * 4


def test_appended_run_is_live_not_finished(corpus: Path) -> None:
    """Mid-way through the 2nd of the concatenated runs, the 1st run's end is history."""
    lines = (corpus / CORPUS_DIR / CASES[3][0]).read_text(encoding="utf-8", errors="replace").split("\n")
    parser, agg, starts = megatron.MegatronParser(), RunAggregator(), 0
    for line in lines:
        records = parser.feed(line)
        agg.add_all(records)
        starts += sum(isinstance(r, Iteration) and r.iter == 1 for r in records)
        if starts == 2 and any(isinstance(r, Iteration) and r.iter == 20 for r in records):
            break
    st = agg.stats(now=datetime(2026, 3, 15, 16, 46, 0))  # run 2 started 16:39:28, no timestamps per line
    assert (st.iter, st.segments) == (20, 2)
    assert st.status != "finished"


# ------------------------------------------------------------ inline oddities

ITER = (
    " iteration       {i}/     500 | consumed samples:          800 | elapsed time per iteration (ms): "
    "2109.9 | learning rate: 1.762965E-04 | global batch size:    80 | lm loss: {loss} | loss scale: 1.0 | "
    "grad norm: 0.616 | number of skipped iterations:   0 | number of nan iterations:   {nan} |"
)


def _it(i: int, loss: str = "5.061590E+00", nan: int = 0) -> str:
    return ITER.format(i=i, loss=loss, nan=nan)


def test_srun_prefix_timestamp_and_trailing_junk() -> None:
    line = "9: [default3]: [2026-04-15 11:28:50.649481]" + _it(263) + "[default3]:"
    (info, it) = _feed([line])
    assert isinstance(info, RunInfo) and info.target == 500
    assert isinstance(it, Iteration)
    assert (it.iter, it.loss, it.time_ms) == (263, pytest.approx(5.06159), pytest.approx(2109.9))
    assert it.wall_time == datetime(2026, 4, 15, 11, 28, 50, 649481)


def test_ansi_and_carriage_return() -> None:
    records = _feed(
        [
            "\x1b[93m [WARNING] \x1b[0m async_io requires the dev libaio .so object",
            "progress 10%\rprogress 100%\r" + _it(5).replace("lm loss", "\x1b[32mlm loss\x1b[0m"),
        ]
    )
    its = [r for r in records if isinstance(r, Iteration)]
    assert [(r.iter, r.loss) for r in its] == [(5, pytest.approx(5.06159))]


def test_cut_off_line_keeps_only_whole_fields() -> None:
    # "lm loss: 1.2" of "1.218301E+01" must not become a loss of 1.2.
    cut = _it(7).split("lm loss:")[0] + "lm loss: 1.2"
    (it,) = [r for r in _feed([cut]) if isinstance(r, Iteration)]
    assert it.iter == 7 and it.loss is None and it.time_ms == pytest.approx(2109.9)


def test_nan_iterations_mean_nan_loss() -> None:
    records = _feed([_it(1), _it(2, nan=1), _it(3, loss="nan")])
    losses = [r.loss for r in records if isinstance(r, Iteration)]
    assert losses[0] == pytest.approx(5.06159)
    assert losses[1] is not None and math.isnan(losses[1])
    assert losses[2] is not None and math.isnan(losses[2])
    assert _stats(records).status == "diverged"


def test_args_dump_and_tokens_per_iter() -> None:
    lines = [
        "using world size: 8, data-parallel-size: 2, tensor-model-parallel size: 2, pipeline-model-parallel size: 2",
        "------------------------ arguments ------------------------",
        "  global_batch_size ............................... 64",
        "  micro_batch_size ................................ 2",
        "  num_layers ...................................... 24",
        "  retriever_seq_length ............................ 256",
        "  seq_length ...................................... 4096",
        "  tensor_model_parallel_size ...................... 2",
        "  pipeline_model_parallel_size .................... 2",
        "  train_iters ..................................... None",
        "  world_size ...................................... 8",
        "-------------------- end of arguments ---------------------",
        " > number of parameters on (tensor, pipeline) model parallel rank (0, 0): 100",
        " > number of parameters on (tensor, pipeline) model parallel rank (1, 0): 100",
        " > number of parameters on (tensor, pipeline) model parallel rank (0, 1): 50",
        " > number of parameters on (tensor, pipeline) model parallel rank (1, 1): 50",
    ]
    records = _feed(lines)
    info = _info(records)
    assert info["world_size"] == 8
    assert info["block_size"] == 4096  # not retriever_seq_length
    assert info["tokens_per_iter"] == 64 * 4096
    assert (info["batch_size"], info["grad_accum"]) == (2, 32)  # 2 × 32 × 4096 = tokens per step
    assert "target" not in info  # train_iters None: the iteration lines will say
    # Only the complete sum of the 4 shards is reported.
    assert [r.params for r in records if isinstance(r, RunInfo) and r.params] == [300]


def test_validation_variants() -> None:
    records = _feed(
        [
            _it(100),
            " validation loss at iteration 100 | lm loss value: 7.666490E+00 | lm loss PPL: 2.135573E+03 | ",
            " validation loss at the end of training for val data | lm loss value: 7.5E+00 | lm loss PPL: 1.8E+03 | ",
            " validation loss at iteration 100 on test set | lm loss value: 9.9E+00 | lm loss PPL: 2E+04 | ",
        ]
    )
    evals = [r for r in records if isinstance(r, Eval)]
    assert [(e.iter, e.val_loss) for e in evals] == [(100, pytest.approx(7.66649)), (100, pytest.approx(7.5))]


def test_traceback_is_failure_with_the_exception_as_reason() -> None:
    records = _feed(
        [
            _it(10),
            "[rank3]: Traceback (most recent call last):",
            '[rank3]:   File "pretrain_gpt.py", line 244, in <module>',
            "[rank3]:     raise RuntimeError('boom')",
            "[rank3]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            "[rank1]: Traceback (most recent call last):",
            "[rank1]: RuntimeError: NCCL communicator was aborted",
            "E0101 torch/distributed/elastic/multiprocessing/api.py] failed (exitcode: 1)",
            "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ",
        ]
    )
    outcomes = [r for r in records if isinstance(r, Outcome)]
    assert [o.kind for o in outcomes] == ["failed", "failed"]
    assert outcomes[-1].message.startswith("torch.OutOfMemoryError: CUDA out of memory")
    assert _stats(records).status == "failed"


def test_teardown_after_clean_end_is_not_failure_but_a_new_run_resets() -> None:
    records = _feed(
        [
            _it(500),
            "[after training is done] datetime: 2025-12-22 22:04:38 ",
            "[rank4]:[W315 16:38:00.884874443 TCPStore.cpp:125] [c10d] recvValue failed: Connection reset by peer",
            "Traceback (most recent call last):",
            "RuntimeError: late teardown",
            _it(1),  # a second run appended to the same file
            "slurmstepd: error: *** JOB 1861140 ON nid001 CANCELLED AT 2026-04-15T11:40:00 DUE TO TIME LIMIT ***",
        ]
    )
    outcomes = [r for r in records if isinstance(r, Outcome)]
    assert [o.kind for o in outcomes] == ["finished", "failed"]
    assert outcomes[-1].message == "killed by SLURM time limit"
    st = _stats(records)
    assert (st.segments, st.status) == (2, "failed")


def test_restart_goes_back() -> None:
    records = _feed([_it(1), _it(2), _it(3), _it(2), _it(3)])
    assert [r.iter for r in records if isinstance(r, Iteration)] == [1, 2, 3, 2, 3]
    st = _stats(records)
    assert (st.iter, st.segments) == (3, 2)


def test_garbage_never_raises() -> None:
    junk = ["", "|", "iteration |", " iteration x/y | a: b |", "validation loss at |", "\x1b[", "datetime: x"]
    assert all(isinstance(r, Record) for r in _feed(junk))


def test_sniff() -> None:
    assert megatron.sniff("------------------------ arguments ------------------------\n", "x.out")
    assert megatron.sniff("+ torchrun pretrain_gpt.py --tensor-model-parallel-size 4", "run.log")
    assert not megatron.sniff("iter 10: loss 3.2, time 100ms, mfu 30%\n", "train.log")
    assert not megatron.sniff("[rank0]:[titan] 2026-04-27 16:43:15,575 - root - INFO - step: 1", "t.log")


def test_validation_of_an_accuracy_is_a_metric_not_a_val_loss() -> None:
    # evaluate_and_print_results prints "<key> value | <key> PPL" for every key
    # of the loss function's dict, whatever the key measures.
    records = _feed(
        [
            _it(100),
            " validation loss at iteration 100 | accuracy value: 5.312500E-01 | accuracy PPL: 1.701183E+00 | ",
            _it(200),
            " validation loss at iteration 200 | lm loss value: 6.5E+00 | lm loss PPL: 6.6E+02 | "
            "lm acc value: 3.1E-01 | lm acc PPL: 1.36E+00 | ",
        ]
    )
    evals = [r for r in records if isinstance(r, Eval)]
    assert [(e.iter, e.val_loss, e.metrics) for e in evals] == [
        (100, None, {"accuracy": 0.53125}),
        (200, 6.5, {"lm loss PPL": 660.0, "lm acc": 0.31}),
    ]
    st = _stats(records)
    assert st.val_loss == 6.5
    assert "eval @ 100: accuracy 0.5312" in st.events


def test_zero_shot_task_results_are_metrics_at_the_last_iteration() -> None:
    # tasks/zeroshot_gpt/evaluate.py's line, run every few hundred iterations by
    # a fork: an accuracy, never a val loss; no "|" after its last figure.
    rule = "-" * 116
    line = (
        " validation results on LAMBADA | number correct: 3.5260E+03 | total examples: 5.1530E+03"
        " | avg accuracy: 6.8426E-01"
    )
    records = _feed(["> working on iteration: 30", _it(200), rule, line, rule, _it(201)])
    (ev,) = [r for r in records if isinstance(r, Eval)]
    assert (ev.iter, ev.val_loss) == (200, None)
    assert ev.metrics == {
        "LAMBADA number correct": 3526.0,
        "LAMBADA total examples": 5153.0,
        "LAMBADA avg accuracy": 0.68426,
    }
    # A cut-off last figure is not read as a whole one; before any iteration there is no step for it.
    (cut,) = [r for r in _feed([_it(300), line[:-2]]) if isinstance(r, Eval)]
    assert "LAMBADA avg accuracy" not in cut.metrics
    assert not [r for r in _feed([line]) if isinstance(r, Eval)]
    assert _stats(records).val_loss is None
