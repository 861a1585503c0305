"""Memory: 8 runs of 1M logged iterations each, loaded as ``trainwatch snapshot`` loads them.

Measured in a fresh interpreter: peak RSS (``VmHWM``) after every run is
loaded and the snapshot built, and the RSS left once the load is over. The
baseline is the same interpreter with trainwatch imported and nothing loaded.
Target: at most 150 MiB peak for 8 × 1M. The seed JSON format is measured
too (one 100k-entry, ~100 MB document): a JSON document is parsed whole, so
its peak follows the file's size, not the run's length.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks import generate
from benchmarks.core import Context, Row

MIB = 1024 * 1024
TARGET_MIB = 150.0

_PROBE = r"""
import json, sys
from datetime import datetime
from pathlib import Path

def status():
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields

from trainwatch.core.names import Names
from trainwatch.ingest.publish import build
from trainwatch.ingest.source import LogSource
from trainwatch.ingest.discover import discover

before = status()
files, _ = discover([Path(p) for p in sys.argv[1:]])
sources = []
for path in files:
    source = LogSource(path)
    source.refresh()
    sources.append(source)
snapshot = build(sources, Names(), datetime.now())
after = status()
print(json.dumps({"before": before, "after": after, "runs": len(snapshot.rows),
                  "iters": sum(r.stats.logged_iters for r in snapshot.rows)}))
"""


# The floor of a long text log: the same bytes streamed in 256 KB chunks,
# each line's numbers taken by one regex, nothing kept.
_STREAM_PROBE = r"""
import re, sys
from pathlib import Path

def peak():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

ITER = re.compile(rb"iter (\d+): loss ([\d.]+), time ([\d.]+)ms, mfu (-?[\d.]+)%")
rest = b""
with open(sys.argv[1], "rb") as handle:
    while chunk := handle.read(256 << 10):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if (m := ITER.match(line)) is not None:
                int(m[1]), float(m[2]), float(m[3]), float(m[4])
