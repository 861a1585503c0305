"""llm.c's ``main.log`` (``llmc_main_log``).

``s:<step> trl:<loss> lr:<lr> norm:<norm>``
per step, ``s:<step> tel:<val loss>`` and ``s:<step> eval:<HellaSwag acc>``.
``Iteration.iter`` is the step as main.log prints it (METRICS.md: the
framework's own counter, never shifted). In ``train_gpt2.cu``'s loop ``for
(int step = 0; step <= train_num_batches; step++)`` the val loss and
HellaSwag run at the top of step ``step`` (``logger_log_val(&logger, step,
…)``), then step ``step`` trains and ``logger_log_train(&logger, step, …)``
writes ``s:<step> trl``; the last pass (``step == train_num_batches``) only
evaluates. So ``s:k trl`` is iteration k, and a finished run's last ``tel``
sits one past its last ``trl``. (The console prints ``step + 1`` for the same
step: ``step k+1/N``; each file keeps its own numbering.) main.log has no
timing.

A val loss followed by a HellaSwag result at the same step is one eval pass,
as on the console (``llmc``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from trainwatch.core.records import BulkRecord, Eval, Iteration, IterationColumns, Outcome, Record, RunInfo
from trainwatch.parsers import bulk
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.llmc import HELLASWAG_METRIC
from trainwatch.parsers.text import to_float

FORMAT = "llmc_main_log"

_TRAIN = re.compile(r"s:(\d+) trl:(\S+) lr:(\S+) norm:(\S+)")
# A run of whole train lines of the common shape (ASCII values), each one the
# fast path of ``feed`` fullmatches with the same values, for ``feed_text``.
_NUMBER = r"[-+.0-9A-Za-z_]++"
_TRAIN_RUN = re.compile(rf"(?:s:[0-9]++ trl:{_NUMBER} lr:{_NUMBER} norm:{_NUMBER}\n)*+")
# Such a line with ":" as a space is 8 words: s N trl X lr Y norm Z.
_BLANK = bytes.maketrans(b":", b" ")
_MAIN = re.compile(r"s:(\d+) (trl|tel|eval):(\S+)(?: lr:(\S+))?(?: norm:(\S+))?")


def sniff(head: str, filename: str) -> bool:
    """The first lines are ``s:<step> trl|tel|eval:`` records."""
    lines = [ln for ln in head.lstrip().splitlines()[:5] if ln.strip()]
    return bool(lines) and all(_MAIN.match(ln.strip()) for ln in lines[:-1] or lines)


class LlmcMainLogParser:
    """Stateful parser of one llm.c ``main.log``."""

    def __init__(self) -> None:
        self._pending: Eval | None = None  # a tel awaiting a possible eval at the same step
        self._released: Eval | None = None  # the last tel emitted on its own
        self._evals: list[int] = []  # steps of the val evals, to learn the cadence

    def feed(self, line: str) -> Sequence[Record]:
        """Records for one line (its trailing newline already removed)."""
        if self._pending is None and (m := _TRAIN.fullmatch(line)) is not None:  # fast path
            try:  # positional: (iter, loss, time_ms, mfu_pct, tokens_per_sec, lr, grad_norm)
                return (Iteration(int(m[1]), float(m[2]), None, None, None, float(m[3]), float(m[4])),)
            except ValueError:
                pass
        out: list[Record] = []
        try:
            self._feed(line.strip(), out)
        except Exception:  # a safety net only, as in the console parser
            line_failed(FORMAT, line)
            return out
        return out

    def feed_text(self, text: str) -> list[BulkRecord]:
        """Records for whole lines (each ending in ``\\n``): those of ``feed``
        of each line in turn, with runs of train lines as ``IterationColumns``
        (see ``parsers.base.BulkLineParser``)."""
        # (a record held back: feed's general path releases it)
        return bulk.feed_runs(text, _TRAIN_RUN, "s:", self.feed, self._columns, lambda: self._pending is not None)

    @staticmethod
    def _columns(block: str) -> IterationColumns | None:
        """The fast path's records of ``block`` as columns; ``None`` if a value does not convert."""
        words = bulk.tokens(block, _BLANK, 8)
        if words is None:
            return None
        try:
            steps = list(map(int, words[1::8]))  # (the step as printed)
            losses = bulk.floats(words[3::8])
            lrs = bulk.floats(words[5::8])
            norms = bulk.floats(words[7::8])
        except ValueError:
            return None
        none = bulk.nones(len(steps))
        return IterationColumns(steps, losses, none, none, lr=lrs, grad_norm=norms)

    def flush(self) -> list[Record]:
        """End of input: emit a held val loss."""
        out: list[Record] = []
        self._release(out)
        return out

    def _feed(self, text: str, out: list[Record]) -> None:
        m = _MAIN.match(text)
        if m is None:
            self._release(out)
            return
        step, kind, value = int(m.group(1)), m.group(2), to_float(m.group(3))
        if kind == "eval":
            held = self._pending
            self._pending = None
            metrics = {HELLASWAG_METRIC: value} if value is not None else {}
            if held is not None and held.iter == step:
                out.append(Eval(iter=step, val_loss=held.val_loss, metrics=metrics))
                self._after_eval(step, out)
            else:
                self._release_eval(held, out)
                last = self._released  # its tel went out on its own (flush): repeat it
                val = last.val_loss if last is not None and last.iter == step else None
                out.append(Eval(iter=step, val_loss=val, metrics=metrics))
            return
        self._release(out)
        if kind == "tel":
            self._pending = Eval(iter=step, val_loss=value)
        else:
            lr = to_float(m.group(4)) if m.group(4) else None
            norm = to_float(m.group(5)) if m.group(5) else None
            out.append(Iteration(iter=step, loss=value, lr=lr, grad_norm=norm))

    def _release(self, out: list[Record]) -> None:
        held, self._pending = self._pending, None
        self._release_eval(held, out)

    def _release_eval(self, held: Eval | None, out: list[Record]) -> None:
        if held is not None:
            out.append(held)
            self._released = held
            self._after_eval(held.iter, out)

    def _after_eval(self, step: int, out: list[Record]) -> None:
        # llm.c evaluates every val_loss_every steps *and* at its last step.
        # main.log states neither, but an eval off the established cadence can
        # only be that last one: the run finished there.
        evals = self._evals
        if len(evals) >= 2 and step > evals[-1]:
            every = evals[1] - evals[0]
            if every > 0 and evals[0] % every == 0 and step % every != 0:
                out.append(RunInfo(target=step))
                out.append(Outcome("finished", f"final evaluation at step {step}, off the every-{every} cadence"))
        if not evals or step > evals[-1]:
            evals.append(step)
        elif step < evals[-1]:
            self._evals = [step]  # a restart: learn the cadence again


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=LlmcMainLogParser)
