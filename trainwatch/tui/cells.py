"""The runs table as plain data: cells, column layout and sort order.

Pure functions from ``RunRow`` to Rich ``Text``; no Textual here, so the
whole table logic is unit-tested without an app. Every cell is built with
``Text(...)`` (never markup) and log text goes through ``safe_text``: a run
called ``[bold]x`` shows those characters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Literal

from rich.cells import cell_len
from rich.text import Text

from trainwatch.core import fmt
from trainwatch.core.shorten import shorten, shorten_all
from trainwatch.core.stats import RunStats, Status
from trainwatch.tui.boxview import gpu_mem_text, gpu_util_text

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow

Justify = Literal["left", "right"]


def safe_text(text: str) -> str:
    """``trainwatch.export.safe_text``: log text without control characters.

    Imported on first use: ``trainwatch.export`` pulls in the parsers, which
    the watcher loads after the first frame is on screen.
    """
    from trainwatch.outputs.export import safe_text as strip_controls

    return strip_controls(text)


GREEN, YELLOW, BLUE, RED, GREY, ORANGE = "#5fd787", "#ffd75f", "#5fafff", "#ff5f5f", "#8a8a8a", "#ff875f"
STATUS_MARK: dict[Status, str] = {
    "running": "●",
    "stalled": "◐",
    "finished": "✓",
    "diverged": "✗",
    "failed": "✗",
    "exited": "○",  # the process is gone: the empty shape of running
}
STATUS_ORDER_SHOWN: tuple[Status, ...] = ("running", "stalled", "finished", "diverged", "failed", "exited")
STATUS_STYLE: dict[Status, str] = {
    "running": GREEN,
    "stalled": YELLOW,
    "finished": BLUE,
    "diverged": f"bold {RED}",
    "failed": RED,
    "exited": ORANGE,
}
#: Style of a whole row's text by status: finished runs step back, broken ones stand out.
ROW_STYLE: dict[Status, str] = {
    "running": "",
    "stalled": "",
    "finished": GREY,
    "diverged": RED,
    "failed": RED,
    "exited": ORANGE,
}
FLAG = "⚑"
MARK = "◆"
#: Padding that survives right-justification (Rich strips trailing spaces):
#: the braille blank is one empty cell and not whitespace.
BLANK = "\u2800"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    justify: Justify
    sortable: bool = True
    header_justify: Justify | None = None  # default: as the cells


COLUMNS: tuple[Column, ...] = (
    Column("mark", "", "left", sortable=False),
    Column("run", "Run", "left"),
    Column("status", "Status", "left"),
    Column("progress", "Progress", "right", header_justify="left"),
    Column("loss", "Loss", "right"),
    Column("siter", "s/iter", "right"),
    Column("tokh", "Tok/h", "right"),
    Column("mfu", "MFU", "right"),
    Column("gpu_util", "GPU", "right"),  # only when some run has GPUs (NVML)
    Column("gpu_mem", "GPU mem", "right"),
    Column("train", "Train time", "right"),
    Column("eta", "ETA", "right"),
    Column("finish", "Finish", "right"),
)
COLUMN = {c.key: c for c in COLUMNS}
SORTABLE = tuple(c.key for c in COLUMNS if c.sortable)


@dataclass(frozen=True, slots=True)
class Layout:
    """Which columns show, and how rich each cell is, at one width."""

    columns: tuple[str, ...] = tuple(c.key for c in COLUMNS)
    name_width: int = 26  # the least the names get; ``fit`` gives them the spare room
    bar: int = 12  # progress bar cells; 0 = count only
    loss_spark: int = 8
    time_spark: int = 7
    stall_age: bool = True  # "◐ stalled 4m" rather than "◐ stalled"
    count_width: int = 0  # "iter/target" padded to this, so bars line up across targets

    def without(self, key: str) -> Layout:
        return replace(self, columns=tuple(c for c in self.columns if c != key))


# From richest to barest: each step gives up what matters least. Run,
# Status, Progress, Loss and ETA stay longest (then Tok/h and MFU, UI.md);
# a layout's ``name_width`` is the least the names get in it, and room left
# over goes to them (``fit``), so a wide terminal shows whole names.
_STEPS: tuple[Callable[[Layout], Layout], ...] = (
    lambda lay: replace(lay, name_width=20),
    lambda lay: lay.without("train"),
    lambda lay: lay.without("gpu_mem"),
    lambda lay: replace(lay, time_spark=0),
    lambda lay: lay.without("finish"),
    lambda lay: lay.without("siter"),
    lambda lay: lay.without("gpu_util"),
    lambda lay: replace(lay, bar=6),
    lambda lay: replace(lay, loss_spark=0),
    lambda lay: replace(lay, name_width=16),
    lambda lay: replace(lay, bar=0),
    lambda lay: replace(lay, stall_age=False),
    lambda lay: replace(lay, name_width=12),
    lambda lay: lay.without("mfu"),
    lambda lay: lay.without("tokh"),
)
PADDING = 2  # a space either side of every cell (RunsTable)


def layouts(count_width: int = 0, gpus: bool = False) -> Iterable[Layout]:
    """Every layout, richest first; the GPU columns only with ``gpus`` (some run has GPUs)."""
    layout = Layout(count_width=count_width)
    if not gpus:
        layout = layout.without("gpu_util").without("gpu_mem")
    yield layout
    for step in _STEPS:
        layout = step(layout)
        yield layout


def fit(
    rows: Sequence[RunRow],
    width: int,
    now: datetime,
    sort_column: str | None = None,
    widest: dict[str, int] | None = None,
) -> tuple[Layout, dict[str, int]]:
    """The richest layout whose columns fit ``width`` cells, and their widths.

    Room left over goes to run names, up to the longest. Widths
    come from plain text lengths measured once per call (or passed in as
    ``widest``, see ``measure``), so trying every layout costs O(rows) and
    not O(rows × layouts) cell renders.
    """
    if widest is None:
        widest = merge_widths(measure(row, now) for row in rows)
    chosen: tuple[Layout, dict[str, int]] | None = None
    for layout in layouts(widest["count"], gpus=widest["gpu_util"] > 0):
        widths = _widths(widest, layout, sort_column)
        chosen = layout, widths
        if sum(w + PADDING for w in widths.values()) <= width:
            break
    assert chosen is not None
    layout, widths = chosen
    spare = width - sum(w + PADDING for w in widths.values())
    grow = min(spare, widest["name"] - layout.name_width)
    if grow > 0 and "run" in layout.columns:
        layout = replace(layout, name_width=layout.name_width + grow)
        widths = _widths(widest, layout, sort_column)
    return layout, widths


#: What ``measure`` returns, in every variant a layout may choose.
MEASURED: tuple[str, ...] = ("name", "status", "status_short", "count", "loss", "siter", "tokh", "mfu")
MEASURED += ("gpu_util", "gpu_mem", "train", "eta", "finish")
#: Cells whose text follows the clock (a stalled run's age, the ETA counting
#: down, the finish date relative to today): rebuilt alone for rows whose
#: stats moved only with the clock (``stats.COUNTDOWN``).
TIMED = ("status", "eta", "finish")


def measure(row: RunRow, now: datetime) -> dict[str, int]:
    """The plain text length of each of ``row``'s cells, in each variant."""
    s = row.stats
    return {
        "name": cell_len(_clean(row.name)),
        "count": cell_len(progress_count(s)),
        "loss": cell_len(loss_text(s.loss)),
        "siter": cell_len(fmt.number(s.mean_iter_s, 2)),
        "tokh": cell_len(fmt.si(s.tokens_per_hour)),
        "mfu": cell_len(fmt.pct(s.mfu_mean_pct, 1) + FLAG),
        "gpu_util": cell_len(gpu_util_text(s)) if s.gpus else 0,  # 0: no GPU column for this run
        "gpu_mem": cell_len(gpu_mem_text(s)) if s.gpus else 0,
        "train": cell_len(fmt.train_time(s.train_time_s, s.train_time_estimated)),
        **measure_timed(row, now),
    }


