"""filekind: a file that is no log says what it looks like."""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from trainwatch.core.names import Names
from trainwatch.ingest.publish import build
from trainwatch.ingest.source import LogSource
from trainwatch.parsers import filekind

LFS = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146" + b"0" * 56 + b"\nsize 23810\n"


#: torch.save before 1.6: pickled magic number 0x1950a86a20f9469cfc6c, then the protocol version.
TORCH_LEGACY = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03."


def _safetensors() -> bytes:
    header = json.dumps(
        {"__metadata__": {"format": "pt"}, "w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}
    )
    return struct.pack("<Q", len(header)) + header.encode() + b"\x00" * 4


def _torch_zip() -> bytes:
    # torch.save since 1.6: a zip whose members sit under "<name>/" (data.pkl, data/0, version).
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ckpt/data.pkl", pickle.dumps({"step": 1}))
        archive.writestr("ckpt/data/0", b"\x00" * 8)
    return buffer.getvalue()


def _tfrecord() -> bytes:
    # TensorBoard's first record: length, masked CRC, then Event{wall_time, file_version}.
    event = b"\x09" + struct.pack("<d", 1.7e9) + b"\x1a\x0dbrain.Event:2"
    return struct.pack("<Q", len(event)) + b"\x00" * 4 + event + b"\x00" * 4


CASES = {
    "lfs": (LFS, "train.log", "a Git LFS pointer, not the log: run `git lfs pull`"),
    "tfevents": (_tfrecord(), "events.out.tfevents.1701752728.host.244.1", "a TensorBoard event file of a kind"),
    "safetensors": (_safetensors(), "model.safetensors", "a safetensors checkpoint (model weights), not a log"),
    "torch_zip": (_torch_zip(), "ckpt.pt", "a PyTorch checkpoint (zip), not a log"),
    "zip": (b"PK\x03\x04" + b"\x14\x00" * 20 + b"logs/train.log", "logs.zip", "a zip archive: unzip it first"),
    "pickle": (pickle.dumps({"model": [1, 2]}, protocol=4), "state.pkl", "a Python pickle"),
    "torch_legacy": (TORCH_LEGACY, "old.pt", "a PyTorch checkpoint (legacy"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "loss.png", "a PNG image, not a log"),
    "gzip": (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "train.log.1.gz", "gzip-compressed: decompress it first"),
    "tar": (b"train.log".ljust(257, b"\x00") + b"ustar\x0000", "logs.tar", "a tar archive"),
    "utf16": ("step 1 loss 2.0\n".encode("utf-16"), "train.log", "UTF-16 text"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_kinds(case: str) -> None:
    head, name, expected = CASES[case]
    described = filekind.describe(head, name)
    assert described is not None and described.startswith(expected)
    assert filekind.is_kind(described)


def test_logs_and_unknown_bytes_are_not_named() -> None:
    assert filekind.describe(b"iter 0: loss 10.9, time 100ms, mfu -100.00%\n", "train.log") is None
    assert filekind.describe(b'{"step": 1, "loss": 2.0}\n', "m.jsonl") is None
    assert filekind.describe(b"\x00\x01\x02" * 100, "model.log") is None  # binary, but of no kind we know
    assert filekind.describe(b"", "x.log") is None
    assert not filekind.is_kind("unrecognised format") and not filekind.is_kind(None)


def test_corpus_event_and_wandb_files(corpus: Path) -> None:
    # xxd | head -1: "H... .... .... brain.Event:2" and ":W&B"
    events = next((corpus / "tfevents").rglob("events.out.tfevents.*"))
    assert filekind.describe(events.read_bytes()[:16384], events.name) == filekind.describe(_tfrecord(), "x")
    wandb = next((corpus / "wandb_offline").rglob("*.wandb"))
    assert (filekind.describe(wandb.read_bytes()[:16384], wandb.name) or "").startswith("a W&B run file")


def test_the_tailer_reads_an_event_file_as_a_log(tmp_path: Path) -> None:
    # describe() still names TFRecords that are no event log; an event file is read (parsers.tfevents).
    head, name, _ = CASES["tfevents"]
    path = tmp_path / name
    path.write_bytes(head)
    source = LogSource(path)
    source.refresh()
    assert (source.format, source.problem) == ("tfevents", None)


@pytest.mark.parametrize("case", ["lfs", "safetensors", "gzip"])
def test_the_tailer_and_the_snapshot_say_it(tmp_path: Path, case: str) -> None:
    head, name, expected = CASES[case]
    path = tmp_path / name
    path.write_bytes(head)
    source = LogSource(path)
    assert not source.refresh()
    assert source.problem is not None and source.problem.startswith(expected)
    snapshot = build([source], Names(), now=datetime(2030, 1, 1))
    assert snapshot.unrecognised == ((str(path), source.problem),)


def test_snapshot_command_gives_the_reason_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(_safetensors())
    result = subprocess.run(
        [sys.executable, "-m", "trainwatch", "snapshot", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"trainwatch: no training runs found: {path}: a safetensors checkpoint (model weights), not a log\n"
    )
