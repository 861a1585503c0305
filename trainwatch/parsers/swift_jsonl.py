"""ms-swift's ``logging.jsonl`` (the Trainer's ``on_log``, rank 0).

One JSON object per line, the Trainer's log dict plus progress keys that
``swift.trainers`` adds (``add_train_message``; ``ProgressCallbackNew`` in
older versions), floats rounded to 8 decimals:

* the step: ``"global_step/max_steps": "100/438"`` (since 2024-07;
  ``"steps[global_step/max_steps]"`` for a few days before), ``"iteration":
  "100/438"`` from Megatron-swift 4, a bare ``"global_step": 100`` in swift 2;
* ``elapsed_time`` / ``remaining_time`` from ``format_time``: ``"6s"``,
  ``"1m 42s"``, ``"2h 3m 4s"``, ``"1d 2h 3m 4s"``, whole seconds since
  ``on_train_begin`` (two decimals, ``"42.37s"``, in early 2026);
  ``percentage`` (``"22.83%"``) until 2026;
* ``memory(GiB)`` and a speed: ``train_speed(iter/s)`` (global_step /
  elapsed) until 2026-02, then ``train_speed(s/it)`` (elapsed / steps since
  this start);
* a train log has ``loss`` (``grad_norm``, ``learning_rate``, ``token_acc``
  or ``acc``, ``epoch``); an eval log ``eval_loss`` and other ``eval_*``
  metrics; the ``train()`` summary ``train_runtime`` (a clean finish:
  Transformers logs it only when the loop ends); Megatron-swift 3 logs
  ``elapsed_time_per_iteration`` (s) and writes its eval dicts with no step;
* last, ``SwiftSft`` appends a summary of another shape (``global_step``,
  ``best_metric``, checkpoints, the whole ``log_history``). It is written in
  a ``finally``: after a crash too, when no ``train_runtime`` came before it.

There are no timestamps. ``Iteration.time_ms`` is the mean step time over the
logging interval, from the elapsed time (``elapsed.ElapsedClock``); swift 2,
which has no ``elapsed_time``, gives it as steps / ``train_speed(iter/s)``.
"""

from __future__ import annotations

from typing import Any

from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers.base import ParserSpec
from trainwatch.parsers.elapsed import ElapsedClock
from trainwatch.parsers.jsonvalues import as_int, as_num, loads
from trainwatch.parsers.text import to_int

FORMAT = "swift_jsonl"

#: Keys holding "step/total", newest first.
_PROGRESS_KEYS = ("global_step/max_steps", "iteration", "steps[global_step/max_steps]")
#: Keys only swift's logs have, any of which (with a step) marks the format.
_MARKERS = ('"global_step/max_steps"', '"train_speed(iter/s)"', '"train_speed(s/it)"', '"memory(GiB)"')
#: Eval keys that time the evaluation rather than measure the model.
_EVAL_TIMING = frozenset({"eval_runtime", "eval_samples_per_second", "eval_steps_per_second"})
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_SNIFF_LINES = 5


def sniff(head: str, filename: str) -> bool:
    """JSONL whose first objects carry swift's progress or speed keys."""
    lines = [ln.strip() for ln in head.lstrip("\ufeff").split("\n")[:-1]]
    lines = [ln for ln in lines if ln][:_SNIFF_LINES]
    if not lines or not lines[0].startswith("{"):
        return False
    for line in lines:
        if any(marker in line for marker in _MARKERS):
            obj = loads(line)
            if isinstance(obj, dict) and _step(obj) is not None:
                return True
    return False


def parse_duration(text: object) -> float | None:
    """Seconds in swift's ``format_time``: ``"1d 2h 3m 4s"``, ``"1m 42s"``, ``"42.37s"``."""
    if not isinstance(text, str) or not text:
        return None
    total = 0.0
    for part in text.split():
        unit = _UNITS.get(part[-1:])
        number = part[:-1]
        # isdecimal, not float(): float() takes "nan", "1e9" and "1_0".
        if unit is None or not number.replace(".", "", 1).isdecimal() or len(number) > 12:
            return None
        total += float(number) * unit
    return total


def _step(obj: dict[str, Any]) -> tuple[int, int | None] | None:
    """The step and the total steps (``None``: not stated) of a log object."""
    for key in _PROGRESS_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            done, sep, total = value.partition("/")
            step = to_int(done)
            if sep and step is not None:
                return step, to_int(total)
    step = as_int(obj.get("global_step"))
    return (step, None) if step is not None and step >= 0 else None


