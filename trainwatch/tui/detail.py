"""The detail screen (⏎): one run's configuration, curves and caveats."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Static

from trainwatch.core import fmt
from trainwatch.core.slurmjob import checkpoint_text, limit_line, will_pass_limit
from trainwatch.core.stats import COUNTDOWN, RunStats, only_clock_moved
from trainwatch.tui import boxview, cells, logtail, plotspec
from trainwatch.tui.charts import Chart
from trainwatch.tui.keybar import KeyBar
from trainwatch.tui.live import LiveScreen
from trainwatch.tui.log_pane import LogPane
from trainwatch.tui.logtail import LogTail
from trainwatch.tui.trend import ChartOptions

if TYPE_CHECKING:
    from trainwatch.core.rows import RunRow, Snapshot

#: Seconds between two reads of the log's end while the run keeps logging.
TAIL_EVERY = 1.0
_TARGET_WHY = {"override": "set with --target or t", "log": "from the log", "default": "default; the log does not say"}


def batch_formula(s: RunStats) -> Text:
    """``2 × 48 accum × 2 GPUs × 2,048 seq = 393,216 tokens/iter``, consistent
    with the tokens/iter in use (a global accumulation is split per GPU)."""
    tokens = s.tokens_per_iter
    out = Text()
    if tokens is None:
        return Text("tokens/iter unknown (pass --tokens-per-iter)", style="dim")
    b, a, w, seq = s.batch_size, s.grad_accum, s.world_size or 1, s.block_size
    if b and a and seq:
        if b * a * seq == tokens and a % w == 0:
            out.append(f"{b} batch × {a // w} accum × {w} GPU{'s' if w > 1 else ''} × {seq:,} seq = ")
        elif b * a * w * seq == tokens:
            out.append(f"{b} batch × {a} accum × {w} GPU{'s' if w > 1 else ''} × {seq:,} seq = ")
    out.append(f"{tokens:,} tokens/iter", style="bold")
    source = s.tokens_per_iter_source
    if source:
        out.append(f" ({'measured' if source == 'evidence' else source})", style="dim")
    return out


def _grid(pairs: list[tuple[str, Text | str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in pairs:
        grid.add_row(key, value if isinstance(value, Text) else Text(value))
    return grid


def run_facts(row: RunRow) -> list[tuple[str, Text | str]]:
    s = row.stats
    shape = " × ".join(
        part
        for part in (
            f"{s.n_layer} layers" if s.n_layer else "",
            f"{s.n_head} heads" if s.n_head else "",
            f"{s.n_embd:,} wide" if s.n_embd else "",
        )
        if part
    )
    gpus = (
        f"{s.world_size or '?'} × {cells.safe_text(s.gpu)}"
        if s.gpu
        else (f"{s.world_size} GPU{'s' if s.world_size != 1 else ''}" if s.world_size else "")
    )
    return [
        ("model", cells.safe_text(s.architecture or "") or fmt.DASH),
        ("parameters", f"{fmt.si(s.params, 2)} ({fmt.count(s.params)})" if s.params else fmt.DASH),
        ("shape", shape or fmt.DASH),
        ("GPUs", gpus or fmt.DASH),
        ("precision", cells.safe_text(s.dtype or "") or fmt.DASH),
        ("batch", batch_formula(s)),
        ("target", f"{s.target:,} iterations ({_TARGET_WHY[s.target_source]})"),
    ]


def progress_facts(row: RunRow, finish: str) -> list[tuple[str, Text | str]]:
    s = row.stats
    pct = f" ({s.progress_pct:.1f}%)" if s.progress_pct is not None else ""
    evals = f"{s.logged_iters:,} logged, {s.eval_iters} with an eval"
    return [
        ("iteration", f"{fmt.count(s.iter)} / {s.target:,}{pct}"),
        ("ETA", cells.eta_text(s)),
        ("finish", finish),
        ("started", s.started_at.strftime("%Y-%m-%d %H:%M") if s.started_at else fmt.DASH),
        ("wall clock", fmt.duration(s.wall_elapsed_s)),
        (
            "train time",
            f"{fmt.train_time(s.train_time_s, s.train_time_estimated)} · {fmt.duration(s.train_time_logged_s)} logged",
        ),
        ("steps", evals + (f", {s.segments} segments" if s.segments > 1 else "")),
    ]


def slurm_facts(row: RunRow, now: datetime) -> list[tuple[str, Text | str]]:
    """The run's Slurm job: its limit and the verdict, and the work since the last checkpoint (none: nothing)."""
    job = row.slurm
    if job is None:
        return []
    line = Text(cells.safe_text(limit_line(job, row.stats, now)))
    if will_pass_limit(job, row.stats):
        line.append(" ⚑", style=cells.YELLOW)
        line.stylize(cells.RED)
    elif job.ended and job.state != "COMPLETED":
        line.stylize(cells.RED)
    return [(f"Slurm {cells.safe_text(job.job_id)}", line), ("checkpoint", checkpoint_text(row.stats))]


