"""The frozen per-run figures that the aggregator hands to the UI and exports.

Field names mirror the snapshot JSON contract (shared/design/SNAPSHOT.md);
``None`` means unknown. Series are bounded, downsampled ``Points`` (xs and ys as arrays).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Literal

from trainwatch.core.box import Gpu, Writer
from trainwatch.core.series import EMPTY, Points

Status = Literal["running", "stalled", "finished", "diverged", "failed", "exited"]


@dataclass(frozen=True, slots=True)
class RunStats:
    """Everything trainwatch shows about one run at one moment."""

    status: Status
    iter: int | None
    target: int
    target_source: Literal["override", "log", "default"]
    progress_pct: float | None
    loss: float | None
    val_loss: float | None
    logged_iters: int
    eval_iters: int
    eval_at: tuple[int, ...]
    segments: int
    # Batch and throughput.
    batch_size: int | None
    grad_accum: int | None
    world_size: int | None
    block_size: int | None
    effective_batch: float | None
    tokens_per_iter: int | None
    tokens_per_iter_source: Literal["evidence", "config", "override"] | None
    train_time_logged_s: float | None
    train_time_s: float | None  # the whole run's (METRICS.md), hangs, evals and checkpoints left out
    train_time_estimated: bool  # part of it extrapolated (a sampled log, evals at the median step)
    mean_iter_s: float | None
    tokens_per_hour: float | None
    tokens_per_sec: float | None
    tokens_per_sec_logged: float | None
    tokens_per_sec_logged_scope: str | None
    # Utilisation.
    mfu_mean_pct: float | None
    mfu_now_pct: float | None
    mfu_derived: bool
    mfu_dense_pct: float | None
    mfu_logged_peak_tflops: float | None
    dense_peak_tflops: float | None
    # Model and hardware.
    run_id: str | None
    log_name: str | None
    architecture: str | None
    params: int | None
    gpu: str | None
    dtype: str | None
    n_layer: int | None
    n_head: int | None
    n_embd: int | None
    # Time.
    started_at: datetime | None
    ended_at: datetime | None
    last_update_at: datetime | None
    wall_elapsed_s: float | None
    eta_s: float | None
    finish_at: datetime | None
    rate_s: float | None
    rate_source: str | None
    # Caveats (the UI's ⚑) and where each number came from.
    warnings: tuple[str, ...] = ()
    provenance: tuple[tuple[str, str], ...] = ()
    events: tuple[str, ...] = ()
    checkpoint_at: tuple[int, ...] = ()  # iterations a checkpoint was logged at, in timeline order
    hangs: tuple[tuple[int, float], ...] = ()  # (iteration, seconds the step took) of each hang
    # Bounded series over iterations, for sparklines and plots.
    loss_series: Points = EMPTY
    val_series: Points = EMPTY
    time_series: Points = EMPTY
    mfu_series: Points = EMPTY
    tps_series: Points = EMPTY
    wall_series: Points = field(default=EMPTY)
    # The machine around the run (``core.box``): the process writing the log and its GPUs.
    process: Writer | None = None
    process_hidden: bool = False  # a process trainwatch may not look into writes the log
    gpus: tuple[Gpu, ...] = ()

    @property
    def past_default_target(self) -> bool:
        return past_default_target(self.target_source, self.iter, self.target)

    @property
    def iter_of_target(self) -> str:
        """``1,230/2,000``; the count alone past the default target."""
        count = "—" if self.iter is None else f"{self.iter:,}"
        return count if self.past_default_target else f"{count}/{self.target:,}"


def past_default_target(target_source: str, done: int | None, target: int) -> bool:
    """Past the default target, which then says nothing: progress and ETA are unknown."""
    return target_source == "default" and done is not None and done > target


#: Figures that move with the clock by themselves: a run with no news has its
#: finish estimate drift and its wall time grow, second by second.
DRIFT = frozenset({"finish_at", "wall_elapsed_s"})
#: ... and, between two log lines, its ETA counting down.
COUNTDOWN = DRIFT | {"eta_s"}


def only_clock_moved(old: RunStats, new: RunStats, moving: frozenset[str] = DRIFT) -> bool:
    """Whether ``new`` differs from ``old`` at most in the ``moving`` figures.

    With DRIFT (the watcher): the drift alone is no news to publish at once
    (the table shows the finish time in minutes). With COUNTDOWN (the app):
    only the clock's cells need rebuilding, and no chart.
    """
    if old is new:
        return True
    # Field by field, the ones that change with any news first: a run with
    # news is told apart in a microsecond (``replace`` and ``==`` cost ~60 µs).
    # A NaN (a diverged run's loss) is the same figure as the NaN before it.
    return all(
        (a := getattr(old, name)) == (b := getattr(new, name)) or (a != a and b != b) for name in _compared(moving)
    )


_NEWS_FIRST = ("iter", "logged_iters", "loss", "status")


@functools.cache
def _compared(moving: frozenset[str]) -> tuple[str, ...]:
    rest = tuple(f.name for f in fields(RunStats) if f.name not in _NEWS_FIRST)
    return tuple(name for name in _NEWS_FIRST + rest if name not in moving)
