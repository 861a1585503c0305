"""Derive the figures of shared/design/METRICS.md from a run's accumulated state.

Everything here is a pure function of a ``RunState`` and ``now``. Each
figure records where it came from (``provenance``) and every caveat becomes a
plain-sentence warning, which the UI marks with ⚑. Tokens per iteration and
MFU are worked out in ``trainwatch.throughput``; the rate, the ETA, the
status and the timeline are here.
"""

from __future__ import annotations

import itertools
import math
from datetime import datetime, timedelta
from statistics import median
from typing import Literal

from trainwatch.core import box, fmt, gpus
from trainwatch.core.records import Eval
from trainwatch.core.state import EXCESS, RunState
from trainwatch.core.stats import RunStats, Status, past_default_target
from trainwatch.core.throughput import RATE_WINDOW, derived_mfu, mfu_against_dense, tokens_per_iter

DEFAULT_TARGET = 2000
MIN_STALL_S = 60.0


def derive(agg: RunState, now: datetime, facts: box.BoxFacts | None = None) -> RunStats:
    """The run's ``RunStats`` as of ``now``; ``facts``: what the machine says
    about it (its writer, its GPUs), where known."""
    info = agg.info
    warnings: list[str] = []
    provenance: list[tuple[str, str]] = []

    done = _iterations_done(agg)
    target_source: Literal["override", "log", "default"]
    if agg.target_override is not None:
        target, target_source = agg.target_override, "override"
    elif info.target:
        target, target_source = info.target, "log"
    else:
        target, target_source = DEFAULT_TARGET, "default"
    provenance.append(("target", f"{target:,} ({_TARGET_WHY[target_source]})"))
    # A run past the default target shows the default does not apply: its
    # target is unknown, and so are its progress and ETA (null, never a
    # progress of 100 % and an ETA of 0 s for a run still going).
    past_default = past_default_target(target_source, done, target)
    if past_default:
        provenance.append(("progress", f"unknown: past the default target of {target:,}; set one with --target or t"))
    # A target the user set only moves progress and ETA: past it, progress
    # goes over 100 % and the time to it is no longer a figure (None).
    past_user = target_source == "override" and done is not None and done > target

    # max(): after a restart the superseded times are subtracted as their
    # float32 copies, which can leave a residue just below zero.
    logged_s = max(0.0, agg.train_ms / 1000) if agg.n_train_timed else None
    # The mean step leaves hangs out (METRICS.md: out of the rate): one step
    # holding a 3-hour stall moved the demo's s/iter from 3.49 to 44.55.
    paced = agg.n_train_timed - agg.n_excess_timed
    mean_iter_s = max(0.0, (agg.train_ms - agg.excess_ms) / 1000) / paced if paced > 0 else None
    rate_s, rate_source = _rate(agg)
    if mean_iter_s is None and rate_s is not None:
        mean_iter_s = rate_s  # formats without per-step times: wall-clock rate
    if mean_iter_s is None and info.runtime_s and done:
        mean_iter_s = rate_s = info.runtime_s / done  # only the total is logged
        rate_source = "logged total runtime"
        provenance.append(("s/iter", f"logged total runtime {info.runtime_s:,.0f} s ÷ {done:,} iterations"))

    train_time_s = _train_time(agg)
    tokens, source = tokens_per_iter(agg, warnings, provenance)
    tokens_per_hour = tokens * 3600 / mean_iter_s if tokens and mean_iter_s else None
    if tokens_per_hour is not None and not math.isfinite(tokens_per_hour):
        tokens_per_hour = None  # corrupt inputs (a step of 1e-300 s): unknown, not inf
    tokens_per_sec = tokens_per_hour / 3600 if tokens_per_hour is not None else None
    logged_tps = agg.last_tps

    mfu_mean = agg.mfu_sum / agg.n_mfu if agg.n_mfu else None
    mfu_now = agg.last_mfu
    mfu_derived = False
    dense = gpus.dense_peak_tflops(info.gpu, info.dtype)
    mfu_dense = mfu_against_dense(agg, mfu_mean, dense, warnings, provenance)
    if mfu_mean is None and tokens_per_sec:
        mfu_mean = mfu_now = derived_mfu(agg, tokens_per_sec, dense, provenance)
        mfu_derived = mfu_mean is not None
        mfu_dense = mfu_mean if mfu_derived else mfu_dense
    if mfu_mean is not None and mfu_mean > 100:
        warnings.append(f"MFU {mfu_mean:,.1f} % is impossible: the log's FLOP count must be wrong")

    started = info.start_time
    ended = info.end_time or (agg.outcome.wall_time if agg.outcome else None)
    anchor = _last_progress_at(agg, rate_s)
    last_update = max((t for t in (anchor, *agg.observed[-1:]) if t is not None), default=None)
    status = _status(agg, done, now, last_update, rate_s, ended, box.exited(facts))
    if status == "finished" and ended is not None:
        last_update = ended  # a copied log's mtime says nothing about the run
    if status == "exited":
        ended = ended or last_update  # the run stopped with its last line, whatever the clock says now
    warnings += box.gpu_warnings(facts, status == "running", agg.last_mfu)
    wall_elapsed = _wall_elapsed(agg, started, ended, now, status, last_update)
    eta = None if past_default or past_user else _eta(agg, done, target, rate_s, anchor, now, status, provenance)
    finish_at: datetime | None
    if status == "finished":
        eta, finish_at = 0.0, ended or last_update
    else:
        finish_at = _later(now, eta)
    if agg.segments > 1:
        provenance.append(("segments", f"{agg.segments} (iterations went back: resumed or restarted)"))

    block = info.block_size
    return RunStats(
        status=status,
        iter=done,
        target=target,
        target_source=target_source,
        progress_pct=_progress(done, target, target_source, past_default),
        loss=agg.last_loss if agg.last_loss is not None else info.final_loss,
        val_loss=_last_val(agg),
        logged_iters=agg.logged,
        eval_iters=agg.n_eval,
        eval_at=tuple(agg.eval_at),
        segments=agg.segments,
        batch_size=info.batch_size,
        grad_accum=info.grad_accum,
        world_size=info.world_size,
        block_size=block,
        effective_batch=tokens / block if tokens and block else None,
        tokens_per_iter=tokens,
        tokens_per_iter_source=source,
        train_time_logged_s=logged_s,
        train_time_s=train_time_s,
        train_time_estimated=train_time_s is not None and bool(agg.whole_steps or agg.whole_sampled),
        hangs=tuple(agg.hangs),
        mean_iter_s=mean_iter_s,
        tokens_per_hour=tokens_per_hour,
        tokens_per_sec=tokens_per_sec,
        tokens_per_sec_logged=logged_tps,
        tokens_per_sec_logged_scope=info.tokens_per_sec_scope if logged_tps is not None else None,
        mfu_mean_pct=mfu_mean,
        mfu_now_pct=mfu_now,
        mfu_derived=mfu_derived,
        mfu_dense_pct=mfu_dense,
        mfu_logged_peak_tflops=info.mfu_peak_tflops,
        dense_peak_tflops=dense,
        run_id=info.run_id,
        log_name=info.name,
        architecture=info.architecture,
        params=info.params,
        gpu=info.gpu,
        dtype=info.dtype,
        n_layer=info.n_layer,
        n_head=info.n_head,
        n_embd=info.n_embd,
        started_at=started,
        ended_at=ended,
        last_update_at=last_update,
        wall_elapsed_s=wall_elapsed,
        eta_s=eta,
        finish_at=finish_at,
        rate_s=rate_s,
        rate_source=rate_source,
        warnings=tuple(warnings),
        provenance=tuple(provenance),
        events=_events(agg),
        checkpoint_at=tuple(c.iter for c in agg.checkpoints if c.iter is not None),
        loss_series=agg.loss_series.points(),
        val_series=agg.val_series.points(),
        time_series=agg.time_series.points(),
        mfu_series=agg.mfu_series.points(),
        tps_series=agg.tps_series.points(),
        wall_series=agg.wall_series.points(),
        process=facts.writer if facts is not None else None,
        process_hidden=facts is not None and facts.hidden,
        gpus=facts.gpus if facts is not None else (),
    )


