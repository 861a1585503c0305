"""llm.c (``train_gpt2cu``): its console output (``main.log``: ``llmc_main``).

**Console** (``llmc_stdout``). A ``+----+`` box of ``| key | value |`` rows
(``max_steps``, ``sequence length T``, ``total batch size``, ``device``,
``peak TFlops``, ``num_parameters``, ``train_num_batches``,
``num_processes`` …), a few setup prints (``batch_size B=32 * seq_len T=1024
* num_processes=1 and total_batch_size=524288``, ``=> setting
grad_accum_steps=16``), then one line per optimizer step::

    step    1/19560 | loss 11.010252 (+nanz)| norm 15.1374 (+nanz)| lr 8.57e-07 \
        | 4621.47 ms | 29.2% bf16 MFU | 113446 tok/s

(one line, broken here).

``ms`` is that step's own time (the eval passes are outside its timer:
``eval_timing="excluded"``);
``tok/s`` is a bias-corrected running average over all processes (llm.c
multiplies by ``num_processes``), so its scope is "total". Every
``val_loss_every`` steps (and at the last step) ``val loss X`` is printed for
the step just logged (``step 250/…`` then ``val loss`` = the eval after 250
steps; the first one, before ``step 1``, is iteration 0), optionally followed
by one HellaSwag line whose progress is ``\\r``-overwritten and ends in
``HellaSwag: 3059/10042 = 0.304621``. A clean run ends with ``total average
iteration time: X ms``.

Two quirks of real runs: stdout is block-buffered when redirected to a file
while stderr and slurmstepd write unbuffered, so an error message or a SLURM
kill notice can land in the middle of a step line (``… | norm 0.2206
(-0.39z)| lError: Token out of vocabulary …``) and the buffered remainder of
stdout can follow it. The readable head of such a cut step line is still
parsed; its possibly cut last field is dropped.

Older train_gpt2.cu printed ``step 1/74: train loss 4.36 norm … lr … (80.64
ms, 6350 tok/s)``; it is read too. Fatal lines (``Error: …``, ``[CUDA
ERROR]``, a slurmstepd kill) become ``Outcome("failed")`` even after a NaN
loss: the aggregator ranks divergence first, which is what the user must act
on; a kill or crash after ``total average iteration time`` changes nothing.

A val loss followed by a HellaSwag result is one eval pass, so it becomes one
``Eval``: it is held until the next line says whether HellaSwag follows.
``flush()`` emits whatever is still held: call it at end of input (calling it
on an idle live file is safe too: a HellaSwag result arriving afterwards
re-emits the val loss with it, replacing that ``Eval``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from trainwatch.core.records import BulkRecord, Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers import bulk, llmc_bulk
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.text import clean, slurm_kill, to_float, to_int

FORMAT = "llmc_stdout"

_STEP_HEAD = re.compile(r"step\s+(\d+)\s*/\s*(\d+)\s*")
_STEP_LINE = re.compile(
    r"step +(\d+)/(\d+) \| loss +([^ ]+) \([^)]*\)\| norm +([^ ]+) \([^)]*\)\| lr ([^ ]+) \| ([^ ]+) ms"
    r" \| ([^ %]+)% bf16 MFU \| ([^ ]+) tok/s"
)
# Older train_gpt2.cu: ``step    1/74: train loss 4.367631 norm 1.2 lr 1.00e-04 (80.64 ms, 6350 tok/s)``.
_OLD_STEP = re.compile(
    r"step\s+(\d+)/(\d+): train loss (\S+)(?: norm (\S+))?(?: lr (\S+))?"
    r" \(([\d.]+) ms(?:, ([\d.]+) tok/s)?\)"
)
_HELLASWAG = re.compile(r"HellaSwag:\s*(\d+)\s*/\s*(\d+)\s*=\s*(\S+)")
_SETUP = re.compile(r"batch_size B=(\d+) \* seq_len T=(\d+) \* num_processes=(\d+) and total_batch_size=(\d+)")
# llm.c's fatal checks (utils.h, cuda_common.h) print one of these and exit;
# the rest are how a C++ abort or a crash shows in a job's output.
_FATAL = (
    "Error:",
    "[CUDA ERROR]",
    "[cuBLAS ERROR]",
    "[CUDNN ERROR]",
    "NCCL error",
    "MPI error",
    "terminate called after throwing",
    "Segmentation fault",
    "Aborted (core dumped)",
)
HELLASWAG_METRIC = "hellaswag"


def sniff(head: str, filename: str) -> bool:
    """An llm.c step line, or its config box / setup prints."""
    if ("| loss " in head or ": train loss " in head) and _SNIFF_STEP.search(head) is not None:
        return True
    return "=> setting grad_accum_steps=" in head or (
        "+-----" in head and "| train data pattern" in head and "| num_parameters" in head
    )


_SNIFF_STEP = re.compile(r"^step\s+\d+/\d+(?: \| loss |: train loss )", re.MULTILINE)


class LlmcStdoutParser:
    """Stateful parser of one llm.c console log."""

    def __init__(self) -> None:
        self._step = 0  # steps done so far (the last ``step i/N`` line's i)
        self._target: int | None = None
        self._box: dict[str, str] = {}
        self._in_box = False
        self._pending: Record | None = None  # val-loss Eval or Checkpoint awaiting its next line
        self._released: Eval | None = None  # the last val-loss Eval emitted on its own
        self._sample = 0  # 0: not sampling; 1: after "generating:"; 2: inside the "---" fences
        self._finished = False

    def feed(self, line: str) -> Sequence[Record]:
        """Records for one line (its trailing newline already removed)."""
        # Fast path for the bulk of a long log: a whole, plain step line while
        # nothing is held back. Anything unusual takes the general path.
        if (
            line.startswith("step ")
            and line.endswith("tok/s")
            and self._pending is None
            and not self._sample
            and not self._in_box
            and (m := _STEP_LINE.fullmatch(line)) is not None
            and self._target is not None
            and to_int(m[2]) == self._target
        ):
            # Hot path: try/except (not contextlib.suppress) and positional
            # arguments (iter, loss, time_ms, mfu_pct, tokens_per_sec, lr,
            # grad_norm), which build the frozen record twice as fast.
            try:
                step, mfu, time_ms = int(m[1]), float(m[7]), float(m[6])
                it = Iteration(
                    step,
                    float(m[3]),
                    time_ms if time_ms >= 0 else None,
                    mfu if mfu > 0 else None,  # llm.c prints -100% for an unknown GPU
                    float(m[8]),
                    float(m[5]),
                    float(m[4]),
                )
            except ValueError:
                pass
            else:
                self._step = step
                return (it,)
        out: list[Record] = []
        try:
            self._feed(line, out)
        except Exception:  # a safety net only: a monitor must never die on a strange line
            line_failed(FORMAT, line)
            return out
        return out

    def feed_text(self, text: str) -> list[BulkRecord]:
        """Records for whole lines (each ending in ``\\n``): those of ``feed``
        of each line in turn, with runs of plain step lines as
        ``IterationColumns`` (see ``parsers.base.BulkLineParser``)."""
        out: list[BulkRecord] = []
        text = bulk.whole_lines(text)
        for begin, end, plain in bulk.runs(text, llmc_bulk.STEP_RUN, "step "):
            if plain:
                self._plain_lines(text[begin:end], out)
            else:
                bulk.feed_lines(self.feed, text[begin:end], out)
        return out

    def flush(self) -> list[Record]:
        """End of input: emit what is still held back."""
        out: list[Record] = []
        self._release(out)
        self._close_box(out)
        return out

    def _plain_lines(self, block: str, out: list[BulkRecord]) -> None:
        """Take whole plain step lines as ``feed`` takes each of them."""
        # Its fast path needs nothing held back and the target known: the
        # general path of the first line settles that (or, in a sample, each).
        pos = 0
        while pos < len(block) and (self._pending is not None or self._sample or self._in_box or self._target is None):
            newline = block.index("\n", pos)
            out += self.feed(block[pos:newline])
            pos = newline + 1
        block = block[pos:]
        long = block.count("\n") >= bulk.MIN_COLUMN_ROWS
        columns = llmc_bulk.step_columns(block, self._target) if long else None
        if columns is None:
            bulk.feed_lines(self.feed, block, out)
            return
        self._step = columns.iters[-1]
        out.append(columns)

    # ------------------------------------------------------------ internals

    def _feed(self, line: str, out: list[Record]) -> None:
        if "slurmstepd" in line and (kill := slurm_kill(line)) is not None:
            # slurmstepd writes into a half-flushed stdout line: read the
            # head, then the kill. A kill after a clean end changes nothing.
            self._feed_text(clean(line[: line.find("slurmstepd")]), out, partial=True)
            self._release(out)
            if not self._finished:
                out.append(Outcome("failed", kill[0], kill[1]))
            return
        text = clean(line)
        if self._sample and self._sampling(text):
            return
        for marker in _FATAL:
            if marker in text and not text.startswith("Error details:"):
                # Possibly written into a half-flushed step line: read its head.
                at = text.find(marker)
                self._feed_text(text[:at], out, partial=True)
                self._release(out)
                # A crash in teardown after a clean end leaves the run finished.
                if not self._finished:
                    out.append(Outcome("failed", text[at:][:200]))
                return
        self._feed_text(text, out, partial=False)

    def _feed_text(self, text: str, out: list[Record], partial: bool) -> None:
        text = text.strip()
        if self._in_box and not text.startswith(("|", "+")):
            self._close_box(out)
        if self._pending is not None:
            if self._completes_pending(text, out):
                return
            self._release(out)
        if not text:
            return
        if text.startswith("step ") and (m := _OLD_STEP.match(text)) is not None:
            self._old_step_line(m, out)
        elif text.startswith("step ") and (m := _STEP_HEAD.match(text)) is not None:
            self._step_line(m, text, partial, out)
        elif text.startswith("val loss"):
            val = to_float(text[8:].strip()) if not partial else None
            if val is not None:
                self._pending = Eval(iter=self._step, val_loss=val)
        elif "HellaSwag:" in text and (m := _HELLASWAG.search(text)) is not None:
            acc = to_float(m.group(3))
            if acc is not None:
                # If its val loss went out already (flush() while HellaSwag
                # ran), repeat it: this Eval replaces that one.
                last = self._released
                val = last.val_loss if last is not None and last.iter == self._step else None
                out.append(Eval(iter=self._step, val_loss=val, metrics={HELLASWAG_METRIC: acc}))
        elif text.startswith(("|", "+-")):
            self._box_line(text)
        elif text.startswith("Writing checkpoint at step"):
            step = to_int(text.rsplit(" ", 1)[1])
            self._pending = Checkpoint(iter=step if step is not None else self._step)
        elif text.startswith("batch_size B=") and (m := _SETUP.match(text)) is not None:
            out.append(
                RunInfo(
                    batch_size=int(m.group(1)),
                    block_size=int(m.group(2)),
                    world_size=int(m.group(3)),
                    tokens_per_iter=int(m.group(4)),
                )
            )
        elif text.startswith("=> setting grad_accum_steps="):
            # llm.c's grad_accum_steps = total batch / (B·T·processes): per process.
            out.append(RunInfo(grad_accum_per_gpu=to_int(text.rsplit("=", 1)[1])))
        elif text.startswith("total average iteration time:"):
            self._finished = True
            out.append(Outcome("finished", text))
        elif text == "generating:":
            self._sample = 1

    def _step_line(self, m: re.Match[str], text: str, partial: bool, out: list[Record]) -> None:
        step, total = int(m.group(1)), int(m.group(2))
        fields = text[m.end() :].split("|")[1:]
        if partial and not text.endswith("|"):
            fields = fields[:-1]  # the field the cut went through may be truncated
        values: dict[str, Any] = {}
        for field in fields:
            self._step_field(field.strip(), values)
        if total > 0 and total != self._target:
            self._target = total
            out.append(RunInfo(target=total, tokens_per_sec_scope="total", eval_timing="excluded"))
        self._step = step
        out.append(Iteration(iter=step, **values))

    def _old_step_line(self, m: re.Match[str], out: list[Record]) -> None:
        step, total = int(m[1]), int(m[2])
        if total > 0 and total != self._target:
            self._target = total
            out.append(RunInfo(target=total, tokens_per_sec_scope="total", eval_timing="excluded"))
        self._step = step
        out.append(
            Iteration(
                iter=step,
                loss=to_float(m[3]),
                time_ms=to_float(m[6]),
                tokens_per_sec=to_float(m[7]) if m[7] else None,
                lr=to_float(m[5]) if m[5] else None,
                grad_norm=to_float(m[4]) if m[4] else None,
            )
        )

    @staticmethod
    def _step_field(field: str, values: dict[str, Any]) -> None:
        parts = field.split()
        if len(parts) < 2:
            return
        name, value = parts[0], parts[1]
        if name == "loss":
            values["loss"] = to_float(value)
        elif name == "norm":
            values["grad_norm"] = to_float(value)
        elif name == "lr":
            values["lr"] = to_float(value)
        elif value == "ms" and len(parts) == 2:
            ms = to_float(name)
            values["time_ms"] = ms if ms is not None and ms >= 0 else None
        elif parts[-1] == "MFU" and name.endswith("%"):
            mfu = to_float(name[:-1])
            # llm.c prints -100% when it does not know the GPU's peak.
            values["mfu_pct"] = mfu if mfu is not None and mfu > 0 else None
        elif value == "tok/s" and len(parts) == 2:
            values["tokens_per_sec"] = to_float(name)

    def _completes_pending(self, text: str, out: list[Record]) -> bool:
        """Does ``text`` complete the held record? If so, emit the whole."""
        held = self._pending
        if isinstance(held, Eval) and "HellaSwag:" in text and (m := _HELLASWAG.search(text)):
            acc = to_float(m.group(3))
            self._pending = None
            metrics = {HELLASWAG_METRIC: acc} if acc is not None else {}
            out.append(Eval(iter=held.iter, val_loss=held.val_loss, metrics=metrics))
            return True
        if isinstance(held, Checkpoint) and text.startswith("Writing model to "):
            self._pending = None
            out.append(Checkpoint(iter=held.iter, path=text[len("Writing model to ") :].strip()))
            return True
        return False

    def _release(self, out: list[Record]) -> None:
        if self._pending is not None:
            out.append(self._pending)
            if isinstance(self._pending, Eval):
                self._released = self._pending
            self._pending = None

    def _sampling(self, text: str) -> bool:
        """Skip the generated sample (between two "---" lines; it may say anything)."""
        if text == "---":
            self._sample = 2 if self._sample == 1 else 0
            return True
        if self._sample == 1:  # no fence after "generating:": not a sample after all
            self._sample = 0
            return False
        return True

    def _box_line(self, text: str) -> None:
        cells = [c.strip() for c in text.strip("|").split("|")]
        if len(cells) == 2 and cells[0] and cells[0] != "Parameter":
            self._box[cells[0]] = cells[1]
        self._in_box = True

    def _close_box(self, out: list[Record]) -> None:
        self._in_box = False
        if not self._box:
            return
        box, self._box = self._box, {}
        max_steps = to_int(box.get("max_steps", ""))
        peak = to_float(box.get("peak TFlops", ""))
        out.append(
            RunInfo(
                config=box,
                name=box.get("output log dir") or None,
                target=max_steps if max_steps else to_int(box.get("train_num_batches", "")),
                params=to_int(box.get("num_parameters", "")),
                gpu=box.get("device") or None,
                dtype=box.get("precision") or None,
                block_size=to_int(box.get("sequence length T", "")),
                batch_size=to_int(box.get("micro batch size B", "")),
                tokens_per_iter=to_int(box.get("total batch size", "")),
                n_layer=to_int(box.get("num_layers L", "")),
                n_head=to_int(box.get("num_heads NH", "")),
                n_embd=to_int(box.get("channels C", "")),
                world_size=to_int(box.get("num_processes", "")),
                mfu_peak_tflops=peak if peak is not None and peak > 0 else None,
                tokens_per_sec_scope="total",
                eval_timing="excluded",
            )
        )


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=LlmcStdoutParser)
