"""What each chart shows, as plain data (no plotting library here).

Charts are described by a frozen ``ChartSpec`` built from ``RunStats``; the
``Chart`` widget (``charts.py``) draws whatever spec it is given. Keeping the
choice of series, units and labels here makes it testable and keeps the
plotting import out of the app's startup path.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from trainwatch.core.stats import RunStats
from trainwatch.tui import cells, trend
from trainwatch.tui.trend import ChartOptions

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow

RGB = tuple[int, int, int]
#: One colour per compared run; distinct on dark and light backgrounds.
PALETTE: tuple[RGB, ...] = (
    (95, 175, 255),
    (255, 175, 95),
    (135, 215, 135),
    (215, 135, 215),
    (255, 215, 95),
    (95, 215, 215),
    (255, 135, 135),
    (175, 175, 255),
)
TRAIN: RGB = (95, 175, 255)
VAL: RGB = (255, 175, 95)
MARKS: RGB = (110, 110, 110)
#: Raw values under a smoothed or median line: there, but quieter.
FAINT: RGB = (70, 95, 125)
MFU: RGB = (135, 215, 135)
FAINT_MFU: RGB = (75, 115, 80)
TOKENS: RGB = (215, 135, 215)
FAINT_TOKENS: RGB = (115, 80, 115)
#: Rate charts span at least this fraction of their median: noise of a
#: steady run stays small, as in the table's sparklines.
STEADY_SPAN = 0.2
XMode = Literal["tokens", "iter", "wall"]
X_MODES: tuple[XMode, ...] = ("tokens", "iter", "wall")


@dataclass(frozen=True, slots=True)
class Trace:
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    color: RGB
    label: str | None = None
    kind: Literal["line", "points", "dots"] = "line"  # dots: one dot per point, not joined


@dataclass(frozen=True, slots=True)
class ChartSpec:
    title: str
    traces: tuple[Trace, ...] = ()
    vlines: tuple[float, ...] = ()  # x values marked │ down the plot (evals)
    dashed: tuple[float, ...] = ()  # ... and ┆ (checkpoints), where no │ is
    hangs: tuple[float, ...] = ()  # ... and ╏ (hangs: steps left out of the pace), over both
    xlabel: str = ""
    empty: str = "no data yet"  # shown instead of a plot when there are no points
    ylim: tuple[float, float] | None = None  # None: the data's range
    legend: str = ""  # what the lines and marks mean (the chart's bottom border)
    y_log: bool = False  # the ys are log10 values: ticks are labelled with what they stand for

    @property
    def has_data(self) -> bool:
        return any(t.xs for t in self.traces)


def _finite(xs: Sequence[float], ys: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    pairs = [(x, y) for x, y in zip(xs, ys, strict=False) if math.isfinite(x) and math.isfinite(y)]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def _without_evals(stats: RunStats, xs: Sequence[float], ys: Sequence[float]) -> tuple[tuple[float, ...], ...]:
    """Drop eval iterations: their time and MFU measure the eval, not training."""
    evals = set(stats.eval_at)
    pairs = [(x, y) for x, y in zip(*_finite(xs, ys), strict=True) if x not in evals]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def robust_ylim(ys: Sequence[float]) -> tuple[float, float] | None:
    """The data's range without a few isolated spikes: a compile step of
    67 s would squash 28 s steps flat against the axis. A value is a spike
    when it is over 1.5 × the next one down; at most 2 % of points go."""
    if len(ys) < 10:
        return None
    ordered = sorted(ys)
    top = len(ordered) - 1
    budget = max(1, len(ordered) // 50)
    while budget and ordered[top] > 1.5 * ordered[top - 1] > 0:
        top, budget = top - 1, budget - 1
    low, high = ordered[0], ordered[top]
    pad = (high - low) * 0.05 or abs(high) * 0.05 or 1.0
    return low - pad, high + pad


def loss_chart(stats: RunStats, title: str = "loss", options: ChartOptions | None = None) -> ChartSpec:
    """Train loss as a line (with ``options.smoothing``: the debiased EMA
    over the raw curve drawn faint), val loss as points; log10 values with
    ``options.log_y``."""
    options = options or ChartOptions()
    xs, ys = _finite(*stats.loss_series)
    vxs, vys = _finite(*stats.val_series)
    scale = trend.log10_or_nan if options.log_y else tuple
    traces: list[Trace] = []
    legend = []
    if options.smoothing and ys:
        traces.append(Trace(xs, scale(ys), FAINT))
        traces.append(Trace(xs, scale(trend.ema(ys, options.smoothing)), TRAIN))
        legend += [f"─ train, EMA {options.smoothing:g}", "faint: raw"]
    else:
        traces.append(Trace(xs, scale(ys), TRAIN))
        legend.append("─ train")
    traces.append(Trace(vxs, scale(vys), VAL, kind="points"))
    if vxs:
        legend.append("● val")
    if options.log_y:
        legend.append("log scale")
    return ChartSpec(
        title,
        tuple(traces),
        xlabel="iteration",
        empty="no loss logged yet",
        legend=" · ".join(legend),
        y_log=options.log_y,
    )


def _median_over_points(xs: tuple[float, ...], ys: tuple[float, ...], color: RGB, faint: RGB) -> tuple[Trace, ...]:
    """Each logged value as a faint dot, and their rolling median as the line."""
    return (Trace(xs, ys, faint, kind="dots"), Trace(*trend.median_line(xs, ys), color))


#: Instead of a plot, for a run whose log has no per-step times (HF trainer_state, build-nanogpt).
NO_STEP_TIMES = "no per-step times logged"


def time_chart(stats: RunStats) -> ChartSpec:
    xs, ys = _without_evals(stats, *stats.time_series)
    marks: tuple[int, ...] = ()  # marked only over a plot, and only while they are few
    saves: tuple[int, ...] = ()
    if xs:
        evals = set(stats.eval_at)
        marks = stats.eval_at if len(stats.eval_at) <= 40 else ()
        saves = tuple(c for c in stats.checkpoint_at if c not in evals)
        saves = saves if len(saves) <= 40 else ()
    # Hangs are not in the series (one 3-hour step would flatten the rest):
    # they are marked where they happened.
    hangs = tuple(step for step, _ in stats.hangs)[-40:] if xs else ()
    notes = ["─ median", "⠂ each step"] if xs else []
    if marks:
        notes.append("│ eval (left out)")
    if saves:
        notes.append("┆ checkpoint")
    if hangs:
        notes.append("╏ hang (left out)")
    title = "s/iter"
    empty = NO_STEP_TIMES
    if stats.mean_iter_s is not None:
        empty = f"{stats.mean_iter_s:,.2f} s/iter on average; {NO_STEP_TIMES}"
    return ChartSpec(
        title,
        _median_over_points(xs, ys, TRAIN, FAINT),
        vlines=tuple(float(m) for m in marks),
        dashed=tuple(float(c) for c in saves),
        hangs=tuple(float(h) for h in hangs),
        xlabel="iteration",
        ylim=trend.at_least(robust_ylim(ys), ys, STEADY_SPAN),
        empty=empty,
        legend=" ".join(notes),
    )


def mfu_chart(stats: RunStats) -> ChartSpec:
    xs, ys = _without_evals(stats, *stats.mfu_series)
    title = "MFU % ⚑ (see detail)" if stats.warnings else "MFU %"
    if not xs and stats.mfu_mean_pct is not None:
        return ChartSpec(title, empty=f"MFU {stats.mfu_mean_pct:.1f}% (derived; no per-step series)")
    return ChartSpec(
        title,
        _median_over_points(xs, ys, MFU, FAINT_MFU),
        xlabel="iteration",
        empty="no MFU logged",
        ylim=trend.at_least(robust_ylim(ys), ys, STEADY_SPAN),
        legend="─ median ⠂ each step" if xs else "",
    )


def tokens_chart(stats: RunStats) -> ChartSpec:
    if stats.tps_series[0]:
        xs, ys = _without_evals(stats, *stats.tps_series)
        scope = " per GPU" if stats.tokens_per_sec_logged_scope == "gpu" else ""
        return ChartSpec(
            f"tokens/s{scope} (logged)",
            _median_over_points(xs, ys, TOKENS, FAINT_TOKENS),
            xlabel="iteration",
            ylim=trend.at_least(robust_ylim(ys), ys, STEADY_SPAN),
            legend="─ median ⠂ each step",
        )
    if stats.tokens_per_iter and stats.time_series[0]:
        tpi = stats.tokens_per_iter
        xs, secs = _without_evals(stats, *stats.time_series)
        xs, ys = _finite(xs, tuple(tpi / s if s > 0 else math.nan for s in secs))
        return ChartSpec(
            "tokens/s (tokens/iter ÷ s/iter)",
            _median_over_points(xs, ys, TOKENS, FAINT_TOKENS),
            xlabel="iteration",
            ylim=trend.at_least(robust_ylim(ys), ys, STEADY_SPAN),
            legend="─ median ⠂ each step",
        )
    if not stats.tokens_per_iter:
        return ChartSpec("tokens/s", empty="tokens/iter unknown: pass --tokens-per-iter")
    if stats.tokens_per_sec is not None:
        return ChartSpec("tokens/s", empty=f"{stats.tokens_per_sec:,.0f} tokens/s on average; {NO_STEP_TIMES}")
    return ChartSpec("tokens/s", empty=NO_STEP_TIMES)


def nice_ticks(low: float, high: float, count: int) -> tuple[float, ...]:
    """About ``count`` round tick positions (1, 2, 2.5, 5 × 10^k) within [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or count < 2:
        return ()
    if high <= low:
        return (low,)
    raw = (high - low) / (count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return tuple(ticks)


def tick_label(value: float, step: float) -> str:
    """``1500``, ``15k``, ``2.5M``, ``0.25``: as short as the tick spacing allows."""
    for factor, unit, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if abs(value) >= factor:
            # The step's decimals for every label of an axis: 18.800k beside 18.825k, not 18.8k.
            return f"{value / unit:.{_decimals(step / unit)}f}{suffix}"
    return f"{value:.{_decimals(step)}f}"


def _decimals(step: float) -> int:
    """Decimals needed to write multiples of ``step`` exactly."""
    for digits in range(7):
        if abs(round(step, digits) - step) <= 1e-9 * max(1.0, abs(step)):
            return digits
    return 6


# ------------------------------------------------------------------ compare


def _scale(values: Sequence[float]) -> tuple[float, str]:
    top = max((abs(v) for v in values), default=0.0)
    for factor, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if top >= factor:
            return factor, suffix
    return 1.0, ""


def _wall_hours(stats: RunStats, iters: Sequence[float]) -> tuple[float, ...] | None:
    """Hours since the first timestamped iteration, at each of ``iters``."""
    wx, wy = _finite(*stats.wall_series)
    if len(wx) < 2:
        return None
    start = wy[0]
    out = []
    for it in iters:
        i = bisect.bisect_left(wx, it)
        if i <= 0:
            at = wy[0]
        elif i >= len(wx):
            at = wy[-1]
        else:  # linear between the two nearest timestamped iterations
            x0, x1, y0, y1 = wx[i - 1], wx[i], wy[i - 1], wy[i]
            at = y0 + (y1 - y0) * (it - x0) / (x1 - x0) if x1 > x0 else y1
        out.append((at - start) / 3600)
    return tuple(out)


def compare_chart(
    rows: Sequence[RunRow], mode: XMode, options: ChartOptions | None = None
) -> tuple[ChartSpec, list[str]]:
    """Loss curves of ``rows`` against ``mode`` (smoothed and on a log scale
    as ``options`` say), and notes on runs left out."""
    options = options or ChartOptions()
    notes: list[str] = []
    traces: list[Trace] = []
    raw: list[tuple[int, tuple[float, ...], tuple[float, ...]]] = []
    for index, row in enumerate(rows):
        s = row.stats
        its, ys = _finite(*s.loss_series)
        name = cells.safe_text(row.name)
        if mode == "tokens":
            if not s.tokens_per_iter:
                notes.append(f"{name}: tokens/iter unknown, left out")
                continue
            xs = tuple(i * s.tokens_per_iter for i in its)
        elif mode == "wall":
            hours = _wall_hours(s, its)
            if hours is None:
                notes.append(f"{name}: wall time unavailable (the log does not timestamp iterations)")
                continue
            xs = hours
        else:
            xs = its
        raw.append((index, xs, ys))
    factor, suffix = _scale([x for _, xs, _ in raw for x in xs]) if mode == "tokens" else (1.0, "")
    for index, xs, ys in raw:
        # No legend in the chart: it would sit on the curves; the screen draws one above.
        shown = trend.ema(ys, options.smoothing) if options.smoothing else ys
        shown = trend.log10_or_nan(shown) if options.log_y else shown
        traces.append(Trace(tuple(x / factor for x in xs), shown, PALETTE[index % len(PALETTE)]))
    xlabel = {"tokens": f"tokens seen ({suffix or 'count'})", "iter": "iteration", "wall": "hours since start"}[mode]
    empty = "wall time is unavailable for these runs" if mode == "wall" else "no loss logged yet"
    spec = ChartSpec(
        f"loss vs {xlabel}", tuple(traces), xlabel=xlabel, empty=empty, legend=options.describe(), y_log=options.log_y
    )
    return spec, notes