_TARGET_WHY = {"override": "--target", "log": "from the log", "default": "default; the log does not say"}


def _progress(done: int | None, target: int, target_source: str, past_default: bool) -> float | None:
    """Percent of the target; over 100 only past a target the user set (the
    log's own target ends the run, the default says nothing once passed)."""
    if done is None or target <= 0 or past_default:
        return None
    pct = 100.0 * done / target
    return pct if target_source == "override" else min(100.0, pct)


def _train_time(agg: RunState) -> float | None:
    """METRICS.md ``train_time_s``: the whole run's training time so far.

    Ordinary logged steps stand for the steps since the previous logged one
    (their time × the gap, or the wall-clock interval); eval, hang and
    untimed steps count at the median step time of the recent window (16
    steps: bounded, whatever the run's length). Unknown where no step has a
    time nor a timestamped interval.
    """
    # max(): the residue of a restart's subtractions, as for the logged sum.
    known = max(0.0, agg.replay_s - agg.pause_s + agg.wall_s)
    if not agg.whole_steps:
        return known if agg.n_train_timed or agg.wall_s else None
    if not agg.recent:
        return None
    return known + agg.whole_steps * median(agg.recent) / 1000


def _iterations_done(agg: RunState) -> int | None:
    """Largest iteration of the current timeline, evals included."""
    last = agg.iters[-1] if agg.iters else None
    marks = [k for k in agg.eval_marks if last is None or k > last]
    return max([*marks, *([last] if last is not None else [])], default=None)


