"""Megatron's iteration lines, many at a time (``MegatronParser.feed_text``).

An iteration line is ``<prefix>iteration N/ T | key: value | key: value |``,
and within one run every line has the same prefix (a launcher's, and
Megatron-LM's ``[<time>]``) and the same keys in the same order. So the
shape is learnt from a line the parser read one by one (``Shape.learn``):
its keys, literally, with a group per value (and per time). A run of lines of
that shape is then found by one regex call, its values by one ``findall``,
and converted column by column (``parsers.bulk``), each as ``_iteration``
converts it: ``float`` in C where it takes the value, the parser's own
function for the rest.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import TypeVar

from trainwatch.core.records import IterationColumns
from trainwatch.parsers import bulk

T = TypeVar("T")
_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
_VALUE = r"[^|\n\r\x1b]"
# The keys ``_iteration`` reads (any other is matched, not converted).
KEYS = (
    "elapsed time per iteration (ms)",
    "learning rate",
    "global batch size",
    "lm loss",
    "loss",
    "grad norm",
    "number of nan iterations",
    "consumed tokens",
    "actual seqlen",
    "tokens per gpu per second (tgs)",
    "throughput per GPU (TFLOP/s/GPU)",
    "TFLOPs",
)


class Shape:
    """The regexes of one iteration-line shape, and where its values are."""

    def __init__(self, prefix: str, timed: bool, keys: tuple[str, ...]) -> None:
        self.timed = timed
        self.keys = keys
        self.run = re.compile(f"(?:{_pattern(prefix, timed, keys, run=True)})*+")
        self.row = re.compile(_pattern(prefix, timed, keys, run=False))
        # Where each key's value is among a row's groups (a key given twice: its last value, as ``_fields``).
        self.at = {key: 2 + timed + index for index, key in enumerate(keys)}
        self.width = 2 + timed + len(keys)

    @staticmethod
    def learn(line: str, at: int, keys: Sequence[str], stamped: bool) -> Shape | None:
        """The shape of ``line``, whose ``iteration N/ T |`` starts at ``at``
        and whose fields are ``keys`` (``stamped``: a time read before ``at``)."""
        if line.count("|") != len(keys) + 1 or not line.endswith("|"):
            return None  # a cut-off field, or another rank's junk after the last "|"
        prefix = line[:at]
        if any(c in prefix for c in "\r\x1b\n") or "iteration " in prefix:
            return None
        if stamped:
            close = prefix.rfind("]")
            prefix = prefix[: prefix.rfind("[", 0, close)] + "\ue000" + prefix[close + 1 :]  # (where the time goes)
        return _shape(prefix, stamped, tuple(keys))

    def columns(self, block: str) -> tuple[list[tuple[str, ...]], IterationColumns] | None:
        """The rows' values (all groups) and records of ``block`` (lines of this
        shape); ``None`` where a value does not convert as ``_iteration`` converts it."""
        found = bulk.fields(self.row, block, self.width)
        if found is None:
            return None
        at = self.at
        try:
            if self.timed:
                walls: list[datetime | None] | None = list(map(datetime.fromisoformat, found[0]))
            else:
                walls = None
            steps = list(map(int, found[self.timed]))
            n = len(steps)
            loss_key = "lm loss" if "lm loss" in at else "loss" if "loss" in at else None
            if loss_key == "lm loss" and "loss" in at and not all(found[at[loss_key]]):
                return None  # (an empty "lm loss" gives way to "loss": row by row)
            losses = floats(found[at[loss_key]]) if loss_key is not None else [None] * n
            nan = at.get("number of nan iterations")
            if nan is not None and any(map(int, found[nan])):
                return None  # (a NaN loss the log counts instead of printing: row by row)
            seen = ints(found[at["consumed tokens"]]) if "consumed tokens" in at else None
        except ValueError:
            return None
        columns = IterationColumns(
            steps,
            losses,
            _column(found, at, "elapsed time per iteration (ms)", nonneg, n),
            [None] * n,
            tokens_per_sec=_column(found, at, "tokens per gpu per second (tgs)", nonneg, n),
            lr=_column(found, at, "learning rate", floats, n),
            grad_norm=_column(found, at, "grad norm", floats, n),
            tokens_seen=None if seen is None else [s if s is not None and s >= 0 else None for s in seen],
            wall_time=walls,
        )
        return found, columns


@lru_cache(maxsize=64)
def _shape(prefix: str, timed: bool, keys: tuple[str, ...]) -> Shape:
    return Shape(prefix, timed, keys)


def _pattern(prefix: str, timed: bool, keys: tuple[str, ...], run: bool) -> str:
    more, any_ = ("++", "*+") if run else ("+", "*")
    group = "(?:{})" if run else "({})"
    before, _, after = prefix.partition("\ue000")
    head = re.escape(before) + (f"\\[{group.format(_TIME)}\\]" + re.escape(after) if timed else "")
    fields = "".join(f" {any_}{re.escape(key)} {any_}:{group.format(_VALUE + any_)}\\|" for key in keys)
    number = group.format("[0-9]" + more)
    return f"{head}iteration {more}{number} {any_}/ {any_}{number} {any_}\\|{fields}\\n"


def floats(values: Sequence[str]) -> list[float | None]:
    """``megatron._float`` of each value: ``float`` in C, the parser's own way if one refuses."""
    try:
        return bulk.floats(values)  # type: ignore[return-value]
    except ValueError:
        from trainwatch.parsers.megatron import _float

        return list(map(_float, values))


def nonneg(values: Sequence[str]) -> list[float | None]:
    """``megatron._nonneg`` of each: a finite number, not negative, else ``None``."""
    numbers = floats(values)
    if None not in numbers and bulk.above(numbers, 0.0) and not math.isinf(math.fsum(numbers)):  # type: ignore[arg-type]
        return numbers
    return [n if n is not None and math.isfinite(n) and n >= 0 else None for n in numbers]


def ints(values: Sequence[str]) -> list[int | None]:
    """``megatron_args.as_int`` of each."""
    try:
        return list(map(int, values))  # (int takes the padding spaces)
    except ValueError:
        from trainwatch.parsers.megatron_args import as_int

        return list(map(as_int, values))


def _column(
    found: list[tuple[str, ...]], at: dict[str, int], key: str, convert: Callable[[Sequence[str]], list[T]], n: int
) -> list[T] | list[None]:
    return convert(found[at[key]]) if key in at else [None] * n


def news(
    shape: Shape,
    values: list[tuple[str, ...]],
    rates: Sequence[float | None] | None,
    said: tuple[int | None, bool, int | None, int | None],
) -> bool:
    """Whether a line of a block tells the run something new (``_iteration``
    would emit a ``RunInfo``): another target, a first per-GPU rate, another
    batch of tokens. ``said``: the parser's target, whether the rate's scope
    went out, its tokens per step and sequence length."""
    target, scope_sent, known, seq = said
    if not all(total == 0 or total == target for total in ints(values[shape.timed + 1])):
        return True
    if not scope_sent and rates is not None and rates.count(None) < len(rates):
        return True
    at = shape.at
    batches = ints(values[at["global batch size"]]) if "global batch size" in at else [None]
    if not any(batches):
        return False
    lengths = ints(values[at["actual seqlen"]]) if "actual seqlen" in at else [None] * len(batches)
    tokens = [b * (q or seq) if b and (q or seq) else known for b, q in zip(batches, lengths, strict=True)]  # type: ignore[operator]
    return tokens.count(known) != len(tokens)
