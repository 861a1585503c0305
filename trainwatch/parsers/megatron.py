"""Megatron-LM and Megatron-DeepSpeed training stdout.

One line per logged iteration, fields separated by ``|``::

    [2026-04-15 11:19:02.524672] iteration  1/  500 | consumed samples: 80 |
      elapsed time per iteration (ms): 12465.5 | throughput per GPU (TFLOP/s/GPU): 11.9 |
      learning rate: 6.000000E-06 | global batch size: 80 | lm loss: 1.218301E+01 |
      loss scale: 1.0 | grad norm: 11.908 | number of skipped iterations: 0 |
      number of nan iterations: 0 |

(one line in the log). Megatron-LM core prefixes the timestamp; Megatron-
DeepSpeed has none but adds ``consumed tokens``, ``actual seqlen``,
``tokens per gpu per second (tgs)`` and ``TFLOPs`` (per GPU). Validation is
``validation loss at iteration <i> [on ...] | lm loss value: <E> | lm loss PPL:
<E> |`` between dashed rules. Before training, rank 0 dumps every argument
between ``---- arguments ----`` and ``---- end of arguments ----`` as
``  name ....... value``; SLURM/torchrun prefixes (``9: [default3]: ``), ANSI
colours on DeepSpeed warnings and per-rank NCCL noise surround all of it.
``[after training is done] datetime: ...`` marks the clean end.

What the log does not give: MFU (only achieved TFLOP/s per GPU, kept for the
aggregator's derived MFU) and, in Megatron-LM core, a token rate.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime

from trainwatch.core.records import BulkRecord, Checkpoint, Eval, Iteration, Outcome, Record, RunInfo
from trainwatch.parsers import bulk, megatron_bulk
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.megatron_args import ARG, MAX_ARG_LINES, WANTED_ARGS, run_info
from trainwatch.parsers.megatron_args import as_int as _int
from trainwatch.parsers.megatron_bulk import Shape
from trainwatch.parsers.text import clean, last_cr_segment, strip_ansi, to_float

FORMAT = "megatron_stdout"

# Megatron's own argument-dump banner, its per-iteration timer, its launcher
# script names: any one in the first KB is specific enough.
_SNIFF_MARKERS = (
    "------------------------ arguments ------------------------",
    "elapsed time per iteration (ms)",
    "pretrain_gpt.py",
    "pretrain_llama.py",
    "pretrain_bert.py",
    "pretrain_t5.py",
    "Megatron-DeepSpeed",
    "Megatron-LM",
)

_ITERATION = re.compile(r"iteration\s+(\d+)\s*/\s*(\d+)\s*\|")
_VALIDATION = re.compile(r"\bvalidation loss at (.*?)\s*\|(.*)")
_VALIDATION_ITER = re.compile(r"iteration\s+(\d+)")
_TEST_SPLIT = re.compile(r"\btest\b")
# tasks/zeroshot_gpt/evaluate.py: " validation results on LAMBADA | number correct:
# 3.5260E+03 | total examples: 5.1530E+03 | avg accuracy: 6.8426E-01" (each
# figure "{:.4E}"; no "|" after the last, so a whole number is required).
_ZEROSHOT = re.compile(r"validation results on (\S+) \|(.*)")
_ZEROSHOT_FIELD = re.compile(r"\s*([A-Za-z][\w ]*?):\s*([-+]?\d\.\d+E[-+]\d\d+|nan|inf)\s*$")
_WORLD = re.compile(r"using world size: (\d+)")
_RANK_PARAMS = re.compile(r"number of parameters on \(tensor, pipeline\) model parallel rank \((\d+), (\d+)\): (\d+)")
_TOTAL_PARAMS_B = re.compile(r"Total number of parameters in billions: ([\d.]+)")
_CHECKPOINT = re.compile(
    r"(?:\[(\d{4}-\d\d-\d\d[ T][\d:.]+)\]\s*)?"
    r"successfully saved checkpoint (?:at|from) iteration\s+(\d+) to (\S+)"
)
_DATETIME = re.compile(r"datetime: (\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?)")
# "Tesla V100-SXM3-32GB", "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB",
# but not "NVIDIA Inference is only supported on ...".
_GPU = re.compile(r"\b((?:NVIDIA|Tesla) (?:GeForce )?(?:RTX )?[A-Z]{1,3}\d{1,4}[A-Za-z0-9-]*(?: \d+GB)?)")


def sniff(head: str, filename: str) -> bool:
    """Megatron's argument banner, iteration timer or launcher script."""
    return any(marker in head for marker in _SNIFF_MARKERS)


