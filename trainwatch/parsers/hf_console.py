"""The console of a Hugging Face Transformers / TRL ``Trainer`` (format ``hf_trainer_stdout``).

Its metrics are dicts that carry no step number (``hf_facts``); the step and
the total are in the tqdm bar that ``ProgressCallback`` draws with ``\\r``
(``tqdm_bar``). ``on_log`` writes each dict through the bar, ``tqdm.write``:
the bar is cleared (``\\r`` + spaces + ``\\r``), the dict printed to stdout,
and the bar redrawn at the current step. That clear is what ties a dict to
its step: each clear of the training bar is a log written at the step the
next frame shows, and the dicts come in the same order. They may come much
later: with stdout redirected to a file, Python buffers it (bars go to
stderr, unbuffered), and a burst of a few KB of dicts lands glued to the end
of a frame hundreds of steps on (tqdm flushes stdout when a bar is created,
so at each evaluation). Iterations (one per frame that moved the bar) are
therefore held back while a dict that belongs to them is still due, and
emitted in order once it has come. Dicts with no clear before them take the
bar's step; where there is no bar at all (``disable_tqdm``, the ``.out``
half of a Slurm job whose bars went to ``.err``), the step is derived:
the count of train dicts x ``logging_steps`` when printed (else 1), plus the
step a resume continued from, and ``RunInfo.iter_derived`` says so.

Frames of nested bars (the evaluation bar, drawn one row down and followed
by ``ESC[A``), of named bars (``Map:``, ``Loading checkpoint shards:``) and
of bars counting other units are not the training bar; neither is an unnamed
bar whose total differs from ``Total optimization steps``, nor, once the
training bar is known, a bar of another total (the ``evaluate()`` after
training) until the next ``***** Running training *****``.

Held iterations go out when a later frame comes and no dict is due for
them, at the run's end, and at ``flush`` (a live log's watcher calls it
whenever the log is quiet): dues are kept across it, so that the dicts of a
later burst still meet their own writes. A bar that no write, no dict and no
stated total has confirmed is held back (a script's own loop before training
draws one too), up to a ``flush`` while it is still running.

LLaMA-Factory's ``running_log.txt`` is the same console behind its logger's
``[INFO|YYYY-MM-DD hh:mm:ss] file.py:N >> `` records (recent versions log no
step losses there): the prefix is removed and its time kept, and its
``checkpoint-N`` saves are the only steps it has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from trainwatch.core.records import Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers import hf_facts
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.hf_steps import Bar, DueQueue, Held, Slot
from trainwatch.parsers.pydict import parse_pydict
from trainwatch.parsers.text import PREFIX, strip_ansi, strip_prefixes
from trainwatch.parsers.tqdm_bar import BarClock, Frame, parse_frame

FORMAT = "hf_trainer_stdout"

_RECORD = re.compile(r"^\[(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\|(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\] \S+?:\d+ >> ?")
# A named bar counts as the training bar only if its name says so.
_TRAIN_DESC = re.compile(r"(?i)\b(?:train(?:ing)?|epochs?|steps?|iter(?:ation)?s?)\b")
# Sniffing: a Trainer dict or an unnamed bar counting iterations, at a line
# start. ProgressCallback sets no postfix: a bar with one (", loss=2.9") is
# some other loop's, for the generic text fallback.
_SNIFF_DICT = re.compile(rf"(?:^|[\r\]])(?:{PREFIX})?\{{'(?:loss|eval_loss|train_runtime)': ", re.MULTILINE)
_SNIFF_BAR = re.compile(
    r"(?:^|\r)[ \t]*\d{1,3}%\|[^|\r\n]*\| *\d+/\d+ \[[\d:]+<(?:[\d:]+|\?), *(?:[\d.]+|\?)(?:it/s|s/it)\]",
    re.MULTILINE,
)
_SNIFF_RECORD = re.compile(r"^\[(?:INFO|WARNING)\|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] \S+\.py:\d+ >> ", re.MULTILINE)
# ms-swift's logger: ``swift sft`` is an HF Trainer whose console can open
# with hundreds of KB of dataset samples and model reprs before its first dict.
_SNIFF_SWIFT = re.compile(rf"^(?:{PREFIX})?\[(?:INFO|WARNING):swift\] ", re.MULTILINE)
# A dict a logger printed (a callback's ``logger.info(logs)``): behind its ">> " or " - ".
_LOGGED_DICT = re.compile(r"(?:>>| -) \{'")
#: A line of this many spaces and nothing else is a clear (tqdm's sp("") is as wide as the frame).
_MIN_CLEAR = 10
# Launcher and rank prefixes start with one of these (see text.strip_prefixes).
_PREFIX_START = frozenset("[0123456789 \t")
#: Iterations held back for a due dict at most; past it the oldest due is given up.
MAX_HELD = 4096


def sniff(head: str, filename: str) -> bool:
    """The Trainer's banner, one of its dicts, an unnamed ``it`` bar, or LLaMA-Factory's or ms-swift's log records."""
    return (
        hf_facts.BANNER in head
        or _SNIFF_DICT.search(head) is not None
        or _SNIFF_BAR.search(head) is not None
        or _SNIFF_RECORD.search(head) is not None
        or _SNIFF_SWIFT.search(head) is not None
    )


