"""nanoGPT's console output (``train.py`` stdout, a ``tee``'d file or wandb's ``output.log``).

Stock nanoGPT prints a free-form preamble (the configurator's echo of config
files as ``key = value`` lines and of CLI overrides as ``Overriding: key =
value``, ``tokens per iteration will be: 491,520``, ``number of parameters:
123.69M``), then per logged iteration ``iter N: loss X, time Yms, mfu Z%``
(``time`` is that one iteration's ``dt``; ``mfu -100.00%`` while the running
estimate warms up), ``step N: train loss A, val loss B`` at each eval and
``saving checkpoint to DIR`` after it. Forks add arbitrary prints in between.

The seed's "enhanced training system" (a nanoGPT fork, whose JSON logs
``llm_tii_json`` reads) prints richer blocks to the same console::

    📍 Iter     10 │ Loss: 10.7652 │ Time: 1838ms │ LR: 1.65e-06
    ────────────────────────────────────────────────
    ⚡ MFU: 10.44% │ Achieved: 939.7 TF │ Peak: 9000.0 TF
       Tokens/s: 106979 │ FLOPs/token: 8.78 GF (6N+12LHQT: N=1.294B)
    💾 Memory: 13.53 GB alloc │ 103.26 GB peak │ 111.23 GB reserved
    📊 Gradients: norm=2.3456 │ mean=-1.23e-05 │ std=3.45e-04

plus ``Iter 0: loss X, time Yms (warming up...)`` for its first iterations,
``📊 EVALUATION │ Step N`` / ``Train loss: A │ Val loss: B │ LR: …`` evals,
``💾 Saving checkpoint to DIR``, a startup report (``Total parameters:``,
``Tokens per iteration:``, ``Max iterations:``, ``Device:``, ``GPUs:``, …)
and ``✅ Training completed!`` at the end.

Because records are frozen and emitted once, an enhanced ``📍 Iter`` line is
*buffered* until its block is over: the ``📊 Gradients`` line (always last),
or the first line that does not belong to the block (the blank line the next
block starts with, an eval banner, …). A block still open when the input ends
is only emitted by ``flush()``: call it at end of input. Calling it on an idle
live file is safe: the block's late lines are then ignored, nothing is
emitted twice (its MFU is lost).

Tracebacks: the first ``Name: message`` line after ``Traceback (most recent
call last):`` becomes ``Outcome("failed", that line)``; after the enhanced
fork's ``Training completed`` a traceback is teardown noise and is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from trainwatch.core.records import BulkRecord, Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.nanogpt_bulk import MFU_SENTINEL as _MFU_SENTINEL
from trainwatch.parsers.nanogpt_bulk import PLAIN_LINE, plain_columns, plain_run_end
from trainwatch.parsers.nanogpt_config import (
    ASSIGN,
    CONFIG_FIELDS,
    KNOWN_KEYS,
    REPORT,
    REPORT_FIELDS,
    count,
    field_value,
    literal,
)
from trainwatch.parsers.text import PREFIX, last_cr_segment, slurm_kill, strip_ansi, strip_prefixes, to_float

FORMAT = "nanogpt_stdout"

# The fast path's line; ``feed_text`` takes runs of it in bulk (nanogpt_bulk).
_ITER_LINE = re.compile(PLAIN_LINE)
#: Fewer plain lines in a row than this are fed one by one (measured: the
#: break-even is 5–6 lines).
MIN_COLUMN_ROWS = 8
# Launcher/rank prefixes start with one of these (see text.strip_prefixes).
_PREFIX_START = frozenset("[0123456789 \t")
_ITER = re.compile(r"[Ii]ter\s+(\d+):\s*loss\s+([^,\s]+),\s*time\s+([\d.]+)\s*ms(?:,\s*mfu\s+(-?[\d.]+)\s*%)?")
# Forks print a unit after each loss ("train loss 1.2345 BPC, val loss 1.2400 BPC").
_EVAL = re.compile(r"step\s+(\d+):\s*train loss\s+([^,\s]+)(?:\s+[A-Za-z]{1,8})?,\s*val loss\s+([^,\s]+)")
# Enhanced console; be liberal about the separator (│ or |).
_SEP = r"\s*[│|]\s*"
_E_ITER = re.compile(
    r"Iter\s+(\d+)" + _SEP + r"Loss:\s*(\S+)" + _SEP + r"Time:\s*([\d.]+)\s*ms(?:" + _SEP + r"LR:\s*(\S+))?"
)
_E_MFU = re.compile(r"MFU:\s*(-?[\d.]+)\s*%(?:.*?Peak:\s*([\d.]+)\s*TF)?")
_E_TOKENS = re.compile(r"Tokens/s:\s*~?([\d,.]+)")
_E_GRAD = re.compile(r"norm=\s*(\S+?)(?:\s|[│|]|$)")
_E_EVAL_HEAD = re.compile(r"EVALUATION" + _SEP + r"Step\s+(\d+)")
_E_EVAL = re.compile(r"Train loss:\s*(\S+)" + _SEP + r"Val loss:\s*(\S+)")
_CHECKPOINT = re.compile(r"[Ss]aving checkpoint to\s+(.+)")
# Configurator echo: ``key = value  # comment`` and ``Overriding: key = value``.
# A traceback's last line: ``RuntimeError: ...``, ``torch.OutOfMemoryError: ...``, ``KeyboardInterrupt``.
_EXCEPTION = re.compile(r"[A-Za-z_][\w.]*(?::|$)")


def sniff(head: str, filename: str) -> bool:
    """nanoGPT's iter/eval lines, its preamble prints, or the enhanced console."""
    if "tokens per iteration will be:" in head or "📍 Iter" in head:
        return True
    return _SNIFF.search(head) is not None


