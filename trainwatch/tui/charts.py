"""The one plotting widget: draws a ``ChartSpec`` with ``plotdraw``.

The drawing is redone only when the spec, the widget's size or its style
changes: Textual repaints a widget for other reasons too (a screen switch,
a refresh of its container), and those reuse the last drawing.
"""

from __future__ import annotations

from rich.align import Align
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from trainwatch.tui import plotdraw
from trainwatch.tui.plotspec import ChartSpec


class Chart(Widget):
    """A bordered plot whose border title is the spec's title."""

    DEFAULT_CSS = """
    Chart {
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        padding: 0;
        min-height: 5;
    }
    """

    # Every assignment reaches the watcher (always_update), which repaints
    # only when the spec differs: callers may assign an equal spec rebuilt
    # from an unchanged log without costing a redraw. repaint=False because
    # the watcher decides.
    spec: reactive[ChartSpec | None] = reactive(None, always_update=True, repaint=False)

    def __init__(self, spec: ChartSpec | None = None, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(Chart.spec, spec)
        self._drawn: list[Strip] = []
        self._drawn_key: tuple[object, ...] | None = None

    def on_mount(self) -> None:
        # set_reactive does not call the watcher: set the title here.
        self._show_title(self.spec)

    def watch_spec(self, old: ChartSpec | None, new: ChartSpec | None) -> None:
        if old != new:
            self._show_title(new)
            self.refresh()

    def _show_title(self, spec: ChartSpec | None) -> None:
        # Log text reaches the title (run names): a Text is shown literally.
        self.border_title = Text(spec.title) if spec is not None else None
        self.border_subtitle = Text(spec.legend) if spec is not None and spec.legend and spec.has_data else None

    def render(self) -> RenderResult:
        """The message shown in place of a plot (the plot itself is drawn by ``render_line``)."""
        spec = self.spec
        message = spec.empty if spec is not None else "loading…"
        return Align.center(Text(message, style="dim"), vertical="middle")

    def render_line(self, y: int) -> Strip:
        spec = self.spec
        if spec is None or not spec.has_data:
            return super().render_line(y)  # the message, from render()
        # The Line API, rather than returning the drawing from render():
        # Textual then converted the drawing's Text on every repaint, which
        # cost as much as drawing it.
        base = self.visual_style.rich_style
        key = (spec, self.size, base)
        if key != self._drawn_key:
            self._drawn = self._draw(spec, base)
        # Kept even when equal: the next lines then compare the same objects,
        # not the series of an equal spec float by float.
        self._drawn_key = key
        if 0 <= y < len(self._drawn):
            return self._drawn[y]
        return Strip.blank(self.size.width, base)

    def _draw(self, spec: ChartSpec, base: Style) -> list[Strip]:
        width, height = self.size
        return [_strip(line, base) for line in plotdraw.draw(spec, width, height)]


def _strip(line: Text, base: Style) -> Strip:
    """``line`` on the widget's ``base`` style, as a Strip.

    ``plotdraw`` lines have no base style and sorted spans that do not
    overlap, so each span is one segment: a third of the time of
    ``Text.render``, which resolves overlapping spans (~1 ms a chart).
    """
    plain, segments, at = line.plain, [], 0
    for start, end, style in line.spans:
        if start > at:
            segments.append(Segment(plain[at:start], base))
        segments.append(Segment(plain[start:end], base + (style if isinstance(style, Style) else Style.parse(style))))
        at = end
    if at < len(plain):
        segments.append(Segment(plain[at:], base))
    return Strip(segments, line.cell_len)
