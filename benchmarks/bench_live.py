"""Live: the app in a real terminal (tmux, 160×48) while logs grow.

* Latency: a writer appends an iteration line with a new iteration number;
  the time until that number is on screen (``tmux capture-pane``, polled), 50
  times, p50/p95. Floor: ``tail -F`` on the same file in the same tmux.
* Idle: CPU (utime + stime from /proc, % of one core) and RSS of the app
  watching 1, 8 and 64 live runs that do not change. Floor: the smallest
  Textual app, idle in the same terminal.
* Busy: 100 runs each appending a line a second: the app's CPU, and how fast
  a key press shows (``?`` opens and closes the help screen) meanwhile.

Targets: p95 ≤ 100 ms; idle ≤ 0.2 % of a core with 8 runs; busy < 10 %.
"""

from __future__ import annotations

import random
import shutil
import sys
import threading
import time
from pathlib import Path

from benchmarks import apps, generate, tmux
from benchmarks.core import Context, Row, percentile

HELP = "trainwatch · keys"
START = 100  # logged iterations in each log before the app starts


def _folder(ctx: Context, name: str, runs: int) -> Path:
    folder = ctx.data / "live" / name
    shutil.rmtree(folder, ignore_errors=True)
    for k in range(runs):
        generate.write_nanogpt_iters(folder / f"run{k:03d}" / "train.log", START)
    return folder


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(text)


def _latencies(pane: tmux.Pane, log: Path, appends: int, line: object, marker: object) -> list[float]:
    """Append ``line(k)`` and time until ``marker(k)`` is on screen, ``appends`` times."""
    rng = random.Random(0)
    out = []
    for k in range(appends):
        time.sleep(rng.uniform(0.15, 0.4))  # a quiet moment first, as between real log lines
        start = time.perf_counter()
        _append(log, line(k))  # type: ignore[operator]
        seen = pane.wait(lambda screen, k=k: marker(k) in screen, timeout=10.0, since=start)  # type: ignore[misc,operator]
        if seen is not None:
            out.append(seen)
    return out


def latency(ctx: Context) -> None:
    folder = _folder(ctx, "latency", 1)
    log = folder / "run000" / "train.log"
    appends = ctx.sizes.live_appends
    with tmux.Pane([*apps.trainwatch(), str(folder)]) as pane:
        if pane.wait(lambda s: apps.progress_marker(START - 1) in s, timeout=30.0) is None:
            ctx.notes.append(f"live: the app never showed the run:\n{pane.screen()}")
            return
        ours = _latencies(
            pane, log, appends, lambda k: apps.iter_line(1000 + k), lambda k: apps.progress_marker(1000 + k)
        )
    with tmux.Pane(["tail", "-n", "1", "-F", str(log)]) as pane:
        floor = _latencies(pane, log, appends, lambda k: f"tail-marker-{k}\n", lambda k: f"tail-marker-{k}")
    if not ours or not floor:
        ctx.notes.append("live: no append latency could be measured")
        return
    for pct in (50, 95):
        value, base = percentile(ours, pct) * 1000, percentile(floor, pct) * 1000
        ctx.add(
            Row(
                "live",
                f"append → on screen, p{pct} ({len(ours)} appends)",
                value,
                "ms",
                "tail -F in tmux",
                base,
                "p95 ≤ 100 ms" if pct == 95 else "",
                value <= 100 if pct == 95 else None,
                f"{appends - len(ours)} never seen" if len(ours) < appends else "",
            )
        )


#: Logged iterations in the seed-format document the rewrite benchmark grows (~220 KB, as the seed's runs).
REWRITE_ENTRIES = 200


def _rewrite(path: Path, data: bytes) -> None:
    """Rewrite ``path`` whole, as the seed's logger does (``json.dump`` into a
    file opened with "w": truncated, then written 8 KB at a time)."""
    with open(path, "wb", buffering=0) as out:
        for start in range(0, len(data), 8192):
            out.write(data[start : start + 8192])


def rewrite_latency(ctx: Context) -> None:
    """A seed-format JSON log rewritten whole with one more entry: the time
    until its new iteration number is on screen, against the append rows."""
    folder = ctx.data / "live" / "rewrite"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    doc = generate.seed_doc(REWRITE_ENTRIES, finished=False)
    log = folder / "run_bench.json"
    log.write_bytes(generate.dump(doc))
    appends = ctx.sizes.live_appends
    last = doc["training_iterations"][-1]["iter"]
    rng = random.Random(2)
    times = []
    with tmux.Pane([*apps.trainwatch(), str(folder)]) as pane:
        if pane.wait(lambda s: apps.progress_marker(last) in s, timeout=30.0) is None:
            ctx.notes.append(f"live: the app never showed the seed-format run:\n{pane.screen()}")
            return
        for k in range(appends):
            time.sleep(rng.uniform(0.15, 0.4))
            doc = generate.grow(doc, 1, seed=k)
            data = generate.dump(doc)
            step = doc["training_iterations"][-1]["iter"]
            start = time.perf_counter()
            _rewrite(log, data)
            seen = pane.wait(lambda s, step=step: apps.progress_marker(step) in s, timeout=10.0, since=start)  # type: ignore[misc]
            if seen is not None:
                times.append(seen)
    if not times:
        ctx.notes.append("live: no rewrite latency could be measured")
        return
    kb = len(data) / 1000
    for pct in (50, 95):
        value = percentile(times, pct) * 1000
        ctx.add(
            Row(
                "live",
                f"seed JSON rewrite ({kb:,.0f} KB) → on screen, p{pct} ({len(times)})",
                value,
                "ms",
                target="p95 ≤ 50 ms" if pct == 95 else "",
                met=value <= 50 if pct == 95 else None,
                note=f"{appends - len(times)} never seen" if len(times) < appends else "",
            )
        )


