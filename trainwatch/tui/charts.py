"""The one plotting widget: draws a ``ChartSpec`` with plotext.

Imported lazily (plotext adds ~0.1 s), after the first frame is on screen.
The plot is rebuilt only when it renders: when its spec changes or the
widget is resized.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.align import Align
from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from trainwatch.tui.plotspec import MARKS, ChartSpec, nice_ticks, tick_label


class Chart(PlotextPlot):
    """A bordered plot whose border title is the spec's title."""

    DEFAULT_CSS = """
    Chart {
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        padding: 0;
        min-height: 5;
    }
    """

    spec: reactive[ChartSpec | None] = reactive(None, always_update=True)

    def __init__(self, spec: ChartSpec | None = None, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(Chart.spec, spec)
        self._drawn: RenderResult | None = None
        self._drawn_key: tuple[object, ...] | None = None

    def on_mount(self) -> None:
        self.watch_spec(self.spec)

    def watch_spec(self, spec: ChartSpec | None) -> None:
        # Log text reaches the title (run names): a Text is shown literally.
        self.border_title = Text(spec.title) if spec is not None else None
        self.refresh()

    def render(self) -> RenderResult:
        spec = self.spec
        if spec is None or not spec.has_data:
            message = spec.empty if spec is not None else "loading…"
            return Align.center(Text(message, style="dim"), vertical="middle")
        # Textual repaints a widget for many reasons (a clock tick, a table
        # cell, the cursor); rebuilding the plot each time was most of the
        # app's CPU. Rebuild only when what the plot shows has changed.
        key = (spec, self.size, self.app.theme)
        if key != self._drawn_key or self._drawn is None:
            self._draw(spec)
            self._drawn = super().render()
            self._drawn_key = key
        return self._drawn

    def _draw(self, spec: ChartSpec) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.frame(False)
        xs_all = [x for t in spec.traces for x in t.xs]
        ys_all = [y for t in spec.traces for y in t.ys]
        for trace in spec.traces:
            if not trace.xs:
                continue
            xs, ys = list(trace.xs), list(trace.ys)
            if trace.kind == "points":
                plt.scatter(xs, ys, marker="●", color=trace.color, label=trace.label)
            else:
                plt.plot(xs, ys, marker="braille", color=trace.color, label=trace.label)
        for x in spec.vlines:
            plt.vertical_line(x, color=MARKS)
        x_low, x_high = min(xs_all), max(xs_all)
        y_low, y_high = spec.ylim or (min(ys_all), max(ys_all))
        # One point, or a flat line: plotext divides by the span of the limits.
        if x_low == x_high:
            x_low, x_high = x_low - 1, x_high + 1
        if y_low == y_high:
            pad = abs(y_low) * 0.1 or 1.0
            y_low, y_high = y_low - pad, y_high + pad
        plt.xlim(x_low, x_high)
        plt.ylim(y_low, y_high)
        width, height = self.size
        self._ticks(plt.xticks, x_low, x_high, max(3, width // 10), room=width // 6)
        self._ticks(plt.yticks, y_low, y_high, max(3, height // 4), room=height // 2)
        plt.xaxes(True, False)
        plt.yaxes(True, False)

    @staticmethod
    def _ticks(setter: Callable[..., None], low: float, high: float, count: int, room: int) -> None:
        ticks = nice_ticks(low, high, count)
        while len(ticks) < 3 and count < 12:  # a coarse step can leave one tick in range
            count += 1
            ticks = nice_ticks(low, high, count)
        # Two ticks on one text row (or too close on the x axis) collide, and
        # plotext then shows whichever label its hash order puts last: thin
        # them until each has a place of its own.
        while len(ticks) > max(2, room):
            ticks = ticks[::2]
        if len(ticks) >= 2:
            step = ticks[1] - ticks[0]
            setter(list(ticks), [tick_label(t, step) for t in ticks])
