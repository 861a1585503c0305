"""TensorBoard event files (``events.out.tfevents.*``), read as they grow.

An event file is a TFRecord stream (``tfrecord``) of ``Event`` protobufs
(``tfevents_proto``): the first says ``file_version: "brain.Event:2"``, then
each ``add_scalar(tag, value, step)`` of a ``SummaryWriter`` appends one event
with the step, its wall time and one value; ``add_text`` appends a string
tensor. The tags each trainer writes are in ``tfevents_tags``.

Records: the values of one step (one event per tag) make one ``Iteration``;
eval tags of a step make one ``Eval``. Event files carry no per-step time, but
every event has a wall time: ``Iteration.wall_time`` is the step's first
train value's, and ``time_ms`` is the wall time since the previous logged
step divided by the steps between (METRICS.md). An evaluation runs after its
step is logged in every writer read here, so its cost lands in the next
logged step's time (``eval_timing="next"``). A writer's own per-step time
(``iteration-time`` ...) is used only for a step with no step before it.

A step is handed over once it is complete: when a later step starts, when
an eval of the same step starts, or when it holds every tag the last two
steps had (so a live run shows a step as soon as it is written, not one
logging interval later); ``flush`` hands over the rest (the watcher flushes
a log quiet for 2 s, which a writer's buffered flush can leave mid-step). A
value that comes for a step already handed over sends the step out again,
whole: the aggregator takes the same step again as a replacement of the last
entry, not as a restart.

Steps are kept as written (METRICS.md: the framework's own counter, never
shifted), Lightning's too (and NeMo's, which logs through it): its logger
writes the 0-based index of the step being taken, which is the step
``lightning_csv`` reads from the same counter. A file is taken for
Lightning's when one of the tags only it writes (``epoch``, ``hp_metric``,
NeMo's names) comes before the first step is handed over.

``protobuf`` and ``google-crc32c`` are imported when the first event file is met.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers import tfevents_tags as tags
from trainwatch.parsers.base import ParserSpec, line_failed

FORMAT = "tfevents"
#: What every event file's name holds (``events.out.tfevents.<time>.<host>...``).
NAME_MARK = "tfevents"
#: The first record's payload holds this (``Event.file_version``).
VERSION_MARK = b"brain.Event:"

# What a tag is to the step it belongs to (``_Entry`` = (kind, role or metric name)).
_IGNORE, _TRAIN, _EVAL, _RUNTIME = 0, 1, 2, 3
_Entry = tuple[int, str]
_IGNORED: _Entry = (_IGNORE, "")


def is_event_file_name(name: str) -> bool:
    """Is this a TensorBoard event file's name (``events.out.tfevents.<time>.<host>[.<pid>.<n>][suffix]``)?"""
    return f".{NAME_MARK}." in name


def sniff_bytes(head: bytes, filename: str) -> bool:
    """An event file: its first record is the ``brain.Event:`` version stamp
    (within the first 64 bytes); a file of that name too short to show it yet
    is taken on its name."""
    if VERSION_MARK in head[:64]:
        return True
    return is_event_file_name(filename) and len(head) < 64