def watcher_latency(ctx: Context) -> None:
    """The core's share of the latency: append → snapshot published by ``Watcher`` (no UI)."""
    from trainwatch.core.names import Names
    from trainwatch.core.options import RunOptions
    from trainwatch.core.rows import Snapshot
    from trainwatch.ingest.watcher import Watcher

    folder = _folder(ctx, "watcher", 1)
    log = folder / "run000" / "train.log"
    latest: list[int | None] = [None]
    changed = threading.Event()

    def publish(snapshot: Snapshot) -> None:
        latest[0] = snapshot.rows[0].stats.iter if snapshot.rows else None
        changed.set()

    watcher = Watcher([folder], RunOptions(), Names(), publish)
    watcher.start()
    try:
        deadline = time.monotonic() + 30
        while latest[0] != START - 1 and time.monotonic() < deadline:
            changed.wait(0.1)
        rng = random.Random(1)
        times = []
        for k in range(ctx.sizes.live_appends):
            time.sleep(rng.uniform(0.15, 0.4))
            start = time.perf_counter()
            _append(log, apps.iter_line(2000 + k))
            while latest[0] != 2000 + k and time.perf_counter() - start < 10:
                changed.wait(0.001)
                changed.clear()
            if latest[0] == 2000 + k:
                times.append(time.perf_counter() - start)
    finally:
        watcher.stop()
    if times:
        ctx.add(
            Row(
                "live",
                f"append → snapshot published (Watcher, no UI), p95 ({len(times)})",
                percentile(times, 95) * 1000,
                "ms",
                note=f"p50 {percentile(times, 50) * 1000:.1f} ms; the rest of the end-to-end latency is the UI",
            )
        )


def watcher_rewrite_latency(ctx: Context) -> None:
    """The core's share of the rewrite latency: rewrite → snapshot published by ``Watcher`` (no UI)."""
    from trainwatch.core.names import Names
    from trainwatch.core.options import RunOptions
    from trainwatch.core.rows import Snapshot
    from trainwatch.ingest.watcher import Watcher

    folder = ctx.data / "live" / "watcher-rewrite"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    doc = generate.seed_doc(REWRITE_ENTRIES, finished=False)
    log = folder / "run_bench.json"
    log.write_bytes(generate.dump(doc))
    latest: list[int | None] = [None]
    changed = threading.Event()

    def publish(snapshot: Snapshot) -> None:
        latest[0] = snapshot.rows[0].stats.iter if snapshot.rows else None
        changed.set()

    watcher = Watcher([folder], RunOptions(), Names(), publish)
    watcher.start()
    times = []
    try:
        deadline = time.monotonic() + 30
        while latest[0] != doc["training_iterations"][-1]["iter"] and time.monotonic() < deadline:
            changed.wait(0.1)
        rng = random.Random(3)
        for k in range(ctx.sizes.live_appends):
            time.sleep(rng.uniform(0.15, 0.4))
            doc = generate.grow(doc, 1, seed=k)
            data, step = generate.dump(doc), doc["training_iterations"][-1]["iter"]
            start = time.perf_counter()
            _rewrite(log, data)
            while latest[0] != step and time.perf_counter() - start < 10:
                changed.wait(0.001)
                changed.clear()
            if latest[0] == step:
                times.append(time.perf_counter() - start)
    finally:
        watcher.stop()
    if times:
        ctx.add(
            Row(
                "live",
                f"seed JSON rewrite → snapshot published (Watcher, no UI), p95 ({len(times)})",
                percentile(times, 95) * 1000,
                "ms",
                note=f"p50 {percentile(times, 50) * 1000:.1f} ms",
            )
        )


def _usage(pane: tmux.Pane, seconds: float) -> tuple[float, float]:
    """CPU % of one core over ``seconds``, and RSS (MiB) at the end."""
    pid = pane.pid()
    before, start = tmux.cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    used, wall = tmux.cpu_seconds(pid) - before, time.perf_counter() - start
    return 100 * used / wall, tmux.rss_mib(pid)


