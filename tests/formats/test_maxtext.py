"""maxtext_stdout: Google MaxText's training stdout (``max_logging.log`` lines).

There is no corpus file for MaxText: the sample logs below are written in the
grammar of MaxText's own printing code (AI-Hypercomputer/maxtext):
``MaxText/train.py`` ``write_metrics`` (2023–2025: ``completed step: ...``,
``average loss after step=N: ...``), ``MaxText/metric_logger.py``
``MetricLogger.log_metrics`` (2025: ``eval metrics after step: N, ...``) and
``src/maxtext/common/metric_logger.py`` ``_log_training_metrics`` /
``_log_eval_metrics`` (2026: ``lm_loss``/``perplexity`` fields, ``Completed
eval after train step N``, step lines written one step late),
``maxtext_utils.create_device_mesh`` (``Num_devices: 4, shape (...)``),
``pyconfig`` (``Config param steps: 10``) and ``checkpointing.py``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from trainwatch import parsers
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import detect, detect_head, maxtext

NOW = datetime(2030, 1, 1)
ABSL = "I1206 09:46:{:02d}.123456 140234 {}] "


def _feed(lines: list[str]) -> list[Record]:
    parser = maxtext.MaxTextParser()
    records = [record for line in lines for record in parser.feed(line)]
    return records + list(parser.flush())


def _stats(records: list[Record]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


def _info(records: list[Record]) -> dict[str, object]:
    merged: dict[str, object] = {}
    for record in records:
        if isinstance(record, RunInfo):
            merged.update({k: v for k in RunInfo.__slots__ if (v := getattr(record, k)) is not None})
    return merged


# A 2024 run (train.py's write_metrics), plain stdout: a pyconfig dump, the
# mesh, 10 steps (steps=10: 0..9), an eval after step 5, a checkpoint.
LOG_2024 = [
    "Updating keys from env and command line: ['run_name', 'steps', 'per_device_batch_size']",
    "Config param model_name: llama2-7b",
    "Config param per_device_batch_size: 24.0",
    "Config param max_target_length: 2048",
    "Config param gradient_accumulation_steps: 1",
    "Config param steps: 10",
    "Config param eval_interval: 5",
    "System Information: Jax Version: 0.4.31",
    "Num_devices: 4, shape (1, 1, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1)",
    "number parameters: 6.738 billion",
    "completed step: 0, seconds: 44.923, TFLOP/s/device: 17.022, Tokens/s/device: 1094.129, "
    "total_weights: 196608, loss: 12.038",
    "To see full metrics 'tensorboard --logdir=gs://bucket/demo/tensorboard/'",
    "completed step: 1, seconds: 5.669, TFLOP/s/device: 134.884, Tokens/s/device: 8670.207, "
    "total_weights: 196608, loss: 11.110",
    "completed step: 2, seconds: 5.668, TFLOP/s/device: 134.909, Tokens/s/device: 8671.794, "
    "total_weights: 196608, loss: 10.879",
    "completed step: 3, seconds: 5.668, TFLOP/s/device: 134.914, Tokens/s/device: 8672.153, "
    "total_weights: 196608, loss: 10.688",
    "completed step: 4, seconds: 5.669, TFLOP/s/device: 134.882, Tokens/s/device: 8670.101, "
    "total_weights: 196608, loss: 10.542",
    "completed step: 5, seconds: 5.668, TFLOP/s/device: 134.911, Tokens/s/device: 8671.946, "
    "total_weights: 196608, loss: 10.440",
    "saved a checkpoint at step 5",
    "Completed eval step 0",
    "Completed eval step 1",
    "average loss after step=5: eval_step_count=2, eval_loss=10.52734375, total_weights=75264.0",
    "completed step: 6, seconds: 9.802, TFLOP/s/device: 78.011, Tokens/s/device: 5014.566, "
    "total_weights: 196608, loss: 10.374",
    "completed step: 7, seconds: 5.667, TFLOP/s/device: 134.924, Tokens/s/device: 8672.758, "
    "total_weights: 196608, loss: 10.301",
    "completed step: 8, seconds: 5.667, TFLOP/s/device: 134.924, Tokens/s/device: 8672.758, "
    "total_weights: 196608, loss: 10.255",
    "completed step: 9, seconds: 5.667, TFLOP/s/device: 134.924, Tokens/s/device: 8672.758, "
    "total_weights: 196608, loss: 10.201",
]


def test_2024_run_reads_as_printed() -> None:
    records = _feed(LOG_2024)
    assert detect("\n".join(LOG_2024).encode(), "train.log") is maxtext.SPEC
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.iter for i in its] == list(range(10))  # "completed step: 0" .. "completed step: 9"
    assert its[0].time_ms == pytest.approx(44923.0)  # "seconds: 44.923"
    assert its[1].tokens_per_sec == pytest.approx(8670.207)  # "Tokens/s/device: 8670.207"
    assert its[-1].loss == pytest.approx(10.201)
    assert all(i.lr is None and i.mfu_pct is None for i in its)  # MaxText prints neither
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(5, pytest.approx(10.52734375))]
    assert [c.iter for c in records if isinstance(c, Checkpoint)] == [5]
    info = _info(records)
    assert info["target"] == 9  # "Config param steps: 10": steps 0..9
    assert info["world_size"] == 4  # "Num_devices: 4"
    assert info["block_size"] == 2048
    assert info["tokens_per_iter"] == 24 * 2048 * 1 * 4  # per_device_batch_size × length × accum × devices
    assert info["params"] == 6_738_000_000  # "number parameters: 6.738 billion"
    assert info["architecture"] == "llama2-7b"
    assert info["tokens_per_sec_scope"] == "gpu"
    st = _stats(records)
    assert (st.iter, st.target, st.status) == (9, 9, "finished")  # the stated last step was reached
    assert st.loss == pytest.approx(10.201)
    assert st.val_loss == pytest.approx(10.52734375)
    assert st.eval_at == (6,)  # the eval after step 5 ran inside step 6's "seconds: 9.802"
    assert st.tokens_per_sec_logged == pytest.approx(8672.758)
    assert st.tokens_per_sec_logged_scope == "gpu"
    # per-device tokens/s × seconds × 4 devices = 8672.758 × 5.667 × 4 ≈ 196,593 ≈ 24 × 2048 × 4
    assert st.tokens_per_iter == 196608


def test_absl_prefixes_and_the_oldest_line() -> None:
    """absl's record prefix in front of every line; the 2023 line had ``TFLOP/s:`` and no tokens."""
    lines = [
        ABSL.format(0, "pyconfig.py:584") + "Config param steps: 3",
        ABSL.format(1, "train.py:83") + "completed step: 0, seconds: 12.000, TFLOP/s: 10.500, loss: 10.874",
        ABSL.format(2, "train.py:83") + "completed step: 1, seconds: 1.500, TFLOP/s: 84.000, loss: 10.410",
    ]
    assert detect("\n".join(lines).encode(), "out.txt") is maxtext.SPEC
    its = [r for r in _feed(lines) if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.time_ms, i.tokens_per_sec) for i in its] == [
        (0, 10.874, 12000.0, None),
        (1, 10.41, 1500.0, None),
    ]
    st = _stats(_feed(lines))
    assert (st.iter, st.target, st.status) == (1, 2, "running")  # steps=3: 0..2, step 2 not printed yet


