"""tfevents: TensorBoard event files (TFRecord frames of ``Event`` protobufs).

Framing is tested on bytes written by hand here (``struct`` and the masked
CRC32C spelled out); events on files written by a real writer
(tensorboardX's ``SummaryWriter``, the fallback of HF's TensorBoardCallback)
or built from tensorboardX's own ``Event`` protos where a tag has characters
its writer would clean (``mfu(%)``, ``lm loss``); and the corpus on facts
read by hand.
"""

from __future__ import annotations

import json
import struct
from datetime import datetime
from functools import cache
from pathlib import Path

import google_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboardX import SummaryWriter
from tensorboardX.proto import event_pb2, summary_pb2

from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.core.stats import RunStats
from trainwatch.ingest.source import LogSource
from trainwatch.parsers import tfevents
from trainwatch.parsers.tfrecord import RecordReader, encode, masked_crc

NOW = datetime(2030, 1, 1)
T0 = 1_700_000_000.0

# ------------------------------------------------------------------ framing


def _masked(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _frame(data: bytes) -> bytes:
    """u64 length, u32 masked CRC32C of it, data, u32 masked CRC32C of data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(length)) + data + struct.pack("<I", _masked(data))


PAYLOADS = [b"first", b"", b"x" * 300, bytes(range(256)), b"last one"]


def _read(pieces: list[bytes], reader: RecordReader | None = None) -> list[bytes]:
    reader = reader or RecordReader()
    return [record for piece in pieces for record in reader.feed(piece)]


def test_crc32c_is_castagnoli_and_masked_as_a_real_writer() -> None:
    assert google_crc32c.value(b"123456789") == 0xE3069283  # the CRC-32C check value
    # Every corpus file starts with a 72-byte version record: xxd shows
    # "4800 0000 0000 0000 fe92 489d" (the length CRC as written by torch).
    assert masked_crc(struct.pack("<Q", 72)) == 0x9D4892FE
    assert encode(b"abc") == _frame(b"abc")


def test_frames_whole() -> None:
    assert _read([b"".join(map(_frame, PAYLOADS))]) == PAYLOADS


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 700), max_size=12))
def test_frames_in_any_pieces_nothing_lost_or_read_twice(cuts: list[int]) -> None:
    data = b"".join(map(_frame, PAYLOADS))
    bounds = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    reader = RecordReader()
    assert _read(pieces, reader) == PAYLOADS
    assert reader.pending == 0


def test_a_frame_cut_in_half_waits_for_the_rest() -> None:
    one, two = _frame(b"one"), _frame(b"second record")
    reader = RecordReader()
    assert reader.feed(one + two[:9]) == [b"one"]  # half a header
    assert reader.feed(two[9:20]) == []  # header whole, data not
    assert reader.pending == 20
    assert reader.feed(two[20:]) == [b"second record"]
    assert reader.feed(b"") == []


def test_a_bad_data_crc_skips_that_record_only() -> None:
    bad = bytearray(_frame(b"corrupted"))
    bad[14] ^= 0x40  # a bit of the data: its CRC no longer holds
    reader = RecordReader()
    data = _frame(b"a") + bytes(bad) + _frame(b"b")
    assert _read([data[:20], data[20:31], data[31:]], reader) == [b"a", b"b"]
    assert reader.bad_records == 1


@pytest.mark.parametrize("piece", [1, 5, 13, 1000])
def test_a_bad_length_crc_resyncs_at_the_next_valid_header(piece: int) -> None:
    bad = bytearray(_frame(b"lost"))
    bad[0] = 0x7F  # the length: its CRC fails, and it cannot be trusted
    data = _frame(b"a") + bytes(bad) + b"\0\0\0\0\0\0\0garbage" + _frame(b"b") + _frame(b"c")
    reader = RecordReader()
    assert _read([data[i : i + piece] for i in range(0, len(data), piece)], reader) == [b"a", b"b", b"c"]
    assert reader.bad_headers == 1
    assert reader.skipped_bytes == len(bad) + 14


def test_garbage_then_frames() -> None:
    reader = RecordReader()
    assert _read([b"\xff" * 50, _frame(b"x")], reader) == [b"x"]
    assert reader.feed(b"\0" * 40) == []  # NULs: no valid header (a zero length has a non-zero CRC)


def test_a_huge_length_is_corruption_not_a_wait() -> None:
    length = struct.pack("<Q", 1 << 40)
    fake = length + struct.pack("<I", _masked(length))  # a valid CRC of an absurd length
    assert _read([_frame(b"a") + fake + _frame(b"b")]) == [b"a", b"b"]


# ------------------------------------------------- events: a real writer


def _parse(data: bytes, piece: int | None = None, flush: bool = True) -> list[Record]:
    parser = tfevents.TfeventsParser()
    piece = piece or len(data) or 1
    records = [r for i in range(0, len(data), piece) for r in parser.feed(data[i : i + piece])]
    return records + list(parser.flush()) if flush else records


def _of(records: list[Record], kind: type) -> list:  # type: ignore[type-arg]
    return [r for r in records if isinstance(r, kind)]


def _info(records: list[Record]) -> dict[str, object]:
    merged: dict[str, object] = {}
    for record in records:
        if isinstance(record, RunInfo):
            merged.update({k: v for k in RunInfo.__slots__ if (v := getattr(record, k)) is not None})
    return merged


def _stats(records: list[Record] | tuple[Record, ...]) -> RunStats:
    agg = RunAggregator()
    agg.add_all(records)
    return agg.stats(now=NOW)


HF_ARGS = {
    "output_dir": "out",
    "max_steps": 55,
    "logging_strategy": "steps",
    "logging_steps": 10,
    "eval_strategy": "steps",
    "eval_steps": 20,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 2,
    "bf16": True,
    "run_name": "my-sft",
}
HF_MODEL = {
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "hidden_size": 2048,
}


def _hf_run(folder: Path, stop_at: int = 55, summary: bool = True) -> Path:
    """What HF's TensorBoardCallback writes: the two texts, then on_log's
    ``rewrite_logs`` keys per logging step (10 s a step), evals with
    ``train/epoch``, and the end-of-train summary at global_step 55."""
    writer = SummaryWriter(str(folder))
    writer.add_text("args", json.dumps(HF_ARGS, indent=2))
    writer.add_text("model_config", json.dumps(HF_MODEL, indent=2))
    for step in range(10, stop_at + 1, 10):
        wall = T0 + 10 * step
        logs = {"loss": 3.0 - step / 100, "grad_norm": 1.5, "learning_rate": 2e-4, "epoch": step / 100}
        for key, value in logs.items():
            writer.add_scalar(f"train/{key}", value, step, walltime=wall)
        if step % 20 == 0:
            for key, value in {"loss": 2.5 - step / 100, "runtime": 3.2, "epoch": step / 100}.items():
                prefix = "train" if key == "epoch" else "eval"
                writer.add_scalar(f"{prefix}/{key}", value, step, walltime=wall + 3)
    if summary:
        for key, value in {"train_runtime": 560.5, "train_loss": 2.7, "epoch": 0.55}.items():
            writer.add_scalar(f"train/{key}", value, 55, walltime=T0 + 560)
    writer.close()
    (path,) = folder.glob("events.out.tfevents.*")
    return path


def test_hf_trainer_run(tmp_path: Path) -> None:
    records = _parse(_hf_run(tmp_path).read_bytes())
    its = _of(records, Iteration)
    assert [it.iter for it in its] == [10, 20, 30, 40, 50, 55]  # 55: the summary's global_step
    assert [it.loss for it in its[:5]] == [2.9, 2.8, 2.7, 2.6, 2.5]  # float32 read back as written
    assert its[0].time_ms is None and its[0].grad_norm == 1.5
    assert its[1].time_ms == pytest.approx(10_000)  # 100 s of wall time over 10 steps
    assert its[1].wall_time == datetime.fromtimestamp(T0 + 200)
    assert its[0].lr == pytest.approx(2e-4)
    evals = _of(records, Eval)
    assert [(e.iter, e.val_loss) for e in evals] == [(20, 2.3), (40, 2.1)]
    assert evals[0].metrics == {"eval/runtime": pytest.approx(3.2)}
    info = _info(records)
    assert info["target"] == 55 and info["log_interval"] == 10 and info["eval_interval"] == 20
    assert info["batch_size"] == 4 and info["grad_accum_per_gpu"] == 2 and info["dtype"] == "bf16"
    assert info["name"] == "my-sft" and info["architecture"] == "LlamaForCausalLM" and info["n_layer"] == 22
    assert info["runtime_s"] == 560.5 and info["eval_timing"] == "next"
    assert info["end_time"] == datetime.fromtimestamp(T0 + 560)  # the summary's wall time
    assert isinstance(info["start_time"], datetime)  # the version record's: when the writer opened
    assert _of(records, Outcome)[0].kind == "finished"
    stats = _stats(records)
    assert (stats.iter, stats.status, stats.loss, stats.val_loss) == (55, "finished", 2.5, 2.1)


@pytest.mark.parametrize("piece", [1, 7, 64, 333])
def test_fed_in_pieces_gives_the_same_records(tmp_path: Path, piece: int) -> None:
    data = _hf_run(tmp_path).read_bytes()
    assert _parse(data, piece) == _parse(data)


def test_a_step_is_handed_over_as_soon_as_it_is_complete(tmp_path: Path) -> None:
    """Live: once two steps showed which tags a step has, a step holding them
    all goes out without waiting for the next step (or a flush)."""
    records = _parse(_hf_run(tmp_path, stop_at=30, summary=False).read_bytes(), flush=False)
    assert [it.iter for it in _of(records, Iteration)] == [10, 20, 30]
    assert [e.iter for e in _of(records, Eval)] == [20]


def test_a_late_value_after_a_flush_sends_the_step_again_whole(tmp_path: Path) -> None:
    """The watcher flushes a log quiet for 2 s; a writer's buffered flush can
    stop mid-step. The rest of the step sends it out again, with every value:
    the aggregator replaces the entry (no restart, nothing counted twice)."""
    data = _hf_run(tmp_path, stop_at=20, summary=False).read_bytes()
    tag = b"train/learning_rate"
    cut = [i for i in range(len(data)) if data.startswith(tag, i)][1] - 20  # inside step 20's third value
    parser = tfevents.TfeventsParser()
    first = [*parser.feed(data[:cut]), *parser.flush()]
    rest = [*parser.feed(data[cut:]), *parser.flush()]
    assert [(it.iter, it.loss, it.lr) for it in _of(first, Iteration)] == [
        (10, 2.9, pytest.approx(2e-4)),
        (20, 2.8, None),
    ]
    again = _of(rest, Iteration)
    assert [(it.iter, it.loss, it.grad_norm, it.lr) for it in again] == [(20, 2.8, 1.5, pytest.approx(2e-4))]
    assert again[0].time_ms == _of(first, Iteration)[1].time_ms == pytest.approx(10_000)  # still from step 10
    stats = _stats(first + rest)
    assert (stats.iter, stats.logged_iters, stats.segments) == (20, 2, 1)
    assert [e.iter for e in _of(rest, Eval)] == [20]
    assert parser.feed(b"") == [] and parser.flush() == []  # each once


def test_a_header_only_file_is_a_run_with_nothing_yet() -> None:
    # torch's writer opens a file with one 72-byte record: 88 bytes in all.
    writer = b"tensorboard.summary.writer.event_file_writer"
    event = b"\x09" + struct.pack("<d", T0) + b"\x1a\x0dbrain.Event:2" + b"\x52\x2e\x0a\x2c" + writer
    data = _frame(event)
    assert len(data) == 88
    assert tfevents.sniff_bytes(data, "events.out.tfevents.1.host.1.0")
    opened = [RunInfo(start_time=datetime.fromtimestamp(T0))]  # when the writer opened the file
    assert _parse(data) == opened
    assert _parse(data, piece=5) == opened


def test_sniff() -> None:
    assert tfevents.sniff_bytes(b"", "events.out.tfevents.1701752728.51bfe24db250.244.1")
    assert not tfevents.sniff_bytes(b"step 1 loss 2.0\n" * 10, "events.out.tfevents.1")
    assert not tfevents.sniff_bytes(b"\x48" + b"\0" * 100, "train.log")
    assert tfevents.is_event_file_name("events.out.tfevents.1777795372.b008e969124e.2204313.0")
    assert not tfevents.is_event_file_name("events.log")


# ------------------------------------- events: tags other writers write


def _event(step: int, wall: float, tag: str, value: float) -> bytes:
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
    return _frame(event_pb2.Event(step=step, wall_time=wall, summary=summary).SerializeToString())


def _text(tag: str, text: str) -> bytes:
    """What ``add_text(tag, text)`` writes: a string tensor under ``tag/text_summary``."""
    value = summary_pb2.Summary.Value(tag=f"{tag}/text_summary")
    value.metadata.plugin_data.plugin_name = "text"
    value.tensor.dtype = 7  # DT_STRING
    value.tensor.string_val.append(text.encode())
    return _frame(event_pb2.Event(wall_time=T0, summary=summary_pb2.Summary(value=[value])).SerializeToString())


def _steps(tags: dict[str, float], steps: range, seconds: float = 2.0) -> bytes:
    return b"".join(_event(s, T0 + s * seconds, tag, v * s) for s in steps for tag, v in tags.items())


def test_torchtitan_tags() -> None:
    tags = {
        "loss_metrics/global_avg_loss": 0.5,
        "loss_metrics/global_max_loss": 0.7,
        "grad_norm": 0.25,
        "n_tokens_seen": 4096,
        "throughput(tps)": 100,
        "mfu(%)": 0.125,
        "time_metrics/end_to_end(s)": 1.75,
        "memory/max_reserved(GiB)": 2,
        "lr": 0.001,
    }
    records = _parse(_steps(tags, range(1, 4)) + _event(3, T0 + 7, "validation_metrics/loss", 1.5))
    its = _of(records, Iteration)
    assert [(it.iter, it.loss, it.grad_norm, it.tokens_seen, it.tokens_per_sec, it.mfu_pct) for it in its] == [
        (1, 0.5, 0.25, 4096, 100, 0.125),
        (2, 1.0, 0.5, 8192, 200, 0.25),
        (3, 1.5, 0.75, 12288, 300, 0.375),
    ]
    assert its[0].time_ms == 1750  # the first step: the writer's own end_to_end(s)
    assert its[1].time_ms == 2000  # later ones: wall time between steps
    assert _of(records, Eval) == [Eval(3, val_loss=1.5, wall_time=datetime.fromtimestamp(T0 + 7))]
    assert _info(records)["tokens_per_sec_scope"] == "gpu"


def test_megatron_tags_and_args() -> None:
    args = [_text(name, value) for name, value in {"train_iters": "500", "micro_batch_size": "2"}.items()]
    args += [_text("global_batch_size", "64"), _text("seq_length", "4096"), _text("data_path", "['x']")]
    steps = [
        _event(s, T0 + s, tag, value)
        for s in (10, 20)
        for tag, value in (("learning-rate", 3e-4), ("batch-size", 64), ("lm loss", s / 4), ("grad-norm", 1.0))
    ]
    samples = [_event(640, T0 + 10, "lm loss vs samples", 2.5)]  # step = consumed samples
    evals = [_event(20, T0 + 25, "lm loss validation", 4.5), _event(20, T0 + 25, "lm loss validation ppl", 90.0)]
    records = _parse(b"".join(args + steps[:4] + samples + steps[4:] + evals))
    assert [(it.iter, it.loss, it.lr) for it in _of(records, Iteration)] == [
        (10, 2.5, pytest.approx(3e-4)),
        (20, 5.0, pytest.approx(3e-4)),
    ]
    assert [(e.iter, e.val_loss, dict(e.metrics)) for e in _of(records, Eval)] == [
        (20, 4.5, {"lm loss validation ppl": 90.0})
    ]
    info = _info(records)
    assert (info["target"], info["batch_size"], info["grad_accum"], info["block_size"]) == (500, 2, 32, 4096)


def test_lightning_steps_are_zero_based() -> None:
    """Lightning logs the 0-based index of the step being taken (the first of
    ``log_every_n_steps=50`` is 49): iter is that step as written, as in
    lightning_csv (METRICS.md: never shifted)."""
    data = b"".join(
        [_event(0, T0, "hp_metric", -1)]
        + [_event(s, T0 + s, t, 2.0) for s in (49, 99) for t in ("train_loss_step", "epoch")]
        + [_event(99, T0 + 120, "val_loss", 1.5), _event(99, T0 + 120, "epoch", 0)]
    )
    records = _parse(data)
    assert [it.iter for it in _of(records, Iteration)] == [49, 99]
    assert [e.iter for e in _of(records, Eval)] == [99]


def test_nemo_tags() -> None:
    tags = {"reduced_train_loss": 0.5, "lr": 1e-4, "train_step_timing in s": 0.25, "global_step": 1, "epoch": 0}
    its = _of(_parse(_steps(tags, range(1, 4))), Iteration)
    assert [(it.iter, it.loss) for it in its] == [(1, 0.5), (2, 1.0), (3, 1.5)]  # Lightning's steps, as written
    assert its[0].time_ms == 250  # the first: NeMo's own step timing (0.25 s)
    assert its[1].time_ms == 2000


def test_a_loss_like_tag_is_the_loss_only_without_a_known_one() -> None:
    guessed = _parse(_steps({"Loss/train": 1.0, "Loss/val": 5.0, "accuracy": 0.5}, range(1, 3)))
    assert [it.loss for it in _of(guessed, Iteration)] == [1.0, 2.0]
    both = _parse(_steps({"Loss/train": 1.0, "train/loss": 3.0}, range(1, 3)))
    assert [it.loss for it in _of(both, Iteration)] == [3.0, 6.0]
    # Megatron's MoE aux loss comes before "lm loss" in a step: the known tag still wins.
    moe = _parse(_steps({"load_balancing_loss": 0.25, "lm loss": 2.0, "loss-scale": 4096}, range(1, 3)))
    assert [it.loss for it in _of(moe, Iteration)] == [2.0, 4.0]
    # Lightning logging on_epoch only: its epoch mean is all there is.
    epochs = _parse(_steps({"train_loss_epoch": 1.5, "epoch": 1}, range(99, 300, 100)))
    assert [(it.iter, it.loss) for it in _of(epochs, Iteration)] == [(99, 148.5), (199, 298.5), (299, 448.5)]


@pytest.mark.parametrize(
    ("strategy", "eval_steps", "expected"),
    [("steps", None, 10), ("steps", 200, 200), ("steps", 0.1, None), ("epoch", 200, None), ("no", None, None)],
)
def test_hf_eval_interval(strategy: str, eval_steps: float | None, expected: int | None) -> None:
    args = {"logging_steps": 10, "eval_strategy": strategy, "eval_steps": eval_steps}
    assert _info(_parse(_text("args", json.dumps(args)))).get("eval_interval") == expected


def test_restart_goes_back_without_a_negative_time() -> None:
    data = _steps({"train/loss": 1.0}, range(10, 40, 10)) + _steps({"train/loss": 1.0}, range(20, 40, 10), 5.0)
    its = _of(_parse(data), Iteration)
    assert [it.iter for it in its] == [10, 20, 30, 20, 30]
    assert its[3].time_ms is None and its[4].time_ms == 5000
    assert _stats(_parse(data)).segments == 2  # the first, and the one from the restart


def test_tensor_scalars_and_skipped_plugins() -> None:
    """TF2's ``tf.summary.scalar`` writes a float tensor (``float_val`` or raw
    ``tensor_content``); histograms and images are not scalars."""

    def tensor_event(step: int, fill: object) -> bytes:
        value = summary_pb2.Summary.Value(tag="loss")
        value.metadata.plugin_data.plugin_name = "scalars"
        value.tensor.dtype = 1  # DT_FLOAT
        fill(value.tensor)  # type: ignore[operator]
        return _frame(
            event_pb2.Event(
                step=step, wall_time=T0 + step, summary=summary_pb2.Summary(value=[value])
            ).SerializeToString()
        )

    histo = summary_pb2.Summary.Value(tag="weights")
    histo.metadata.plugin_data.plugin_name = "histograms"
    histo.tensor.dtype = 1
    histo.tensor.float_val.extend([1.0, 2.0, 3.0])
    data = (
        tensor_event(1, lambda t: t.float_val.append(2.5))
        + tensor_event(2, lambda t: setattr(t, "tensor_content", struct.pack("<f", 1.25)))
        + _frame(event_pb2.Event(step=2, summary=summary_pb2.Summary(value=[histo])).SerializeToString())
    )
    assert [(it.iter, it.loss) for it in _of(_parse(data), Iteration)] == [(1, 2.5), (2, 1.25)]


def test_bad_input_never_raises() -> None:
    not_an_event = _frame(b"\xff\xff\xff\xff")  # framed well, but no protobuf
    data = _event(1, T0, "loss", 1.0) + not_an_event + _event(2, T0 + 1, "loss", 2.0)
    assert [it.iter for it in _of(_parse(data), Iteration)] == [1, 2]
    assert _parse(b"\x00\x01garbage" * 100) == []


# ------------------------------------------------------------------ corpus

CORPUS_DIR = "tfevents"
QWENVL_RUN = "runs/Dec07_12-38-05_autodl-container-257040b67c-0bc917ee"
QWENVL = f"hf_qwenvl_lora_autodl_669steps_eval_plus_stalled_second_writer/{QWENVL_RUN}"


@cache
def _file_records(path: Path) -> tuple[Record, ...]:
    return tuple(_parse(path.read_bytes(), piece=256 << 10))


# Read by hand: frames walked with struct.unpack_from("<Q") and each payload
# decoded with tensorboardX.proto.event_pb2.Event (not this parser), e.g.
#   [(e.step, v.simple_value) for e in events for v in e.summary.value if v.tag == "train/loss"][-1]
# and json.loads of the args/text_summary string_val. Floats are the stored float32.
# file, iterations done, last loss, last val loss, target, log interval, status, logged iterations
CASES = [
    (
        "hf_tinyllama_qlora_colab_1000steps/runs/Dec05_05-05-28_51bfe24db250/events.out.tfevents.1701752728.51bfe24db250.244.1",
        1000,  # train/loss at steps 1..1000 (1000 points)
        2.0865,  # step 1000 train/loss 2.0864999294281006
        None,  # no eval/* tag
        1000,  # args "max_steps": 1000
        1,  # args "logging_steps": 1
        "finished",  # train/train_runtime 1672.61 at step 1000
        1000,
    ),
    (
        f"{QWENVL}/events.out.tfevents.1765082321.autodl-container-257040b67c-0bc917ee.1354.0",
        669,  # train/train_runtime at step 669 (the last train/loss is at 660)
        0.6712,  # step 660 train/loss 0.6711999773979187
        1.1776562,  # step 650 eval/loss 1.1776561737060547 (13 evals)
        None,  # args "max_steps": -1 (3 epochs)
        10,  # args "logging_steps": 10
        "finished",
        67,  # 66 train/loss points + the summary's step 669
    ),
    (
        f"{QWENVL}/events.out.tfevents.1765085442.autodl-container-257040b67c-0bc917ee.1354.1",
        10,  # the second writer logged once
        4.5651,  # train/loss 4.565100193023682 (grad_norm 0.0)
        None,
        None,
        10,
        "running",  # no summary; a snapshot with NOW far later would call it stalled
        1,
    ),
    (
        "torchtitan_vlm447m_pp2_tp2_500steps_same_run_as_titan_log/tb/20260503-0802/events.out.tfevents.1777795372.b008e969124e.2204313.0",
        500,  # loss_metrics/global_avg_loss at steps 1..500
        3.9097967,  # step 500: 3.909796714782715 (the console log prints 3.9098)
        None,
        None,  # torchtitan writes no text summaries
        None,
        "running",
        500,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0].split("/")[0][:40] + c[0][-2:] for c in CASES])
def test_corpus(corpus: Path, case: tuple) -> None:  # type: ignore[type-arg]
    name, iters, loss, val_loss, target, log_interval, status, logged = case
    records = _file_records(corpus / CORPUS_DIR / name)
    its = _of(list(records), Iteration)
    assert (its[-1].iter, len(its)) == (iters, logged)
    assert [it.loss for it in its if it.loss is not None][-1] == loss
    evals = _of(list(records), Eval)
    assert (evals[-1].val_loss if evals else None) == val_loss
    info = _info(list(records))
    assert (info.get("target"), info.get("log_interval")) == (target, log_interval)
    stats = _stats(records)
    assert stats.iter == iters
    assert stats.status in ((status,) if status == "finished" else ("running", "stalled"))


def test_corpus_details(corpus: Path) -> None:
    root = corpus / CORPUS_DIR
    tiny = _of(list(_file_records(root / CASES[0][0])), Iteration)
    assert tiny[0].loss == 3.0078  # step 1 train/loss 3.0078001022338867
    # step 2's first value at wall 1701752733.0528 minus step 1's at 1701752730.3568
    assert tiny[1].time_ms == pytest.approx(2696.07, abs=0.01)
    qwen = list(_file_records(root / CASES[1][0]))
    assert len(_of(qwen, Eval)) == 13 and _of(qwen, Eval)[0].iter == 50
    assert _info(qwen)["eval_interval"] == 50 and _info(qwen)["block_size"] == 2048  # "max_seq_length": 2048
    titan = _of(list(_file_records(root / CASES[3][0])), Iteration)
    assert titan[0].loss == 5.9548063  # step 1: 5.954806327819824 (console: 5.954806)
    last = titan[-1]
    # step 500: mfu(%) 0.2059844434261322, throughput(tps) 105.70560455322266, n_tokens_seen 2064000.0
    assert (last.mfu_pct, last.tokens_per_sec, last.tokens_seen) == (0.2059844434261322, 105.70560455322266, 2064000)


# ------------------------------------------------------- tailed, live


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def test_a_tailed_event_file_appended_in_pieces(tmp_path: Path) -> None:
    """A real file grows in pieces cut anywhere (inside a header, inside a
    record's data); each refresh reads only what is new: the run ends up as
    a cold read of the whole file, and a step shows up once it is complete."""
    data = _hf_run(tmp_path / "writer").read_bytes()
    path = tmp_path / "runs" / "events.out.tfevents.1700000000.host.1.0"
    path.parent.mkdir()
    path.write_bytes(b"")
    source = LogSource(path)
    source.refresh()
    assert source.format == "tfevents" and source.problem is None
    seen = []
    for start in range(0, len(data), 37):
        _append(path, data[start : start + 37])
        source.refresh()
        seen.append((start + 37, source.agg.stats(NOW).iter))
    source.flush()
    whole = LogSource(tmp_path / "writer" / next(p.name for p in (tmp_path / "writer").iterdir()))
    whole.refresh()
    whole.flush()
    live, cold = source.agg.stats(NOW), whole.agg.stats(NOW)
    assert (live.iter, live.logged_iters, live.loss, live.val_loss, live.status) == (55, 6, 2.5, 2.1, "finished")
    assert (cold.iter, cold.logged_iters, cold.loss, cold.val_loss, cold.status) == (55, 6, 2.5, 2.1, "finished")
    assert live.loss_series == cold.loss_series and live.time_series == cold.time_series
    # Step 40's train values are all in at the end of its learning rate's frame
    # (value and CRC after the tag): it shows from the first read past there,
    # though step 50 has not started (its epoch and the eval come first).
    tag = b"train/learning_rate"
    end_40 = [i for i in range(len(data)) if data.startswith(tag, i)][3] + len(tag) + 9
    assert [iters for read, iters in seen if read < end_40][-1] == 30
    assert next(iters for read, iters in seen if read >= end_40) == 40


def test_a_header_only_file_through_the_tailer(tmp_path: Path) -> None:
    writer = b"tensorboard.summary.writer.event_file_writer"
    path = tmp_path / "events.out.tfevents.1777795372.b008e969124e.2204313.0"
    path.write_bytes(_frame(b"\x09" + struct.pack("<d", T0) + b"\x1a\x0dbrain.Event:2\x52\x2e\x0a\x2c" + writer))
    source = LogSource(path)
    source.refresh()
    assert (source.format, source.ready, source.problem) == ("tfevents", True, None)
    assert source.agg.stats(NOW).iter is None
