"""The order and choice of the table's rows: sorting, the name filter and the status filter.

Pure functions over ``RunRow`` (no Textual), so they are tested without an app.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from trainwatch.core.stats import Status
from trainwatch.tui.boxview import gpu_util
from trainwatch.tui.cells import safe_text

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow

_STATUS_ORDER: dict[Status, int] = {"failed": 0, "exited": 1, "diverged": 2, "stalled": 3, "running": 4, "finished": 5}
_SORT_VALUE: dict[str, Callable[[RunRow], object]] = {
    "run": lambda r: safe_text(r.name).casefold(),
    "status": lambda r: _STATUS_ORDER[r.stats.status],
    "progress": lambda r: r.stats.progress_pct,
    "loss": lambda r: r.stats.loss,
    "siter": lambda r: r.stats.mean_iter_s,
    "tokh": lambda r: r.stats.tokens_per_hour,
    "mfu": lambda r: r.stats.mfu_mean_pct,
    "gpu_util": lambda r: gpu_util(r.stats),
    "gpu_mem": lambda r: sum(g.mem_used_mib or 0.0 for g in r.stats.gpus) if r.stats.gpus else None,
    "train": lambda r: r.stats.train_time_s,
    "eta": lambda r: 0.0 if r.stats.status == "finished" else r.stats.eta_s,
    "finish": lambda r: r.stats.finish_at.timestamp() if r.stats.finish_at else None,
}


def sort_rows(rows: Sequence[RunRow], column: str | None, reverse: bool = False) -> list[RunRow]:
    """Rows ordered by ``column`` (``None``: as discovered); unknowns always last."""
    if column is None:
        return list(reversed(rows)) if reverse else list(rows)
    value = _SORT_VALUE[column]
    known = [r for r in rows if _comparable(value(r))]
    unknown = [r for r in rows if not _comparable(value(r))]
    known.sort(key=value, reverse=reverse)  # type: ignore[arg-type]
    return known + unknown


def _comparable(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


StatusFilter = Literal["all", "active", "problems"]
#: Statuses that need someone to look (the problems-only filter shows these).
PROBLEMS = frozenset({"stalled", "diverged", "failed", "exited"})
STATUS_FILTER_NOTE: dict[StatusFilter, str] = {"all": "", "active": "finished hidden", "problems": "problems only"}


def shown_by(row: RunRow, which: StatusFilter) -> bool:
    """Whether the status filter ``which`` shows ``row``."""
    if which == "active":
        return row.stats.status != "finished"
    if which == "problems":
        return row.stats.status in PROBLEMS
    return True


def matches(row: RunRow, query: str) -> bool:
    """Case-insensitive substring filter on the name (and the file path)."""
    needle = query.strip().casefold()
    return not needle or needle in safe_text(row.name).casefold() or needle in row.path.casefold()