class SwiftParser:
    """Stateful parser of one ``logging.jsonl``."""

    def __init__(self) -> None:
        self._target: int | None = None
        self._last_iter: int | None = None
        self._clock = ElapsedClock()
        self._finished = False

    def feed(self, line: str) -> list[Record]:
        """Records of one line; ``[]`` for anything that is not a log object."""
        if not line.startswith("{"):
            line = line.strip().lstrip("\ufeff")
            if not line.startswith("{"):
                return []
        obj = loads(line)  # a cut-off line is invalid JSON: skipped
        if type(obj) is not dict:
            return []
        if "log_history" in obj:
            return self._summary(obj)
        found = _step(obj)
        if found is None:
            # Megatron-swift 3 logs its evals without a step: they ran after
            # the last logged one.
            if self._last_iter is not None and _has_eval(obj):
                return self._eval(self._last_iter, obj)
            return []
        step, total = found
        records: list[Record] = []
        if total is not None and total > 0 and total != self._target:
            self._target = total
            records.append(RunInfo(target=total))
        if "train_runtime" in obj:
            records.extend(self._finish(step, obj))
        elif "loss" in obj:
            records.extend(self._train(step, obj))
        elif _has_eval(obj):
            elapsed = _elapsed(obj, step)
            records.extend(self._eval(step, obj, self._clock.since(step, elapsed)))
            # The eval ran after this step's train log: its duration belongs
            # to no iteration (it is the Eval's), so the next interval starts after it.
            self._clock.advance(step, elapsed)
        return records

    def _train(self, step: int, obj: dict[str, Any]) -> list[Record]:
        last = self._last_iter
        if last is not None and step < last:
            self._clock.reset()  # a resumed run: a new clock from a checkpoint
            self._finished = False
        elapsed = _elapsed(obj, step)
        time_ms = as_num(obj.get("elapsed_time_per_iteration"))
        time_ms = time_ms * 1000.0 if time_ms is not None and time_ms > 0 else self._clock.interval_ms(step, elapsed)
        self._clock.advance(step, elapsed)
        self._last_iter = step
        return [
            Iteration(
                iter=step,
                loss=as_num(obj.get("loss"), keep_nan=True),
                time_ms=time_ms,
                lr=as_num(obj.get("learning_rate")),
                grad_norm=as_num(obj.get("grad_norm"), keep_nan=True),
            )
        ]

    def _eval(self, step: int, obj: dict[str, Any], seconds: float | None = None) -> list[Record]:
        metrics: dict[str, float] = {}
        for key, value in obj.items():
            if key.startswith("eval_") and key != "eval_loss" and key not in _EVAL_TIMING:
                number = as_num(value)
                if number is not None:
                    metrics[key[5:]] = number
        val = as_num(obj.get("eval_loss"), keep_nan=True)
        return [Eval(iter=step, val_loss=val, metrics=metrics, seconds=seconds)]

    def _finish(self, step: int, obj: dict[str, Any]) -> list[Record]:
        """The ``train()`` summary: the loop ended, at ``max_steps`` or earlier (early stopping)."""
        if self._finished:
            return []
        self._finished = True
        records: list[Record] = []
        runtime = as_num(obj.get("train_runtime"))
        if runtime is not None and runtime > 0:
            records.append(RunInfo(runtime_s=runtime))
        if self._last_iter is None or step > self._last_iter:
            # The last steps trained after the last train log: they are done.
            elapsed = _elapsed(obj, step)
            records.append(Iteration(iter=step, time_ms=self._clock.interval_ms(step, elapsed)))
            self._clock.advance(step, elapsed)
            self._last_iter = step
        records.append(Outcome("finished", f"training ended at step {step} of {self._target or '?'}"))
        return records

    def _summary(self, obj: dict[str, Any]) -> list[Record]:
        """``SwiftSft``'s closing summary, written in a ``finally``: after a
        ``train_runtime`` it adds nothing; without one, ``train()`` raised."""
        if self._finished:
            return []
        step = as_int(obj.get("global_step"))
        self._finished = True
        where = f" at step {step}" if step is not None else ""
        return [Outcome("failed", f"training stopped{where} without finishing (no train_runtime logged)")]


def _has_eval(obj: dict[str, Any]) -> bool:
    return any(key.startswith("eval_") for key in obj)


def _elapsed(obj: dict[str, Any], step: int) -> float | None:
    """Seconds since ``on_train_begin``, where the line says."""
    elapsed = parse_duration(obj.get("elapsed_time"))
    if elapsed is None and "elapsed_time" not in obj:
        # swift 2 logs only ``train_speed(iter/s)`` = global_step / elapsed.
        speed = as_num(obj.get("train_speed(iter/s)"))
        if speed is not None and speed > 0 and step > 0:
            elapsed = step / speed
    return elapsed


def new_parser() -> SwiftParser:
    """A fresh parser for one file."""
    return SwiftParser()


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=new_parser)