# --------------------------------------------------------------------- time


def _rate(agg: RunState) -> tuple[float | None, str | None]:
    """Seconds per iteration now: wall clock where the log has it."""
    memo = agg.memo.get("rate")
    if memo is not None and memo[0] == agg.changes:
        return memo[1]
    rate = _measure_rate(agg)
    agg.memo["rate"] = (agg.changes, rate)
    return rate


def _measure_rate(agg: RunState) -> tuple[float | None, str | None]:
    """The recent pace (METRICS.md: recent rate): the mean over the recent
    window of ordinary steps. Evals, and steps far slower than the rolling
    median (hangs, announced saves: ``RunState.excess``, decided once as each
    step came in) are left out, so one step that held a 3-hour stall moves
    nothing; what is left is averaged, not filtered again: a run whose steps
    take 0.6 s or 4 s by turns (generation lengths) has a mean of 2.5 s, which
    a second outlier cut around its median of 1 s put at 2.1 s."""
    walls: list[tuple[int, float, int]] = []
    for i in range(len(agg.iters) - 1, -1, -1) if agg.walls is not None else ():
        if not math.isnan(agg.walls[i]):  # type: ignore[index]
            walls.append((agg.iters[i], agg.walls[i], agg.is_eval[i]))  # type: ignore[index]
        if len(walls) > RATE_WINDOW or (agg.is_warmup[i] and walls):
            break
    walls.reverse()
    eval_points = set(agg.eval_marks)
    steps = seconds = 0.0
    for (i0, w0, _), (i1, w1, kind) in itertools.pairwise(walls):
        # (steps, seconds) between timestamped lines; evals and hangs left out
        if i1 > i0 and w1 >= w0 and kind != EXCESS and not any(i0 <= e <= i1 for e in eval_points):
            steps += i1 - i0
            seconds += w1 - w0
    if steps:
        return seconds / steps, "wall clock"
    # Slices zipped, not indexed: this runs on every derive of a live run.
    lo = max(0, len(agg.iters) - 2 * RATE_WINDOW)
    recent = [
        t
        for t, kind, warmup in zip(agg.times[lo:], agg.is_eval[lo:], agg.is_warmup[lo:], strict=True)
        if not (kind or warmup or t != t)  # t != t: NaN, an untimed entry
    ][-RATE_WINDOW:]
    if recent:
        return sum(recent) / len(recent) / 1000, "logged iteration times"
    first = agg.first_iter
    if len(agg.observed) >= 2 and agg.logged >= 2 and first is not None and agg.iters[-1] > first:
        span = (agg.observed[-1] - agg.observed[0]).total_seconds()
        return span / (agg.iters[-1] - first), "file update times"
    return None, None


def _last_progress_at(agg: RunState, rate_s: float | None) -> datetime | None:
    """When the last logged iteration completed, as well as the log tells.

    A timestamped line says it directly. Otherwise, for a single-segment run
    with a start time, replay the timeline: each logged time stands for the
    iterations since the previous logged one (logging is sampled), and an
    eval iteration's time is its own plus ordinary steps for the rest.
    """
    if agg.iters and agg.walls is not None and not math.isnan(agg.walls[-1]):
        return datetime.fromtimestamp(agg.walls[-1])  # the newest line is timestamped
    start = agg.info.start_time
    if start is None or agg.segments != 1 or not agg.n_train_timed or rate_s is None:
        return agg.observed[-1] if agg.observed else None
    return _later(start, agg.replay_s + agg.replay_untimed_steps * rate_s)


def _later(moment: datetime, seconds: float | None) -> datetime | None:
    """``moment + seconds``, or ``None`` past what a datetime can hold (an ETA of corrupt figures)."""
    if seconds is None:
        return None
    try:
        return moment + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return None


