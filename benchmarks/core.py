"""What every benchmark shares: sizes, results, timing and the machine."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark runs; ``smoke`` is for CI (well under a minute in all)."""

    name: str
    text_bytes: int  # cold load: nanoGPT console log
    json_entries: int  # cold load and rewrite refresh: seed JSON log
    repeats: int  # timed repetitions (the best counts)
    rewrites: int  # rewrite refreshes timed
    memory_runs: int
    memory_iters: int
    live_appends: int
    idle_s: float
    idle_runs: tuple[int, ...]
    busy_runs: int
    busy_s: float
    keypresses: int
    settle: float  # seconds an app gets after its first frame, to finish starting up, before being measured
    big_bytes: int = 1_000_000_000  # peak memory: one long text log, and one twice as long
    live_memory_runs: int = 500  # memory of many live runs once their chart series are full
    mixed_runs: int = 100  # first frame and cold load: a generated folder mixing formats


FULL = Sizes("full", 100_000_000, 100_000, 3, 20, 8, 1_000_000, 50, 30.0, (1, 8, 64), 100, 30.0, 20, 5.0)
SMOKE = Sizes(
    "smoke",
    2_000_000,
    2_000,
    1,
    3,
    2,
    20_000,
    5,
    3.0,
    (8,),
    8,
    2.0,
    2,
    0.5,
    big_bytes=20_000_000,
    live_memory_runs=20,
    mixed_runs=10,
)


@dataclass
class Row:
    """One figure, its baseline and the target it is held to."""

    bench: str
    what: str
    value: float | None
    unit: str
    baseline: str = ""
    base_value: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.base_value:
            return None
        return self.value / self.base_value

    @property
    def ratio_text(self) -> str:
        ratio = self.ratio
        if ratio is None:
            return ""
        if ratio == 0:
            return "×0"  # (an idle process measured over a short window: no CPU tick at all)
        return f"×{ratio:.2f}" if ratio >= 0.1 else f"1/{1 / ratio:,.0f}"

    def line(self) -> str:
        value = "n/a" if self.value is None else f"{fmt(self.value)} {self.unit}"
        parts = [f"{self.bench:<9} {self.what:<44} {value:>14}"]
        if self.baseline:
            base = "n/a" if self.base_value is None else f"{fmt(self.base_value)} {self.unit}"
            parts.append(f"  vs {self.baseline} {base} {self.ratio_text}")
        if self.target:
            parts.append(f"  [{self.target}: {'met' if self.met else 'NOT met' if self.met is False else '?'}]")
        if self.note:
            parts.append(f"  ({self.note})")
        return "".join(parts)


@dataclass
class Context:
    """Where a benchmark run keeps its inputs, and what it found."""

    sizes: Sizes
    data: Path
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(row.line(), flush=True)
        return row


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def best_of(repeats: int, *fns: Callable[[], object], clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds per call of each function, best of ``repeats``, interleaved so drift hits all alike.
    ``clock=time.process_time``: CPU seconds, which other jobs on a shared machine move far less."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for index, fn in enumerate(fns):
            start = clock()
            fn()
            best[index] = min(best[index], clock() - start)
    return best


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(pct) - 1]


def machine() -> dict[str, str]:
    """Cores, CPU model, RAM, OS and Python: what the figures depend on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    ram = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cores": str(os.cpu_count()),
        "cpu": model or "unknown",
        "ram": ram or "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "load average at start (1/5/15 min)": load,
    }