# 2026 (src/maxtext/common/metric_logger.py): extra fields, ramp-up and
# profiler-boundary lines, step lines written one step late (so "Completed
# eval after train step 4" comes before "completed step: 4"), the async
# checkpoint pair, and a rank prefix from srun on each of two processes.
LOG_2026 = [
    "0: Config param steps: 100",
    "1: Config param steps: 100",
    "0: Num_devices: 16, shape (1, 16, 1, 1)",
    "0: [Rampup Batch Size Phase], completed step: 0, seconds: 30.100, total_weights: 8192, "
    "loss: 11.250, lm_loss: 11.250, perplexity: 76879.241",
    "1: [Rampup Batch Size Phase], completed step: 0, seconds: 30.100, total_weights: 8192, "
    "loss: 11.250, lm_loss: 11.250, perplexity: 76879.241",
    "0: completed step: 1, seconds: 2.000, TFLOP/s/device: 150.250, Tokens/s/device: 4096.000, "
    "total_weights: 131072, loss: 10.500, lm_loss: 10.500, perplexity: 36315.503, moe_lb_loss: 0.010000",
    "0: completed profiler activation/deactivation step: 2, total_weights: 131072, loss: 10.250, "
    "lm_loss: 10.250, perplexity: 28282.542",
    "0: completed step: 3, seconds: 2.010, TFLOP/s/device: 149.502, Tokens/s/device: 4075.622, "
    "total_weights: 131072, loss: 9.875, lm_loss: 9.875, perplexity: 19438.800",
    "0: Started an asynchronous checkpoint save for step 4",
    "0: Starting eval after train step 4",
    "0: Completed eval step: 0, seconds: 0.812, running loss=9.812, running perplexity=18251.3, "
    "running total_weights=65536.0",
    "0: Completed eval after train step 4, loss=9.790, perplexity=17854.120, total_weights=131072.0, avg_z_loss=0.000",
    "0: completed step: 4, seconds: 2.005, TFLOP/s/device: 149.875, Tokens/s/device: 4085.786, "
    "total_weights: 131072, loss: 9.701, lm_loss: 9.701, perplexity: 16344.930",
    "0: Saved a checkpoint at step 4.",
    "0: completed step: 5, seconds: 3.650, TFLOP/s/device: 82.329, Tokens/s/device: 2244.383, "
    "total_weights: 131072, loss: 9.650, lm_loss: 9.650, perplexity: 15532.240",
    "1: completed step: 5, seconds: 3.650, TFLOP/s/device: 82.329, Tokens/s/device: 2244.383, "
    "total_weights: 131072, loss: 9.650, lm_loss: 9.650, perplexity: 15532.240",
]


