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
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trainwatch import parsers
from trainwatch.aggregate import RunAggregator
from trainwatch.parsers.base import LineParser, ParserSpec

#: Read at most this much per system call while catching up on a big log.
CHUNK = 4 << 20
#: Metadata sidecars are small; a huge file by that name is not one.
SIDECAR_MAX = 1 << 20


@dataclass(frozen=True, slots=True)
class RunOptions:
    """User overrides applied to every run (CLI flags)."""

    target: int | None = None
    tokens_per_iter: int | None = None
    params: int | None = None
    gpu: str | None = None


class SourceError(Exception):
    """A file could not be read; the message is one line for the user."""


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
        self._identity: tuple[int, int] | None = None
        self._line_parser: LineParser | None = None
        self._doc_stamp: tuple[int, int] | None = None

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
        if not self.path.is_file():
            raise SourceError(f"{self.path} is not a regular file")
        try:
            with open(self.path, "rb") as handle:
                if self.spec is None and not self._detect(handle):
                    return False
                assert self.spec is not None
                if self.spec.kind == "document":
                    changed = self._refresh_document(handle, stat)
                else:
                    changed = self._refresh_lines(handle, stat)
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if changed:
            self.agg.observe(datetime.fromtimestamp(stat.st_mtime))
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
        if b"\0" in head[:1024]:
            handle.seek(0)  # type: ignore[attr-defined]
            self.problem = "binary file"
            return False
        self.spec = parsers.detect(head, self.path.name)
        if self.spec is None and len(head) == parsers.SNIFF_BYTES:
            head += handle.read(parsers.SNIFF_BYTES_MORE - len(head))  # type: ignore[attr-defined]
            self.spec = parsers.detect(head, self.path.name)
        handle.seek(0)  # type: ignore[attr-defined]
        if self.spec is None:
            self.problem = "unrecognised format" if head.strip() else "empty"
            return False
        if self.spec.kind == "lines":
            self._line_parser = self._make_line_parser(self.spec)
        self.problem = None
        return True

    def _make_line_parser(self, spec: ParserSpec) -> LineParser:
        """The spec's line parser, given its sidecar's text if one is beside the log."""
        if spec.sidecar_names is not None and spec.new_line_parser_with_sidecar is not None:
            for name in spec.sidecar_names(self.path.name):
                sidecar = self.path.with_name(name)
                try:
                    if sidecar.is_file() and sidecar.stat().st_size <= SIDECAR_MAX:
                        text = sidecar.read_text(encoding="utf-8", errors="replace")
                        return spec.new_line_parser_with_sidecar(text)
                except OSError:
                    continue  # unreadable metadata: parse the log without it
        assert spec.new_line_parser is not None
        return spec.new_line_parser()

    def _refresh_document(self, handle: object, stat: os.stat_result) -> bool:
        assert self.spec is not None and self.spec.parse_document is not None
        stamp = (stat.st_size, stat.st_mtime_ns)
        if stamp == self._doc_stamp:
            return False
        records = self.spec.parse_document(handle.read())  # type: ignore[attr-defined]
        if records is None:  # mid-write: keep the last good parse
            self.problem = None if self.ready else "incomplete document (being written?)"
            return False
        self._doc_stamp = stamp
        self.agg = self._new_aggregator()
        self.agg.add_all(records)
        self.ready, self.problem = True, None
        return True

    def _refresh_lines(self, handle: object, stat: os.stat_result) -> bool:
        assert self._line_parser is not None
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            # Replaced or truncated: read the new content from its start.
            self._identity, self._offset, self._partial = identity, 0, b""
        if stat.st_size == self._offset:
            return False
        handle.seek(self._offset)  # type: ignore[attr-defined]
        changed = False
        while chunk := handle.read(CHUNK):  # type: ignore[attr-defined]
            self._offset += len(chunk)
            data = self._partial + chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                self._partial = data
                continue
            self._partial = data[cut + 1 :]
            text = data[:cut].decode("utf-8", "replace")
            for line in text.split("\n"):
                for record in self._line_parser.feed(line.removesuffix("\r")):
                    self.agg.add(record)
                    changed = True
        self.ready = True
        return changed


#: Extensions that can hold a training log. Others (checkpoints, code, docs)
#: are never opened, which keeps discovery cheap in a busy run folder.
LOG_SUFFIXES = frozenset({".log", ".txt", ".out", ".err", ".json", ".jsonl", ".csv", ".stdout", ".stderr"})


def discover(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Candidate log files under ``paths`` (recursive), and path problems."""
    found: list[Path] = []
    problems: list[str] = []
    for root in paths:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            for folder, dirs, files in os.walk(root, onerror=None):  # symlinked dirs not followed
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
                found.extend(
                    Path(folder, name) for name in sorted(files) if not name.startswith(".") and _looks_like_log(name)
                )
        elif root.exists():
            problems.append(f"{root} is not a file or directory")
        else:
            problems.append(f"no such file or directory: {root}")
    # The same file named twice (or through two roots) is one run.
    # realpath, not Path.resolve: that raises on a symlink loop (``loop -> loop``).
    unique = {os.path.realpath(path): path for path in reversed(found)}
    return list(reversed(unique.values())), problems


def _looks_like_log(name: str) -> bool:
    suffix = os.path.splitext(name)[1].lower()
    return suffix in LOG_SUFFIXES or suffix == "" or suffix.lstrip(".").isdigit()
