"""LLaMA-Factory's train logs, many at a time (``LlamaFactoryParser.feed_text``).

A run of train-log lines is parsed by one ``orjson.loads`` (the lines joined
into one array), and the usual case, steps rising past the last one with
``H:MM:SS`` elapsed times, is read column by column: each value through
``map`` and C-level checks, to what ``LlamaFactoryParser._iteration`` makes
of it row by row (``jsonvalues.as_int``/``as_num``, ``parse_duration``,
``ElapsedClock``). Anything else (a restart, a repeated step, a day in the
elapsed time, a value of another type) is left to the row-by-row reading.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import repeat
from operator import add, itemgetter, methodcaller, mul, sub, truediv
from typing import Any

from trainwatch.core.records import IterationColumns
from trainwatch.parsers.elapsed import ElapsedClock


def columns(
    objs: list[dict[str, Any]], get: Callable[[str], list[Any]], last: int | None, clock: ElapsedClock
) -> tuple[IterationColumns, list[float]] | None:
    """The records of train logs ``objs`` as columns, and each one's elapsed
    time, the clock advanced past them; ``None`` (nothing changed) if they are
    not the usual case. ``get``: ``columns_of(objs)``."""
    steps = get("current_steps")
    if not _ints(steps) or (last is not None and steps[0] <= last) or not _rising(steps):
        return None
    elapsed = _durations(get("elapsed_time"))
    losses = _numbers(get("loss"), keep_nan=True)
    if elapsed is None or losses is None:
        return None
    # ElapsedClock.interval_ms of each row after the first: from the row before it.
    spans = list(map(sub, elapsed[1:], elapsed))
    if spans and min(spans) <= 0:
        return None  # (a clock that stood still or went back: row by row)
    times: list[float | None] = [clock.interval_ms(steps[0], elapsed[0])]
    times += map(truediv, map(mul, spans, repeat(1000.0)), map(sub, steps[1:], steps))
    clock.advance(steps[-1], elapsed[-1])
    seen = get("total_tokens")
    if not (_ints(seen) and min(seen) > 0):
        seen = [None if (n := _as_int(v)) is None or n <= 0 else n for v in seen]
    from trainwatch.parsers.llamafactory import lr_of, rate_of

    rates = _numbers(get("throughput"))
    if rates is None or not (rates.count(None) == len(rates) or _all_over(rates, 0.0)):
        rates = list(map(rate_of, objs))
    lrs = _numbers(get("learning_rate"))
    if lrs is not None and lrs.count(None) == len(lrs):
        lrs = _numbers(get("lr"))  # (newer versions call it "lr")
    if lrs is None or None in lrs:
        lrs = list(map(lr_of, objs))
    none: list[float | None] = [None] * len(steps)
    return IterationColumns(steps, losses, times, none, tokens_per_sec=rates, lr=lrs, tokens_seen=seen), elapsed


def columns_of(objs: list[dict[str, Any]]) -> Callable[[str], list[Any]]:
    """``key`` -> the column of ``obj.get(key)`` over ``objs``. Where every
    object has the first one's keys (the same count, and all of them), one
    ``itemgetter`` call a row takes them all, three times cheaper than a
    ``get`` a key and a row."""
    first = objs[0]
    if len(first) > 1 and len(set(map(len, objs))) == 1:
        try:
            rows = list(map(itemgetter(*first), objs))
        except KeyError:
            pass  # (another key in some row)
        else:
            table = dict(zip(first, map(list, zip(*rows, strict=True)), strict=True))
            none = [None] * len(objs)
            return lambda key: table.get(key, none)
    return lambda key: list(map(methodcaller("get", key), objs))


def _ints(values: list[Any]) -> bool:
    return len(set(map(type, values))) == 1 and type(values[0]) is int


def _rising(steps: list[int]) -> bool:
    return min(map(sub, steps[1:], steps), default=1) > 0


def _numbers(values: list[Any], keep_nan: bool = False) -> list[float | None] | None:
    """``jsonvalues.as_num`` of each value, where each is a number; else ``None``."""
    kinds = set(map(type, values))
    if kinds == {float}:
        out: list[float] = values
    elif kinds <= {float, int}:
        out = list(map(float, values))  # (as_num: an int as a float)
    elif kinds == {type(None)}:
        return [None] * len(values)
    else:
        return None
    if not keep_nan and not _finite(out):
        return [v if math.isfinite(v) else None for v in out]
    return out  # type: ignore[return-value]


def _finite(values: list[float]) -> bool:
    try:
        return math.isfinite(math.fsum(values))
    except (OverflowError, ValueError):
        return False


def _all_over(values: list[float | None], low: float) -> bool:
    try:
        return min(values) > low  # type: ignore[type-var, operator]
    except TypeError:  # a None
        return False


def _as_int(value: object) -> int | None:
    from trainwatch.parsers.jsonvalues import as_int

    return as_int(value)


def _durations(texts: list[Any]) -> list[float] | None:
    """``parse_duration`` of each ``H:MM:SS`` text (whole seconds); ``None`` if one is of another form."""
    if len(set(map(type, texts))) != 1 or type(texts[0]) is not str:
        return None
    joined = "\n".join(texts)
    if "," in joined:
        return None  # ("N days, H:MM:SS": row by row)
    parts = joined.replace(":", "\n").split("\n")
    hours, minutes, seconds = parts[0::3], parts[1::3], parts[2::3]
    if (
        len(parts) != 3 * len(texts)
        or not all(map(str.isdecimal, parts))
        or max(map(len, hours)) > 9
        or set(map(len, minutes)) != {2}
        or set(map(len, seconds)) != {2}
    ):
        return None
    # parse_duration's (0 * 24 + h) * 3600.0 + m * 60 + s, in its order.
    whole = map(mul, map(int, hours), repeat(3600.0))
    return list(map(add, map(add, whole, map(mul, map(int, minutes), repeat(60))), map(int, seconds)))
