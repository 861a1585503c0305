"""KellerJordan/modded-nanogpt record logs (``logs/<uuid>.txt``) and their console copies.

``train_gpt.py`` opens its log with its own source (``print0(code)``, read
"ASAP, for logging" through ``with open(sys.argv[0]) ...``), then a rule of
100 ``=``, the Python/PyTorch versions and an ``nvidia-smi`` table, another
rule, then the run. Derivatives print the log path, a ``Hyperparameters:``
repr and ``tokens_per_fwdbwd=N (B=.. T=.. ddp_world_size=.. ...)`` first. The
source holds the very format strings (``f"step:{step}/{train_steps}
val_loss:..."``): lines from ``with open(sys.argv[0]`` to the next rule are
skipped, and a metric line needs digits where the f-string has braces.

Metric lines are ``step:<i>/<N>`` then ``key:value`` pairs, one space apart:

- older style, every step: ``train_loss:<f4> train_time:<ms>ms
  step_avg:<ms>ms`` (derivatives add ``tokens_seen:5.24e+05
  tokens/sec:4.83e+04 vram:15.8/23.5GB``);
- newer style, every step: ``train_time:<ms>ms step_avg:<ms>ms`` (no loss);
- both: ``step:<i>/<N> val_loss:<f> train_time:<ms>ms step_avg:<ms>ms`` at
  step 0 and every ``val_loss_every`` steps (track-3 logs print only these,
  with ``train_time:<s>s``).

The run ends with ``peak memory consumption: N MiB`` (``peak memory
allocated: ... reserved: ...`` in newer code).

Time per step. ``train_time`` is the cumulative training time: the clock is
stopped (``torch.cuda.synchronize()``) around each validation pass and started
again after it, so evaluation is excluded. ``step_avg`` is a running mean
(``approx_training_time_ms / (step + 1)`` upstream, ``approx_time /
timed_steps`` with ``timed_steps = nan`` for the first ~11 steps in the
older code, hence ``step_avg:nanms``): it would smear a slow step over the
whole run and hide a hang, so it is not read. A step's time is the
difference of consecutive ``train_time`` values over the step gap: the
differences add up exactly to the logged total (the per-step value carries
±1 ms of print rounding, and the unsynchronised ``approx`` reading moves a
little GPU time between neighbours). The older code zeroes
``training_time_ms`` at the top of step 10 so that compilation does not count;
``train_time`` then drops (33826 ms -> 2556 ms at step:11) and the step
after the drop took ``train_time`` itself (over a gap of more than one step,
its time is unknown). ``step:0`` is the first validation (``train_time:0``)
and gives the clock's start, no iteration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from trainwatch.core.records import Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.text import PREFIX, last_cr_segment, strip_ansi, strip_prefixes, to_float, to_int

FORMAT = "modded_nanogpt"

# A metric line through a launcher's prefixes; braces (an f-string in the
# logged source) do not match the digits.
_SNIFF = re.compile(rf"^(?:{PREFIX})?step:\d+/\d+ (?:val_loss|train_loss|train_time):", re.MULTILINE)
_PREFIX_START = frozenset("[0123456789 \t")
_RULE = "=" * 40
_CONFIG = re.compile(r"\b(n_layer|n_head|n_embd|model_dim|num_layers|num_heads)=(\d{1,18})\b")
_FWDBWD = re.compile(r"\b(tokens_per_fwdbwd|B|T|ddp_world_size|train_accumulation_steps)=(\d{1,18})\b")
# nvidia-smi's first GPU row: "|   0  NVIDIA H100 80GB HBM3          On  |".
_SMI_GPU = re.compile(r"^\|\s+0\s+(.+?)\s{2,}(?:On|Off)\s+\|")


def sniff(head: str, filename: str) -> bool:
    """A ``step:i/N`` metric line, or the head of a log that starts with its training source."""
    if "\x00" in head[:4096]:
        return False  # a binary log that quotes the console is not this text
    if "step:" in head and _SNIFF.search(head) is not None:
        return True
    # The source alone fills the first few KB of a record log.
    return "with open(sys.argv[0]" in head and "ASAP, for logging" in head


class ModdedNanoGPTParser:
    """Stateful line parser for one modded-nanogpt log."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._in_code = False
        self._target: int | None = None
        self._scope_sent = False
        self._gpu_known = False
        self._last_step: int | None = None  # last step read (a train line, or a val line standing for one)
        self._clock: tuple[int, float] | None = None  # (step, train_time ms) the next step's time counts from

    def feed(self, line: str) -> Sequence[Record]:
        """Records in one line of the log."""
        try:
            return self._feed(line)
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, line)
            return ()

    def _feed(self, line: str) -> Sequence[Record]:
        if self._in_code:
            # The logged source ends at print0("=" * 100).
            if line.startswith(_RULE) and not line.rstrip().strip("="):
                self._in_code = False
            return ()
        if not line.startswith("step:"):
            if "\r" in line:
                line = last_cr_segment(line)
            if "\x1b" in line:
                line = strip_ansi(line)
            if line[:1] in _PREFIX_START:
                line = strip_prefixes(line)
        if line.startswith("step:"):
            records = self._metric(line)
            if records is not None:
                return records
        return self._other(line)

    # ------------------------------------------------------------- metrics

    def _metric(self, line: str) -> list[Record] | None:
        """A ``step:i/N key:value ...`` line; ``None`` if ``line`` is none."""
        got = fast_line(line) or read_line(line)
        if got is None:
            return None
        out: list[Record] = []
        if got.total != self._target and got.total > 0:
            self._target = got.total
            # The clock stops for validation: evals cost no logged time.
            out.append(RunInfo(target=got.total, eval_timing="excluded"))
        if got.kind == "val":
            out += self._val(got.step, got.value, got.time_total)
        elif got.kind == "train":
            if got.rate is not None and not self._scope_sent:
                self._scope_sent = True
                # tokens_seen / train_time on the master rank: every GPU's tokens.
                out.append(RunInfo(tokens_per_sec_scope="total"))
            if self._last_step is not None and got.step <= self._last_step:
                self._restart()
            out.append(self._iteration(got.step, got.time_total, got))
        return out

    def _val(self, step: int, val_loss: float | None, time_total: float | None) -> list[Record]:
        out: list[Record] = [Eval(iter=step, val_loss=val_loss)]
        if self._last_step is not None and step < self._last_step:
            self._restart()
        if step == 0:
            self._clock = (0, time_total) if time_total is not None else None  # the clock's start
        elif self._last_step is None or step > self._last_step:
            # Logs that print only validation lines: the val line is the only
            # news of its step (listed after the eval, as the train line is).
            out.insert(0, self._iteration(step, time_total, None))
        return out

    def _iteration(self, step: int, time_total: float | None, got: MetricLine | None) -> Iteration:
        time_ms: float | None = None
        clock = self._clock
        if time_total is not None and clock is not None and step > clock[0]:
            gap, base = step - clock[0], clock[1]
            if time_total >= base:
                time_ms = (time_total - base) / gap
            elif gap == 1:
                time_ms = time_total  # the clock was zeroed at the top of this step
        elif time_total is not None and clock is None and step > 0:
            time_ms = time_total / step  # train_time counts from step 0: its mean so far
        if time_total is not None:
            self._clock = (step, time_total)
        self._last_step = step
        if got is None:
            return Iteration(step, None, time_ms)
        seen = got.seen
        # Positional (iter, loss, time_ms, mfu_pct, tokens_per_sec, lr, grad_norm,
        # tokens_seen): twice as fast as keywords on the hot path.
        tokens = int(seen) if seen is not None and seen < 2**62 else None
        return Iteration(step, got.value, time_ms, None, got.rate, None, None, tokens)

    def _restart(self) -> None:
        """Steps went back: a new run in the same file."""
        self._clock = None
        self._last_step = None
        self._crash.reset()

    # ------------------------------------------------------------- others

    def _other(self, line: str) -> Sequence[Record]:
        if line.startswith("with open(sys.argv[0]"):
            self._in_code = True  # the logged source: nothing in it is a record
            return ()
        if line.startswith("peak memory"):
            self._crash.finished()
            return [Outcome("finished", line.strip())]
        if self._last_step is None:
            info = self._preamble(line)
            if info:
                return [RunInfo(**info)]
        failure = self._crash.check(line)
        return [failure] if failure is not None else ()

    def _preamble(self, line: str) -> dict[str, Any]:
        """Run facts from the lines before the first step; ``{}`` if none."""
        if line.startswith("tokens_per_fwdbwd="):
            # A derivative: tokens_per_fwdbwd = B * T * ddp_world_size * train_accumulation_steps.
            got = {key: int(value) for key, value in _FWDBWD.findall(line)}
            info: dict[str, Any] = {
                "tokens_per_iter": got.get("tokens_per_fwdbwd"),
                "batch_size": got.get("B"),
                "block_size": got.get("T"),
                "world_size": got.get("ddp_world_size"),
                "grad_accum_per_gpu": got.get("train_accumulation_steps"),
            }
            return {key: value for key, value in info.items() if value}
        if "Config" in line and (found := _CONFIG.findall(line)):
            names = {"model_dim": "n_embd", "num_layers": "n_layer", "num_heads": "n_head"}
            return {names.get(key, key): int(value) for key, value in found if int(value) > 0}
        if self._gpu_known:
            return {}
        if line.startswith("|") and (m := _SMI_GPU.match(line)) is not None:
            self._gpu_known = True
            return {"gpu": m.group(1).strip()}
        if line.startswith("Running PyTorch") and (running := _running_on(line)) is not None:
            self._gpu_known = True
            return {"gpu": running[0], "world_size": running[1] or None}
        return {}