def test_2026_run_one_rank_late_lines_and_held_eval() -> None:
    records = _feed(LOG_2026)
    assert detect("\n".join(LOG_2026).encode(), "slurm-1234.out") is maxtext.SPEC
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.iter for i in its] == [0, 1, 2, 3, 4, 5]  # rank 1's copies are not counted again
    assert (its[0].loss, its[0].time_ms, its[0].tokens_per_sec) == (11.25, 30100.0, None)  # ramp-up: no rates
    assert (its[2].loss, its[2].time_ms) == (10.25, None)  # profiler boundary: no "seconds"
    evals = [r for r in records if isinstance(r, Eval)]
    assert [(e.iter, e.val_loss, dict(e.metrics)) for e in evals] == [(4, 9.79, {"perplexity": 17854.12})]
    # The eval is handed over right after step 4's line, whose own line came later.
    order = [(type(r).__name__, getattr(r, "iter", None)) for r in records if isinstance(r, (Iteration, Eval))]
    assert order.index(("Eval", 4)) == order.index(("Iteration", 4)) + 1
    assert [c.iter for c in records if isinstance(c, Checkpoint)] == [4]  # one save, two lines
    st = _stats(records)
    assert (st.iter, st.target, st.status, st.world_size) == (5, 99, "running", 16)
    assert st.eval_at == (5,)  # its time is in step 5's "seconds: 3.650"
    assert st.val_loss == pytest.approx(9.79)


def test_eval_held_back_is_flushed_when_the_run_stops() -> None:
    parser = maxtext.MaxTextParser()
    for line in LOG_2026[:12]:  # up to the eval line, before step 4's
        parser.feed(line)
    assert [r.iter for r in parser.flush() if isinstance(r, Eval)] == [4]


def test_eval_metrics_line_of_2025_and_target_loss_stop() -> None:
    lines = [
        "Config param steps: 50",
        "completed step: 9, seconds: 1.000, TFLOP/s/device: 100.000, Tokens/s/device: 1000.000, "
        "total_weights: 4096, loss: 3.125",
        "eval metrics after step: 9, loss=3.050, total_weights=75264.0, step_time_seconds=0.500",
        "Training stopped: Target loss self.config.target_eval_loss=3.1 is achieved.",
        "Traceback (most recent call last):",
        "RuntimeError: teardown noise after the clean end",
    ]
    records = _feed(lines)
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(9, 3.05)]
    outcomes = [r for r in records if isinstance(r, Outcome)]
    assert [(o.kind, o.message) for o in outcomes] == [
        ("finished", "Training stopped: Target loss self.config.target_eval_loss=3.1 is achieved.")
    ]
    assert _stats(records).status == "finished"


