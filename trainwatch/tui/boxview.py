"""The machine around a run, as text: its writing process and its GPUs.

Pure functions from ``RunStats`` to Rich text (no Textual): the detail
view's Process and GPUs boxes, and the table's GPU cells.
"""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text

from trainwatch.core import fmt
from trainwatch.core.box import Gpu
from trainwatch.core.stats import RunStats

_GREEN, _ORANGE, _SPARK = "#5fd787", "#ff875f", "#5f87af"
#: Utilisation samples in a GPU's sparkline (at one sample every 5 s: two minutes).
SPARK_WIDTH = 24


def gpu_util(stats: RunStats) -> float | None:
    """Mean utilisation of the run's GPUs (%)."""
    utils = [g.util_pct for g in stats.gpus if g.util_pct is not None]
    return sum(utils) / len(utils) if utils else None


def gpu_util_text(stats: RunStats) -> str:
    """``97%``; ``8×97%`` for several GPUs (their mean); ``—`` without any."""
    util = gpu_util(stats)
    if util is None:
        return fmt.DASH
    many = f"{len(stats.gpus)}×" if len(stats.gpus) > 1 else ""
    return f"{many}{util:.0f}%"


def gpu_mem_text(stats: RunStats) -> str:
    """``71/80G``: memory used and total of the run's GPUs together, GiB."""
    used = [g.mem_used_mib for g in stats.gpus if g.mem_used_mib is not None]
    total = [g.mem_total_mib for g in stats.gpus if g.mem_total_mib is not None]
    if not used or not total:
        return fmt.DASH
    return f"{sum(used) / 1024:.0f}/{sum(total) / 1024:.0f}G"


def _bytes(count: float | None) -> str:
    if count is None:
        return fmt.DASH
    for unit, size in (("GiB", 2**30), ("MiB", 2**20)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count / 1024:.0f} KiB"


def process_facts(stats: RunStats, now: datetime) -> list[tuple[str, Text | str]]:
    """The Process box: who writes the log, alive or gone, and what it costs."""
    from trainwatch.tui.cells import safe_text

    w = stats.process
    if w is None:
        return [("writer", Text("a process trainwatch may not look into (another user's)", style="dim"))]
    pid = Text(f"{w.pid}")
    if w.alive:
        pid.append("  alive", style=_GREEN)
    else:
        pid.append("  gone", style=f"bold {_ORANGE}")
    if w.alive and len(w.pids) > 1:
        pid.append(f"  +{len(w.pids) - 1} process{'es' if len(w.pids) > 2 else ''}", style="dim")
    started = (
        f"{fmt.clock(w.started_at, now)}, {fmt.duration((now - w.started_at).total_seconds())} ago"
        if w.started_at is not None
        else fmt.DASH
    )
    return [
        ("PID", pid),
        ("command", Text(safe_text(w.cmdline) or fmt.DASH)),
        ("found", Text(w.how, style="dim")),
        ("started", started if w.alive else (fmt.clock(w.started_at, now) if w.started_at else fmt.DASH)),
        ("CPU", f"{w.cpu_pct:.0f} % of a core" if w.cpu_pct is not None else fmt.DASH),
        ("memory", f"{_bytes(w.rss_bytes)} resident" if w.rss_bytes is not None else fmt.DASH),
        ("user", safe_text(w.user) if w.user else fmt.DASH),
    ]


def gpu_table(stats: RunStats) -> Table:
    """The GPUs box: one line per GPU the run computes on, with a sparkline of its utilisation."""
    grid = Table.grid(padding=(0, 2))
    for justify in ("right", "left", "right", "left", "right", "right", "right"):
        grid.add_column(justify=justify, no_wrap=True)
    grid.add_row(*(Text(t, style="dim") for t in ("#", "GPU", "util", "", "memory", "power", "temp")))
    for gpu in stats.gpus:
        grid.add_row(
            str(gpu.index),
            _short(gpu.name),
            fmt.pct(gpu.util_pct, 0),
            Text(util_spark(gpu.util_history), style=_SPARK),
            _memory(gpu),
            _power(gpu),
            f"{gpu.temp_c:.0f} °C" if gpu.temp_c is not None else fmt.DASH,
        )
    return grid


def util_spark(history: tuple[tuple[float, float], ...], width: int = SPARK_WIDTH) -> str:
    """The last ``width`` utilisation samples on a fixed 0–100 % scale (``▁`` idle, ``█`` busy):
    an idle GPU must look idle, not scaled up to fill the height."""
    bars = "▁▂▃▄▅▆▇█"
    return "".join(bars[min(7, max(0, int(u / 100 * 8)))] for _, u in history[-width:])


def _short(name: str) -> str:
    return name.removeprefix("NVIDIA ")


def _memory(gpu: Gpu) -> str:
    if gpu.mem_used_mib is None or gpu.mem_total_mib is None:
        return fmt.DASH
    return f"{gpu.mem_used_mib / 1024:.1f}/{gpu.mem_total_mib / 1024:.0f} GiB"


def _power(gpu: Gpu) -> str:
    if gpu.power_w is None:
        return fmt.DASH
    limit = f"/{gpu.power_limit_w:.0f}" if gpu.power_limit_w is not None else ""
    return f"{gpu.power_w:.0f}{limit} W"
