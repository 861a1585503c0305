"""AllenAI OLMo's training console: OLMo (``allenai/OLMo``) and OLMo-core.

Both log a step's metrics as one Python logging record of several lines: a
progress marker, then one ``    name=value`` line per metric, indented by the
message itself (a launcher's rank tag may come before the indentation)::

    2024-02-01 12:00:00.123	node1:0	olmo.train:1240	INFO	[step=10/739328,epoch=0]
        train/CrossEntropyLoss=7.123
        throughput/total_tokens=41,943,040
        throughput/device/tokens_per_second=9,876

- OLMo, ``olmo/train.py`` ``Trainer.log_metrics_to_console``: the marker is
  ``f"[step={global_step}/{max_steps},epoch={epoch}]"`` (``[step=N/T]``
  before 2024-07, ``[step=N/{max_duration}]`` before 2023-11, where the total
  may read ``2e12T``); ``format_float`` prints ``str(v)`` under 1e-4, ``{:,d}``
  over 1000, else 1-4 decimals. Keys: ``train/CrossEntropyLoss``,
  ``throughput/total_tokens``, ``throughput/device/tokens_per_second`` and
  ``.../batches_per_second`` (a moving window over the last steps, reset
  after each eval and checkpoint), ``optim/total_grad_norm``; the LR
  (``optim/learning_rate_group0``) is left out of the console since 2023-08.
  ``Trainer.eval`` logs each evaluator's metrics the same way under its label
  (``eval/<label>/CrossEntropyLoss=``) after the step's own block.
  ``scripts/train.py`` logs the whole ``TrainConfig(...)`` repr on one line,
  ``Total number of parameters: 1,176,764,416``, ``Checkpoint saved to <p>``
  and ``Training complete``.
- OLMo-core, ``train/callbacks/console_logger.py``
  ``ConsoleLoggerCallback.log_metrics``: ``[step=N/T,epoch=E,eta=2h3m]``
  (``T`` is ``???`` without a step limit), keys ``train/CE loss``,
  ``optim/LR (group 0)``, ``optim/total grad norm``, ``throughput/total
  tokens``, ``throughput/device/TPS``, ``.../BPS`` (1 / that step's time,
  its evals and checkpoints included) and ``.../MFU`` (a percentage);
  ``utils.format_float`` adds ``2.00E-05`` and the suffixes
  ``B``/``T``/``P``/``E`` over 1e9. Steps without metrics get a bare
  marker, not read: metrics are reduced in the background and may be printed
  after later markers. The evaluator callback logs ``Finished <name> evals in
  12.3 seconds. Metrics:`` then ``    <task>/CE loss=...`` lines, from the
  post-step of the step whose metrics come right after it (with an eval
  interval that is no multiple of the metrics interval, the next metrics
  step: up to ``metrics_collect_interval`` steps late). Checkpoints are
  ``Saving checkpoint for step N to '<p>'...`` and ``Checkpoint saved`` (or
  ``Checkpoint for step N saved successfully``); ``Training for N steps``
  gives the target. The rich handler's lines read ``[2024-02-01 12:00:00]
  INFO     [olmo_core...:73, host, rank=0] [step=...]``.

A block is over only when a line that is not one of its metrics comes, so it
is held until then, or until ``flush`` (end of input, or the log went
quiet); metric lines that come after a flush are dropped. Token rates are
per device: multiplied by the world size where OLMo's config states it, else
kept per GPU.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime

from trainwatch.core.records import Checkpoint, Eval, EvalTiming, Iteration, Outcome, Record, RunInfo, TokensScope
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.text import last_cr_segment, strip_ansi, strip_prefixes, to_int

FORMAT = "olmo_console"

HEADER = re.compile(r"\[step=(\d{1,18})/([^,\]\s]{0,40})(?:,epoch=\d+)?(?:,eta=[^\]]{0,60})?\]")
# An indented ``name=value``; names hold spaces and brackets ("optim/LR (group 0)").
METRIC = re.compile(r"^\s+([^\s=][^=]{0,200}?)=(\S{1,40})\s*$")
# What OLMo's two ``format_float`` print: commas only in whole thousands groups
# (a line cut inside "41,943,040" must not read as 41,9).
NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?")
_SUFFIX = {"B": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
# srun --label's "3: " (the shared prefix pattern wants a bracketed tag after it).
_SRUN = re.compile(r"^\s{0,6}\d{1,6}: ")
_STAMP = re.compile(r"^\[?(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d{1,6})?)\b")
_SNIFF_METRIC = re.compile(
    r"^[^\n=]{0,40}?\s(?:train/CrossEntropyLoss|train/CE loss|throughput/device/(?:tokens_per_second|TPS))=\S",
    re.MULTILINE,
)
_EVALS_DONE = re.compile(r"Finished .{1,200} evals in ([\d.]+) seconds\. Metrics:")
_SAVING = re.compile(r"Saving checkpoint for step (\d{1,18}) to '(.{1,500})'")
_SAVED_STEP = re.compile(r"Checkpoint for step (\d{1,18}) saved successfully")
_SAVED_TO = re.compile(r"(?:Unsharded c|C)heckpoint saved to (\S{1,500})")
_TRAINING_FOR = re.compile(r"Training for ([\d,]{1,24}) steps")
_PARAMS = re.compile(r"Total number of parameters: ([\d,]{1,24})")
_CONFIG = re.compile(
    r"\b(global_train_batch_size|device_train_batch_size|max_sequence_length|d_model|n_heads|n_layers)=(\d{1,18})\b"
)
_RUN_NAME = re.compile(r"\bTrainConfig\(run_name='([^']{1,200})'")
MAX_METRICS = 500  # per block: a runaway indented dump is no step


def sniff(head: str, filename: str) -> bool:
    """An OLMo metric line, or a step marker in a log that names OLMo's loggers."""
    if "=" not in head:
        return False
    if _SNIFF_METRIC.search(head) is not None:
        return True
    return ("olmo.train" in head or "olmo_core." in head) and HEADER.search(head) is not None