def _maybe_fact(text: str) -> bool:
    """Cheap tests before ``RunFacts.fact``'s searches."""
    return (
        "=" in text
        or "_steps" in text
        or text.endswith("(")
        or "Saving model checkpoint" in text
        or "Continuing training" in text
    )


class HFConsoleParser:
    """Stateful line parser of one HF Trainer console capture (``feed``, then ``flush`` at the end)."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._facts = hf_facts.RunFacts()
        self._bar: Bar | None = None
        self._held = Held()  # iterations held back until their dicts are in
        self._dues = DueQueue()  # dicts written through the bar, not yet placed
        self._after_clear = False  # the next training frame is the redraw after a write
        self._dicts_seen = False
        self._over = False  # train() ended or the run failed: nothing to hold back for
        self._eval_marked: int | None = None  # the step an evaluation bar was seen after
        self._derived = 0  # train dicts counted without a bar
        self._derived_step: int | None = None
        self._derived_sent = False
        self._saved_every: int | None = None  # logging_steps as the saves show it
        self._save_guess: int | None = None  # ... as the last save suggested it
        self._record_time: datetime | None = None  # of the current LLaMA-Factory record
        self._out: list[Record] = []

    # ------------------------------------------------------------------ input

    def feed(self, line: str) -> Sequence[Record]:
        """Records of one line (without its ``\\n``; ``\\r`` and ANSI allowed)."""
        out: list[Record] = []
        self._out = out
        try:
            self._line(line)
            self._release()
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, line)
        return out

    def flush(self) -> Sequence[Record]:
        """No more input is due now (the end of a snapshot, or the log went
        quiet): hand every held iteration over.

        The dicts still due are not forgotten: more input may follow (a live
        log calls this whenever it is quiet), and each dict that comes must
        still meet its own write. One whose iteration is out by then gives
        its values to the next iteration held.
        """
        out: list[Record] = []
        self._out = out
        try:
            bar = self._bar
            if bar is not None:
                self._dues.resolve(bar.n)  # where the redraw they wait for would be
                self._settle()
                if not bar.confirmed and bar.n < bar.total:
                    # Taken for the training bar for now: a quiet log shows its
                    # progress. A finished one is more likely a script's own loop.
                    self._confirm(bar)
                    bar.locked = False
            if not self._dicts_seen:
                self._dues.clear()  # bars only: their dicts went to another file
            self._release(everything=True)
        except Exception:
            line_failed(FORMAT, "<flush>")
        return out

    def _line(self, line: str) -> None:
        if line[:1] in _PREFIX_START:
            # A launcher's tag on every line (mpirun, srun, torchrun); the
            # helper's trailing \s? must not take the "\r" of a frame or clear.
            head, cr, rest = line.partition("\r")
            line = strip_prefixes(head) + cr + rest
        if line.startswith("[") and ">> " in line and (m := _RECORD.match(line)) is not None:
            self._record_time = datetime.fromisoformat(m.group(1))
            line = line[m.end() :]
        if "\r" not in line and "%|" not in line:
            if len(line) >= _MIN_CLEAR and line[0] == " " and not line.strip():
                self._clear()  # a log whose \r became \n: a clear is a line of spaces
            else:
                self._text(line)
            return
        segments = line.split("\r")
        for index, segment in enumerate(segments):
            if not segment:
                continue
            if segment[0] == " " and not segment.strip():
                # A clear (spaces, then "\r") of the bar at row 0; one at a lower
                # row is followed by ESC[A.
                following = segments[index + 1] if index + 1 < len(segments) else ""
                if not following.startswith("\x1b[A"):
                    self._clear()
                continue
            if "%|" in segment:
                if "\x1b[A" in segment:
                    self._nested(segment)
                    continue
                if index == 0 or "\x1b" in segment:
                    segment = strip_prefixes(strip_ansi(segment))
                frame = parse_frame(segment)
                if frame is not None:
                    self._frame(frame)
                    segment = segment[frame.end :]  # a dict glued to the frame
                    if not segment.strip():
                        continue
            self._text(segment)

    def _text(self, raw: str) -> None:
        """A line, or what a frame left of one: a dict, a fact, or a failure."""
        text = raw.strip()
        if text[:1] != "{":
            text = strip_prefixes(strip_ansi(text)).strip()
            if "{'" in text and (at := _LOGGED_DICT.search(text)) is not None:
                text = text[at.end() - 2 :]  # a dict behind a logger's prefix
        if text[:2] == "{'":
            if self._dict(text):
                return
        elif self._facts.in_arguments:
            if (info := self._facts.argument(text)) is not None:
                self._out.append(info)
            return
        elif "*****" in text and hf_facts.BANNER in text:
            self._banner(text)
            return
        elif "Training completed" in text and hf_facts.COMPLETED in text:
            self._completed()
            return
        elif _maybe_fact(text) and self._fact(text):
            return
        failure = self._crash.check(raw)
        if failure is not None:
            self._over = True
            self._out.append(failure)

    # ------------------------------------------------------------ the bar

    def _frame(self, frame: Frame) -> None:
        if frame.unit != "it" or frame.total <= 0 or (frame.desc and not _TRAIN_DESC.search(frame.desc)):
            return
        bar = self._bar
        if bar is None or frame.total != bar.total:
            target = self._facts.target
            if (target is not None and frame.total != target) or (bar is not None and bar.confirmed and bar.locked):
                return
            # A first bar, or one replacing a bar that was not the training bar after all.
            self._held.slots.clear()
            self._dues.clear()
            bar = self._bar = Bar(frame.total, BarClock.starting_at(frame))
        if not bar.confirmed and frame.total == self._facts.target:
            self._confirm(bar)
        if (frame.n == 0 and bar.n > 0) or (frame.n < bar.n and frame.elapsed_s + 1 < bar.elapsed_s):
            self._new_instance(bar, frame)  # train() again, or a resumed run
        elif frame.n < bar.n:
            return  # a stale frame (another node's bar)
        bar.elapsed_s = frame.elapsed_s
        if frame.n > bar.n:
            time_ms: float | None = None
            if not self._after_clear:
                seconds = bar.clock.update(frame)
                time_ms = seconds * 1000.0 if seconds is not None else None
            self._held.slots.append(Slot(frame.n, time_ms))
            bar.n = frame.n
        self._after_clear = False
        if frame.n > 0:
            self._dues.resolve(frame.n)
            self._settle()

    def _nested(self, segment: str) -> None:
        """A frame one row down: ``ProgressCallback``'s evaluation bar, after the current step."""
        bar = self._bar
        if bar is None or not bar.confirmed or bar.n <= 0 or self._eval_marked == bar.n:
            return
        frame = parse_frame(strip_ansi(segment))
        if frame is not None and frame.unit == "it" and not frame.desc:
            # Marked even where its dict is in another file: the next step's time holds the pass.
            self._eval_marked = bar.n
            self._after(bar.n, Eval(bar.n))

    def _new_instance(self, bar: Bar, frame: Frame) -> None:
        self._release(everything=True)
        self._dues.clear()
        bar.clock = BarClock.starting_at(frame)
        bar.n = 0
        self._eval_marked = None
        self._over = False
        self._crash.reset()

    def _confirm(self, bar: Bar) -> None:
        bar.confirmed = True
        info = RunInfo(target=bar.total if self._facts.target is None else None, eval_timing="next")
        # Iterations are timed by the bar: an evaluation (and a save) after
        # step i lands in step i + 1's time.
        self._out.append(info)
        if self._derived_sent:
            self._out.append(RunInfo(iter_derived=False))

    def _clear(self) -> None:
        bar = self._bar
        if bar is None or self._after_clear:
            return  # one write clears every bar: count it once
        self._after_clear = True
        if not bar.confirmed:
            self._confirm(bar)  # only the Trainer writes through its bar
        bar.locked = True
        self._dues.add()

    # ------------------------------------------------------------ dicts

    def _dict(self, text: str) -> bool:
        logs = parse_pydict(text)
        if logs is None:
            # A Trainer dict that does not read (a tensor repr): its place in the queue still counts.
            if "'epoch': " not in text and "'loss': " not in text:
                return False
            logs = {}
        elif hf_facts.log_kind(logs) is None:
            return False
        self._dicts_seen = True
        bar = self._bar
        if self._dues.pay(logs):
            self._settle()
        elif bar is not None and bar.n > 0:
            if not bar.confirmed:
                self._confirm(bar)  # printed beside the bar (no write through it): the bar is the training's
            self._place(bar.n, logs)
        else:
            self._place_derived(logs)
        return True

    def _settle(self) -> None:
        for due in self._dues.settle():
            assert due.step is not None and due.logs is not None
            self._place(due.step, due.logs)

    def _place(self, step: int, logs: dict[str, object]) -> None:
        kind = hf_facts.log_kind(logs)
        if kind == "train":
            slot = self._held.slot(step)
            if slot is not None:
                slot.loss, slot.lr, slot.grad_norm, slot.tokens = hf_facts.train_values(logs)
        elif kind == "eval":
            self._after(step, hf_facts.eval_record(step, logs))
        elif kind == "end":
            self._end(step, logs)

    def _after(self, step: int, record: Record) -> None:
        """Emit ``record`` right after the iteration at ``step`` (or now, if that is out)."""
        if not self._held.after(step, record):
            self._out.append(record)

    def _end(self, step: int, logs: dict[str, object]) -> None:
        self._over = True
        self._crash.finished()
        for record in hf_facts.end_records(logs):
            self._after(step, record)

    def _place_derived(self, logs: dict[str, object]) -> None:
        kind = hf_facts.log_kind(logs)
        facts = self._facts
        if kind == "train":
            self._derived += 1
            step = (facts.resumed_from or 0) + self._derived * (facts.logging_steps or self._saved_every or 1)
            if not self._derived_sent:
                self._derived_sent = True
                self._out.append(RunInfo(iter_derived=True))
            if not self._held.fresh(step):
                return
            loss, lr, grad_norm, tokens = hf_facts.train_values(logs)
            # LLaMA-Factory's record time is when the dict was logged: the step's wall time.
            it = Iteration(step, loss, lr=lr, grad_norm=grad_norm, tokens_seen=tokens, wall_time=self._record_time)
            self._out.append(it)
            self._held.released = self._derived_step = step
        elif kind == "eval":
            self._out.append(hf_facts.eval_record(self._derived_step or facts.resumed_from or 0, logs))
        elif kind == "end":
            self._end(self._derived_step or 0, logs)

    # ------------------------------------------------------------ facts

    def _fact(self, text: str) -> bool:
        if "Saving model checkpoint" in text and (saved := hf_facts.checkpoint(text)) is not None:
            self._checkpoint(saved[0], saved[1], text)
            return True
        consumed, info = self._facts.fact(text)
        if info is not None:
            self._out.append(info)
        return consumed

    def _banner(self, text: str) -> None:
        """``***** Running training *****``: a (new) run starts; its preamble follows."""
        self._release(everything=True)
        self._facts.target = self._facts.resumed_from = None  # the preamble that follows states them
        if self._bar is not None:
            self._bar.locked = False  # the new run's bar may have another total
        self._over = False
        self._crash.reset()
        self._derived = 0
        when = self._record_time or hf_facts.line_time(text)
        if when is not None:
            self._out.append(RunInfo(start_time=when))

    def _completed(self) -> None:
        self._crash.finished()
        self._over = True
        self._out.append(Outcome("finished", "training completed", self._record_time))

    def _checkpoint(self, path: str, step: int, text: str) -> None:
        when = self._record_time or hf_facts.line_time(text)
        record = Checkpoint(iter=step, path=path, wall_time=when)
        if self._bar is None and not self._dicts_seen and self._held.fresh(step):
            # No bar and no dicts (LLaMA-Factory's running_log.txt): a save is the only step the log gives.
            self._out.append(Iteration(step, wall_time=when))
            self._held.released = step
            self._out.append(record)
            return
        if self._bar is None and self._derived and not self._facts.logging_steps:
            self._learn_logging_steps(step)
        self._after(step, record)

    def _learn_logging_steps(self, saved: int) -> None:
        """Dicts counted without a bar or a stated ``logging_steps``: a save at
        step N after c dicts (both from the run's start) suggests a dict every
        N / c steps when that divides; two saves in a row that agree make it
        the interval (one could be ``save_steps`` 150 over ``logging_steps``
        100), and a later save that disagrees drops it."""
        done, count = saved - (self._facts.resumed_from or 0), self._derived
        if self._saved_every is not None and done // self._saved_every != count:
            self._saved_every = None
        guess = done // count if count > 0 and done > count and done % count == 0 else None
        if guess is not None and guess == self._save_guess:
            self._saved_every = guess
        self._save_guess = guess

    # ------------------------------------------------------------ output

    def _release(self, everything: bool = False) -> None:
        """Emit the held iterations no due dict can still belong to."""
        if not self._dicts_seen and not self._over:
            # Bars with no dicts in this file (Slurm's .err): the dicts went
            # elsewhere. Once the run has ended or failed, though, a buffered
            # stdout is about to be flushed at exit: wait for it.
            self._dues.drop_unpaid()
        held, bar = self._held, self._bar
        if bar is not None and not bar.confirmed:
            while len(held) > MAX_HELD:  # it may be no training bar: forget its oldest
                held.slots.popleft()
            return
        while len(held) > MAX_HELD and self._dues:
            self._dues.drop_first()  # its dict is not coming: stop waiting for it
        limit = None if everything else self._dues.first_step(bar.n if bar is not None else None)
        # The newest stays until a later frame or the end: a write may follow it.
        held.release(self._out, limit, keep=0 if everything or self._over else 1)


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=HFConsoleParser)