def measure_timed(row: RunRow, now: datetime) -> dict[str, int]:
    """``measure`` of the ``TIMED`` cells only."""
    s = row.stats
    return {
        "status": cell_len(status_text(s, now, True)),
        "status_short": cell_len(status_text(s, now, False)),
        "eta": cell_len(eta_text(s)),
        "finish": cell_len(fmt.clock(s.finish_at, now)),
    }


def merge_widths(measured: Iterable[dict[str, int]]) -> dict[str, int]:
    """The widest of every measured cell (zeros with no rows: only unrecognised files yet)."""
    rows = list(measured)
    return {key: max(map(itemgetter(key), rows), default=0) for key in MEASURED}


def _widths(widest: dict[str, int], layout: Layout, sort_column: str | None) -> dict[str, int]:
    content = {
        "mark": 1,
        "run": min(widest.get("name", 0), layout.name_width),
        "status": widest.get("status" if layout.stall_age else "status_short", 0),
        "progress": (layout.bar + 1 if layout.bar else 0) + layout.count_width,
        "loss": widest.get("loss", 0) + (layout.loss_spark + 1 if layout.loss_spark else 0),
        "siter": widest.get("siter", 0) + (layout.time_spark + 1 if layout.time_spark else 0),
    }
    # The sorted column's title carries an arrow (two cells more).
    return {
        key: max(
            content.get(key, widest.get(key, 0)),
            len(COLUMN[key].title) + (2 if key == sort_column else 0),
        )
        for key in layout.columns
    }


