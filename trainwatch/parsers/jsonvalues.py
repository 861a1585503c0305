"""Lenient JSON loading and typed value extraction for the JSON-based parsers.

Python's ``json.dumps`` writes a diverged loss as the bare token ``NaN`` (or
``Infinity``), which is not JSON: orjson rejects it. Trainer logs do contain
such values exactly when a run diverges, which is when a monitor matters most,
so ``loads`` falls back to the stdlib parser (which accepts them) when orjson
fails on text that holds one of those tokens.
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import orjson

_NONFINITE = ("NaN", "Infinity")


def loads(data: str | bytes) -> object | None:
    """The parsed value, or ``None`` if ``data`` is not (yet) valid JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if not any(token in text for token in _NONFINITE):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays (orjson stops at 1024)
        return None


def as_int(value: object) -> int | None:
    """An integer (or integral float) value; bools are not numbers here."""
    # ``type() is`` rather than isinstance: bool is an int subclass, and this
    # runs several times per line of multi-million-line logs.
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def as_num(value: object, keep_nan: bool = False) -> float | None:
    """A numeric value as float; NaN/inf only with ``keep_nan`` (losses)."""
    if type(value) is float:
        return value if keep_nan or math.isfinite(value) else None
    if type(value) is int:
        return float(value)
    return None


def as_str(value: object) -> str | None:
    """A non-empty string value."""
    return value if isinstance(value, str) and value else None


def as_time(value: object) -> datetime | None:
    """An ISO-8601 string or a Unix epoch number (seconds) as a naive datetime.

    Epoch numbers (seconds, or milliseconds above 1e11) become local time, the
    way a log line printed at that moment would have shown it. Numbers below
    1e9 (before 2001) are not timestamps (they are durations or counters) and
    give ``None``.
    """
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        # Naive, as the rest of the records are: aware stamps become local time.
        return stamp.astimezone().replace(tzinfo=None) if stamp.tzinfo is not None else stamp
    number = as_num(value)
    if number is None or number < 1e9:
        return None
    if number > 1e11:  # milliseconds since the epoch (JavaScript-style loggers)
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number)
    except (OverflowError, OSError, ValueError):
        return None