class MetricLine(NamedTuple):
    """What one ``step:i/N ...`` line says."""

    step: int
    total: int
    kind: str  # "val" (val_loss), "train" (train_loss or train_time) or "" (neither)
    value: float | None  # val_loss or train_loss
    time_total: float | None  # train_time, ms
    seen: float | None  # tokens_seen
    rate: float | None  # tokens/sec


def read_line(line: str) -> MetricLine | None:
    """A metric line's values; ``None`` if ``line`` is none (``step:{step}/...`` source, a cut line)."""
    tokens = line.split()
    step_text, _, total_text = tokens[0][5:].partition("/")
    step, total = to_int(step_text), to_int(total_text)
    if step is None or total is None:
        return None
    # A line cut off mid-value (a crash, a half-flushed buffer) must not pass
    # its last value for a whole one: every line the code prints ends with a
    # unit ("ms", "GB") or a space.
    if not (line[-1:].isspace() or line[-1:].isalpha()):
        tokens.pop()
    fields = dict(token.partition(":")[::2] for token in tokens[1:])
    kind = "val" if "val_loss" in fields else "train" if "train_time" in fields or "train_loss" in fields else ""
    loss = fields.get("val_loss" if kind == "val" else "train_loss")
    return MetricLine(
        step,
        total,
        kind,
        to_float(loss) if loss is not None else None,
        _ms(fields.get("train_time")),
        _nonneg(fields.get("tokens_seen")),
        _nonneg(fields.get("tokens/sec")),
    )


