"""TFRecord framing, read incrementally: the container of TensorBoard event files.

A TFRecord stream is a run of frames, each::

    u64 length (little-endian) | u32 masked CRC32C of those 8 bytes | data | u32 masked CRC32C of data

where a *masked* CRC is ``rotr(crc, 15) + 0xA282EAD8`` (mod 2**32), as
TensorFlow's ``record_writer`` and TensorBoard's own writer compute it.

``RecordReader`` is fed the bytes appended to a file since the last call and
returns the payloads of the frames that are now whole; a frame cut at the end
waits for the rest, so nothing is read twice and nothing is lost. A frame
whose data CRC is wrong is skipped (its length is trusted: its own CRC held),
and a frame whose *length* CRC is wrong sends the reader looking for the next
valid header (``_resync``). CRCs are checked on every frame: with the
``google-crc32c`` C extension a check costs ~0.1 µs, far less than decoding
the event it guards.

This module imports ``google_crc32c`` at load time; ``trainwatch.parsers.tfevents``
imports it only when it meets an event file.
"""

from __future__ import annotations

import logging
import struct

import google_crc32c

#: Bytes before a frame's data: the length and its CRC.
HEADER = 12
#: Bytes after it: the data's CRC.
FOOTER = 4
_MASK_DELTA = 0xA282EAD8
#: A length no event writer produces (TensorBoard's largest records are graph
#: defs of a few MB). A "valid" header claiming more is read as corruption,
#: not waited for: waiting would hold every later byte back for ever.
MAX_RECORD = 1 << 28
#: Headers of valid frames seen, kept to skip their CRC check the next time
#: (an event file has few distinct record lengths); bounded for odd files.
_MAX_KNOWN_HEADERS = 4096
#: While resynchronising, a candidate header is one whose length is below
#: 2**24: its bytes 3..7 are zero, which ``bytes.find`` spots at C speed.
_ZEROS = b"\0" * 5
_ZEROS_AT = 3
#: Warnings logged per reader and kind at most: a garbage file must not flood the log.
_MAX_WARNINGS = 5

_crc32c = google_crc32c.value
_u64_u32 = struct.Struct("<QI")
_u32 = struct.Struct("<I")
log = logging.getLogger("trainwatch.parsers")


def masked_crc(data: bytes) -> int:
    """TensorFlow's masked CRC32C of ``data``."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def encode(data: bytes) -> bytes:
    """One frame holding ``data`` (for writers of test and benchmark files)."""
    length = struct.pack("<Q", len(data))
    return length + _u32.pack(masked_crc(length)) + data + _u32.pack(masked_crc(data))


class RecordReader:
    """Frames of an append-only TFRecord stream, fed in arbitrary pieces."""

    def __init__(self) -> None:
        self._buffer = b""  # bytes after the last whole frame: a frame still being written
        self._known: dict[bytes, int] = {}  # 12-byte header -> length, CRC already checked
        self._lost = False  # after a bad length CRC, until a valid header is found
        #: Frames skipped for a bad data CRC; headers with a bad length CRC, and
        #: the bytes skipped after them to the next valid header.
        self.bad_records = 0
        self.bad_headers = 0
        self.skipped_bytes = 0

    @property
    def pending(self) -> int:
        """Bytes held back: the start of a frame not yet whole."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The payloads of the frames completed by ``data``, in file order."""
        buf = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        pos = 0
        while True:
            if self._lost:
                pos = self._resync(buf, pos)
                if self._lost:
                    break
            pos = self._frames(buf, pos, out)
            if not self._lost:
                break
        self._buffer = buf[pos:]
        return out

    def _frames(self, buf: bytes, pos: int, out: list[bytes]) -> int:
        """Append the payloads of the whole frames from ``pos`` on; where it stopped.

        Stops at a frame not yet whole, or just after the start of a header
        whose CRC fails (``_lost`` is then set).
        """
        end = len(buf)
        known = self._known
        crc = _crc32c
        footer = _u32.unpack_from
        append = out.append
        while pos + HEADER <= end:
            length = known.get(buf[pos : pos + HEADER])
            if length is None:
                length = self._check_header(buf[pos : pos + HEADER])
                if length is None:
                    # The length cannot be trusted, so neither can the next
                    # frame's position: look for a valid header from here on.
                    self._lost = True
                    self.bad_headers += 1
                    if self.bad_headers <= _MAX_WARNINGS:
                        log.warning("tfevents: a frame with a bad length CRC; looking for the next valid one")
                    self.skipped_bytes += 1
                    return pos + 1
            stop = pos + HEADER + length
            if stop + FOOTER > end:
                break  # the rest of this frame is not written yet
            record = buf[pos + HEADER : stop]
            value = crc(record)
            if (((value >> 15) | (value << 17)) + _MASK_DELTA) & 0xFFFFFFFF == footer(buf, stop)[0]:
                append(record)
            else:
                self.bad_records += 1
                if self.bad_records <= _MAX_WARNINGS:
                    log.warning("tfevents: a record with a bad data CRC was skipped")
            pos = stop + FOOTER
        return pos

    def _check_header(self, header: bytes) -> int | None:
        """The length a 12-byte header gives, or ``None`` if its CRC (or size) is wrong."""
        length, stored = _u64_u32.unpack(header)
        if masked_crc(header[:8]) != stored or length > MAX_RECORD:
            return None
        if len(self._known) >= _MAX_KNOWN_HEADERS:
            self._known.clear()
        self._known[header] = length
        return length

    def _resync(self, buf: bytes, pos: int) -> int:
        """Where the next valid header in ``buf`` starts at or after ``pos``.

        A header is taken as valid when its length CRC holds (a chance of
        2**-32 for garbage) and its length is below 2**24 bytes: frames of
        16 MiB and more are not found this way (no scalar event is near that
        size). If none is found, the last ``HEADER - 1`` bytes are kept, as a
        header may start there, and the reader stays lost for the next feed.
        """
        end = len(buf)
        hit = buf.find(_ZEROS, pos + _ZEROS_AT)
        while hit >= 0:
            start = hit - _ZEROS_AT
            if start + HEADER > end:
                break  # a candidate not whole yet: decide on the next feed
            if self._check_header(buf[start : start + HEADER]) is not None:
                self._lost = False
                self.skipped_bytes += start - pos
                return start
            hit = buf.find(_ZEROS, hit + 1)
        keep = max(pos, end - (HEADER - 1)) if hit < 0 else hit - _ZEROS_AT
        self.skipped_bytes += keep - pos
        return keep
