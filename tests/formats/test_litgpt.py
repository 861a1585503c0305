"""litgpt_stdout: Lightning litgpt's console output (``fabric.print`` on rank 0).

There is no corpus file for litgpt: the sample logs below are written in the
grammar of litgpt's own printing code (Lightning-AI/litgpt):
``litgpt/pretrain.py`` ``setup`` (``pprint.pformat(hparams)``), ``main``
(``Total parameters: ...``, the ``| Performance`` report), ``fit`` (the
``Epoch ... | iter ... step ...`` line, ``iter N: val loss ...``) and
``save_checkpoint``; ``litgpt/finetune/lora.py`` ``fit`` (the same line
without ``remaining time``, ``(step)`` only on optimizer steps),
``save_lora_checkpoint`` and ``utils.create_finetuning_performance_report``;
the early-2024 ``pretrain/tinyllama.py`` and ``finetune/lora.py``
(``iter 10 | step 5: loss 2.3456, iter time: ... (optimizer.step)``).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from trainwatch import parsers
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import detect, detect_head, litgpt

NOW = datetime(2030, 1, 1)


def _feed(lines: list[str]) -> list[Record]:
    parser = litgpt.LitgptParser()
    return [record for line in lines for record in parser.feed(line)]


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


# Pretraining on 2 devices, global batch 16, micro-batch 4: 16 // 2 // 4 = 2
# micro-batches per step, so iter = 2 × step; log_interval=1 logs every 2
# iterations (log_iter_interval = log_interval × accumulation); eval.interval=2.
PRETRAIN = [
    "{'data': TinyStories(path=PosixPath('data/tinystories'), num_workers=8, seed=42),",
    " 'devices': 2,",
    " 'eval': EvalArgs(interval=2, max_new_tokens=None, max_iters=100, initial_validation=False,",
    "                  final_validation=True, evaluate_example='first'),",
    " 'model_name': 'pythia-14m',",
    " 'num_nodes': 1,",
    " 'train': TrainArgs(save_interval=4, log_interval=1, global_batch_size=16, micro_batch_size=4,",
    "                    lr_warmup_steps=100, lr_warmup_fraction=None, epochs=None,",
    "                    max_tokens=3000000, max_steps=None, max_seq_length=512,",
    "                    tie_embeddings=None, max_norm=1.0, min_lr=4e-05)}",
    "Time to instantiate model: 0.12 seconds.",
    "Total parameters: 14,067,712",
    "Verifying settings ...",
    "Measured TFLOPs: 0.42",
    "Epoch 1 | iter 2 step 1 | loss train: 10.912, val: n/a | iter time: 640.12 ms (step) remaining time: 2:10:05",
    "Epoch 1 | iter 4 step 2 | loss train: 10.701, val: n/a | iter time: 120.50 ms (step) remaining time: 0:25:10",
    "Validating ...",
    "iter 4: val loss 10.6512, val time: 2345.67 ms",
    "Saving checkpoint to 'out/pretrain/step-00000004/lit_model.pth'",
    "Epoch 1 | iter 6 step 3 | loss train: 10.455, val: 10.651 | iter time: 121.00 ms (step) remaining time: 0:25:00",
    "Epoch 1 | iter 8 step 4 | loss train: 10.250, val: 10.651 | iter time: 119.75 ms (step) remaining time: 0:24:55",
    "Validating ...",
    "iter 8: val loss 10.2031, val time: 2301.10 ms",
    "Saving checkpoint to 'out/pretrain/step-00000004/lit_model.pth'",
    "Validating ...",
    "Final evaluation | val loss: 10.201 | val ppl: 26959.524",
    "Saving checkpoint to 'out/pretrain/final/lit_model.pth'",
    "----------------------------------------",
    "| Performance",
    "| - Total tokens  : 32,768",
    "| - Training Time : 12.34 s",
    "| - Tok/sec       : 2655.43 tok/s",
    "| ----------------------------------------",
]


def test_pretrain_reads_steps_as_printed() -> None:
    records = _feed(PRETRAIN)
    assert detect("\n".join(PRETRAIN).encode(), "pretrain.log") is litgpt.SPEC
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.iter for i in its] == [1, 2, 3, 4]  # "step N" as printed, not "iter 2N"
    assert [i.loss for i in its] == [10.912, 10.701, 10.455, 10.25]
    # one micro-batch's "iter time" × 2 micro-batches per step (iter 2 / step 1)
    assert [i.time_ms for i in its] == pytest.approx([1280.24, 241.0, 242.0, 239.5])
    assert all(i.lr is None and i.tokens_per_sec is None and i.mfu_pct is None for i in its)
    evals = [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)]
    assert evals == [(2, 10.6512), (4, 10.2031), (4, 10.201)]  # "iter 4" is step 2; the final at step 4
    checkpoints = [(c.iter, c.path) for c in records if isinstance(c, Checkpoint)]
    assert checkpoints[0] == (4, "out/pretrain/step-00000004/lit_model.pth")
    assert checkpoints[-1] == (4, "out/pretrain/final/lit_model.pth")
    info = _info(records)
    assert info["params"] == 14_067_712
    assert info["world_size"] == 2  # 'devices': 2 × 'num_nodes': 1
    assert info["block_size"] == 512
    assert info["tokens_per_iter"] == 16 * 512  # global_batch_size × max_seq_length
    assert "target" not in info  # pretraining stops on max_tokens: no step count is stated
    assert [o.kind for o in records if isinstance(o, Outcome)] == ["finished"]
    st = _stats(records)
    assert (st.iter, st.status, st.loss, st.val_loss) == (4, "finished", 10.25, pytest.approx(10.201))


# LoRA fine-tuning, one device, global batch 8 / micro-batch 2 = 4 micro-batches
# per step, log_interval=2 iterations: lines fall inside accumulation windows.
FINETUNE = [
    "Number of trainable parameters: 1,081,344",
    "Number of non-trainable parameters: 1,100,048,384",
    "The longest sequence length in the train data is 1079, the model's maximum sequence length is 1079"
    " and context length is 2048",
    "Verifying settings ...",
    "Epoch 1 | iter 2 step 0 | loss train: 1.842, val: n/a | iter time: 210.33 ms",
    "Epoch 1 | iter 4 step 1 | loss train: 1.810, val: n/a | iter time: 260.02 ms (step)",
    "Epoch 1 | iter 6 step 1 | loss train: 1.765, val: n/a | iter time: 205.10 ms",
    "Epoch 1 | iter 8 step 2 | loss train: 1.702, val: n/a | iter time: 255.00 ms (step)",
    "iter 8: val loss 1.6890, val time: 5123.40 ms",
    "Saving LoRA weights to 'out/finetune/lora/step-000002/lit_model.pth.lora'",
    "Epoch 1 | iter 10 step 2 | loss train: 1.690, val: 1.689 | iter time: 204.00 ms",
    "Traceback (most recent call last):",
    '  File "litgpt/finetune/lora.py", line 355, in fit',
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
]


def test_finetune_accumulation_eval_and_crash() -> None:
    records = _feed(FINETUNE)
    assert detect("\n".join(FINETUNE).encode(), "lora.txt") is litgpt.SPEC
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.iter for i in its] == [0, 1, 1, 2, 2]  # step as printed, repeats inside a window
    # no "(step)" line yet: the accumulation is unknown, so is the step's time
    assert its[0].time_ms is None
    assert its[1].time_ms == pytest.approx(4 * 260.02)  # iter 4 / step 1 = 4 micro-batches
    assert its[2].time_ms == pytest.approx(4 * 205.10)
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(2, 1.689)]
    assert [c.iter for c in records if isinstance(c, Checkpoint)] == [2]
    outcomes = [r for r in records if isinstance(r, Outcome)]
    assert [(o.kind, o.message) for o in outcomes][-1] == (
        "failed",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
    )
    st = _stats(records)
    assert (st.iter, st.status, st.loss) == (2, "failed", 1.69)


def test_finetune_report_is_the_end() -> None:
    lines = [
        *FINETUNE[:9],
        "",
        "| ------------------------------------------------------",
        "| Token Counts",
        "| - Input Tokens              :  12345",
        "| Performance",
        "| - Training Time             :  61.20 s",
        "| - Tok/sec                   :  201.72 tok/s",
        "Final evaluation | val loss: 1.650 | val ppl: 5.207",
        "Saving LoRA weights to 'out/finetune/lora/final/lit_model.pth.lora'",
    ]
    records = _feed(lines)
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(2, 1.689), (2, 1.65)]
    assert _stats(records).status == "finished"


def test_early_2024_and_2023_grammars_with_rank_prefix_and_ansi() -> None:
    lines = [
        "[rank0]: iter 2 | step 1: loss 10.9121, iter time: 640.12 ms (optimizer.step), remaining time: 1.52 days",
        "[rank0]: iter 4 | step 2: loss 10.7012, iter time: 120.50 ms (optimizer.step), remaining time: 0.30 days",
        "\x1b[0miter 6 | step 3: loss nan, iter time: 121.00 ms (optimizer.step), remaining time: 0.30 days",
    ]
    records = _feed(lines)
    its = [r for r in records if isinstance(r, Iteration)]
    assert [(i.iter, i.time_ms) for i in its] == [(1, pytest.approx(1280.24)), (2, 241.0), (3, 242.0)]
    assert _stats(records).status == "diverged"
    old = [
        "iter 1 step 1: loss 2.5000, iter time: 100.00ms (optimizer.step)",
        "iter 2 step 2: loss 2.4000, iter time: 99.50ms (optimizer.step)",
    ]
    assert [(i.iter, i.loss, i.time_ms) for i in _feed(old) if isinstance(i, Iteration)] == [
        (1, 2.5, 100.0),
        (2, 2.4, 99.5),
    ]
    assert detect("\n".join(old).encode(), "log.txt") is litgpt.SPEC


def test_2023_finetune_counts_iter_from_zero() -> None:
    """lit-gpt's 2023 fine-tuning scripts print the 0-based ``iter_num``, so at accumulation 2
    the optimizer steps at odd iters (Lightning-AI/litgpt issue 689)::

        iter 77 step 39: loss 10.8259, iter time: 214.40ms (optimizer.step)
        iter 78 step 39: loss 10.8259, iter time: 198.00ms
    """
    lines = [
        "iter 0 step 0: loss 10.9012, iter time: 1510.20ms",
        "iter 1 step 1: loss 10.8877, iter time: 214.40ms (optimizer.step)",
        "iter 2 step 1: loss 10.8702, iter time: 198.00ms",
        "iter 3 step 2: loss 10.8591, iter time: 215.31ms (optimizer.step)",
    ]
    its = [r for r in _feed(lines) if isinstance(r, Iteration)]
    # accumulation (1 + 1) / 1 = 2 from "iter 1 step 1 (optimizer.step)": each time is 2 x the micro-batch's
    assert [(i.iter, i.loss, i.time_ms) for i in its] == [
        (0, 10.9012, None),
        (1, 10.8877, pytest.approx(428.8)),
        (1, 10.8702, pytest.approx(396.0)),
        (2, 10.8591, pytest.approx(430.62)),
    ]
    # a capture that starts mid-run (no "iter 0" line) finds it from the first step past 1
    tail = [
        "iter 77 step 39: loss 10.8259, iter time: 214.40ms (optimizer.step)",
        "iter 78 step 39: loss 10.8259, iter time: 198.00ms",
    ]
    its = [r for r in _feed(tail) if isinstance(r, Iteration)]
    assert [(i.iter, i.time_ms) for i in its] == [(39, pytest.approx(428.8)), (39, pytest.approx(396.0))]


def test_2023_val_line_names_the_iter_as_step() -> None:
    """lit-gpt 2023's finetune/lora.py and pretrain/tinyllama.py print the evaluation as
    f"step {iter_num}: val loss {val_loss:.4f}, val time: {t1 * 1000:.2f}ms" (the iter, not the step)."""
    lines = [
        "iter 0 step 0: loss 3.5551, iter time: 1069.53ms",
        "iter 1 step 1: loss 3.3320, iter time: 765.52ms (optimizer.step)",
        "step 1: val loss 3.2104, val time: 5012.33ms",  # after iter 1 (0-based): step (1 + 1) / 2
        "iter 2 step 1: loss 3.1906, iter time: 537.32ms",
        "iter 3 step 2: loss 3.8844, iter time: 710.44ms (optimizer.step)",
        "iter 4 step 2: loss 3.5345, iter time: 551.50ms",
        "step 3: val loss 3.1010, val time: 4987.02ms",  # no line of iter 3 just before: (3 + 1) / 2
    ]
    evals = [(e.iter, e.val_loss) for e in _feed(lines) if isinstance(e, Eval)]
    assert evals == [(1, 3.2104), (2, 3.101)]


def test_resume_goes_back_a_segment() -> None:
    steps = [line for line in PRETRAIN if line.startswith("Epoch ")]  # steps 1..4
    lines = [
        *steps,
        "Resuming training from out/pretrain/step-00000002/lit_model.pth",
        "Epoch 1 | iter 6 step 3 | loss train: 10.460, val: n/a | iter time: 900.00 ms (step) remaining time: 0:30:00",
    ]
    st = _stats(_feed(lines))
    assert (st.iter, st.segments, st.loss) == (3, 2, 10.46)


_SAMPLES = {"pretrain": PRETRAIN, "finetune": FINETUNE}


@pytest.mark.parametrize("prefix", ["[1,0]<stdout>:", "3: [default3]:", "[rank0]:", "0: "])
@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_launcher_prefix_changes_nothing(name: str, prefix: str) -> None:
    """mpirun --tag-output, srun --label (alone or before torchrun's tag), torchrun's tee."""
    lines = _SAMPLES[name]
    tagged = [prefix + line if line else line for line in lines]
    assert detect("\n".join(tagged).encode(), "x.log") is litgpt.SPEC
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
        "iter 10: loss 2.5, time 120.00ms, mfu 30.00%\niter 20: loss 2.4, time 120.00ms, mfu 30.00%\n",  # nanoGPT
        "step 10 loss 2.5\nstep 20 loss 2.4\n",
        "iter 4: val loss 1.6890, val time: 5123.40 ms\n",  # a validation line alone
    ],
)
def test_sniff_refuses_other_text(text: str) -> None:
    assert not litgpt.sniff(text, "x.log")


def test_is_registered_before_the_fallbacks() -> None:
    assert parsers.PARSERS.index(litgpt.SPEC) < parsers.PARSERS.index(parsers.FALLBACKS[0])
    assert detect_head("\n".join(PRETRAIN).encode(), "pretrain.log") is litgpt.SPEC


def test_no_corpus_file_is_taken(corpus: Path) -> None:
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix != ".md"):
        head = path.read_bytes()[: parsers.SNIFF_BYTES]
        if b"\0" in head:
            continue
        assert not litgpt.sniff(head.decode("utf-8", "replace"), path.name), path
