"""Startup: ``trainwatch snapshot`` of the four seed runs end to end, and the app's first frame.

The snapshot runs as a subprocess, as a user types it; its floors are
``python -c pass`` and ``python -c "import trainwatch"``. ``python -X
importtime`` shows whether pandas is imported: it must be only for md, csv
and html exports. The first frame is the time from launching ``trainwatch
FILES`` in a 160×48 tmux to the first run row on screen; its floor is the
smallest Textual app. Targets: 0.5 s each.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import apps, formats, tmux
from benchmarks.core import Context, Row


def _timed(command: list[str], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def _imports_pandas(args: list[str]) -> bool:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "trainwatch", *args], capture_output=True, text=True
    )
    return any(line.rsplit("|", 1)[-1].strip() == "pandas" for line in done.stderr.splitlines())


def _first_frame(command: list[str], seen: str, runs: int, timeout: float = 30.0) -> tuple[float | None, float | None]:
    """Seconds from launch until ``seen`` is on screen once, and ``runs`` times."""
    with tmux.Pane(command) as pane:
        first = pane.wait(lambda screen: seen in screen, timeout, since=pane.started)
        if first is None:
            return None, None
        return first, pane.wait(lambda screen: screen.count(seen) >= runs, timeout, since=pane.started)


def _watcher_first(paths: list[Path]) -> float:
    """Seconds from ``Watcher.start()`` to the first snapshot holding every run (no UI)."""
    import threading

    from trainwatch.core.names import Names
    from trainwatch.core.options import RunOptions
    from trainwatch.ingest.watcher import Watcher

    done = threading.Event()
    watcher = Watcher(paths, RunOptions(), Names(), lambda s: done.set() if len(s.rows) == len(paths) else None)
    start = time.perf_counter()
    watcher.start()
    try:
        done.wait(30)
        return time.perf_counter() - start
    finally:
        watcher.stop()


_RUNS_IN = re.compile(r"· ([\d,]+) runs? in")


def _shown_runs(screen: str) -> int:
    """How many runs the header says it shows (0 before the first snapshot)."""
    m = _RUNS_IN.search(screen.split("\n", 1)[0])
    return int(m.group(1).replace(",", "")) if m else 0


def _folder_frames(folder: Path) -> tuple[float | None, float | None]:
    """Seconds from launching ``trainwatch FOLDER`` until its first run is on
    screen, and until every run is read (the header's count, no "reading")."""
    with tmux.Pane([*apps.trainwatch(), str(folder)]) as pane:
        first = pane.wait(lambda s: _shown_runs(s) > 0, 30.0, since=pane.started)
        done = pane.wait(
            lambda s: _shown_runs(s) > 0 and "reading" not in s.split("\n", 1)[0], 120.0, since=pane.started
        )
        return first, done


def folders(ctx: Context) -> None:
    """First frame on realistic folders: the corpus (~50 logs of every format) and a generated mixed one."""
    corpus = apps.CORPUS.parent
    mixed = formats.mixed_folder(ctx.sizes.mixed_runs, ctx.data)
    launches = ctx.sizes.repeats + 2
    for what, folder, target in (("the corpus", corpus, True), (f"{ctx.sizes.mixed_runs} mixed runs", mixed, False)):
        if not folder.is_dir():
            ctx.notes.append(f"startup: {folder} is missing; its first-frame row was skipped")
            continue
        ours, alls, floors = [], [], []
        for _ in range(launches):  # alternately, so that the machine's drift hits both alike
            first, done = _folder_frames(folder)
            floor = _first_frame([sys.executable, "-c", apps.TEXTUAL_FLOOR], "floor-ready", 1)[0]
            if first is not None and floor is not None:
                ours.append(first)
                floors.append(floor)
            if done is not None:
                alls.append(done)
        if not ours:
            ctx.notes.append(f"startup: no first frame seen on {folder}")
            continue
        value, base = statistics.median(ours), statistics.median(floors)
        ctx.add(
            Row(
                "startup",
                f"first frame with a run: trainwatch DIR ({what}) in tmux",
                value,
                "s",
                "minimal Textual app",
                base,
                "≤ 0.5 s and ≤ 2× floor" if target else "",
                (value <= 0.5 and value <= 2 * base) if target else None,
                f"median of {len(ours)}; every run read after {statistics.median(alls):.2f} s" if alls else "",
            )
        )


def run(ctx: Context) -> None:
    folders(ctx)
    sizes = ctx.sizes
    runs = apps.seed_runs()
    if not runs:
        ctx.notes.append("startup: ../shared/corpus is missing; the seed-run startup figures were skipped")
        return
    repeats = max(3, sizes.repeats * 2)
    files = [str(p) for p in runs]
    snap = _timed([*apps.trainwatch(), "snapshot", *files], repeats)
    bare = _timed([sys.executable, "-c", "pass"], repeats)
    imported = _timed([sys.executable, "-c", "import trainwatch.cli"], repeats)
    value, base = statistics.median(snap), statistics.median(bare)
    ctx.add(
        Row(
            "startup",
            "trainwatch snapshot of the 4 seed runs (subprocess)",
            value,
            "s",
            "python -c pass",
            base,
            "≤ 0.5 s",
            value <= 0.5,
            f"median of {repeats}; python -c 'import trainwatch.cli' {statistics.median(imported):.3f} s",
        )
    )
    table, json_ = _imports_pandas(["snapshot", *files]), _imports_pandas(["snapshot", "-f", "json", *files])
    md = _imports_pandas(["snapshot", "-f", "md", *files])
    ctx.add(
        Row(
            "startup",
            "pandas imported by snapshot table / json / md",
            float(table or json_),
            "",
            target="only for md/csv/html",
            met=not table and not json_ and md,
            note=f"table {table}, json {json_}, md {md} (python -X importtime)",
        )
    )
    if not tmux.available():
        ctx.notes.append("startup: tmux is not installed; the first-frame figure was skipped")
        return
    folder = ctx.data / "startup-runs"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for path in runs:
        shutil.copyfile(path, folder / path.name)
    launches = sizes.repeats + (sizes.repeats > 1)
    frames = [
        _first_frame([*apps.trainwatch(), str(folder)], apps.progress_marker(2000), len(runs)) for _ in range(launches)
    ]
    floors = [_first_frame([sys.executable, "-c", apps.TEXTUAL_FLOOR], "floor-ready", 1)[0] for _ in range(launches)]
    firsts = [f for f, _ in frames if f is not None]
    alls = [a for _, a in frames if a is not None]
    floor = [f for f in floors if f is not None]
    frame = statistics.median(firsts) if firsts else None
    core = min(_watcher_first([folder / p.name for p in runs]) for _ in range(launches))
    ctx.add(
        Row(
            "startup",
            "first frame: trainwatch DIR (4 seed runs) in tmux",
            frame,
            "s",
            "minimal Textual app",
            statistics.median(floor) if floor else None,
            "≤ 0.5 s",
            frame is not None and frame <= 0.5,
            (f"median of {launches}; all 4 rows after {statistics.median(alls):.2f} s" if alls else "no rows seen")
            + f"; Watcher alone (no UI) publishes all 4 after {core * 1000:.0f} ms",
        )
    )
