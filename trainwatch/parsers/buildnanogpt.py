"""Karpathy's build-nanogpt ``log.txt`` (``train_gpt2.py``) and its forks.

Space-separated ``<step> <kind> <value...>`` lines, no timing, no header:

* ``<step> train <loss>``: the loss of step ``<step>``. ``Iteration.iter`` is
  that step as printed (METRICS.md: the framework's own counter, never
  shifted): ``train_gpt2.py`` runs ``for step in range(max_steps)`` and
  writes ``f"{step} train {loss_accum.item():.6f}"``, so a finished run's
  last line is ``max_steps - 1``;
* ``<step> val <loss>`` and ``<step> hella <acc>``: evaluations run at the top
  of the loop, before step ``<step>`` trains (as nanoGPT's ``step N: ... val
  loss`` before its ``iter N`` line). Both are one evaluation: a later
  ``Eval`` of a step replaces the earlier one, so each carries what the other
  said (the HellaSwag result keeps the val loss);
* fork extras: ``<step> export <path>`` (a saved model: a checkpoint) and
  ``<step> evaluate ppl P loss L tok T sec S`` (a held-out evaluation, written
  after step ``<step>`` trained), both at the printed step;
* ``# resumed at <ISO time> from step N`` comments; steps then repeat (the
  aggregator starts a new segment) and blank lines.
"""

from __future__ import annotations

import re

from trainwatch.core.records import BulkRecord, Checkpoint, Eval, Iteration, IterationColumns, Record
from trainwatch.parsers import bulk
from trainwatch.parsers.base import ParserSpec
from trainwatch.parsers.text import to_float

FORMAT = "buildnanogpt_logtxt"

_RECORD = re.compile(r"\d+ (?:train|val|hella) [-+0-9.eEnaif]+")
_SNIFF_MIN = 3
# A run of whole ``<step> train <loss>`` lines of the common shape (ASCII, one
# space between), each one ``feed`` takes as such, for ``feed_text``.
_TRAIN_RUN = re.compile(r"(?:[0-9]{1,18}+ train [-+.0-9A-Za-z_]++\n)*+")
_NO_BLANK = bytes.maketrans(b"", b"")


def sniff(head: str, filename: str) -> bool:
    """Several ``<step> train|val|hella <number>`` lines and little else."""
    lines = [ln.strip() for ln in head.split("\n")[:-1]]  # the last may be cut
    body = [ln for ln in lines if ln and not ln.startswith("#")][:50]
    hits = sum(1 for ln in body if _RECORD.fullmatch(ln))
    return hits >= _SNIFF_MIN and hits * 10 >= len(body) * 8


class BuildNanoGptParser:
    """Stateful parser of one ``log.txt``."""

    def __init__(self) -> None:
        self._seen_val = False
        self._eval: Eval | None = None  # the last evaluation emitted

    def feed(self, line: str) -> list[Record]:
        """Records of one line."""
        parts = line.split()
        if len(parts) < 3 or not (parts[0].isdecimal() and len(parts[0]) <= 18):
            return []  # blank lines, ``#`` comments, anything else (int() refuses "²" and 5,000 digits)
        step = int(parts[0])
        kind = parts[1]
        if kind == "train":
            try:
                loss = float(parts[2])  # "nan" too: a diverged run
            except ValueError:
                return []
            # Positional: the hot path of a 30k-line log, and ~15 % cheaper.
            return [Iteration(step, loss)]
        if kind == "val":
            val = to_float(parts[2])
            if val is None:
                return []
            self._seen_val = True
            return self._evaluated(Eval(iter=step, val_loss=val))
        if kind == "hella":
            acc = to_float(parts[2])
            return [] if acc is None else self._evaluated(Eval(iter=step, metrics={"hellaswag": acc}))
        if kind == "export":
            return [Checkpoint(iter=step, path=" ".join(parts[2:]))]
        if kind == "evaluate":
            values = _pairs(parts[2:])
            if not values:
                return []
            held_out: float | None = values.pop("loss", None)
            # A held-out loss is the run's val loss unless the log also has
            # ``val`` lines, which then stay the one val series.
            if self._seen_val and held_out is not None:
                values["loss"] = held_out
                held_out = None
            return self._evaluated(Eval(iter=step, val_loss=held_out, metrics=values))
        return []

    def feed_text(self, text: str) -> list[BulkRecord]:
        """Records for whole lines (each ending in ``\\n``): those of ``feed``
        of each line in turn, with runs of train lines as ``IterationColumns``
        (see ``parsers.base.BulkLineParser``)."""
        return bulk.feed_runs(text, _TRAIN_RUN, "", self.feed, self._columns)

    @staticmethod
    def _columns(block: str) -> IterationColumns | None:
        """``feed``'s records of ``block`` (train lines) as columns; ``None`` if a loss does not convert."""
        words = bulk.tokens(block, _NO_BLANK, 3)  # <step> train <loss>
        if words is None:
            return None
        try:
            losses = bulk.floats(words[2::3])
        except ValueError:
            return None
        done = list(map(int, words[0::3]))  # (the step as printed)
        none = bulk.nones(len(done))
        return IterationColumns(done, losses, none, none)

    def _evaluated(self, new: Eval) -> list[Record]:
        """``new``, with what an earlier evaluation of the same step said."""
        last = self._eval
        if last is not None and last.iter == new.iter:
            val = new.val_loss if new.val_loss is not None else last.val_loss
            new = Eval(iter=new.iter, val_loss=val, metrics={**last.metrics, **new.metrics})
        self._eval = new
        return [new]


def _pairs(words: list[str]) -> dict[str, float]:
    """``ppl 93.8 loss 4.54 tok 5169152`` as ``{"ppl": 93.8, ...}``."""
    values: dict[str, float] = {}
    for key, raw in zip(words[::2], words[1::2], strict=False):
        number = to_float(raw)
        if number is not None:
            values[key] = number
    return values


def new_parser() -> BuildNanoGptParser:
    """A fresh parser for one file."""
    return BuildNanoGptParser()


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=new_parser)