def _eval_overhead_s(agg: RunState, rate_s: float) -> tuple[float, bool]:
    """Cost of one eval (+checkpoint) pass beyond an ordinary step; whether it is an estimate.

    As observed in this run; before any is timed, what the log's own eval
    settings make of it (``RunInfo.eval_cost_steps``: its eval batches
    against a step's), else nothing: a pass priced at 0 s left the seed's
    runs 2.4-4 % short at a quarter of the way.
    """
    if agg.n_eval_timed:
        return max(0.0, agg.eval_ms / 1000 / agg.n_eval_timed - rate_s), False
    if agg.n_pass:  # timed apart from the steps (ms-swift's and LLaMA-Factory's elapsed clocks)
        return agg.pass_s / agg.n_pass, False
    cost = agg.info.eval_cost_steps
    return (cost * rate_s, True) if cost else (0.0, False)


def _evals_due(agg: RunState, done: int, target: int) -> int:
    """Eval passes between now and the step that reaches ``target``."""
    interval = agg.info.eval_interval
    if not interval:
        seen = sorted(agg.eval_marks)
        interval = seen[-1] - seen[-2] if len(seen) >= 2 else 0
    if interval <= 0:
        return 0
    if agg.info.eval_timing == "next":
        # Evaluated after a step is logged (Megatron, torchtitan): the pass at
        # the target comes after the last step, and the one at ``done`` is
        # still due until its result is logged.
        due = (target - 1) // interval - (done - 1) // interval
        return max(0, due - (done % interval == 0 and done in agg.eval_marks))
    # Evaluated at the top of a step (nanoGPT): the pass at the target is due.
    return max(0, target // interval - done // interval)


def _eta(
    agg: RunState,
    done: int | None,
    target: int,
    rate_s: float | None,
    anchor: datetime | None,
    now: datetime,
    status: Status,
    provenance: list[tuple[str, str]],
) -> float | None:
    """Seconds until ``iter == target`` (METRICS.md: ETA)."""
    if status in ("stalled", "diverged", "failed", "exited") or done is None or rate_s is None:
        return None
    remaining = max(0, target - done)
    due = _evals_due(agg, done, target)
    overhead, estimated = _eval_overhead_s(agg, rate_s)
    if due and overhead:
        how = "estimated from the log's eval settings; none timed yet" if estimated else "as timed so far"
        provenance.append(("ETA", f"{due:,} eval(s) still due at {overhead:,.0f} s each ({how})"))
    work = remaining * rate_s + due * overhead
    if anchor is None:
        return work
    # Count down between log writes, but never past the next expected write:
    # a slower step must not make the ETA reach zero early.
    since = min((now - anchor).total_seconds(), _countdown_s(agg, rate_s))
    if since < 0 and not _anchored_in_log(agg):
        # A ``now`` before the file's mtime (a copy of an old log, seen with
        # ``--now``) says nothing of the run: it added the gap, and made ETAs
        # of 700 days. (Before a time the log's own clock gives, the step in
        # hand is still running: that gap is part of what remains.)
        since = 0.0
    return max(0.0, work - since)


def _anchored_in_log(agg: RunState) -> bool:
    """Whether ``_last_progress_at`` took its moment from the log's own clock, not the file's mtime."""
    if agg.iters and agg.walls is not None and not math.isnan(agg.walls[-1]):
        return True
    start = agg.info.start_time
    return start is not None and agg.segments == 1 and bool(agg.n_train_timed)


def _countdown_s(agg: RunState, rate_s: float) -> float:
    """How long after a log write the ETA counts down: until the next write is due."""
    step_gap = (agg.iters[-1] - agg.iters[-2]) if len(agg.iters) >= 2 else 1
    return step_gap * rate_s


def quiet_for(agg: RunState, stats: RunStats, now: datetime) -> float:
    """Seconds after ``now`` during which ``agg``, with no new record, derives
    stats that differ from ``stats`` (derived at ``now``) only in the figures
    that drift with the clock (``stats.DRIFT``).

    A running run is quiet from the end of its ETA countdown (0 before: the
    ETA changes every second) until it turns stalled; a run the clock cannot
    change (finished, failed, diverged, or already stalled) is quiet for
    ever. The watcher need not derive a quiet run on every clock tick.
    """
    if stats.status != "running":
        return math.inf
    rate_s, last_update = stats.rate_s, stats.last_update_at
    anchor = _last_progress_at(agg, rate_s)
    if (
        stats.eta_s is not None
        and anchor is not None
        and rate_s is not None
        and (now - anchor).total_seconds() < _countdown_s(agg, rate_s)
    ):
        return 0.0  # the ETA counts down: news every second
    if last_update is None:
        return math.inf
    return max(0.0, (last_update - now).total_seconds() + _stall_after_s(agg, rate_s))


def _status(
    agg: RunState,
    done: int | None,
    now: datetime,
    last_update: datetime | None,
    rate_s: float | None,
    ended: datetime | None,
    writer_gone: bool = False,
) -> Status:
    """METRICS.md: status.

    Divergence outranks the failure it usually causes; a run that reached
    its stated target and crashed afterwards (a teardown error) finished.
    Only the target the log states counts: reaching the default proves
    nothing, and a target the user set moves progress and ETA, never the
    status (a run past it that still logs is running, not "finished").
    A run whose writer is gone (``writer_gone``) and whose log says neither
    is ``exited``: killed (OOM, a signal, a node fault) or stopped without a
    word, at once rather than "stalled" a minute later.
    """
    if agg.last_loss is not None and not math.isfinite(agg.last_loss):
        return "diverged"
    stated = agg.info.target  # the log's own, whatever the user overrides
    reached = done is not None and stated is not None and done >= stated
    if agg.outcome is not None and agg.outcome.kind == "failed" and not reached:
        return "failed"
    if (agg.outcome is not None and agg.outcome.kind == "finished") or agg.info.end_time or reached:
        return "finished"
    if writer_gone:
        return "exited"
    if last_update is not None and (now - last_update).total_seconds() > _stall_after_s(agg, rate_s):
        return "stalled"
    return "running"


def _stall_after_s(agg: RunState, rate_s: float | None) -> float:
    """max(3 × the usual gap between log updates, 60 s)."""
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(agg.observed)]
    usual = median(gaps) if gaps else 0.0
    if rate_s is not None and len(agg.iters) >= 2:
        usual = max(usual, (agg.iters[-1] - agg.iters[-2]) * rate_s)
    return max(3 * usual, MIN_STALL_S)