def watcher_idle(ctx: Context, runs: int) -> None:
    """The core's share of idle CPU: ``Watcher`` alone (watchdog, 1 Hz tick) on ``runs`` live runs."""
    from trainwatch.core.names import Names
    from trainwatch.core.options import RunOptions
    from trainwatch.ingest.watcher import Watcher

    folder = _folder(ctx, f"watcher-idle-{runs}", runs)
    published = threading.Event()
    watcher = Watcher([folder], RunOptions(), Names(), lambda snapshot: published.set())
    watcher.start()
    try:
        published.wait(30)
        time.sleep(ctx.sizes.settle)
        before, start = time.process_time(), time.perf_counter()
        time.sleep(ctx.sizes.idle_s)
        cpu = 100 * (time.process_time() - before) / (time.perf_counter() - start)
    finally:
        watcher.stop()
    ctx.add(Row("idle", f"{runs} live runs: Watcher alone (no UI), {ctx.sizes.idle_s:.0f} s", cpu, "% core"))


def idle(ctx: Context) -> None:
    sizes = ctx.sizes
    # The floor: the smallest Textual app, idle in the same terminal (its
    # input thread alone costs about what the target allows).
    with tmux.Pane([sys.executable, "-c", apps.TEXTUAL_FLOOR]) as pane:
        pane.wait(lambda s: "floor-ready" in s, timeout=30.0)
        time.sleep(sizes.settle)
        floor, _ = _usage(pane, sizes.idle_s)
    for runs in sizes.idle_runs:
        folder = _folder(ctx, f"idle-{runs}", runs)
        with tmux.Pane([*apps.trainwatch(), str(folder)]) as pane:
            if pane.wait(lambda s: apps.progress_marker(START - 1) in s, timeout=60.0) is None:
                ctx.notes.append(f"live: the app never showed {runs} runs")
                continue
            time.sleep(sizes.settle)  # let the first load settle
            cpu, rss = _usage(pane, sizes.idle_s)
        ctx.add(
            Row(
                "idle",
                f"{runs} live runs, nothing appended, {sizes.idle_s:.0f} s",
                cpu,
                "% core",
                "minimal Textual app, idle",
                floor,
                "≤ 0.2 %" if runs == 8 else "",
                cpu <= 0.2 if runs == 8 else None,
                f"RSS {rss:.0f} MiB",
            )
        )


def busy(ctx: Context) -> None:
    sizes = ctx.sizes
    runs = sizes.busy_runs
    folder = _folder(ctx, "busy", runs)
    logs = sorted(folder.glob("*/train.log"))
    stop = threading.Event()

    def writer() -> None:
        step = START
        while not stop.is_set():
            tick = time.perf_counter()
            for k, log in enumerate(logs):  # each run once a second, spread over the second
                _append(log, apps.iter_line(step))
                stop.wait(max(0.0, tick + (k + 1) / len(logs) - time.perf_counter()))
            step += 1

    thread = threading.Thread(target=writer, daemon=True)
    with tmux.Pane([*apps.trainwatch(), str(folder)]) as pane:
        if pane.wait(lambda s: apps.progress_marker(START - 1) in s, timeout=60.0) is None:
            ctx.notes.append("live: the app never showed the busy runs")
            return
        thread.start()
        time.sleep(sizes.settle)
        cpu, rss = _usage(pane, sizes.busy_s)
        keys = _key_presses(pane, sizes.keypresses)
    # The floor: the smallest Textual app whose ? shows a screen, in the same
    # terminal while the same runs keep appending.
    with tmux.Pane([sys.executable, "-c", apps.TEXTUAL_KEY_FLOOR]) as pane:
        pane.wait(lambda s: "floor-ready" in s, timeout=30.0)
        time.sleep(sizes.settle)
        floor = _key_presses(pane, sizes.keypresses)
    stop.set()
    thread.join()
    ctx.add(
        Row(
            "busy",
            f"{runs} runs appending a line a second each, {sizes.busy_s:.0f} s",
            cpu,
            "% core",
            target="< 10 %",
            met=cpu < 10,
            note=f"RSS {rss:.0f} MiB",
        )
    )
    if keys and floor:
        for pct in (50, 95):
            value = percentile(keys, pct) * 1000
            ctx.add(
                Row(
                    "busy",
                    f"? → help shown / gone while {runs} runs append, p{pct} ({len(keys)} presses)",
                    value,
                    "ms",
                    "Textual app's ? → a screen",
                    percentile(floor, pct) * 1000,
                    "p95 ≤ 50 ms" if pct == 95 else "",
                    value <= 50 if pct == 95 else None,
                )
            )


def _key_presses(pane: tmux.Pane, presses: int) -> list[float]:
    """Seconds from ``?`` until the help is shown, and again until it is gone, ``presses`` times."""
    keys = []
    for _ in range(presses):
        for shown in (True, False):
            start = time.perf_counter()
            pane.keys("?")
            seen = pane.wait(lambda s, shown=shown: (HELP in s) == shown, timeout=10.0, since=start)  # type: ignore[misc]
            if seen is not None:
                keys.append(seen)
            time.sleep(0.2)
    return keys


def run(ctx: Context) -> None:
    if not tmux.available():
        ctx.notes.append("live: tmux is not installed; the terminal figures were skipped")
        watcher_latency(ctx)
        watcher_rewrite_latency(ctx)
        return
    latency(ctx)
    rewrite_latency(ctx)
    watcher_latency(ctx)
    watcher_rewrite_latency(ctx)
    idle(ctx)
    watcher_idle(ctx, 8)
    busy(ctx)
