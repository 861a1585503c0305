"""One run read from several files: the files' figures merged into the run's.

A training job writes several files (an HF output folder's checkpoint states,
event files and console log; a Slurm job's ``.out`` and ``.err``). Each file
keeps its own aggregator, since each format parses its own file and the files
log the same steps (feeding them all to one aggregator would count each step
twice). ``merge`` takes their ``RunStats`` and picks, figure by figure, the
file that knows best:

* progress (the last step, status, evals, segments) from the *lead*: the
  file furthest along (a printed step before a derived one, then the largest
  step; at one step the file that times its steps, then the latest update),
  so a stale file joining never moves the run back;
* the target from a file that states one (``max_steps``, a preamble);
* the loss and the val loss from whichever file has the newest;
* per-step times and rates from a file that times its steps (console lines,
  event wall times), before one that only knows a total runtime;
* the configuration, field by field, from the file that says the most.

A figure taken from a file other than the lead says so in ``provenance``,
which the detail view shows. Pure: no I/O, the clock is a parameter.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from trainwatch.core.stats import RunStats, Status, past_default_target

#: Figures that describe the model and the batch: each from the first file that states it.
CONFIG = (
    "batch_size",
    "grad_accum",
    "world_size",
    "block_size",
    "run_id",
    "log_name",
    "architecture",
    "params",
    "gpu",
    "dtype",
    "n_layer",
    "n_head",
    "n_embd",
)
_TERMINAL: tuple[Status, ...] = ("finished", "failed", "diverged")
#: Rates measured step by step, better than a total runtime spread over the steps.
_MEASURED = ("wall clock", "logged iteration times")
_TOKEN_SOURCES = {"override": 0, "evidence": 1, "config": 2}


def merge(members: Sequence[tuple[str, RunStats]], now: datetime) -> RunStats:
    """The run's figures from its files' ``(path, stats)`` (at least one)."""
    if len(members) == 1:
        return members[0][1]
    label = _labels(members)
    stats = [s for _, s in members]
    lead = max(stats, key=_progress)
    notes: list[tuple[str, str]] = [("files", f"{len(stats)}; progress from {label[id(lead)]}")]
    taken: dict[str, RunStats] = {}  # figure -> the file it came from

    target_from = (
        lead
        if lead.target_source != "default"
        else next((s for s in sorted(stats, key=_progress, reverse=True) if s.target_source != "default"), lead)
    )
    taken["target"] = target_from
    target, target_source = target_from.target, target_from.target_source
    done = lead.iter
    past_default = past_default_target(target_source, done, target)

    loss_from = _newest(stats, "loss", lead) or lead
    val_from = _newest(stats, "val_loss", lead) or lead
    taken["loss"], taken["val loss"] = loss_from, val_from

    timing = max(stats, key=lambda s: (_timed(s), s is lead, _progress(s)))
    taken["s/iter"] = timing
    tokens_from = min(stats, key=lambda s: (_TOKEN_SOURCES.get(s.tokens_per_iter_source or "", 9), s is not lead))
    tokens = tokens_from.tokens_per_iter
    taken["tokens/iter"] = tokens_from
    mfu_from = max(stats, key=lambda s: (s.mfu_mean_pct is not None, not s.mfu_derived, s is lead))
    taken["MFU"] = mfu_from

    config = {}
    for name in CONFIG:  # the richest file first, the lead first among equals
        source = next(
            (s for s in sorted(stats, key=lambda s: (-_richness(s), s is not lead)) if getattr(s, name) is not None),
            lead,
        )
        config[name] = getattr(source, name)
        if source is not lead and getattr(lead, name) is None:
            taken.setdefault("config", source)

    status, said = _status(lead, stats, loss_from.loss)
    ended = said.ended_at if status == "finished" else None
    last_update = max((s.last_update_at for s in stats if s.last_update_at is not None), key=_stamp, default=None)
    started = min((s.started_at for s in stats if s.started_at is not None), key=_stamp, default=None)
    rate = timing.rate_s if timing.rate_s is not None else timing.mean_iter_s
    eta: float | None
    finish_at: datetime | None
    if status == "finished":
        eta, finish_at = 0.0, said.finish_at or ended or last_update
    elif status != "running" or past_default or done is None:
        eta, finish_at = None, None
    elif timing is lead and target_from is lead:
        eta, finish_at = lead.eta_s, lead.finish_at  # the lead's own countdown
    else:
        eta = max(0, target - done) * rate if rate is not None else None
        finish_at = _later(now, eta)
    mean_iter_s = timing.mean_iter_s
    tokens_per_hour = tokens * 3600 / mean_iter_s if tokens and mean_iter_s else None
    if tokens_per_hour is not None and not math.isfinite(tokens_per_hour):
        tokens_per_hour = None
    block = config["block_size"]

    provenance = [p for p in lead.provenance if not (p[0] == "target" and target_from is not lead)]
    if target_from is not lead:
        provenance += [p for p in target_from.provenance if p[0] == "target"]
    for figure, source in taken.items():
        if source is not lead and (figure != "s/iter" or rate is not None):
            notes.append((figure, f"from {label[id(source)]}"))
    provenance, notes = _fold(provenance, notes)
    warnings = tuple(dict.fromkeys(w for s in stats for w in s.warnings))

    # The machine's facts come from the file a process holds: the live writer first.
    writers = [s for s in stats if s.process is not None]
    box_from = next((s for s in writers if s.process is not None and s.process.alive), writers[0] if writers else lead)
    return replace(
        lead,
        status=status,
        process=box_from.process,
        process_hidden=any(s.process_hidden for s in stats),
        gpus=box_from.gpus,
        target=target,
        target_source=target_source,
        progress_pct=None if done is None or target <= 0 or past_default else min(100.0, 100.0 * done / target),
        loss=loss_from.loss,
        loss_series=loss_from.loss_series,
        val_loss=val_from.val_loss,
        val_series=val_from.val_series,
        effective_batch=tokens / block if tokens and isinstance(block, int) and block else None,
        tokens_per_iter=tokens,
        tokens_per_iter_source=tokens_from.tokens_per_iter_source,
        train_time_logged_s=timing.train_time_logged_s,
        mean_iter_s=mean_iter_s,
        rate_s=timing.rate_s,
        rate_source=timing.rate_source,
        time_series=timing.time_series,
        wall_series=timing.wall_series,
        tokens_per_hour=tokens_per_hour,
        tokens_per_sec=tokens_per_hour / 3600 if tokens_per_hour is not None else None,
        tokens_per_sec_logged=timing.tokens_per_sec_logged,
        tokens_per_sec_logged_scope=timing.tokens_per_sec_logged_scope,
        tps_series=timing.tps_series,
        mfu_mean_pct=mfu_from.mfu_mean_pct,
        mfu_now_pct=mfu_from.mfu_now_pct,
        mfu_derived=mfu_from.mfu_derived,
        mfu_dense_pct=mfu_from.mfu_dense_pct,
        mfu_logged_peak_tflops=mfu_from.mfu_logged_peak_tflops,
        dense_peak_tflops=mfu_from.dense_peak_tflops,
        mfu_series=mfu_from.mfu_series,
        started_at=started,
        ended_at=ended,
        last_update_at=last_update,
        wall_elapsed_s=max((s.wall_elapsed_s for s in stats if s.wall_elapsed_s is not None), default=None),
        eta_s=eta,
        finish_at=finish_at,
        warnings=warnings,
        provenance=(*provenance, *notes),
        **config,
    )


def _fold(
    provenance: list[tuple[str, str]], notes: list[tuple[str, str]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A note on a figure that already says where it came from is added to that line."""
    said = {name for name, _ in provenance}
    extra = dict(note for note in notes if note[0] in said)
    folded = [(name, f"{why}; {extra[name]}" if name in extra else why) for name, why in provenance]
    return folded, [note for note in notes if note[0] not in said]


