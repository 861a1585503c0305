"""LLaMA-Factory's ``trainer_log.jsonl`` (its ``LogCallback``).

One JSON object per line, appended at every Trainer ``on_log`` (and every 5
prediction steps in predict-only runs). Always ``current_steps``,
``total_steps``, ``percentage``, ``elapsed_time`` and ``remaining_time``, the
times being ``str(timedelta)``: ``H:MM:SS`` or ``N day(s), H:MM:SS``, whole
seconds since ``on_train_begin``. Then, depending on the version:

* ``loss``, ``learning_rate`` (older) or ``lr`` (newer), ``epoch``;
* ``eval_loss`` / ``predict_loss`` / ``reward``, explicitly ``null`` in older
  versions and dropped when ``None`` in newer ones;
* ``throughput`` (tokens/s since the start, a string in some versions) and
  ``total_tokens``, both from ``num_input_tokens_seen``, i.e. over all
  processes; ``0`` when the run does not count tokens.

Which Trainer log a line copies shows in its keys: a train log has ``loss``, an
eval log ``eval_loss``, and the summary logged when ``train()`` returns has
neither (LLaMA-Factory copies ``loss`` from the last log entry, which then is
the summary). Predict-only runs write progress lines with no metrics at all.

There are no timestamps. ``Iteration.time_ms`` is derived from the elapsed
time: (elapsed now - elapsed at the previous line) / steps in between, the
mean over the logging interval, at one-second resolution.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from trainwatch.core.records import BulkRecord, Eval, Iteration, IterationColumns, Outcome, Record, RunInfo
from trainwatch.parsers import bulk, llamafactory_bulk
from trainwatch.parsers.base import ParserSpec
from trainwatch.parsers.elapsed import ElapsedClock
from trainwatch.parsers.jsonvalues import as_int, as_num, loads
from trainwatch.parsers.text import to_float

FORMAT = "llamafactory_jsonl"
#: Steps whose elapsed time is remembered (a second writer lags by a few logs).
_RECENT = 64
#: A repeated step logged at no less than this share of its first elapsed
#: time is on the same clock (a copy); a resume's clock starts again from 0.
_SAME_CLOCK = 0.9


# A run of whole train-log lines (a number for their loss), for ``feed_text``:
# each is parsed as JSON with the others, in one call, and read as ``feed`` reads it.
_TRAIN_RUN = re.compile(r'(?:\{"current_steps": [0-9]++, "total_steps": [0-9]++, "loss": [-+.0-9eE]++, [^\n]*+\n)*+')


def sniff(head: str, filename: str) -> bool:
    """JSONL whose first object has LLaMA-Factory's progress keys."""
    first = head.lstrip("\ufeff \t\r\n").split("\n", 1)[0]
    return first.startswith("{") and '"current_steps"' in first and '"total_steps"' in first


def parse_duration(text: object) -> float | None:
    """Seconds in a ``str(timedelta)``: ``"0:03:29"``, ``"4 days, 7:18:24"``."""
    if not isinstance(text, str):
        return None
    days = 0
    # Split by hand: a regex per line costs more than the rest of the line.
    if "," in text:
        head, _, text = text.partition(",")
        count, _, unit = head.strip().partition(" ")
        if unit not in ("day", "days") or not (count.isdecimal() and len(count) <= 9):
            return None
        days = int(count)
    parts = text.strip().split(":")
    # isdecimal, not isdigit: int() refuses "²" (and numbers of over 4,300 digits).
    if (
        len(parts) != 3
        or not all(p.isdecimal() for p in parts)
        or len(parts[0]) > 9
        or len(parts[1]) != 2
        or len(parts[2]) != 2
    ):
        return None
    return (days * 24 + int(parts[0])) * 3600.0 + int(parts[1]) * 60 + int(parts[2])