class MegatronParser:
    """Stateful line parser for one Megatron stdout capture."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._args: dict[str, str] = {}
        self._in_args = False
        self._args_lines = 0
        self._last_iter: int | None = None
        self._target: int | None = None
        self._seq_len: int | None = None
        self._tokens_per_iter: int | None = None
        self._tp: int | None = None
        self._pp: int | None = None
        self._rank_params: dict[tuple[int, int], int] = {}
        self._exact_params = False
        self._gpu_known = False
        self._scope_sent = False
        self._timing_sent = False
        #: Achieved TFLOP/s per GPU of the last iteration (for derived MFU;
        #: ``Iteration`` has no field for it yet).
        self.last_tflops_per_gpu: float | None = None
        # The last iteration line read one by one, to learn its shape from
        # (``feed_text``), and the shape learnt.
        self._learn: tuple[str, int, list[str], bool] | None = None
        self._shape: Shape | None = None

    def feed(self, line: str) -> Sequence[Record]:
        """Records in one line of the log."""
        try:
            return self._feed(line)
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, line)
            return ()

    def _said(self) -> tuple[int | None, bool, int | None, int | None]:
        """What the iteration lines have told so far: target, rate scope sent, tokens per step, sequence length."""
        return self._target, self._scope_sent, self._tokens_per_iter, self._seq_len

    def feed_text(self, text: str) -> list[BulkRecord]:
        """Records for whole lines (each ending in ``\\n``): those of ``feed``
        of each line in turn, with runs of iteration lines of one shape as
        ``IterationColumns`` (see ``parsers.base.BulkLineParser``, ``megatron_bulk``)."""
        out: list[BulkRecord] = []
        text = bulk.whole_lines(text)
        pos, end = 0, len(text)
        while pos < end:
            if self._learn is not None:
                self._shape = Shape.learn(*self._learn)
                self._learn = None
            shape = self._shape
            if shape is not None:
                stop = shape.run.match(text, pos).end()  # type: ignore[union-attr]
                if stop > pos:
                    self._plain_lines(shape, text[pos:stop], out)
                    pos = stop
                    continue
            newline = text.index("\n", pos)
            out += self.feed(text[pos:newline])
            pos = newline + 1
        return out

    def _plain_lines(self, shape: Shape, block: str, out: list[BulkRecord]) -> None:
        """Take whole iteration lines of ``shape`` as ``feed`` takes each of them."""
        long = block.count("\n") >= bulk.MIN_COLUMN_ROWS and self._timing_sent and "validation loss at" not in block
        found = shape.columns(block) if long else None
        news = found is not None and megatron_bulk.news(shape, found[0], found[1].tokens_per_sec, self._said())
        if found is None or news:
            bulk.feed_lines(self.feed, block, out)
            return
        values, columns = found
        steps = columns.iters
        # What ``_iteration`` does line by line: only the newest line's figures stay.
        if self._crash.ended or bulk.goes_back(self._last_iter, steps):
            self._crash.reset()
        self._last_iter = steps[-1]
        last = {key: values[at][-1] for key, at in shape.at.items()}
        self.last_tflops_per_gpu = _nonneg(last.get("throughput per GPU (TFLOP/s/GPU)") or last.get("TFLOPs"))
        out.append(columns)

    def _feed(self, line: str) -> Sequence[Record]:
        # Hot path: a big log is mostly iteration lines and launcher noise, so
        # every other check is a substring test, and the preamble's facts are
        # only looked for before training starts.
        if "iteration" in line or "validation loss at" in line:
            records = self._iteration_line(line)
            if records is not None:
                return records
        if self._in_args or ("arguments" in line and ("- arguments -" in line or "end of arguments" in line)):
            records = self._argument(line)
            if records is not None:
                return records
        if "datetime:" in line:
            return self._milestone(line)
        if "validation results on" in line:
            return self._zeroshot(line)
        if self._last_iter is None:
            records = self._preamble(line)
            if records:
                return records
        failure = self._crash.check(line)
        return [failure] if failure is not None else ()

    # ------------------------------------------------------------ iterations

    def _iteration_line(self, line: str) -> list[Record] | None:
        """Iteration, validation and checkpoint lines; ``None`` if none of them."""
        if "\r" in line:
            line = last_cr_segment(line)
        if "\x1b" in line:
            line = strip_ansi(line)
        if "|" in line:
            if "validation loss at" in line:
                return self._validation(line)
            at = line.find("iteration ")
            while at >= 0:
                m = _ITERATION.match(line, at)
                if m is not None:
                    return self._iteration(line, at, m)
                at = line.find("iteration ", at + 10)
        if "saved checkpoint" in line and (m := _CHECKPOINT.search(line)):
            return [Checkpoint(iter=int(m.group(2)), path=m.group(3), wall_time=_time(m.group(1)))]
        return None

    def _iteration(self, line: str, at: int, m: re.Match[str]) -> list[Record]:
        step, total = int(m.group(1)), int(m.group(2))
        fields = _fields(line, m.end())
        records: list[Record] = []
        if self._crash.ended or (self._last_iter is not None and step <= self._last_iter):
            # A new run (appended to the same file, or resumed): failures and
            # clean ends of the previous one no longer apply.
            self._crash.reset()
        self._last_iter = step

        target: int | None = None
        if total > 0 and total != self._target:
            self._target = target = total
        tokens: int | None = None
        batch = _int(fields.get("global batch size"))
        seq = _int(fields.get("actual seqlen")) or self._seq_len
        if batch and seq and batch * seq != self._tokens_per_iter:
            self._tokens_per_iter = tokens = batch * seq
        tgs = _nonneg(fields.get("tokens per gpu per second (tgs)"))
        scope_news = tgs is not None and not self._scope_sent
        if scope_news:
            self._scope_sent = True  # Megatron-DeepSpeed's "tgs" is per GPU by name
        timing_news = not self._timing_sent
        self._timing_sent = True
        if target is not None or tokens is not None or scope_news or timing_news:
            records.append(
                RunInfo(
                    target=target,
                    tokens_per_iter=tokens,
                    tokens_per_sec_scope="gpu" if scope_news else None,
                    eval_timing="next" if timing_news else None,
                )
            )

        loss = _float(fields.get("lm loss") or fields.get("loss"))
        if _int(fields.get("number of nan iterations")):
            loss = math.nan  # Megatron counts NaN losses instead of printing them
        self.last_tflops_per_gpu = _nonneg(fields.get("throughput per GPU (TFLOP/s/GPU)") or fields.get("TFLOPs"))
        seen = _int(fields.get("consumed tokens"))
        wall = _stamp_before(line, at)
        self._learn = (line, at, list(fields), wall is not None)
        records.append(
            Iteration(
                iter=step,
                loss=loss,
                time_ms=_nonneg(fields.get("elapsed time per iteration (ms)")),
                tokens_per_sec=tgs,
                lr=_float(fields.get("learning rate")),
                grad_norm=_float(fields.get("grad norm")),
                tokens_seen=seen if seen is not None and seen >= 0 else None,
                wall_time=wall,
            )
        )
        return records

    def _validation(self, line: str) -> list[Record]:
        m = _VALIDATION.search(line)
        if m is None:
            return []
        where = m.group(1)
        if _TEST_SPLIT.search(where):  # the end-of-training pass over the test split is no val loss
            return []
        at = _VALIDATION_ITER.search(where)
        step = int(at.group(1)) if at is not None else self._last_iter
        if step is None:
            return []
        # ``<name> value: E | <name> PPL: E |`` per entry of the loss function's
        # dict, which may hold other figures than losses (an accuracy, with a
        # meaningless "PPL" = exp(accuracy)): only a loss is a val loss.
        values: dict[str, float] = {}
        metrics: dict[str, float] = {}
        for key, value in _fields(line, m.start(2)).items():
            number = _float(value)
            name, _, kind = key.rpartition(" ")
            if number is None or not name:
                continue
            if kind == "value":
                values[name] = number
            elif kind == "PPL" and "loss" in name:
                metrics[key] = number
        loss_name = "lm loss" if "lm loss" in values else next((k for k in values if "loss" in k), None)
        metrics.update((name, number) for name, number in values.items() if name != loss_name)
        val_loss = values.get(loss_name) if loss_name is not None else None
        return [Eval(iter=step, val_loss=val_loss, metrics=metrics)]

    def _zeroshot(self, line: str) -> list[Record]:
        """A zero-shot task's result (an accuracy, not a val loss) at the last iteration."""
        m = _ZEROSHOT.search(clean(line))
        if m is None or self._last_iter is None:
            return []
        task = m.group(1)
        metrics = {
            f"{task} {f.group(1)}": float(f.group(2))
            for part in m.group(2).split("|")
            if (f := _ZEROSHOT_FIELD.match(part)) is not None
        }
        return [Eval(iter=self._last_iter, metrics=metrics)] if metrics else []

    # ------------------------------------------------------------ preamble

    def _preamble(self, line: str) -> list[Record]:
        """Run facts outside the argument dump; ``[]`` if ``line`` has none."""
        if "parameters" in line:
            return self._params(line)
        if "using world size:" in line and (m := _WORLD.search(line)):
            return [RunInfo(world_size=int(m.group(1)))]
        if not self._gpu_known and ("NVIDIA" in line or "Tesla" in line) and (m := _GPU.search(line)):
            self._gpu_known = True
            return [RunInfo(gpu=m.group(1))]
        return []

    def _argument(self, line: str) -> list[Record] | None:
        """Lines of the argument dump; ``None`` if ``line`` is none of them."""
        text = clean(line)
        if text.startswith("-----") and "arguments -----" in text:
            if "end of arguments" in text:
                self._in_args = False
                return self._args_info()
            # A new dump: a new run starts (runs can be appended to one file).
            self._in_args = True
            self._args = {}
            self._args_lines = 0
            self._rank_params = {}
            self._exact_params = False
            self._last_iter = None  # look for the new run's preamble facts again
            self._crash.reset()
            return []
        if not self._in_args:
            return None
        m = ARG.match(text)
        if m is not None and m.group(1) in WANTED_ARGS:
            self._args[m.group(1)] = (m.group(2) or "").strip()
        self._args_lines += 1
        if self._args_lines > MAX_ARG_LINES:
            self._in_args = False
        return []

    def _args_info(self) -> list[Record]:
        info = run_info(self._args)
        self._tp = _int(self._args.get("tensor_model_parallel_size"))
        self._pp = _int(self._args.get("pipeline_model_parallel_size"))
        self._seq_len = info.block_size
        if info.target:
            self._target = info.target
        if info.tokens_per_iter:
            self._tokens_per_iter = info.tokens_per_iter
        return [info]

    def _params(self, line: str) -> list[Record]:
        m = _RANK_PARAMS.search(line)
        if m is not None:
            # Each (tensor, pipeline) rank prints its own shard; the model is
            # their sum. Report it once every shard has been seen (or as it
            # grows, when the parallel sizes are unknown).
            self._rank_params[(int(m.group(1)), int(m.group(2)))] = int(m.group(3))
            shards = (self._tp or 0) * (self._pp or 0)
            if shards and len(self._rank_params) < shards:
                return []
            self._exact_params = True
            return [RunInfo(params=sum(self._rank_params.values()))]
        m = _TOTAL_PARAMS_B.search(line)
        if m is not None and not self._exact_params:
            billions = to_float(m.group(1))
            if billions is not None and billions > 0:
                return [RunInfo(params=round(billions * 1e9))]
        return []

    def _milestone(self, line: str) -> list[Record]:
        """Megatron's ``[<milestone>] datetime: ...`` lines."""
        m = _DATETIME.search(line)
        when = _time(m.group(1)) if m is not None else None
        if "[before the start of training step]" in line:
            return [RunInfo(start_time=when)] if when is not None else []
        if "[after training is done]" in line:
            self._crash.finished()
            # The end time rides on the Outcome only: a run appended to the
            # same file clears the Outcome (the aggregator's restart), whereas
            # a RunInfo.end_time would outlive it and end the new run too.
            return [Outcome("finished", "training is done", when)]
        return []


def _fields(line: str, start: int) -> dict[str, str]:
    """The ``key: value |`` pairs from ``start`` (values unstripped: ``float``
    and ``int`` take the spaces). Only ``|``-terminated pairs count: the text
    after the last ``|`` is a cut-off field (``lm loss: 1.2`` of ``1.2E+01``)
    or another rank's junk, never a whole value."""
    parts = line[start:].split("|")
    parts.pop()
    fields: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition(":")
        if sep:
            fields[key.strip()] = value
    return fields


def _stamp_before(line: str, at: int) -> datetime | None:
    """Megatron-LM's ``[YYYY-MM-DD hh:mm:ss.ffffff]`` just before ``iteration``."""
    close = line.rfind("]", 0, at)
    if close < 0 or line[close + 1 : at].strip():
        return None
    return _time(line[line.rfind("[", 0, close) + 1 : close])


def _float(text: str | None) -> float | None:
    """A logged number; NaN/inf kept (they mean divergence)."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return to_float(text.strip())


def _nonneg(text: str | None) -> float | None:
    """A logged duration or rate: finite and not negative, else unknown."""
    number = _float(text)
    return number if number is not None and math.isfinite(number) and number >= 0 else None


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=MegatronParser)