class TfeventsParser:
    """Records of one event file, fed the bytes appended to it since the last call."""

    def __init__(self) -> None:
        # Imported here, not at the top: loading protobuf costs tens of ms, and
        # most runs have no event file.
        from trainwatch.parsers.tfevents_proto import EventDecoder
        from trainwatch.parsers.tfrecord import RecordReader

        self.reader = RecordReader()
        self._decoder = EventDecoder()
        self._roles: dict[bytes, _Entry] = {}
        self._names: dict[bytes, str] = {}
        #: The tag read for each role, with its rank (``tfevents_tags.KNOWN``
        #: order; a loss guessed from an unknown tag's name ranks last).
        self._chosen: dict[str, tuple[int, bytes]] = {}
        self._lightning = False
        self._shift: int | None = None  # added to steps; fixed when the first record goes out
        self._megatron_batch: dict[str, int] = {}
        self._scope_sent = False
        self._start_sent = False
        # The step being gathered: its train values by role, its eval values
        # (val loss and metrics by name), their first wall times, and whether
        # each part was handed over.
        self._step: int | None = None
        self._train: dict[str, float] = {}
        self._train_wall = 0.0
        self._train_done = False
        self._evals: dict[str, float] = {}
        self._eval_wall = 0.0
        self._eval_done = False
        # What the last two steps handed over had in common, and how much of it
        # the step being gathered has: all of it, and the step is complete.
        self._train_last: frozenset[str] | None = None
        self._train_ref: frozenset[str] = frozenset()
        self._train_hits = 0
        self._eval_last: frozenset[str] | None = None
        self._eval_ref: frozenset[str] = frozenset()
        self._eval_hits = 0
        # (iter, wall) of the last Iteration, and of the one before it: a step
        # that goes out again is timed from the step before it, as the first time.
        self._previous: tuple[int, float] | None = None
        self._before: tuple[int, float] | None = None
        self._last_iter: int | None = None

    def feed(self, data: bytes) -> Sequence[Record]:
        """Records completed by ``data``, the bytes appended since the last call."""
        try:
            points = self._decoder.decode(self.reader.feed(data))
            out = self.feed_points(points)
            if self._decoder.opened_at is not None and not self._start_sent:
                # The writer opens its file when training starts (HF: on_train_begin).
                self._start_sent = True
                out.insert(0, RunInfo(start_time=_moment(self._decoder.opened_at)))
            return out
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, repr(data[:200]))
            return ()

    def flush(self) -> Sequence[Record]:
        """No more bytes are due now: hand over the step being gathered."""
        out: list[Record] = []
        try:
            self._close(out)
        except Exception:
            line_failed(FORMAT, "<flush>")
        return out

    def feed_points(self, points: Sequence[tuple[int, float, bytes, float | str]]) -> list[Record]:
        """Records from decoded summary values ``(step, wall_time, tag, value)``."""
        out: list[Record] = []
        roles = self._roles
        for step, wall, tag, value in points:
            if value.__class__ is str:
                self._text(tag, value, out)
                continue
            kind, role = roles.get(tag) or self._role(tag)
            if kind == _TRAIN:
                if step != self._step:
                    self._close(out)
                    self._open(step)
                train = self._train
                if not train:
                    self._train_wall = wall
                fresh = role not in train
                if self._train_done:
                    if not fresh and train[role] == value:
                        continue  # the same value again
                    self._train_done = False  # a late value: the step goes out again, whole
                train[role] = value  # type: ignore[assignment]
                if fresh and role in self._train_ref:
                    self._train_hits += 1
                    if self._train_hits == len(self._train_ref):
                        self._emit_train(out)
            elif kind == _EVAL:
                if step != self._step:
                    self._close(out)
                    self._open(step)
                if self._train and not self._train_done:
                    self._emit_train(out)  # a step's train values are all written before its eval
                evals = self._evals
                if not evals:
                    self._eval_wall = wall
                fresh = role not in evals
                if self._eval_done:
                    if not fresh and evals[role] == value:
                        continue
                    self._eval_done = False
                evals[role] = value  # type: ignore[assignment]
                if fresh and role in self._eval_ref:
                    self._eval_hits += 1
                    if self._eval_hits == len(self._eval_ref):
                        self._emit_eval(out)
            elif kind == _RUNTIME:
                self._finished(step, wall, value, out)  # type: ignore[arg-type]
        return out

    # --------------------------------------------------------------- internals

    def _role(self, tag: bytes) -> _Entry:
        """Classify a tag met for the first time (and remember it)."""
        name = tag.decode("utf-8", "replace")
        self._names[tag] = name
        if name in tags.LIGHTNING_TAGS:
            self._lightning = True
        role = tags.classify(name)
        rank = tags.RANK.get(name, len(tags.RANK))
        if role is None:
            # An unknown tag is read as the loss only if its name says so and
            # no known loss tag exists: a known one ranks before it (below).
            role = tags.LOSS if tags.is_loss_like(name) and not name.endswith("/text_summary") else tags.IGNORED
        if role in tags.TRAIN_ROLES or role == tags.VAL_LOSS:
            # One tag per role and file: the best-ranked one seen so far.
            chosen = self._chosen.get(role)
            if chosen is not None and chosen[0] <= rank:
                role = tags.IGNORED
            else:
                if chosen is not None:
                    self._roles[chosen[1]] = _IGNORED
                self._chosen[role] = (rank, tag)
        if role in tags.TRAIN_ROLES:
            entry: _Entry = (_TRAIN, role)
        elif role == tags.VAL_LOSS:
            entry = (_EVAL, role)
        elif role == tags.EVAL_METRIC:
            entry = (_EVAL, name)
        elif role == tags.RUNTIME:
            entry = (_RUNTIME, role)
        else:
            entry = _IGNORED
        self._roles[tag] = entry
        return entry

    def _open(self, step: int) -> None:
        self._step = step
        self._train, self._train_done, self._train_hits = {}, False, 0
        self._evals, self._eval_done, self._eval_hits = {}, False, 0

    def _close(self, out: list[Record]) -> None:
        if self._train and not self._train_done:
            self._emit_train(out)
        if self._evals and not self._eval_done:
            self._emit_eval(out)

    def _first_out(self, out: list[Record]) -> int:
        """The step shift, fixed (with the run-wide facts) when the first record goes out."""
        if self._shift is None:
            self._shift = 0  # (Lightning's 0-based steps were shifted by 1: not any more)
            out.append(RunInfo(eval_timing="next"))
        return self._shift

    def _emit_train(self, out: list[Record]) -> None:
        assert self._step is not None
        it = self._step + self._first_out(out)
        values = self._train
        wall = self._train_wall
        again = self._previous is not None and self._previous[0] == it
        previous = self._before if again else self._previous
        time_ms = None
        if previous is not None and it > previous[0] and wall >= previous[1]:
            time_ms = (wall - previous[1]) * 1000.0 / (it - previous[0])
        elif tags.STEP_S in values:
            time_ms = values[tags.STEP_S] * 1000.0  # no step before it: the writer's own timing
        loss = values.get(tags.LOSS)
        tokens = values.get(tags.TOKENS)
        tps = values.get(tags.TPS)
        if tps is not None and not self._scope_sent:
            self._scope_sent = True
            out.append(RunInfo(tokens_per_sec_scope="gpu"))  # torchtitan's tps is per device
        out.append(
            Iteration(
                iter=it,
                loss=tags.short_f32(loss) if loss is not None else None,
                time_ms=time_ms,
                mfu_pct=values.get(tags.MFU),
                tokens_per_sec=tps,
                lr=values.get(tags.LR),
                grad_norm=values.get(tags.GRAD_NORM),
                tokens_seen=int(tokens) if tokens is not None and 0 < tokens < 2**63 else None,
                wall_time=_moment(wall),
            )
        )
        if not again:
            self._before = self._previous
        self._previous = (it, wall)
        self._last_iter = it
        self._train_done = True
        self._train_last, self._train_ref = _common(self._train_last, values)

    def _emit_eval(self, out: list[Record]) -> None:
        assert self._step is not None
        it = self._step + self._first_out(out)
        val = self._evals.get(tags.VAL_LOSS)
        metrics = {name: value for name, value in self._evals.items() if name != tags.VAL_LOSS}
        out.append(
            Eval(
                iter=it,
                val_loss=tags.short_f32(val) if val is not None else None,
                wall_time=_moment(self._eval_wall),
                metrics=metrics,
            )
        )
        self._eval_done = True
        self._eval_last, self._eval_ref = _common(self._eval_last, self._evals)

    def _finished(self, step: int, wall: float, runtime: float, out: list[Record]) -> None:
        """HF's end-of-training summary: ``train()`` returned at ``step``."""
        if step != self._step:
            self._close(out)
            self._open(step)
        elif self._train and not self._train_done:
            self._emit_train(out)
        it = step + self._first_out(out)
        if self._last_iter is None or it > self._last_iter:
            # Steps done past the last logged one (logging_steps does not
            # divide max_steps), as hf_trainer_state reads global_step.
            out.append(Iteration(iter=it, wall_time=_moment(wall)))
            self._last_iter = it
        self._train_done = True
        out.append(RunInfo(runtime_s=runtime, end_time=_moment(wall)))
        out.append(Outcome("finished", f"train() returned at step {it} after {runtime:.0f} s", _moment(wall)))

    def _text(self, tag: bytes, text: str, out: list[Record]) -> None:
        name = self._names.get(tag) or tag.decode("utf-8", "replace")
        info = tags.run_info_from_text(name, text, self._megatron_batch)
        if info is not None:
            out.append(info)


def _common(last: frozenset[str] | None, current: dict[str, float]) -> tuple[frozenset[str], frozenset[str]]:
    """The keys of the step handed over, and what they share with the step
    before: a later step is complete once it has that (a value logged only
    every N steps does not hold every step back)."""
    now = frozenset(current)
    return now, now & last if last is not None else now


def _moment(wall: float) -> datetime | None:
    """A record's wall time; none for one no datetime holds (a corrupt record
    past the year 9999 raised, and every record of its chunk was lost)."""
    if not wall > 0:
        return None
    try:
        return datetime.fromtimestamp(wall)
    except (OverflowError, OSError, ValueError):
        return None


def _never(head: str, filename: str) -> bool:
    return False  # binary: only ``sniff_bytes`` can tell


SPEC = ParserSpec(
    format=FORMAT,
    kind="records",
    sniff=_never,
    sniff_bytes=sniff_bytes,
    new_record_parser=TfeventsParser,
)
