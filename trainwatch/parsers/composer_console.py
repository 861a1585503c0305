"""MosaicML Composer's console logger (LLM Foundry's training stdout/stderr).

``composer/loggers/console_logger.py`` ``ConsoleLogger.log_to_console``
prints, in one ``print``, a progress marker, a colon when metrics follow,
and one ``\\n\\t {prefix}{name}: {value}`` per metric logged since the last
print (``format_log_data_value``: ints as they are, floats ``{:.4f}``)::

    [batch=10/4800]:
    <TAB> Train time/batch: 9
    <TAB> Train time/token: 18874368
    <TAB> Train loss/train/total: 7.1234
    <TAB> Train throughput/tokens_per_sec: 212345.6789
    <TAB> Train throughput/device/mfu: 0.4123
    [Eval batch=10/10] Eval on eval data:
    <TAB> Eval metrics/eval/LanguageCrossEntropy: 3.4567

(``<TAB>`` is a tab.) The marker (``_get_progress_string``) is ``[batch=N/T]`` for a duration in
batches (``[token=N/T]``, ``[sample=N/T]`` in tokens or samples) and
``[epoch=E][batch=b/B]`` for one in epochs, ``b`` counting in the epoch; it
is printed at ``BATCH_END``, after the timestamp moved on, so it counts the
batches done. Eval blocks (``_get_eval_progress_string``) are printed after
that batch's marker: their step is the last marker's. ``time/batch`` and
``time/token`` are logged at ``BATCH_START`` (the trainer's ``_train_loop``),
so they lag the marker by one batch: ``time/token`` is kept as tokens seen
(the aggregator only takes differences of it); ``time/batch`` + 1 gives the
step where the marker counts tokens or samples. The ``SpeedMonitor``
callback logs ``throughput/batches_per_sec`` and ``throughput/tokens_per_sec``
(all ranks, over its window, wall time without evals),
``throughput/device/mfu`` (a fraction) and ``time/train`` (cumulative, in its
``time_unit``, hours by default: differenced where the window is not full
yet); ``LRMonitor`` logs ``lr-<Optimizer>/group0``, ``OptimizerMonitor``
``l2_norm/grad_global``. At ``FIT_START`` the hyperparameters are dumped as
YAML between two rules of 30 ``*`` after ``Config:`` (LLM Foundry's whole
config: ``n_gpus``, ``max_seq_len``, ``global_train_batch_size``,
``max_duration``, ``eval_interval``, ``n_params``, ``run_name``).

A block is over only when a line that is not one of its metrics comes, so it
is held until then, or until ``flush`` (end of input, or the log went quiet);
metric lines that come after a flush are dropped. Checkpoint saves are logged
at DEBUG only, and the run's end not at all: a run is finished when the
marker reaches the stated target.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from trainwatch.core.records import Eval, Iteration, Record, RunInfo
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.olmo_console import EvalsAtStep, body
from trainwatch.parsers.text import PREFIX, to_int

FORMAT = "composer_console"

_TRAIN = re.compile(
    r"^(?:\[epoch=(\d{1,9})\])?\[(batch|token|sample|epoch|iteration|duration)=(\d{1,18})(?:/([\d.]{1,24}))?\]:?\s*$"
)
_EVAL = re.compile(r"^\[Eval batch=\d{1,18}/\d{1,18}\] Eval on (.{1,200}) data:?\s*$")
# Any value: a table's JSON or "Tensor of shape ..." is skipped, not taken for the block's end.
_METRIC = re.compile(r"^\s+(Train|Eval) ([^:]{1,200}): (.*)$")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")
_RULE = "*" * 30
_YAML = re.compile(r"^(\w{1,60}): *(\S{1,200})\s*$")
_TIME_UNIT = re.compile(r"^\s+time_unit: *(\w+)")
_SECONDS = {"seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
# A launcher's tag may come first: text.PREFIX, or srun --label's bare "0: " (the
# multi-node LLM Foundry log in aws-samples' llm-foundry test case README).
_TAG = rf"(?:{PREFIX}|\d{{1,6}}:[ \t])?"
_SNIFF = re.compile(
    rf"^{_TAG}(?:\[epoch=\d+\])?\[(?:batch|token|sample)=\d+(?:/\d+)?\]:[ \t]*\r?\n"
    rf"{_TAG}\s*\t? ?Train \S",
    re.MULTILINE,
)
MAX_METRICS = 500
MAX_CONFIG_LINES = 5000


def sniff(head: str, filename: str) -> bool:
    """A Composer train marker followed by its first metric, or an eval block's marker."""
    if "=" not in head or not ("Train " in head or "] Eval on " in head):
        return False
    return _SNIFF.search(head) is not None or re.search(r"\[Eval batch=\d+/\d+\] Eval on \S.* data:", head) is not None