def speed_facts(row: RunRow) -> list[tuple[str, Text | str]]:
    s = row.stats
    rate = f"{fmt.number(s.rate_s, 2)} now ({s.rate_source})" if s.rate_s is not None else "now: —"
    mfu = f"{fmt.pct(s.mfu_mean_pct, 2)} mean, {fmt.pct(s.mfu_now_pct, 2)} last"
    if s.mfu_derived:
        mfu += " (derived)"
    return [
        ("s/iter", f"{fmt.number(s.mean_iter_s, 2)} mean · {rate}"),
        ("tokens/s", fmt.count(s.tokens_per_sec)),
        ("tokens/h", fmt.si(s.tokens_per_hour)),
        ("MFU", Text(mfu + (" ⚑" if s.warnings else ""))),
        ("MFU, dense peak", fmt.pct(s.mfu_dense_pct, 1)),
    ]


class DetailScreen(LiveScreen):
    """Everything about one run; follows live updates. Esc or q goes back."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]  # noqa: RUF012 (Textual's declaration)

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", key_display="q"),
        Binding("exclamation_mark", "jump_error", "Error", key_display="!"),
        Binding("j", "scroll(1)", "Down", show=False),
        Binding("k", "scroll(-1)", "Up", show=False),
        Binding("g", "scroll_to(0)", "Top", show=False),
        Binding("G", "scroll_to(-1)", "Bottom", show=False),
    ]

    def __init__(self, key: str, snapshot: Snapshot) -> None:
        super().__init__()
        self.key = key
        self.set_reactive(LiveScreen.snapshot, snapshot)
        self._shown: dict[str, Any] = {}  # selector -> what its Static shows
        self._shown_stats: RunStats | None = None  # the charts and notes were made from these
        self._shown_options: ChartOptions | None = None
        self._tail_read_at = -TAIL_EVERY
        self._tail_pending = False

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        with VerticalScroll(id="detail-body"):
            with Horizontal(id="facts"):
                yield Static(id="facts-run", classes="facts")
                yield Static(id="facts-progress", classes="facts")
                yield Static(id="facts-speed", classes="facts")
            with Horizontal(id="box"):  # the machine around the run: shown where known
                yield Static(id="facts-process", classes="facts")
                yield Static(id="facts-gpus", classes="facts")
            with Grid(id="detail-charts"):
                yield Chart(id="d-loss")
                yield Chart(id="d-time")
                yield Chart(id="d-tps")
                yield Chart(id="d-mfu")
            yield LogPane(id="log-pane")
            yield Static(id="notes")
        yield KeyBar()

    def on_mount(self) -> None:
        self._show()

    # ------------------------------------------------------------- the log

    def _read_tail(self, row: RunRow) -> None:
        """Read the end of the run's log in a thread, at most every TAIL_EVERY seconds."""
        wait = self._tail_read_at + TAIL_EVERY - time.monotonic()
        if wait > 0:
            if not self._tail_pending:
                self._tail_pending = True
                self.set_timer(wait, self._read_tail_now)
            return
        self._tail_read_at = time.monotonic()
        host = getattr(row, "host", None)
        self.run_worker(partial(self._tail_worker, row.path, host), thread=True, exclusive=True, group="log-tail")

    def _read_tail_now(self) -> None:
        self._tail_pending = False
        row = self._row()
        if row is not None:
            self._read_tail(row)

    def _tail_worker(self, path: str, host: str | None) -> None:
        tail = logtail.read_tail(path, host)
        self.app.call_from_thread(self._set_tail, tail)

    def _set_tail(self, tail: LogTail) -> None:
        pane = self.query_one(LogPane)
        if pane.tail != tail:
            had_error = pane.tail is not None and pane.tail.error_at is not None
            pane.tail = tail
            if had_error != (tail.error_at is not None):
                self.refresh_bindings()  # "! error" is offered only where there is one

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "jump_error":
            tail = self.query_one(LogPane).tail if self.is_mounted else None
            return True if tail is not None and tail.error_at is not None else None
        return True

    def action_jump_error(self) -> None:
        """``!``: show the log from the error that ended the run (again: back to its last lines)."""
        pane = self.query_one(LogPane)
        if pane.tail is None or pane.tail.error_at is None:
            self.notify("no traceback, out-of-memory or NCCL error in the end of the log", timeout=4)
            return
        pane.at_error = not pane.at_error
        self.query_one("#detail-body", VerticalScroll).scroll_to_widget(pane, animate=False)

    def action_scroll(self, step: int) -> None:
        body = self.query_one("#detail-body", VerticalScroll)
        body.scroll_relative(y=step * 3, animate=False)

    def action_scroll_to(self, where: int) -> None:
        body = self.query_one("#detail-body", VerticalScroll)
        if where < 0:
            body.scroll_end(animate=False)
        else:
            body.scroll_home(animate=False)

    def _update(self, selector: str, content: Any, render: Callable[[Any], RenderableType] | None = None) -> None:
        """``Static.update`` of ``selector`` when ``content`` differs from what it shows."""
        if self._shown.get(selector) != content:
            self._shown[selector] = content
            self.query_one(selector, Static).update(render(content) if render else content)

    def _row(self) -> RunRow | None:
        if self.snapshot is None:
            return None
        return next((r for r in self.snapshot.rows if r.key == self.key), None)

    def watch_snapshot(self) -> None:
        if self.is_mounted:
            self._show()

    def watch_chart_options(self) -> None:
        if self.is_mounted:
            self._show()

    def _show(self) -> None:
        row, snapshot = self._row(), self.snapshot
        if row is None or snapshot is None:
            return
        s, now = row.stats, snapshot.generated_at
        title = Text(" ")
        title.append(cells.safe_text(row.name), style="bold")
        title.append("  ")
        title.append(cells.status_text(s, now), style=cells.STATUS_STYLE[s.status])
        title.append(f"  {cells.safe_text(Path(row.path).name)} · {row.format}", style="dim")
        # Only what changed is updated: every update repaints its widget, and
        # most snapshots (another run's news, a clock tick) change little here.
        self._update("#detail-title", title)
        boxes = {
            "#facts-run": ("Run", run_facts(row)),
            "#facts-progress": ("Progress", progress_facts(row, fmt.clock(s.finish_at, now)) + slurm_facts(row, now)),
            "#facts-speed": ("Throughput", speed_facts(row)),
        }
        for selector, (name, pairs) in boxes.items():
            box = self.query_one(selector, Static)
            if box.border_title is None:
                box.border_title = name
            self._update(selector, pairs, _grid)
        self._show_box(s, now)
        shown, self._shown_stats = self._shown_stats, s
        if shown is None or not only_clock_moved(shown, s, COUNTDOWN):
            self._read_tail(row)  # the log grew
        options, self._shown_options = self._shown_options, self.chart_options
        if shown is not None and options == self.chart_options and only_clock_moved(shown, s, COUNTDOWN):
            return  # charts and notes depend on no figure that moved
        charts = {
            "#d-loss": plotspec.loss_chart(s, options=self.chart_options),
            "#d-time": plotspec.time_chart(s),
            "#d-tps": plotspec.tokens_chart(s),
            "#d-mfu": plotspec.mfu_chart(s),
        }
        for selector, spec in charts.items():
            chart = self.query_one(selector, Chart)
            if chart.spec != spec:
                chart.spec = spec
        self.query_one("#notes", Static).update(notes_text(s, row.sources))

    def _show_box(self, s: RunStats, now: datetime) -> None:
        """The Process and GPUs boxes, where the machine says anything about the run."""
        known = s.process is not None or s.process_hidden
        box, gpus = self.query_one("#box"), self.query_one("#facts-gpus", Static)
        if box.display != (known or bool(s.gpus)):
            box.display = known or bool(s.gpus)
        if gpus.display != bool(s.gpus):
            gpus.display = bool(s.gpus)
        process = self.query_one("#facts-process", Static)
        if process.display != known:
            process.display = known
        for static, title in ((process, "Process"), (gpus, f"GPUs ({len(s.gpus)})")):
            if static.border_title != title:
                static.border_title = title
        if known:
            self._update("#facts-process", boxview.process_facts(s, now), _grid)
        if s.gpus:
            self._update("#facts-gpus", s.gpus, lambda _: boxview.gpu_table(s))