def test_crash_resume_and_nan() -> None:
    lines = [
        "Config param steps: 1000",
        "completed step: 10, seconds: 1.000, TFLOP/s/device: 100.000, Tokens/s/device: 1000.000, "
        "total_weights: 4096, loss: 3.125",
        "completed step: 11, seconds: 1.000, TFLOP/s/device: 100.000, Tokens/s/device: 1000.000, "
        "total_weights: 4096, loss: 3.100",
        "Traceback (most recent call last):",
        '  File "/app/MaxText/train.py", line 1000, in <module>',
        "jax.errors.JaxRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2G.",
    ]
    records = _feed(lines)
    outcomes = [r for r in records if isinstance(r, Outcome)]
    assert outcomes[-1].kind == "failed"
    assert outcomes[-1].message.startswith("jax.errors.JaxRuntimeError: RESOURCE_EXHAUSTED")
    assert _stats(records).status == "failed"
    resumed = [
        *lines,
        "restoring from this run's directory step 10",
        "completed step: 10, seconds: 40.000, TFLOP/s/device: 2.500, Tokens/s/device: 25.000, "
        "total_weights: 4096, loss: 3.126",
        "completed step: 11, seconds: 1.000, TFLOP/s/device: 100.000, Tokens/s/device: 1000.000, "
        "total_weights: 4096, loss: nan",
    ]
    st = _stats(_feed(resumed))
    assert (st.iter, st.segments, st.status) == (11, 2, "diverged")  # "loss: nan" after the resume


def test_ansi_and_cr() -> None:
    line = (
        "\x1b[32mcompleted step: 3, seconds: 2.500, TFLOP/s/device: 1.000, Tokens/s/device: 9.500, "
        "total_weights: 8, loss: 4.250\x1b[0m"
    )
    its = [r for r in _feed(["junk\r" + line]) if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.time_ms, i.tokens_per_sec) for i in its] == [(3, 4.25, 2500.0, 9.5)]


_SAMPLES = {"2024": LOG_2024, "2026": LOG_2026}


@pytest.mark.parametrize("prefix", ["[1,0]<stdout>:", "3: [default3]:", "[rank0]:", "0: "])
@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_launcher_prefix_changes_nothing(name: str, prefix: str) -> None:
    """mpirun --tag-output, srun --label (alone or before torchrun's tag), torchrun's tee."""
    lines = _SAMPLES[name]
    tagged = [prefix + line if line else line for line in lines]
    assert detect("\n".join(tagged).encode(), "x.log") is maxtext.SPEC
    bare, got = _stats(_feed(lines)), _stats(_feed(tagged))
    for field in (
        "iter",
        "target",
        "loss",
        "val_loss",
        "status",
        "segments",
        "tokens_per_sec_logged",
        "mean_iter_s",
        "events",
    ):
        assert repr(getattr(got, field)) == repr(getattr(bare, field)), field  # repr: nan == nan


@pytest.mark.parametrize(
    "text",
    [
        "step 10 loss 2.5\nstep 20 loss 2.4\nstep 30 loss 2.3\n",  # generic text
        "Completed eval step 3\nsome other log\n",  # a running-eval line alone is not enough
        "completed step: 5 of the migration\n",
    ],
)
def test_sniff_refuses_other_text(text: str) -> None:
    assert not maxtext.sniff(text, "x.log")


def test_is_registered_before_the_fallbacks() -> None:
    assert maxtext.SPEC in parsers.PARSERS
    assert parsers.PARSERS.index(maxtext.SPEC) < parsers.PARSERS.index(parsers.FALLBACKS[0])
    head = "\n".join(LOG_2024).encode()
    assert detect_head(head, "train.log") is maxtext.SPEC


def test_no_corpus_file_is_taken(corpus: Path) -> None:
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix != ".md"):
        head = path.read_bytes()[: parsers.SNIFF_BYTES]
        if b"\0" in head:
            continue
        assert not maxtext.sniff(head.decode("utf-8", "replace"), path.name), path
