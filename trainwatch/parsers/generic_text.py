"""A fallback for text logs no specific parser knows: step counters and numbers.

Hand-written training loops print some variation of one line per logged step:

    step 120 | loss 3.2104 | lr 6.0e-04 | dt 312.5ms | tok/sec 52,311
    Epoch 1 Step 20 loss=2.95 grad_norm=0.81
    [2026-01-02 03:04:05] iter 40/1000 train_loss: 2.71 time: 0.31s
    step:300/5000 val_loss:3.0121 train_time:93420ms

A line is read when it has a step counter (``step N``, ``iter N``, ``it N``,
``iteration N``, ``global_step=N``, with an optional ``/total``, or a bare
``N/M`` not after ``epoch``) and a loss among its ``key: value``,
``key=value`` or ``key value`` pairs. Only keys with one meaning are read:
the train loss (``loss``, ``train_loss``, ``lm loss``...), the val loss
(``val_loss``, ``val loss``, ``eval_loss``...; an ``Eval``), ``lr``,
``grad_norm``/``norm``, ``mfu``, tokens/s, tokens seen, and a per-step time
(``dt``, ``time``, ``step_time``... with a unit: ``312.5ms``, ``0.31s``);
cumulative or averaged times (``train_time``, ``step_avg``, ``total time``)
are not per-step times and are left alone. A leading timestamp becomes the
line's wall time, which the aggregator turns into step times where none is
printed; without one, the file's update times are all there is.

The target is only ever the ``/total`` of the step counter. Tracebacks and
launcher failures end a run as in the other text parsers.

This format is the last in the registry and never wins over a specific one;
its sniff wants several lines of one consistent shape (the same keys, steps
that do not go back) outside quotes and code fences, so a README, a Python
source or a CSV stays unrecognised.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from trainwatch.core.records import Eval, Iteration, Record, RunInfo
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.text import clean, to_float, to_int

FORMAT = "generic_text"

_STEP = re.compile(
    r"(?<![\w/])(?:global[_ ]step|step|iteration|iter|it)(?![\w/])"
    r"\s*[:=#]?\s*\[?\s*(\d{1,12})(?:\s*/\s*(\d{1,12}))?(?!\d)",
    re.IGNORECASE,
)
_FRACTION = re.compile(r"(?<![\w./:-])(\d{1,12})\s*/\s*(\d{1,12})(?![\w./])")
_EPOCH_BEFORE = re.compile(r"epoch\W*$", re.IGNORECASE)
_NUMBER = r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
# A key of up to four words (maybe quoted, as in a printed dict), the number,
# an optional unit; lazily, so that "train loss 2.3" is one key and "loss 2.3
# lr 1e-4" two pairs. Words are capped: a pattern that may scan a whole line
# from every position must not be quadratic on a line of one long word.
_PAIR = re.compile(
    r"(?P<key>[A-Za-z][\w./%()-]{0,40}?(?: [A-Za-z][\w./%()-]{0,40}?){0,3}?)['\"]?\s*(?:[:=]\s*|\s+)"
    r"(?P<num>" + _NUMBER + r")(?P<unit>ms|s|%)?(?![\w.])",
    re.IGNORECASE,
)
_STEP_WORDS = frozenset({"step", "global_step", "iter", "iteration", "it"})
#: Pairs are looked for in this much of a line (log lines are short; a
#: megabyte-long line of something else must not cost a megabyte of scanning).
_MAX_TEXT = 4096
_STAMP = re.compile(r"^\W{0,2}(\d{4}-\d\d-\d\d)[ T_](\d\d:\d\d:\d\d)(?:[.,](\d{1,6}))?")

#: Normalised keys (lower case, spaces as ``_``) with one meaning each.
TRAIN_LOSS = frozenset(
    {"loss", "train_loss", "training_loss", "train/loss", "lm_loss", "train_lm_loss", "total_loss", "avg_loss"}
    | {"average_loss", "mean_loss", "loss_avg", "batch_loss", "step_loss", "running_loss", "tr_loss"}
)
VAL_LOSS = frozenset(
    {"val_loss", "validation_loss", "valid_loss", "eval_loss", "val/loss", "eval/loss", "dev_loss", "val_lm_loss"}
)
_ROLES = {
    **dict.fromkeys(("lr", "learning_rate", "lr0"), "lr"),
    **dict.fromkeys(("grad_norm", "gnorm", "norm", "gradient_norm", "grad_l2_norm", "total_norm"), "grad_norm"),
    **dict.fromkeys(("mfu", "mfu_pct", "mfu(%)"), "mfu_pct"),
    **dict.fromkeys(("tok/s", "tok/sec", "tokens/s", "tokens/sec", "tokens_per_sec", "tokens_per_second"), "tps"),
    **dict.fromkeys(("tps", "throughput(tps)", "tok_per_sec"), "tps"),
    **dict.fromkeys(("tokens_seen", "num_tokens", "consumed_tokens", "tokens_processed"), "tokens_seen"),
    **dict.fromkeys(("time", "dt", "step_time", "iter_time", "time_per_step", "time_per_iter"), "time"),
    **dict.fromkeys(("batch_time", "iteration_time", "step_duration", "time/step", "time_ms", "dt_ms"), "time"),
}
_SNIFF_HITS = 3


@dataclass(slots=True)
class Line:
    """What one log line says: its step, total, keys in order and values."""

    step: int
    total: int | None
    keys: list[str] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)
    time_ms: float | None = None
    wall: datetime | None = None

    def loss(self, names: frozenset[str]) -> float | None:
        """The first value under one of ``names``."""
        return next((self.values[k] for k in self.keys if k in names), None)


def read_line(raw: str) -> Line | None:
    """The step and metrics of one line, or ``None`` unless it has a step and a loss."""
    if "oss" not in raw and "OSS" not in raw:
        return None  # the fast path: every line this format reads names a loss
    text = clean(raw[:_MAX_TEXT])
    wall = None
    if (stamp := _STAMP.match(text)) is not None:
        wall = _wall(stamp)
        text = text[stamp.end() :]
    step, total, start, end = _find_step(text)
    if step is None:
        return None
    line = Line(step, total, wall=wall)
    for m in _PAIR.finditer(text[:start] + " " * (end - start) + text[end:]):
        key = m["key"].lower().replace(" ", "_")
        number = to_float(m["num"])
        if number is None or key in line.values or key in _STEP_WORDS:
            continue
        line.keys.append(key)
        line.values[key] = number
        if _ROLES.get(key) == "time" and line.time_ms is None:
            line.time_ms = _ms(key, m["unit"], number)
    if line.loss(TRAIN_LOSS) is None and line.loss(VAL_LOSS) is None:
        return None
    return line


def _find_step(text: str) -> tuple[int | None, int | None, int, int]:
    """The step, its total and the span they occupy; a step keyword first, then a bare ``N/M``."""
    m = _STEP.search(text)
    if m is None:
        m = next((f for f in _FRACTION.finditer(text) if not _EPOCH_BEFORE.search(text, 0, f.start())), None)
        if m is None:
            return None, None, 0, 0
    step = to_int(m[1])
    total = to_int(m[2]) if m[2] else None
    return step, total if total else None, m.start(), m.end()


def _ms(key: str, unit: str | None, number: float) -> float | None:
    """A per-step time in ms; ``None`` where the unit is not stated."""
    unit = (unit or "").lower()
    if unit == "ms" or key.endswith("_ms"):
        return number
    if unit == "s":
        return number * 1000.0
    return None


def _wall(m: re.Match[str]) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(f"{m[1]} {m[2]}")
    except ValueError:
        return None
    return stamp.replace(microsecond=int(m[3].ljust(6, "0"))) if m[3] else stamp


class GenericTextParser:
    """Stateful parser of one text log."""

    def __init__(self) -> None:
        self._target: int | None = None
        self._crash = CrashWatch()

    def feed(self, line: str) -> list[Record]:
        """Records of one line."""
        try:
            return self._feed(line)
        except Exception:  # a monitor must never die on a strange line
            line_failed(FORMAT, line)
            return []

    def _feed(self, raw: str) -> list[Record]:
        line = read_line(raw)
        if line is None:
            failure = self._crash.check(raw)
            return [failure] if failure is not None else []
        records: list[Record] = []
        if line.total is not None and line.total >= line.step and line.total != self._target:
            self._target = line.total
            records.append(RunInfo(target=line.total))
        loss = line.loss(TRAIN_LOSS)
        val = line.loss(VAL_LOSS)
        if val is not None:
            metrics = {k: v for k, v in line.values.items() if k.startswith(("val", "eval")) and k not in VAL_LOSS}
            records.append(Eval(iter=line.step, val_loss=val, train_loss=loss, wall_time=line.wall, metrics=metrics))
        if loss is not None:
            records.append(_iteration(line, loss))
        return records


def _iteration(line: Line, loss: float) -> Iteration:
    role: dict[str, float] = {}
    for key in line.keys:
        name = _ROLES.get(key)
        if name is not None and name not in role:
            role[name] = line.values[key]
    tps = role.get("tps")
    seen = role.get("tokens_seen")
    time_ms = line.time_ms
    return Iteration(
        iter=line.step,
        loss=loss,
        time_ms=time_ms if time_ms is not None and time_ms >= 0 else None,
        mfu_pct=role.get("mfu_pct"),
        tokens_per_sec=tps if tps is not None and tps >= 0 else None,
        lr=role.get("lr"),
        grad_norm=role.get("grad_norm"),
        tokens_seen=int(seen) if seen is not None and 0 <= seen < 2**62 and seen.is_integer() else None,
        wall_time=line.wall,
    )


def sniff(head: str, filename: str) -> bool:
    """Several metric lines of one shape, outside quotes and code fences, steps not going back."""
    shapes: Counter[tuple[str, ...]] = Counter()
    steps: dict[tuple[str, ...], list[int]] = {}
    fenced = False
    # The last line may be cut; a tqdm bar's frames (``\r``) are lines of their own here.
    for raw in "\n".join(head.split("\n")[:-1]).replace("\r", "\n").split("\n"):
        if raw.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        line = None if fenced else read_line(raw)
        if line is None or _quoted(raw):
            continue
        shape = tuple(line.keys)
        shapes[shape] += 1
        steps.setdefault(shape, []).append(line.step)
    if not shapes:
        return False
    shape, hits = shapes.most_common(1)[0]
    seen = steps[shape]
    forward = sum(1 for a, b in pairwise(seen) if b >= a)
    return hits >= _SNIFF_HITS and forward * 10 >= (hits - 1) * 8


def _quoted(raw: str) -> bool:
    """Whether the step counter sits in a string or a quote (source code, an
    example in prose): a quote mark before it. A printed dict after it is fine."""
    text = clean(raw[:_MAX_TEXT])
    m = _STEP.search(text) or _FRACTION.search(text)
    return m is not None and any(q in text[: m.start()] for q in "\"'`")


def new_parser() -> GenericTextParser:
    """A fresh parser for one file."""
    return GenericTextParser()


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=new_parser)