def notes_text(s: RunStats, files: tuple[str, ...] = ()) -> Group:
    """Warnings (⚑), where each figure came from, the run's events, and its
    files when it is read from several (the first is the row's)."""
    parts: list[RenderableType] = []
    if s.warnings:
        parts.append(Text("Warnings", style="bold"))
        parts.append(_hanging([(Text(" ⚑", style=cells.YELLOW), Text(cells.safe_text(w))) for w in s.warnings]))
        parts.append(Text(""))
    if s.provenance:
        parts.append(Text("Where the figures come from", style="bold"))
        rows = [
            (Text("  " + cells.safe_text(name), style="dim"), Text(cells.safe_text(why))) for name, why in s.provenance
        ]
        parts.append(_hanging(rows))
        parts.append(Text(""))
    parts.append(Text("Events", style="bold"))
    events = [(Text("  ·"), Text(cells.safe_text(e))) for e in s.events]
    parts.append(_hanging(events) if events else Text("  none logged", style="dim"))
    if len(files) > 1:
        parts += [Text(""), Text("Files", style="bold")]
        parts.append(_hanging([(Text("  ·"), Text(cells.safe_text(path))) for path in files]))
    return Group(*parts)


def _hanging(rows: list[tuple[Text, Text]]) -> Table:
    """Two columns, so that long lines wrap under their text, not under the label."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text in rows:
        grid.add_row(label, text)
    return grid
