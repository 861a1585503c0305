"""Typed records that parsers produce and the aggregator consumes.

Every parser turns bytes into a stream of these frozen dataclasses; nothing
downstream ever sees a format's own field names. ``None`` always means "the
log does not say", never zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import compress, repeat
from typing import Any, Literal

TokensScope = Literal["gpu", "total"]
#: Where a format's per-step timer puts the cost of an evaluation pass: in the
#: step logged at the eval's iteration (nanoGPT, the seed logs), in the next
#: logged step (Megatron evaluates after logging step i), or nowhere (llm.c
#: times only the training step).
EvalTiming = Literal["same", "next", "excluded"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Run metadata. A log may emit several; later non-``None`` fields win.

    ``grad_accum`` is the *global* accumulation count where the format makes it
    so (nanoGPT-lineage configs); ``grad_accum_per_gpu`` is set only when the
    log states a per-GPU count explicitly.
    """

    run_id: str | None = None
    name: str | None = None
    architecture: str | None = None
    config: Mapping[str, object] | None = None
    world_size: int | None = None
    params: int | None = None
    gpu: str | None = None
    dtype: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    target: int | None = None
    eval_interval: int | None = None
    eval_at_start: bool | None = None
    log_interval: int | None = None
    batch_size: int | None = None
    grad_accum: int | None = None
    grad_accum_per_gpu: int | None = None
    block_size: int | None = None
    tokens_per_iter: int | None = None
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    mfu_peak_tflops: float | None = None
    tokens_per_sec_scope: TokensScope | None = None
    #: Wall seconds the whole training took, where the log states it
    #: (HF's ``train_runtime``): a rate for logs without per-step times.
    runtime_s: float | None = None
    eval_timing: EvalTiming | None = None
    #: ``True`` where the log prints no step number and the parser derived
    #: the iterations (HF dicts without a progress bar: count × logging_steps).
    iter_derived: bool | None = None
    #: What one eval pass costs, in ordinary steps, as the log's own settings
    #: put it (its eval batches, forward only, against a step's forward and
    #: backward passes): the ETA's estimate for evals none of which is timed yet.
    eval_cost_steps: float | None = None
    #: The train loss a tracker's summary holds at the end (W&B's
    #: ``wandb-summary.json``): shown only where no logged iteration has one.
    final_loss: float | None = None


@dataclass(frozen=True, slots=True)
class Iteration:
    """One logged optimizer step.

    ``time_ms`` is the wall time of this one iteration (not of the logging
    interval); ``wall_time`` is when the line was written, where the format
    timestamps its lines.
    """

    iter: int
    loss: float | None = None
    time_ms: float | None = None
    mfu_pct: float | None = None
    tokens_per_sec: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    tokens_seen: int | None = None
    wall_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Eval:
    """An evaluation pass at iteration ``iter``."""

    iter: int
    val_loss: float | None = None
    train_loss: float | None = None
    wall_time: datetime | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    #: The pass's own wall time, where the log tells it apart from the steps'
    #: (an elapsed clock's jump from the train log to the eval's): what the
    #: ETA prices the evals still due at, in logs whose step times leave it out.
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint written at iteration ``iter`` (``None`` if not stated)."""

    iter: int | None = None
    path: str | None = None
    wall_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended, as its log says: a clean finish or a failure."""

    kind: Literal["finished", "failed"]
    message: str = ""
    wall_time: datetime | None = None


Record = RunInfo | Iteration | Eval | Checkpoint | Outcome


@dataclass(slots=True)
class IterationColumns:
    """A run of consecutive logged iterations as parallel lists: row ``k`` is
    ``Iteration(iters[k], losses[k], times_ms[k], mfu_pct[k], ...)``, with the
    optional columns (``None``: no row of this run has the field) in the order
    of ``Iteration``'s fields.

    A bulk line parser (``parsers.base.BulkLineParser``) emits these for the
    bulk of a long log (nanoGPT's ``iter N: loss X, time Yms, mfu Z%`` lines,
    llm.c's ``step k/N | loss …`` lines, …): building one frozen ``Iteration``
    per line cost more than parsing the line, and the aggregator takes
    columns in a few C-level passes (``aggregate_take.take_columns``) to the
    same figures, bit for bit. Not frozen (a frozen dataclass pays
    ``object.__setattr__`` per field), but never changed once emitted. Only
    ``RunAggregator`` takes it; the ``Record`` union leaves it out on purpose,
    so code that reads records one by one never meets it (``iterations()``
    expands it for those that must).
    """

    iters: list[int]
    # (Sequence, not list, for the types only: a column of floats is a column
    # of optional floats. Every column is a list.)
    losses: Sequence[float | None]
    times_ms: Sequence[float | None]
    mfu_pct: Sequence[float | None]
    tokens_per_sec: Sequence[float | None] | None = None
    lr: Sequence[float | None] | None = None
    grad_norm: Sequence[float | None] | None = None
    tokens_seen: Sequence[int | None] | None = None
    wall_time: Sequence[datetime | None] | None = None

    def __len__(self) -> int:
        return len(self.iters)

    def iterations(self, start: int = 0, stop: int | None = None) -> list[Iteration]:
        """Rows ``start:stop`` as ``Iteration`` records."""
        part = slice(start, stop)
        none = repeat(None)
        extra = [none if column is None else column[part] for column in self._optional()]
        return list(
            map(Iteration, self.iters[part], self.losses[part], self.times_ms[part], self.mfu_pct[part], *extra)
        )

    def select(self, keep: list[bool]) -> IterationColumns:
        """The rows where ``keep`` is true."""
        kept = [None if column is None else list(compress(column, keep)) for column in self._optional()]
        return IterationColumns(
            list(compress(self.iters, keep)),
            list(compress(self.losses, keep)),
            list(compress(self.times_ms, keep)),
            list(compress(self.mfu_pct, keep)),
            *kept,
        )

    def _optional(self) -> tuple[Sequence[Any] | None, ...]:
        return (self.tokens_per_sec, self.lr, self.grad_norm, self.tokens_seen, self.wall_time)


#: What a bulk line parser emits and ``RunAggregator.add_all`` takes.
BulkRecord = Record | IterationColumns