def _wall_elapsed(
    agg: RunState,
    started: datetime | None,
    ended: datetime | None,
    now: datetime,
    status: Status,
    last_update: datetime | None,
) -> float | None:
    # A run that is over without an end time (failed, diverged) ran until its
    # last update, not until now: a crash snapshotted months later said 230 days.
    stop = ended or (now if status in ("running", "stalled") else last_update)
    if started is not None:
        stop = stop or now
        return max(0.0, (stop - started).total_seconds())
    if agg.wall_first is not None and agg.last_wall is not None and agg.last_wall > agg.wall_first:
        return agg.last_wall - agg.wall_first
    if agg.first_seen is not None and agg.observed and agg.observed[-1] > agg.first_seen:
        # From the first sighting, not from ``observed[0]``: that list keeps
        # only the last 64 updates, and the clock froze once it was cut.
        return (agg.observed[-1] - agg.first_seen).total_seconds()
    return None


def _last_val(agg: RunState) -> float | None:
    for step in sorted(agg.eval_marks, reverse=True):
        if agg.eval_marks[step].val_loss is not None:
            return agg.eval_marks[step].val_loss
    return None


#: Eval figures that time the pass or restate the loss, not what it measured.
_NOT_SHOWN = ("runtime", "per_second", "PPL", "ppl", "epoch", "num_tokens")


def _eval_event(step: int, ev: Eval) -> str:
    """``eval @ 1,000: val 2.0154, hellaswag 0.2951``: the val loss and the
    first few other figures the evaluation measured (an accuracy is no loss)."""
    shown = [f"val {ev.val_loss:.4f}"] if ev.val_loss is not None else []
    for name, value in ev.metrics.items():
        if len(shown) >= 3:
            break
        if not any(part in name for part in _NOT_SHOWN):
            shown.append(f"{name.removeprefix('eval_')} {value:.4g}")
    return f"eval @ {step:,}: {', '.join(shown)}" if shown else f"eval @ {step:,}"


def _events(agg: RunState) -> tuple[str, ...]:
    events = [_eval_event(step, ev) for step, ev in sorted(agg.eval_marks.items())]
    events += [f"checkpoint @ {c.iter:,}" for c in agg.checkpoints if c.iter is not None]
    events += [f"hung {fmt.duration(seconds)} at iteration {step:,}" for step, seconds in agg.hangs]
    if agg.segments > 1:
        events.append(f"{agg.segments - 1} restart(s): earlier iterations superseded")
    if agg.outcome is not None:
        events.append(f"{agg.outcome.kind}: {agg.outcome.message}" if agg.outcome.message else agg.outcome.kind)
    return tuple(events)
