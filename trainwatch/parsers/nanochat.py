"""karpathy/nanochat training output: ``speedrun.log`` (everything the speedrun
script printed) or one script's console (wandb's ``output.log``).

Training lines, as ``scripts/base_train.py``, ``mid_train.py`` and
``chat_sft.py`` print them (``print0``, rank 0 only)::

    step 00011/05742 (0.19%) | loss: 7.763521 | lrm: 1.00 | dt: 49206.85ms | tok/sec: 21,309
      | bf16_mfu: 37.10 | epoch: 1 | total time: 0.82m | eta: 4700.1m
    step 00001 (0.28%) | loss: 1.284350 | lrm: 0.00 | dt: 15133.87ms | tok/sec: 34,643
      | mfu: 1.53 | total time: 0.00m

(each one line in the log). Base training prints ``step/num_iterations`` (0-based: the step just
trained; the loop's last pass, ``step == num_iterations``, only evaluates and
saves). Older versions write ``mfu:`` and no ``epoch``/``eta``; the newest
``epoch: 1 pq: 3 rg: 12``; forks add ``grad norm: 0.4282 |``. Mid-training
and SFT print no total (``step`` counted from 1, the percentage is the share
of the data consumed): their target is *derived* from that percentage
(step × 100 / pct, rounded, and above the step until 100 %), and at the
phase's end it becomes the last step. ``loss`` is the debiased EMA of the
training loss, ``dt`` that one step's time (``synchronize()`` around the
step only: evaluation is excluded), ``tok/sec`` = batch tokens / dt over
all ranks, ``mfu``/``bf16_mfu`` a percentage of ``GPU: <name> | Peak FLOPS
(BF16): 7.10e+13`` × world size. Old ``chat_sft.py`` printed ``Step
00000/00651 | Training loss: <f>| lrm: <f>| num_tokens: <n>``.

Evaluations: ``Step 00250 | Validation bpb: <f>``, ``Step 02000 | CORE
metric: <f>``, ``Step 00200 | ChatCORE: <f> | ChatCORE_cat: <f>`` (old SFT:
``Step N | Validation loss: <f>`` and ``Step N | mmlu_acc: <f>, ...``).
Bits per byte is not a loss: it is normalised per byte of text and in bits,
where METRICS.md's val loss sits beside the training loss (nats per token);
the bytes per token needed to convert it are not in the log. So it is the
Eval metric ``val_bpb`` and ``val_loss`` stays ``None``; lines of one step
(bpb, then CORE) merge into one Eval, as the aggregator keeps one per step.

A speedrun runs several *phases* (base, mid, SFT), each a torchrun launch
whose step count starts again: the aggregator takes the lower step as a new
segment, and each phase names the run (``RunInfo.name``: "nanochat d24
sft"), sets its target and ends with ``Total training time: <m>m`` (after
``Peak memory usage``; old SFT: ``✅ Saved model checkpoint to``), an
``Outcome("finished")``. A failure while no phase trains (a launch that
dies before its first step, an eval script after a phase) is held back: a
later phase that trains supersedes it, and ``flush()`` (end of input) hands
it over. Failures inside a phase are emitted at once. Chat RL lines and the
``Rank r | a/b`` progress of chat evals are not read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.nanochat_steps import fast_step, read_step
from trainwatch.parsers.text import PREFIX, last_cr_segment, strip_ansi, strip_prefixes, to_float, to_int

FORMAT = "nanochat"

_SNIFF = re.compile(
    rf"^(?:{PREFIX})?(?:step \d{{5,}}(?:/\d{{5,}})? \(\d+\.\d\d%\) \| loss: |Step \d{{5,}} \| Validation bpb: )",
    re.MULTILINE,
)
_SNIFF_MARKERS = ("nanochat.checkpoint_manager - ", "nanochat.common - ", "/nanochat/report/header.md")
# speedrun.sh installs the package before anything else: uv's build of the
# local checkout and its install line may be all a long preamble of download
# bars (a MB of them before the first step) shows in a sniff's head.
_SNIFF_INSTALL = re.compile(r"\bBuil(?:t|ding) nanochat @ file:/|^ [+~] nanochat==\d", re.MULTILINE)
_STEP_EVAL = re.compile(r"Step (\d+)(/\d+)? ")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - ")
_PREFIX_START = frozenset("[0123456789 \t")
_MODEL_INT = re.compile(r"""['"]?(n_layer|n_head|n_embd|sequence_len)['"]?: (\d{1,18})\b""")
_GPU = re.compile(r"GPU: (.+?) \| Peak FLOPS \(BF16\): ([\d.eE+-]+)")
_MICRO = re.compile(r"Tokens / micro-batch / rank: (\d{1,18}) x (\d{1,18}) =")
_BATCH = re.compile(r"Total batch size ([\d,]+) => gradient accumulation steps: (\d{1,18})\b")
_PARAMS = re.compile(r"^(?:total\s+:|Number of parameters:) ([\d,]+)")
_OLD_SHAPE = {"num_layers": "n_layer", "num_heads": "n_head", "model_dim": "n_embd"}
_SAVED_MODEL = re.compile(r"Saved model (?:parameters|file) to: (\S*?(\w+)_checkpoints/\S*model_(\d{1,18})\.pt)")
_PHASE_OF_DIR = {"base": "base", "mid": "mid", "chatsft": "sft", "sft": "sft"}
# Printed by new chat_sft.py before its first step, and by no other phase.
_SFT_HINTS = ("Training mixture:", "Inherited ", "Target examples per step")
_EVAL_KEYS = {
    "Validation bpb": "val_bpb",
    "CORE metric": "core_metric",
    "ChatCORE": "chatcore",
    "ChatCORE_cat": "chatcore_cat",
}