_SNIFF = re.compile(  # also through a launcher's line prefixes (torchrun, srun --label, mpirun --tag-output)
    rf"^(?:{PREFIX})?(?:iter \d+: loss \S+, time [\d.]+ms|step \d+: train loss \S+(?: [A-Za-z]{{1,8}})?, val loss "
    r"|Overriding config with )",
    re.MULTILINE,
)


class NanoGPTStdoutParser:
    """Stateful parser of one nanoGPT console log."""

    def __init__(self) -> None:
        # RunInfo fields learnt, not yet emitted. nanoGPT evaluates at the top
        # of iteration N, inside the dt that "iter N" reports.
        self._info: dict[str, Any] = {"eval_timing": "same"}
        self._info_touched = False
        self._config: dict[str, object] = {}
        self._echo = False  # inside "Overriding config with FILE:" (a config file's text)
        self._block: dict[str, Any] | None = None  # open enhanced iteration block
        self._eval_iter: int | None = None  # iteration of the last eval (checkpoints follow it)
        self._eval_head: int | None = None  # enhanced "EVALUATION │ Step N" awaiting its losses
        self._traceback = False
        self._finished = False
        self._peak_seen: float | None = None
        self._scope_sent = False

    # ------------------------------------------------------------------ API

    def feed(self, line: str) -> Sequence[Record]:
        """Records for one line (its trailing newline already removed)."""
        # Fast path for the bulk of a long log: a plain stock iter line while
        # nothing is pending. Anything unusual takes the general path.
        if (
            line.startswith("iter ")
            and self._block is None
            and not self._info
            and not self._traceback
            and (m := _ITER_LINE.fullmatch(line)) is not None
        ):
            # Hot path: try/except (not contextlib.suppress) and positional
            # arguments (iter, loss, time_ms, mfu_pct), which build the frozen
            # record twice as fast.
            try:
                mfu = float(m[4])
                it = Iteration(int(m[1]), float(m[2]), float(m[3]), None if mfu == _MFU_SENTINEL else mfu)
            except ValueError:
                pass
            else:
                self._echo = False
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
        of each line in turn, with runs of plain iteration lines as
        ``IterationColumns`` (see ``parsers.base.BulkLineParser``)."""
        out: list[BulkRecord] = []
        if text and text[-1] != "\n":
            text += "\n"  # (not whole lines after all: the last one is taken as one)
        pos, end = 0, len(text)
        while pos < end:
            stop = plain_run_end(text, pos)
            if stop > pos:
                self._plain_lines(text[pos:stop], out)
            if stop == end:
                break
            # The line at ``stop`` is not plain, nor is any up to the next one
            # that starts like one: those go to feed() without another look.
            pos = text.find("\niter ", stop) + 1 or end
            for line in text[stop : pos - 1].split("\n"):
                out += self.feed(line)
        return out

    def flush(self) -> list[Record]:
        """End of input: emit a still-open enhanced block and pending metadata."""
        out: list[Record] = []
        self._close_block(out)
        self._emit_info(out)
        if self._traceback and not self._finished:
            out.append(Outcome("failed", "Python traceback (cut off)"))
            self._traceback = False
        return out

    # ------------------------------------------------------------ internals

    def _plain_lines(self, block: str, out: list[BulkRecord]) -> None:
        """Take whole plain iteration lines as ``feed`` takes each of them."""
        # ``feed`` takes its fast path only while nothing is pending; the
        # general path may settle what is (emit the pending RunInfo), and the
        # plain lines after that take the fast path again.
        pos = 0
        while pos < len(block) and (self._block is not None or self._info or self._traceback):
            newline = block.index("\n", pos)
            out += self.feed(block[pos:newline])
            pos = newline + 1
        if pos:
            block = block[pos:]
        if not block:
            return
        # Columns cost ~30 µs a run to set up and save ~1.5 µs a row: a few
        # lines between prints (a noisy log) are cheaper one by one.
        columns = plain_columns(block) if block.count("\n") >= MIN_COLUMN_ROWS else None
        if columns is None:  # (or a value that does not convert: feed() knows what to make of it)
            for line in block.split("\n")[:-1]:
                out += self.feed(line)
            return
        self._echo = False
        out.append(columns)

    def _feed(self, line: str, out: list[Record]) -> None:
        kill = slurm_kill(line) if "slurmstepd" in line else None
        if kill is not None:
            # slurmstepd writes into a half-flushed line: read what precedes it.
            self._feed(line[: line.find("slurmstepd")], out)
            self._close_block(out)
            self._emit_info(out)
            out.append(Outcome("failed", kill[0], kill[1]))
            return
        # text.clean(), but keeping the indentation (tracebacks) and skipping
        # the calls a plain line does not need.
        raw = last_cr_segment(line) if "\r" in line else line
        if "\x1b" in raw:
            raw = strip_ansi(raw)
        if raw[:1] in _PREFIX_START:
            raw = strip_prefixes(raw)
        text = raw.strip()
        self._info_touched = False
        records: list[Record] = []
        if self._block is None:
            self._line(raw, text, records)
        elif not self._block_line(text, records):
            self._close_block(out)  # this line is not part of the block: it is complete
            self._line(raw, text, records)
        if self._info and not self._info_touched:
            self._emit_info(out)
        out.extend(records)

    def _line(self, raw: str, text: str, out: list[Record]) -> None:
        if not text:
            return
        if self._traceback and raw[:1] not in (" ", "\t") and _EXCEPTION.match(text) is not None:
            # The first unindented ``Name: message`` line after a traceback
            # names the exception. A traceback after a clean "Training
            # completed" (teardown noise) does not make a finished run failed.
            self._traceback = False
            if not self._finished:
                out.append(Outcome("failed", text[:200]))
            return
        first = text[0]
        if first in "iI" and (m := _ITER.match(text)) is not None:
            self._echo = False
            mfu = to_float(m.group(4)) if m.group(4) is not None else None
            out.append(
                Iteration(
                    iter=int(m.group(1)),
                    loss=to_float(m.group(2)),
                    time_ms=to_float(m.group(3)),
                    mfu_pct=None if mfu is None or mfu == _MFU_SENTINEL else mfu,
                )
            )
            return
        if first == "s" and (m := _EVAL.match(text)) is not None:
            self._echo = False
            self._eval_iter = int(m.group(1))
            out.append(Eval(iter=self._eval_iter, train_loss=to_float(m.group(2)), val_loss=to_float(m.group(3))))
            return
        if "Iter" in text and "Loss:" in text and (m := _E_ITER.search(text)) is not None:
            self._echo = False
            self._block = {
                "iter": int(m.group(1)),
                "loss": to_float(m.group(2)),
                "time_ms": to_float(m.group(3)),
                "lr": to_float(m.group(4)) if m.group(4) else None,
            }
            return
        if "aving checkpoint to" in text and (m := _CHECKPOINT.search(text)) is not None:
            out.append(Checkpoint(iter=self._eval_iter, path=m.group(1).strip()))
            return
        if "Training completed" in text:
            self._finished = True
            out.append(Outcome("finished", text.lstrip("✅ ").strip()))
            return
        if "EVALUATION" in text and (m := _E_EVAL_HEAD.search(text)) is not None:
            self._eval_head = int(m.group(1))
            return
        if ":" not in text and "=" not in text:
            return  # every other line we read has one of them: skip noise early
        if "Val loss:" in text and (m := _E_EVAL.search(text)) is not None:
            if self._eval_head is not None:
                self._eval_iter, self._eval_head = self._eval_head, None
                out.append(Eval(iter=self._eval_iter, train_loss=to_float(m.group(1)), val_loss=to_float(m.group(2))))
            return
        if text.startswith("tokens per iteration will be:"):
            self._learn("tokens_per_iter", count(text.rsplit(":", 1)[1]))
            return
        if text.startswith("number of parameters:"):
            value = text.rsplit(":", 1)[1].strip()
            scale = {"K": 1e3, "M": 1e6, "B": 1e9}.get(value[-1:], 1.0)
            number = to_float(value[:-1] if scale != 1.0 else value)
            self._learn("params", round(number * scale) if number is not None and number > 0 else None)
            return
        if text.startswith("Overriding config with"):
            self._echo = True
            return
        if text.startswith("Traceback (most recent call last)"):
            self._traceback = True
            return
        if "=" in text and (m := ASSIGN.fullmatch(text)) is not None:
            self._config_line(text, m.group(1), m.group(2))
            return
        if ":" in text and (m := REPORT.fullmatch(text)) is not None:
            spec = REPORT_FIELDS.get(m.group(1).strip())
            if spec is not None:
                self._learn(spec[0], spec[1](m.group(2)))

    def _block_line(self, text: str, out: list[Record]) -> bool:
        """Take a line of an open enhanced block; ``False`` if it is not one."""
        block = self._block
        assert block is not None
        if not text:
            return False
        if text.strip("─━-= ") == "":
            return True  # the rule under the 📍 line
        if "MFU:" in text and (m := _E_MFU.search(text)) is not None:
            mfu = to_float(m.group(1))
            block["mfu_pct"] = None if mfu is None or mfu == _MFU_SENTINEL else mfu
            peak = to_float(m.group(2)) if m.group(2) else None
            if peak is not None and peak != self._peak_seen:
                self._peak_seen = peak
                self._learn("mfu_peak_tflops", peak)
            return True
        if "Tokens/s:" in text and (m := _E_TOKENS.search(text)) is not None:
            block["tokens_per_sec"] = to_float(m.group(1))
            # The fork computes this per GPU (it divides by the GPU count's peak).
            if not self._scope_sent:
                self._scope_sent = True
                self._learn("tokens_per_sec_scope", "gpu")
            return True
        if "Memory:" in text:
            return True
        if "Gradients:" in text:
            if (m := _E_GRAD.search(text)) is not None:
                block["grad_norm"] = to_float(m.group(1))
            self._close_block(out)  # always the block's last line
            return True
        return False

    def _close_block(self, out: list[Record]) -> None:
        if self._block is not None:
            block, self._block = self._block, None
            self._emit_info(out)
            out.append(Iteration(**block))

    def _config_line(self, text: str, key: str, value_text: str) -> None:
        # Outside a config file's echo only nanoGPT's own keys count: a user's
        # ``x = 3`` print must not become config.
        if not (self._echo or text.startswith("Overriding:") or key in KNOWN_KEYS):
            return
        value = literal(value_text.strip())
        if value is None:
            return
        self._config[key] = value
        self._learn("config", dict(self._config))
        field = CONFIG_FIELDS.get(key)
        if field is not None:
            self._learn(field, field_value(field, value))

    def _learn(self, field: str, value: object) -> None:
        self._info_touched = True
        if value is not None:
            self._info[field] = value

    def _emit_info(self, out: list[Record]) -> None:
        if self._info:
            info, self._info = self._info, {}
            out.append(RunInfo(**info))


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=NanoGPTStdoutParser)
