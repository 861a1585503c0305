"""torchtitan training stdout (``torchrun ... torchtitan.train``).

Python logging lines behind torchrun's rank prefix::

    [rank0]:[titan] 2026-04-27 16:45:15,717 - root - INFO - step: 10  loss: 11.73954
      grad_norm:  0.7114  memory: 26.01GiB(82.96%)  tps: 3,235  tflops: 20.07  mfu: 6.43%

(one line in the log), where every field is wrapped in ANSI SGR colours
(24-bit ``38;2;r;g;b`` included) unless colour was disabled. ``tps`` is tokens
per second *per device* and ``mfu`` is against the peak the log states in
``Peak FLOPS used for computing MFU`` (kept as logged, even at 15224 %).
``validate step: <i>  loss: <f>  memory: ...  tps: ...`` is an evaluation. The
preamble says ``Trainer is initialized with local batch size B, global batch
size G, gradient accumulation steps A, sequence length T, total steps N``,
``Building device mesh with parallelism: pp=.., dp_replicate=.., ...``,
``CUDA capacity: <gpu> with <n>GiB memory`` and ``Model <arch> <flavor> size:
<n> total parameters``; the model config may follow ``Building ... with {``
as rank-prefixed JSON. ``Training completed`` is the clean end.

Only ranks in ``LOG_RANK`` print; with pipeline parallelism that is often the
last stage (``[rank4]:``), and several ranks may print the same steps. The
first rank seen printing a step line is the one read: the others would count
every step twice. torchtitan prints no per-step time: ``Iteration.time_ms``
stays ``None`` and the aggregator uses the timestamps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from trainwatch.core.records import BulkRecord, Checkpoint, Eval, Iteration, IterationColumns, Outcome, Record, RunInfo
from trainwatch.parsers import bulk
from trainwatch.parsers.base import ParserSpec, line_failed
from trainwatch.parsers.crash import CrashWatch
from trainwatch.parsers.text import last_cr_segment, strip_ansi, strip_prefixes, to_float, to_int
from trainwatch.parsers.torchtitan_bulk import STEP_RUN, step_columns

FORMAT = "torchtitan_stdout"

_RANK = re.compile(r"^\s*(?:\d+:\s*)?\[rank(\d+)\]:")
# The metrics in torchtitan's order, each optionally behind an SGR escape. A
# value counts only if something follows it (the ``%`` for mfu): a line cut
# off mid-number ("loss: 1.2" of "1.2345") must not pass for a whole one.
# Fields this does not know end the match early; step and loss are enough.
_SGR = r"(?:\x1b\[[\d;]*m)?"
_STEP = re.compile(
    r"step:\s*(\d+)\s+" + _SGR + r"loss:\s*([^\s\x1b]+)\s+"
    r"(?:" + _SGR + r"grad_norm:\s*([^\s\x1b]+)\s+)?"
    r"(?:" + _SGR + r"memory:\s*\S+\s+)?"
    r"(?:" + _SGR + r"tps:\s*([\d,.]+)\s+)?"
    r"(?:" + _SGR + r"tflops:\s*[\d,.]+\s+)?"
    r"(?:" + _SGR + r"mfu:\s*([\d,.]+|nan|inf)%)?"
)
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[,.](\d{3})")
_TRAINER = re.compile(
    r"Trainer is initialized with local batch size (\d+), global batch size (\d+), "
    r"gradient accumulation steps (\d+), sequence length (\d+), total steps (\d+)"
)
_MESH = re.compile(r"Building device mesh with parallelism: (.*)")
_MESH_1D = re.compile(r"Building \d+-D device mesh with \[.*?\], \[([\d, ]+)\]")
_CAPACITY = re.compile(r"(?:CUDA|GPU) capacity: (.+?)(?: \(\d+\))? with [\d.]+\s*GiB memory")
_MODEL = re.compile(r"Model (\S+)(?: (\S+))? size: ([\d,]+) total param")
_PEAK = re.compile(r"Peak FLOPS used for computing MFU: ([\d.eE+-]+)")
_CKPT_DIR = re.compile(r"Checkpoints will be loaded from and saved to (\S+)")
_CKPT_LAST = re.compile(r"Saving a full checkpoint at last step, step (\d+)")
_MODEL_ARGS = re.compile(r"\b(dim|n_layers|n_heads)=(\d+)")
# torchtitan's world is the product of these mesh dimensions (ep and etp are
# carved out of dp_shard × cp, not multiplied in).
_WORLD_DIMS = ("pp", "dp_replicate", "dp_shard", "cp", "tp")
_MAX_JSON_LINES = 50_000


def sniff(head: str, filename: str) -> bool:
    """torchtitan's logger name or its version banner."""
    return "[titan]" in head or "torchtitan version" in head


