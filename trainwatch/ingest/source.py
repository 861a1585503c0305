"""One log file: its format, its tail state and its run's aggregator.

Both ``trainwatch snapshot`` (one ``refresh``) and the live watcher (a
``refresh`` per change) read files through ``LogSource``, so they cannot
disagree. Files are opened read-only and never written.

Line logs are tailed: only bytes past the last offset are read, and a last
line without its newline waits for it. Record logs (TensorBoard event files)
are tailed the same way; their parser keeps a cut record until the rest comes. If the file shrinks or is replaced
(copytruncate, rotation, re-creation) the offset restarts at 0 but the run's
state is kept: iterations that go back start a new segment, so nothing is
lost and nothing is counted twice. Document logs are re-read on each change
by a ``DocumentReader`` (``ingest.documents``).
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import stat as stat_module
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, NamedTuple

from trainwatch import parsers
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.options import RunOptions
from trainwatch.core.records import BulkRecord
from trainwatch.ingest.documents import DocumentReader
from trainwatch.ingest.wandb_folder import WandbFolder
from trainwatch.parsers import filekind, jsonl_metrics
from trainwatch.parsers.base import BulkLineParser, LineParser, ParserSpec, RecordParser

#: Read at most this much per system call while catching up on a big log.
#: A chunk's lines and records are alive together, so this bounds the peak
#: memory of a first read (8 runs × 1M iterations: 200 MiB at 4 MB, 135 MiB
#: here), at no measurable cost in speed.
CHUNK = 256 << 10
#: Bytes before the read offset checked on each read (``LogSource._same_tail``).
TAIL = 64
#: Metadata sidecars are small; a huge file by that name is not one.
SIDECAR_MAX = 1 << 20
#: The first bytes of a line log kept (``LogSource.prints``): a rotated copy starts with them.
HEAD = 4096


class SourceError(Exception):
    """A file could not be read; the message is one line for the user."""


class Print(NamedTuple):
    """Bytes that identify what was read of a line log: its first ``HEAD``
    bytes, and the last ``TAIL`` bytes read, which end at ``offset``."""

    head: bytes
    offset: int
    tail: bytes

    def seen_in(self, read: Callable[[int, int], bytes], size: int) -> bool | None:
        """Does a file of ``size`` bytes (``read(pos, n)``) hold these bytes where
        they were? ``None``: it matches so far, but is still shorter than ``offset``."""
        start = read(0, len(self.head))
        if not self.head.startswith(start):
            return False
        if size < self.offset:
            return None
        # (the whole head was read: it ends at or before ``offset``, within the file)
        return read(self.offset - len(self.tail), len(self.tail)) == self.tail


class LogSource:
    """Tail state and aggregate of one log file."""

    def __init__(self, path: Path, options: RunOptions | None = None) -> None:
        self.path = path
        self.options = options or RunOptions()
        self.spec: ParserSpec | None = None
        self.agg = self._new_aggregator()
        self.ready = False  # at least one good parse
        self.problem: str | None = None  # why the last refresh could not use the file
        self._offset = 0
        self._partial = b""
        self._tail = b""  # the last bytes read, to recognise the same file
        # The first HEAD bytes of a line log since it last started at 0 (``_head`` is the sniffing buffer).
        self._first = b""
        self._before: Print | None = None  # ``prints()`` before it last started at 0
        self._identity: Hashable = None
        self._head: bytes | None = b""  # bytes fed before the format is known (None: gave up sniffing)
        self._line_parser: LineParser | None = None
        # Its ``feed_text``, if it reads many lines at once (looked up once:
        # an isinstance of a Protocol costs ~20 µs, as much as a short append).
        self._feed_text: Callable[[str], Sequence[BulkRecord]] | None = None
        self._record_parser: RecordParser | None = None  # a record log's (binary, append-only)
        self._document = DocumentReader()
        # A W&B run's console: its config, summary and metadata add facts, whatever the format.
        self._folder = WandbFolder.of(path)

    @property
    def format(self) -> str | None:
        return self.spec.format if self.spec else None

    @property
    def being_written(self) -> bool:
        """A document caught mid-rewrite that has never parsed: worth reading again shortly."""
        return not self.ready and self._document.incomplete

    def refresh(self) -> bool:
        """Read what changed; ``True`` if the run's state changed.

        Raises ``SourceError`` if the file cannot be read at all.
        """
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self.problem = "deleted"
            return False
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if not stat_module.S_ISREG(stat.st_mode):  # (the stat just made: no second system call)
            raise SourceError(f"{self.path} is not a regular file")
        try:
            with open(self.path, "rb") as handle, _gc_paused():
                if self.spec is None and not self._detect(handle):
                    return False
                assert self.spec is not None
                changed = self._read_folder()
                if self.spec.kind == "document":
                    changed |= self._refresh_document(handle, (stat.st_size, stat.st_mtime_ns), stat.st_size)
                else:
                    changed |= self._refresh_lines(handle, stat)
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if changed:
            self.agg.observe(datetime.fromtimestamp(stat.st_mtime))
        return changed

    def prints(self) -> list[Print]:
        """What a copy of this line log holds (logrotate's ``copytruncate``):
        as read now, and as read before it last started over at 0 (the copy
        may be seen before or after the truncation)."""
        now = Print(self._first, self._offset, self._tail) if self._first else None
        return [p for p in (now, self._before) if p is not None]

    @property
    def offset(self) -> int:
        """Bytes of a line log consumed so far: where its next bytes start."""
        return self._offset

    def feed_bytes(self, data: bytes, identity: Hashable, offset: int, mtime: float | None = None) -> bool:
        """Bytes ``[offset, offset + len(data))`` of a line log read elsewhere
        (a remote tail); ``True`` if the run's state changed.

        The rules of a local refresh: a new ``identity`` (the file was
        replaced) or an ``offset`` before the last one (truncated) restarts
        reading at 0 and keeps the run's state. Until the format is known the
        bytes are kept to sniff, as a local refresh reads the head again.
        """
        if identity != self._identity or offset < self._offset:
            self._restart()
            self._identity, self._head = identity, b""
        if offset != self._offset:
            raise SourceError(f"cannot read {self.path}: bytes {self._offset}-{offset} are missing")
        self._offset += len(data)
        with _gc_paused():
            if self.spec is None:
                if self._head is None:
                    return False  # not a log we know, as far as its head said
                head, self._head = self._head + data, b""
                if not self._detect(io.BytesIO(head)):
                    self._head = head if len(head) < parsers.SNIFF_BYTES_MORE else None
                    return False
                assert self.spec is not None
                if self.spec.kind == "document":
                    self.problem = "a document log read as a stream (only *.json files are read whole)"
                    self.spec, self._head = None, None
                    return False
                data = head
            changed = self._read_folder()
            changed |= self._feed_records(data) if self._record_parser is not None else self._feed_lines(data)
        self.ready = True
        if changed and mtime is not None:
            self.agg.observe(datetime.fromtimestamp(mtime))
        return changed

    def replace_document(self, data: bytes, stamp: Hashable, mtime: float | None = None) -> bool:
        """The whole text of a log read elsewhere, sent again whenever ``stamp``
        (size, time, inode) changes; ``True`` if the run's state changed.

        A document is parsed as a local one; a line log sent whole is read on
        from where its previous copy ended.
        """
        with _gc_paused():
            handle = io.BytesIO(data)
            if self.spec is None and not self._detect(handle):
                return False
            assert self.spec is not None
            if self.spec.kind != "document":
                start = self._offset if len(data) >= self._offset else 0
                return self.feed_bytes(data[start:], self._identity, start, mtime)
            changed = self._refresh_document(handle, stamp, len(data))
        if changed and mtime is not None:
            self.agg.observe(datetime.fromtimestamp(mtime))
        return changed

    def flush(self) -> bool:
        """No more input is due now (end of a snapshot, or the log went quiet):
        take the records a line or record parser still holds back. ``True`` if any."""
        flush = getattr(self._record_parser or self._line_parser, "flush", None)
        if flush is None:
            return False
        records = flush()
        self.agg.add_all(records)
        return bool(records)

    # --------------------------------------------------------------- internals

    def _new_aggregator(self) -> RunAggregator:
        o = self.options
        return RunAggregator(
            target_override=o.target,
            tokens_per_iter_override=o.tokens_per_iter,
            params_override=o.params,
            gpu_override=o.gpu,
        )

    def _detect(self, handle: object) -> bool:
        head = handle.read(parsers.SNIFF_BYTES)  # type: ignore[attr-defined]
        # A binary format first: the NUL check below turns binary files away.
        self.spec = parsers.detect_binary(head, self.path.name)
        if self.spec is not None:
            handle.seek(0)  # type: ignore[attr-defined]
            assert self.spec.new_record_parser is not None
            self._record_parser = self.spec.new_record_parser()
            self.problem = None
            return True
        if head[:1] == b"\0":  # a hole: copytruncated under a writer without O_APPEND
            head = head.lstrip(b"\0")
        if b"\0" in head[:1024]:
            handle.seek(0)  # type: ignore[attr-defined]
            self.problem = filekind.describe(head, self.path.name) or "binary file"
            return False
        jsonl = jsonl_metrics.make_spec(dict(self.options.jsonl_keys)) if self.options.jsonl_keys else None
        self.spec = parsers.detect(head, self.path.name, replacing=jsonl)
        if self.spec is None and len(head) == parsers.SNIFF_BYTES:
            head += handle.read(parsers.SNIFF_BYTES_MORE - len(head))  # type: ignore[attr-defined]
            self.spec = parsers.detect(head, self.path.name, lines_only=True, replacing=jsonl)
        tail = _tail_window(handle, len(head)) if self.spec is None else b""
        if self.spec is None and tail:
            # Past a long preamble (compile warnings, dataset samples, install
            # bars) the metric lines may start only beyond the head: look at
            # the newest lines too.
            self.spec = parsers.detect(tail, self.path.name, lines_only=True, replacing=jsonl)
        if self.spec is None:  # no specific format, on all the head we read: a generic one?
            self.spec = parsers.detect_fallback(head, self.path.name) or (
                parsers.detect_fallback(tail, self.path.name) if tail else None
            )
        handle.seek(0)  # type: ignore[attr-defined]
        if self.spec is None:
            # Say what it is where we can tell (a Git LFS pointer is text, for one).
            kind = filekind.describe(head, self.path.name)
            self.problem = kind or ("unrecognised format" if head.strip() else "empty")
            return False
        if self.spec.kind == "lines":
            self._line_parser = parser = self._make_line_parser(self.spec)
            self._feed_text = parser.feed_text if isinstance(parser, BulkLineParser) else None
        self.problem = None
        return True

    def _make_line_parser(self, spec: ParserSpec) -> LineParser:
        """The spec's line parser, given its sidecar's text if one is beside the log."""
        if spec.sidecar_names is not None and spec.new_line_parser_with_sidecar is not None:
            for name in spec.sidecar_names(self.path.name):
                text = self._sidecar_text(name)
                if text is not None:
                    return spec.new_line_parser_with_sidecar(text)
        assert spec.new_line_parser is not None
        return spec.new_line_parser()

    def _sidecar_text(self, name: str) -> str | None:
        """The text of the metadata file ``name`` beside the log, if there is a readable one."""
        try:
            # Without blocking (a FIFO by that name must not hang the reader), then
            # checked on the open descriptor: only a regular file is read.
            fd = os.open(self.path.with_name(name), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with open(fd, "rb", closefd=True) as handle:
                if not stat_module.S_ISREG(os.fstat(fd).st_mode):
                    return None
                data = handle.read(SIDECAR_MAX + 1)
        except OSError:
            return None  # none, or unreadable: the log is parsed without it
        return data.decode("utf-8", errors="replace") if len(data) <= SIDECAR_MAX else None

    def _read_folder(self) -> bool:
        """Take in what the log's W&B run folder says (before the log's own records)."""
        return self._folder is not None and self._folder.apply(self.agg, self._sidecar_text)

    def _refresh_document(self, handle: BinaryIO, stamp: Hashable, size: int) -> bool:
        assert self.spec is not None
        agg = self._document.read(self.spec, handle, stamp, size, self._new_aggregator)
        if agg is None:
            if self._document.incomplete:  # mid-write: keep the last good parse
                self.problem = None if self.ready else "incomplete document (being written?)"
            return False
        agg.target_override = self.options.target  # the watcher may have changed it since the base was made
        self.agg = agg
        self.ready, self.problem = True, None
        return True

    def _refresh_lines(self, handle: object, stat: os.stat_result) -> bool:
        """Read what a line or record log appended since the last read."""
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset or not self._same_tail(handle):
            # Replaced or truncated: read the new content from its start.
            if self._first:
                self._before = Print(self._first, self._offset, self._tail)
            self._restart()
            self._identity, self._tail = identity, b""
        if stat.st_size == self._offset:
            return False
        handle.seek(self._offset)  # type: ignore[attr-defined]
        feed = self._feed_records if self._record_parser is not None else self._feed_lines
        changed = False
        while chunk := handle.read(CHUNK):  # type: ignore[attr-defined]
            if self._offset < HEAD:  # (read in order from 0: the head so far is bytes [0, offset))
                self._first = self._first[: self._offset] + chunk[: HEAD - self._offset]
            self._offset += len(chunk)
            self._tail = (self._tail + chunk[-TAIL:])[-TAIL:]
            changed |= feed(chunk)
        self.ready = True
        return changed

    def _restart(self) -> None:
        """Read the stream from 0 again (the file was replaced or truncated); the run's state stays."""
        self._offset, self._partial = 0, b""
        if self._record_parser is not None and self.spec is not None and self.spec.new_record_parser is not None:
            # A new file: its frames start at 0, and its first step is not the old file's.
            self._record_parser = self.spec.new_record_parser()

    def _feed_records(self, chunk: bytes) -> bool:
        """Hand the bytes of a record log to its parser (it keeps a cut record)."""
        assert self._record_parser is not None
        records = self._record_parser.feed(chunk)
        if records:
            self.agg.add_all(records)
        return bool(records)

    def _same_tail(self, handle: object) -> bool:
        """Do the bytes just before the read offset still hold what was read there?

        Neither size nor inode tells a log that grew from one that was
        truncated and has since grown past the old offset (copytruncate, or
        deleted and re-created on a reused inode): its last bytes read do.
        """
        if not self._tail or self._offset < len(self._tail):
            return True
        handle.seek(self._offset - len(self._tail))  # type: ignore[attr-defined]
        return bool(handle.read(len(self._tail)) == self._tail)  # type: ignore[attr-defined]

    def _feed_lines(self, chunk: bytes) -> bool:
        """Hand the complete lines of ``chunk`` (after the held-back partial line) to the parser."""
        assert self._line_parser is not None
        if not self._partial and chunk[:1] == b"\0":
            # A copytruncated log whose writer lacks O_APPEND goes on at its old
            # offset: the hole before reads as NULs, glued to the next line.
            chunk = chunk.lstrip(b"\0")
        data = self._partial + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return False
        self._partial = data[cut + 1 :]
        records: Sequence[BulkRecord]
        if self._feed_text is not None:
            # The whole lines as one text: runs of plain iteration lines are
            # parsed in C and come back as columns (a nanoGPT log loads 3-4x faster).
            text = data[: cut + 1].decode("utf-8", "replace")
            if "\r" in text:
                text = text.replace("\r\n", "\n")  # a line's last \r, as removesuffix below
            records = self._feed_text(text)
        else:
            text = data[:cut].decode("utf-8", "replace")
            lines = text.split("\n")
            if "\r" in text:
                lines = [line.removesuffix("\r") for line in lines]
            parsed: list[BulkRecord] = []
            feed = self._line_parser.feed
            for line in lines:
                parsed += feed(line)
            records = parsed
        if records:
            self.agg.add_all(records)  # runs of iterations take the aggregator's bulk path
        return bool(records)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a file is parsed.

    A cold load makes millions of short-lived objects (JSON values, records)
    that hold no cycles; the collector would walk them over and over, which
    costs up to a third of a big load. Reference counting frees them as usual.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _tail_window(handle: object, read: int) -> bytes:
    """The last ``SNIFF_BYTES_MORE`` bytes of ``handle`` not among its first
    ``read``, from a line start; empty when there are none."""
    size = handle.seek(0, os.SEEK_END)  # type: ignore[attr-defined]
    if size <= read:
        return b""
    start = max(read, size - parsers.SNIFF_BYTES_MORE)
    handle.seek(start)  # type: ignore[attr-defined]
    window = handle.read(size - start)  # type: ignore[attr-defined]
    newline = window.find(b"\n")
    return b"" if newline < 0 else window[newline + 1 :]
