"""One log file: its format, its tail state and its run's aggregator.

Both ``trainwatch snapshot`` (one ``refresh``) and the live watcher (a
``refresh`` per change) read files through ``LogSource``, so they cannot
disagree. Files are opened read-only and never written.

Line logs are tailed: only bytes past the last offset are read, and a last
line without its newline waits for it. If the file shrinks or is replaced
(copytruncate, rotation, re-creation) the offset restarts at 0 but the run's
state is kept: iterations that go back start a new segment, so nothing is
lost and nothing is counted twice. Document logs are re-parsed whole when
they change; a half-written document leaves the last good parse in place.
A document whose parser can resume (``ParserSpec.parse_document_from``) is
read from its resume point instead when the bytes before it look unchanged,
so a rewrite that adds ten entries to a 100 MB log costs ten entries.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import os
import stat as stat_module
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, NamedTuple

from trainwatch import parsers
from trainwatch.aggregate import RunAggregator
from trainwatch.parsers.base import BulkLineParser, DocumentParse, LineParser, ParserSpec
from trainwatch.records import BulkRecord

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


@dataclass(frozen=True, slots=True)
class RunOptions:
    """User overrides applied to every run (CLI flags)."""

    target: int | None = None
    tokens_per_iter: int | None = None
    params: int | None = None
    gpu: str | None = None


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
        self._doc_stamp: Hashable = None
        # A resumable document: its last parse, the aggregate of its settled
        # records, and the digest of the bytes before its resume point.
        self._doc_parse: DocumentParse | None = None
        self._doc_base: RunAggregator | None = None
        self._doc_print = b""

    @property
    def format(self) -> str | None:
        return self.spec.format if self.spec else None

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
                if self.spec.kind == "document":
                    changed = self._refresh_document(handle, (stat.st_size, stat.st_mtime_ns), stat.st_size)
                else:
                    changed = self._refresh_lines(handle, stat)
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
            self._identity, self._offset, self._partial, self._head = identity, 0, b"", b""
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
                if self.spec.kind != "lines":
                    self.problem = "a document log read as a stream (only *.json files are read whole)"
                    self.spec, self._head = None, None
                    return False
                data = head
            changed = self._feed_lines(data)
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
            if self.spec.kind == "lines":
                start = self._offset if len(data) >= self._offset else 0
                return self.feed_bytes(data[start:], self._identity, start, mtime)
            changed = self._refresh_document(handle, stamp, len(data))
        if changed and mtime is not None:
            self.agg.observe(datetime.fromtimestamp(mtime))
        return changed

    def flush(self) -> bool:
        """No more input is due now (end of a snapshot, or the log went quiet):
        take the records a line parser still holds back. ``True`` if any."""
        flush = getattr(self._line_parser, "flush", None)
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
        if head[:1] == b"\0":  # a hole: copytruncated under a writer without O_APPEND
            head = head.lstrip(b"\0")
        if b"\0" in head[:1024]:
            handle.seek(0)  # type: ignore[attr-defined]
            self.problem = "binary file"
            return False
        self.spec = parsers.detect(head, self.path.name)
        if self.spec is None and len(head) == parsers.SNIFF_BYTES:
            head += handle.read(parsers.SNIFF_BYTES_MORE - len(head))  # type: ignore[attr-defined]
            self.spec = parsers.detect(head, self.path.name, lines_only=True)
        handle.seek(0)  # type: ignore[attr-defined]
        if self.spec is None:
            self.problem = "unrecognised format" if head.strip() else "empty"
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
        sidecar = self.path.with_name(name)
        try:
            if sidecar.is_file() and sidecar.stat().st_size <= SIDECAR_MAX:
                return sidecar.read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass  # unreadable metadata: the log is parsed without it
        return None

    def _refresh_document(self, handle: BinaryIO, stamp: Hashable, size: int) -> bool:
        spec = self.spec
        assert spec is not None and spec.parse_document is not None
        if stamp == self._doc_stamp:
            return False
        parsed = self._resume_document(handle, size)
        if parsed is not None:
            assert self._doc_base is not None
            base = self._doc_base
            base.add_all(parsed.records)
        else:
            handle.seek(0)
            data = handle.read()
            if spec.parse_document_resumable is not None:
                parsed = spec.parse_document_resumable(data)
            else:
                records = spec.parse_document(data)
                parsed = DocumentParse(records) if records is not None else None
            if parsed is None:  # mid-write: keep the last good parse
                self.problem = None if self.ready else "incomplete document (being written?)"
                return False
            base = self._new_aggregator()
            base.add_all(parsed.records)
            if parsed.resume_at is not None:
                self._doc_print = _prefix_print(lambda pos, n: data[pos : pos + n], parsed.head_end, parsed.resume_at)
        self._doc_stamp = stamp
        if parsed.resume_at is None:
            self._doc_parse = self._doc_base = None
            self.agg = base
        else:
            # The settled part stays in ``base``; the tail goes on a copy, as
            # the next rewrite replaces it. The copy costs a memcpy of the
            # columns, far less than reading the document again. Only what a
            # resume needs is kept, not the records (a cold load's are many).
            self._doc_parse, self._doc_base = replace(parsed, records=(), tail=()), base
            self.agg = base.copy()
        self.agg.target_override = self.options.target  # the watcher may have changed it
        self.agg.add_all(parsed.tail)
        self.ready, self.problem = True, None
        return True

    def _resume_document(self, handle: BinaryIO, size: int) -> DocumentParse | None:
        """The document's news since the last parse, read past its resume point; ``None``: read it whole.

        Only when the bytes before the resume point look unchanged: the same
        digest of the head and of sampled windows (see ``_prefix_print``).
        Reading and hashing every byte would cost as much as parsing them.
        """
        previous, spec = self._doc_parse, self.spec
        if previous is None or previous.resume_at is None or spec is None or spec.parse_document_from is None:
            return None
        old = previous.resume_at
        if size < old:
            return None

        def read_file(pos: int, n: int) -> bytes:
            handle.seek(pos)
            return handle.read(n)

        if _prefix_print(read_file, previous.head_end, old) != self._doc_print:
            return None
        handle.seek(old)
        tail = handle.read()
        parsed = spec.parse_document_from(tail, previous)
        if parsed is None or parsed.resume_at is None:
            return None

        def read(pos: int, n: int) -> bytes:
            # What this parse saw: checked bytes before ``old``, the tail after it.
            if pos >= old:
                return tail[pos - old : pos - old + n]
            return read_file(pos, min(n, old - pos)) + (read(old, pos + n - old) if pos + n > old else b"")

        self._doc_print = _prefix_print(read, parsed.head_end, parsed.resume_at)
        return parsed

    def _refresh_lines(self, handle: object, stat: os.stat_result) -> bool:
        assert self._line_parser is not None
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset or not self._same_tail(handle):
            # Replaced or truncated: read the new content from its start.
            if self._first:
                self._before = Print(self._first, self._offset, self._tail)
            self._identity, self._offset, self._partial, self._tail = identity, 0, b"", b""
        if stat.st_size == self._offset:
            return False
        handle.seek(self._offset)  # type: ignore[attr-defined]
        changed = False
        while chunk := handle.read(CHUNK):  # type: ignore[attr-defined]
            if self._offset < HEAD:  # (read in order from 0: the head so far is bytes [0, offset))
                self._first = self._first[: self._offset] + chunk[: HEAD - self._offset]
            self._offset += len(chunk)
            self._tail = (self._tail + chunk[-TAIL:])[-TAIL:]
            changed |= self._feed_lines(chunk)
        self.ready = True
        return changed

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


#: A resumed document is trusted when these bytes before its resume point are
#: unchanged: the head (up to HEAD_PRINT bytes), SAMPLES windows of WINDOW
#: bytes spread evenly over the rest, and the WINDOW bytes just before the
#: resume point. An edit that changes an earlier entry's length shifts those
#: last bytes, so it is always seen; a same-length edit is seen only where a
#: window falls (the windows move as the document grows).
HEAD_PRINT = 1 << 16
WINDOW = 4096
SAMPLES = 16


def _prefix_print(read: Callable[[int, int], bytes], head_end: int, resume_at: int) -> bytes:
    """Digest of sampled windows of bytes ``[0, resume_at)``; ``read(pos, n)`` gives bytes."""
    digest = hashlib.blake2b(digest_size=16)
    head = min(head_end, HEAD_PRINT, resume_at)
    digest.update(read(0, head))
    span = resume_at - head
    for k in range(SAMPLES):
        pos = head + span * k // SAMPLES
        digest.update(read(pos, min(WINDOW, resume_at - pos)))
    last = max(head, resume_at - WINDOW)
    digest.update(read(last, resume_at - last))
    return digest.digest()


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


#: Extensions that can hold a training log. Others (checkpoints, code, docs)
#: are never opened, which keeps discovery cheap in a busy run folder.
LOG_SUFFIXES = frozenset({".log", ".txt", ".out", ".err", ".json", ".jsonl", ".csv", ".stdout", ".stderr"})


def discover(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Candidate log files under ``paths`` (recursive), and path problems."""
    found: list[Path] = []
    problems: list[str] = []

    def unreadable(exc: OSError) -> None:  # a folder we may not list: say so, not "no runs found"
        problems.append(f"cannot read {exc.filename}: {exc.strerror or exc}")

    for root in paths:
        try:
            is_file = root.is_file()
            is_dir = not is_file and root.is_dir()
        except OSError as exc:  # a folder on the way we may not enter
            unreadable(exc)
            continue
        if is_file:
            found.append(root)
        elif is_dir:
            for folder, dirs, files in os.walk(root, onerror=unreadable):  # symlinked dirs not followed
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
                found.extend(Path(folder, name) for name in sorted(files) if is_log_name(name))
        elif root.exists():
            problems.append(f"{root} is not a file or directory")
        else:
            problems.append(f"no such file or directory: {root}")
    # The same file named twice (or through two roots) is one run.
    # realpath, not Path.resolve: that raises on a symlink loop (``loop -> loop``).
    unique = {os.path.realpath(path): path for path in reversed(found)}
    return list(reversed(unique.values())), problems


def is_log_name(name: str) -> bool:
    """Could a file of this name be a training log? One rule for discovery,
    the watcher's event filter and the remote side: not hidden, and a log
    suffix, none, or a rotation number (``train.log.1``)."""
    if name.startswith("."):
        return False
    suffix = os.path.splitext(name)[1].lower()
    return suffix in LOG_SUFFIXES or suffix == "" or suffix.lstrip(".").isdigit()
