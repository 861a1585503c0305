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
from collections.abc import Callable, Hashable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from trainwatch import parsers
from trainwatch.core.aggregate import RunAggregator
from trainwatch.core.options import RunOptions
from trainwatch.core.records import BulkRecord
from trainwatch.ingest import labels
from trainwatch.ingest.documents import DocumentReader
from trainwatch.ingest.files import NotRegularFile, data_from, from_timestamp, open_regular, past_nuls, read_regular
from trainwatch.ingest.lines import TAIL, LineBuffer, Print
from trainwatch.ingest.wandb_folder import WandbFolder
from trainwatch.parsers import filekind, jsonl_metrics
from trainwatch.parsers.base import BulkLineParser, LineParser, ParserSpec, RecordParser

#: Read at most this much per system call while catching up on a big log.
#: A chunk's lines and records are alive together, so this bounds the peak
#: memory of a first read (8 runs × 1M iterations: 200 MiB at 4 MB, 135 MiB
#: here), at no measurable cost in speed.
CHUNK = 256 << 10
#: Metadata sidecars are small; a huge file by that name is not one.
SIDECAR_MAX = 1 << 20
#: The first bytes of a line log kept (``LogSource.prints``): a rotated copy starts with them.
HEAD = 4096


class SourceError(Exception):
    """A file could not be read; the message is one line for the user."""