print(peak())
"""


def stream_floor(path: Path) -> float:
    """Peak RSS (MiB) of reading ``path`` with the least memory: streamed, nothing kept."""
    out = subprocess.run([sys.executable, "-c", _STREAM_PROBE, str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout) / MIB


def big_log(ctx: Context, size: int) -> Path:
    """A cached nanoGPT console log of about ``size`` bytes (one run: millions of iterations)."""
    path = ctx.data / f"big-v{generate.VERSION}-{size}" / "train.log"
    if not path.exists():
        tmp = path.with_name("train.tmp")
        generate.write_nanogpt(tmp, size)
        tmp.rename(path)
    return path


def probe(paths: list[Path]) -> dict[str, object]:
    """Load ``paths`` in a fresh interpreter; its memory before and after."""
    out = subprocess.run([sys.executable, "-c", _PROBE, *map(str, paths)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _runs(ctx: Context) -> Path:
    sizes = ctx.sizes
    folder = ctx.data / f"memory-v{generate.VERSION}-{sizes.memory_runs}x{sizes.memory_iters}"
    if not folder.exists():
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        first = tmp / "run0" / "train.log"
        generate.write_nanogpt_iters(first, sizes.memory_iters)
        for k in range(1, sizes.memory_runs):
            (tmp / f"run{k}").mkdir(parents=True)
            shutil.copyfile(first, tmp / f"run{k}" / "train.log")
        tmp.rename(folder)
    return folder


#: Peak RSS of one long text log at most, and the same whatever its length (issue 19).
BIG_TARGET_MIB = 120.0


def _big_rows(ctx: Context) -> None:
    peaks = []
    for size in (ctx.sizes.big_bytes, 2 * ctx.sizes.big_bytes):
        path = big_log(ctx, size)
        result = probe([path])
        before, after = result["before"], result["after"]
        assert isinstance(before, dict) and isinstance(after, dict)
        peak = after["VmHWM"] / MIB
        peaks.append(peak)
        full = ctx.sizes.big_bytes >= 1_000_000_000
        note = f"streamed with one regex a line and nothing kept: {stream_floor(path):.0f} MiB peak"
        if len(peaks) == 2:
            note += f"; {round(peaks[1] - peaks[0], 1) + 0.0:+.1f} MiB over the log half as long"
        ctx.add(
            Row(
                "memory",
                f"1 nanoGPT log, {size / 1e9:g} GB, {result['iters']:,} iters (peak RSS)",
                peak,
                "MiB",
                "python + import trainwatch",
                before["VmHWM"] / MIB,
                f"≤ {BIG_TARGET_MIB:.0f} MiB" if full else "",
                peak <= BIG_TARGET_MIB if full else None,
                note,
            )
        )


#: RSS of the app with many live runs, once their chart series are full (issue 19).
LIVE_TARGET_MIB = 150.0
LIVE_ITERS = 3000  # logged iterations per run before the app starts: every chart series full
LIVE_APPEND_S = 20.0  # then each run logs a line a second for this long


def live_memory(ctx: Context) -> None:
    """The app (in tmux) on many runs whose series are full, while they keep logging: its RSS."""
    import threading
    import time

    from benchmarks import apps, tmux

    if not tmux.available():
        ctx.notes.append("memory: tmux is not installed; the live runs' memory was skipped")
        return
    runs = ctx.sizes.live_memory_runs
    folder = ctx.data / f"live-memory-v{generate.VERSION}-{runs}x{LIVE_ITERS}"
    if not folder.exists():
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        first = tmp / "run000" / "train.log"
        generate.write_nanogpt_iters(first, LIVE_ITERS)
        for k in range(1, runs):
            (tmp / f"run{k:03d}").mkdir(parents=True)
            shutil.copyfile(first, tmp / f"run{k:03d}" / "train.log")
        tmp.rename(folder)
    work = ctx.data / "live-memory-run"  # (a copy: the logs grow while measured)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(folder, work)
    logs = sorted(work.glob("*/train.log"))
    stop = threading.Event()

    def writer() -> None:
        step = LIVE_ITERS
        while not stop.is_set():
            tick = time.perf_counter()
            for k, log in enumerate(logs):
                with open(log, "a", encoding="utf-8") as out:
                    out.write(apps.iter_line(step))
                stop.wait(max(0.0, tick + (k + 1) / len(logs) - time.perf_counter()))
            step += 1

    with tmux.Pane([sys.executable, "-c", apps.TEXTUAL_FLOOR]) as pane:
        pane.wait(lambda s: "floor-ready" in s, timeout=30.0)
        time.sleep(ctx.sizes.settle)
        floor = tmux.rss_mib(pane.pid())
    with tmux.Pane([*apps.trainwatch(), str(work)]) as pane:
        header = f"{runs} runs in"
        if pane.wait(lambda s: header in s and "reading" not in s.split("\n")[0], timeout=300.0) is None:
            ctx.notes.append(f"memory: the app never showed the {runs} runs")
            return
        time.sleep(ctx.sizes.settle)
        loaded = tmux.rss_mib(pane.pid())
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        time.sleep(LIVE_APPEND_S if ctx.sizes.name == "full" else 3.0)
        live = tmux.rss_mib(pane.pid())
        stop.set()
        thread.join()
    ctx.add(
        Row(
            "memory",
            f"app, {runs} live runs with full series, each logging (RSS)",
            live,
            "MiB",
            "minimal Textual app",
            floor,
            f"≤ {LIVE_TARGET_MIB:.0f} MiB" if runs >= 500 else "",
            live <= LIVE_TARGET_MIB if runs >= 500 else None,
            f"{LIVE_ITERS:,} iterations each; {loaded:.0f} MiB once loaded, "
            f"{live:.0f} MiB after {LIVE_APPEND_S:.0f} s of a line a second each",
        )
    )


def run(ctx: Context) -> None:
    sizes = ctx.sizes
    folder = _runs(ctx)
    result = probe([folder])
    before, after = result["before"], result["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    base = before["VmHWM"] / MIB
    per_iter = (after["VmRSS"] - before["VmRSS"]) / max(1, int(result["iters"]))  # type: ignore[call-overload]
    peak, left = after["VmHWM"] / MIB, after["VmRSS"] / MIB
    full = sizes.memory_runs * sizes.memory_iters == 8_000_000  # the target is for 8 × 1M only
    ctx.add(
        Row(
            "memory",
            f"{sizes.memory_runs} runs × {sizes.memory_iters:,} iters, nanoGPT stdout (peak RSS)",
            peak,
            "MiB",
            "python + import trainwatch",
            base,
            f"≤ {TARGET_MIB:.0f} MiB" if full else "",
            peak <= TARGET_MIB if full else None,
            f"RSS after loading {left:.1f} MiB; {per_iter:.1f} B per logged iteration",
        )
    )
    doc = generate.seed_json_file(sizes.json_entries, ctx.data)
    result = probe([doc])
    before, after = result["before"], result["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    ctx.add(
        Row(
            "memory",
            f"1 seed JSON, {doc.stat().st_size / 1e6:,.0f} MB, {sizes.json_entries:,} iters (peak RSS)",
            after["VmHWM"] / MIB,
            "MiB",
            "python + import trainwatch",
            before["VmHWM"] / MIB,
            note=f"RSS after loading {after['VmRSS'] / MIB:.1f} MiB (the parsed document is freed)",
        )
    )
    _big_rows(ctx)
    live_memory(ctx)
