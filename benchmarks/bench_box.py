"""The box around the runs: what finding and following each log's writer costs.

* Unit costs, in this process: asking the kernel whether anyone writes a
  log (a lease, ``openfiles.writing``), searching ``/proc`` for the holders
  (``openfiles.holders``, on this box's processes), one liveness poll of a
  known writer, one CPU/memory sample.
* Idle: 8 live runs whose logs are each held open by a live writer (``sleep``
  with its output appended to the log: found, alive, writing nothing): the
  Watcher alone with process lookup on and off, and the app in tmux.
* Busy: 100 runs appending a line a second each, written by one writer
  process that holds all 100 logs open (so every run has a found, followed
  writer): the app's CPU.

Targets: idle ≤ 0.2 % of a core with 8 runs (the app's Textual floor is
~0.23 % on its own, see bench_live), busy < 10 %.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks import apps, bench_live, tmux
from benchmarks.core import Context, Row, best_of

#: The busy writer: one process that holds every log open and appends a line a second to each.
BUSY_WRITER = r"""
import sys, time
logs = [open(p, "a", buffering=1) for p in sys.argv[1:]]
step = 100
while True:
    tick = time.monotonic()
    for k, log in enumerate(logs):
        log.write(f"iter {step}: loss 2.{step % 9000 + 1000}, time 138.25ms, mfu 38.12%\n")
        time.sleep(max(0.0, tick + (k + 1) / len(logs) - time.monotonic()))
    step += 1
"""


@contextlib.contextmanager
def _writers(logs: list[Path]) -> Iterator[list[int]]:
    """A ``sleep`` per log, its output appended to the log: a live writer that writes nothing."""
    procs = []
    try:
        for log in logs:
            with open(log, "a") as out:
                procs.append(subprocess.Popen(["sleep", "3600"], stdout=out))
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def unit_costs(ctx: Context) -> None:
    from trainwatch.system import openfiles, processes

    folder = bench_live._folder(ctx, "box-units", 1)
    log = folder / "run000" / "train.log"
    with _writers([log]) as (pid,):
        repeats = 200 if ctx.sizes.name == "full" else 20
        (lease,) = best_of(repeats, lambda: openfiles.writing(str(log)))
        ctx.add(Row("box", "is anyone writing this log? (kernel lease)", lease * 1e6, "µs", note="per log looked up"))
        count = len([n for n in os.listdir("/proc") if n.isdigit()])
        (scan,) = best_of(max(3, repeats // 20), lambda: openfiles.holders([str(log)]))
        ctx.add(
            Row(
                "box",
                f"search /proc for the holders ({count} processes)",
                scan * 1000,
                "ms",
                note="only for logs someone holds and no writer is known, at most every 3 s",
            )
        )
        tracked = processes.resolve([pid])
        assert tracked is not None
        (alive,) = best_of(repeats, lambda: processes.still_alive(tracked))
        ctx.add(Row("box", "is the known writer alive? (pidfd poll)", alive * 1e6, "µs", note="each watcher pass"))
        (sample,) = best_of(repeats, lambda: processes.sample(tracked))
        ctx.add(Row("box", "sample the writer's CPU and memory (psutil)", sample * 1e6, "µs", note="every 5 s"))
        tracked.close()


def watcher_idle(ctx: Context, runs: int) -> None:
    """``Watcher`` alone on ``runs`` live runs held by live writers, with the probe on and off."""
    from trainwatch.core.names import Names
    from trainwatch.core.options import RunOptions
    from trainwatch.ingest.watcher import Watcher
    from trainwatch.system.probe import BoxWatch

    folder = bench_live._folder(ctx, f"box-watcher-{runs}", runs)
    logs = sorted(folder.glob("*/train.log"))

    def cpu(box: BoxWatch | None) -> float:
        published = threading.Event()
        watcher = Watcher([folder], RunOptions(), Names(), lambda snapshot: published.set(), box=box)
        watcher.start()
        try:
            published.wait(30)
            time.sleep(ctx.sizes.settle)
            before, start = time.process_time(), time.perf_counter()
            time.sleep(ctx.sizes.idle_s)
            return 100 * (time.process_time() - before) / (time.perf_counter() - start)
        finally:
            watcher.stop()

    with _writers(logs):
        figures = {True: cpu(BoxWatch()), False: cpu(None)}
    ctx.add(
        Row(
            "idle",
            f"{runs} live runs held by live writers: Watcher alone, process lookup on, {ctx.sizes.idle_s:.0f} s",
            figures[True],
            "% core",
            "process lookup off",
            figures[False],
            note="liveness poll each pass, CPU/memory sampled every 5 s",
        )
    )


def app_idle(ctx: Context, runs: int) -> None:
    folder = bench_live._folder(ctx, f"box-idle-{runs}", runs)
    logs = sorted(folder.glob("*/train.log"))
    with _writers(logs), tmux.Pane([*apps.trainwatch(), str(folder)]) as pane:
        if pane.wait(lambda s: apps.progress_marker(bench_live.START - 1) in s, timeout=60.0) is None:
            ctx.notes.append(f"box: the app never showed {runs} runs")
            return
        time.sleep(ctx.sizes.settle)
        cpu, rss = bench_live._usage(pane, ctx.sizes.idle_s)
    ctx.add(
        Row(
            "idle",
            f"{runs} live runs held by live writers, nothing appended, {ctx.sizes.idle_s:.0f} s",
            cpu,
            "% core",
            target="≤ 0.2 %" if runs == 8 else "",
            met=cpu <= 0.2 if runs == 8 else None,
            note=f"RSS {rss:.0f} MiB; process lookup on (the app's default)",
        )
    )


def app_busy(ctx: Context) -> None:
    runs = ctx.sizes.busy_runs
    folder = bench_live._folder(ctx, "box-busy", runs)
    logs = sorted(folder.glob("*/train.log"))
    with tmux.Pane([*apps.trainwatch(), str(folder)]) as pane:
        if pane.wait(lambda s: apps.progress_marker(bench_live.START - 1) in s, timeout=60.0) is None:
            ctx.notes.append("box: the app never showed the busy runs")
            return
        writer = subprocess.Popen([sys.executable, "-c", BUSY_WRITER, *map(str, logs)])
        try:
            time.sleep(ctx.sizes.settle)
            cpu, rss = bench_live._usage(pane, ctx.sizes.busy_s)
        finally:
            os.kill(writer.pid, signal.SIGKILL)
            writer.wait()
    ctx.add(
        Row(
            "busy",
            f"{runs} runs appending a line a second each, held by a live writer, {ctx.sizes.busy_s:.0f} s",
            cpu,
            "% core",
            target="< 10 %",
            met=cpu < 10,
            note=f"RSS {rss:.0f} MiB; every run's writer found and followed",
        )
    )


def run(ctx: Context) -> None:
    if not sys.platform.startswith("linux"):
        ctx.notes.append("box: the writer lookup is Linux's (/proc, leases, pidfds); skipped")
        return
    unit_costs(ctx)
    watcher_idle(ctx, 8)
    if not tmux.available():
        ctx.notes.append("box: tmux is not installed; the app's figures were skipped")
        return
    app_idle(ctx, 8)
    app_busy(ctx)