class LogSource:
    """Tail state and aggregate of one log file."""

    def __init__(
        self,
        path: Path,
        options: RunOptions | None = None,
        clock: Callable[[], datetime] | None = None,
        budget: int | None = None,
    ) -> None:
        self.path = path
        self.options = options or RunOptions()
        #: Bytes of a line log read by one ``refresh`` at most (None: up to its size then).
        self.budget = budget
        self.spec: ParserSpec | None = None
        self.agg = self._new_aggregator()
        self.ready = False  # at least one good parse
        self.problem: str | None = None  # why the last refresh could not use the file
        #: The last ``refresh`` stopped at its ``budget``: more is there to read now.
        self.behind = False
        # The watcher's clock: a change seen once the first read is done
        # happened when it was seen (``_observe``). None: trust the file's time.
        self._clock = clock
        self._caught_up = False
        self._live = False  # a change was observed on ``_clock``
        self._offset = 0
        self._lines = LineBuffer()
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
        self._labels = labels.Labels()  # srun's --label before every line
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

        A line log is read up to its size when the refresh starts (a log that
        grows faster than it is read cannot hold a refresh for ever), and at
        most ``budget`` bytes of it: then ``behind`` says that more is there,
        for the caller to come back to once the other logs had their turn.

        Raises ``SourceError`` if the file cannot be read at all.
        """
        self.behind = False
        try:
            # Opened before anything else, without blocking: a FIFO or a device
            # put where the log was is refused whatever the path was a moment ago.
            handle = open_regular(self.path)
        except FileNotFoundError:
            self.problem = "deleted"
            return False
        except NotRegularFile:
            raise SourceError(f"{self.path} is not a regular file") from None
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        try:
            with handle, _gc_paused():
                stat = os.fstat(handle.fileno())
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
            self._observe(stat.st_mtime)
        if not self.behind:
            self._caught_up = True
        return changed

    def prints(self) -> list[Print]:
        """What a copy of this line log holds (logrotate's ``copytruncate``):
        as read now, and as read before it last started over at 0 (the copy
        may be seen before or after the truncation)."""
        now = Print(self._first, self._offset, self._tail) if self._first else None
        return [p for p in (now, self._before) if p is not None]

    @property
    def mid_write(self) -> bool:
        """Whether the last refresh met a document half written (its writer is at work)."""
        return self._document.incomplete

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
                # (leading NULs: a hole, as a copytruncated log starts with; see ingest.lines)
                head, self._head = (self._head + data).lstrip(b"\0"), b""
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
            if self._record_parser is not None:
                changed |= self._feed_records(data)
            else:  # (in CHUNKs, as a local file is read: what a long line holds back stays as small)
                changed |= any([self._feed_lines(data[at : at + CHUNK]) for at in range(0, len(data), CHUNK)])
        self.ready = True
        if changed:
            self._observe(mtime)
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
        if changed:
            self._observe(mtime)
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

    def _detect(self, handle: BinaryIO) -> bool:
        head = handle.read(parsers.SNIFF_BYTES)
        # A binary format first: the NUL check below turns binary files away.
        self.spec = parsers.detect_binary(head, self.path.name)
        if self.spec is not None:
            handle.seek(0)
            assert self.spec.new_record_parser is not None
            self._record_parser = self.spec.new_record_parser()
            self.problem = None
            return True
        if head[:1] == b"\0":
            # A hole: copytruncated under a writer without O_APPEND, the log
            # starts with as many NULs as it had bytes. Sniff what follows.
            handle.seek(past_nuls(handle, CHUNK))
            head = handle.read(parsers.SNIFF_BYTES)
        # NULs amid the first bytes: binary. NULs to the end of them: a hole
        # after a few lines, read past as the tailer does (ingest.lines).
        if b"\0" in head[:1024].rstrip(b"\0"):
            handle.seek(0)
            self.problem = filekind.describe(head, self.path.name) or "binary file"
            return False
        full = len(head) == parsers.SNIFF_BYTES
        head = self._unlabelled(head.replace(b"\0", b""))
        jsonl = jsonl_metrics.make_spec(dict(self.options.jsonl_keys)) if self.options.jsonl_keys else None
        self.spec = parsers.detect(head, self.path.name, replacing=jsonl)
        if self.spec is None and full:
            head += self._unlabelled(handle.read(parsers.SNIFF_BYTES_MORE - parsers.SNIFF_BYTES).replace(b"\0", b""))
            self.spec = parsers.detect(head, self.path.name, lines_only=True, replacing=jsonl)
        tail = self._unlabelled(_tail_window(handle, handle.tell()).replace(b"\0", b"")) if self.spec is None else b""
        if self.spec is None and tail:
            # Past a long preamble (compile warnings, dataset samples, install
            # bars) the metric lines may start only beyond the head: look at
            # the newest lines too.
            self.spec = parsers.detect(tail, self.path.name, lines_only=True, replacing=jsonl)
        if self.spec is None:  # no specific format, on all the head we read: a generic one?
            self.spec = parsers.detect_fallback(head, self.path.name) or (
                parsers.detect_fallback(tail, self.path.name) if tail else None
            )
        handle.seek(0)
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

    def _unlabelled(self, data: bytes) -> bytes:
        """``data`` without srun's labels once the log is seen to carry them (``ingest.labels``)."""
        return labels.unlabel_bytes(data) if self._labels.on or labels.labelled(data) else data

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
            return read_regular(self.path.with_name(name), SIDECAR_MAX).decode("utf-8", errors="replace")
        except OSError:
            return None  # none, unreadable, too big or no file at all: the log is parsed without it

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

    def _refresh_lines(self, handle: BinaryIO, stat: os.stat_result) -> bool:
        """Read what a line or record log appended since the last read."""
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset or not self._same_tail(handle):
            # Replaced or truncated: read the new content from its start.
            if self._first:
                self._before = Print(self._first, self._offset, self._tail)
            self._restart()
            self._identity, self._tail = identity, b""
        size = stat.st_size
        if size == self._offset:
            return False
        feed = self._feed_records if self._record_parser is not None else self._feed_lines
        # Holes in a line log (copytruncated, then written on at the old
        # offset) are skipped, not read: a 10 GiB one costs a system call.
        sparse = stat.st_blocks * 512 < size and self._record_parser is None
        budget = size if self.budget is None else self.budget
        changed = False
        handle.seek(self._offset)  # (a hole skipped leaves the file position at its end)
        while self._offset < size and budget > 0:
            if sparse and (start := data_from(handle, self._offset, size)) > self._offset:
                self._consumed(bytes(min(start - self._offset, HEAD + TAIL)), start - self._offset)
                continue
            chunk = handle.read(min(CHUNK, size - self._offset, budget))
            if not chunk:
                break
            budget -= len(chunk)
            self._consumed(chunk, len(chunk))
            changed |= feed(chunk)
        self.behind = self._offset < size
        self.ready = True
        return changed

    def _consumed(self, chunk: bytes, length: int) -> None:
        """The next ``length`` bytes were read (their first ones, ``chunk``; zeros of a hole
        need not be): the offset moves on past them, the head and tail prints take them in."""
        if self._offset < HEAD:  # (read in order from 0: the head so far is bytes [0, offset))
            self._first = self._first[: self._offset] + chunk[: HEAD - self._offset]
        self._offset += length
        tail = chunk[-TAIL:] if len(chunk) == length else bytes(min(length, TAIL))
        self._tail = (self._tail + tail)[-TAIL:]

    def _restart(self) -> None:
        """Read the stream from 0 again (the file was replaced or truncated); the run's state stays."""
        self._offset = 0
        self._lines.clear()
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

    def _same_tail(self, handle: BinaryIO) -> bool:
        """Do the bytes just before the read offset still hold what was read there?

        Neither size nor inode tells a log that grew from one that was
        truncated and has since grown past the old offset (copytruncate, or
        deleted and re-created on a reused inode): its last bytes read do.
        """
        if not self._tail or self._offset < len(self._tail):
            return True
        handle.seek(self._offset - len(self._tail))
        return bool(handle.read(len(self._tail)) == self._tail)

    def _feed_lines(self, chunk: bytes) -> bool:
        """Hand the complete lines of ``chunk`` (after the held-back partial line) to the parser."""
        assert self._line_parser is not None
        data = self._lines.push(chunk)
        if not data:
            return False
        records: Sequence[BulkRecord]
        text = str(data, "utf-8", "replace")
        self._labels.see(text)  # (labels may begin after the head: the batch script's own lines first)
        if self._labels.on:
            text = labels.unlabel(text)
        if self._feed_text is not None:
            # The whole lines as one text: runs of plain iteration lines are
            # parsed in C and come back as columns (a nanoGPT log loads 3-4x faster).
            if "\r" in text:
                text = text.replace("\r\n", "\n")  # a line's last \r, as removesuffix below
            records = self._feed_text(text)
        else:
            lines = text.split("\n")
            lines.pop()  # (the text ends with a newline: nothing after it)
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

    def _observe(self, mtime: float | None) -> None:
        """The log changed: when, as evidence of the run being alive.

        Once the first read is done, a change the watcher sees happened when
        it saw it, by its own clock: the file server's clock (the mtime) may
        be hours off, and a run that visibly grows must not look stalled.
        The first read has nothing better than the mtime (a time in the
        future is not believed: ``metrics`` takes no time after ``now``).
        """
        if self._clock is not None and self._caught_up:
            self.agg.observe(self._clock(), restart=not self._live)  # (earlier ones: another clock)
            self._live = True
        elif mtime is not None and (at := from_timestamp(mtime)) is not None:
            # (an mtime after the watcher's now: changed when first seen, at the latest)
            self.agg.observe(at if self._clock is None else min(at, self._clock()))


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


def _tail_window(handle: BinaryIO, read: int) -> bytes:
    """The last ``SNIFF_BYTES_MORE`` bytes of ``handle`` not among its first
    ``read``, from a line start; empty when there are none."""
    size = handle.seek(0, os.SEEK_END)
    if size <= read:
        return b""
    start = max(read, size - parsers.SNIFF_BYTES_MORE)
    handle.seek(start)
    window = handle.read(size - start)
    newline = window.find(b"\n")
    return b"" if newline < 0 else window[newline + 1 :]
