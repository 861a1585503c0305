"""Helpers shared by the text-log parsers: ANSI, ``\\r`` and rank prefixes."""

from __future__ import annotations

import math
import re
from datetime import datetime

# CSI sequences (colours, cursor moves), OSC sequences (titles, hyperlinks)
# and lone two-byte escapes: everything a terminal would swallow.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Launcher and rank prefixes, possibly stacked: "9: [default3]: ",
# "[rank0]:[rank0]: ", "[default0]:", and Open MPI's --tag-output
# "[1,0]<stdout>:" (job, rank and stream).
PREFIX = r"(?:\s*(?:\d+:\s*)?(?:\[(?:default|rank)\d+\]:\s?|\[\d+,\d+\]<std(?:out|err)>:\s?))+"
_PREFIX = re.compile("^" + PREFIX)


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def strip_prefixes(text: str) -> str:
    """Remove srun/torchrun launcher and rank prefixes from the line start."""
    return _PREFIX.sub("", text, count=1)


def last_cr_segment(text: str) -> str:
    """A ``\\r``-overwritten line shows only its last non-empty segment."""
    if "\r" not in text:
        return text
    for seg in reversed(text.split("\r")):
        if seg.strip():
            return seg
    return ""


def clean(line: str) -> str:
    """ANSI, ``\\r`` segments and launcher prefixes removed; stripped."""
    return strip_prefixes(strip_ansi(last_cr_segment(line))).strip()


def to_float(text: str) -> float | None:
    """Parse a logged number leniently: ``1,234.5``, ``nan``, ``inf``.

    Returns ``None`` for text that is no number. NaN and inf are kept (they
    mean divergence); callers decide what to do with them.
    """
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def to_int(text: str, *, signed: bool = False) -> int | None:
    """A logged count as an int (``signed``: a leading ``-`` allowed); ``None``
    for anything else. Not ``str.isdigit``: it accepts "²", which ``int()``
    refuses; and ``int()`` refuses numbers of over 4,300 digits, which no real
    count has. A parser must raise on neither.
    """
    text = text.strip()
    digits = text[1:] if signed and text[:1] == "-" else text
    return int(text) if digits.isdecimal() and len(digits) <= 18 else None


def finite(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None``."""
    return value if value is not None and math.isfinite(value) else None


# ``slurmstepd: error: *** JOB 11672255 ON g084 CANCELLED AT 2024-10-10T02:20:29
# DUE TO TIME LIMIT ***`` (also ``STEP 123.0``; no "DUE TO" for a plain scancel).
_SLURM_CANCEL = re.compile(r"\*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT (\S+)(?: DUE TO ([A-Z ]+?))? *\*\*\*")
_SLURM_REASONS = {
    "TIME LIMIT": "killed by SLURM time limit",
    "PREEMPTION": "preempted by SLURM",
    "NODE FAILURE": "killed by SLURM: node failure",
}


def slurm_kill(text: str) -> tuple[str, datetime | None] | None:
    """The reason and time if ``text`` holds a slurmstepd kill notice, else ``None``.

    slurmstepd writes unbuffered into the job's stdout file, so its notice often
    lands in the middle of a half-flushed line: search, do not anchor.
    """
    if "slurmstepd" not in text:
        return None
    if (m := _SLURM_CANCEL.search(text)) is not None:
        reason = m.group(2)
        message = _SLURM_REASONS.get(reason or "", f"cancelled by SLURM ({reason.lower()})" if reason else "")
        try:
            when: datetime | None = datetime.fromisoformat(m.group(1))
        except ValueError:
            when = None
        return message or "cancelled by SLURM (scancel)", when
    if "oom_kill" in text or "oom-kill" in text:
        return "killed by the out-of-memory killer (SLURM)", None
    return None