class TorchtitanParser:
    """Stateful line parser for one torchtitan stdout capture."""

    def __init__(self) -> None:
        self._crash = CrashWatch()
        self._metrics_rank: str | None = None  # "" when lines carry no rank prefix
        self._last_step: int | None = None
        self._ckpt_dir: str | None = None
        self._last_ckpt: int | None = None
        self._model_json: list[str] | None = None
        self._gpu_known = False

    def feed(self, line: str) -> Sequence[Record]:
        """Records in one line of the log."""
        try:
            return self._feed(line)
        except Exception:  # a parser never takes the monitor down
            line_failed(FORMAT, line)
            return ()

    def feed_text(self, text: str) -> list[BulkRecord]:
        """Records for whole lines (each ending in ``\\n``): those of ``feed``
        of each line in turn, with runs of step lines as ``IterationColumns``
        (see ``parsers.base.BulkLineParser``)."""
        # (the first step line says which rank is read)
        return bulk.feed_runs(text, STEP_RUN, "[", self.feed, self._columns, lambda: self._metrics_rank is None)

    def _columns(self, block: str) -> IterationColumns | None:
        """``feed``'s records of ``block`` (step lines) as columns; ``None`` if
        a line is another rank's (skipped one by one) or a value does not convert."""
        found = step_columns(block)
        if found is None or found[0].count(self._metrics_rank or "") != len(found[0]):
            return None
        columns = found[1]
        steps = columns.iters
        # What ``_step`` does line by line: only the newest step stays.
        self._model_json = None
        if self._crash.ended or bulk.goes_back(self._last_step, steps):
            self._crash.reset()
        self._last_step = steps[-1]
        return columns

    def _feed(self, line: str) -> Sequence[Record]:
        if "\r" in line:
            line = last_cr_segment(line)
        if self._model_json is not None:
            if "[titan]" not in line:
                return self._model_config(line)
            self._model_json = None  # a new log record: the dump was cut short
        if "step:" in line:
            records = self._step(line)
            if records is not None:
                return records
        # Hot path: once steps are logged, only the end, checkpoints and
        # failures are looked for (a substring test each).
        if self._last_step is None or "Training " in line or "heckpoint" in line:
            records = self._info(line) if " - " in line else []
            if records:
                return records
        failure = self._crash.check(line)
        return [failure] if failure is not None else ()

    # ------------------------------------------------------------- metrics

    def _step(self, line: str) -> list[Record] | None:
        """A ``step:`` or ``validate step:`` line; ``None`` if ``line`` is neither."""
        at = line.find("step:")
        m = _STEP.match(line, at)
        if m is None or not _field_start(line, at):
            return None
        step = int(m.group(1))
        loss = to_float(m.group(2))
        rank_m = _RANK.match(line)
        rank = rank_m.group(1) if rank_m is not None else ""
        records: list[Record] = []
        if self._metrics_rank is None:
            self._metrics_rank = rank
            # tps is per device. Validation runs after step i is logged, so its
            # time falls in the next logged interval (whose tps/mfu it lowers).
            records.append(RunInfo(tokens_per_sec_scope="gpu", eval_timing="next"))
        elif rank != self._metrics_rank:
            return []  # the same steps again, from another logging rank
        when = _stamp(line)
        if line.endswith("validate ", 0, at):
            records.append(Eval(iter=step, val_loss=loss, wall_time=when))
            return records
        if self._crash.ended or (self._last_step is not None and step <= self._last_step):
            self._crash.reset()  # a new run, or a resume, in the same file
        self._last_step = step
        grad_norm, tps, mfu = m.group(3, 4, 5)
        records.append(
            Iteration(
                iter=step,
                loss=loss,
                mfu_pct=_nonneg(mfu) if mfu else None,
                tokens_per_sec=_nonneg(tps) if tps else None,
                grad_norm=to_float(grad_norm) if grad_norm else None,
                wall_time=when,
            )
        )
        return records

    # ------------------------------------------------------------ preamble

    def _info(self, line: str) -> list[Record]:
        """Run facts from torchtitan's own log lines; ``[]`` if none."""
        if "\x1b" in line:
            line = strip_ansi(line)
        if "Training completed" in line:
            when = _stamp(line)
            self._crash.finished()
            # The end time rides on the Outcome only: a run appended to the
            # same file clears the Outcome (the aggregator's restart), whereas
            # a RunInfo.end_time would outlive it and end the new run too.
            return [Outcome("finished", "Training completed", when)]
        if "Training starts at step" in line:
            when = _stamp(line)
            return [RunInfo(start_time=when)] if when is not None else []
        if "heckpoint" in line:
            return self._checkpoint(line)
        if "Trainer is initialized" in line and (m := _TRAINER.search(line)):
            local, global_, _accum, seq, total = (int(g) for g in m.groups())
            return [
                RunInfo(
                    target=total or None,
                    block_size=seq or None,
                    tokens_per_iter=global_ * seq or None,
                    # batch_size × grad_accum × block_size = tokens per step:
                    # grad_accum is the global number of micro-batches
                    # (DP ranks × the per-rank accumulation the log states),
                    # which PP/TP runs make differ from accumulation × GPUs.
                    batch_size=local or None,
                    grad_accum=global_ // local if local and global_ % local == 0 else None,
                )
            ]
        if "device mesh" in line:
            return self._mesh(line)
        if not self._gpu_known and "capacity:" in line and (m := _CAPACITY.search(line)):
            self._gpu_known = True
            return [RunInfo(gpu=m.group(1).strip())]
        if "total param" in line and (m := _MODEL.search(line)):
            params = int(m.group(3).replace(",", ""))
            return [RunInfo(architecture=m.group(1), name=m.group(2), params=params or None)]
        if "Peak FLOPS used for computing MFU" in line and (m := _PEAK.search(line)):
            peak = to_float(m.group(1))
            if peak is not None and math.isfinite(peak) and peak > 0:
                return [RunInfo(mfu_peak_tflops=peak / 1e12)]
            return []
        if "Building " in line:
            return self._model_line(line)
        return []

    def _mesh(self, line: str) -> list[Record]:
        sizes: list[int] = []
        m = _MESH.search(line)
        if m is not None:
            dims = dict(part.strip().split("=", 1) for part in m.group(1).split(",") if "=" in part)
            found = [to_int(dims[d], signed=True) for d in _WORLD_DIMS if d in dims]
            sizes = [s for s in found if s is not None]
        elif (m := _MESH_1D.search(line)) is not None:
            sizes = [s for s in map(to_int, m.group(1).split(",")) if s is not None]
        if not sizes or any(s <= 0 for s in sizes):
            return []  # -1 means "inferred": the world size is not stated
        return [RunInfo(world_size=math.prod(sizes))]

    def _checkpoint(self, line: str) -> list[Record]:
        if (m := _CKPT_DIR.search(line)) is not None:
            self._ckpt_dir = m.group(1).rstrip("/.")
            return []
        step: int | None = None
        if (m := _CKPT_LAST.search(line)) is not None:
            step = int(m.group(1))
        elif "Finished saving the" in line:
            step = self._last_step
        if step is None or step == self._last_ckpt:
            return []
        self._last_ckpt = step
        path = f"{self._ckpt_dir}/step-{step}" if self._ckpt_dir else None
        return [Checkpoint(iter=step, path=path, wall_time=_stamp(line))]

    def _model_line(self, line: str) -> list[Record]:
        """``Building <model> <flavor> with {`` (JSON follows) or ``with ModelArgs(...)``."""
        text = line.rstrip()
        if text.endswith("with {"):
            self._model_json = ["{"]
            return []
        args = dict(_MODEL_ARGS.findall(line))
        if not args:
            return []
        return [
            RunInfo(
                n_embd=_int(args.get("dim")),
                n_layer=_int(args.get("n_layers")),
                n_head=_int(args.get("n_heads")),
            )
        ]

    def _model_config(self, line: str) -> list[Record]:
        """One line of the model-config JSON; parsed when its closing brace comes."""
        lines = self._model_json
        if lines is None:
            return []
        # Keep the indentation: only the top-level closing brace is flush left.
        text = strip_prefixes(strip_ansi(line)).rstrip()
        lines.append(text)
        if text != "}" and len(lines) < _MAX_JSON_LINES:
            return []
        body, self._model_json = "\n".join(lines), None
        try:
            config = orjson.loads(body)
        except orjson.JSONDecodeError:
            return []
        return [_config_info(config)] if isinstance(config, dict) else []