def _progress(s: RunStats) -> tuple[bool, int, int, float, int]:
    """How far along a file is: a printed step before a derived one (a count
    of logged dicts), then the step; at the same step the file that times its
    steps (an event file beside a checkpoint state), then the latest update."""
    derived = bool(getattr(s, "iter_derived", False))
    step = -1 if s.iter is None else s.iter
    return (not derived, step, _timed(s), _stamp(s.last_update_at), s.logged_iters)


def _newest(stats: Sequence[RunStats], figure: str, lead: RunStats) -> RunStats | None:
    """The file whose ``figure`` is newest: the furthest along of those that
    have it (at one step the lead, then the latest update)."""
    having = [s for s in stats if getattr(s, figure) is not None]
    return max(
        having, key=lambda s: (-1 if s.iter is None else s.iter, s is lead, _stamp(s.last_update_at)), default=None
    )


def _timed(s: RunStats) -> int:
    """How well a file knows the run's pace: 2 step by step, 1 from a total or file times, 0 not at all."""
    if s.train_time_logged_s is not None or s.rate_source in _MEASURED:
        return 2
    return 1 if s.mean_iter_s is not None or s.rate_s is not None else 0


def _richness(s: RunStats) -> int:
    return sum(getattr(s, name) is not None for name in CONFIG) + (s.tokens_per_iter is not None)


def _status(lead: RunStats, stats: Sequence[RunStats], loss: float | None) -> tuple[Status, RunStats]:
    """The run's status, and the file that says it.

    The lead's, except: a file that ended the run (finished, failed) after the
    lead last changed has the last word (a job's ``.out`` closes after its
    ``.err`` bar stops); a lead gone quiet is not stalled while another of the
    run's files is still written; and a loss that is not finite is divergence.
    """
    if loss is not None and not math.isfinite(loss):
        return "diverged", lead
    if lead.status in _TERMINAL:
        return lead.status, lead
    spoke = _stamp(lead.last_update_at)
    ended = [s for s in stats if s.status in _TERMINAL and _stamp(s.last_update_at) >= spoke and s is not lead]
    if ended:
        last = max(ended, key=lambda s: _stamp(s.last_update_at))
        return last.status, last
    if lead.status in ("stalled", "exited") and (running := [s for s in stats if s.status == "running"]):
        return "running", running[0]
    # The run's writer is a fact of the file it holds open (a console log, not
    # a checkpoint state): once it is gone and no file is still written, the run exited.
    exited = [s for s in stats if s.status == "exited"]
    if exited and not any(s.process is not None and s.process.alive for s in stats):
        return "exited", exited[0]
    return lead.status, lead


def _stamp(moment: datetime | None) -> float:
    """A time to compare: logs give naive local times and aware ones (the epoch for none)."""
    if moment is None:
        return -math.inf
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return -math.inf


def _later(moment: datetime, seconds: float | None) -> datetime | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    try:
        return moment + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return None


def _labels(members: Sequence[tuple[str, RunStats]]) -> dict[int, str]:
    """Short names for the files of one run (keyed by their stats' ``id``):
    their paths below the folder they share (``checkpoint-500/trainer_state.json``)."""
    folders = [os.path.dirname(path) for path, _ in members]
    try:
        common = os.path.commonpath(folders) if all(folders) else ""
    except ValueError:  # absolute and relative paths mixed
        common = ""
    start = len(common.rstrip(os.sep)) + 1 if common else 0
    return {id(s): path[start:] or path for path, s in members}


__all__ = ["CONFIG", "merge"]
