"""torchtune: a ``tune run`` console (tqdm bar) and the DiskLogger's ``log_*.txt``.

There is no corpus file for torchtune: the sample logs below are written in
the grammar of torchtune's own printing code (pytorch/torchtune):
``recipes/full_finetune_single_device.py`` ``train`` (``tqdm(initial=...,
total=steps_per_epoch, desc=f"{epochs_run}|{global_step}")``, ``pbar.update(1)``,
``pbar.set_description(f"{curr_epoch + 1}|{global_step}|Loss: {loss_value:.4f}")``),
``recipes/full_finetune_distributed.py`` (``Validation loss: {:.4f}``, the bare
float loss), ``torchtune/training/metric_logging.py`` ``DiskLogger.log_dict``
/ ``StdoutLogger.log_dict`` (``Step N | name:value name:value ``),
``torchtune/config/_utils.py`` ``log_config`` and the checkpointer's
``Model checkpoint of size ... GiB saved to ...``. The bar frames come from
``hf_console_sim.Bar``, a model of tqdm's ``format_meter`` and its EMA rate.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from trainwatch import parsers
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.parsers import detect, detect_head, torchtune

from .hf_console_sim import Bar

NOW = datetime(2030, 1, 1)
LOGGING = "INFO:torchtune.utils._logging:"


def _feed_text(text: str) -> list[Record]:
    parser = torchtune.TorchtuneParser()
    return [record for line in text.split("\n") for record in parser.feed(line)]


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


def _epoch(bar: Bar, epoch: int, first_step: int, times: list[float], losses: list[float], fmt: str = ".4f") -> str:
    """One epoch's bar as the recipe draws it: created (initial frame), then per
    optimizer step ``update(1)`` and ``set_description`` (a redraw)."""
    out = bar.display()
    for k, (seconds, loss) in enumerate(zip(times, losses, strict=True)):
        out += bar.update(seconds)
        bar.desc = f"{epoch}|{first_step + k}|Loss: {loss:{fmt}}"
        out += bar.display()
    return out


# Single device, epochs: 2, 3 steps per epoch (the bar's total), stdout
# block-buffered: the StdoutLogger's "Step N | ..." lines come out at the end.
STEP_TIMES = [2.0, 1.5, 1.5, 2.5, 1.5, 1.5]
LOSSES = [2.3456, 2.1234, 2.0011, 1.9876, 1.9012, 1.8543]


def _console_run() -> str:
    config = [
        f"{LOGGING}Running FullFinetuneRecipeSingleDevice with resolved config:",
        "",
        "batch_size: 2",
        "checkpointer:",
        "  _component_: torchtune.training.FullModelHFCheckpointer",
        "  output_dir: /tmp/torchtune/llama3_2_1B/full_single_device",
        "epochs: 2",
        "gradient_accumulation_steps: 8",
        "max_steps_per_epoch: null",
        "",
        f"{LOGGING}Writing logs to /tmp/torchtune/llama3_2_1B/full_single_device/logs/log_1712345678.txt",
    ]
    text = "\n".join(config) + "\n"
    first = Bar(total=3, desc="0|0")
    text += _epoch(first, 1, 1, STEP_TIMES[:3], LOSSES[:3]) + "\n"
    for shard in (1, 2):
        shard_file = f"/tmp/out/epoch_0/model-0000{shard}-of-00002.safetensors"
        text += f"{LOGGING}Model checkpoint of size 2.30 GiB saved to {shard_file}\n"
    second = Bar(total=3, desc="1|3")
    text += _epoch(second, 2, 4, STEP_TIMES[3:], LOSSES[3:]) + "\n"
    text += f"{LOGGING}Model checkpoint of size 2.30 GiB saved to /tmp/out/epoch_1/model-00001-of-00002.safetensors\n"
    # block-buffered stdout, flushed at exit
    for step, loss in enumerate(LOSSES, start=1):
        text += f"Step {step} | loss:{loss} lr:2e-05 tokens_per_second_per_gpu:1234.5 \n"
    return text


def test_console_bar_steps_times_and_target() -> None:
    text = _console_run()
    assert detect(text.encode(), "tune.out") is torchtune.SPEC
    records = _feed_text(text)
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.iter for i in its] == [1, 2, 3, 4, 5, 6]  # "E|S|Loss" global steps, once each
    assert [i.loss for i in its] == LOSSES  # "{:.4f}" as printed
    # each step's own time (STEP_TIMES), recovered from the EMA rate the frames
    # show, which they print to 2 decimals: the first step of each bar exactly
    assert [i.time_ms for i in its] == [pytest.approx(s * 1000, rel=0.01) for s in STEP_TIMES]
    checkpoints = [(c.iter, c.path) for c in records if isinstance(c, Checkpoint)]
    assert checkpoints == [(3, "/tmp/out/epoch_0"), (6, "/tmp/out/epoch_1")]  # one per folder, not per shard
    assert _info(records)["target"] == 6  # "epochs: 2" × the bar's total 3
    st = _stats(records)
    # the buffered "Step N" lines after step 6 do not rewind the run
    assert (st.iter, st.target, st.status, st.segments, st.loss) == (6, 6, "finished", 1, 1.8543)


# DiskLogger.log_dict writes f"{name}:{data} " per key: every line ends in a space.
DISK_LOG = "".join(
    f"{line} \n"
    for line in [
        "Step 1 | loss:2.345612049102783 lr:2e-05 tokens_per_second_per_gpu:1234.5677490234375"
        " peak_memory_active:10.12 peak_memory_alloc:10.12 peak_memory_reserved:12.5"
        " grad_norm:tensor(0.8125, device='cuda:0')",
        "Step 2 | loss:2.1234121322631836 lr:2e-05 tokens_per_second_per_gpu:1301.25 grad_norm:0.7734375",
        "Step 3 | loss:2.001100540161133 lr:1.9e-05 tokens_per_second_per_gpu:1299.0",
        "Step 3 | val_loss:2.0500",
        "Step 4 | loss:1.9876 lr:1.8e-05 tokens_per_second_per_gpu:1310.0",
        "Step 3 | loss:2.0013 lr:1.9e-05 tokens_per_second_per_gpu:310.0",
        "Step 4 | loss:1.9877 lr:1.8e-05 tokens_per_second_per_gpu:1311.0",
        "Step 5 | loss:nan lr:1.7e-05 tokens_per_second_per_gpu:1312.0",
    ]
)


def test_disk_logger_file() -> None:
    assert detect(DISK_LOG.encode(), "log_1712345678.txt") is torchtune.SPEC
    records = _feed_text(DISK_LOG)
    its = [r for r in records if isinstance(r, Iteration)]
    assert [i.iter for i in its] == [1, 2, 3, 4, 3, 4, 5]  # a resume from step 2's checkpoint
    assert its[0].loss == 2.345612049102783  # full precision, as printed
    assert (its[0].lr, its[0].tokens_per_sec, its[0].grad_norm) == (2e-05, 1234.5677490234375, 0.8125)
    assert its[1].grad_norm == 0.7734375
    assert all(i.time_ms is None for i in its)  # the logger prints no step time
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(3, 2.05)]
    assert _info(records)["tokens_per_sec_scope"] == "gpu"
    st = _stats(records)
    assert (st.iter, st.segments, st.status) == (5, 2, "diverged")  # "loss:nan"
    assert st.tokens_per_sec_logged == 1312.0
    assert st.tokens_per_sec_logged_scope == "gpu"


def test_distributed_console_with_rank_prefix_validation_and_crash() -> None:
    bar = Bar(total=100, desc="0|0")
    frames = _epoch(bar, 1, 1, [3.0, 3.0, 3.0], [1.2345678, 1.1, 1.05], fmt="")
    lines = [
        "[rank0]:" + frames,
        f"[rank0]:{LOGGING}Validation loss: 1.0321",
        "[rank0]:Traceback (most recent call last):",
        '[rank0]:  File "recipes/full_finetune_distributed.py", line 1050, in train',
        "[rank0]:torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.96 GiB.",
        "E1206 10:00:00.000000 1234 torch/distributed/elastic/multiprocessing/api.py:869] failed (exitcode: 1)",
    ]
    records = _feed_text("\n".join(lines))
    its = [r for r in records if isinstance(r, Iteration)]
    assert [(i.iter, i.loss) for i in its] == [(1, 1.2345678), (2, 1.1), (3, 1.05)]  # the bare float
    assert [(e.iter, e.val_loss) for e in records if isinstance(e, Eval)] == [(3, 1.0321)]
    outcomes = [r for r in records if isinstance(r, Outcome)]
    assert outcomes[-1].kind == "failed"
    assert outcomes[-1].message.startswith("torch.OutOfMemoryError: CUDA out of memory")
    st = _stats(records)
    assert (st.iter, st.status) == (3, "failed")
    assert st.target == 2000  # no "epochs:" line: the target is not stated (the default)


def test_bare_bar_under_torchx_tags() -> None:
    """Newer recipes create the bar with no description (``tqdm(total=steps_per_epoch)``):
    its initial frame and its first update's are bare, and set_description names the
    step after. A multi-node run through TorchX tags every line "[role|replica]:" and
    leaves a tag after a frame. Grammar as in the log pasted in meta-pytorch/torchtune
    PR 2620 (LoRA tested on multi-node)::

        [trainer0|0]:  0%|          | 0/101 [00:00<?, ?it/s][trainer0|0]:
        [trainer0|0]:  1%|          | 1/101 [00:20<34:51, 20.91s/it]
        [trainer0|0]:1|1|Loss: 2.7997918128967285:   1%|          | 1/101 [00:20<34:51, 20.91s/it][trainer0|0]:
    """
    times, losses = [20.91, 17.5, 15.0], [2.7997918128967285, 2.764298677444458, 2.7012]
    frames = [f for f in _epoch(Bar(total=101), 1, 1, times, losses, fmt="").split("\r") if f]
    text = "\n".join(f"[trainer0|0]:{f}" + ("[trainer0|0]:" if k % 2 == 0 else "") for k, f in enumerate(frames))
    assert frames[0].startswith("  0%|") and frames[1].startswith("  1%|")  # bare, as in the PR's log
    assert detect(text.encode(), "x.log") is torchtune.SPEC
    crash = "\n[trainer0|0]:Traceback (most recent call last):\n[trainer0|0]:torch.OutOfMemoryError: CUDA OOM"
    its = [r for r in _feed_text(text) if isinstance(r, Iteration)]
    assert [(i.iter, i.loss) for i in its] == [(1, 2.7997918128967285), (2, 2.764298677444458), (3, 2.7012)]
    # the first step's time is the first update's own (1 / the shown rate); the
    # bare frames start the clock, so the next ones come from the EMA as well
    assert [i.time_ms for i in its] == [pytest.approx(s * 1000, rel=0.01) for s in times]
    st = _stats(_feed_text(text + crash))
    assert (st.iter, st.status) == (3, "failed")  # the tag does not hide the crash


_SAMPLES = {"console": _console_run(), "disk": DISK_LOG}


@pytest.mark.parametrize("prefix", ["[1,0]<stdout>:", "3: [default3]:", "[rank0]:", "0: ", "[trainer0|0]:"])
@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_launcher_prefix_changes_nothing(name: str, prefix: str) -> None:
    """mpirun --tag-output, srun --label (alone or before torchrun's tag), torchrun's tee,
    TorchX's "[role|replica]:" (the multi-node log in meta-pytorch/torchtune PR 2620)."""
    text = _SAMPLES[name]
    tagged = "\n".join(prefix + line if line else line for line in text.split("\n"))
    assert detect(tagged.encode(), "x.log") is torchtune.SPEC
    bare, got = _stats(_feed_text(text)), _stats(_feed_text(tagged))
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


def test_knowledge_distillation_line() -> None:
    """recipes/knowledge_distillation_single_device.py logs loss, class_loss, kd_loss, then lr."""
    text = "Step 1 | loss:1.5 class_loss:1.25 kd_loss:1.75 lr:3e-04 tokens_per_second_per_gpu:900.5 \n"
    assert detect(text.encode(), "log_1.txt") is torchtune.SPEC
    its = [r for r in _feed_text(text) if isinstance(r, Iteration)]
    assert [(i.iter, i.loss, i.lr, i.tokens_per_sec) for i in its] == [(1, 1.5, 3e-04, 900.5)]


@pytest.mark.parametrize(
    "text",
    [
        "step 10 loss 2.5\nstep 20 loss 2.4\n",
        "Epoch 1:  10%|#         | 5/50 [00:05<00:45,  1.00it/s, loss=2.3]\n",  # Lightning's bar
        "Step 1 | train/loss:2.3\n",  # another tool's "Step" line
    ],
)
def test_sniff_refuses_other_text(text: str) -> None:
    assert not torchtune.sniff(text, "x.log")


def test_is_registered_before_the_fallbacks() -> None:
    assert parsers.PARSERS.index(torchtune.SPEC) < parsers.PARSERS.index(parsers.FALLBACKS[0])
    assert parsers.PARSERS.index(torchtune.SPEC) < parsers.PARSERS.index(parsers.by_format("hf_trainer_stdout"))
    assert detect_head(DISK_LOG.encode(), "log_1.txt") is torchtune.SPEC


def test_no_corpus_file_is_taken(corpus: Path) -> None:
    for path in sorted(p for p in corpus.rglob("*") if p.is_file() and p.suffix != ".md"):
        head = path.read_bytes()[: parsers.SNIFF_BYTES]
        if b"\0" in head:
            continue
        assert not torchtune.sniff(head.decode("utf-8", "replace"), path.name), path