# The lines the code prints by the thousand, as read_line reads them: one
# regex instead of a split and a dict (``tests``: the same values on every
# corpus line). Bounded digit runs keep int() and float() exact and finite.
_FAST = re.compile(
    r"step:(\d{1,18})/(\d{1,18}) (?:(train_loss|val_loss):([^ ,]+) )?train_time:(\d{1,15})ms step_avg:[^ ]*ms"
    r"(?: tokens_seen:([^ ]+) tokens/sec:([^ ]+) )?"
)


def fast_line(line: str) -> MetricLine | None:
    """``read_line`` for the common shapes; ``None`` for any other line."""
    m = _FAST.fullmatch(line)
    if m is None:
        return None
    try:
        value = float(m[4]) if m[4] is not None else None
    except ValueError:
        return None
    seen, rate = (_nonneg(m[6]), _nonneg(m[7])) if m[6] is not None else (None, None)
    return MetricLine(int(m[1]), int(m[2]), "val" if m[3] == "val_loss" else "train", value, float(m[5]), seen, rate)


def _ms(text: str | None) -> float | None:
    """``train_time:1234ms`` or ``train_time:1.234s`` in milliseconds; ``None`` otherwise."""
    if not text:
        return None
    if text.endswith("ms"):
        value = _nonneg(text[:-2])
    elif text.endswith("s"):
        value = _nonneg(text[:-1])
        value = value * 1000 if value is not None else None
    else:
        return None
    return value


def _nonneg(text: str | None) -> float | None:
    """A logged time, count or rate: finite and not negative, else unknown."""
    number = to_float(text) if text else None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=ModdedNanoGPTParser)


def _running_on(line: str) -> tuple[str, int] | None:
    """GPU and world size of a track-3 line: "Running PyTorch 2.11.0+cu128 compiled
    for CUDA 12.8 on NVIDIA H100 80GB HBM3 with world_size 8".

    String splits, not a regex: ``.* on (.+?) with`` backtracks quadratically
    on a long line full of " on " (tests/reliability/test_regex_audit.py)."""
    head, sep, size = line.rpartition(" with world_size ")
    size = size.rstrip()
    _, on, gpu = head.partition("Running PyTorch ")[2].rpartition(" on ")
    if not sep or not on or not gpu or not size.isascii() or not size.isdigit() or len(size) > 18:
        return None
    return gpu, int(size)
