"""What a file that is not a readable log looks like, from its first bytes.

A run folder holds more than logs: checkpoints, TFRecord files other than
event logs, plots, compressed rotations, and in a cloned repository Git LFS pointers
where the log should be. "binary file" or "unrecognised format" leaves the
user guessing; ``describe`` names the kind, in a short phrase that ends up
after the file's path ("model.safetensors: a safetensors checkpoint (model
weights), not a log"). An event file the ``tfevents`` parser could not take (a TFRecord of
another kind) is named as such. Pure: bytes and a name in, text out.
"""

from __future__ import annotations

import struct

#: (magic at offset 0, description), checked in order.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image, not a log"),
    (b"\xff\xd8\xff", "a JPEG image, not a log"),
    (b"GIF87a", "a GIF image, not a log"),
    (b"GIF89a", "a GIF image, not a log"),
    (b"%PDF-", "a PDF document, not a log"),
    (b"\x1f\x8b", "gzip-compressed: decompress it first (zcat, gunzip)"),
    (b"BZh", "bzip2-compressed: decompress it first (bzcat, bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it first (xzcat, unxz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first (zstdcat)"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (weights or data), not a log"),
    (b"GGUF", "a GGUF model file, not a log"),
    (b"\x93NUMPY", "a NumPy array file, not a log"),
    (b"PAR1", "a Parquet table, not a log"),
    (b"ARROW1", "an Arrow file, not a log"),
    (b"SQLite format 3\x00", "an SQLite database, not a log"),
    (b":W&B", "a W&B run file (binary): read the output.log in its files/ folder"),
    (b"\x7fELF", "an executable, not a log"),
    (b"\xff\xfe", "UTF-16 text, which trainwatch does not read: save it as UTF-8 (PowerShell's > writes UTF-16)"),
    (b"\xfe\xff", "UTF-16 text, which trainwatch does not read: save it as UTF-8"),
)
_LFS = b"version https://git-lfs.github.com/spec/"
_TORCH_LEGACY_MAGIC = b"\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled 0x1950a86a20f9469cfc6c


_LFS_POINTER = "a Git LFS pointer, not the log: run `git lfs pull`"
_TFEVENTS = "a TensorBoard event file of a kind trainwatch does not read"
_SAFETENSORS = "a safetensors checkpoint (model weights), not a log"
_TORCH_ZIP = "a PyTorch checkpoint (zip), not a log"
_ZIP = "a zip archive: unzip it first"
_TORCH_LEGACY = "a PyTorch checkpoint (legacy format), not a log"
_PICKLE = "a Python pickle (a checkpoint or saved state?), not a log"
_TAR = "a tar archive: unpack it first"
_WEBP = "a WebP image, not a log"
#: Every phrase ``describe`` may return.
KINDS = frozenset(
    {_LFS_POINTER, _TFEVENTS, _SAFETENSORS, _TORCH_ZIP, _ZIP, _TORCH_LEGACY, _PICKLE, _TAR, _WEBP}
    | {text for _, text in _MAGIC}
)


def is_kind(reason: str | None) -> bool:
    """Whether ``reason`` (a source's problem) names a kind of file that is no log."""
    return reason in KINDS


def describe(head: bytes, filename: str = "") -> str | None:
    """What the file starting with ``head`` is, when it is no log we could
    read (``None``: nothing recognisable; say "binary" or "unrecognised")."""
    if head.startswith(_LFS):
        return _LFS_POINTER
    if _is_tfrecord(head) or "tfevents" in filename:
        return _TFEVENTS
    if _is_safetensors(head):
        return _SAFETENSORS
    if head.startswith(b"PK\x03\x04"):
        if b"data.pkl" in head[:512] or b"/data/" in head[:512]:
            return _TORCH_ZIP
        return _ZIP
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        if _TORCH_LEGACY_MAGIC in head[:32]:
            return _TORCH_LEGACY
        return _PICKLE
    if len(head) > 262 and head[257:262] == b"ustar":
        return _TAR
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _WEBP
    return next((text for magic, text in _MAGIC if head.startswith(magic)), None)


def _is_tfrecord(head: bytes) -> bool:
    """A TFRecord (TensorBoard's event file): a little-endian u64 length, its
    CRC, then an ``Event`` whose first record is ``file_version: brain.Event:N``."""
    return len(head) >= 16 and b"brain.Event:" in head[12:64]


def _is_safetensors(head: bytes) -> bool:
    """safetensors: a little-endian u64 header size, then the JSON header."""
    if len(head) < 10 or head[8:9] != b"{":
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return 2 <= size < 100_000_000 and (b'"dtype"' in head[8:4096] or b'"__metadata__"' in head[8:4096])
