"""Google MaxText training stdout (``python -m MaxText.train ...``).

Written from MaxText's own printing code (AI-Hypercomputer/maxtext, formerly
google/maxtext): every line goes through ``max_logging.log`` (absl
``logging.info``, so often behind ``I1206 09:46:01.123456 140234 file.py:123] ``).
The step line, from ``MaxText/train.py`` ``write_metrics`` (2023–2025) and
``metric_logger.py`` ``MetricLogger._log_training_metrics`` (2025 on)::

    completed step: 12, seconds: 1.234, TFLOP/s/device: 123.456,
      Tokens/s/device: 4567.890, total_weights: 65536, loss: 7.123

(one line; fields joined by ``", "``). The oldest print ``TFLOP/s:`` and no
tokens; newer ones append ``lm_loss``, ``perplexity``, ``moe_lb_loss``,
``mtp_loss`` ...; during batch-size ramp-up the line starts with ``[Rampup
Batch Size Phase]`` and has no rates; at profiler boundaries it reads
``completed profiler activation/deactivation step: N`` without ``seconds``.
``seconds`` is that one step's wall time; ``Tokens/s/device`` is per device
(``maxtext_utils.calculate_tokens_training_per_device`` / step time), and the
device count comes from ``Num_devices: 4, shape (...)`` (``create_device_mesh``)
where the log has it. No learning rate and no MFU are printed (TFLOP/s per
device only, with no peak stated): both stay unknown.

Steps run ``0 .. steps - 1`` (``while step < config.steps``), so the target
is the last step a finished run prints: ``Config param steps: N`` gives N - 1
(as ``lightning_csv`` does for its 0-based steps). MaxText prints no end-of-
training line; ``Training stopped: ...`` (a target eval loss reached) and the
older ``Early stop and exit loop after reaching ...`` are clean ends.

Evaluations, per version: ``average loss after step=N: eval_step_count=K,
eval_loss=X, total_weights=W`` (2024), ``eval metrics after step: N, loss=X,
total_weights=W`` (2025) and ``Completed eval after train step N, loss=X,
perplexity=P, ...`` (2026). The eval runs after step N trained and before
step N + 1 starts its clock, so its time lands in step N + 1's ``seconds``
(``eval_timing="next"``). Since 2026 the step lines are written one step late
(``buffer_and_write_metrics``), so "eval after step N" comes *before*
"completed step: N": such an Eval is held back until its step's line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.text import PREFIX, clean, last_cr_segment, strip_ansi, to_float, to_int

FORMAT = "maxtext_stdout"

_STEP = re.compile(r"(?<![\w/])completed (?:profiler activation/deactivation )?step: (\d+)")
_SNIFF_STEP = re.compile(r"completed step: \d+, seconds: [\d.]+, (?:TFLOP/s|total_weights)")
_FIELD = re.compile(r", ([A-Za-z_/]+): ([^,\s]+)")
_EVAL = re.compile(r"(?:eval metrics after step: |Completed eval after train step |average loss after step=)(\d+)")
_EVAL_LOSS = re.compile(r"(?<![\w])(?:eval_)?loss=([^,\s]+)")
_EVAL_PPL = re.compile(r"(?<![\w])perplexity=([^,\s]+)")
_CONFIG = re.compile(r"Config param (\w+): (.*)")
_SNIFF_CONFIG = re.compile(r"Config param \w+: ")
_DEVICES = re.compile(r"Num_devices: (\d+), shape")
_PARAMS = re.compile(r"number parameters: ([\d.]+) billion")
_CKPT = re.compile(r"(?:[Ss]aved a checkpoint at step|Started an asynchronous checkpoint save for step) (\d+)")
# srun's "0: " alone, or torchrun's "[rank0]:" (text.PREFIX), before the record.
_RANK = re.compile(r"^(?:\s*\d+:\s)?(?:" + PREFIX + ")?")
# absl's record prefix: "I1206 09:46:01.123456 140234 train.py:123] " (no year: not a timestamp to keep).
_ABSL = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")
# The config params that say something about the run's size (pyconfig prints hundreds).
_WANTED = frozenset(
    {"steps", "per_device_batch_size", "max_target_length", "gradient_accumulation_steps", "model_name"}
)


def sniff(head: str, filename: str) -> bool:
    """A MaxText step line, or the pyconfig dump (``Config param x: y``) that precedes it."""
    if "completed step: " in head and _SNIFF_STEP.search(head):
        return True
    return ("eval metrics after step: " in head or "Completed eval after train step " in head) or (
        "Config param " in head and len(_SNIFF_CONFIG.findall(head, 0, 65536)) >= 5
    )


class MaxTextParser:
    """Stateful line parser for one MaxText stdout capture."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._scoped = False
        self._rank: str | None = None  # the launcher prefix of the lines read ("" for none)
        self._last_step: int | None = None
        self._held: list[Eval] = []
        self._config: dict[str, str] = {}
        self._last_ckpt: int | None = None

    def feed(self, line: str) -> Sequence[Record]:
        """Records in one line of the log."""
        try:
            return self._feed(line)
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, line)
            return ()

    def flush(self) -> Sequence[Record]:
        """Evals still waiting for their step's line (the run stopped in between)."""
        held, self._held = self._held, []
        return held

    def _feed(self, line: str) -> Sequence[Record]:
        if "\r" in line:
            line = last_cr_segment(line)
        if "\x1b" in line:
            line = strip_ansi(line)
        if "step" in line:
            if (m := _STEP.search(line)) is not None:
                return self._step(line, m)
            if (m := _EVAL.search(line)) is not None:
                return self._eval(line, m)
            if (m := _CKPT.search(line)) is not None:
                return self._checkpoint(int(m.group(1)))
        if "Config param " in line and (m := _CONFIG.search(line)) is not None:
            return self._config_param(m.group(1), m.group(2).strip())
        if "Num_devices: " in line and (m := _DEVICES.search(line)) is not None:
            return self._devices(int(m.group(1)))
        if "number parameters: " in line and (m := _PARAMS.search(line)) is not None:
            billions = to_float(m.group(1))
            return [RunInfo(params=round(billions * 1e9))] if billions and math.isfinite(billions) else []
        if "Training stopped: " in line or "Early stop and exit loop after reaching" in line:
            self._crash.finished()
            return [*self.flush(), Outcome("finished", _ABSL.sub("", clean(line))[:240])]
        if line[:1].isdigit() and (label := _RANK.match(line)) is not None:
            line = line[label.end() :]  # srun's bare "0: ", which CrashWatch keeps
        failure = self._crash.check(line)
        return [failure] if failure is not None else ()

    def _same_rank(self, line: str) -> bool:
        """Whether ``line`` comes from the process whose lines are read (srun/torchrun
        prefix every process's copy of the step line: one is enough)."""
        m = _RANK.match(line)
        rank = m.group(0).strip() if m is not None else ""
        if self._rank is None:
            self._rank = rank
        return rank == self._rank

    def _step(self, line: str, m: re.Match[str]) -> list[Record]:
        if not self._same_rank(line):
            return []
        step = int(m.group(1))
        fields = dict(_FIELD.findall(line, m.end()))
        records: list[Record] = []
        if not self._scoped:
            self._scoped = True
            records.append(RunInfo(tokens_per_sec_scope="gpu", eval_timing="next"))
        if self._last_step is not None and step <= self._last_step:
            self._crash.reset()  # a resume, or a new run, in the same file
            records.extend(self.flush())
        self._last_step = step
        seconds = _nonneg(fields.get("seconds"))
        records.append(
            Iteration(
                iter=step,
                loss=to_float(fields["loss"]) if "loss" in fields else None,
                time_ms=seconds * 1000 if seconds is not None else None,
                tokens_per_sec=_nonneg(fields.get("Tokens/s/device")),
            )
        )
        if self._held and self._held[0].iter <= step:
            records.extend(e for e in self._held if e.iter <= step)
            self._held = [e for e in self._held if e.iter > step]
        return records

    def _eval(self, line: str, m: re.Match[str]) -> list[Record]:
        if not self._same_rank(line):
            return []
        loss = _EVAL_LOSS.search(line, m.end())
        ppl = _EVAL_PPL.search(line, m.end())
        perplexity = to_float(ppl.group(1)) if ppl is not None else None
        record = Eval(
            iter=int(m.group(1)),
            val_loss=to_float(loss.group(1)) if loss is not None else None,
            metrics={"perplexity": perplexity} if perplexity is not None else {},
        )
        if self._last_step is None or record.iter > self._last_step:
            self._held.append(record)  # its step's line is still to come (see the module doc)
            return []
        return [record]

    def _checkpoint(self, step: int) -> list[Record]:
        if step == self._last_ckpt:
            return []  # "Started an asynchronous ..." then "Saved ..." of one save
        self._last_ckpt = step
        return [Checkpoint(iter=step)]

    def _config_param(self, key: str, value: str) -> list[Record]:
        if key not in _WANTED:
            return []
        self._config[key] = value
        if key == "steps" and (steps := to_int(value)):
            return [RunInfo(target=steps - 1)] if steps > 1 else []
        if key == "max_target_length" and (length := to_int(value)):
            return [RunInfo(block_size=length)]
        if key == "model_name" and value not in ("", "default"):
            return [RunInfo(architecture=value)]
        return []

    def _devices(self, devices: int) -> list[Record]:
        if devices <= 0:
            return []
        info = RunInfo(world_size=devices)
        # Tokens per step, as MaxText computes its own per-device figure
        # (calculate_tokens_training_per_device), times the devices.
        per_device = [to_float(self._config.get(k, "")) for k in ("per_device_batch_size", "max_target_length")]
        accum = to_int(self._config.get("gradient_accumulation_steps", "1")) or None
        batch, length = per_device
        if batch and length and accum and math.isfinite(batch * length):
            tokens = batch * length * accum * devices
            if tokens >= 1 and tokens == int(tokens):
                return [RunInfo(world_size=devices, tokens_per_iter=int(tokens))]
        return [info]


def _nonneg(text: str | None) -> float | None:
    """A logged time or rate: finite and not negative, else unknown."""
    number = to_float(text) if text is not None else None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=MaxTextParser)