class LlamaFactoryParser:
    """Stateful parser of one ``trainer_log.jsonl``."""

    def __init__(self) -> None:
        self._target: int | None = None
        self._last_iter: int | None = None
        self._clock = ElapsedClock()
        self._trained = False
        self._finished = False
        self._last_time_ms: float | None = None
        #: Elapsed time at which each recent step was logged: a step logged
        #: again with a clock that did not restart is a second writer's copy.
        self._logged_at: dict[int, float | None] = {}

    def feed(self, line: str) -> list[Record]:
        """Records of one line; ``[]`` for anything that is not a log object."""
        if not line.startswith("{"):
            line = line.strip().lstrip("\ufeff")
            if not line.startswith("{"):
                return []
        obj = loads(line)  # a cut-off line is invalid JSON: skipped
        if type(obj) is not dict:
            return []
        step = as_int(obj.get("current_steps"))
        if step is None or step < 0:
            return []
        records: list[Record] = []
        total = obj.get("total_steps")
        if total != self._target and (total := as_int(total)) is not None and total > 0:
            self._target = total
            # Evals are outside the step times (see below): steps far slower
            # than the others are not unlabelled evals, they are hangs.
            records.append(RunInfo(target=total, tokens_per_sec_scope="total", eval_timing="excluded"))

        elapsed = parse_duration(obj.get("elapsed_time"))
        loss = as_num(obj.get("loss"), keep_nan=True)
        if loss is None:
            eval_loss = as_num(obj.get("eval_loss"), keep_nan=True)
            if eval_loss is not None or obj.get("predict_loss") is not None:
                if eval_loss is not None:
                    records.append(Eval(iter=step, val_loss=eval_loss, seconds=self._clock.since(step, elapsed)))
                # The eval ran after this step's train log: its duration
                # belongs to no iteration, so the next interval starts after it.
                self._clock.advance(step, elapsed)
                return records
            if self._trained and "epoch" in obj:
                # The train() summary (no loss after train logs): training
                # ended, at total_steps or earlier (early stopping, abort).
                if not self._finished:
                    self._finished = True
                    records.extend(self._iteration(step, obj, None, elapsed))
                    records.append(Outcome("finished", f"training ended at step {step} of {self._target}"))
                return records
        else:
            self._trained = True
        records.extend(self._iteration(step, obj, loss, elapsed))
        return records

    def feed_text(self, text: str) -> list[BulkRecord]:
        """Records for whole lines (each ending in ``\\n``): those of ``feed``
        of each line in turn, with runs of train logs as ``IterationColumns``
        (see ``parsers.base.BulkLineParser``)."""
        # (the first train log states the target)
        return bulk.feed_runs(text, _TRAIN_RUN, "{", self.feed, self._columns, lambda: self._target is None)

    def _columns(self, block: str) -> IterationColumns | None:
        """``feed``'s records of ``block`` (train logs) as columns; ``None`` if a
        line is not one (not JSON, another target) and the lines must go one by one."""
        try:
            objs = orjson.loads("[" + block[:-1].replace("\n", ",") + "]")
        except orjson.JSONDecodeError:
            return None  # (a bare NaN, which ``loads`` reads line by line; a cut-off line)
        if len(objs) != block.count("\n") or set(map(type, objs)) != {dict}:
            return None
        get = llamafactory_bulk.columns_of(objs)
        totals = get("total_steps")
        if totals.count(self._target) != len(totals):
            return None  # (another target: the general path says so, line by line)
        self._trained = True
        fast = llamafactory_bulk.columns(objs, get, self._last_iter, self._clock)
        if fast is not None:
            columns, elapsed = fast
            self._last_iter, self._last_time_ms = columns.iters[-1], columns.times_ms[-1]
            logged = self._logged_at
            if len(columns.iters) >= _RECENT and columns.iters[0] > max(logged, default=-1):
                # (every step new and as many as are kept: _remember's dict is their last _RECENT)
                self._logged_at = dict(zip(columns.iters[-_RECENT:], elapsed[-_RECENT:], strict=True))
            else:
                for done, at in zip(columns.iters, elapsed, strict=True):
                    self._remember(done, at)
            return columns
        rows: list[Record] = []
        for obj in objs:  # (a restart, a step again, a copy: _iteration, row by row)
            step = as_int(obj["current_steps"])
            if step is not None and step >= 0:
                loss = as_num(obj["loss"], keep_nan=True)
                rows += self._iteration(step, obj, loss, parse_duration(obj.get("elapsed_time")))
        its = [r for r in rows if isinstance(r, Iteration)]
        return IterationColumns(
            [r.iter for r in its],
            [r.loss for r in its],
            [r.time_ms for r in its],
            [None] * len(its),
            tokens_per_sec=[r.tokens_per_sec for r in its],
            lr=[r.lr for r in its],
            tokens_seen=[r.tokens_seen for r in its],
        )

    def _iteration(self, step: int, obj: dict[str, Any], loss: float | None, elapsed: float | None) -> list[Record]:
        last = self._last_iter
        if last is not None and step == last:
            if loss is None:
                return []  # the summary repeats the last train step: not a restart
            # The same step again (two processes appending to one file): the
            # newer value replaces the last, over the same interval.
            return [self._record(step, obj, loss, self._last_time_ms)]
        if last is not None and step < last and self._copied(step, elapsed):
            # Two writers interleave (each rank-0 process of a multi-node run
            # appends): a lagging copy of a step already read is no resume.
            return []
        if last is not None and step < last:
            # A resumed run appended to the same file: LLaMA-Factory restarts
            # its clock, so no interval spans the resume.
            self._clock.reset()
            self._finished = False
        time_ms = self._clock.interval_ms(step, elapsed)
        self._clock.advance(step, elapsed)
        self._last_iter = step
        self._last_time_ms = time_ms
        self._remember(step, elapsed)
        return [self._record(step, obj, loss, time_ms)]

    def _remember(self, step: int, elapsed: float | None) -> None:
        """The elapsed time ``step`` was logged at (the last _RECENT steps)."""
        self._logged_at[step] = elapsed
        if len(self._logged_at) > _RECENT:
            del self._logged_at[next(iter(self._logged_at))]

    def _copied(self, step: int, elapsed: float | None) -> bool:
        """Whether ``step``, below the last one, repeats an earlier line of the
        same clock: a resume restarts LLaMA-Factory's clock, so its repeat of a
        step comes at a much smaller elapsed time than the first time."""
        if step not in self._logged_at or elapsed is None:
            return False
        first = self._logged_at[step]
        return first is not None and elapsed >= first * _SAME_CLOCK

    def _record(self, step: int, obj: dict[str, Any], loss: float | None, time_ms: float | None) -> Iteration:
        tokens = as_int(obj.get("total_tokens"))
        return Iteration(
            iter=step,
            loss=loss,
            time_ms=time_ms,
            tokens_per_sec=rate_of(obj),
            lr=lr_of(obj),
            tokens_seen=tokens if tokens is not None and tokens > 0 else None,
        )


def rate_of(obj: dict[str, Any]) -> float | None:
    """The logged throughput (tokens/s), if positive (a string in some versions)."""
    rate = obj.get("throughput")
    tps = to_float(rate) if isinstance(rate, str) else as_num(rate)
    return tps if tps is not None and tps > 0 else None


def lr_of(obj: dict[str, Any]) -> float | None:
    """The learning rate (``learning_rate`` in older versions, ``lr`` in newer)."""
    lr = as_num(obj.get("learning_rate"))
    return lr if lr is not None else as_num(obj.get("lr"))


def new_parser() -> LlamaFactoryParser:
    """A fresh parser for one file."""
    return LlamaFactoryParser()


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=new_parser)