def sniff(head: str, filename: str) -> bool:
    """nanochat's step or eval lines, or its logger and report lines."""
    if "\x00" in head[:4096]:
        return False  # a binary log that quotes the console (W&B's run-<id>.wandb) is not this text
    if _SNIFF.search(head) is not None:
        return True
    if any(marker in head for marker in _SNIFF_MARKERS):
        return True
    return "nanochat" in head and _SNIFF_INSTALL.search(strip_ansi(head)) is not None


class NanochatParser:
    """Stateful line parser for nanochat's console output, phases included."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._training = False  # inside a phase: step lines seen, no end yet
        self._phase: str | None = None  # "base", "mid" or "sft"
        self._form: str | None = None  # the step lines' shape in this phase (see _phase_step)
        self._done_phase: str | None = None  # the last phase that printed its end
        self._sft_hint = False  # an SFT-only line since the last phase ended
        self._last_step: int | None = None
        self._target: int | None = None  # as last sent
        self._derived = False  # the phase's target comes from the percentage
        self._held: list[Outcome] = []
        self._eval_step: int | None = None
        self._replay = False  # the eval of _eval_step is due again (see _phase_step)
        self._eval_loss: float | None = None
        self._eval_metrics: dict[str, float] = {}
        self._stamp: datetime | None = None  # of the last logger line since the last step line
        self._tag: str | None = None  # the model tag, "d24"
        self._shape: dict[str, int] = {}

    def feed(self, line: str) -> Sequence[Record]:
        """Records in one line of the log."""
        try:
            return self._feed(line)
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, line)
            return ()

    def flush(self) -> list[Record]:
        """End of input: a failure held back since no later phase superseded it."""
        held, self._held = self._held, []
        return list(held)

    def _feed(self, line: str) -> Sequence[Record]:
        if not line.startswith("step "):
            if "\r" in line:
                line = last_cr_segment(line)
            if "\x1b" in line:
                line = strip_ansi(line)  # also ESC[A glued before a step line
            if line[:1] in _PREFIX_START:
                line = strip_prefixes(line)
            line = line.rstrip()
        if line.startswith("step "):
            records = self._step(line)
            if records is not None:
                return records
        elif line.startswith("Step ") and (m := _STEP_EVAL.match(line)) is not None:
            step = to_int(m.group(1))
            return self._step_upper(line, step, m.group(2)) if step is not None else ()
        return self._other(line)

    # ------------------------------------------------------------- training

    def _step(self, line: str) -> list[Record] | None:
        """A ``step N[/M] (p%) | key: value | ...`` line; ``None`` if not one."""
        got = fast_step(line) or read_step(line)
        if got is None:
            return None
        total, pct, iteration = got
        out = self._phase_step(iteration.iter, "base" if total is not None else "chat")
        if total is None or total != self._target:
            out += self._target_for(iteration.iter, total, pct)
        out.append(iteration)
        return self._replay_eval(out)

    def _step_upper(self, line: str, step: int, total: str | None) -> list[Record]:
        """``Step N | <eval>: <f>`` lines, and old SFT's ``Step N/M | Training loss: ...``."""
        parts = [part.strip() for part in line.split("|")]
        fields = dict(part.partition(": ")[::2] for part in parts[1:])
        if total is not None:
            if "Training loss" not in fields or len(parts) < 3:
                return []  # chat RL's "Step i/n | Example step ...": not read
            loss = to_float(fields["Training loss"])
            if loss is None:
                return []
            out = self._phase_step(step, "old_sft")
            out += self._target_for(step, to_int(total[1:]), None)
            out.append(Iteration(iter=step, loss=loss))
            return self._replay_eval(out)
        metrics = {key: value for name, key in _EVAL_KEYS.items() if (value := _finite(fields.get(name))) is not None}
        val_loss = _finite(fields.get("Validation loss"))
        if not metrics and val_loss is None and len(parts) == 2:
            # Old SFT: "Step N | mmlu_acc: 0.3, arc_easy_acc: 0.4".
            pairs = (item.partition(": ")[::2] for item in parts[1].split(", "))
            metrics = {key: value for key, text in pairs if (value := _finite(text)) is not None}
        if not metrics and val_loss is None:
            return []
        if step != self._eval_step:
            self._eval_step, self._eval_loss, self._eval_metrics = step, None, {}
        self._eval_metrics.update(metrics)
        self._eval_loss = val_loss if val_loss is not None else self._eval_loss
        return [Eval(iter=step, val_loss=self._eval_loss, metrics=dict(self._eval_metrics))]

    def _phase_step(self, step: int, form: str) -> list[Record]:
        """Begin a new phase if this step line starts one.

        ``form`` is the line's shape: "base" (``step i/N``), "chat" (no
        total: mid or SFT) or "old_sft" (``Step i/N | Training loss``).
        """
        back = self._last_step is not None and step <= self._last_step
        new = not self._training or form != self._form or back
        self._last_step = step
        self._stamp = None
        if not new:
            return []
        if form == "chat":  # the old pipeline trains mid, then SFT; the new one SFT only
            form_phase = "sft" if self._sft_hint or self._done_phase == "mid" else "mid"
        else:
            form_phase = "base" if form == "base" else "sft"
        self._training, self._form, self._phase = True, form, form_phase
        self._held.clear()  # superseded: this launch trains
        self._crash.reset()
        self._sft_hint = False
        self._target = None
        # The step going back makes the aggregator drop what it holds from
        # here on: the new phase's own eval of this step, printed just before.
        self._replay = back and self._eval_step is not None and self._eval_step >= step
        # dt times the training step alone; tok/sec covers every rank.
        return [RunInfo(name=self._name(), tokens_per_sec_scope="total", eval_timing="excluded")]

    def _replay_eval(self, out: list[Record]) -> list[Record]:
        """``out``, then the current eval again if the phase's first step superseded it."""
        if self._replay and self._eval_step is not None:
            self._replay = False
            out.append(Eval(iter=self._eval_step, val_loss=self._eval_loss, metrics=dict(self._eval_metrics)))
        return out

    def _target_for(self, step: int, total: int | None, pct: float | None) -> list[Record]:
        if total is not None:
            self._derived = False
            target = total
        elif pct is not None and math.isfinite(pct) and pct > 0:
            self._derived = True
            target = round(step * 100 / pct)
            target = max(target, step + 1) if pct < 100 else max(target, step)
            # SFT's percentage is the share of rows consumed, which steps
            # advance unevenly: the estimate wobbles by a step or two near the
            # end. Keep the one we have while it is that close and ahead.
            kept = self._target
            if kept is not None and kept > step and abs(target - kept) <= max(1, kept // 200):
                return []
        else:
            return []
        if target == self._target or target <= 0:
            return []
        self._target = target
        return [RunInfo(target=target)]

    def _end_phase(self, message: str) -> list[Record]:
        out: list[Record] = []
        last = self._last_step or 0
        if self._eval_step is not None and last <= self._eval_step <= last + 1:
            last = self._eval_step  # base evaluates once more at step == num_iterations
        if self._derived and last and last != self._target:
            self._target = last  # the phase is done: its length is known now
            out.append(RunInfo(target=last))
        out.append(Outcome("finished", message, self._stamp))
        self._training, self._done_phase = False, self._phase
        self._eval_step = None
        self._crash.reset()
        return out

    def _name(self) -> str:
        tag = self._tag or (f"d{self._shape['n_layer']}" if "n_layer" in self._shape else None)
        return " ".join(part for part in ("nanochat", tag, self._phase) if part)

    # --------------------------------------------------------------- others

    def _other(self, line: str) -> Sequence[Record]:
        if line.startswith("Total training time: ") and self._training:
            return self._end_phase(f"{self._phase} training done ({line})")
        if "Saved model checkpoint to" in line and self._training and self._phase == "sft":
            return self._end_phase(f"sft training done ({line.lstrip('✅ ')})")
        if _STAMP.match(line) is not None:
            return self._logger(line)
        records = self._preamble(line) if not self._training else None
        if records:
            return records
        failure = self._crash.check(line)
        if failure is None:
            return ()
        if self._training:
            return [failure]
        self._held.append(failure)  # nothing trains now: a later phase may supersede it
        return ()

    def _logger(self, line: str) -> list[Record]:
        """``2026-03-01 21:00:58,155 - nanochat.x - INFO - message`` lines."""
        try:
            self._stamp = datetime.fromisoformat(line[:23].replace(",", "."))
        except ValueError:
            self._stamp = None
        message = line.split(" - ", 3)[-1]
        if "model_" in message and (m := _SAVED_MODEL.search(message)) is not None:
            phase = _PHASE_OF_DIR.get(m.group(2))
            out: list[Record] = [Checkpoint(iter=int(m.group(3)), path=m.group(1), wall_time=self._stamp)]
            if phase is not None and phase != self._phase and self._training:
                self._phase = phase  # the checkpoint folder names the phase for sure
                out.insert(0, RunInfo(name=self._name()))
            return out
        if message.startswith("Distributed world size: "):
            size = to_int(message.rsplit(" ", 1)[1])
            return [RunInfo(world_size=size)] if size else []
        if "guessing model tag: " in message:
            self._tag = message.rsplit(" ", 1)[1]
        elif message.startswith("Loading model from ") and "/mid_checkpoints/" in message:
            self._sft_hint = True
        elif message.startswith("Building model with config:"):
            return self._shape_info(message)
        return []

    def _preamble(self, line: str) -> list[Record] | None:
        """Run facts printed before a phase's first step; ``None`` if none."""
        if any(hint in line for hint in _SFT_HINTS):
            self._sft_hint = True
            return None
        if line.startswith("GPU: ") and (m := _GPU.match(line)) is not None:
            peak = to_float(m.group(2))
            peak_tflops = peak / 1e12 if peak is not None and math.isfinite(peak) and peak > 0 else None
            return [RunInfo(gpu=m.group(1).strip(), mfu_peak_tflops=peak_tflops, dtype="bfloat16")]
        if line.startswith("COMPUTE_DTYPE: "):
            dtype = line.split()[1].removeprefix("torch.")
            return [RunInfo(dtype=dtype)]
        if line.startswith("Tokens / micro-batch / rank: ") and (m := _MICRO.match(line)) is not None:
            return [RunInfo(batch_size=int(m.group(1)) or None, block_size=int(m.group(2)) or None)]
        if line.startswith("Total batch size ") and (m := _BATCH.match(line)) is not None:
            tokens = to_int(m.group(1).replace(",", ""))
            # grad_accum_steps = total / (per-rank micro-batch × world): per GPU.
            return [RunInfo(tokens_per_iter=tokens or None, grad_accum_per_gpu=int(m.group(2)) or None)]
        if (line.startswith(("total ", "Number of parameters:"))) and (m := _PARAMS.match(line)) is not None:
            params = to_int(m.group(1).replace(",", ""))
            return [RunInfo(params=params or None)]
        if line[:3] == '  "' or line.startswith(("num_layers: ", "num_heads: ", "model_dim: ")):
            return self._shape_info(line)
        return None

    def _shape_info(self, text: str) -> list[Record]:
        """Model shape from ``Model config:`` JSON lines, a config dict, or old ``num_layers: 20``."""
        found = {key: int(value) for key, value in _MODEL_INT.findall(text)}
        key, _, value = text.partition(": ")
        if key in _OLD_SHAPE and (number := to_int(value.split()[0] if value.split() else "")) is not None:
            found[_OLD_SHAPE[key]] = number
        found = {key: value for key, value in found.items() if value > 0}
        if not found:
            return []
        self._shape.update(found)
        block = found.pop("sequence_len", None)
        info: dict[str, Any] = {**found, "block_size": block} if block else found
        if "n_layer" in found:
            info["architecture"] = f"nanochat d{found['n_layer']}"
        return [RunInfo(**info)]


def _finite(text: str | None) -> float | None:
    number = to_float(text) if text else None
    return number if number is not None and math.isfinite(number) else None


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=NanochatParser)
