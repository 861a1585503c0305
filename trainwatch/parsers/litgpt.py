"""Lightning litgpt console output (``litgpt pretrain`` / ``litgpt finetune_*``).

Written from litgpt's own ``fabric.print`` calls (Lightning-AI/litgpt,
``litgpt/pretrain.py`` ``fit`` and ``litgpt/finetune/{full,lora,adapter,
adapter_v2}.py`` ``fit``; rank 0 prints). Since March 2024::

    Epoch 1 | iter 10 step 5 | loss train: 2.345, val: n/a | iter time: 512.34 ms (step)
      remaining time: 0:10:00

(one line; ``remaining time`` in pretraining only, ``(step)`` when that
iteration ran the optimizer). Before (lit-gpt and early litgpt)::

    iter 10 | step 5: loss 2.3456, iter time: 512.34 ms (optimizer.step), remaining time: 1.23 days
    iter 10 step 5: loss 2.3456, iter time: 512.34ms (optimizer.step)

``iter`` counts micro-batches, ``step`` optimizer steps (``iter`` /
gradient accumulation): the step shown is ``step`` as printed. ``iter time``
is the wall time of the one micro-batch that ended at that line, optimizer
step included on a ``(step)`` line; an optimizer step runs as many of them as
the accumulation, which is ``iter / step`` (both counters survive a resume).
``time_ms`` is that micro-batch time × the accumulation once a ``(step)`` line
has shown it, and ``None`` before. The loss is the running mean over the last
accumulation window. No learning rate, token count or rate reaches the console
(``tokens``/``total_tokens``/``learning_rate`` go to ``fabric.log_dict`` only),
and no step target either (pretraining stops on ``max_tokens``, fine-tuning on
``epochs``; neither states a step count).

Validation: ``iter 100: val loss 2.1000, val time: 1234.56 ms`` after an
optimizer step (its ``iter``: mapped to the step through the accumulation),
``Final evaluation | val loss: 2.100 | val ppl: 8.166`` at the end. Evaluation
and checkpoint time falls outside every ``iter time`` (``eval_timing=
"excluded"``). Checkpoints: ``Saving checkpoint to '.../step-00001000/
lit_model.pth'`` (``LoRA weights``, ``adapter weights``, ``adapter v2
weights`` in fine-tuning; ``.../final/...`` at the end). The end: pretraining's
``| - Training Time : 123.45 s`` report (``Training time: 123.45s`` before
that), fine-tuning's ``| - Training Time             :  123.45 s``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.text import clean, to_float, to_int

FORMAT = "litgpt_stdout"

_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
# Since 2024-03: "Epoch 1 | iter 10 step 5 | loss train: 2.345, val: n/a | iter time: 512.34 ms (step)".
_LINE = re.compile(
    r"Epoch (\d+) \| iter (\d+) step (\d+) \| loss train: " + _NUM + r", val: \S+ \| iter time: ([\d.]+) ms( \(step\))?"
)
# Before: "iter 10 | step 5: loss 2.3456, iter time: 512.34 ms (optimizer.step)" and 2023's
# "iter 10 step 5: loss 2.3456, iter time: 512.34ms (optimizer.step)".
_OLD = re.compile(r"^iter (\d+) \|? ?step (\d+): loss " + _NUM + r", iter time: ([\d.]+) ?ms( \(optimizer\.step\))?")
# "iter N: val loss" since 2024; lit-gpt 2023 (finetune/*.py, pretrain/tinyllama.py) printed
# f"step {iter_num}: val loss {val_loss:.4f}, val time: {t1 * 1000:.2f}ms", N still the iter.
_VAL = re.compile(r"^(?:iter|step) (\d+): val loss " + _NUM + r", val time: ([\d.]+) ?ms")
_FINAL = re.compile(r"^Final evaluation \| val loss: " + _NUM + r" \| val ppl: ")
_SAVE = re.compile(r"^Saving (?:checkpoint|LoRA weights|adapter(?: v2)? weights) to (['\"])(.*)\1")
_STEP_DIR = re.compile(r"step-(\d+)")
_END = re.compile(r"^(?:\| - Training Time\s*:\s*[\d.]+ s|Training time: [\d.]+s)")
_TOTAL_PARAMS = re.compile(r"^Total parameters:? ([\d,]+)")
_HPARAM_INT = re.compile(r"\b(global_batch_size|micro_batch_size|max_seq_length)=(\d+)|'(devices|num_nodes)': (\d+)")
_SNIFF = re.compile(
    r"Epoch \d+ \| iter \d+ step \d+ \| loss train: |(?<!\w)iter \d+ \|? ?step \d+: loss \S+, iter time: [\d.]+ ?ms"
)
# srun --label's bare "0: " (text.clean leaves it: elsewhere a line may start "10: ..."; no line read here does).
_LABEL = re.compile(r"^\d{1,6}: ")


def sniff(head: str, filename: str) -> bool:
    """A litgpt training line (either grammar)."""
    return "iter time: " in head and _SNIFF.search(head) is not None


class LitgptParser:
    """Stateful line parser for one litgpt console capture."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._started = False
        self._accum: int | None = None  # micro-batches per optimizer step, once a "(step)" line shows it
        self._from_zero = False  # "iter" is the 0-based iter_num (lit-gpt 2023), see _accumulation
        self._last: tuple[int, int] | None = None  # (iter, step) of the newest training line
        self._hparams: dict[str, int] = {}
        self._pretrain = False

    def feed(self, line: str) -> Sequence[Record]:
        """Records in one line of the log."""
        try:
            return self._feed(line)
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, line)
            return ()

    def _feed(self, raw: str) -> Sequence[Record]:
        line = clean(raw)
        if line[:1].isdigit():
            line = _LABEL.sub("", line, count=1)
        if "iter time: " in line:
            m = _LINE.search(line)
            if m is not None:
                return self._step(int(m.group(2)), int(m.group(3)), m.group(4), m.group(5), m.group(6) is not None)
            m = _OLD.match(line)
            if m is not None:
                return self._step(int(m.group(1)), int(m.group(2)), m.group(3), m.group(4), m.group(5) is not None)
        if line.startswith(("iter ", "step ")) and (m := _VAL.match(line)) is not None:
            return self._eval(int(m.group(1)), to_float(m.group(2)))
        if line.startswith("Final evaluation") and (m := _FINAL.match(line)) is not None:
            step = self._last[1] if self._last is not None else None
            return [Eval(iter=step, val_loss=to_float(m.group(1)))] if step is not None else []
        if line.startswith("Saving ") and (m := _SAVE.match(line)) is not None:
            return self._checkpoint(m.group(2))
        if _END.match(line):
            self._crash.finished()
            return [Outcome("finished", "Training time reported")]
        if not self._started:
            return self._preamble(line)
        failure = self._crash.check(line)  # cleaned: CrashWatch keeps srun's bare label
        return [failure] if failure is not None else ()

    def _step(self, it: int, step: int, loss: str, iter_ms: str, optimizer_step: bool) -> list[Record]:
        records: list[Record] = []
        if not self._started:
            self._started = True
            records.append(self._run_info())
        if self._last is not None and step < self._last[1]:
            self._crash.reset()  # a resume from an earlier checkpoint, or a new run
        if it == 0:
            self._from_zero = True
        if optimizer_step and step > 0:
            self._accumulation(it, step)
        self._last = (it, step)
        micro_ms = to_float(iter_ms)
        time_ms = micro_ms * self._accum if micro_ms is not None and self._accum is not None else None
        records.append(Iteration(iter=step, loss=to_float(loss), time_ms=time_ms))
        return records

    def _accumulation(self, it: int, step: int) -> None:
        """Micro-batches per optimizer step, from an optimizer step's line.

        ``iter`` counts micro-batches done (the step ran at ``iter = accum x step``),
        except in lit-gpt's 2023 fine-tuning scripts, which print the 0-based
        ``iter_num`` ("iter 77 step 39: ... (optimizer.step)" at accumulation 2:
        Lightning-AI/litgpt issue 689): there ``iter + 1 = accum x step``.
        """
        done = it + 1 if self._from_zero else it
        if done % step and (it + 1) % step == 0:
            self._from_zero, done = True, it + 1
        if done >= step and done % step == 0:
            self._accum = done // step

    def _eval(self, it: int, loss: float | None) -> list[Record]:
        """``iter N: val loss``: at the optimizer step that iteration ended."""
        done = it + 1 if self._from_zero else it
        if self._last is not None and self._last[0] == it:
            step: int | None = self._last[1]
        elif self._accum and done % self._accum == 0:
            step = done // self._accum
        else:
            return []  # the step is not known: none is made up
        return [Eval(iter=step, val_loss=loss)] if step is not None else []

    def _checkpoint(self, path: str) -> list[Record]:
        m = _STEP_DIR.search(path)
        if m is not None:
            step: int | None = int(m.group(1))
        else:
            step = self._last[1] if self._last is not None and "/final/" in path else None
        return [Checkpoint(iter=step, path=path)]

    def _preamble(self, line: str) -> list[Record]:
        """Facts printed before training: parameters and pretraining's hyperparameters."""
        if line.startswith("Total parameters") and (m := _TOTAL_PARAMS.match(line)) is not None:
            self._pretrain = True
            params = to_int(m.group(1).replace(",", ""))
            return [RunInfo(params=params)] if params else []
        for m in _HPARAM_INT.finditer(line):
            key, value = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            number = to_int(value)
            if number:
                self._hparams[key] = number
        return []

    def _run_info(self) -> RunInfo:
        hp = self._hparams
        world = hp["devices"] * hp["num_nodes"] if "devices" in hp and "num_nodes" in hp else None
        length = hp.get("max_seq_length")
        # Pretraining's optimizer step consumes global_batch_size sequences of
        # max_seq_length tokens (every sequence is full length there; fine-tuning
        # pads to each batch's longest, so it has no fixed count).
        tokens = hp["global_batch_size"] * length if self._pretrain and length and "global_batch_size" in hp else None
        return RunInfo(
            world_size=world,
            block_size=length,
            tokens_per_iter=tokens,
            eval_timing="excluded",
        )


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=LitgptParser)