def row_cells(
    row: RunRow,
    layout: Layout,
    now: datetime,
    *,
    marked: bool,
    only: Iterable[str] | None = None,
    name: str | None = None,
) -> dict[str, Text]:
    """The visible cells of one run (of them, those in ``only``), keyed by
    column; ``name``: the name as cut for the table (``shown_names``)."""
    s = row.stats
    tone = ROW_STYLE[s.status]
    builders: dict[str, Callable[[], Text]] = {
        "mark": lambda: Text(MARK if marked else " ", style="bold #d7afff"),
        "run": lambda: name_cell(row.name, layout.name_width, tone, name),
        "status": lambda: status_cell(s, now, layout.stall_age),
        "progress": lambda: progress_cell(s, layout.bar, layout.count_width),
        "loss": lambda: value_with_spark(loss_text(s.loss), loss_trend(s), layout.loss_spark, tone),
        "siter": lambda: value_with_spark(
            fmt.number(s.mean_iter_s, 2), s.time_series[1][-64:], layout.time_spark, tone, relative_span=0.1
        ),
        "tokh": lambda: Text(fmt.si(s.tokens_per_hour), style=tone),
        "mfu": lambda: mfu_cell(s, tone),
        "gpu_util": lambda: Text(gpu_util_text(s), style=tone),
        "gpu_mem": lambda: Text(gpu_mem_text(s), style=tone),
        "train": lambda: Text(fmt.train_time(s.train_time_s, s.train_time_estimated), style=tone),
        "eta": lambda: Text(eta_text(s), style=tone),
        "finish": lambda: Text(fmt.clock(s.finish_at, now), style=tone),
    }
    keys = layout.columns if only is None else [k for k in layout.columns if k in only]
    cells = {key: builders[key]() for key in keys}
    for key, text in cells.items():
        text.no_wrap = True
        text.overflow = "ellipsis"
        text.justify = COLUMN[key].justify
    return cells


def same_text(a: Text | None, b: Text | None) -> bool:
    """Equal text and styles (``Text.__eq__`` ignores the base style, which
    carries a cell's status colour): what decides whether to repaint."""
    if a is None or b is None:
        return a is b
    return a.plain == b.plain and a.style == b.style and a.spans == b.spans