def number(text: str) -> float | None:
    """A value as ``format_float`` printed it; NaN and inf kept, ``None`` for anything else."""
    scale = _SUFFIX.get(text[-1:], 1.0) if len(text) > 1 and text[-2].isdigit() else 1.0
    if scale != 1.0:
        text = text[:-1]
    if NUMBER.fullmatch(text) is not None:
        return float(text.replace(",", "")) * scale
    lowered = text.lower()
    return float(lowered) if lowered in ("nan", "inf", "-inf", "+inf") else None


def body(line: str) -> str:
    """``line`` without ANSI, ``\\r`` frames and launcher tags, its indentation kept."""
    line = strip_prefixes(strip_ansi(last_cr_segment(line)))
    if line[:1] != " " and (m := _SRUN.match(line)) is not None:
        line = line[m.end() :]
    return line


def stamp(line: str) -> datetime | None:
    """The logging timestamp a line starts with (plain or rich handler), if any."""
    m = _STAMP.match(line)
    if m is None:
        return None
    try:
        return datetime.fromisoformat(m.group(1))
    except ValueError:
        return None


class _Block:
    """One logging record's metric lines, collected until the record is over."""

    __slots__ = ("kind", "metrics", "seconds", "step", "target", "when")

    def __init__(self, kind: str, step: int | None = None, target: int | None = None) -> None:
        self.kind = kind  # "step", "evals" (OLMo-core's), "other" (an OLMo eval label, or nothing)
        self.step = step
        self.target = target
        self.when: datetime | None = None
        self.seconds: float | None = None
        self.metrics: dict[str, float] = {}


class EvalsAtStep:
    """Evaluators of one step, merged: the aggregator keeps one ``Eval`` per
    step, the last, so each repeats what the earlier ones of its step logged."""

    __slots__ = ("loss", "metrics", "seconds", "step")

    def __init__(self) -> None:
        self.step: int | None = None
        self.loss: float | None = None
        self.seconds: float | None = None
        self.metrics: dict[str, float] = {}

    def add(self, ev: Eval, step: int) -> Eval:
        """``ev`` at ``step``, with what earlier evaluators of that step logged."""
        if step != self.step:
            self.step, self.loss, self.seconds, self.metrics = step, None, None, {}
        if self.loss is None:
            self.loss = ev.val_loss
        if ev.seconds is not None:
            self.seconds = (self.seconds or 0.0) + ev.seconds
        self.metrics.update(ev.metrics)
        return Eval(step, self.loss, wall_time=ev.wall_time, metrics=dict(self.metrics), seconds=self.seconds)


