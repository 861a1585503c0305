"""torchtitan's step lines, many at a time (``TorchtitanParser.feed_text``).

A long torchtitan log is almost all ``[rank0]:[titan] <time> - root - INFO -
step: N  loss: X  grad_norm: G  memory: M  tps: T  tflops: F  mfu: U%`` lines,
each field behind its ANSI colour. A run of them in the common shape (ASCII,
spaces between the fields, every field there) is found by one regex call,
its fields by one ``findall``, and converted by ``map``: see
``parsers.bulk``. A line taken here is one that ``TorchtitanParser._step``
reads with the same values: each group is what lies between the same
literals and spaces as in its ``_STEP`` regex.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from trainwatch.core.records import IterationColumns
from trainwatch.parsers import bulk

_VALUE = r"[-+.,0-9A-Za-z_]"
_STAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}[,.][0-9]{3}"


def _shape(run: bool) -> str:
    """One step line: for a run (possessive: no class can give back what the
    next literal would take; no groups), or with the groups ``findall`` returns."""
    more, any_ = ("++", "*+") if run else ("+", "*")

    def group(pattern: str) -> str:
        return f"(?:{pattern})" if run else f"({pattern})"

    sgr = rf"(?:\x1b\[[0-9;]{any_}m)?"
    return (
        rf"(?:\[rank{group('[0-9]' + more)}\]:)?\[titan\] {group(_STAMP)} - root - INFO - "
        rf"{sgr}step: {any_}{group('[0-9]' + more)} {more}"
        rf"{sgr}loss: {any_}{group(_VALUE + more)} {more}"
        rf"{sgr}grad_norm: {any_}{group(_VALUE + more)} {more}"
        rf"{sgr}memory: {any_}[-+.,0-9A-Za-z_()%]{more} {more}"
        rf"{sgr}tps: {any_}{group('[0-9,.]' + more)} {more}"
        rf"{sgr}tflops: {any_}[0-9,.]{more} {more}"
        rf"{sgr}mfu: {any_}{group('[0-9,.]' + more + '|nan|inf')}%{sgr}\n"
    )


#: As many whole step lines as follow a position ...
STEP_RUN = re.compile(f"(?:{_shape(run=True)})*+")
# ... and the fields of each: rank, time, step, loss, grad norm, tps, mfu.
_STEP_ROW = re.compile(_shape(run=False))


def step_columns(block: str) -> tuple[list[str], IterationColumns] | None:
    """The ranks and records of ``block`` (step lines as ``STEP_RUN`` found them);
    ``None`` if a value does not convert as ``_step`` converts it."""
    found = bulk.fields(_STEP_ROW, block, 7)
    if found is None:
        return None
    ranks, stamps, steps, losses, norms, rates, mfus = found
    try:
        walls: list[datetime | None] = list(map(datetime.fromisoformat, _dotted(stamps)))  # (_stamp's reading)
        columns = IterationColumns(
            list(map(int, steps)),
            lenient(losses),
            [None] * len(steps),
            _nonneg(lenient(mfus)),
            tokens_per_sec=_nonneg(lenient(rates)),
            grad_norm=lenient(norms),
            wall_time=walls,
        )
    except ValueError:
        return None
    return list(ranks), columns


def lenient(values: tuple[str, ...]) -> list[float]:
    """``text.to_float`` of each value (thousands commas dropped), raising
    ``ValueError`` where it would say ``None`` (the caller then reads the lines one by one)."""
    joined = "\n".join(values)
    if "," in joined:
        return bulk.floats(joined.replace(",", "").split("\n"))
    return bulk.floats(values)


def _nonneg(values: list[float]) -> list[float | None]:
    """``torchtitan._nonneg`` of each: finite and not negative, else ``None``."""
    if bulk.above(values, 0.0) and not math.isinf(math.fsum(values)):
        return values  # type: ignore[return-value]
    return [v if math.isfinite(v) and v >= 0 else None for v in values]


def _dotted(stamps: tuple[str, ...]) -> list[str]:
    joined = "\n".join(stamps)
    return (joined.replace(",", ".") if "," in joined else joined).split("\n")
