"""Helpers shared by the text-log parsers: ANSI, ``\\r`` and rank prefixes."""

from __future__ import annotations

import math
import re

# CSI sequences (colours, cursor moves), OSC sequences (titles, hyperlinks)
# and lone two-byte escapes: everything a terminal would swallow.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Launcher and rank prefixes, possibly stacked: "9: [default3]: ",
# "[rank0]:[rank0]: ", "[default0]:".
_PREFIX = re.compile(r"^(?:\s*(?:\d+:\s*)?(?:\[(?:default|rank)\d+\]:\s?))+")


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


def finite(value: float | None) -> float | None:
    """``value`` if it is a finite number, else ``None``."""
    return value if value is not None and math.isfinite(value) else None