def _value(text: str) -> float | None:
    """An int or ``{:.4f}`` float as Composer prints it; NaN and inf kept; else ``None``."""
    if _NUMBER.fullmatch(text) is not None:
        return float(text)
    lowered = text.lower()
    return float(lowered) if lowered in ("nan", "inf", "-inf") else None


class _Block:
    __slots__ = ("epoch", "evals", "is_eval", "metrics", "n", "total", "unit")

    def __init__(self, is_eval: bool, unit: str = "", n: int = 0, total: str | None = None) -> None:
        self.is_eval = is_eval
        self.unit = unit
        self.n = n
        self.total = total
        self.epoch: int | None = None
        self.metrics: dict[str, float] = {}
        self.evals: dict[str, float] = {}  # "Eval " lines under a train marker (Composer < 0.13)


class ComposerConsoleParser:
    """Stateful line parser of one Composer console log (``feed``, then ``flush``)."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._block: _Block | None = None
        self._last_step: int | None = None
        self._target: int | None = None
        self._world: int | None = None
        self._evals = EvalsAtStep()
        self._config: dict[str, str] | None = None  # inside the Config: dump
        self._config_lines = 0
        self._rule_seen = False
        self._time_unit = 3600.0
        self._train_time: tuple[int, float] | None = None  # (step, time/train) of the last block
        self._scope_sent = False
        self._timing_sent = False
        self._derived_sent = False

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
            return self._release()
        except Exception:
            line_failed(FORMAT, "<flush>")
            return ()

    def _feed(self, line: str) -> list[Record]:
        text = body(line)
        block = self._block
        if block is not None and text[:1] in (" ", "\t"):
            m = _METRIC.match(text)
            if m is not None:
                value = _value(m.group(3).strip())
                into = block.evals if m.group(1) == "Eval" and not block.is_eval else block.metrics
                if value is not None and len(into) < MAX_METRICS:
                    into.setdefault(m.group(2), value)
                return []
        out = self._release() if block is not None else []
        if self._config is not None or text.startswith(("Config:", _RULE)):
            return out + self._config_line(text)
        if text[:1] == "[":
            if (m := _TRAIN.match(text)) is not None:
                self._block = _Block(False, m.group(2), int(m.group(3)), m.group(4))
                self._block.epoch = int(m.group(1)) if m.group(1) else None
                return out
            if text.startswith("[Eval ") and _EVAL.match(text) is not None:
                self._block = _Block(True)
                return out
        failure = self._crash.check(text)
        return [*out, failure] if failure is not None else out

    # ----------------------------------------------------------------- blocks

    def _release(self) -> list[Record]:
        block, self._block = self._block, None
        if block is None:
            return []
        if block.is_eval:
            return self._eval(block.metrics) if block.metrics else []
        out = self._train(block) if block.metrics else []
        if block.evals:
            # Before 0.13 (2023-01) eval_end printed its metrics under the
            # training marker; they are no new step.
            step = self._step_of(block)[0]
            if step is not None and (self._last_step is None or step > self._last_step):
                self._last_step = step
            out += self._eval(block.evals)
        return out

    def _step_of(self, block: _Block) -> tuple[int | None, int | None, bool]:
        """The block's step, the target it states, whether the step is derived."""
        done = block.metrics.get("time/batch")
        after = int(done) + 1 if done is not None and math.isfinite(done) and done >= 0 else None
        if block.unit == "batch" and block.epoch is None:
            return block.n, to_int(block.total or ""), False
        if block.unit == "batch" and block.epoch is not None:
            per_epoch = to_int(block.total or "")
            if per_epoch:  # [epoch=E][batch=b/B]: b counts within the epoch
                return (block.epoch - 1) * per_epoch + block.n, None, True
        return after, None, True

    def _train(self, block: _Block) -> list[Record]:
        step, target, derived = self._step_of(block)
        if step is None:
            return []
        out: list[Record] = []
        if self._crash.ended or (self._last_step is not None and step <= self._last_step):
            self._crash.reset()  # autoresumed from a checkpoint, or a new run in the file
            self._evals = EvalsAtStep()
            self._train_time = None
        self._last_step = step
        m = block.metrics
        target = target if target and target != self._target else None
        if target is not None:
            self._target = target
        tps = _nonneg(m.get("throughput/tokens_per_sec"))
        per_device = _nonneg(m.get("throughput/device/tokens_per_sec"))
        if tps is None and per_device is not None and self._world:
            tps = per_device * self._world
        scope_news = tps is not None and not self._scope_sent
        self._scope_sent |= scope_news
        bps = _nonneg(m.get("throughput/batches_per_sec"))
        time_ms = 1000.0 / bps if bps else self._from_train_time(step, m.get("time/train"))
        timing_news = time_ms is not None and not self._timing_sent
        self._timing_sent |= timing_news
        derived_news = derived and not self._derived_sent
        self._derived_sent |= derived_news
        if target is not None or scope_news or timing_news or derived_news:
            out.append(
                RunInfo(
                    target=target,
                    tokens_per_sec_scope="total" if scope_news else None,
                    # The speed monitor's wall clock leaves the evals out.
                    eval_timing="excluded" if timing_news else None,
                    iter_derived=True if derived_news else None,
                )
            )
        mfu = _nonneg(m.get("throughput/device/mfu"))
        seen = _nonneg(m.get("time/token"))
        lr = next((v for k, v in m.items() if k.startswith("lr-") and k.endswith("/group0")), None)
        loss = m.get("loss/train/total", m.get("metrics/train/LanguageCrossEntropy"))
        out.append(
            Iteration(
                iter=step,
                loss=loss,
                time_ms=time_ms,
                mfu_pct=100.0 * mfu if mfu is not None else None,
                tokens_per_sec=tps,
                lr=lr,
                grad_norm=m.get("l2_norm/grad_global"),
                tokens_seen=int(seen) if seen is not None else None,
            )
        )
        return out

    def _from_train_time(self, step: int, train_time: float | None) -> float | None:
        """Per-step time from the cumulative ``time/train`` of this block and the last."""
        last, self._train_time = self._train_time, None
        if train_time is None or not math.isfinite(train_time):
            return None
        self._train_time = (step, train_time)
        if last is None or step <= last[0] or train_time <= last[1]:
            return None
        return (train_time - last[1]) * self._time_unit * 1000.0 / (step - last[0])

    def _eval(self, metrics: dict[str, float]) -> list[Record]:
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        # "metrics/eval/LanguageCrossEntropy"; bare "LanguageCrossEntropy" before 0.13.
        loss_key = next((k for k in metrics if k.rpartition("/")[2] == "LanguageCrossEntropy"), None)
        ev = Eval(0, metrics[loss_key] if loss_key is not None else None, metrics=finite)
        return [self._evals.add(ev, self._last_step or 0)]  # before training: eval_first

    # ----------------------------------------------------------------- config

    def _config_line(self, text: str) -> list[Record]:
        """The ``Config:`` YAML dump between two rules: the run facts it holds."""
        if self._config is None:
            if text.startswith(_RULE):
                self._rule_seen = True
            elif text.startswith("Config:") and self._rule_seen:
                self._config, self._config_lines = {}, 0
            return []
        if text.startswith(_RULE) or self._config_lines > MAX_CONFIG_LINES:
            config, self._config, self._rule_seen = self._config, None, False
            return self._config_info(config)
        self._config_lines += 1
        if (m := _YAML.match(text)) is not None:
            self._config.setdefault(m.group(1), m.group(2).strip("'\""))
        elif (m := _TIME_UNIT.match(text)) is not None and m.group(1) in _SECONDS:
            self._time_unit = _SECONDS[m.group(1)]
        return []

    def _config_info(self, config: dict[str, str]) -> list[Record]:
        world = to_int(config.get("n_gpus", ""))
        seq = to_int(config.get("max_seq_len", ""))
        batch = to_int(config.get("global_train_batch_size", ""))
        duration = config.get("max_duration", "")
        target = _batches(duration)
        self._world = world or self._world
        if target:
            self._target = target
        return [
            RunInfo(
                name=config.get("run_name"),
                world_size=world or None,
                params=to_int(config.get("n_params", "")) or None,
                target=target,
                block_size=seq or None,
                tokens_per_iter=batch * seq if batch and seq else None,
                eval_interval=_batches(config.get("eval_interval", "")),
            )
        ]


def _batches(text: str) -> int | None:
    """A Composer duration in batches (``500ba``; a bare number means epochs to Composer)."""
    return to_int(text.removesuffix("ba")) or None if text.endswith("ba") else None


def _nonneg(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value >= 0 else None


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=ComposerConsoleParser)
