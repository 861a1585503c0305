"""Spotting how a stdout-captured training job died.

Distributed launchers put a lot of alarming text into a job's stdout, and
most of it is not a failure: per-rank NCCL warnings at exit, C++ "Exception
raised from recvBytes" stacks when the store shuts down first, Python's
"Exception ignored in ..." tracebacks during interpreter finalization. What
does mean failure: a Python traceback that ends a rank, torchrun's
``ChildFailedError`` summary, an ``srun: error:``, a SLURM kill.

``CrashWatch`` is fed the lines a parser did not otherwise consume and turns
those into ``Outcome("failed", reason)``: first ``"Python traceback"``, then,
when the traceback's last line comes, the exception itself (the root cause:
later tracebacks and launcher summaries do not replace it). Once the training
loop has printed its own clean end marker the parser calls ``finished()``;
teardown noise after that does not make a finished run look failed (the model
and its checkpoint are complete, which is what the user needs to know).
``reset()`` starts over for a new run appended to the same file.

It runs on every unconsumed line of logs that reach hundreds of MB, so a
line costs two substring tests unless it is inside a traceback.
"""

from __future__ import annotations

import re

from trainwatch.core.records import Outcome
from trainwatch.parsers.text import clean, slurm_kill

# The line that ends a Python traceback: ``RuntimeError: ...``,
# ``torch.OutOfMemoryError: CUDA out of memory``, a bare ``KeyboardInterrupt``.
# Source lines quoted in the traceback (``raise RuntimeError(...)``) do not
# match: they start with a keyword or are followed by ``(``.
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Interrupt|Exit|Failure|Timeout)(?::.*)?$")
_MAX_REASON = 240
# A traceback quoted in a log record of a level below error is a warning the
# run goes on after: torch's glog-style records ("W0530 14:48:26.433000 2622492
# .../convert_frame.py:1233] Traceback ..." for each line of a graph break that
# torch.compile logs) and Python logging's WARNING/INFO/DEBUG records.
_LOGGED_BELOW_ERROR = re.compile(r"(?:^[IW]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] |\b(?:WARNING|WARN|INFO|DEBUG)\b)")


class CrashWatch:
    """Turns fatal lines into ``Outcome("failed", ...)``; stateful, never raises."""

    __slots__ = ("_awaiting", "_ended", "_prev", "_reason_known")

    def __init__(self) -> None:
        self._ended = False
        self._awaiting = False  # inside a traceback, waiting for its exception line
        self._reason_known = False
        self._prev = ""

    def finished(self) -> None:
        """The run printed its clean end: later noise is teardown, not failure."""
        self._ended = True
        self._awaiting = False

    def reset(self) -> None:
        """A new run starts in the same file."""
        self._ended = self._awaiting = self._reason_known = False

    @property
    def ended(self) -> bool:
        """Whether the clean end marker of the current run has been seen."""
        return self._ended

    def check(self, line: str) -> Outcome | None:
        """The failure ``line`` reports, if any (``line`` is raw: prefixes and ANSI allowed)."""
        prev, self._prev = self._prev, line
        if self._awaiting:
            text = clean(line)
            if _EXCEPTION_LINE.match(text):
                self._awaiting = False
                self._reason_known = True
                return Outcome("failed", text[:_MAX_REASON])
        if "Trace" in line:
            if "Traceback (most recent call last)" not in line:
                return None
            # Python prints "Exception ignored in ..." before tracebacks it
            # swallows (destructors, atexit at shutdown): those are not fatal.
            if self._ended or self._reason_known or "Exception ignored" in prev:
                return None
            text = clean(line)
            if _LOGGED_BELOW_ERROR.search(text, 0, max(text.find("Traceback (most recent call last)"), 0)):
                return None
            self._awaiting = True
            return Outcome("failed", "Python traceback")
        if "rror" in line and not (self._ended or self._reason_known):
            return self._launcher_failure(line)
        return None

    def _launcher_failure(self, line: str) -> Outcome | None:
        """``slurmstepd: error:``, ``srun: error:``, torchrun's ``ChildFailedError``."""
        if "slurmstepd" in line:
            killed = slurm_kill(line)
            if killed is None:
                return None
            self._reason_known = True
            return Outcome("failed", killed[0], killed[1])
        if "ChildFailedError" in line:
            reason = "torchrun: a worker process failed (ChildFailedError)"
        elif "srun: error:" in line:
            reason = clean(line)
        else:
            return None
        self._reason_known = True
        return Outcome("failed", reason[:_MAX_REASON])
