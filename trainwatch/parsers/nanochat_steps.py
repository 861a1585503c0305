"""nanochat's training-step lines (``step 00011/05742 (0.19%) | loss: ... | dt: ...ms | ...``), read into records.

Kept apart from the phase bookkeeping in ``nanochat``: ``read_step`` reads
any version's line field by field; ``fast_step`` reads the usual shape with
one regex, for the bulk of a long log, to the same values (the tests hold
it to ``read_step`` on every corpus line).
"""

from __future__ import annotations

import math
import re

from trainwatch.core.records import Iteration
from trainwatch.parsers.text import to_float, to_int

_HEAD = re.compile(r"step (\d+)(?:/(\d+))? \(([\d.]+)%\)")

StepLine = tuple[int | None, float | None, Iteration]  # total, percentage, the step


def read_step(line: str) -> StepLine | None:
    """A ``step N[/M] (p%) | key: value | ...`` line; ``None`` if it is none, or cut before its loss."""
    parts = line.split(" | ")
    head = _HEAD.fullmatch(parts[0])
    if head is None or (step := to_int(head.group(1))) is None:
        return None
    # The last field may be cut off mid-value; nanochat's last is "total time" or "eta".
    fields = dict(part.partition(": ")[::2] for part in parts[1:-1])
    loss = to_float(fields["loss"]) if "loss" in fields else None
    if loss is None:
        return None
    dt = fields.get("dt", "")
    grad_norm = to_float(fields["grad norm"]) if "grad norm" in fields else None
    iteration = Iteration(
        step,
        loss,
        nonneg(dt[:-2]) if dt.endswith("ms") else None,
        nonneg(fields.get("bf16_mfu", fields.get("mfu"))),
        nonneg(fields.get("tok/sec")),
        None,
        grad_norm,
    )
    return to_int(head.group(2) or ""), to_float(head.group(3)), iteration


# The line every version prints by the thousand, as read_step reads it: one
# regex instead of a split and a dict (``tests``: the same values on every
# corpus line). Bounded digit runs keep int() and float() exact and finite.
_FAST = re.compile(
    r"step (\d{1,18})(?:/(\d{1,18}))? \((\d{1,15}(?:\.\d+)?)%\) \| loss: ([^ |,]+) \|"
    r"(?: grad norm: ([^ |,]+) \|)? lrm: [^|]* \| dt: (\d{1,15}(?:\.\d+)?)ms \| "
    r"tok/sec: (\d{1,3}(?:,\d{3}){0,4}) \| (?:bf16_)?mfu: (\d{1,15}(?:\.\d+)?) \| "
)


def fast_step(line: str) -> StepLine | None:
    """``read_step`` for the usual shape; ``None`` for any other line."""
    m = _FAST.match(line)
    if m is None:
        return None
    try:
        loss = float(m[4])
        grad_norm = float(m[5]) if m[5] is not None else None
    except ValueError:
        return None
    # Positional (iter, loss, time_ms, mfu_pct, tokens_per_sec, lr, grad_norm):
    # twice as fast as keywords.
    iteration = Iteration(int(m[1]), loss, float(m[6]), float(m[8]), float(m[7].replace(",", "")), None, grad_norm)
    return int(m[2]) if m[2] is not None else None, float(m[3]), iteration


def nonneg(text: str | None) -> float | None:
    """A logged time, rate or percentage: finite and not negative, else unknown."""
    number = to_float(text) if text else None
    return number if number is not None and math.isfinite(number) and number >= 0 else None