class OlmoConsoleParser:
    """Stateful line parser of one OLMo or OLMo-core console log (``feed``, then ``flush``)."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._block: _Block | None = None
        self._last_step: int | None = None
        self._target: int | None = None
        self._world: int | None = None
        self._scope_sent = False
        self._timing_sent = False
        self._evals = EvalsAtStep()
        self._core_evals: list[Eval] = []  # OLMo-core's, waiting for their step's metrics
        self._saving: dict[int, str] = {}
        self._saving_last: int | None = None

    def feed(self, line: str) -> Sequence[Record]:
        """Records completed by one line (without its newline)."""
        try:
            return self._feed(line)
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, line)
            self._block = None
            return ()

    def flush(self) -> Sequence[Record]:
        """No more input is due now: hand over the block still open (its late lines are dropped)."""
        try:
            return self._release() + self._evals_at_last()
        except Exception:
            line_failed(FORMAT, "<flush>")
            return ()

    def _feed(self, line: str) -> list[Record]:
        text = body(line)
        block = self._block
        if block is not None and text[:1] in (" ", "\t"):
            m = METRIC.match(text)
            if m is not None:
                value = number(m.group(2))
                if value is not None and len(block.metrics) < MAX_METRICS:
                    block.metrics.setdefault(m.group(1), value)
                return []
        out = self._release() if block is not None else []
        if "[step=" in text and (m := HEADER.search(text)) is not None:
            self._block = _Block("step", int(m.group(1)), to_int(m.group(2)))
            self._block.when = stamp(text)
            return out
        if "evals in" in text and (m := _EVALS_DONE.search(text)) is not None:
            self._block = _Block("evals")
            self._block.when = stamp(text)
            self._block.seconds = float(m.group(1)) if NUMBER.fullmatch(m.group(1)) else None
            return out
        facts = self._other(text)
        if facts:
            if isinstance(facts[-1], Outcome):
                out += self._evals_at_last()  # the evals on finish (or before a crash) are over
            return out + facts
        if text[:1] not in (" ", "\t", ""):
            self._block = _Block("other")  # maybe an OLMo eval label: its lines will tell
            self._block.when = stamp(text)
        return out

    # ----------------------------------------------------------------- blocks

    def _release(self) -> list[Record]:
        block, self._block = self._block, None
        if block is None or not block.metrics:
            return []  # a bare progress marker, or a line that opened nothing
        if block.kind == "step" and block.step is not None:
            return self._step(block, block.step)
        if block.kind == "evals":
            ev = _eval(block.metrics, "/CE loss", block.seconds, block.when)
            if self._last_step is None:
                return self._merge_eval(ev, 0)  # eval_on_startup, before any step
            if len(self._core_evals) < 64:
                self._core_evals.append(ev)
            return []
        if self._last_step is not None and any(k.startswith("eval/") for k in block.metrics):
            return self._merge_eval(_eval(block.metrics, "/CrossEntropyLoss", None, block.when), self._last_step)
        return []

    def _step(self, block: _Block, step: int) -> list[Record]:
        out: list[Record] = []
        if self._core_evals:
            # OLMo-core evaluates in a step's post-step hook, before that step's
            # metrics are printed; a bare marker printed between does not count.
            at = step if self._last_step is None or step > self._last_step else self._last_step
            out += [self._evals.add(ev, at) for ev in self._core_evals]
            self._core_evals = []
        if self._crash.ended or (self._last_step is not None and step <= self._last_step):
            self._crash.reset()  # resumed, or a new run appended to the file
            self._evals = EvalsAtStep()
        self._last_step = step
        m = block.metrics
        target = block.target if block.target and block.target != self._target else None
        if target is not None:
            self._target = target
        tps = _nonneg(_first(m, "throughput/device/tokens_per_second", "throughput/device/TPS"))
        if tps is not None and self._world:
            tps *= self._world  # per device; OLMo's config says how many
        scope: TokensScope | None = None
        if tps is not None and not self._scope_sent:
            self._scope_sent = True
            scope = "total" if self._world else "gpu"
        timing: EvalTiming | None = None
        if not self._timing_sent and "throughput/device/batches_per_second" in m:
            self._timing_sent = True
            timing = "excluded"  # OLMo resets its speed monitor after an eval or a checkpoint
        elif not self._timing_sent and "throughput/device/BPS" in m:
            # OLMo-core's speed monitor (priority -2) times a step's post-step
            # hooks after the evaluator's and the checkpointer's have run.
            self._timing_sent = True
            timing = "same"
        if target is not None or scope is not None or timing is not None:
            out.append(RunInfo(target=target, tokens_per_sec_scope=scope, eval_timing=timing))
        bps = _nonneg(_first(m, "throughput/device/batches_per_second", "throughput/device/BPS"))
        seen = _nonneg(_first(m, "throughput/total_tokens", "throughput/total tokens"))
        lr = _first(m, "optim/LR (group 0)", "optim/learning_rate_group0", "optim/LR")
        out.append(
            Iteration(
                iter=step,
                loss=_first(m, "train/CrossEntropyLoss", "train/CE loss"),
                time_ms=1000.0 / bps if bps else None,
                mfu_pct=_nonneg(m.get("throughput/device/MFU")),
                tokens_per_sec=tps,
                lr=lr,
                grad_norm=_first(m, "optim/total_grad_norm", "optim/total grad norm", "optim/grad_norm"),
                tokens_seen=round(seen) if seen is not None else None,
                wall_time=block.when,
            )
        )
        return out

    def _merge_eval(self, ev: Eval, step: int) -> list[Record]:
        return [self._evals.add(ev, step)]

    def _evals_at_last(self) -> list[Record]:
        """OLMo-core evals still waiting for a step's metrics, at the last step (no more are due)."""
        evals, self._core_evals = self._core_evals, []
        step = self._last_step
        return [self._evals.add(ev, step) for ev in evals] if step is not None else []

    # ------------------------------------------------------------ other lines

    def _other(self, text: str) -> list[Record]:
        """Run facts, checkpoints, the end and failures in a line outside any block."""
        if "heckpoint" in text:
            records = self._checkpoint(text)
            if records:
                return records
        if "Training complete" in text:
            self._crash.finished()
            return [Outcome("finished", "Training complete", stamp(text))]
        if "TrainConfig(" in text:
            return self._config(text)
        if "Training for" in text and (m := _TRAINING_FOR.search(text)) is not None:
            target = to_int(m.group(1).replace(",", ""))
            if target:
                self._target = target
                return [RunInfo(target=target)]
        if "Total number of parameters:" in text and (m := _PARAMS.search(text)) is not None:
            params = to_int(m.group(1).replace(",", ""))
            return [RunInfo(params=params)] if params else []
        failure = self._crash.check(text)
        return [failure] if failure is not None else []

    def _checkpoint(self, text: str) -> list[Record]:
        if (m := _SAVING.search(text)) is not None:
            self._saving_last = int(m.group(1))
            self._saving[self._saving_last] = m.group(2)
            if len(self._saving) > 64:
                self._saving.pop(next(iter(self._saving)))
            return []
        if (m := _SAVED_STEP.search(text)) is not None:
            step = int(m.group(1))
            return [Checkpoint(step, self._saving.pop(step, None), stamp(text))]
        if "Checkpoint saved" in text and (m := _SAVED_TO.search(text)) is not None:
            return [Checkpoint(self._last_step, m.group(1), stamp(text))]  # OLMo: after its step's block
        if text.rstrip().endswith("Checkpoint saved") and self._saving_last is not None:
            step, self._saving_last = self._saving_last, None
            return [Checkpoint(step, self._saving.pop(step, None), stamp(text))]
        return []

    def _config(self, text: str) -> list[Record]:
        """OLMo's one-line ``TrainConfig(...)`` repr (nested configs come first: the first hit wins)."""
        found: dict[str, int] = {}
        for m in _CONFIG.finditer(text):
            found.setdefault(m.group(1), int(m.group(2)))
        name = _RUN_NAME.search(text)
        world = None
        glob, dev = found.get("global_train_batch_size"), found.get("device_train_batch_size")
        if glob and dev and glob % dev == 0:
            world = self._world = glob // dev
        seq = found.get("max_sequence_length")
        return [
            RunInfo(
                name=name.group(1) if name is not None else None,
                world_size=world,
                block_size=seq,
                tokens_per_iter=glob * seq if glob and seq else None,
                n_layer=found.get("n_layers"),
                n_head=found.get("n_heads"),
                n_embd=found.get("d_model"),
            )
        ]


def _eval(metrics: dict[str, float], loss_suffix: str, seconds: float | None, when: datetime | None) -> Eval:
    """An evaluator's metrics: its first cross-entropy is the val loss; all are
    kept by name (another evaluator's loss at the same step among them)."""
    loss_key = next((k for k in metrics if k.endswith(loss_suffix)), None)
    rest = {k: v for k, v in metrics.items() if math.isfinite(v)}
    loss = metrics[loss_key] if loss_key is not None else None
    return Eval(0, loss, wall_time=when, metrics=rest, seconds=seconds)


def _first(metrics: dict[str, float], *keys: str) -> float | None:
    return next((metrics[k] for k in keys if k in metrics), None)


def _nonneg(value: float | None) -> float | None:
    """A rate or count: finite and not negative, else unknown."""
    return value if value is not None and math.isfinite(value) and value >= 0 else None


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=OlmoConsoleParser)
