"""PyTorch torchtune: its console (``tune run <recipe> ...``) and its metric
logger's text file (``DiskLogger``: ``<output_dir>/logs/log_<unixtime>.txt``).

Written from torchtune's own printing code (pytorch/torchtune):

* the recipes' progress bar (``recipes/full_finetune_single_device.py``,
  ``full_finetune_distributed.py``, ``lora_finetune_*.py`` ``train``):
  ``tqdm(initial=inner_step, total=steps_per_epoch, desc=f"{epochs_run}|{global_step}")``
  and, after each optimizer step, ``pbar.update(1)`` then
  ``pbar.set_description(f"{curr_epoch + 1}|{self.global_step}|Loss: {loss}")``
  (``{loss:.4f}`` in the single-device recipe, the bare float elsewhere;
  newer recipes create the bar with no description, so its first frames are
  bare until the first step names it). A
  frame reads ``1|5|Loss: 2.3450:  10%|█         | 5/50 [00:05<00:45,  1.00it/s]``,
  ``\\r``-separated; one bar per epoch. The step is the global step of the
  description; the bar's total is the steps per epoch; each step's time comes
  from the frames' smoothed rate and elapsed clock (``tqdm_bar.BarClock``).
* ``torchtune/training/metric_logging.py`` ``DiskLogger.log_dict`` (and
  ``StdoutLogger``'s, on the console): ``Step 5 | loss:2.345 lr:2e-05
  tokens_per_second_per_gpu:1234.5 peak_memory_active:... grad_norm:0.8 ``
  (``f"{name}:{data} "`` per key: floats in full, ``grad_norm`` may print as
  ``tensor(0.8125, device='cuda:0')``); ``Step 5 | val_loss:2.1`` after a
  validation (``val_loss:inf`` when it saw no tokens: unknown, not a
  divergence). ``tokens_per_second_per_gpu`` is per GPU, the one step's
  tokens over that step's time; the log states no per-step time and no world
  size. On a console, stdout (these lines) is block-buffered when captured
  while the bar (stderr) is not, so there the bar is the record of steps and
  the ``Step`` lines give only their evaluations.
* ``config.log_config``: ``Running <Recipe> with resolved config:`` then the
  YAML, whose top-level ``epochs: N`` × the bar's total is the target (both
  stated; ``max_steps_per_epoch`` caps the bar's total already). The
  checkpointer's ``Model checkpoint of size 2.30 GiB saved to <dir>/<file>``
  (one line per shard: one checkpoint per directory) and the distributed
  recipes' ``Validation loss: 2.1000``.

torchtune prints no end-of-training line: a run whose last step reaches the
stated target is finished; a traceback is a failure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from trainwatch.core.records import Checkpoint, Eval, Iteration, Record, RunInfo
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.text import clean, finite, strip_ansi, strip_prefixes, to_float, to_int
from trainwatch.parsers.tqdm_bar import BarClock, Frame, parse_frame

FORMAT = "torchtune"

_DESC = re.compile(r"^(\d+)\|(\d+)(?:\|Loss: (\S+))?$")
_STEP_LINE = re.compile(r"Step (\d+) \| ((?:[A-Za-z_]\w*:\S+ ?)+)")
_GRAD_TENSOR = re.compile(r"grad_norm:tensor\(([^,)]+)")
_SAVED = re.compile(r"checkpoint (?:of size [\d.]+ GiB )?saved to (\S+)")
_STEP_DIR = re.compile(r"(?:^|/)step_(\d+)(?:/|$)")
_VALIDATION = re.compile(r"Validation loss: (\S+)")
_EPOCHS = re.compile(r"^epochs: (\d+)\s*$")
# (?<!\d): a search starts only at the head of a digit run (linear on a line of digits).
_SNIFF_BAR = re.compile(r"(?<!\d)\d+\|\d+\|Loss: \S+: +\d+%\|")
# The knowledge-distillation recipes put class_loss and kd_loss between loss and lr.
_SNIFF_DISK = re.compile(r"(?<![\w|])Step \d+ \| loss:\S+ (?:\w+:\S+ ){0,8}(?:lr|tokens_per_second_per_gpu):")
# srun --label's bare "0: " (text.clean leaves it; no line read here starts with a number and ": "),
# and TorchX's "[trainer0|0]:" (role|replica), which torchtune's multi-node runs go through
# (meta-pytorch/torchtune PR 2620's log).
_LABEL = re.compile(r"^(?:\d{1,6}: |\[[\w.-]{1,64}\|\d{1,6}\]:)")


def sniff(head: str, filename: str) -> bool:
    """torchtune's progress bar (``E|S|Loss: x``) or its metric logger's ``Step N | loss:x lr:y`` lines."""
    return ("|Loss: " in head and _SNIFF_BAR.search(head) is not None) or (
        "Step " in head and _SNIFF_DISK.search(head) is not None
    )


class TorchtuneParser:
    """Stateful line parser for a torchtune console capture or a DiskLogger text file."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._scoped = False
        self._bar_steps = False  # the progress bar has given steps: it is their record
        self._last_step: int | None = None
        self._clock: BarClock | None = None
        self._clock_total = 0  # the total of the bar the clock follows
        self._bar_n = 0
        self._pending_s: float | None = None  # the time of the update not yet matched to its step
        self._epochs: int | None = None
        self._per_epoch: int | None = None
        self._ckpt_dir: str | None = None

    def feed(self, line: str) -> Sequence[Record]:
        """Records in one line of the log."""
        try:
            return self._feed(line)
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, line)
            return ()

    def _feed(self, line: str) -> Sequence[Record]:
        records: list[Record] = []
        if "%|" in line:
            for segment in line.split("\r"):
                records.extend(self._frame(_LABEL.sub("", strip_prefixes(strip_ansi(segment)).strip(), count=1)))
        if "Step " in line and (m := _STEP_LINE.search(line)) is not None:
            records.extend(self._step_line(int(m.group(1)), m.group(2), line))
            return records
        if records:
            return records
        text = clean(line)
        if text[:1].isdigit() or text[:1] == "[":
            text = _LABEL.sub("", text, count=1)
        if "aved to " in text and (m := _SAVED.search(text)) is not None:
            return self._checkpoint(m.group(1))
        if "Validation loss: " in text and (m := _VALIDATION.search(text)) is not None:
            loss = finite(to_float(m.group(1)))
            return [Eval(iter=self._last_step, val_loss=loss)] if self._last_step is not None else []
        if text.startswith("epochs: ") and (m := _EPOCHS.match(text)) is not None:
            self._epochs = to_int(m.group(1))
            return self._target()
        failure = self._crash.check(text)  # cleaned: CrashWatch keeps srun's bare label
        return [failure] if failure is not None else ()

    def _scope(self, records: list[Record]) -> None:
        if not self._scoped:
            self._scoped = True
            records.append(RunInfo(tokens_per_sec_scope="gpu", eval_timing="excluded"))

    def _new_step(self, step: int) -> None:
        if self._last_step is not None and step < self._last_step:
            self._crash.reset()  # a resume from an earlier checkpoint, or a new run
        self._last_step = step

    # ----------------------------------------------------------- the bar

    def _frame(self, segment: str) -> list[Record]:
        frame = parse_frame(segment) if "%|" in segment else None
        if frame is None:
            return []
        m = _DESC.match(frame.desc)
        if m is None:
            if not frame.desc:
                self._tick(frame)  # the bar before set_description first names it (see _tick)
            return []  # else another tool's bar (datasets, downloads): it names itself
        step, loss = int(m.group(2)), m.group(3)
        records: list[Record] = []
        if frame.total != self._per_epoch:
            self._per_epoch = frame.total
            records.extend(self._target())
        self._tick(frame)
        if loss is None or (self._bar_steps and step == self._last_step):
            return records  # no step yet, or the same step redrawn
        self._bar_steps = True
        self._scope(records)
        self._new_step(step)
        seconds, self._pending_s = self._pending_s, None
        records.append(
            Iteration(iter=step, loss=to_float(loss), time_ms=seconds * 1000 if seconds is not None else None)
        )
        return records

    def _tick(self, frame: Frame) -> None:
        """Follow the bar's clock through one frame.

        One bar per epoch. Older recipes draw it first at its initial count
        under "<epochs_run>|<global_step>" (no loss); newer ones create it with
        no description (``tqdm(total=steps_per_epoch)``), so its initial frame
        and its first update's are bare, "  0%|   | 0/101 [00:00<?, ?it/s]"
        (meta-pytorch/torchtune PR 2620's log): both start the clock."""
        if self._clock is None or frame.n < self._bar_n or frame.total != self._clock_total:
            self._clock, self._clock_total, self._pending_s = BarClock.starting_at(frame), frame.total, None
        elif (seconds := self._clock.update(frame)) is not None:
            self._pending_s = seconds  # pbar.update(1) draws before set_description names the step
        self._bar_n = frame.n

    def _target(self) -> list[Record]:
        if self._epochs and self._per_epoch:
            return [RunInfo(target=self._epochs * self._per_epoch)]
        return []

    # ------------------------------------------------------ metric logger

    def _step_line(self, step: int, body: str, line: str) -> list[Record]:
        fields = dict(part.split(":", 1) for part in body.split() if ":" in part)
        records: list[Record] = []
        if "val_loss" in fields:
            records.append(Eval(iter=step, val_loss=finite(to_float(fields["val_loss"]))))
        if "loss" not in fields or self._bar_steps:
            return records  # an evaluation only, or steps the bar has already given
        self._scope(records)
        self._new_step(step)
        grad = fields.get("grad_norm")
        if grad is not None and grad.startswith("tensor(") and (g := _GRAD_TENSOR.search(line)) is not None:
            grad = g.group(1)
        tps = to_float(fields.get("tokens_per_second_per_gpu", ""))
        records.append(
            Iteration(
                iter=step,
                loss=to_float(fields["loss"]),
                lr=finite(to_float(fields.get("lr", ""))),
                tokens_per_sec=tps if tps is not None and math.isfinite(tps) and tps >= 0 else None,
                grad_norm=finite(to_float(grad)) if grad else None,
            )
        )
        return records

    def _checkpoint(self, path: str) -> list[Record]:
        folder = path.rstrip("/").rpartition("/")[0] if "." in path.rpartition("/")[2] else path.rstrip("/")
        if folder == self._ckpt_dir:
            return []  # another shard of the same checkpoint
        self._ckpt_dir = folder
        m = _STEP_DIR.search(folder)
        step = int(m.group(1)) if m is not None else self._last_step
        return [Checkpoint(iter=step, path=folder)]


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=TorchtuneParser)