def _clean(name: str) -> str:
    return safe_text(name).replace("\n", " ")


def name_cell(name: str, width: int, tone: str, shown: str | None = None) -> Text:
    """The run's name cut to ``width``, or ``shown`` (``shown_names``: cut
    together with the other runs' names, so that they stay apart)."""
    return Text(shown if shown is not None else shorten(_clean(name), width), style=tone)


def shown_names(rows: Sequence[RunRow], width: int) -> dict[str, str]:
    """Each run's name as the table shows it at ``width`` cells, by run key."""
    return dict(zip((r.key for r in rows), shorten_all([_clean(r.name) for r in rows], width), strict=True))


def status_text(stats: RunStats, now: datetime, with_age: bool = True) -> str:
    """``● running``, ``◐ stalled 4m``, ``✓ finished``: shape and word, no colour needed."""
    word = f"{STATUS_MARK[stats.status]} {stats.status}"
    if stats.status == "stalled" and with_age and stats.last_update_at is not None:
        word += " " + fmt.duration_short((now - stats.last_update_at).total_seconds())
    return word


def status_cell(stats: RunStats, now: datetime, with_age: bool) -> Text:
    return Text(status_text(stats, now, with_age), style=STATUS_STYLE[stats.status])


def bar(fraction: float, width: int) -> str:
    """``█████▌──────``: eighths of a cell, the rest a thin rule."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    return ("█" * full + partial).ljust(width, "─")[:width] if width else ""


def progress_count(stats: RunStats) -> str:
    """``1,230/2,000``; the count alone past a default target (which then says nothing)."""
    if stats.past_default_target:
        return stats.iter_of_target
    target = f"{stats.target:,}"
    return f"{fmt.count(stats.iter):>{len(target)}}/{target}"  # counts line up under their bars


def progress_cell(stats: RunStats, width: int, count_width: int = 0) -> Text:
    count = progress_count(stats).rjust(count_width)
    if not width:
        return Text(count)
    fraction = (stats.progress_pct or 0.0) / 100
    filled = bar(fraction, width)
    solid = len(filled.rstrip("─"))
    text = Text()
    text.append(filled[:solid], style=STATUS_STYLE[stats.status])
    text.append(filled[solid:], style="#444444")
    text.append(" " + count)
    return text


def loss_text(loss: float | None) -> str:
    if loss is not None and math.isfinite(loss) and abs(loss) >= 100:
        return fmt.number(loss, 1)
    return fmt.number(loss, 3)


def loss_trend(stats: RunStats) -> tuple[float, ...]:
    """The second half of the loss curve: the first steps' drop from ~11 would flatten the rest."""
    ys = stats.loss_series[1]
    return tuple(ys[len(ys) // 2 :]) if len(ys) >= 16 else tuple(ys)


def value_with_spark(value: str, ys: Sequence[float], width: int, tone: str, *, relative_span: float = 0.0) -> Text:
    text = Text(value, style=RED if value in ("nan", "inf", "-inf") else tone)
    if width:
        span = 0.0
        if relative_span:  # the median sets the scale: a sort, only when asked for
            finite = sorted(y for y in ys if math.isfinite(y))
            span = relative_span * abs(finite[len(finite) // 2]) if finite else 0.0
        spark = fmt.sparkline(tuple(ys), width, min_span=span)
        text.append(" " + spark.ljust(width, BLANK), style="#5f87af")
    return text


def mfu_cell(stats: RunStats, tone: str) -> Text:
    text = Text(fmt.pct(stats.mfu_mean_pct, 1), style=tone)
    # The flag cell is always there (a space without warnings) so digits align.
    text.append(FLAG if stats.warnings else BLANK, style=YELLOW)
    return text


def eta_text(stats: RunStats) -> str:
    return "done" if stats.status == "finished" else fmt.duration(stats.eta_s)
