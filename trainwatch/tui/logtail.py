"""The last lines of a run's console log, and where in them it failed.

The detail view shows the end of the log the way ``tail`` would (progress
bars reduced to their last state, colours and control characters removed)
and ``!`` jumps to the error that ended the run: the first fatal Python
traceback in the tail (``Exception ignored`` ones are teardown noise), else
a CUDA out-of-memory or NCCL error line. Only the last ``TAIL_BYTES`` are
read, in a worker thread, and only from a regular file: a FIFO or a device
named like a log is never opened.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from trainwatch.outputs.export import safe_text

TAIL_BYTES = 256 * 1024
KEEP_LINES = 400
_TRACEBACK = "Traceback (most recent call last)"
_OOM = re.compile(r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|\bout of memory\b", re.I)
_NCCL = re.compile(
    r"NCCL (?:error|timeout)|nccl(?:Internal|System|UnhandledCuda|InvalidUsage|Remote)Error"
    r"|Watchdog caught collective operation timeout|ProcessGroupNCCL.*(?:timeout|error)",
    re.I,
)


@dataclass(frozen=True, slots=True)
class LogTail:
    """What the log pane shows: the lines, the error's first line among them, or why nothing."""

    path: str
    lines: tuple[str, ...] = ()
    error_at: int | None = None  # index into ``lines``
    error_kind: str = ""  # "Python traceback", "CUDA out of memory", "NCCL error"
    note: str = ""  # shown instead of lines (a JSON document, an unreadable file...)


def read_tail(path: str, host: str | None = None) -> LogTail:
    """The end of the log at ``path`` (never raises: a problem becomes the ``note``)."""
    if host:
        return LogTail(path, note=f"the log is on {host}: its lines are not fetched over ssh")
    if path.endswith(".json"):
        return LogTail(path, note="this run logs a JSON document, not console lines")
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            return LogTail(path, note="not a regular file")
        with open(path, "rb") as handle:
            start = max(0, info.st_size - TAIL_BYTES)
            handle.seek(start)
            data = handle.read(TAIL_BYTES)
    except OSError as exc:
        return LogTail(path, note=f"cannot read: {exc.strerror or exc}")
    return tail_of(path, data, cut=start > 0)


def tail_of(path: str, data: bytes, *, cut: bool = False) -> LogTail:
    """``LogTail`` of ``data``, the end of a log (``cut``: its first line may be partial)."""
    text = data.decode("utf-8", errors="replace")
    raw = text.split("\n")
    if cut and len(raw) > 1:
        raw = raw[1:]  # the first line was cut by the read
    if raw and not raw[-1]:
        raw.pop()
    lines = []
    for line in raw[-KEEP_LINES:]:
        # A progress bar redrawn with \r: what a terminal shows is its last state.
        shown = line.rstrip("\r").rsplit("\r", 1)[-1]
        lines.append(safe_text(shown).expandtabs(4))
    error_at, kind = find_error(lines)
    note = "" if lines else "empty so far"
    return LogTail(path, tuple(lines), error_at, kind, note)


def find_error(lines: list[str] | tuple[str, ...]) -> tuple[int | None, str]:
    """The line where the run's error starts, and what it is."""
    for index, line in enumerate(lines):
        if _TRACEBACK in line and not (index and "Exception ignored" in lines[index - 1]):
            block = lines[index : index + 200]
            end = next((i for i, text in enumerate(block) if i and _ends_traceback(text)), len(block) - 1)
            details = "\n".join(block[: end + 1])
            kind = "CUDA out of memory" if _OOM.search(details) else "NCCL error" if _NCCL.search(details) else ""
            return index, kind or "Python traceback"
    for pattern, kind in ((_OOM, "CUDA out of memory"), (_NCCL, "NCCL error")):
        found = next((i for i, line in enumerate(lines) if pattern.search(line)), None)
        if found is not None:
            return found, kind
    return None, ""


_EXCEPTION = re.compile(r"^(?:\[rank\d+\]:\s*|\d+:\s*)?(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Interrupt|Exit)\b")


def _ends_traceback(line: str) -> bool:
    return bool(_EXCEPTION.match(line.strip()))


def window(tail: LogTail, height: int, at_error: bool) -> tuple[int, int]:
    """The ``[start, end)`` of ``tail.lines`` to show in ``height`` rows:
    the last lines, or from just above the error."""
    count = len(tail.lines)
    if at_error and tail.error_at is not None:
        start = max(0, min(tail.error_at - 1, count - height))
        return start, min(count, start + height)
    return max(0, count - height), count


def name(path: str) -> str:
    return safe_text(Path(path).name)