def _field_start(line: str, at: int) -> bool:
    """``step:`` at ``at`` is a field name of its own, not ``warmup_step:``."""
    if at == 0:
        return True
    before = line[at - 1]
    if before == "m":  # the end of an SGR escape, "\x1b[31mstep:"
        return "\x1b[" in line[max(0, at - 20) : at]
    return not (before.isalnum() or before == "_")


def _stamp(line: str) -> datetime | None:
    """The logging timestamp, ``YYYY-MM-DD hh:mm:ss,mmm``, as a naive datetime."""
    at = line.find("[titan] ")
    text = line[at + 8 : at + 31] if at >= 0 else ""
    if len(text) != 23 or text[4] != "-" or text[19] not in ",.":
        m = _TIMESTAMP.search(line)
        if m is None:
            return None
        text = f"{m.group(1)}.{m.group(2)}"
    try:
        return datetime.fromisoformat(text.replace(",", "."))
    except ValueError:
        return None


def _config_info(config: dict[str, Any]) -> RunInfo:
    """Model shape from torchtitan's config dump (HF-style or torchtitan args)."""
    n_embd = _first_int(config, ("hidden_size", "dim", "d_model", "n_embd"))
    n_layer = _first_int(config, ("num_hidden_layers", "n_layers", "num_layers", "n_layer"))
    n_head = _first_int(config, ("num_attention_heads", "n_heads", "n_head"))
    layers = config.get("layers")
    if n_layer is None and isinstance(layers, list) and layers:
        n_layer = len(layers)
    if n_head is None and isinstance(layers, list) and layers and isinstance(layers[0], dict):
        attention = layers[0].get("attention")
        if isinstance(attention, dict):
            n_head = _first_int(attention, ("n_heads", "num_heads", "num_attention_heads"))
    return RunInfo(n_embd=n_embd, n_layer=n_layer, n_head=n_head)


def _first_int(mapping: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _int(text: str | None) -> int | None:
    return to_int(text) if text else None


def _nonneg(text: str) -> float | None:
    """A logged rate or percentage: finite and not negative, else unknown."""
    number = to_float(text)
    return number if number is not None and math.isfinite(number) and number >= 0 else None


SPEC = ParserSpec(format=FORMAT, kind="lines", sniff=sniff, new_line_parser=TorchtitanParser)
